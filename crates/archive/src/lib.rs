//! Archive formats for moss: the four output writers of GetBatch and the shard readers behind
//! `archpath`. Synchronous and tokio-free, so it can be fuzzed and benchmarked on its own.
//!
//! - [`Format`]: names, MIME aliases and magic-byte detection of `.tar`, `.tgz`, `.tar.lz4`, `.zip`.
//! - [`writer`]: streaming writers that emit one regular-file entry per call sequence.
//! - [`tarfmt`]: raw TAR framing (headers incl. PAX, padding, trailer) for zero-copy fast paths.
//! - [`shard`]: finding members inside shards (TAR index, compressed TAR scans, ZIP directory).

mod error;
mod format;
pub mod select;
pub mod shard;
pub mod tarfmt;
pub mod writer;

pub use error::ArchiveError;
pub use format::Format;
