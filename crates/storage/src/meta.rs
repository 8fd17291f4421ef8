//! Object metadata, stored as the xattr `user.moss.lom` (JSON).
use std::collections::BTreeMap;
use std::fs::File;
use std::io;

use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Name of the metadata xattr.
pub const XATTR: &str = "user.moss.lom";
/// Checksum type of every object (XXH64 seed 0, AIStore's default).
pub const CKSUM_TYPE: &str = "xxhash2";

/// Metadata kept with every object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjMeta {
    pub size: u64,
    #[serde(rename = "ct")]
    pub cksum_type: String,
    #[serde(rename = "cv")]
    pub cksum: String,
    #[serde(rename = "v")]
    pub version: u64,
    #[serde(rename = "md", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

/// Lowercase 16-digit hex of an XXH64 digest.
pub fn checksum_hex(digest: u64) -> String {
    format!("{digest:016x}")
}

impl ObjMeta {
    /// Reads the metadata of an open object file.
    pub fn load(file: &File) -> Result<ObjMeta, StoreError> {
        let mut buf = [0u8; 4096];
        let len = match rustix::fs::fgetxattr(file, XATTR, &mut buf) {
            Ok(len) => len,
            Err(rustix::io::Errno::NODATA) => {
                return Err(StoreError::Corrupt(
                    "object metadata is missing".to_string(),
                ));
            }
            Err(e) => return Err(StoreError::Io(io::Error::from(e))),
        };
        serde_json::from_slice(&buf[..len])
            .map_err(|e| StoreError::Corrupt(format!("object metadata is unreadable: {e}")))
    }

    /// Attaches the metadata to a file.
    pub fn store(&self, file: &File) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(self).map_err(io::Error::other)?;
        rustix::fs::fsetxattr(file, XATTR, &bytes, rustix::fs::XattrFlags::empty())
            .map_err(io::Error::from)?;
        Ok(())
    }
}
