//! The four container formats: parsing of `mime` values and names, magic-byte sniffing, and the
//! canonical extension and Content-Type of each.

/// One of the four container formats moss reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Plain TAR (`.tar`).
    Tar,
    /// Gzip-compressed TAR (`.tgz`, `.tar.gz`).
    Tgz,
    /// LZ4-frame-compressed TAR (`.tar.lz4`).
    TarLz4,
    /// ZIP (`.zip`).
    Zip,
}

/// Name suffixes, longest first so that `.tar.gz` is not taken for something shorter.
const SUFFIXES: [(&str, Format); 5] = [
    (".tar.lz4", Format::TarLz4),
    (".tar.gz", Format::Tgz),
    (".tgz", Format::Tgz),
    (".tar", Format::Tar),
    (".zip", Format::Zip),
];

impl Format {
    /// Parses a GetBatch `mime` value (output format). Empty means `.tar`.
    /// Accepts, case-insensitively, with or without the leading dot: `tar`, `tgz`, `tar.gz`,
    /// `zip`, `tar.lz4`, and the MIME types `application/x-tar`, `application/gzip`,
    /// `application/x-gzip`, `application/x-tgz`, `application/zip`, `application/x-lz4`.
    pub fn from_mime(value: &str) -> Result<Format, crate::ArchiveError> {
        let lower = value.to_ascii_lowercase();
        let bare = lower.strip_prefix('.').unwrap_or(&lower);
        let format = match bare {
            "" | "tar" | "application/x-tar" => Format::Tar,
            "tgz" | "tar.gz" | "application/gzip" | "application/x-gzip" | "application/x-tgz" => {
                Format::Tgz
            }
            "zip" | "application/zip" => Format::Zip,
            "tar.lz4" | "application/x-lz4" => Format::TarLz4,
            _ => return Err(crate::ArchiveError::UnknownFormat(value.to_string())),
        };
        Ok(format)
    }

    /// Format implied by an object name's extension (`.tar`, `.tgz`, `.tar.gz`, `.zip`,
    /// `.tar.lz4`), case-insensitive.
    pub fn from_name(name: &str) -> Option<Format> {
        let bytes = name.as_bytes();
        SUFFIXES.iter().find_map(|&(suffix, format)| {
            let tail = bytes
                .len()
                .checked_sub(suffix.len())
                .map(|at| &bytes[at..])?;
            tail.eq_ignore_ascii_case(suffix.as_bytes())
                .then_some(format)
        })
    }

    /// Format from the first bytes of a file (≥ 512 bytes when available): `ustar` at 257 → tar,
    /// `1f 8b` → tgz, `50 4b 03 04` (or an empty-zip `50 4b 05 06`) → zip, `04 22 4d 18` → tar.lz4.
    pub fn sniff(head: &[u8]) -> Option<Format> {
        if head.starts_with(&[0x1f, 0x8b]) {
            return Some(Format::Tgz);
        }
        if head.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
            return Some(Format::TarLz4);
        }
        if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            return Some(Format::Zip);
        }
        // Both POSIX ("ustar\0") and old GNU ("ustar  ") magic start with "ustar".
        if head.get(257..262) == Some(b"ustar".as_slice()) {
            return Some(Format::Tar);
        }
        None
    }

    /// Canonical extension: `.tar`, `.tgz`, `.tar.lz4`, `.zip`.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Tar => ".tar",
            Format::Tgz => ".tgz",
            Format::TarLz4 => ".tar.lz4",
            Format::Zip => ".zip",
        }
    }

    /// Content-Type of a streamed archive: `application/x-tar`, `application/gzip`,
    /// `application/x-lz4`, `application/zip`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Tar => "application/x-tar",
            Format::Tgz => "application/gzip",
            Format::TarLz4 => "application/x-lz4",
            Format::Zip => "application/zip",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_aliases() {
        let cases = [
            ("", Format::Tar),
            ("tar", Format::Tar),
            (".TAR", Format::Tar),
            ("application/x-tar", Format::Tar),
            ("tgz", Format::Tgz),
            (".tar.gz", Format::Tgz),
            ("Application/GZIP", Format::Tgz),
            ("application/x-gzip", Format::Tgz),
            ("application/x-tgz", Format::Tgz),
            ("zip", Format::Zip),
            (".Zip", Format::Zip),
            ("application/zip", Format::Zip),
            ("tar.lz4", Format::TarLz4),
            (".tar.LZ4", Format::TarLz4),
            ("application/x-lz4", Format::TarLz4),
        ];
        for (value, want) in cases {
            assert_eq!(Format::from_mime(value).unwrap(), want, "{value}");
        }
    }

    #[test]
    fn unknown_mime_message() {
        let err = Format::from_mime("Foo/Bar").unwrap_err();
        assert_eq!(err.to_string(), r#"unknown mime type "Foo/Bar""#);
        assert!(Format::from_mime("..tar").is_err());
        assert!(Format::from_mime(" tar").is_err());
        assert!(Format::from_mime("lz4").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(Format::from_name("a/b.tar"), Some(Format::Tar));
        assert_eq!(Format::from_name("B.TGZ"), Some(Format::Tgz));
        assert_eq!(Format::from_name("x.tar.gz"), Some(Format::Tgz));
        assert_eq!(Format::from_name("x.Tar.Lz4"), Some(Format::TarLz4));
        assert_eq!(Format::from_name("x.zip"), Some(Format::Zip));
        assert_eq!(Format::from_name(".tar"), Some(Format::Tar));
        assert_eq!(Format::from_name("x.gz"), None);
        assert_eq!(Format::from_name("x.lz4"), None);
        assert_eq!(Format::from_name("tar"), None);
        assert_eq!(Format::from_name("é.zip"), Some(Format::Zip));
        assert_eq!(Format::from_name("é"), None);
    }

    #[test]
    fn sniffing() {
        let mut tar = vec![0u8; 512];
        tar[257..263].copy_from_slice(b"ustar\0");
        assert_eq!(Format::sniff(&tar), Some(Format::Tar));
        tar[257..265].copy_from_slice(b"ustar  \0");
        assert_eq!(Format::sniff(&tar), Some(Format::Tar));
        assert_eq!(Format::sniff(&[0x1f, 0x8b, 8]), Some(Format::Tgz));
        assert_eq!(Format::sniff(b"PK\x03\x04rest"), Some(Format::Zip));
        assert_eq!(Format::sniff(b"PK\x05\x06"), Some(Format::Zip));
        assert_eq!(
            Format::sniff(&[0x04, 0x22, 0x4d, 0x18, 0x64]),
            Some(Format::TarLz4)
        );
        assert_eq!(Format::sniff(b""), None);
        assert_eq!(Format::sniff(&[0u8; 512]), None);
        assert_eq!(Format::sniff(b"PK"), None);
    }

    #[test]
    fn ext_and_content_type_round_trip() {
        for f in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
            assert_eq!(Format::from_name(&format!("x{}", f.ext())), Some(f));
            assert_eq!(Format::from_mime(f.content_type()).unwrap(), f);
            assert_eq!(Format::from_mime(f.ext()).unwrap(), f);
        }
    }
}
