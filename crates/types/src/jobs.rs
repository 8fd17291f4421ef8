//! Jobs (AIStore "xactions") on the wire: the kind table, snapshots, IC status, the SDK's query
//! messages, and the parameters of every operation moss runs as a job.
//!
//! Reference: `shared/reference/ais-jobs.md`. Keys of the SDK's messages are matched
//! case-insensitively (Go decodes `ID`/`id` alike), and buckets accept `"namespace": null`.
use serde::{Deserialize, Deserializer, Serialize};

use crate::bucket::{Bck, Namespace, Provider};

/// Go's zero `time.Time` as it marshals: an unfinished job's `end-time`. The SDK compares with it.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The abort error of a job stopped by a user, exactly as AIStore writes it.
pub const USER_ABORT: &str = "user abort";

/// What AIStore's kind table says about one job kind (`xact/api_table.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindInfo {
    /// Wire name (`copy-listrange`).
    pub kind: &'static str,
    /// The name the CLI shows and the proxy also accepts (`copy-objects`); empty when none.
    pub display: &'static str,
    /// Demand-driven: idles between work items instead of finishing.
    pub idles: bool,
    /// The proxy keeps a notification listener: `what=status` works for the kind.
    pub ic: bool,
    /// `PUT /v1/cluster {"action":"start"}` accepts the kind.
    pub startable: bool,
    /// moss runs jobs of this kind (the others are known, and refused with a clear error).
    pub moss: bool,
}

const fn kind(
    kind: &'static str,
    display: &'static str,
    idles: bool,
    ic: bool,
    startable: bool,
    moss: bool,
) -> KindInfo {
    KindInfo {
        kind,
        display,
        idles,
        ic,
        startable,
        moss,
    }
}

pub const REBALANCE: &str = "rebalance";
pub const LRU: &str = "lru";
pub const CLEANUP: &str = "cleanup-store";
pub const SUMMARY: &str = "summary-bck";
pub const ARCHIVE: &str = "archive";
pub const COPY_OBJECTS: &str = "copy-listrange";
pub const DELETE_OBJECTS: &str = "delete-listrange";
pub const EVICT_OBJECTS: &str = "evict-listrange";
pub const PREFETCH_OBJECTS: &str = "prefetch-listrange";
pub const EVICT_REMOTE_BCK: &str = "evict-remote-bck";
pub const MOVE_BCK: &str = "move-bck";
pub const COPY_BCK: &str = "copy-bck";
pub const GET_BATCH: &str = "get-batch";
pub const PROMOTE: &str = "promote";
/// Stores the redundancy pieces of a bucket's objects that lack them (EC just enabled, or pieces
/// lost with a target) and rebuilds objects whose owner is gone.
pub const EC_ENCODE: &str = "ec-encode";
/// Brings every object of a bucket to its `mirror.copies` (makes missing copies, removes extra
/// ones) and restores objects whose disk was lost from their copies.
pub const MAKE_N_COPIES: &str = "make-n-copies";

/// Every kind AIStore knows, in its table's order.
pub const KINDS: &[KindInfo] = &[
    kind("election", "elect-primary", false, false, false, false),
    kind(REBALANCE, "rebalance", false, true, true, true),
    kind("etl-inline", "", false, true, false, false),
    kind(LRU, "lru-eviction", false, true, true, true),
    kind(CLEANUP, "cleanup", false, true, true, true),
    kind(SUMMARY, "summary", false, false, false, true),
    kind("summary-shard", "shard-summary", false, false, false, false),
    kind("resilver", "", false, false, true, false),
    kind("rechunk", "", false, true, true, false),
    kind("index-shard", "shard-index", false, true, false, false),
    kind("ec-get", "", true, false, false, false),
    kind("ec-put", "", true, false, false, false),
    kind("ec-resp", "", true, false, false, false),
    kind("put-copies", "", true, false, false, false),
    kind(ARCHIVE, "", true, false, false, true),
    kind(COPY_OBJECTS, "copy-objects", true, false, false, true),
    kind("etl-listrange", "etl-objects", true, false, false, false),
    kind("blob-download", "", false, false, true, false),
    kind("download", "", true, true, false, false),
    kind("dsort", "dsort", false, false, false, false),
    kind(PROMOTE, "promote-files", false, true, false, false),
    kind(EVICT_OBJECTS, "evict-objects", false, true, false, true),
    kind(
        EVICT_REMOTE_BCK,
        "evict-remote-bucket",
        false,
        false,
        false,
        true,
    ),
    kind(DELETE_OBJECTS, "delete-objects", false, true, false, true),
    kind(
        PREFETCH_OBJECTS,
        "prefetch-objects",
        false,
        true,
        true,
        true,
    ),
    kind(EC_ENCODE, "ec-bucket", false, true, true, true),
    kind(MAKE_N_COPIES, "mirror", false, true, true, true),
    kind(MOVE_BCK, "rename-bucket", false, true, false, true),
    kind(COPY_BCK, "copy-bucket", false, true, false, true),
    kind("etl-bck", "etl-bucket", false, true, false, false),
    kind("list", "", true, false, false, false),
    kind(GET_BATCH, "", true, false, false, true),
    kind("create-inventory", "", false, true, false, false),
    kind(
        "load-lom-cache",
        "warm-up-metadata",
        true,
        false,
        true,
        false,
    ),
];

/// The kind named by a wire name or a display name.
pub fn kind_info(name: &str) -> Option<&'static KindInfo> {
    if name.is_empty() {
        return None;
    }
    KINDS
        .iter()
        .find(|k| k.kind == name)
        .or_else(|| KINDS.iter().find(|k| k.display == name))
}

/// AIStore's rule for a job id: 9 to 32 of `[A-Za-z0-9_-]`, neither end `-` or `_`; rebalance ids
/// (`g` + decimal) are the exception.
pub fn valid_job_id(id: &str) -> bool {
    if let Some(digits) = id.strip_prefix('g')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return true;
    }
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    (9..=32).contains(&id.len())
        && id.bytes().all(ok_char)
        && edge(id.as_bytes().first())
        && edge(id.as_bytes().last())
}

/// A bucket as job messages spell it: `{"name","provider","namespace":null|{…}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BckJson {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub provider: String,
    #[serde(default, deserialize_with = "null_default")]
    pub namespace: Namespace,
}

fn null_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl BckJson {
    /// The bucket, validated; `None` for the empty placeholder.
    pub fn to_bck(&self) -> Result<Option<Bck>, String> {
        if self.name.is_empty() && self.provider.is_empty() {
            return Ok(None);
        }
        crate::names::validate_bucket_name(&self.name)?;
        Ok(Some(Bck {
            name: self.name.clone(),
            provider: Provider::parse(&self.provider)?,
            namespace: self.namespace.clone(),
        }))
    }

    pub fn of(bck: Option<&Bck>) -> BckJson {
        match bck {
            None => BckJson::default(),
            Some(b) => BckJson {
                name: b.name.clone(),
                provider: b.provider.as_str().to_string(),
                namespace: b.namespace.clone(),
            },
        }
    }
}

/// The counters of a snapshot, as Go marshals them (decimal strings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapStats {
    #[serde(rename = "loc-objs", with = "crate::smap::string_u64", default)]
    pub loc_objs: u64,
    #[serde(rename = "loc-bytes", with = "crate::smap::string_u64", default)]
    pub loc_bytes: u64,
    #[serde(rename = "out-objs", with = "crate::smap::string_u64", default)]
    pub out_objs: u64,
    #[serde(rename = "out-bytes", with = "crate::smap::string_u64", default)]
    pub out_bytes: u64,
    #[serde(rename = "in-objs", with = "crate::smap::string_u64", default)]
    pub in_objs: u64,
    #[serde(rename = "in-bytes", with = "crate::smap::string_u64", default)]
    pub in_bytes: u64,
}

/// One job on one target (Go's `core.Snap`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snap {
    /// Deprecated in AIStore and always `null`; present because clients expect the key.
    #[serde(default)]
    pub ext: Option<serde_json::Value>,
    /// RFC 3339 with nanoseconds and a zone.
    #[serde(rename = "start-time")]
    pub start_time: String,
    /// [`ZERO_TIME`] while the job runs.
    #[serde(rename = "end-time")]
    pub end_time: String,
    #[serde(default)]
    pub bck: BckJson,
    #[serde(rename = "src-bck", default)]
    pub src_bck: BckJson,
    #[serde(rename = "dst-bck", default)]
    pub dst_bck: BckJson,
    pub id: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ctlmsg: String,
    #[serde(rename = "abort-err", default)]
    pub abort_err: String,
    #[serde(default)]
    pub err: String,
    /// Packed counts: bits 10–19 are the number of workers.
    #[serde(rename = "glob.id", with = "crate::smap::string_u64", default)]
    pub glob_id: u64,
    #[serde(default)]
    pub stats: SnapStats,
    #[serde(default)]
    pub aborted: bool,
    #[serde(default)]
    pub is_idle: bool,
}

impl Snap {
    pub fn finished(&self) -> bool {
        self.end_time != ZERO_TIME && !self.end_time.is_empty()
    }

    /// Running, idle or not (what `running_all` lists).
    pub fn running(&self) -> bool {
        !self.finished() && !self.aborted
    }
}

/// Workers packed as `glob.id` does it.
pub fn pack_workers(workers: u64) -> u64 {
    (workers & 0x3ff) << 10
}

/// The number of workers packed in a `glob.id`.
pub fn unpack_workers(glob_id: u64) -> u64 {
    (glob_id >> 10) & 0x3ff
}

/// The proxy's notification status of one job (`what=status`; elements of `status_all`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatus {
    pub kind: String,
    pub uuid: String,
    #[serde(default)]
    pub err: String,
    /// Unix nanoseconds; 0 while the job runs.
    #[serde(default)]
    pub end_time: u64,
    #[serde(default)]
    pub aborted: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_idle: bool,
}

/// The SDK's job arguments (Go's `xact.ArgsMsg`, sent without JSON tags: `ID`, `Kind`, `Bck`…).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobArgs {
    pub id: String,
    pub kind: String,
    pub daemon_id: String,
    pub bck: Option<Bck>,
    pub buckets: Vec<Bck>,
    /// `show_active` (QueryMsg) or `OnlyRunning` (ArgsMsg): running jobs only.
    pub only_running: bool,
    /// `node` (QueryMsg).
    pub node: String,
}

impl JobArgs {
    /// Parses either message shape; keys case-insensitively, unknown keys ignored.
    pub fn parse(value: &serde_json::Value) -> Result<JobArgs, String> {
        let mut args = JobArgs::default();
        let serde_json::Value::Object(map) = value else {
            if value.is_null() {
                return Ok(args);
            }
            return Err(format!(
                "invalid job arguments {value}: expecting a JSON object"
            ));
        };
        let text = |v: &serde_json::Value| -> Result<String, String> {
            match v {
                serde_json::Value::Null => Ok(String::new()),
                serde_json::Value::String(s) => Ok(s.clone()),
                other => Err(format!("invalid job arguments: {other} is not a string")),
            }
        };
        let bucket = |v: &serde_json::Value| -> Result<Option<Bck>, String> {
            if v.is_null() {
                return Ok(None);
            }
            let json: BckJson = serde_json::from_value(lowercase_keys(v.clone()))
                .map_err(|e| format!("invalid bucket in job arguments: {e}"))?;
            json.to_bck()
        };
        for (key, v) in map {
            match key.to_ascii_lowercase().as_str() {
                "id" => args.id = text(v)?,
                "kind" => args.kind = text(v)?,
                "daemonid" => args.daemon_id = text(v)?,
                "node" => args.node = text(v)?,
                "bck" => args.bck = bucket(v)?,
                "buckets" => {
                    if let serde_json::Value::Array(list) = v {
                        for b in list {
                            args.buckets.extend(bucket(b)?);
                        }
                    }
                }
                "show_active" | "onlyrunning" => args.only_running = v.as_bool().unwrap_or(false),
                _ => {}
            }
        }
        Ok(args)
    }
}

/// A JSON value with the keys of its top-level object lower-cased (for Go's case-insensitive
/// decoding of untagged structs).
pub fn lowercase_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        ),
        other => other,
    }
}

/// Which objects a multi-object operation acts on (`apc.ListRange`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRange {
    /// List mode when not empty: exactly these names.
    #[serde(default, deserialize_with = "null_default")]
    pub objnames: Vec<String>,
    /// Otherwise: `""`/`*` for all, a range template, or a prefix.
    #[serde(default, deserialize_with = "null_default")]
    pub template: String,
}

/// How a selection is to be walked, decided once at the proxy (a template that does not parse is
/// a 400 there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Selection {
    /// Exactly these names; a missing one is an error of the job.
    List(Vec<String>),
    /// A range template, expanded lazily; missing names are skipped.
    Range(String),
    /// Every object whose name starts with this (empty: the whole bucket).
    Prefix(String),
}

impl Selection {
    /// The selection a `ListRange` means.
    pub fn of(lr: &ListRange) -> Result<Selection, String> {
        if !lr.objnames.is_empty() {
            for name in &lr.objnames {
                crate::names::validate_objname(name)?;
            }
            return Ok(Selection::List(lr.objnames.clone()));
        }
        let template = lr.template.as_str();
        if template.is_empty() || template == "*" {
            return Ok(Selection::Prefix(String::new()));
        }
        match crate::template::Template::parse(template)? {
            Some(parsed) => {
                parsed.check_limit(crate::template::MAX_NAMES)?;
                Ok(Selection::Range(template.to_string()))
            }
            None => Ok(Selection::Prefix(
                template.strip_suffix('*').unwrap_or(template).to_string(),
            )),
        }
    }
}

/// Options of copy-listrange and copy-bck (`apc.TCOMsg` / `apc.TCBMsg`), as the SDK sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CopyMsg {
    pub prefix: String,
    pub prepend: String,
    #[serde(deserialize_with = "null_default")]
    pub ext: std::collections::BTreeMap<String, String>,
    pub dry_run: bool,
    pub force: bool,
    #[serde(rename = "latest-ver")]
    pub latest: bool,
    pub synchronize: bool,
    #[serde(rename = "num-workers")]
    pub num_workers: i64,
    pub coer: bool,
    #[serde(deserialize_with = "null_default")]
    pub tobck: BckJson,
}

/// Options of archive (`apc.ArchiveMsg`), as the SDK sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveMsg {
    pub archname: String,
    pub mime: String,
    /// Include the source bucket name in member names.
    pub isbn: bool,
    /// Append if the archive exists.
    pub aate: bool,
    pub coer: bool,
    #[serde(deserialize_with = "null_default")]
    pub tobck: BckJson,
}

/// The bucket summary control message (`apc.BsummCtrlMsg`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SummaryMsg {
    pub uuid: String,
    pub prefix: String,
    pub cached: bool,
    pub present: bool,
}

/// One bucket's summary (`cmn.BsummResult`): counts as decimal strings, sizes as numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSummary {
    pub name: String,
    pub provider: String,
    pub namespace: Namespace,
    #[serde(rename = "ObjCount")]
    pub obj_count: SummaryCount,
    #[serde(rename = "ObjSize")]
    pub obj_size: SummarySize,
    #[serde(rename = "TotalSize")]
    pub total_size: SummaryTotal,
    pub used_pct: u64,
    pub is_present: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryCount {
    #[serde(rename = "obj_count_present", with = "crate::smap::string_u64")]
    pub present: u64,
    #[serde(rename = "obj_count_remote", with = "crate::smap::string_u64")]
    pub remote: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummarySize {
    #[serde(rename = "obj_min_size")]
    pub min: u64,
    #[serde(rename = "obj_avg_size")]
    pub avg: u64,
    #[serde(rename = "obj_max_size")]
    pub max: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryTotal {
    #[serde(rename = "size_on_disk", with = "crate::smap::string_u64")]
    pub on_disk: u64,
    #[serde(rename = "size_all_present_objs", with = "crate::smap::string_u64")]
    pub present_objs: u64,
    #[serde(rename = "size_all_remote_objs", with = "crate::smap::string_u64")]
    pub remote_objs: u64,
    #[serde(rename = "total_disks_size", with = "crate::smap::string_u64")]
    pub disks: u64,
}

/// One target's part of a bucket summary, merged by the proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SummaryPart {
    pub objects: u64,
    pub bytes: u64,
    /// Smallest object size; meaningless when `objects` is 0.
    pub min: u64,
    pub max: u64,
    pub on_disk: u64,
    /// Capacity of this target's mountpaths' file systems.
    pub disks: u64,
}

impl SummaryPart {
    /// Adds another part.
    pub fn merge(&mut self, other: &SummaryPart) {
        if other.objects > 0 {
            self.min = if self.objects == 0 {
                other.min
            } else {
                self.min.min(other.min)
            };
            self.max = self.max.max(other.max);
        }
        self.objects += other.objects;
        self.bytes += other.bytes;
        self.on_disk += other.on_disk;
        self.disks += other.disks;
    }

    /// The SDK's `BsummResult` for `bck`.
    pub fn to_summary(&self, bck: &Bck) -> BucketSummary {
        let used_pct = match self.disks {
            0 => 0,
            disks => ((self.on_disk as f64) * 100.0 / disks as f64).round() as u64,
        };
        BucketSummary {
            name: bck.name.clone(),
            provider: bck.provider.as_str().to_string(),
            namespace: bck.namespace.clone(),
            obj_count: SummaryCount {
                present: self.objects,
                remote: 0,
            },
            obj_size: SummarySize {
                min: if self.objects == 0 { 0 } else { self.min },
                avg: self.bytes.checked_div(self.objects).unwrap_or(0),
                max: self.max,
            },
            total_size: SummaryTotal {
                on_disk: self.on_disk,
                present_objs: self.bytes,
                remote_objs: 0,
                disks: self.disks,
            },
            used_pct,
            is_present: true,
        }
    }
}

/// What a target is asked to run, sent by the proxy (`POST /v1/internal/jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStart {
    pub id: String,
    pub spec: JobSpec,
}

/// The parameters of every job the proxy launches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum JobSpec {
    Lru,
    #[serde(rename = "cleanup-store")]
    Cleanup,
    /// Removes the objects; in a remote bucket from the cloud too.
    #[serde(rename = "delete-listrange")]
    Delete {
        bck: Bck,
        selection: Selection,
    },
    /// Removes the cluster's copies of a remote bucket's objects, never the cloud's.
    #[serde(rename = "evict-listrange")]
    Evict {
        bck: Bck,
        selection: Selection,
        /// The whole bucket (`evict-remote-bck` with `keep_bck_md`), reported as that kind.
        #[serde(default)]
        whole_bucket: bool,
    },
    /// Brings a remote bucket's objects into the cluster.
    #[serde(rename = "prefetch-listrange")]
    Prefetch {
        bck: Bck,
        selection: Selection,
        /// Also refetch cached objects the cloud has changed (`latest-ver`).
        #[serde(default)]
        latest: bool,
        #[serde(default)]
        workers: i64,
    },
    #[serde(rename = "copy-listrange")]
    CopyObjects {
        src: Bck,
        dst: Bck,
        selection: Selection,
        copy: CopyMsg,
    },
    #[serde(rename = "copy-bck")]
    CopyBucket {
        src: Bck,
        dst: Bck,
        copy: CopyMsg,
    },
    Archive {
        src: Bck,
        dst: Bck,
        selection: Selection,
        archive: ArchiveMsg,
    },
    #[serde(rename = "summary-bck")]
    Summary {
        bck: Bck,
        prefix: String,
    },
    #[serde(rename = "move-bck")]
    MoveBucket {
        from: Bck,
        to: Bck,
    },
    /// Ingests files from the target's file system (`promote`).
    Promote {
        bck: Bck,
        args: PromoteArgs,
    },
    #[serde(rename = "ec-encode")]
    EcEncode {
        bck: Bck,
    },
    #[serde(rename = "make-n-copies")]
    MakeNCopies {
        bck: Bck,
        /// Copies each object should have, itself included.
        copies: u32,
    },
}

/// `apc.PromoteArgs`: what to promote and how (the SDK's `promote()` value).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PromoteArgs {
    /// The one target that does the work (empty: the proxy picks).
    pub tid: String,
    /// Absolute path of a file or directory under the promote root.
    pub src: String,
    /// Destination object name (a file) or prefix.
    pub obj: String,
    /// Descend into subdirectories.
    pub rcr: bool,
    /// Overwrite existing objects (else they are skipped).
    pub ovw: bool,
    /// Delete each source file once it is stored.
    pub dls: bool,
    /// The source is not a file share (AIStore's shared-FS detection; moss walks on one target).
    pub notshr: bool,
}

/// The object a promoted file becomes: for a file source, `obj` itself unless it is empty or
/// ends with `/` (then `obj` + the file's base name); for a directory source, `obj` + the
/// file's path relative to the directory.
pub fn promoted_name(obj: &str, rel: &str, source_is_dir: bool) -> String {
    if source_is_dir {
        return format!("{obj}{rel}");
    }
    if !obj.is_empty() && !obj.ends_with('/') {
        return obj.to_string();
    }
    let base = rel.rsplit('/').next().unwrap_or(rel);
    format!("{obj}{base}")
}

/// AIStore's checks of a promote source, on its text: non-empty, absolute, no `.` or `..`
/// elements, and under `root` (the root itself or below it).
pub fn check_promote_source(src: &str, root: &str) -> Result<(), String> {
    let invalid = |why: &str| Err(format!("invalid promote source {src:?}: {why}"));
    if src.is_empty() {
        return invalid("empty");
    }
    if !src.starts_with('/') {
        return invalid("must be an absolute path");
    }
    if src.split('/').any(|e| e == "." || e == "..") {
        return invalid("must not contain \".\" or \"..\" elements");
    }
    let root = root.trim_end_matches('/');
    let src_trim = src.trim_end_matches('/');
    if src_trim != root && !src_trim.starts_with(&format!("{root}/")) {
        return invalid(&format!("must be under {root}"));
    }
    Ok(())
}

impl JobSpec {
    /// The wire kind.
    pub fn kind(&self) -> &'static str {
        match self {
            JobSpec::Lru => LRU,
            JobSpec::Cleanup => CLEANUP,
            JobSpec::Delete { .. } => DELETE_OBJECTS,
            JobSpec::Evict {
                whole_bucket: true, ..
            } => EVICT_REMOTE_BCK,
            JobSpec::Evict { .. } => EVICT_OBJECTS,
            JobSpec::Prefetch { .. } => PREFETCH_OBJECTS,
            JobSpec::CopyObjects { .. } => COPY_OBJECTS,
            JobSpec::CopyBucket { .. } => COPY_BCK,
            JobSpec::Archive { .. } => ARCHIVE,
            JobSpec::Summary { .. } => SUMMARY,
            JobSpec::MoveBucket { .. } => MOVE_BCK,
            JobSpec::Promote { .. } => PROMOTE,
            JobSpec::EcEncode { .. } => EC_ENCODE,
            JobSpec::MakeNCopies { .. } => MAKE_N_COPIES,
        }
    }
}

/// A stop request from the proxy to its targets: by id, or every running job of a kind (and
/// optionally a bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStop {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub bck: Option<Bck>,
    /// The abort error to record (`user abort` for a user's stop).
    pub reason: String,
}

/// A target's answer about one job: its snapshot, and what it produced (a summary part).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobReport {
    pub snap: Snap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// The proxy's query to one target (`GET /v1/internal/jobs`, JSON body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFilter {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub bck: Option<Bck>,
    #[serde(default)]
    pub only_running: bool,
}

#[cfg(test)]
mod tests {
    #[test]
    fn promote_sources_and_names_follow_aistore() {
        let root = "/var/lib/ais/promote";
        assert!(check_promote_source("/var/lib/ais/promote/x", root).is_ok());
        assert!(check_promote_source("/var/lib/ais/promote", root).is_ok());
        for bad in [
            "",
            "rel/x",
            "/var/lib/ais/promote/../etc",
            "/var/lib/ais/promote/./x",
            "/var/lib/ais/promoted",
            "/etc/passwd",
        ] {
            assert!(check_promote_source(bad, root).is_err(), "{bad}");
        }
        assert_eq!(promoted_name("dst", "dir/f", false), "dst");
        assert_eq!(promoted_name("dst/", "dir/f", false), "dst/f");
        assert_eq!(promoted_name("", "f", false), "f");
        assert_eq!(promoted_name("p/", "inner/f", true), "p/inner/f");
        assert_eq!(promoted_name("", "inner/f", true), "inner/f");
    }

    use super::*;

    #[test]
    fn kinds_resolve_by_wire_and_display_name() {
        assert_eq!(kind_info("cleanup").unwrap().kind, CLEANUP);
        assert_eq!(kind_info("copy-objects").unwrap().kind, COPY_OBJECTS);
        assert_eq!(kind_info("get-batch").unwrap().kind, GET_BATCH);
        assert!(kind_info("get-batch").unwrap().idles);
        assert!(!kind_info("copy-bck").unwrap().idles);
        assert!(kind_info("nope").is_none());
        assert!(kind_info("").is_none());
    }

    #[test]
    fn job_ids_follow_aistores_rule() {
        assert!(valid_job_id("Z8WkHxwIrr"));
        assert!(valid_job_id("tco-cysbohAGLq"));
        assert!(valid_job_id("gbt-NeEra51oM"));
        assert!(valid_job_id("g17"));
        assert!(!valid_job_id("short"));
        assert!(!valid_job_id("-leadingdash1"));
        assert!(!valid_job_id("trailingdash-"));
        assert!(!valid_job_id("has space inside"));
        assert!(!valid_job_id("g"));
        assert!(!valid_job_id(&"a".repeat(33)));
    }

    #[test]
    fn job_args_match_keys_case_insensitively() {
        let v = serde_json::json!({"ID":"abc","Kind":"lru","DaemonID":"t1",
            "Bck":{"name":"b","provider":"ais","namespace":null},"Buckets":null});
        let args = JobArgs::parse(&v).unwrap();
        assert_eq!(args.id, "abc");
        assert_eq!(args.kind, "lru");
        assert_eq!(args.bck, Some(Bck::ais("b")));
        let q = JobArgs::parse(&serde_json::json!({"kind":"lru","node":"","show_active":true}))
            .unwrap();
        assert!(q.only_running);
        assert!(JobArgs::parse(&serde_json::json!("x")).is_err());
        assert_eq!(
            JobArgs::parse(&serde_json::Value::Null).unwrap(),
            JobArgs::default()
        );
    }

    #[test]
    fn snapshots_marshal_as_go_does() {
        let snap = Snap {
            start_time: "2026-08-21T19:17:52.512034917Z".into(),
            end_time: ZERO_TIME.into(),
            id: "tco-kQwErTyUiO".into(),
            kind: COPY_OBJECTS.into(),
            glob_id: pack_workers(3),
            stats: SnapStats {
                loc_objs: 4,
                ..Default::default()
            },
            ..Default::default()
        };
        let v = serde_json::to_value(&snap).unwrap();
        assert_eq!(v["glob.id"], "3072");
        assert_eq!(v["stats"]["loc-objs"], "4");
        assert_eq!(v["end-time"], ZERO_TIME);
        assert!(v["ext"].is_null());
        assert_eq!(v["bck"]["name"], "");
        assert!(v.get("ctlmsg").is_none());
        let back: Snap = serde_json::from_value(v).unwrap();
        assert_eq!(back, snap);
        assert!(back.running());
        assert_eq!(unpack_workers(back.glob_id), 3);
    }

    #[test]
    fn selections() {
        let lr = |names: &[&str], t: &str| ListRange {
            objnames: names.iter().map(|s| s.to_string()).collect(),
            template: t.into(),
        };
        assert_eq!(
            Selection::of(&lr(&["a", "b"], "")).unwrap(),
            Selection::List(vec!["a".into(), "b".into()])
        );
        assert_eq!(
            Selection::of(&lr(&[], "")).unwrap(),
            Selection::Prefix(String::new())
        );
        assert_eq!(
            Selection::of(&lr(&[], "*")).unwrap(),
            Selection::Prefix(String::new())
        );
        assert_eq!(
            Selection::of(&lr(&[], "dir/*")).unwrap(),
            Selection::Prefix("dir/".into())
        );
        assert_eq!(
            Selection::of(&lr(&[], "obj-{0..9}")).unwrap(),
            Selection::Range("obj-{0..9}".into())
        );
        assert!(Selection::of(&lr(&[], "obj-{1..1000000000}")).is_err());
        assert!(Selection::of(&lr(&[], "obj-{9..0}")).is_err());
        assert!(Selection::of(&lr(&["../x"], "")).is_err());
    }

    #[test]
    fn summaries_merge_and_render() {
        let mut total = SummaryPart::default();
        total.merge(&SummaryPart {
            objects: 2,
            bytes: 24,
            min: 12,
            max: 12,
            on_disk: 8192,
            disks: 1 << 40,
        });
        total.merge(&SummaryPart::default());
        total.merge(&SummaryPart {
            objects: 1,
            bytes: 5,
            min: 5,
            max: 5,
            on_disk: 4096,
            disks: 1 << 40,
        });
        let s = total.to_summary(&Bck::ais("b"));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ObjCount"]["obj_count_present"], "3");
        assert_eq!(v["TotalSize"]["size_all_present_objs"], "29");
        assert_eq!(v["ObjSize"]["obj_min_size"], 5);
        assert_eq!(v["ObjSize"]["obj_max_size"], 12);
        assert_eq!(v["ObjSize"]["obj_avg_size"], 9);
        assert_eq!(v["used_pct"], 0);
        assert_eq!(v["is_present"], true);
        let empty = SummaryPart::default().to_summary(&Bck::ais("b"));
        assert_eq!(empty.obj_size.min, 0);
    }
}
