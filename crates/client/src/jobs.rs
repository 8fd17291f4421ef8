//! Jobs and the operations that run as jobs: multi-object delete/copy/archive, bucket copy,
//! rename and summary; job snapshots, status, start, stop and waiting.
use std::collections::BTreeMap;
use std::time::Duration;

use moss_types::jobs::{BckJson, BucketSummary, JobStatus, ListRange, Snap, SummaryMsg};
use moss_types::lso::ActMsg;
use reqwest::{Method, StatusCode};

use crate::Client;
use crate::error::{Error, Result};
use crate::http::{Call, error_from_response};

/// Job snapshots by target id, as `GET /v1/cluster?what=qryxstats` answers.
pub type JobSnaps = BTreeMap<String, Vec<Snap>>;

/// Options of an object or bucket copy.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Prepended to every destination name.
    pub prepend: String,
    /// Visit and count, write nothing.
    pub dry_run: bool,
    /// Transfers in flight per target (0 = the cluster's default, -1 = one at a time).
    pub workers: i64,
    /// Keep going when an object fails (errors are listed on the job).
    pub continue_on_error: bool,
}

/// Options of an archive job.
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// Name members `<bucket>/<object>` instead of `<object>`.
    pub include_bucket: bool,
    /// Append to the shard if it exists.
    pub append: bool,
    /// Skip missing objects (listed on the job) instead of failing.
    pub continue_on_error: bool,
}

/// How a job ended, as far as a waiter can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutcome {
    pub aborted: bool,
    /// Errors (or the abort reason); empty on a clean finish.
    pub error: String,
    /// Objects and bytes processed (summed over targets).
    pub objects: u64,
    pub bytes: u64,
}

fn act(action: &str, value: serde_json::Value) -> ActMsg {
    ActMsg {
        action: action.to_string(),
        name: String::new(),
        value,
    }
}

fn bck_json(bucket: &str) -> serde_json::Value {
    let (name, provider) = crate::http::bucket_parts(bucket);
    serde_json::json!({"name": name, "provider": provider, "namespace": null})
}

fn selection_value(selection: &ListRange) -> Result<serde_json::Map<String, serde_json::Value>> {
    if selection.objnames.is_empty() && selection.template.is_empty() {
        return Err(Error::InvalidRequest(
            "empty selection: give object names, a template or a prefix".to_string(),
        ));
    }
    let mut map = serde_json::Map::new();
    if selection.objnames.is_empty() {
        map.insert("template".into(), selection.template.clone().into());
    } else {
        map.insert("objnames".into(), selection.objnames.clone().into());
    }
    Ok(map)
}

impl Client {
    /// Sends a bucket action and returns the job id the server answers with (plain text).
    async fn job_action(&self, method: Method, url: String, msg: &ActMsg) -> Result<String> {
        let call = Call::new(method, url).json(msg)?;
        let what = call.describe();
        let response = self.execute(call).await?;
        let text = response
            .text()
            .await
            .map_err(|e| Error::transport(what, e))?;
        Ok(text.trim().trim_matches('"').to_string())
    }

    /// Brings the selected objects of a remote bucket into the cluster (a `prefetch-listrange`
    /// job); `latest` also refetches cached objects the cloud has changed. Returns its id.
    pub async fn prefetch_objects(
        &self,
        bucket: &str,
        selection: &ListRange,
        latest: bool,
    ) -> Result<String> {
        let mut value = selection_value(selection)?;
        value.insert("latest-ver".into(), latest.into());
        let msg = act("prefetch-listrange", serde_json::Value::Object(value));
        self.job_action(Method::POST, self.bucket_url(bucket, &[]), &msg)
            .await
    }

    /// Drops the cluster's copies of the selected objects of a remote bucket (an
    /// `evict-listrange` job; the cloud keeps them); returns its id.
    pub async fn evict_objects(&self, bucket: &str, selection: &ListRange) -> Result<String> {
        let value = serde_json::Value::Object(selection_value(selection)?);
        let msg = act("evict-listrange", value);
        self.job_action(Method::DELETE, self.bucket_url(bucket, &[]), &msg)
            .await
    }

    /// Drops every cached object of a remote bucket; `keep_props` keeps it in the cluster's
    /// bucket metadata (else the next access adds it again with default props).
    pub async fn evict_bucket(&self, bucket: &str, keep_props: bool) -> Result<()> {
        let msg = act("evict-remote-bck", serde_json::Value::Null);
        let keep = keep_props.to_string();
        let call = Call::new(
            Method::DELETE,
            self.bucket_url(bucket, &[("keep_bck_md", keep.as_str())]),
        )
        .json(&msg)?;
        self.execute(call).await?;
        Ok(())
    }

    /// Deletes the selected objects of `bucket` (a `delete-listrange` job); returns its id.
    pub async fn delete_objects(&self, bucket: &str, selection: &ListRange) -> Result<String> {
        let value = serde_json::Value::Object(selection_value(selection)?);
        let msg = act("delete-listrange", value);
        self.job_action(Method::DELETE, self.bucket_url(bucket, &[]), &msg)
            .await
    }

    /// Copies the selected objects of `src` into `dst` (a `copy-listrange` job); returns its id.
    pub async fn copy_objects(
        &self,
        src: &str,
        dst: &str,
        selection: &ListRange,
        options: &CopyOptions,
    ) -> Result<String> {
        let mut value = selection_value(selection)?;
        value.insert("prepend".into(), options.prepend.clone().into());
        value.insert("dry_run".into(), options.dry_run.into());
        value.insert("coer".into(), options.continue_on_error.into());
        value.insert("tobck".into(), bck_json(dst));
        if options.workers != 0 {
            value.insert("num-workers".into(), options.workers.into());
        }
        let msg = act("copy-listrange", serde_json::Value::Object(value));
        self.job_action(Method::POST, self.bucket_url(src, &[]), &msg)
            .await
    }

    /// Copies every object of `src` whose name starts with `prefix` into `dst` (a `copy-bck`
    /// job); returns its id.
    pub async fn copy_bucket(
        &self,
        src: &str,
        dst: &str,
        prefix: &str,
        options: &CopyOptions,
    ) -> Result<String> {
        let mut value = serde_json::json!({
            "prefix": prefix,
            "prepend": options.prepend,
            "dry_run": options.dry_run,
            "coer": options.continue_on_error,
        });
        if options.workers != 0 {
            value["num-workers"] = options.workers.into();
        }
        let to = crate::http::bck_of(dst).uname_prefix();
        let msg = act("copy-bck", value);
        self.job_action(
            Method::POST,
            self.bucket_url(src, &[("bck_to", to.as_str())]),
            &msg,
        )
        .await
    }

    /// Builds the shard `dst/archname` from the selected objects of `src`, in order (an
    /// `archive` job); returns its id.
    pub async fn archive_objects(
        &self,
        src: &str,
        dst: &str,
        archname: &str,
        selection: &ListRange,
        options: &ArchiveOptions,
    ) -> Result<String> {
        let mut value = selection_value(selection)?;
        value.insert("archname".into(), archname.into());
        value.insert("isbn".into(), options.include_bucket.into());
        value.insert("aate".into(), options.append.into());
        value.insert("coer".into(), options.continue_on_error.into());
        value.insert("tobck".into(), bck_json(dst));
        let msg = act("archive", serde_json::Value::Object(value));
        self.job_action(Method::PUT, self.bucket_url(src, &[]), &msg)
            .await
    }

    /// Renames bucket `from` to `to` (a `move-bck` job); returns its id.
    pub async fn rename_bucket(&self, from: &str, to: &str) -> Result<String> {
        let to = crate::http::bck_of(to).uname_prefix();
        let msg = act("move-bck", serde_json::Value::Null);
        self.job_action(
            Method::POST,
            self.bucket_url(from, &[("bck_to", to.as_str())]),
            &msg,
        )
        .await
    }

    /// A bucket's summary (object count, sizes), computed by a `summary-bck` job and polled.
    pub async fn bucket_summary(&self, bucket: &str, prefix: &str) -> Result<BucketSummary> {
        let mut msg = SummaryMsg {
            uuid: String::new(),
            prefix: prefix.to_string(),
            cached: true,
            present: true,
        };
        let start = act(
            "summary-bck",
            serde_json::to_value(&msg).unwrap_or_default(),
        );
        msg.uuid = self
            .job_action(Method::GET, self.bucket_url(bucket, &[]), &start)
            .await?;
        let mut pause = Duration::from_millis(100);
        loop {
            let poll = act(
                "summary-bck",
                serde_json::to_value(&msg).unwrap_or_default(),
            );
            let call = Call::new(Method::GET, self.bucket_url(bucket, &[])).json(&poll)?;
            let what = call.describe();
            let response = self.send_following(call).await?;
            match response.status() {
                StatusCode::OK => {
                    let mut list: Vec<BucketSummary> = response
                        .json()
                        .await
                        .map_err(|e| Error::decode(what.clone(), e))?;
                    return list
                        .pop()
                        .ok_or_else(|| Error::decode(what, "empty summary list"));
                }
                StatusCode::ACCEPTED | StatusCode::PARTIAL_CONTENT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 3 / 2).min(Duration::from_secs(2));
                }
                _ => return Err(error_from_response(response).await),
            }
        }
    }

    /// Job snapshots by target: one job (`id`), or every job of `kind` (both empty: all jobs).
    pub async fn job_snapshots(&self, id: &str, kind: &str) -> Result<JobSnaps> {
        let args = serde_json::json!({"ID": id, "Kind": kind, "DaemonID": "", "Bck": null, "Buckets": null});
        let call =
            Call::new(Method::GET, self.url("cluster", &[("what", "qryxstats")])).json(&args)?;
        self.json(call).await
    }

    /// The proxy's status of a job that has one (terminal kinds).
    pub async fn job_status(&self, id: &str) -> Result<JobStatus> {
        let args = serde_json::json!({"ID": id, "Kind": ""});
        let call =
            Call::new(Method::GET, self.url("cluster", &[("what", "status")])).json(&args)?;
        self.json(call).await
    }

    /// Starts a job of a startable kind (`lru`, `cleanup`, `rebalance`); returns its id.
    pub async fn start_job(&self, kind: &str, bucket: Option<&str>) -> Result<String> {
        let bck = bucket.map(|b| {
            let (name, provider) = crate::http::bucket_parts(b);
            serde_json::json!({"name": name, "provider": provider})
        });
        let args = serde_json::json!({"ID": "", "Kind": kind, "DaemonID": "", "Bck": bck, "Buckets": null});
        let msg = act("start", args);
        self.job_action(Method::PUT, self.url("cluster", &[]), &msg)
            .await
    }

    /// Aborts a job by id, or every running job of a kind.
    pub async fn stop_job(&self, id: &str, kind: &str) -> Result<()> {
        let args = serde_json::json!({"ID": id, "Kind": kind, "DaemonID": "", "Bck": null, "Buckets": null});
        let call = Call::new(Method::PUT, self.url("cluster", &[])).json(&act("stop", args))?;
        self.unit(call).await
    }

    /// Polls job `id` until every target's share is done (finished, aborted, or for jobs that
    /// idle between work items: idle). `progress` sees the summed counters after every poll.
    pub async fn wait_job(
        &self,
        id: &str,
        poll: Duration,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<JobOutcome> {
        loop {
            let snaps = self.job_snapshots(id, "").await?;
            let all: Vec<&Snap> = snaps.values().flatten().filter(|s| s.id == id).collect();
            let (objects, bytes) = all.iter().fold((0, 0), |(o, b), s| {
                (o + s.stats.loc_objs, b + s.stats.loc_bytes)
            });
            progress(objects, bytes);
            let done =
                !all.is_empty() && all.iter().all(|s| s.finished() || s.aborted || s.is_idle);
            if done {
                let aborted = all.iter().any(|s| s.aborted);
                let mut errors: Vec<String> = Vec::new();
                for s in &all {
                    for text in [&s.abort_err, &s.err] {
                        if !text.is_empty() && !errors.contains(text) {
                            errors.push(text.clone());
                        }
                    }
                }
                return Ok(JobOutcome {
                    aborted,
                    error: errors.join("; "),
                    objects,
                    bytes,
                });
            }
            tokio::time::sleep(poll).await;
        }
    }
}

/// The bucket display of a snapshot (`ais://b`, `ais://src => ais://dst`, `-`).
pub fn snap_bucket(snap: &Snap) -> String {
    let name = |b: &BckJson| -> Option<String> { b.to_bck().ok().flatten().map(|b| b.cname()) };
    match (name(&snap.src_bck), name(&snap.dst_bck)) {
        (Some(src), Some(dst)) if src != dst => format!("{src} => {dst}"),
        _ => name(&snap.bck).unwrap_or_else(|| "-".to_string()),
    }
}
