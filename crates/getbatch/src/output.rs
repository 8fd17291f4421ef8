//! Writing the output archive onto the response body: a zero-copy TAR path, the generic writers of
//! `moss-archive` for compressed formats, and the `multipart/mixed` envelope of buffered mode.
use std::io;

use bytes::Bytes;
use moss_archive::Format;
use moss_archive::tarfmt;
use moss_archive::writer::{ArchiveWriter, new_writer};

use crate::coalesce::Coalescer;

/// An archive being written entry by entry.
pub trait Output: Send {
    fn begin(&mut self, name: &str, size: u64, mtime: u64) -> io::Result<()>;
    fn data(&mut self, chunk: Bytes) -> io::Result<()>;
    fn end(&mut self) -> io::Result<()>;
    /// Sends buffered bytes now (called before the assembler waits for a source). Compressed
    /// formats keep their compressor state and only pass on what it already produced.
    fn flush(&mut self) -> io::Result<()>;
    /// Writes the archive trailer and flushes everything.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

/// Creates the output for `format` on top of a body writer.
pub fn new_output(format: Format, out: Coalescer) -> Box<dyn Output> {
    match format {
        Format::Tar => Box::new(TarOutput {
            out,
            pending_pad: 0,
        }),
        other => Box::new(GenericOutput {
            writer: new_writer(other, out),
        }),
    }
}

/// Plain TAR straight onto the coalescer: headers and small payloads are batched, large payload
/// chunks pass through untouched.
struct TarOutput {
    out: Coalescer,
    pending_pad: usize,
}

impl Output for TarOutput {
    fn begin(&mut self, name: &str, size: u64, mtime: u64) -> io::Result<()> {
        let mut header = Vec::with_capacity(tarfmt::BLOCK * 3);
        tarfmt::push_file_header(&mut header, name, size, mtime);
        self.pending_pad = tarfmt::padding(size);
        self.out.put(&header)
    }

    fn data(&mut self, chunk: Bytes) -> io::Result<()> {
        self.out.put_bytes(chunk)
    }

    fn end(&mut self) -> io::Result<()> {
        const ZEROS: [u8; tarfmt::BLOCK] = [0; tarfmt::BLOCK];
        let pad = std::mem::take(&mut self.pending_pad);
        self.out.put(&ZEROS[..pad])
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    fn finish(mut self: Box<Self>) -> io::Result<()> {
        self.out.put(&tarfmt::TRAILER)?;
        self.out.flush()
    }
}

/// Any format through its `ArchiveWriter` (compression runs on the calling, blocking thread).
struct GenericOutput {
    writer: Box<dyn ArchiveWriter>,
}

impl Output for GenericOutput {
    fn begin(&mut self, name: &str, size: u64, mtime: u64) -> io::Result<()> {
        self.writer.start_entry(name, size, mtime)
    }

    fn data(&mut self, chunk: Bytes) -> io::Result<()> {
        self.writer.write_data(&chunk)
    }

    fn end(&mut self) -> io::Result<()> {
        self.writer.finish_entry()
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn finish(self: Box<Self>) -> io::Result<()> {
        self.writer.finish()
    }
}

/// The `multipart/mixed` envelope of a buffered response (protocol §4.1).
pub struct Multipart {
    pub boundary: String,
}

impl Multipart {
    /// A random 60-hex-digit boundary, as Go's `mime/multipart` makes.
    pub fn new() -> Multipart {
        let boundary = (0..30)
            .map(|_| format!("{:02x}", rand::random::<u8>()))
            .collect();
        Multipart { boundary }
    }

    pub fn content_type(&self) -> String {
        format!("multipart/mixed; boundary={}", self.boundary)
    }

    /// Everything before the archive bytes: the metadata part and the archive part's headers.
    pub fn preamble(&self, metadata_json: &[u8], archive_name: &str) -> Vec<u8> {
        let b = &self.boundary;
        let mut out = Vec::with_capacity(metadata_json.len() + 256);
        out.extend_from_slice(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n")
                .as_bytes(),
        );
        out.extend_from_slice(metadata_json);
        out.extend_from_slice(b"\n");
        out.extend_from_slice(
            format!(
                "\r\n--{b}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"{archive_name}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        out
    }

    /// The closing delimiter after the archive bytes.
    pub fn epilogue(&self) -> Vec<u8> {
        format!("\r\n--{}--\r\n", self.boundary).into_bytes()
    }
}

impl Default for Multipart {
    fn default() -> Self {
        Multipart::new()
    }
}
