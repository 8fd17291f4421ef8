//! Streaming archive writers for GetBatch output.
use std::io::{self, Write};

use crate::Format;

/// Writes an archive entry by entry onto a sink. Every entry is a regular file whose size is
/// declared up front; exactly `size` bytes must be written before `finish_entry`.
pub trait ArchiveWriter: Send {
    /// Starts a regular-file entry.
    fn start_entry(&mut self, name: &str, size: u64, mtime_secs: u64) -> io::Result<()>;
    /// Appends payload bytes of the current entry.
    fn write_data(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Ends the current entry (TAR padding; ZIP data descriptor).
    fn finish_entry(&mut self) -> io::Result<()>;
    /// Writes the trailer (TAR zero blocks, ZIP central directory, compressor end) and flushes.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// A writer for `format` over `out`: `.tar` plain; `.tgz` gzip level 1; `.tar.lz4` LZ4 frame
/// (256 KiB blocks, no block checksums, no content checksum); `.zip` deflate level 1 with data
/// descriptors (no seeking), zip64 where sizes need it.
pub fn new_writer<W: Write + Send + 'static>(format: Format, out: W) -> Box<dyn ArchiveWriter> {
    todo!("{format:?} {}", std::mem::size_of_val(&out))
}
