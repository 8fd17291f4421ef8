use std::io;

/// Storage errors; the server maps each kind to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such object (404).
    #[error("object does not exist")]
    NotFound,
    /// The name collides with another object's directory or file (409).
    #[error("{0}")]
    Conflict(String),
    /// The stored bytes do not match the stored checksum or size (410).
    #[error("{0}")]
    Corrupt(String),
    /// A request the store refuses as given (400), with the reason.
    #[error("{0}")]
    Invalid(String),
    /// Something other than the object itself (an upload, an append session) is not there
    /// (404), with the text to show.
    #[error("{0}")]
    Missing(String),
    /// An I/O failure.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl StoreError {
    /// Classifies an `io::Error` met while resolving an object path.
    pub(crate) fn from_lookup(err: io::Error) -> StoreError {
        match err.kind() {
            io::ErrorKind::NotFound
            | io::ErrorKind::NotADirectory
            | io::ErrorKind::IsADirectory => StoreError::NotFound,
            _ => StoreError::Io(err),
        }
    }
}
