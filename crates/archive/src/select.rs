//! Reading several files out of one shard at once (`GET ?archmode=…&archregx=…`): which member
//! names match, and copying the matching members, in archive order, into a TAR stream.
use std::io::{Read, Seek, SeekFrom};

use crate::shard::{self, ScanLimits, Select, ZipIndex};
use crate::writer::ArchiveWriter;
use crate::{ArchiveError, Format};

/// Longest pattern accepted (AIStore puts it in a query parameter; anything longer is a mistake
/// or an attack).
pub const MAX_PATTERN: usize = 4096;
/// Compiled-program budget of a regular expression: a pattern that needs more is refused.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// How `archregx` selects members (AIStore's `archmode`).
#[derive(Debug, Clone)]
pub enum Matcher {
    /// The RE2-syntax expression matches anywhere in the name (linear-time engine).
    Regexp(regex::Regex),
    Prefix(String),
    Suffix(String),
    Substr(String),
    /// The WebDataset key (name without its last extension, one leading `/` dropped) equals it.
    WdsKey(String),
}

impl Matcher {
    /// Parses `archmode` (empty or `*` mean prefix) with its pattern; errors are the client's.
    pub fn parse(mode: &str, pattern: &str) -> Result<Matcher, String> {
        if pattern.len() > MAX_PATTERN {
            return Err(format!(
                "archregx is {} bytes long (at most {MAX_PATTERN})",
                pattern.len()
            ));
        }
        let pattern = pattern.to_string();
        Ok(match mode {
            "" | "*" | "prefix" => Matcher::Prefix(pattern),
            "suffix" => Matcher::Suffix(pattern),
            "substr" => Matcher::Substr(pattern),
            "wdskey" => Matcher::WdsKey(pattern),
            "regexp" => Matcher::Regexp(
                regex::RegexBuilder::new(&pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .dfa_size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| format!("invalid archregx {pattern:?}: {e}"))?,
            ),
            other => {
                return Err(format!(
                    "invalid archmode {other:?} (expecting regexp, prefix, suffix, substr or wdskey)"
                ));
            }
        })
    }

    /// Whether a member name (as stored in the archive) is selected.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            Matcher::Regexp(re) => re.is_match(name),
            Matcher::Prefix(p) => name.starts_with(p.as_str()),
            Matcher::Suffix(s) => name.ends_with(s.as_str()),
            Matcher::Substr(s) => name.contains(s.as_str()),
            Matcher::WdsKey(k) => wds_key(name) == k,
        }
    }
}

/// WebDataset key of a member name: without one leading `/` and without the extension of its
/// last path element (`a/b.c.d` → `a/b.c`).
pub fn wds_key(name: &str) -> &str {
    let name = name.strip_prefix('/').unwrap_or(name);
    let base_at = name.rfind('/').map_or(0, |i| i + 1);
    match name[base_at..].rfind('.') {
        Some(dot) => &name[..base_at + dot],
        None => name,
    }
}

/// What [`copy_matching`] needs to know of a shard besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct ShardInfo {
    pub format: Format,
    /// Length of the shard's bytes.
    pub len: u64,
    /// Modification time given to the copied entries.
    pub mtime_secs: u64,
}

/// Copies every member of the shard `r` that `matcher` selects into `out`, in archive order. `first` is called once, just before the first
/// matching member is written (a caller streaming the result starts its response there). Returns
/// how many members were copied; 0 means nothing matched and nothing was written.
pub fn copy_matching<R: Read + Seek + Send>(
    info: ShardInfo,
    mut r: R,
    matcher: &Matcher,
    limits: &ScanLimits,
    out: &mut dyn ArchiveWriter,
    mut first: impl FnMut(),
) -> Result<u64, ArchiveError> {
    let mut copied = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    let mut copy = |name: &str, size: u64, payload: &mut dyn Read| -> Result<(), ArchiveError> {
        if copied == 0 {
            first();
        }
        out.start_entry(name, size, info.mtime_secs)?;
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = payload
                .read(&mut buf[..want])
                .map_err(shard::into_archive_error)?;
            if n == 0 {
                return Err(ArchiveError::Corrupt(format!(
                    "{name}: member ends {left} bytes early"
                )));
            }
            out.write_data(&buf[..n])?;
            left -= n as u64;
        }
        out.finish_entry()?;
        copied += 1;
        Ok(())
    };
    match info.format {
        Format::Zip => {
            let index = ZipIndex::build(&mut r, info.len, limits)?;
            for entry in index.entries() {
                if entry.is_dir || !matcher.matches(&entry.name) {
                    continue;
                }
                r.seek(SeekFrom::Start(0))?;
                let mut member = shard::open_zip_member(&mut r, entry)?;
                copy(&entry.name, entry.size, &mut member)?;
            }
        }
        Format::Tar | Format::Tgz | Format::TarLz4 => {
            let mut stream = shard::decoder(info.format, &mut r, limits);
            shard::scan_tar(
                &mut stream,
                limits,
                |name| {
                    if matcher.matches(name) {
                        Select::Take(0)
                    } else {
                        Select::Skip
                    }
                },
                |_, member, payload| {
                    if member.sparse {
                        return Err(ArchiveError::Corrupt(format!(
                            "{}: GNU sparse members are not supported",
                            member.name
                        )));
                    }
                    copy(&member.name, member.size, payload)
                },
            )?;
            // Let the decompressor check the stream's end (gzip CRC, LZ4 checksum).
            shard::drain(&mut stream)?;
        }
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_match_as_aistore_does() {
        let m = |mode: &str, p: &str| Matcher::parse(mode, p).unwrap();
        assert!(m("prefix", "file2").matches("file2.txt"));
        assert!(m("", "file2").matches("file2.cls"));
        assert!(!m("prefix", "file2").matches("a/file2.txt"));
        assert!(m("suffix", ".cls").matches("x/file1.cls"));
        assert!(m("substr", "le3").matches("file3.txt"));
        assert!(m("wdskey", "file3").matches("file3.txt"));
        assert!(m("wdskey", "a/b.c").matches("/a/b.c.d"));
        assert!(!m("wdskey", "file3").matches("file33.txt"));
        assert!(m("regexp", r"^file[12]\.txt$").matches("file1.txt"));
        assert!(!m("regexp", r"^file[12]\.txt$").matches("file3.txt"));
        assert!(Matcher::parse("glob", "x").is_err());
        assert!(Matcher::parse("regexp", "(unclosed").is_err());
        assert!(Matcher::parse("regexp", &"a".repeat(MAX_PATTERN + 1)).is_err());
        // A pattern whose compiled form is huge is refused instead of eating the node's memory.
        assert!(Matcher::parse("regexp", r"\w{1000}\w{1000}\w{1000}").is_err());
        assert_eq!(wds_key("dir/x.tar.gz"), "dir/x.tar");
        assert_eq!(wds_key("dir.d/x"), "dir.d/x");
    }

    #[test]
    fn catastrophic_patterns_are_answered() {
        // (a+)+$ against "aaaa…b" takes exponential time in a backtracking engine (this test
        // would never end); the linear-time engine answers at once.
        let m = Matcher::parse("regexp", "(a+)+$").unwrap();
        let name = format!("{}b", "a".repeat(100_000));
        assert!(!m.matches(&name));
        assert!(m.matches("xaa"));
    }
}
