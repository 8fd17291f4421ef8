/// One of the four container formats moss reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Tar,
    Tgz,
    TarLz4,
    Zip,
}

impl Format {
    /// Parses a GetBatch `mime` value (output format). Empty means `.tar`.
    /// Accepts, case-insensitively, with or without the leading dot: `tar`, `tgz`, `tar.gz`,
    /// `zip`, `tar.lz4`, and the MIME types `application/x-tar`, `application/gzip`,
    /// `application/x-gzip`, `application/x-tgz`, `application/zip`, `application/x-lz4`.
    pub fn from_mime(value: &str) -> Result<Format, crate::ArchiveError> {
        todo!("{value}")
    }

    /// Format implied by an object name's extension (`.tar`, `.tgz`, `.tar.gz`, `.zip`,
    /// `.tar.lz4`), case-insensitive.
    pub fn from_name(name: &str) -> Option<Format> {
        todo!("{name}")
    }

    /// Format from the first bytes of a file (≥ 512 bytes when available): `ustar` at 257 → tar,
    /// `1f 8b` → tgz, `50 4b 03 04` (or an empty-zip `50 4b 05 06`) → zip, `04 22 4d 18` → tar.lz4.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        todo!("{}", head.len())
    }

    /// Canonical extension: `.tar`, `.tgz`, `.tar.lz4`, `.zip`.
    pub fn ext(self) -> &'static str {
        todo!()
    }

    /// Content-Type of a streamed archive: `application/x-tar`, `application/gzip`,
    /// `application/x-lz4`, `application/zip`.
    pub fn content_type(self) -> &'static str {
        todo!()
    }
}
