//! Decompressing readers for stream shards and the error tagging that lets
//! [`into_archive_error`] tell a corrupt stream or an exceeded limit from a failing disk.
//!
//! Errors of the underlying reader are wrapped as [`StreamError::Source`] before a codec sees
//! them, so any untagged error a codec produces is its own verdict on the data: corrupt.
use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::GzDecoder;
use lz4_flex::frame::FrameDecoder;

use crate::{ArchiveError, Format};

/// Buffer in front of raw TAR and LZ4 input, so 512-byte header reads do not each hit the
/// underlying file (gzip brings its own buffer).
const INPUT_BUFFER: usize = 64 << 10;

/// The payload of an `io::Error` raised by this crate's readers.
#[derive(Debug, thiserror::Error)]
pub(super) enum StreamError {
    /// A safety limit was exceeded.
    #[error("{0}")]
    Limit(String),
    /// The data is damaged.
    #[error("{0}")]
    Corrupt(String),
    /// The operation does not apply to this format.
    #[error("{0}")]
    Unsupported(String),
    /// The underlying reader failed.
    #[error(transparent)]
    Source(io::Error),
}

/// An `io::Error` standing for [`ArchiveError::Corrupt`].
pub(super) fn corrupt_io(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, StreamError::Corrupt(msg))
}

/// An `io::Error` (kind `Other`) standing for [`ArchiveError::Limit`].
pub(super) fn limit_io(msg: String) -> io::Error {
    io::Error::other(StreamError::Limit(msg))
}

fn is_tagged(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|inner| inner.is::<StreamError>())
}

/// See [`crate::shard::into_archive_error`].
pub(super) fn into_archive_error(err: io::Error) -> ArchiveError {
    if !is_tagged(&err) {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof => {
                ArchiveError::Corrupt("unexpected end of data".to_string())
            }
            io::ErrorKind::InvalidData => ArchiveError::Corrupt(err.to_string()),
            _ => ArchiveError::Io(err),
        };
    }
    let kind = err.kind();
    match err
        .into_inner()
        .map(|inner| inner.downcast::<StreamError>())
    {
        Some(Ok(tagged)) => match *tagged {
            StreamError::Limit(msg) => ArchiveError::Limit(msg),
            StreamError::Corrupt(msg) => ArchiveError::Corrupt(msg),
            StreamError::Unsupported(msg) => ArchiveError::Unrecognized(msg),
            StreamError::Source(inner) => ArchiveError::Io(inner),
        },
        // Unreachable after `is_tagged`, but keep the error rather than panic.
        Some(Err(inner)) => ArchiveError::Io(io::Error::new(kind, inner)),
        None => ArchiveError::Io(io::Error::from(kind)),
    }
}

/// See [`crate::shard::decoder`].
pub(super) fn decoder<'a, R: Read + Send + 'a>(
    format: Format,
    r: R,
    max_output: u64,
) -> Box<dyn Read + Send + 'a> {
    let src = SourceTag(r);
    match format {
        Format::Tar => Box::new(Bounded::new(
            BufReader::with_capacity(INPUT_BUFFER, src),
            max_output,
        )),
        Format::Tgz => {
            let members = GzMembers::new(BufReader::with_capacity(INPUT_BUFFER, src));
            let codec = CodecTag {
                inner: members,
                codec: "gzip",
            };
            Box::new(Bounded::new(codec, max_output))
        }
        Format::TarLz4 => {
            let frames = Lz4Frames::new(BufReader::with_capacity(INPUT_BUFFER, src));
            Box::new(Bounded::new(
                CodecTag {
                    inner: frames,
                    codec: "lz4",
                },
                max_output,
            ))
        }
        Format::Zip => Box::new(NotAStream),
    }
}

/// Tags errors of the raw input so that codecs' own errors can be told apart.
pub(super) struct SourceTag<R>(pub(super) R);

impl<R: Read> Read for SourceTag<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|err| {
            if err.kind() == io::ErrorKind::Interrupted || is_tagged(&err) {
                return err;
            }
            io::Error::new(err.kind(), StreamError::Source(err))
        })
    }
}

/// Marks every untagged error of a decompressor as corrupt data.
pub(super) struct CodecTag<R> {
    pub(super) inner: R,
    pub(super) codec: &'static str,
}

impl<R: Read> Read for CodecTag<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|err| {
            if err.kind() == io::ErrorKind::Interrupted || is_tagged(&err) {
                return err;
            }
            corrupt_io(format!("corrupt {} stream: {err}", self.codec))
        })
    }
}

/// Caps the bytes a reader may produce.
struct Bounded<R> {
    inner: R,
    produced: u64,
    max: u64,
}

impl<R> Bounded<R> {
    fn new(inner: R, max: u64) -> Self {
        Bounded {
            inner,
            produced: 0,
            max,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.produced > self.max {
            return Err(self.exceeded());
        }
        // Ask for at most one byte past the cap: enough to notice it is exceeded.
        let room = (self.max - self.produced).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.produced += n as u64;
        if self.produced > self.max {
            return Err(self.exceeded());
        }
        Ok(n)
    }
}

impl<R> Bounded<R> {
    fn exceeded(&self) -> io::Error {
        limit_io(format!("decompressed output exceeds {} bytes", self.max))
    }
}

/// Reads a stream to its end, so that the checks at the end of the compressed data (gzip CRC
/// and length, LZ4 content checksum) run even when the caller found what it wanted earlier.
/// Output is still capped by the decoder's limit. Returns the number of bytes read.
pub(super) fn drain(r: &mut dyn Read) -> Result<u64, ArchiveError> {
    io::copy(r, &mut io::sink()).map_err(into_archive_error)
}

/// Gzip members one after another (as `gzip -d` reads them), each verified against its CRC-32
/// and length trailer. Zero bytes after the last member are padding and ignored (GNU gzip and
/// Python do the same); anything else there is corrupt data.
struct GzMembers<R: BufRead> {
    /// `None` once the input ended.
    dec: Option<GzDecoder<R>>,
}

impl<R: BufRead> GzMembers<R> {
    fn new(r: R) -> Self {
        GzMembers {
            dec: Some(GzDecoder::new(r)),
        }
    }
}

/// What follows a complete gzip member.
enum AfterMember {
    End,
    Member,
}

/// Looks at what follows a member without consuming a next header; consumes trailing zeros.
fn after_member(r: &mut impl BufRead) -> io::Result<AfterMember> {
    let mut first = true;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(AfterMember::End);
        }
        if first && buf[0] == 0x1f {
            return Ok(AfterMember::Member);
        }
        first = false;
        if buf.iter().any(|&b| b != 0) {
            return Err(corrupt_io(
                "trailing garbage after the last gzip member".to_string(),
            ));
        }
        let n = buf.len();
        r.consume(n);
    }
}

impl<R: BufRead> Read for GzMembers<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let Some(dec) = self.dec.as_mut() else {
                return Ok(0);
            };
            let n = dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // A member ended with a matching trailer.
            let Some(dec) = self.dec.take() else {
                return Ok(0);
            };
            let mut input = dec.into_inner();
            match after_member(&mut input)? {
                AfterMember::End => return Ok(0),
                AfterMember::Member => self.dec = Some(GzDecoder::new(input)),
            }
        }
    }
}

/// First magic number of the LZ4 skippable frames (`0x184D2A50..=0x184D2A5F`).
const LZ4_SKIPPABLE: u32 = 0x184D_2A50;
/// Magic number of the legacy LZ4 format, whose frames end with the input.
const LZ4_LEGACY: u32 = 0x184C_2102;

/// LZ4 frame decoder over concatenated frames, as the `lz4` tool reads them: skippable frames
/// are skipped, and input that ends inside a frame is corrupt (the decoder alone would take an
/// end between two blocks for the end of the frame, never checking the content checksum).
///
/// `FrameDecoder` returns `Ok(0)` at the end of each frame (and for empty blocks); after such a
/// read that consumed input, the next bytes are looked at before decoding goes on.
struct Lz4Frames<R: BufRead> {
    dec: FrameDecoder<FrameInput<R>>,
    /// At the start, or after `dec` reported the end of a frame.
    boundary: bool,
}

/// The input of the frame decoder: counts bytes and turns an end of input inside a frame into
/// a corrupt-data error.
struct FrameInput<R> {
    inner: R,
    count: u64,
    /// The input may end here: a legacy frame, which has no end mark.
    may_end: bool,
    /// A magic number read ahead while looking for skippable frames, served first.
    pushed_back: Vec<u8>,
}

impl<R: Read> Read for FrameInput<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.pushed_back.is_empty() {
            let n = buf.len().min(self.pushed_back.len());
            buf[..n].copy_from_slice(&self.pushed_back[..n]);
            self.pushed_back.drain(..n);
            return Ok(n);
        }
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if n == 0 && !buf.is_empty() && !self.may_end {
            return Err(corrupt_io("lz4 frame truncated".to_string()));
        }
        Ok(n)
    }
}

impl<R: BufRead> Lz4Frames<R> {
    fn new(r: R) -> Self {
        Lz4Frames {
            dec: FrameDecoder::new(FrameInput {
                inner: r,
                count: 0,
                may_end: false,
                pushed_back: Vec::new(),
            }),
            boundary: true,
        }
    }

    /// Between frames: skips skippable frames. `Ok(false)` at the end of the input.
    fn next_frame(&mut self) -> io::Result<bool> {
        loop {
            let frame_input = self.dec.get_mut();
            let input = &mut frame_input.inner;
            let head = input.fill_buf()?;
            if head.is_empty() {
                return Ok(false);
            }
            let mut magic = [0u8; 4];
            if head.len() >= 4 {
                magic.copy_from_slice(&head[..4]);
                input.consume(4);
            } else {
                // The magic number straddles two buffer fills: read it whole.
                read_exact_or_corrupt(input, &mut magic, "lz4 frame header")?;
            }
            let magic_number = u32::from_le_bytes(magic);
            if magic_number & 0xffff_fff0 != LZ4_SKIPPABLE {
                // A frame: the decoder reads its magic number again.
                frame_input.pushed_back.extend_from_slice(&magic);
                frame_input.may_end = magic_number == LZ4_LEGACY;
                return Ok(true);
            }
            let mut len = [0u8; 4];
            read_exact_or_corrupt(input, &mut len, "lz4 skippable frame")?;
            let len = u64::from(u32::from_le_bytes(len));
            let skipped = io::copy(&mut input.take(len), &mut io::sink())?;
            if skipped != len {
                return Err(corrupt_io("lz4 skippable frame truncated".to_string()));
            }
            frame_input.count += 8 + len;
        }
    }
}

fn read_exact_or_corrupt(r: &mut impl Read, buf: &mut [u8], what: &str) -> io::Result<()> {
    r.read_exact(buf).map_err(|err| match err.kind() {
        io::ErrorKind::UnexpectedEof => corrupt_io(format!("{what} truncated")),
        _ => err,
    })
}

impl<R: BufRead> Read for Lz4Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.boundary {
                if !self.next_frame()? {
                    return Ok(0);
                }
                self.boundary = false;
            }
            let before = self.dec.get_ref().count;
            let n = self.dec.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if self.dec.get_ref().count == before {
                // Only a legacy frame can end without consuming input.
                return Ok(0);
            }
            self.boundary = true;
        }
    }
}

/// The "decoder" of a ZIP: fails, since ZIP members are read through the central directory.
struct NotAStream;

impl Read for NotAStream {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        let msg = "zip is not a stream format: read it through its central directory";
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            StreamError::Unsupported(msg.to_string()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn lz4(data: &[u8]) -> Vec<u8> {
        let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::new());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn read_all(format: Format, input: &[u8], max: u64) -> Result<Vec<u8>, ArchiveError> {
        let mut out = Vec::new();
        decoder(format, input, max)
            .read_to_end(&mut out)
            .map_err(into_archive_error)?;
        Ok(out)
    }

    #[test]
    fn concatenated_members_and_frames() {
        let mut gz = gzip(b"hello ");
        gz.extend(gzip(b""));
        gz.extend(gzip(b"world"));
        assert_eq!(read_all(Format::Tgz, &gz, 100).unwrap(), b"hello world");
        let mut lz = lz4(b"hello ");
        lz.extend(lz4(b""));
        lz.extend(lz4(b"world"));
        assert_eq!(read_all(Format::TarLz4, &lz, 100).unwrap(), b"hello world");
    }

    #[test]
    fn limit_is_exact() {
        let data = vec![7u8; 1000];
        for (format, input) in [
            (Format::Tar, data.clone()),
            (Format::Tgz, gzip(&data)),
            (Format::TarLz4, lz4(&data)),
        ] {
            assert_eq!(read_all(format, &input, 1000).unwrap(), data, "{format:?}");
            let err = read_all(format, &input, 999).unwrap_err();
            assert!(matches!(err, ArchiveError::Limit(_)), "{format:?}: {err}");
        }
    }

    #[test]
    fn garbage_is_corrupt() {
        let junk = b"this is definitely not compressed data at all".repeat(4);
        for format in [Format::Tgz, Format::TarLz4] {
            let err = read_all(format, &junk, 1 << 20).unwrap_err();
            assert!(matches!(err, ArchiveError::Corrupt(_)), "{format:?}: {err}");
        }
        let mut gz = gzip(&[1u8; 4096]);
        let n = gz.len();
        gz[n - 6] ^= 0xff; // CRC trailer
        assert!(matches!(
            read_all(Format::Tgz, &gz, 1 << 20),
            Err(ArchiveError::Corrupt(_))
        ));
    }

    #[test]
    fn source_errors_stay_io() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::InvalidData, "disk on fire"))
            }
        }
        for format in [Format::Tar, Format::Tgz, Format::TarLz4] {
            let mut out = Vec::new();
            let err = decoder(format, Failing, 10)
                .read_to_end(&mut out)
                .unwrap_err();
            match into_archive_error(err) {
                ArchiveError::Io(e) => assert_eq!(e.to_string(), "disk on fire"),
                other => panic!("{format:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn zip_is_not_a_stream() {
        let err = read_all(Format::Zip, b"PK\x03\x04", 10).unwrap_err();
        assert!(matches!(err, ArchiveError::Unrecognized(_)), "{err}");
    }

    #[test]
    fn untagged_errors() {
        let eof = io::Error::from(io::ErrorKind::UnexpectedEof);
        assert!(matches!(into_archive_error(eof), ArchiveError::Corrupt(_)));
        let other = io::Error::other("boom");
        assert!(matches!(into_archive_error(other), ArchiveError::Io(_)));
        let limit = limit_io("too big".to_string());
        assert_eq!(limit.kind(), io::ErrorKind::Other);
        assert!(matches!(into_archive_error(limit), ArchiveError::Limit(m) if m == "too big"));
    }
}
