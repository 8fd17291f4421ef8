//! What a GetBatch response must contain, derived from the request alone: the entry names in
//! order, and the pairing of each archive entry with its request entry (`MossOut`).
use moss_archive::Format;
use moss_types::moss::{Entry, MISSING_PREFIX, MossOut, MossReq, resolve_entries};
use moss_types::names;

use crate::error::{Error, Result};

/// `err_msg` of a placeholder in streaming mode, where the server sends no error text.
pub const STREAMED_MISSING: &str = "missing";

/// The request entries, resolved (bucket of every entry known), plus naming and format.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    entries: Vec<Entry>,
    onob: bool,
    format: Format,
}

impl BatchPlan {
    /// Validates `req` the way the server will (names, ranges, buckets, `mime`) and resolves
    /// every entry's bucket; `default_bucket` is the bucket of the request path (`b`, `s3://b`).
    pub fn new(req: &MossReq, default_bucket: Option<&str>) -> Result<BatchPlan> {
        let format =
            Format::from_mime(&req.mime).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        let default_bck = match default_bucket {
            Some(bucket) => {
                let bck = crate::http::bck_of(bucket);
                names::validate_bucket_name(&bck.name).map_err(Error::InvalidRequest)?;
                Some(bck)
            }
            None => None,
        };
        let entries = resolve_entries(req.entries.clone(), default_bck.as_ref())
            .map_err(|invalid| Error::InvalidRequest(invalid.message))?;
        Ok(BatchPlan {
            entries,
            onob: req.onob,
            format,
        })
    }

    /// Number of entries the archive must have.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Always false for a valid plan (requests need at least one entry).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Output format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Name of entry `index` inside the archive (`B/O[/A]`, or `O[/A]` with `onob`).
    pub fn expected_name(&self, index: usize) -> Option<String> {
        self.entries
            .get(index)
            .map(|e| e.name_in_archive(self.onob))
    }

    /// Pairs the archive's entry number `index` (`name`, `size` bytes of payload) with the
    /// request: checks name and size, and returns its `MossOut` — from the buffered response's
    /// metadata when given, else derived from the request entry.
    pub fn pair(
        &self,
        index: usize,
        name: &str,
        size: u64,
        metadata: Option<&MossOut>,
    ) -> Result<MossOut, String> {
        let Some(entry) = self.entries.get(index) else {
            return Err(format!(
                "archive has more than the {} requested entries (extra entry {name:?})",
                self.entries.len()
            ));
        };
        let want = entry.name_in_archive(self.onob);
        let placeholder = match name.strip_prefix(MISSING_PREFIX) {
            // The reference names a placeholder for a missing *shard* without the archpath.
            Some(rest) if rest == want || want.starts_with(&format!("{rest}/")) => true,
            _ if name == want => false,
            _ => {
                return Err(format!("entry {index}: expected {want:?}, got {name:?}"));
            }
        };
        if placeholder && size != 0 {
            return Err(format!(
                "entry {index}: placeholder {name:?} has {size} bytes"
            ));
        }
        let mut out = match metadata {
            Some(meta) => {
                if meta.size != size {
                    return Err(format!(
                        "entry {index} ({name:?}): metadata says {} bytes, archive has {size}",
                        meta.size
                    ));
                }
                meta.clone()
            }
            None => {
                let mut out = entry.moss_out();
                out.size = size;
                out
            }
        };
        if placeholder && out.err_msg.is_none() {
            out.err_msg = Some(STREAMED_MISSING.to_string());
        }
        Ok(out)
    }
}

/// Splits `shard.tar/dir/file.jpg` into the object `shard.tar` and the archived path
/// `dir/file.jpg`, at the first path component ending in `.tar`, `.tgz`, `.tar.gz`, `.zip` or
/// `.tar.lz4` that is followed by `/`. Names without such a component are plain objects.
pub fn split_archpath(name: &str) -> (&str, Option<&str>) {
    for (at, _) in name.match_indices('/') {
        let head = &name[..at];
        let last_component = head.rsplit('/').next().unwrap_or(head);
        if Format::from_name(last_component).is_some() && at + 1 < name.len() {
            return (head, Some(&name[at + 1..]));
        }
    }
    (name, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_types::moss::MossIn;

    fn entry(objname: &str, bucket: &str, archpath: &str) -> MossIn {
        MossIn {
            objname: objname.into(),
            bucket: bucket.into(),
            archpath: archpath.into(),
            ..Default::default()
        }
    }

    fn plan(onob: bool) -> BatchPlan {
        let req = MossReq {
            entries: vec![
                entry("a.txt", "", ""),
                entry("s.tar", "other", "x/1.jpg"),
                entry("gone", "", ""),
                MossIn {
                    opaque: "b3AtMQ==".into(),
                    ..entry("r.bin", "", "")
                },
            ],
            onob,
            ..Default::default()
        };
        BatchPlan::new(&req, Some("b")).unwrap()
    }

    #[test]
    fn names_follow_request_and_naming_mode() {
        let p = plan(false);
        assert_eq!(p.len(), 4);
        assert_eq!(p.format(), Format::Tar);
        assert_eq!(p.expected_name(0).unwrap(), "b/a.txt");
        assert_eq!(p.expected_name(1).unwrap(), "other/s.tar/x/1.jpg");
        let p = plan(true);
        assert_eq!(p.expected_name(1).unwrap(), "s.tar/x/1.jpg");
        assert_eq!(p.expected_name(4), None);
    }

    #[test]
    fn streamed_entries_pair_with_request_entries() {
        let p = plan(false);
        let out = p.pair(0, "b/a.txt", 5, None).unwrap();
        assert_eq!(
            (out.bucket.as_str(), out.objname.as_str(), out.size),
            ("b", "a.txt", 5)
        );
        assert_eq!(out.provider, "ais");
        assert_eq!(out.err_msg, None);
        let out = p.pair(1, "other/s.tar/x/1.jpg", 3, None).unwrap();
        assert_eq!(
            (out.objname.as_str(), out.archpath.as_str()),
            ("s.tar", "x/1.jpg")
        );
        let out = p.pair(2, "__404__/b/gone", 0, None).unwrap();
        assert_eq!(out.err_msg.as_deref(), Some(STREAMED_MISSING));
        assert_eq!(out.size, 0);
        let out = p.pair(3, "b/r.bin", 0, None).unwrap();
        assert_eq!(out.opaque.as_deref(), Some(&b"op-1"[..]));
        // A zero-size object that exists is not a placeholder.
        assert_eq!(out.err_msg, None);
    }

    #[test]
    fn mismatches_are_errors() {
        let p = plan(false);
        let err = p.pair(0, "b/other.txt", 5, None).unwrap_err();
        assert!(err.contains("expected \"b/a.txt\""), "{err}");
        assert!(p.pair(2, "__404__/b/gone", 7, None).is_err());
        assert!(p.pair(2, "__404__/b/nope", 0, None).is_err());
        let err = p.pair(4, "b/extra", 1, None).unwrap_err();
        assert!(err.contains("more than the 4 requested"), "{err}");
        // The reference's missing-shard placeholder omits the archpath: accepted.
        assert!(p.pair(1, "__404__/other/s.tar", 0, None).is_ok());
    }

    #[test]
    fn buffered_entries_take_metadata() {
        let p = plan(false);
        let meta = MossOut {
            objname: "gone".into(),
            bucket: "b".into(),
            provider: "ais".into(),
            err_msg: Some("ais://b/gone does not exist".into()),
            ..Default::default()
        };
        let out = p.pair(2, "__404__/b/gone", 0, Some(&meta)).unwrap();
        assert_eq!(out.err_msg.as_deref(), Some("ais://b/gone does not exist"));
        let sized = MossOut {
            size: 9,
            ..meta.clone()
        };
        let err = p.pair(0, "b/a.txt", 5, Some(&sized)).unwrap_err();
        assert!(err.contains("metadata says 9 bytes"), "{err}");
    }

    #[test]
    fn invalid_requests_fail_before_sending() {
        let no_bucket = MossReq {
            entries: vec![entry("a", "", "")],
            ..Default::default()
        };
        let err = BatchPlan::new(&no_bucket, None).unwrap_err().to_string();
        assert!(err.contains("missing bucket specification"), "{err}");
        let bad_mime = MossReq {
            mime: "rar".into(),
            ..no_bucket.clone()
        };
        assert!(BatchPlan::new(&bad_mime, Some("b")).is_err());
        let empty = MossReq::default();
        assert!(BatchPlan::new(&empty, Some("b")).is_err());
        let escape = MossReq {
            entries: vec![entry("../x", "", "")],
            ..Default::default()
        };
        assert!(BatchPlan::new(&escape, Some("b")).is_err());
    }

    #[test]
    fn archpaths_split_at_first_shard_component() {
        assert_eq!(split_archpath("a/b.jpg"), ("a/b.jpg", None));
        assert_eq!(split_archpath("s.tar/x/1.jpg"), ("s.tar", Some("x/1.jpg")));
        assert_eq!(split_archpath("d/s.tar.gz/m"), ("d/s.tar.gz", Some("m")));
        assert_eq!(
            split_archpath("s.tgz/in.tar/m"),
            ("s.tgz", Some("in.tar/m"))
        );
        assert_eq!(split_archpath("s.zip/a"), ("s.zip", Some("a")));
        assert_eq!(split_archpath("s.tar.lz4/a"), ("s.tar.lz4", Some("a")));
        // A shard named alone, or with a trailing slash, is the object itself.
        assert_eq!(split_archpath("s.tar"), ("s.tar", None));
        assert_eq!(split_archpath("s.tar/"), ("s.tar/", None));
        // The extension must end the component.
        assert_eq!(split_archpath("s.tarx/a"), ("s.tarx/a", None));
        assert_eq!(split_archpath("x.tar.bak/a"), ("x.tar.bak/a", None));
    }
}
