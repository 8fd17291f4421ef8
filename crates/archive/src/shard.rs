//! Finding and reading members inside input shards (`archpath`).
//!
//! Member names match exactly, except that one leading `/` is ignored on either side.
//! All readers are bounded: header sizes are checked against the data actually present,
//! decompressed output is capped by [`ScanLimits`], and nothing allocates in proportion to a
//! size field read from the shard.
use std::io::{Read, Seek};

use crate::ArchiveError;

mod names;
mod stream;
mod tarparse;
mod zipdir;

use names::NameIndex;
use tarparse::{SeekSource, Source, StreamSource};

/// Safety limits for reading untrusted shards.
#[derive(Debug, Clone, Copy)]
pub struct ScanLimits {
    /// Maximum decompressed bytes a single scan may produce (bomb guard).
    pub max_output_bytes: u64,
    /// Maximum number of members visited.
    pub max_members: u64,
    /// Maximum length of a member name (also of PAX/GNU long-name records).
    pub max_name_len: usize,
}

impl Default for ScanLimits {
    fn default() -> Self {
        ScanLimits {
            max_output_bytes: 64 << 30,
            max_members: 10_000_000,
            max_name_len: 64 << 10,
        }
    }
}

/// One member found in a shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Name as stored (after PAX/GNU long-name resolution).
    pub name: String,
    /// Payload size in bytes.
    pub size: u64,
    /// Byte offset of the payload inside the (uncompressed) TAR stream.
    pub data_offset: u64,
    /// A GNU sparse member (typeflag `S`, or PAX `GNU.sparse.*` records): its payload is a
    /// packed form of the file, not the file's bytes, so it must not be served as is.
    pub sparse: bool,
}

/// Canonical form of a name for matching: without one leading `/`.
pub fn match_key(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

/// Index of a plain TAR shard: every member (regular files and others) with its payload offset,
/// so a member can later be read with one positioned read. First occurrence of a name wins.
#[derive(Debug, Clone, Default)]
pub struct TarIndex {
    members: Vec<Member>,
    index: NameIndex,
}

impl TarIndex {
    /// Builds the index by reading headers sequentially and skipping payloads. `r` is the raw
    /// TAR bytes, `total_len` their length (used to detect truncation).
    ///
    /// Offsets are relative to the position `r` is at when passed in (normally its start).
    pub fn build<R: Read + Seek>(
        r: R,
        total_len: u64,
        limits: &ScanLimits,
    ) -> Result<TarIndex, ArchiveError> {
        let mut src = SeekSource::new(r, total_len);
        let mut members = Vec::new();
        while let Some(header) = tarparse::next_member(&mut src, limits)? {
            check_member_count(members.len() as u64, limits)?;
            src.skip_payload(header.size)?;
            members.push(header.into_member());
        }
        let index = NameIndex::build(&members, |m| Some(m.name.as_str()))?;
        Ok(TarIndex { members, index })
    }

    /// Looks a member up by archpath (one leading `/` ignored on either side).
    pub fn lookup(&self, archpath: &str) -> Option<&Member> {
        self.index
            .find(&self.members, archpath, |m| m.name.as_str())
    }

    /// All members in archive order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// Fails once `seen` members already reached the limit.
fn check_member_count(seen: u64, limits: &ScanLimits) -> Result<(), ArchiveError> {
    if seen >= limits.max_members {
        return Err(ArchiveError::Limit(format!(
            "more than {} members",
            limits.max_members
        )));
    }
    Ok(())
}

/// Scans a TAR stream (plain, or already decompressed by the caller via [`decoder`]) once, from
/// the start. For every member `select(name)` returns `Some(tag)` for a member of interest;
/// `visit(tag, &member, payload)` is then called with a reader limited to the payload, which it may
/// read fully, partly or not at all. The scan ends early when `select` reports `Done`.
///
/// Headers are read in 512-byte pieces, so a raw file should be passed buffered (the readers
/// returned by [`decoder`] are). A payload that ends early makes the visitor's reads fail with
/// an error that [`into_archive_error`] maps to [`ArchiveError::Corrupt`].
pub fn scan_tar<R: Read>(
    r: R,
    limits: &ScanLimits,
    mut select: impl FnMut(&str) -> Select,
    mut visit: impl FnMut(usize, &Member, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let mut src = StreamSource::new(r);
    let mut seen = 0u64;
    while let Some(header) = tarparse::next_member(&mut src, limits)? {
        check_member_count(seen, limits)?;
        seen += 1;
        let member = header.into_member();
        match select(&member.name) {
            Select::Done => return Ok(()),
            Select::Skip => src.skip_payload(member.size)?,
            Select::Take(tag) => {
                let mut payload = src.payload(member.size);
                visit(tag, &member, &mut payload)?;
                let unread = payload.unread();
                src.skip_payload_rest(member.size, unread)?;
            }
        }
    }
    Ok(())
}

/// Answer of the `select` callback of [`scan_tar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Not interested; skip the payload.
    Skip,
    /// Interested: call `visit` with this tag.
    Take(usize),
    /// Everything wanted was found; stop scanning.
    Done,
}

/// Wraps a compressed TAR container's raw bytes in its decompressor: `.tgz` → multi-member gzip,
/// `.tar.lz4` → LZ4 frame(s), `.tar` → as is. The output is capped at `limits.max_output_bytes`
/// (exceeding it yields [`ArchiveError::Limit`] via an `io::Error` of kind `Other`, see
/// [`into_archive_error`]). `.zip` is not a stream format: use [`ZipIndex`].
///
/// The returned reader is buffered, so it can go straight into [`scan_tar`]. For `.zip` it
/// fails on the first read with an error that maps to [`ArchiveError::Unrecognized`].
pub fn decoder<'a, R: Read + Send + 'a>(
    format: crate::Format,
    r: R,
    limits: &ScanLimits,
) -> Box<dyn Read + Send + 'a> {
    stream::decoder(format, r, limits.max_output_bytes)
}

/// Reads the rest of a [`decoder`] stream and discards it, so that the checks at the end of the
/// compressed data (gzip CRC-32 and length, LZ4 content checksum) run: call it after
/// [`scan_tar`] found what it wanted. Output stays capped by the decoder's limit.
pub fn drain(r: &mut dyn Read) -> Result<u64, ArchiveError> {
    stream::drain(r)
}

/// Maps an `io::Error` produced by a decoder or member reader back to the archive error it
/// stands for (limit exceeded, corrupt stream, or plain I/O).
pub fn into_archive_error(err: std::io::Error) -> ArchiveError {
    stream::into_archive_error(err)
}

/// The central directory of a ZIP shard, reusable across opens of the same file version.
#[derive(Debug, Clone, Default)]
pub struct ZipIndex {
    entries: Vec<ZipEntry>,
    index: NameIndex,
}

/// One file in a ZIP central directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Name as stored (UTF-8, or CP437 decoded when it is not valid UTF-8).
    pub name: String,
    /// Uncompressed size.
    pub size: u64,
    /// Size of the stored (compressed) data.
    pub compressed_size: u64,
    /// 0 = stored, 8 = deflate; others are rejected when opened.
    pub method: u16,
    /// CRC-32 of the uncompressed data.
    pub crc32: u32,
    /// Offset of the local file header.
    pub header_offset: u64,
    /// The entry is a directory (its name ends with `/`).
    pub is_dir: bool,
    /// The central directory flags the entry as encrypted.
    pub encrypted: bool,
}

impl ZipEntry {
    /// Whether the member can be read at all, as far as the central directory tells: method
    /// stored or deflate, not encrypted, consistent sizes. [`open_zip_member`] checks the same.
    pub fn check_supported(&self) -> Result<(), ArchiveError> {
        zipdir::check_supported(self)
    }
}

impl ZipIndex {
    /// Reads the central directory (zip64 aware). Bogus offsets/sizes → `Corrupt`.
    ///
    /// Offsets are absolute positions in `r`, which must span exactly `total_len` bytes.
    pub fn build<R: Read + Seek>(
        r: R,
        total_len: u64,
        limits: &ScanLimits,
    ) -> Result<ZipIndex, ArchiveError> {
        let entries = zipdir::read_central_directory(r, total_len, limits)?;
        let index = NameIndex::build(&entries, |e| (!e.is_dir).then_some(e.name.as_str()))?;
        Ok(ZipIndex { entries, index })
    }

    /// Looks up a file (directories skipped) by archpath (one leading `/` ignored either side).
    pub fn lookup(&self, archpath: &str) -> Option<&ZipEntry> {
        self.index
            .find(&self.entries, archpath, |e| e.name.as_str())
    }

    /// All entries in directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }
}

/// Opens one ZIP member for reading its uncompressed bytes. The reader yields exactly
/// `entry.size` bytes or fails (truncated data, CRC mismatch, more output than declared).
///
/// The checks run when the last byte is delivered, so even a reader that stops after exactly
/// `entry.size` bytes sees a mismatch as an error (mapped by [`into_archive_error`]).
pub fn open_zip_member<'a, R: Read + Seek + Send + 'a>(
    r: R,
    entry: &ZipEntry,
) -> Result<Box<dyn Read + Send + 'a>, ArchiveError> {
    zipdir::open_member(r, entry)
}
