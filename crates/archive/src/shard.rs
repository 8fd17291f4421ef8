//! Finding and reading members inside input shards (`archpath`).
//!
//! Member names match exactly, except that one leading `/` is ignored on either side.
//! All readers are bounded: header sizes are checked against the data actually present,
//! decompressed output is capped by [`ScanLimits`], and nothing allocates in proportion to a
//! size field read from the shard.
use std::io::{Read, Seek};

use crate::ArchiveError;

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
}

impl TarIndex {
    /// Builds the index by reading headers sequentially and skipping payloads. `r` is the raw
    /// TAR bytes, `total_len` their length (used to detect truncation).
    pub fn build<R: Read + Seek>(r: R, total_len: u64, limits: &ScanLimits) -> Result<TarIndex, ArchiveError> {
        todo!("{} {total_len} {limits:?}", std::mem::size_of_val(&r))
    }

    /// Looks a member up by archpath (one leading `/` ignored on either side).
    pub fn lookup(&self, archpath: &str) -> Option<&Member> {
        todo!("{archpath} {}", self.members.len())
    }

    /// All members in archive order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// Scans a TAR stream (plain, or already decompressed by the caller via [`decoder`]) once, from
/// the start. For every member `select(name)` returns `Some(tag)` for a member of interest;
/// `visit(tag, &member, payload)` is then called with a reader limited to the payload, which it may
/// read fully, partly or not at all. The scan ends early when `select` reports `Done`.
pub fn scan_tar<R: Read>(
    r: R,
    limits: &ScanLimits,
    mut select: impl FnMut(&str) -> Select,
    mut visit: impl FnMut(usize, &Member, &mut dyn Read) -> Result<(), ArchiveError>,
) -> Result<(), ArchiveError> {
    let _ = (&mut select, &mut visit, limits, std::mem::size_of_val(&r));
    todo!()
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
pub fn decoder<'a, R: Read + 'a>(format: crate::Format, r: R, limits: &ScanLimits) -> Box<dyn Read + 'a> {
    todo!("{format:?} {} {limits:?}", std::mem::size_of_val(&r))
}

/// Maps an `io::Error` produced by a decoder or member reader back to the archive error it
/// stands for (limit exceeded, corrupt stream, or plain I/O).
pub fn into_archive_error(err: std::io::Error) -> ArchiveError {
    todo!("{err}")
}

/// The central directory of a ZIP shard, reusable across opens of the same file version.
#[derive(Debug, Clone, Default)]
pub struct ZipIndex {
    entries: Vec<ZipEntry>,
}

/// One file in a ZIP central directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    pub name: String,
    /// Uncompressed size.
    pub size: u64,
    pub compressed_size: u64,
    /// 0 = stored, 8 = deflate; others are rejected when opened.
    pub method: u16,
    pub crc32: u32,
    /// Offset of the local file header.
    pub header_offset: u64,
    pub is_dir: bool,
}

impl ZipIndex {
    /// Reads the central directory (zip64 aware). Bogus offsets/sizes → `Corrupt`.
    pub fn build<R: Read + Seek>(r: R, total_len: u64, limits: &ScanLimits) -> Result<ZipIndex, ArchiveError> {
        todo!("{} {total_len} {limits:?}", std::mem::size_of_val(&r))
    }

    /// Looks up a file (directories skipped) by archpath (one leading `/` ignored either side).
    pub fn lookup(&self, archpath: &str) -> Option<&ZipEntry> {
        todo!("{archpath} {}", self.entries.len())
    }

    /// All entries in directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }
}

/// Opens one ZIP member for reading its uncompressed bytes. The reader yields exactly
/// `entry.size` bytes or fails (truncated data, CRC mismatch, more output than declared).
pub fn open_zip_member<'a, R: Read + Seek + 'a>(r: R, entry: &ZipEntry) -> Result<Box<dyn Read + 'a>, ArchiveError> {
    todo!("{} {entry:?}", std::mem::size_of_val(&r))
}
