//! The client's error type: callers branch on HTTP status (404, 409, 429), transport failures
//! and malformed responses. Messages are complete on their own (causes are folded into the
//! text), so printing an error once says everything.
use std::time::Duration;

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with a non-success status; `message` comes from its JSON error body
    /// (or the body text, or the status reason when there is no body).
    #[error("{message} (status {status})")]
    Http {
        status: u16,
        message: String,
        /// `Retry-After` of a 429 (or 503), when the server sent one.
        retry_after: Option<Duration>,
    },
    /// The request could not be sent or the response could not be received.
    #[error("{context}: {}", chain(.error))]
    Transport {
        context: String,
        error: reqwest::Error,
    },
    /// The response body broke off or failed while it was being read.
    #[error("{context}: {error}")]
    Body {
        context: String,
        error: std::io::Error,
    },
    /// The server's answer is not what the protocol promises (bad JSON, wrong content type, ...).
    #[error("invalid response to {what}: {message}")]
    Decode { what: String, message: String },
    /// A GetBatch response that does not match the request: corrupt or truncated archive,
    /// wrong entry count, names or sizes.
    #[error("invalid batch archive: {0}")]
    Archive(String),
    /// The request was rejected before anything was sent.
    #[error("{0}")]
    InvalidRequest(String),
    /// A local file could not be read or written.
    #[error("{context}: {error}")]
    Io {
        context: String,
        error: std::io::Error,
    },
}

impl Error {
    /// The HTTP status of an [`Error::Http`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub(crate) fn transport(context: impl Into<String>, error: reqwest::Error) -> Error {
        Error::Transport {
            context: context.into(),
            error,
        }
    }

    pub(crate) fn decode(what: impl Into<String>, message: impl ToString) -> Error {
        Error::Decode {
            what: what.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, error: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            error,
        }
    }
}

/// An error and its causes on one line: reqwest's top-level messages ("error sending request")
/// say little without them.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(inner) = cause {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        cause = inner.source();
    }
    text
}

/// Turns a body-stream error into an `io::Error` that still reads well once it surfaces from a
/// decoder (the `io::Error` keeps only the flattened text).
pub(crate) fn body_io_error(err: reqwest::Error) -> std::io::Error {
    let kind = if err.is_timeout() {
        std::io::ErrorKind::TimedOut
    } else {
        std::io::ErrorKind::ConnectionAborted
    };
    std::io::Error::new(kind, chain(&err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_error_shows_message_and_status() {
        let err = Error::Http {
            status: 404,
            message: "bucket \"ais://x\" does not exist".into(),
            retry_after: None,
        };
        assert_eq!(
            err.to_string(),
            "bucket \"ais://x\" does not exist (status 404)"
        );
        assert!(err.is_not_found());
    }

    #[test]
    fn chain_skips_repeated_text() {
        let outer = Error::Body {
            context: "reading x".into(),
            error: std::io::Error::other("connection reset"),
        };
        assert_eq!(chain(&outer), "reading x: connection reset");
    }
}
