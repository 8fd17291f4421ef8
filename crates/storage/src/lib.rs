//! Object storage on a target's mountpaths: layout, atomic and durable writes, metadata in an
//! xattr, checksum-verified reads, listing and removal. Synchronous: callers run it on blocking
//! threads.
//!
//! Layout (AIStore's): `<mountpath>/@<provider>[/<ns>]/<bucket>/%ob/<object name>`; in-flight
//! writes live in `<mountpath>/.moss-work/` and are renamed into place after fsync; multipart
//! uploads in `<mountpath>/.moss-mpu/<upload id>/` until they are completed; redundancy pieces
//! (`ec.*`) in `<bucket>/%ec/`; mirror copies (`mirror.*`) in `<bucket>/%mi/` on other mountpaths.

pub mod erasure;
mod error;
mod meta;
mod mirror;
mod object;
mod piece;
mod store;
mod upload;

pub use error::StoreError;
pub use meta::{CKSUM_TYPE, ObjMeta, checksum_hex};
pub use mirror::CopiesMade;
pub use object::{ObjHandle, Verifier};
pub use piece::{PieceMeta, PieceTxn};
pub use store::{ListedObject, PutTxn, Store, WalkedObject, dir_entry};
pub use upload::{
    AppendTxn, MAX_PARTS, MD_CHUNKS, PartTxn, RESERVED_KEY, chunk_info, user_custom,
    validate_upload_id,
};
