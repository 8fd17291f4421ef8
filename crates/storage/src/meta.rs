//! Object metadata, stored as the xattr `user.moss.lom`.
//!
//! Encoding: a compact binary record (version byte 1, then size, XXH64 digest, version and write
//! time as little-endian u64s, then custom key/value pairs). At ~33 bytes it fits in the inode's
//! inline xattr space on ext4; a JSON record (written by earlier moss versions, still read) did
//! not, and reading the external xattr block cost ~7% of CPU on the GetBatch path.
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
    /// Time of the write that produced this version (unix seconds).
    #[serde(rename = "mt", default)]
    pub mtime: u64,
    #[serde(rename = "md", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

/// Lowercase 16-digit hex of an XXH64 digest.
pub fn checksum_hex(digest: u64) -> String {
    format!("{digest:016x}")
}

/// First byte of the binary encoding (JSON starts with `{`).
const BINARY_V1: u8 = 1;

impl ObjMeta {
    /// Encodes the metadata (binary; JSON only if the checksum is not a 64-bit hex digest).
    pub fn encode(&self) -> Vec<u8> {
        let Ok(digest) = u64::from_str_radix(&self.cksum, 16) else {
            return serde_json::to_vec(self).unwrap_or_default();
        };
        if self.cksum_type != CKSUM_TYPE || self.cksum.len() != 16 {
            return serde_json::to_vec(self).unwrap_or_default();
        }
        let mut out = Vec::with_capacity(33 + self.custom.len() * 16);
        out.push(BINARY_V1);
        for value in [self.size, digest, self.version, self.mtime] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        for (key, value) in &self.custom {
            for text in [key, value] {
                let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(&text.as_bytes()[..len as usize]);
            }
        }
        out
    }

    /// Decodes either encoding.
    pub fn decode(bytes: &[u8]) -> Result<ObjMeta, StoreError> {
        let corrupt =
            |why: &str| StoreError::Corrupt(format!("object metadata is unreadable: {why}"));
        match bytes.first() {
            Some(&BINARY_V1) => {}
            Some(b'{') => {
                return serde_json::from_slice(bytes).map_err(|e| corrupt(&e.to_string()));
            }
            _ => return Err(corrupt("unknown format")),
        }
        if bytes.len() < 33 {
            return Err(corrupt("truncated"));
        }
        let word = |i: usize| {
            u64::from_le_bytes(bytes[1 + 8 * i..9 + 8 * i].try_into().unwrap_or_default())
        };
        let mut meta = ObjMeta {
            size: word(0),
            cksum_type: CKSUM_TYPE.to_string(),
            cksum: checksum_hex(word(1)),
            version: word(2),
            mtime: word(3),
            custom: BTreeMap::new(),
        };
        let mut rest = &bytes[33..];
        while !rest.is_empty() {
            let mut text = || -> Result<String, StoreError> {
                if rest.len() < 2 {
                    return Err(corrupt("truncated custom metadata"));
                }
                let len = u16::from_le_bytes([rest[0], rest[1]]) as usize;
                let body = rest
                    .get(2..2 + len)
                    .ok_or_else(|| corrupt("truncated custom metadata"))?;
                rest = &rest[2 + len..];
                String::from_utf8(body.to_vec())
                    .map_err(|_| corrupt("custom metadata is not UTF-8"))
            };
            let key = text()?;
            let value = text()?;
            meta.custom.insert(key, value);
        }
        Ok(meta)
    }

    /// Reads the metadata of an open object file.
    pub fn load(file: &File) -> Result<ObjMeta, StoreError> {
        // The binary record is ~33 bytes: try a small buffer before the 4 KiB maximum.
        let mut small = [0u8; 256];
        let large;
        let bytes: &[u8] = match rustix::fs::fgetxattr(file, XATTR, &mut small) {
            Ok(len) => &small[..len],
            Err(rustix::io::Errno::RANGE) => {
                let mut buf = vec![0u8; 4096];
                let len = rustix::fs::fgetxattr(file, XATTR, &mut buf)
                    .map_err(|e| StoreError::Io(io::Error::from(e)))?;
                buf.truncate(len);
                large = buf;
                &large
            }
            Err(rustix::io::Errno::NODATA) => {
                return Err(StoreError::Corrupt(
                    "object metadata is missing".to_string(),
                ));
            }
            Err(e) => return Err(StoreError::Io(io::Error::from(e))),
        };
        ObjMeta::decode(bytes)
    }

    /// Attaches the metadata to a file.
    pub fn store(&self, file: &File) -> Result<(), StoreError> {
        let bytes = self.encode();
        rustix::fs::fsetxattr(file, XATTR, &bytes, rustix::fs::XattrFlags::empty())
            .map_err(io::Error::from)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_metadata_round_trips_and_json_still_reads() {
        let meta = ObjMeta {
            size: 10240,
            cksum_type: CKSUM_TYPE.into(),
            cksum: checksum_hex(0x0123_4567_89ab_cdef),
            version: 3,
            mtime: 1_795_619_760,
            custom: [("etag".to_string(), "abc".to_string())].into(),
        };
        let bytes = meta.encode();
        assert_eq!(bytes[0], BINARY_V1);
        assert!(
            bytes.len() < 48,
            "fits inline in an ext4 inode: {} bytes",
            bytes.len()
        );
        assert_eq!(ObjMeta::decode(&bytes).unwrap(), meta);
        let json = serde_json::to_vec(&meta).unwrap();
        assert_eq!(ObjMeta::decode(&json).unwrap(), meta);
        assert!(ObjMeta::decode(&bytes[..20]).is_err());
        assert!(ObjMeta::decode(b"x").is_err());
        assert!(ObjMeta::decode(&[&bytes[..], &[5, 0, b'a']].concat()).is_err());
    }
}
