//! Streaming archive writers for GetBatch output: `.tar` (own framing from [`crate::tarfmt`]),
//! `.tgz` and `.tar.lz4` (the same TAR stream through a compressor) and `.zip` (the `zip`
//! crate in streaming mode: data descriptors, no seeking).
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use flate2::Compression;
use flate2::write::GzEncoder;
use lz4_flex::frame::{BlockSize, FrameEncoder, FrameInfo};
use zip::write::{SimpleFileOptions, StreamWriter};
use zip::{CompressionMethod, DateTime, ZipWriter};

use crate::Format;
use crate::tarfmt;

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
    match format {
        Format::Tar => Box::new(TarWriter::new(Plain(out))),
        Format::Tgz => Box::new(TarWriter::new(GzEncoder::new(out, Compression::fast()))),
        Format::TarLz4 => {
            let info = FrameInfo::new()
                .block_size(BlockSize::Max256KB)
                .block_checksums(false)
                .content_checksum(false);
            Box::new(TarWriter::new(FrameEncoder::with_frame_info(info, out)))
        }
        Format::Zip => Box::new(ZipOut::new(out)),
    }
}

/// Declared-size bookkeeping shared by both writer kinds.
#[derive(Debug, Default)]
struct EntryState {
    /// An entry is started and not yet finished.
    open: bool,
    /// Payload bytes still owed by the current entry.
    remaining: u64,
}

impl EntryState {
    fn start(&mut self, size: u64) -> io::Result<()> {
        if self.open {
            return Err(invalid("previous entry not finished"));
        }
        self.open = true;
        self.remaining = size;
        Ok(())
    }

    fn consume(&mut self, len: usize) -> io::Result<()> {
        if !self.open {
            return Err(invalid("no entry started"));
        }
        let len = len as u64;
        if len > self.remaining {
            return Err(invalid("entry data exceeds its declared size"));
        }
        self.remaining -= len;
        Ok(())
    }

    fn finish(&mut self) -> io::Result<()> {
        if !self.open {
            return Err(invalid("no entry started"));
        }
        if self.remaining != 0 {
            let msg = format!(
                "entry is {} bytes short of its declared size",
                self.remaining
            );
            return Err(invalid(&msg));
        }
        self.open = false;
        Ok(())
    }

    fn check_closed(&self) -> io::Result<()> {
        if self.open {
            return Err(invalid("archive finished inside an unfinished entry"));
        }
        Ok(())
    }
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.to_string())
}

/// The byte sink under a TAR stream: plain, or a compressor that must be finalized.
trait TarSink: Write + Send {
    /// Ends the stream (compressor trailer) and flushes everything to the caller's sink.
    fn close(self) -> io::Result<()>;
}

/// Uncompressed sink; forwards `write_all` so the caller's buffering is used as is.
struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> TarSink for Plain<W> {
    fn close(mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write + Send> TarSink for GzEncoder<W> {
    fn close(self) -> io::Result<()> {
        self.finish()?.flush()
    }
}

impl<W: Write + Send> TarSink for FrameEncoder<W> {
    fn close(self) -> io::Result<()> {
        self.finish().map_err(io::Error::from)?.flush()
    }
}

/// TAR stream writer. The padding of an entry is held back and written together with the
/// next header (or the trailer), so each entry costs two sink writes: header, payload.
struct TarWriter<S> {
    sink: S,
    /// Reused buffer for padding + header bytes.
    hdr: Vec<u8>,
    /// Padding owed by the last finished entry.
    pad: usize,
    state: EntryState,
}

impl<S: TarSink> TarWriter<S> {
    fn new(sink: S) -> Self {
        TarWriter {
            sink,
            hdr: Vec::with_capacity(4 * tarfmt::BLOCK),
            pad: 0,
            state: EntryState::default(),
        }
    }

    /// Starts `hdr` with the padding still owed.
    fn take_padding(&mut self) {
        self.hdr.clear();
        self.hdr.resize(self.pad, 0);
        self.pad = 0;
    }
}

impl<S: TarSink> ArchiveWriter for TarWriter<S> {
    fn start_entry(&mut self, name: &str, size: u64, mtime_secs: u64) -> io::Result<()> {
        self.state.start(size)?;
        self.take_padding();
        tarfmt::push_file_header(&mut self.hdr, name, size, mtime_secs);
        self.sink.write_all(&self.hdr)?;
        self.pad = tarfmt::padding(size);
        Ok(())
    }

    fn write_data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.state.consume(buf.len())?;
        self.sink.write_all(buf)
    }

    fn finish_entry(&mut self) -> io::Result<()> {
        self.state.finish()
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.state.check_closed()?;
        self.take_padding();
        self.hdr.extend_from_slice(&tarfmt::TRAILER);
        self.sink.write_all(&self.hdr)?;
        self.sink.close()
    }
}

/// Declared sizes from here on get zip64 fields. Deflate can expand incompressible data
/// slightly, and the `zip` crate refuses to emit zip64 sizes for an entry not flagged as large
/// up front, so the margin keeps a near-4-GiB entry from failing after it was streamed.
const ZIP64_FROM: u64 = u32::MAX as u64 - (64 << 20);

/// Earliest and latest instants a DOS timestamp can hold (1980-01-01, 2107-12-31 23:59:58).
const DOS_MIN_SECS: u64 = 315_532_800;
const DOS_MAX_SECS: u64 = 4_354_819_198;

/// ZIP stream writer over the `zip` crate's non-seeking mode.
struct ZipOut<W: Write> {
    /// `None` once finished.
    zip: Option<ZipWriter<StreamWriter<Fuse<W>>>>,
    /// Shared with the [`Fuse`] under the crate's writer.
    discard: Arc<AtomicBool>,
    state: EntryState,
}

impl<W: Write + Send> ZipOut<W> {
    fn new(out: W) -> Self {
        let discard = Arc::new(AtomicBool::new(false));
        let fuse = Fuse {
            inner: out,
            discard: Arc::clone(&discard),
        };
        ZipOut {
            zip: Some(ZipWriter::new_stream(fuse)),
            discard,
            state: EntryState::default(),
        }
    }

    fn zip(&mut self) -> io::Result<&mut ZipWriter<StreamWriter<Fuse<W>>>> {
        self.zip
            .as_mut()
            .ok_or_else(|| invalid("zip archive already finished"))
    }
}

impl<W: Write> Drop for ZipOut<W> {
    fn drop(&mut self) {
        // `ZipWriter`'s own drop finalizes the archive and reports failures on stderr. An
        // unfinished writer is dropped on error or cancellation, when a central directory is
        // unwanted and the sink may be gone, so its output goes nowhere instead.
        self.discard.store(true, Ordering::Relaxed);
    }
}

/// Passes writes through until told to discard them.
struct Fuse<W> {
    inner: W,
    discard: Arc<AtomicBool>,
}

impl<W: Write> Write for Fuse<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.discard.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        self.inner.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if self.discard.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.discard.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.inner.flush()
    }
}

impl<W: Write + Send> ArchiveWriter for ZipOut<W> {
    fn start_entry(&mut self, name: &str, size: u64, mtime_secs: u64) -> io::Result<()> {
        self.state.start(size)?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(1))
            .unix_permissions(0o644)
            .last_modified_time(dos_time(mtime_secs))
            .large_file(size >= ZIP64_FROM);
        let started = self
            .zip()?
            .start_file(name, options)
            .map_err(io::Error::from);
        if started.is_err() {
            // The entry never began, so the caller may go on with another one.
            self.state = EntryState::default();
        }
        started
    }

    fn write_data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.state.consume(buf.len())?;
        self.zip()?.write_all(buf)
    }

    fn finish_entry(&mut self) -> io::Result<()> {
        // The crate writes the data descriptor when the next entry starts or at `finish`; the
        // bytes on the wire are the same.
        self.state.finish()
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.state.check_closed()?;
        let zip = self
            .zip
            .take()
            .ok_or_else(|| invalid("zip archive already finished"))?;
        zip.finish()
            .map_err(io::Error::from)?
            .into_inner()
            .inner
            .flush()
    }
}

/// Unix seconds → DOS date/time (UTC), clamped to the range DOS can represent.
fn dos_time(secs: u64) -> DateTime {
    let secs = secs.clamp(DOS_MIN_SECS, DOS_MAX_SECS);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let tod = secs % 86_400;
    let (hour, minute, second) = (tod / 3600, tod / 60 % 60, tod % 60);
    // Every value is in range after the clamp; the fallback only guards against surprises.
    DateTime::from_date_and_time(
        year as u16,
        month as u8,
        day as u8,
        hour as u8,
        minute as u8,
        second as u8,
    )
    .unwrap_or_default()
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A sink the test can inspect after the writer consumed it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>, Arc<Mutex<usize>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            *self.1.lock().unwrap() += 1;
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(DOS_MIN_SECS as i64 / 86_400), (1980, 1, 1));
        assert_eq!(
            civil_from_days(DOS_MAX_SECS as i64 / 86_400),
            (2107, 12, 31)
        );
    }

    #[test]
    fn dos_time_clamps() {
        let t = dos_time(0);
        assert_eq!((t.year(), t.month(), t.day()), (1980, 1, 1));
        let t = dos_time(u64::MAX);
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.minute()),
            (2107, 12, 31, 23, 59)
        );
        let t = dos_time(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!((t.year(), t.month(), t.day()), (2023, 11, 14));
        assert_eq!((t.hour(), t.minute(), t.second()), (22, 13, 20));
    }

    #[test]
    fn tar_writes_two_chunks_per_entry() {
        let sink = Shared::default();
        let mut w = new_writer(Format::Tar, sink.clone());
        for i in 0..10u8 {
            w.start_entry(&format!("f{i}"), 700, 0).unwrap();
            w.write_data(&[i; 700]).unwrap();
            w.finish_entry().unwrap();
        }
        w.finish().unwrap();
        // 10 × (header, data) + trailer.
        assert_eq!(*sink.1.lock().unwrap(), 21);
        let bytes = sink.0.lock().unwrap();
        assert_eq!(bytes.len(), 10 * (512 + 1024) + 1024);
        assert!(bytes[bytes.len() - 1024..].iter().all(|&b| b == 0));
    }

    #[test]
    fn size_is_enforced() {
        for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
            let mut w = new_writer(format, io::sink());
            w.start_entry("a", 3, 0).unwrap();
            let err = w.write_data(b"abcd").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{format:?}");
            w.write_data(b"ab").unwrap();
            let err = w.finish_entry().unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{format:?}");
            assert!(err.to_string().contains("1 bytes short"), "{err}");
            assert_eq!(
                w.start_entry("b", 0, 0).unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            w.write_data(b"c").unwrap();
            w.finish_entry().unwrap();
            assert_eq!(
                w.finish_entry().unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            assert_eq!(
                w.write_data(b"x").unwrap_err().kind(),
                io::ErrorKind::InvalidInput
            );
            w.finish().unwrap();
        }
    }

    #[test]
    fn finish_inside_entry_fails() {
        for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
            let mut w = new_writer(format, io::sink());
            w.start_entry("a", 1, 0).unwrap();
            assert_eq!(w.finish().unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn empty_archives() {
        let sink = Shared::default();
        new_writer(Format::Tar, sink.clone()).finish().unwrap();
        assert_eq!(*sink.0.lock().unwrap(), vec![0u8; 1024]);
        for format in [Format::Tgz, Format::TarLz4, Format::Zip] {
            let sink = Shared::default();
            new_writer(format, sink.clone()).finish().unwrap();
            let bytes = sink.0.lock().unwrap();
            assert_eq!(Format::sniff(&bytes), Some(format));
        }
    }
}
