//! Decompressing readers for stream shards and the error tagging that lets
//! [`into_archive_error`] tell a corrupt stream or an exceeded limit from a failing disk.
//!
//! Errors of the underlying reader are wrapped as [`StreamError::Source`] before a codec sees
//! them, so any untagged error a codec produces is its own verdict on the data: corrupt.
use std::io::{self, BufReader, Read};

use flate2::read::MultiGzDecoder;
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
            let codec = CodecTag {
                inner: MultiGzDecoder::new(src),
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

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// LZ4 frame decoder over concatenated frames. `FrameDecoder` returns `Ok(0)` at the end of
/// each frame (and for empty blocks); this keeps reading while such a zero-length read still
/// consumed input, so only a read that consumes nothing is the end of the stream.
struct Lz4Frames<R: Read> {
    dec: FrameDecoder<Counted<R>>,
}

impl<R: Read> Lz4Frames<R> {
    fn new(r: R) -> Self {
        Lz4Frames {
            dec: FrameDecoder::new(Counted { inner: r, count: 0 }),
        }
    }
}

impl<R: Read> Read for Lz4Frames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let before = self.dec.get_ref().count;
            let n = self.dec.read(buf)?;
            // Every retry consumed input, so this terminates with the input.
            if n > 0 || self.dec.get_ref().count == before {
                return Ok(n);
            }
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
