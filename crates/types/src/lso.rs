//! List-objects: the request (`LsoMsg`) and the response in its JSON and msgpack spellings.
use serde::{Deserialize, Serialize};

/// A generic AIStore action message: `{"action":…, "name":…, "value":…}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActMsg {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: serde_json::Value,
}

/// List-objects parameters (`apc.LsoMsg`); unknown fields are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LsoMsg {
    pub uuid: String,
    pub props: String,
    pub prefix: String,
    pub start_after: String,
    pub continuation_token: String,
    #[serde(deserialize_with = "de_loose_u64")]
    pub pagesize: u64,
    /// `apc.Ls*` bits; the SDK sends them as a decimal string.
    #[serde(deserialize_with = "de_loose_u64")]
    pub flags: u64,
}

/// List flag: also list the files inside shards, as `<shard>/<member>` (`apc.LsArchDir`).
pub const LS_ARCH_DIR: u64 = 1 << 3;
/// List flag: only objects in the cluster (of a remote bucket) (`apc.LsCached`).
pub const LS_CACHED: u64 = 1 << 0;
/// List flag: names only (`apc.LsNameOnly`).
pub const LS_NAME_ONLY: u64 = 1 << 4;
/// List flag: names and sizes only (`apc.LsNameSize`).
pub const LS_NAME_SIZE: u64 = 1 << 5;
/// List flag: only objects of a remote bucket not in the cluster (`apc.LsNotCached`).
pub const LS_NOT_CACHED: u64 = 1 << 9;
/// List flag: one level only; deeper names become directory entries (`apc.LsNoRecursion`).
pub const LS_NO_RECURSION: u64 = 1 << 11;
/// List flag: no directory entries (`apc.LsNoDirs`).
pub const LS_NO_DIRS: u64 = 1 << 13;
/// Entry flag: the object is in the cluster (`apc.EntryIsCached`).
pub const ENTRY_CACHED: u64 = 1 << 6;
/// Entry flag: the entry is a directory (`apc.EntryIsDir`).
pub const ENTRY_IS_DIR: u64 = 1 << 8;
/// Entry flag: the entry is a file inside a shard (`apc.EntryInArch`).
pub const ENTRY_IN_ARCH: u64 = 1 << 7;
/// Entry flag: the entry is a shard whose files are listed (`apc.EntryIsArchive`).
pub const ENTRY_IS_ARCHIVE: u64 = 1 << 9;
/// Entry flag: the object was written by a multipart upload (`apc.EntryIsChunked`).
pub const ENTRY_IS_CHUNKED: u64 = 1 << 13;

fn de_loose_u64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Num(u64),
        Text(String),
        Null,
    }
    match Either::deserialize(d)? {
        Either::Num(n) => Ok(n),
        Either::Text(t) if t.is_empty() => Ok(0),
        Either::Text(t) => t.parse().map_err(serde::de::Error::custom),
        Either::Null => Ok(0),
    }
}

/// Maximum and default page size.
pub const MAX_PAGE_SIZE: u64 = 10_000;

/// One listed object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsoEntry {
    pub name: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub atime: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
    /// Custom metadata as AIStore lists it (`[k1:v1 k2:v2]`), when `props` has `custom`.
    #[serde(
        rename = "custom-md",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub custom: String,
    /// [`ENTRY_IN_ARCH`], [`ENTRY_IS_ARCHIVE`]; 0 for a plain object.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub flags: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A page of a listing (JSON spelling, `cmn.LsoRes`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsoRes {
    pub uuid: String,
    pub continuation_token: String,
    pub entries: Vec<LsoEntry>,
    #[serde(default)]
    pub flags: u64,
}

/// The same page in the msgpack spelling the SDK decodes (msgp field names).
#[derive(Debug, Serialize)]
pub struct LsoResMsgpack<'a> {
    #[serde(rename = "UUID")]
    pub uuid: &'a str,
    #[serde(rename = "ContinuationToken")]
    pub continuation_token: &'a str,
    #[serde(rename = "Flags")]
    pub flags: u64,
    #[serde(rename = "Entries")]
    pub entries: Vec<LsoEntryMsgpack<'a>>,
}

/// One entry in the msgpack spelling.
#[derive(Debug, Serialize)]
pub struct LsoEntryMsgpack<'a> {
    #[serde(rename = "n")]
    pub name: &'a str,
    #[serde(rename = "s")]
    pub size: u64,
    #[serde(rename = "cs", skip_serializing_if = "str::is_empty")]
    pub checksum: &'a str,
    #[serde(rename = "v", skip_serializing_if = "str::is_empty")]
    pub version: &'a str,
    #[serde(rename = "a", skip_serializing_if = "str::is_empty")]
    pub atime: &'a str,
    #[serde(rename = "t", skip_serializing_if = "str::is_empty")]
    pub location: &'a str,
    #[serde(rename = "m", skip_serializing_if = "str::is_empty")]
    pub custom: &'a str,
    #[serde(rename = "f")]
    pub flags: u64,
}

impl LsoRes {
    /// The msgpack view of this page.
    pub fn to_msgpack_view(&self) -> LsoResMsgpack<'_> {
        LsoResMsgpack {
            uuid: &self.uuid,
            continuation_token: &self.continuation_token,
            flags: self.flags,
            entries: self
                .entries
                .iter()
                .map(|e| LsoEntryMsgpack {
                    name: &e.name,
                    size: e.size,
                    checksum: &e.checksum,
                    version: &e.version,
                    atime: &e.atime,
                    location: &e.location,
                    custom: &e.custom,
                    flags: e.flags,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lso_msg_accepts_sdk_body() {
        let body = r#"{"action":"list","name":"","value":{"prefix":"","pagesize":0,"uuid":"","props":"name,size",
            "continuation_token":"","flags":"0","target":""}}"#;
        let act: ActMsg = serde_json::from_str(body).unwrap();
        let msg: LsoMsg = serde_json::from_value(act.value).unwrap();
        assert_eq!(msg.props, "name,size");
        assert_eq!(msg.pagesize, 0);
        assert_eq!(msg.flags, 0);
        let msg: LsoMsg = serde_json::from_str(r#"{"flags":"8"}"#).unwrap();
        assert_eq!(msg.flags, LS_ARCH_DIR);
    }
}
