//! GetBatch (`/v1/ml/moss`) request and response types, request validation, and the internal
//! DT → sender request.
//!
//! Keys are matched case-insensitively (as the reference's JSON decoder does), unknown keys are
//! ignored, and the body may be the bare `MossReq` or the `{"action":"getbatch","value":…}` envelope.
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::bucket::{Bck, Provider};
use crate::names;

/// The prefix of a placeholder entry for a missing item.
pub const MISSING_PREFIX: &str = "__404__/";

/// One requested item (`apc.MossIn`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MossIn {
    pub objname: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bucket: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub provider: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uname: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub archpath: String,
    /// Base64 text as sent by the client (standard or URL-safe alphabet).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub opaque: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub start: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub length: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// A GetBatch request (`apc.MossReq`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MossReq {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mime: String,
    #[serde(rename = "in")]
    pub entries: Vec<MossIn>,
    pub coer: bool,
    pub onob: bool,
    pub strm: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coloc: Option<u8>,
}

/// Per-entry result in buffered mode (`apc.MossOut`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MossOut {
    pub objname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub archpath: String,
    pub bucket: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub err_msg: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_opaque",
        deserialize_with = "de_opaque"
    )]
    pub opaque: Option<Vec<u8>>,
    pub size: u64,
}

/// The metadata part of a buffered response (`apc.MossResp`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MossResp {
    #[serde(default)]
    pub uuid: String,
    pub out: Vec<MossOut>,
}

fn ser_opaque<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(bytes) => s.serialize_str(&STANDARD.encode(bytes)),
        None => s.serialize_none(),
    }
}

fn de_opaque<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text {
        None => Ok(None),
        Some(t) => decode_opaque(&t).map(Some).map_err(de::Error::custom),
    }
}

/// Decodes `opaque` in any of the base64 alphabets clients use (standard or URL-safe, padded or not).
pub fn decode_opaque(text: &str) -> Result<Vec<u8>, String> {
    for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(text) {
            return Ok(bytes);
        }
    }
    Err(format!("invalid opaque {text:?}: not base64"))
}

/// Parses a request body: bare `MossReq` or the `{"action":"getbatch","value":…}` envelope.
pub fn parse_request(body: &[u8]) -> Result<MossReq, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("moss: empty input".to_string());
    }
    let req: MossReq =
        serde_json::from_slice(body).map_err(|e| format!("invalid GetBatch request: {e}"))?;
    Ok(req)
}

impl<'de> Deserialize<'de> for MossReq {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ReqVisitor)
    }
}

struct ReqVisitor;

impl<'de> Visitor<'de> for ReqVisitor {
    type Value = MossReq;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GetBatch request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MossReq, A::Error> {
        let mut req = MossReq::default();
        let mut enveloped: Option<MossReq> = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key.lowercase() {
                "mime" => req.mime = map.next_value::<Option<String>>()?.unwrap_or_default(),
                "in" => req.entries = map.next_value::<Option<Vec<MossIn>>>()?.unwrap_or_default(),
                "coer" => req.coer = map.next_value::<Option<bool>>()?.unwrap_or_default(),
                "onob" => req.onob = map.next_value::<Option<bool>>()?.unwrap_or_default(),
                "strm" => req.strm = map.next_value::<Option<bool>>()?.unwrap_or_default(),
                "coloc" => req.coloc = map.next_value::<Option<u8>>()?,
                "action" => {
                    let action = map.next_value::<Option<String>>()?.unwrap_or_default();
                    if !action.is_empty() && action != "getbatch" {
                        return Err(de::Error::custom(format!(
                            "invalid action {action:?} (expecting \"getbatch\")"
                        )));
                    }
                }
                "value" => enveloped = map.next_value::<Option<MossReq>>()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(enveloped.unwrap_or(req))
    }
}

impl<'de> Deserialize<'de> for MossIn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(InVisitor)
    }
}

struct InVisitor;

impl<'de> Visitor<'de> for InVisitor {
    type Value = MossIn;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a GetBatch entry object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MossIn, A::Error> {
        let mut entry = MossIn::default();
        while let Some(key) = map.next_key::<Key>()? {
            let text = |map: &mut A| -> Result<String, A::Error> {
                Ok(map.next_value::<Option<String>>()?.unwrap_or_default())
            };
            match key.lowercase() {
                "objname" => entry.objname = text(&mut map)?,
                "bucket" => entry.bucket = text(&mut map)?,
                "provider" => entry.provider = text(&mut map)?,
                "uname" => entry.uname = text(&mut map)?,
                "archpath" => entry.archpath = text(&mut map)?,
                "opaque" => entry.opaque = text(&mut map)?,
                "start" => entry.start = map.next_value::<Option<i64>>()?.unwrap_or_default(),
                "length" => entry.length = map.next_value::<Option<i64>>()?.unwrap_or_default(),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(entry)
    }
}

/// An object key of a request, matched case-insensitively (as the reference's decoder does)
/// against the fields moss knows. Borrowed from the body: a batch has a key or more per entry,
/// and neither the key nor its lower-case form needs an allocation.
struct Key(Option<&'static str>);

/// Every key the request visitors look at, in lower case.
const KEYS: &[&str] = &[
    "mime", "in", "coer", "onob", "strm", "coloc", "action", "value", "objname", "bucket",
    "provider", "uname", "archpath", "opaque", "start", "length",
];

impl Key {
    /// The known key this is (in lower case), or `""` for one to ignore.
    fn lowercase(&self) -> &'static str {
        self.0.unwrap_or("")
    }

    fn of(text: &str) -> Key {
        Key(KEYS.iter().copied().find(|k| k.eq_ignore_ascii_case(text)))
    }
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a key")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Key, E> {
                Ok(Key::of(text))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A validated, fully resolved request entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub bck: Bck,
    pub objname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub archpath: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<Vec<u8>>,
    #[serde(default)]
    pub range: Option<ByteRange>,
}

/// A requested byte range: `start` and `length` (`None` = to the end).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    pub start: u64,
    pub length: Option<u64>,
}

impl ByteRange {
    /// Resolves against the actual size: `(offset, len)`, or the reference's error text.
    pub fn resolve(&self, size: u64) -> Result<(u64, u64), String> {
        let describe = || match self.length {
            Some(len) => format!("[start={},length={}]", self.start, len),
            None => format!("[start={}]", self.start),
        };
        let end = match self.length {
            Some(len) => self.start.checked_add(len),
            None => Some(size),
        };
        match end {
            Some(end) if self.start < size && end <= size => Ok((self.start, end - self.start)),
            // "From 0 to the end" of an empty object is the (empty) object itself.
            _ if size == 0 && self.start == 0 && self.length.is_none() => Ok((0, 0)),
            _ => Err(format!("size={size}: not satisfiable range {}", describe())),
        }
    }
}

impl Entry {
    /// The entry's name inside the output archive (`B/O`, `B/O/A`, `O`, `O/A`), never with a doubled `/`.
    pub fn name_in_archive(&self, onob: bool) -> String {
        let mut name = String::with_capacity(
            self.bck.name.len() + self.objname.len() + self.archpath.len() + 2,
        );
        if !onob {
            name.push_str(&self.bck.name);
            name.push('/');
        }
        name.push_str(&self.objname);
        if !self.archpath.is_empty() {
            name.push('/');
            name.push_str(self.archpath.strip_prefix('/').unwrap_or(&self.archpath));
        }
        name
    }

    /// The `MossOut` skeleton for this entry (size and error filled in by the caller).
    pub fn moss_out(&self) -> MossOut {
        MossOut {
            objname: self.objname.clone(),
            archpath: self.archpath.clone(),
            bucket: self.bck.name.clone(),
            provider: self.bck.provider.as_str().to_string(),
            err_msg: None,
            opaque: self.opaque.clone(),
            size: 0,
        }
    }

    /// Display form used in error messages: `ais://b/o` or `a in ais://b/o`.
    pub fn describe(&self) -> String {
        if self.archpath.is_empty() {
            format!("{}/{}", self.bck.cname(), self.objname)
        } else {
            format!("{} in {}/{}", self.archpath, self.bck.cname(), self.objname)
        }
    }
}

/// Why a request was rejected during validation; maps to 400 or 416.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRequest {
    pub message: String,
    /// True when the problem is a byte range (HTTP 416), false for everything else (400).
    pub range: bool,
}

impl InvalidRequest {
    fn bad(message: String) -> InvalidRequest {
        InvalidRequest {
            message,
            range: false,
        }
    }
}

/// Validates a request and resolves every entry's bucket (`uname`, then `bucket`+`provider`,
/// then the default bucket from the URL).
/// Takes the entries (`MossReq::entries`) by value: their names move into the result.
pub fn resolve_entries(
    entries: Vec<MossIn>,
    default_bck: Option<&Bck>,
) -> Result<Vec<Entry>, InvalidRequest> {
    if entries.is_empty() {
        return Err(InvalidRequest::bad("moss: empty input".to_string()));
    }
    entries
        .into_iter()
        .map(|e| resolve_entry(e, default_bck))
        .collect()
}

fn resolve_entry(mut input: MossIn, default_bck: Option<&Bck>) -> Result<Entry, InvalidRequest> {
    names::validate_objname(&input.objname).map_err(InvalidRequest::bad)?;
    if !input.archpath.is_empty() {
        names::validate_archpath(&input.archpath, &input.objname).map_err(InvalidRequest::bad)?;
    }
    let bck = if !input.uname.is_empty() {
        Bck::parse_uname(&input.uname).map_err(InvalidRequest::bad)?
    } else if !input.bucket.is_empty() {
        names::validate_bucket_name(&input.bucket).map_err(InvalidRequest::bad)?;
        Bck {
            name: std::mem::take(&mut input.bucket),
            provider: Provider::parse(&input.provider).map_err(InvalidRequest::bad)?,
            namespace: Default::default(),
        }
    } else if let Some(bck) = default_bck {
        bck.clone()
    } else {
        return Err(InvalidRequest::bad(format!(
            "missing bucket specification for object {:?}",
            input.objname
        )));
    };
    let range = parse_range(&input)?;
    let opaque = match input.opaque.as_str() {
        "" => None,
        text => Some(decode_opaque(text).map_err(InvalidRequest::bad)?),
    };
    Ok(Entry {
        bck,
        objname: input.objname,
        archpath: input.archpath,
        opaque,
        range,
    })
}

fn parse_range(input: &MossIn) -> Result<Option<ByteRange>, InvalidRequest> {
    let (start, length) = (input.start, input.length);
    if start == 0 && length == 0 {
        return Ok(None);
    }
    if start < 0 || length < -1 || length == 0 {
        let shown = if length == -1 {
            format!("[start={start} (oname: {:?})]", input.objname)
        } else {
            format!(
                "[start={start},length={length} (oname: {:?})]",
                input.objname
            )
        };
        return Err(InvalidRequest {
            message: format!("not satisfiable range {shown}"),
            range: true,
        });
    }
    Ok(Some(ByteRange {
        start: start as u64,
        length: (length >= 0).then_some(length as u64),
    }))
}

/// One target's GetBatch statistics (`GET /v1/internal/getbatch`, and per target in
/// `GET /v1/cluster?what=getbatch`): node-lifetime counters and current gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GetBatchStats {
    /// Requests completed as designated target.
    pub reqs: u64,
    pub obj_count: u64,
    pub obj_bytes: u64,
    pub file_count: u64,
    pub file_bytes: u64,
    pub gfn_count: u64,
    pub err_gfn_count: u64,
    /// Total time spent waiting for senders, nanoseconds.
    pub rxwait_ns: u64,
    pub throttle_ns: u64,
    pub err_count: u64,
    pub err_soft_count: u64,
    /// Requests being assembled right now.
    pub active_work_items: i64,
    /// Streams being sent to other targets right now.
    pub active_send_streams: i64,
    pub bewarm_workers: i64,
    pub bewarm_done: u64,
}

/// The DT's request to a sender: the sender's share of the entries, in request order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendReq {
    /// Work-item id (for logs and metrics).
    pub wid: String,
    /// The DT's job: the sender counts its share under the same id and stops when it is aborted.
    #[serde(default)]
    pub xid: String,
    /// That job's kind (`get-batch`, or `archive` for the archive job's gathering).
    #[serde(default)]
    pub xkind: String,
    pub entries: Vec<SendEntry>,
}

/// One entry a sender must produce (plain fields: `#[serde(flatten)]` would route every entry
/// through serde's slow buffered path).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendEntry {
    /// Position in the original request.
    pub index: u32,
    pub bck: Bck,
    pub objname: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub archpath: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<ByteRange>,
}

impl SendEntry {
    /// The sender's view of request entry `index` (the opaque stays with the DT).
    pub fn new(index: u32, entry: &Entry) -> SendEntry {
        SendEntry {
            index,
            bck: entry.bck.clone(),
            objname: entry.objname.clone(),
            archpath: entry.archpath.clone(),
            range: entry.range,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> MossReq {
        parse_request(json.as_bytes()).unwrap()
    }

    #[test]
    fn bare_and_enveloped_requests_parse_alike() {
        let bare = parse(r#"{"in":[{"objname":"a"}],"mime":".tar","strm":true}"#);
        let env = parse(
            r#"{"action":"getbatch","value":{"in":[{"objname":"a"}],"mime":".tar","strm":true}}"#,
        );
        assert_eq!(bare, env);
        assert_eq!(bare.entries[0].objname, "a");
        assert!(bare.strm && !bare.coer);
    }

    #[test]
    fn keys_are_case_insensitive_and_unknown_keys_ignored() {
        let req =
            parse(r#"{"In":[{"ObjName":"a","Bucket":"b","extra":[1,2]}],"COER":true,"zzz":null}"#);
        assert_eq!(req.entries[0].bucket, "b");
        assert!(req.coer);
    }

    #[test]
    fn bad_bodies_are_rejected() {
        assert_eq!(parse_request(b"  ").unwrap_err(), "moss: empty input");
        assert!(parse_request(b"{").is_err());
        assert!(parse_request(br#"{"in":"x"}"#).is_err());
        assert!(
            parse_request(br#"{"action":"list","value":{}}"#)
                .unwrap_err()
                .contains("invalid action")
        );
    }

    #[test]
    fn entries_resolve_buckets_in_precedence_order() {
        let req = parse(
            r#"{"in":[{"objname":"a"},{"objname":"b","bucket":"x","provider":"s3"},
                {"objname":"c","uname":"ais/@#/y/","bucket":"ignored"}]}"#,
        );
        let dflt = Bck::ais("d");
        let entries = resolve_entries(req.entries.clone(), Some(&dflt)).unwrap();
        assert_eq!(entries[0].bck, dflt);
        assert_eq!(entries[1].bck.provider, Provider::Aws);
        assert_eq!(entries[1].bck.name, "x");
        assert_eq!(entries[2].bck, Bck::ais("y"));
        let err = resolve_entries(req.entries, None).unwrap_err();
        assert_eq!(err.message, "missing bucket specification for object \"a\"");
        let empty = resolve_entries(parse(r#"{"in":[]}"#).entries, Some(&dflt)).unwrap_err();
        assert_eq!(empty.message, "moss: empty input");
    }

    #[test]
    fn ranges_validate_like_the_reference() {
        let dflt = Bck::ais("d");
        let resolve = |s: i64, l: i64| {
            let req = MossReq {
                entries: vec![MossIn {
                    objname: "o".into(),
                    start: s,
                    length: l,
                    ..Default::default()
                }],
                ..Default::default()
            };
            resolve_entries(req.entries, Some(&dflt)).map(|e| e[0].range)
        };
        assert_eq!(resolve(0, 0).unwrap(), None);
        assert_eq!(
            resolve(2, -1).unwrap(),
            Some(ByteRange {
                start: 2,
                length: None
            })
        );
        assert_eq!(
            resolve(0, 5).unwrap(),
            Some(ByteRange {
                start: 0,
                length: Some(5)
            })
        );
        let err = resolve(3, 0).unwrap_err();
        assert!(err.range);
        assert_eq!(
            err.message,
            "not satisfiable range [start=3,length=0 (oname: \"o\")]"
        );
        assert!(resolve(-1, 5).is_err());
        assert!(resolve(0, -2).is_err());
    }

    #[test]
    fn byte_ranges_resolve_against_size() {
        let r = ByteRange {
            start: 2,
            length: Some(3),
        };
        assert_eq!(r.resolve(5).unwrap(), (2, 3));
        assert_eq!(
            r.resolve(4).unwrap_err(),
            "size=4: not satisfiable range [start=2,length=3]"
        );
        let open = ByteRange {
            start: 2,
            length: None,
        };
        assert_eq!(open.resolve(10).unwrap(), (2, 8));
        assert!(open.resolve(2).is_err());
        // SPEC §4: `length: -1` is "to the end", which for an empty object is the empty object.
        let whole = ByteRange {
            start: 0,
            length: None,
        };
        assert_eq!(whole.resolve(0).unwrap(), (0, 0));
        assert!(ByteRange { start: 1, ..whole }.resolve(0).is_err());
    }

    #[test]
    fn opaque_accepts_both_alphabets_and_echoes_standard() {
        assert_eq!(decode_opaque("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_opaque("-_8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode_opaque("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode_opaque("!!").is_err());
        let out = MossOut {
            opaque: Some(vec![0xfb, 0xff]),
            ..Default::default()
        };
        let json = serde_json::to_string(&out).unwrap();
        assert!(json.contains(r#""opaque":"+/8=""#), "{json}");
        assert!(
            !json.contains("err_msg") && !json.contains("archpath"),
            "{json}"
        );
    }

    #[test]
    fn archive_names_never_double_slashes() {
        let mut e = Entry {
            bck: Bck::ais("b"),
            objname: "o".into(),
            archpath: String::new(),
            opaque: None,
            range: None,
        };
        assert_eq!(e.name_in_archive(false), "b/o");
        assert_eq!(e.name_in_archive(true), "o");
        e.archpath = "/a/x.jpg".into();
        assert_eq!(e.name_in_archive(false), "b/o/a/x.jpg");
        assert_eq!(e.name_in_archive(true), "o/a/x.jpg");
    }
}
