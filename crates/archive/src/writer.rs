//! Streaming archive writers for GetBatch output: `.tar` (own framing from [`crate::tarfmt`]),
//! `.tgz` and `.tar.lz4` (the same TAR stream through a compressor) and `.zip` (own streaming
//! framing: data descriptors, no seeking, zip64 where needed, repeated names allowed).
use std::io::{self, Write};

use flate2::write::GzEncoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use lz4_flex::frame::{BlockSize, FrameEncoder, FrameInfo};

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

/// Declared sizes from here on make an entry zip64: zip64 extra fields and 8-byte sizes in its
/// data descriptor. The choice is made in the local header, before the compressed size is
/// known, so it must hold for the worst case: deflate level 1 of zlib-rs codes every block
/// with the fixed Huffman table, where literals cost 8 or 9 bits, so incompressible data grows
/// by about 5.5% (random bytes) and at most by 12.5% (only bytes 144..=255, no matches).
/// 3.5 GiB × 1.125 stays 64 MiB below 4 GiB.
const ZIP64_FROM: u64 = 7 << 29;

/// Earliest and latest instants a DOS timestamp can hold (1980-01-01, 2107-12-31 23:59:58).
const DOS_MIN_SECS: u64 = 315_532_800;
const DOS_MAX_SECS: u64 = 4_354_819_198;

const LOCAL_SIG: u32 = 0x0403_4b50;
const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
/// Fixed part of a central directory record.
const CENTRAL_LEN: usize = 46;
/// A 32-bit size or offset field holding this defers to the zip64 extra field.
const SATURATED32: u32 = u32::MAX;
/// A 16-bit entry count holding this defers to the zip64 end record.
const SATURATED16: u16 = u16::MAX;
/// "Version needed to extract": 2.0 (deflate) or 4.5 (zip64).
const VERSION_DEFLATE: u16 = 20;
const VERSION_ZIP64: u16 = 45;
/// "Version made by": UNIX (3) in the high byte, so readers apply the mode bits.
const MADE_BY: u16 = (3 << 8) | VERSION_ZIP64;
/// General-purpose flags: bit 3 (CRC and sizes follow the data in a descriptor), bit 11 (the
/// name is UTF-8).
const FLAGS: u16 = (1 << 3) | (1 << 11);
const METHOD_DEFLATE: u16 = 8;
/// Regular file with mode 0644 (`S_IFREG | 0644` in the high 16 bits).
const EXTERNAL_ATTRS: u32 = 0o100_644 << 16;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// Extended timestamp ("UT"): a flags byte (bit 0: mtime present) and 32-bit Unix seconds.
const TIMESTAMP_EXTRA_ID: u16 = 0x5455;
const TIMESTAMP_EXTRA_LEN: u16 = 5;
/// Deflate output buffer: compressed bytes go to the sink whenever deflate produces some.
const DEFLATE_OUT: usize = 64 << 10;
/// The central directory goes to the sink in pieces of this size.
const CENTRAL_CHUNK: usize = 256 << 10;

/// From which values the zip64 forms are used. Always [`Zip64Limits::FORMAT`] except in tests,
/// which lower them to exercise the zip64 layout on small archives (a saturated field whose
/// value would fit is still valid ZIP: readers take the value from the zip64 record).
#[derive(Debug, Clone, Copy)]
struct Zip64Limits {
    /// Declared entry size from which an entry is zip64.
    size: u64,
    /// Offsets and directory sizes from which the 32-bit field is saturated.
    offset: u64,
    /// Entry count from which the 16-bit end record fields are saturated.
    entries: u64,
}

impl Zip64Limits {
    const FORMAT: Zip64Limits = Zip64Limits {
        size: ZIP64_FROM,
        offset: SATURATED32 as u64,
        entries: SATURATED16 as u64,
    };
}

/// The entry being written.
#[derive(Debug, Default)]
struct CurrentEntry {
    /// Offset of its local header.
    header_offset: u64,
    /// Declared (uncompressed) size.
    size: u64,
    /// Compressed bytes written so far.
    compressed: u64,
    /// Sizes in zip64 form: local zip64 extra, 8-byte descriptor sizes, saturated central sizes.
    zip64: bool,
    /// The central record saturates the local header offset.
    offset64: bool,
    dos_time: u16,
    dos_date: u16,
    /// Seconds for the extended timestamp field (left out past 2038, where readers disagree
    /// on signedness).
    mtime: Option<u32>,
}

impl CurrentEntry {
    fn version_needed(&self) -> u16 {
        if self.zip64 || self.offset64 {
            VERSION_ZIP64
        } else {
            VERSION_DEFLATE
        }
    }

    fn timestamp_extra(&self, buf: &mut Vec<u8>) {
        if let Some(mtime) = self.mtime {
            put16(buf, TIMESTAMP_EXTRA_ID);
            put16(buf, TIMESTAMP_EXTRA_LEN);
            buf.push(1);
            put32(buf, mtime);
        }
    }

    fn timestamp_extra_len(&self) -> u16 {
        if self.mtime.is_some() {
            4 + TIMESTAMP_EXTRA_LEN
        } else {
            0
        }
    }
}

/// Streaming ZIP writer onto a plain `Write`: each entry is a local header (flag bit 3: CRC and
/// sizes follow the data), raw deflate level 1 passed through as it is produced, and a data
/// descriptor; the central directory is kept in memory as the serialized records (the only
/// per-entry state) and written by `finish`, followed by the end records. Entries are
/// independent, so names may repeat.
struct ZipOut<W> {
    sink: W,
    /// Bytes written to `sink` so far: the offset of whatever comes next.
    offset: u64,
    deflate: Compress,
    crc: Crc,
    /// Deflate output buffer.
    out: Box<[u8]>,
    /// Scratch for local headers and data descriptors.
    scratch: Vec<u8>,
    /// Name of the current entry, copied into its central record at `finish_entry`.
    name: Vec<u8>,
    entry: CurrentEntry,
    /// Central directory records of the finished entries.
    central: Vec<u8>,
    entries: u64,
    limits: Zip64Limits,
    state: EntryState,
    /// A sink write failed: the archive is broken and every further call fails.
    failed: bool,
}

impl<W: Write + Send> ZipOut<W> {
    fn new(out: W) -> Self {
        Self::with_limits(out, Zip64Limits::FORMAT)
    }

    fn with_limits(out: W, limits: Zip64Limits) -> Self {
        ZipOut {
            sink: out,
            offset: 0,
            deflate: Compress::new(Compression::fast(), false),
            crc: Crc::new(),
            out: vec![0; DEFLATE_OUT].into_boxed_slice(),
            scratch: Vec::with_capacity(512),
            name: Vec::new(),
            entry: CurrentEntry::default(),
            central: Vec::new(),
            entries: 0,
            limits,
            state: EntryState::default(),
            failed: false,
        }
    }

    fn check_usable(&self) -> io::Result<()> {
        if self.failed {
            return Err(io::Error::other(
                "zip archive is broken by an earlier write error",
            ));
        }
        Ok(())
    }

    /// Marks the archive broken when a sink-side step failed.
    fn track<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.sink.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    /// Writes `scratch` to the sink.
    fn emit_scratch(&mut self) -> io::Result<()> {
        self.sink.write_all(&self.scratch)?;
        self.offset += self.scratch.len() as u64;
        Ok(())
    }

    /// Feeds `input` to deflate and passes on whatever it produces; with `Finish`, until the
    /// end of the deflate stream.
    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            let (in_before, out_before) = (self.deflate.total_in(), self.deflate.total_out());
            let status = self
                .deflate
                .compress(input, &mut self.out, flush)
                .map_err(io::Error::other)?;
            let consumed = (self.deflate.total_in() - in_before) as usize;
            let produced = (self.deflate.total_out() - out_before) as usize;
            input = &input[consumed..];
            if produced > 0 {
                self.sink.write_all(&self.out[..produced])?;
                self.offset += produced as u64;
                self.entry.compressed += produced as u64;
            }
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => input.is_empty(),
            };
            if done {
                return Ok(());
            }
            if consumed == 0 && produced == 0 {
                return Err(io::Error::other("deflate made no progress"));
            }
        }
    }

    /// Local header of `self.entry` named `self.name` into `scratch`.
    fn local_header(&mut self) {
        let e = &self.entry;
        let zip64_extra_len: u16 = if e.zip64 { 4 + 16 } else { 0 };
        let b = &mut self.scratch;
        b.clear();
        put32(b, LOCAL_SIG);
        put16(b, e.version_needed());
        put16(b, FLAGS);
        put16(b, METHOD_DEFLATE);
        put16(b, e.dos_time);
        put16(b, e.dos_date);
        // CRC and sizes are in the data descriptor; zip64 marks its sizes as being elsewhere.
        put32(b, 0);
        let sizes = if e.zip64 { SATURATED32 } else { 0 };
        put32(b, sizes);
        put32(b, sizes);
        put16(b, self.name.len() as u16);
        put16(b, zip64_extra_len + e.timestamp_extra_len());
        b.extend_from_slice(&self.name);
        if e.zip64 {
            // Both sizes, zero here like the 32-bit ones: the descriptor has the real values.
            put16(b, ZIP64_EXTRA_ID);
            put16(b, 16);
            put64(b, 0);
            put64(b, 0);
        }
        e.timestamp_extra(b);
    }

    /// Ends the deflate stream, writes the data descriptor and records the central entry.
    fn end_entry(&mut self) -> io::Result<()> {
        self.deflate(&[], FlushCompress::Finish)?;
        self.deflate.reset();
        let crc = self.crc.sum();
        let e = &self.entry;
        if !e.zip64 && e.compressed >= u64::from(SATURATED32) {
            return Err(io::Error::other(format!(
                "entry of {} bytes compressed to {} bytes, too many for a non-zip64 entry",
                e.size, e.compressed
            )));
        }

        let b = &mut self.scratch;
        b.clear();
        put32(b, DESCRIPTOR_SIG);
        put32(b, crc);
        if e.zip64 {
            put64(b, e.compressed);
            put64(b, e.size);
        } else {
            put32(b, e.compressed as u32);
            put32(b, e.size as u32);
        }

        // Values in the zip64 extra follow the order of their saturated 32-bit fields.
        let mut zip64 = [0u64; 3];
        let mut n64 = 0;
        if e.zip64 {
            zip64[0] = e.size;
            zip64[1] = e.compressed;
            n64 = 2;
        }
        if e.offset64 {
            zip64[n64] = e.header_offset;
            n64 += 1;
        }
        let zip64_extra_len = if n64 > 0 { 4 + 8 * n64 as u16 } else { 0 };
        let extra_len = zip64_extra_len + e.timestamp_extra_len();
        let c = &mut self.central;
        let record_at = c.len();
        put32(c, CENTRAL_SIG);
        put16(c, MADE_BY);
        put16(c, e.version_needed());
        put16(c, FLAGS);
        put16(c, METHOD_DEFLATE);
        put16(c, e.dos_time);
        put16(c, e.dos_date);
        put32(c, crc);
        let (compressed, size) = if e.zip64 {
            (SATURATED32, SATURATED32)
        } else {
            (e.compressed as u32, e.size as u32)
        };
        put32(c, compressed);
        put32(c, size);
        put16(c, self.name.len() as u16);
        put16(c, extra_len);
        put16(c, 0); // comment length
        put16(c, 0); // disk number
        put16(c, 0); // internal attributes
        put32(c, EXTERNAL_ATTRS);
        put32(
            c,
            if e.offset64 {
                SATURATED32
            } else {
                e.header_offset as u32
            },
        );
        c.extend_from_slice(&self.name);
        if n64 > 0 {
            put16(c, ZIP64_EXTRA_ID);
            put16(c, 8 * n64 as u16);
            for v in &zip64[..n64] {
                put64(c, *v);
            }
        }
        e.timestamp_extra(c);
        debug_assert_eq!(
            c.len() - record_at,
            CENTRAL_LEN + self.name.len() + usize::from(extra_len)
        );
        self.entries += 1;
        self.emit_scratch()
    }

    /// Writes the central directory and the end records, then flushes.
    fn write_directory(&mut self) -> io::Result<()> {
        let cd_offset = self.offset;
        let central = std::mem::take(&mut self.central);
        for chunk in central.chunks(CENTRAL_CHUNK) {
            self.emit(chunk)?;
        }
        let cd_size = central.len() as u64;
        drop(central);

        let limits = self.limits;
        let entries = self.entries;
        let many = entries >= limits.entries;
        let cd_size64 = cd_size >= limits.offset;
        let cd_offset64 = cd_offset >= limits.offset;
        let b = &mut self.scratch;
        b.clear();
        if many || cd_size64 || cd_offset64 {
            let record_at = self.offset;
            put32(b, EOCD64_SIG);
            put64(b, 44); // size of the rest of the record
            put16(b, MADE_BY);
            put16(b, VERSION_ZIP64);
            put32(b, 0); // this disk
            put32(b, 0); // disk with the directory
            put64(b, entries);
            put64(b, entries);
            put64(b, cd_size);
            put64(b, cd_offset);
            put32(b, LOCATOR_SIG);
            put32(b, 0); // disk with the zip64 end record
            put64(b, record_at);
            put32(b, 1); // total disks
        }
        let count = if many { SATURATED16 } else { entries as u16 };
        put32(b, EOCD_SIG);
        put16(b, 0); // this disk
        put16(b, 0); // disk with the directory
        put16(b, count);
        put16(b, count);
        put32(
            b,
            if cd_size64 {
                SATURATED32
            } else {
                cd_size as u32
            },
        );
        put32(
            b,
            if cd_offset64 {
                SATURATED32
            } else {
                cd_offset as u32
            },
        );
        put16(b, 0); // comment length
        self.emit_scratch()?;
        self.sink.flush()
    }
}

impl<W: Write + Send> ArchiveWriter for ZipOut<W> {
    fn start_entry(&mut self, name: &str, size: u64, mtime_secs: u64) -> io::Result<()> {
        self.check_usable()?;
        if name.len() > usize::from(u16::MAX) {
            return Err(invalid("zip entry names are limited to 65535 bytes"));
        }
        self.state.start(size)?;
        let (dos_time, dos_date) = dos_time(mtime_secs);
        self.entry = CurrentEntry {
            header_offset: self.offset,
            size,
            compressed: 0,
            zip64: size >= self.limits.size,
            offset64: self.offset >= self.limits.offset,
            dos_time,
            dos_date,
            mtime: u32::try_from(mtime_secs)
                .ok()
                .filter(|&t| t <= i32::MAX as u32),
        };
        self.name.clear();
        self.name.extend_from_slice(name.as_bytes());
        self.crc.reset();
        self.local_header();
        let written = self.emit_scratch();
        self.track(written)
    }

    fn write_data(&mut self, buf: &[u8]) -> io::Result<()> {
        self.check_usable()?;
        self.state.consume(buf.len())?;
        if buf.is_empty() {
            return Ok(());
        }
        self.crc.update(buf);
        let written = self.deflate(buf, FlushCompress::None);
        self.track(written)
    }

    fn finish_entry(&mut self) -> io::Result<()> {
        self.check_usable()?;
        self.state.finish()?;
        let written = self.end_entry();
        self.track(written)
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.check_usable()?;
        self.state.check_closed()?;
        self.write_directory()
    }
}

fn put16(buf: &mut Vec<u8>, v: u16) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put64(buf: &mut Vec<u8>, v: u64) {
    buf.extend_from_slice(&v.to_le_bytes());
}

/// Unix seconds → DOS `(time, date)` fields (UTC), clamped to the range DOS can represent.
/// Seconds are stored halved, so odd seconds round down.
fn dos_time(secs: u64) -> (u16, u16) {
    let secs = secs.clamp(DOS_MIN_SECS, DOS_MAX_SECS);
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let tod = (secs % 86_400) as u32;
    let (hour, minute, second) = (tod / 3600, tod / 60 % 60, tod % 60);
    let time = (hour << 11) | (minute << 5) | (second / 2);
    // 1980..=2107 after the clamp, so the year offset fits its 7 bits.
    let date = ((year - 1980) as u32) << 9 | (month << 5) | day;
    (time as u16, date as u16)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`). Archive headers, HTTP dates and listings share it.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

    /// `(year, month, day, hour, minute, second)` of DOS `(time, date)` fields.
    fn dos_fields((time, date): (u16, u16)) -> (u16, u16, u16, u16, u16, u16) {
        (
            1980 + (date >> 9),
            (date >> 5) & 0xf,
            date & 0x1f,
            time >> 11,
            (time >> 5) & 0x3f,
            (time & 0x1f) * 2,
        )
    }

    #[test]
    fn dos_time_clamps() {
        assert_eq!(dos_fields(dos_time(0)), (1980, 1, 1, 0, 0, 0));
        assert_eq!(dos_fields(dos_time(u64::MAX)), (2107, 12, 31, 23, 59, 58));
        // 2023-11-14 22:13:20 UTC; odd seconds round down.
        assert_eq!(
            dos_fields(dos_time(1_700_000_000)),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(
            dos_fields(dos_time(1_700_000_001)),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(dos_fields(dos_time(951_782_399)), (2000, 2, 28, 23, 59, 58));
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

    fn le16(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn le64(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    /// `(id, data)` of each extra field.
    fn extra_fields(mut extra: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while !extra.is_empty() {
            let len = usize::from(le16(extra, 2));
            out.push((le16(extra, 0), extra[4..4 + len].to_vec()));
            extra = &extra[4 + len..];
        }
        out
    }

    /// What the end records say.
    #[derive(Debug, PartialEq, Eq)]
    struct End {
        entries: u64,
        cd_size: u64,
        cd_offset: u64,
        zip64: bool,
    }

    /// Walks a ZIP written by [`ZipOut`] front to back and checks every record against the
    /// central directory as this crate's reader sees it: local header, data, data descriptor per
    /// entry, back to back, then the central directory and the end records.
    fn walk(zip: &[u8], mtimes: &[u64]) -> End {
        use crate::shard::{ScanLimits, ZipIndex};
        let idx = ZipIndex::build(
            io::Cursor::new(zip),
            zip.len() as u64,
            &ScanLimits::default(),
        )
        .unwrap();
        assert_eq!(idx.entries().len(), mtimes.len());
        let mut at = 0;
        let mut local_zip64 = Vec::new();
        for (e, &mtime) in idx.entries().iter().zip(mtimes) {
            assert_eq!(
                e.header_offset, at as u64,
                "{}: entries are back to back",
                e.name
            );
            assert_eq!(le32(zip, at), LOCAL_SIG);
            assert_eq!(le16(zip, at + 6), FLAGS);
            assert_eq!(le16(zip, at + 8), METHOD_DEFLATE);
            assert_eq!((le16(zip, at + 10), le16(zip, at + 12)), dos_time(mtime));
            assert_eq!(le32(zip, at + 14), 0, "CRC is in the descriptor");
            let (name_len, extra_len) = (
                usize::from(le16(zip, at + 26)),
                usize::from(le16(zip, at + 28)),
            );
            assert_eq!(&zip[at + 30..at + 30 + name_len], e.name.as_bytes());
            let extra = extra_fields(&zip[at + 30 + name_len..at + 30 + name_len + extra_len]);
            let zip64 = extra.iter().any(|(id, _)| *id == ZIP64_EXTRA_ID);
            local_zip64.push(zip64);
            if zip64 {
                assert_eq!(le16(zip, at + 4), VERSION_ZIP64);
                assert_eq!(
                    (le32(zip, at + 18), le32(zip, at + 22)),
                    (u32::MAX, u32::MAX)
                );
                assert_eq!(extra[0], (ZIP64_EXTRA_ID, vec![0; 16]));
            } else {
                assert_eq!((le32(zip, at + 18), le32(zip, at + 22)), (0, 0));
            }
            let timestamp = extra.iter().find(|(id, _)| *id == TIMESTAMP_EXTRA_ID);
            check_timestamp(timestamp, mtime);

            at += 30 + name_len + extra_len + e.compressed_size as usize;
            assert_eq!(le32(zip, at), DESCRIPTOR_SIG);
            assert_eq!(le32(zip, at + 4), e.crc32);
            if zip64 {
                assert_eq!(
                    (le64(zip, at + 8), le64(zip, at + 16)),
                    (e.compressed_size, e.size)
                );
                at += 24;
            } else {
                let sizes = (u64::from(le32(zip, at + 8)), u64::from(le32(zip, at + 12)));
                assert_eq!(sizes, (e.compressed_size, e.size));
                at += 16;
            }
        }

        let cd_offset = at;
        for ((e, &mtime), zip64) in idx.entries().iter().zip(mtimes).zip(local_zip64) {
            assert_eq!(le32(zip, at), CENTRAL_SIG);
            assert_eq!(le16(zip, at + 4), MADE_BY);
            assert_eq!(le16(zip, at + 8), FLAGS);
            assert_eq!(le32(zip, at + 38), EXTERNAL_ATTRS);
            let (name_len, extra_len) = (
                usize::from(le16(zip, at + 28)),
                usize::from(le16(zip, at + 30)),
            );
            assert_eq!(le16(zip, at + 32), 0, "no comment");
            let extra = extra_fields(&zip[at + 46 + name_len..at + 46 + name_len + extra_len]);
            let offset64 = le32(zip, at + 42) == u32::MAX;
            let mut want64 = Vec::new();
            if zip64 {
                assert_eq!(
                    (le32(zip, at + 20), le32(zip, at + 24)),
                    (u32::MAX, u32::MAX)
                );
                want64.extend_from_slice(&e.size.to_le_bytes());
                want64.extend_from_slice(&e.compressed_size.to_le_bytes());
            }
            if offset64 {
                want64.extend_from_slice(&e.header_offset.to_le_bytes());
            }
            let got64 = extra.iter().find(|(id, _)| *id == ZIP64_EXTRA_ID);
            assert_eq!(
                got64.map(|(_, d)| d.clone()),
                (!want64.is_empty()).then_some(want64)
            );
            let version = if zip64 || offset64 {
                VERSION_ZIP64
            } else {
                VERSION_DEFLATE
            };
            assert_eq!(le16(zip, at + 6), version);
            check_timestamp(
                extra.iter().find(|(id, _)| *id == TIMESTAMP_EXTRA_ID),
                mtime,
            );
            at += 46 + name_len + extra_len;
        }

        let cd_size = at - cd_offset;
        let zip64 = le32(zip, at) == EOCD64_SIG;
        let eocd_at = if zip64 { at + 56 + 20 } else { at };
        assert_eq!(eocd_at + 22, zip.len(), "EOCD ends the archive");
        assert_eq!(le32(zip, eocd_at), EOCD_SIG);
        let end = End {
            entries: u64::from(le16(zip, eocd_at + 10)),
            cd_size: u64::from(le32(zip, eocd_at + 12)),
            cd_offset: u64::from(le32(zip, eocd_at + 16)),
            zip64,
        };
        if zip64 {
            assert_eq!(le64(zip, at + 4), 44);
            assert_eq!(le64(zip, at + 24), le64(zip, at + 32));
            assert_eq!(le64(zip, at + 24), mtimes.len() as u64);
            assert_eq!(le64(zip, at + 40), cd_size as u64);
            assert_eq!(le64(zip, at + 48), cd_offset as u64);
            assert_eq!(le32(zip, at + 56), LOCATOR_SIG);
            assert_eq!(le64(zip, at + 64), at as u64);
            assert_eq!(le32(zip, at + 72), 1);
        } else {
            let want = (mtimes.len() as u64, cd_size as u64, cd_offset as u64);
            assert_eq!((end.entries, end.cd_size, end.cd_offset), want);
        }
        end
    }

    fn check_timestamp(field: Option<&(u16, Vec<u8>)>, mtime: u64) {
        match u32::try_from(mtime).ok().filter(|&t| t <= i32::MAX as u32) {
            Some(t) => {
                let mut want = vec![1];
                want.extend_from_slice(&t.to_le_bytes());
                assert_eq!(field.map(|(_, d)| d.clone()), Some(want));
            }
            None => assert!(field.is_none(), "no extended timestamp past 2038"),
        }
    }

    /// Pseudo-random bytes (incompressible).
    fn noise(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    /// Writes `(name, data, mtime)` entries through a [`ZipOut`] with `limits`.
    fn write_zip(limits: Zip64Limits, entries: &[(&str, Vec<u8>, u64)]) -> Vec<u8> {
        let sink = Shared::default();
        let mut w: Box<dyn ArchiveWriter> = Box::new(ZipOut::with_limits(sink.clone(), limits));
        for (name, data, mtime) in entries {
            w.start_entry(name, data.len() as u64, *mtime).unwrap();
            for chunk in data.chunks(10_000) {
                w.write_data(chunk).unwrap();
            }
            w.finish_entry().unwrap();
        }
        w.finish().unwrap();
        sink.0.lock().unwrap().clone()
    }

    fn sample_zip_entries() -> Vec<(&'static str, Vec<u8>, u64)> {
        vec![
            ("a.txt", b"hello, hello, hello".repeat(500), 1_700_000_000),
            ("a.txt", b"hello".to_vec(), 1_700_000_001),
            ("empty", Vec::new(), 0),
            ("noise/ü.bin", noise(150_000, 7), 3_000_000_000),
            ("late", b"x".to_vec(), u64::MAX),
        ]
    }

    /// Reads every entry back with the `zip` crate (duplicates kept), and with Python's
    /// zipfile and `unzip -t` when they are installed.
    fn read_back(zip: &[u8], entries: &[(&str, Vec<u8>, u64)]) {
        let mut files = zip::unstable::read::ZipIterable::try_new(
            io::Cursor::new(zip),
            zip::read::Config::default(),
        )
        .unwrap()
        .enforce_header_consistency(true);
        let mut body = io::Cursor::new(zip);
        let mut n = 0;
        for (entry, (name, data, _)) in files.files().unwrap().zip(entries) {
            let mut file = entry
                .unwrap()
                .with_reader(&mut body, zip::ZipReadOptions::default())
                .unwrap();
            assert_eq!(file.name().unwrap(), *name);
            assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o644));
            let mut got = Vec::new();
            io::Read::read_to_end(&mut file, &mut got).unwrap();
            assert!(got == *data, "{name}");
            n += 1;
        }
        assert_eq!(n, entries.len());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zip");
        std::fs::write(&path, zip).unwrap();
        let ran = |cmd: &mut std::process::Command| match cmd.output() {
            Ok(out) => {
                assert!(out.status.success(), "{cmd:?}: {out:?}");
                Some(String::from_utf8(out.stdout).unwrap())
            }
            // The tools are installed by scripts/test.sh; a missing one fails the test.
            Err(err) => panic!("{cmd:?} did not run ({err}); scripts/test.sh installs it"),
        };
        let script = "import sys, zipfile\n\
            z = zipfile.ZipFile(sys.argv[1])\n\
            assert z.testzip() is None\n\
            for i in z.infolist(): print(i.filename, i.file_size, len(z.read(i)))";
        let listing = ran(std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .env("PYTHONIOENCODING", "utf-8"));
        if let Some(listing) = listing {
            let want: String = entries
                .iter()
                .map(|(name, data, _)| format!("{name} {} {}\n", data.len(), data.len()))
                .collect();
            assert_eq!(listing, want);
        }
        if let Some(out) = ran(std::process::Command::new("unzip").arg("-t").arg(&path)) {
            assert!(out.contains("No errors detected"), "{out}");
        }
    }

    #[test]
    fn zip_layout() {
        let entries = sample_zip_entries();
        let zip = write_zip(Zip64Limits::FORMAT, &entries);
        let mtimes: Vec<u64> = entries.iter().map(|e| e.2).collect();
        let end = walk(&zip, &mtimes);
        assert!(!end.zip64);
        read_back(&zip, &entries);
    }

    /// Every zip64 form on a small archive: lowered limits make all entries zip64, saturate
    /// every offset and both end record fields.
    #[test]
    fn zip64_forms() {
        let entries = sample_zip_entries();
        let limits = Zip64Limits {
            size: 0,
            offset: 0,
            entries: 0,
        };
        let zip = write_zip(limits, &entries);
        let mtimes: Vec<u64> = entries.iter().map(|e| e.2).collect();
        let end = walk(&zip, &mtimes);
        assert_eq!(
            end,
            End {
                entries: 0xffff,
                cd_size: 0xffff_ffff,
                cd_offset: 0xffff_ffff,
                zip64: true
            }
        );
        read_back(&zip, &entries);

        // Only the offsets past the limit saturate.
        let limits = Zip64Limits {
            offset: 20_000,
            ..Zip64Limits::FORMAT
        };
        let zip = write_zip(limits, &entries);
        let end = walk(&zip, &mtimes);
        assert!(end.zip64);
        assert_eq!((end.entries, end.cd_offset), (5, 0xffff_ffff));
        read_back(&zip, &entries);
        let empty = write_zip(
            Zip64Limits {
                entries: 0,
                ..limits
            },
            &[],
        );
        assert_eq!(walk(&empty, &[]).entries, 0xffff);
    }

    /// Compressed bytes reach the sink while the entry is being written, not at its end.
    #[test]
    fn zip_streams_entry_data() {
        let sink = Shared::default();
        let mut w = new_writer(Format::Zip, sink.clone());
        let data = noise(4 << 20, 3);
        w.start_entry("big", data.len() as u64, 0).unwrap();
        w.write_data(&data).unwrap();
        let during = sink.0.lock().unwrap().len();
        assert!(during > 3 << 20, "{during} bytes out after 4 MiB in");
        w.finish_entry().unwrap();
        w.finish().unwrap();
        // Each write is at most one deflate buffer.
        assert!(*sink.1.lock().unwrap() > (4 << 20) / DEFLATE_OUT);
    }

    /// A failed sink write leaves the archive broken: every later call fails, no panic.
    #[test]
    fn zip_sink_error_is_sticky() {
        struct FailAfter(usize);
        impl Write for FailAfter {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::Error::other("gone"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut w = new_writer(Format::Zip, FailAfter(100));
        w.start_entry("a", 1 << 20, 0).unwrap();
        let err = w.write_data(&noise(1 << 20, 1)).unwrap_err();
        assert_eq!(err.to_string(), "gone");
        let err = w.finish_entry().unwrap_err();
        assert!(err.to_string().contains("earlier write error"), "{err}");
        assert!(w.start_entry("b", 0, 0).is_err());
        assert!(w.finish().is_err());
    }

    #[test]
    fn zip_name_length_limit() {
        let mut w = new_writer(Format::Zip, io::sink());
        let long = "n".repeat(65_536);
        let err = w.start_entry(&long, 0, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        // Nothing started: the writer goes on.
        w.start_entry(&long[1..], 0, 0).unwrap();
        w.finish_entry().unwrap();
        w.finish().unwrap();
    }

    /// Level 1 deflate grows incompressible data by up to 12.5%; the zip64 threshold leaves
    /// room for that below 4 GiB.
    #[test]
    fn zip64_threshold_covers_deflate_expansion() {
        use crate::shard::{ScanLimits, ZipIndex};
        // The worst case: no matches, and only literals with 9-bit codes.
        let worst: Vec<u8> = noise(1 << 20, 5).iter().map(|b| 144 + b % 112).collect();
        let zip = write_zip(Zip64Limits::FORMAT, &[("w", worst, 0)]);
        let idx = ZipIndex::build(
            io::Cursor::new(&zip),
            zip.len() as u64,
            &ScanLimits::default(),
        )
        .unwrap();
        let e = &idx.entries()[0];
        assert!(e.compressed_size > e.size + e.size / 10, "{e:?}");
        assert!(e.compressed_size <= e.size + e.size / 8 + 1024, "{e:?}");
        let worst_compressed = ZIP64_FROM + ZIP64_FROM / 8;
        assert!(worst_compressed + (32 << 20) < u64::from(u32::MAX));
    }
}
