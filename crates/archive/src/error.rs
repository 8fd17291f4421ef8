//! The error type of the archive layer.
/// Errors of the archive layer; callers branch on the kind (a corrupt shard is a per-item error).
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A `mime`/`archmime` value that names no supported format.
    #[error("unknown mime type {0:?}")]
    UnknownFormat(String),
    /// Neither the name nor the magic bytes identify a supported container.
    #[error("unrecognized or unsupported file format: {0:?}")]
    Unrecognized(String),
    /// The shard is damaged: bad header checksum, truncated data, bogus directory, ...
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    /// The shard exceeds a safety limit (decompression bomb, too many members, name too long).
    #[error("archive exceeds limit: {0}")]
    Limit(String),
    /// Underlying I/O failure.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
