//! Multi-object and bucket-level operations on the proxy: everything deterministic is validated
//! here (4xx before any target is involved), then the job is launched on the targets that do
//! the work. Wire contract: `shared/reference/ais-jobs.md` §3–§4; design: RFC 0003.
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use moss_archive::Format;
use moss_types::jobs::{
    self, ArchiveMsg, CopyMsg, JobSpec, ListRange, Selection, SummaryMsg, SummaryPart,
};
use moss_types::lso::ActMsg;
use moss_types::smap::{Bmd, BucketProps, Snode};
use moss_types::{Bck, Provider, headers, names};

use super::buckets::{action_message, set_props_header};
use super::jobs::{finish_coordinated, launch, record_coordinated, shares};
use super::{Proxy, new_bid, now_nanos, require_bucket, unsupported, url_bucket};
use crate::http::{ApiError, Query};

/// Bucket actions that exist in AIStore but that moss does not run.
const UNSUPPORTED: &[&str] = &["etl-listrange", "etl-bck", "blob-download"];

/// How often a rename's coordinator looks at the targets' shares.
const RENAME_POLL: Duration = Duration::from_millis(300);
/// How long a rename's coordinator waits before running a failed share again.
const RENAME_RETRY: Duration = Duration::from_secs(5);

fn value_of<T: serde::de::DeserializeOwned + Default>(
    value: &serde_json::Value,
    what: &str,
) -> Result<T, ApiError> {
    if value.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid {what} message: {e}")))
}

fn all_targets(proxy: &Proxy) -> Vec<Snode> {
    proxy.shared.smap.load().tmap.values().cloned().collect()
}

/// AIStore's answer to evict/prefetch of an `ais` bucket.
fn remote_only(action: &str, bck: &Bck) -> ApiError {
    ApiError::bad_request(format!(
        "{action}: expecting remote bucket (have {})",
        bck.cname()
    ))
}

fn selection_of(value: &serde_json::Value) -> Result<Selection, ApiError> {
    let lr: ListRange = value_of(value, "list-range")?;
    Selection::of(&lr).map_err(ApiError::bad_request)
}

/// The job id as the SDK reads it: plain text.
fn id_response(id: String) -> Response {
    id.into_response()
}

/// `POST /v1/buckets/<b>` actions other than `create-bck`.
pub async fn post_action(
    proxy: &Arc<Proxy>,
    bck: &Bck,
    query: &Query,
    msg: ActMsg,
) -> Result<Response, ApiError> {
    match msg.action.as_str() {
        jobs::COPY_OBJECTS => copy_objects(proxy, bck, &msg.value).await,
        jobs::COPY_BCK => copy_bucket(proxy, bck, query, &msg.value).await,
        jobs::MOVE_BCK => rename(proxy, bck, query).await,
        jobs::PREFETCH_OBJECTS => prefetch(proxy, bck, &msg.value).await,
        jobs::MAKE_N_COPIES => make_n_copies(proxy, bck, &msg.value).await,
        action if UNSUPPORTED.contains(&action) => Err(ApiError::bad_request(format!(
            "bucket action {action:?} is not supported by moss"
        ))),
        other => Err(unsupported(other)),
    }
}

/// `make-n-copies` (value: the number of copies, the object itself included): sets
/// `mirror.copies` (and `mirror.enabled`: on above 1, off at 1), as AIStore does, and starts the
/// job that brings the bucket's objects there.
async fn make_n_copies(
    proxy: &Arc<Proxy>,
    bck: &Bck,
    value: &serde_json::Value,
) -> Result<Response, ApiError> {
    let copies = match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
    .filter(|n| (1..=super::buckets::MAX_COPIES as u64).contains(n))
    .ok_or_else(|| {
        ApiError::bad_request(format!(
            "make-n-copies: invalid number of copies {value} (expected value in range [1, {}])",
            super::buckets::MAX_COPIES
        ))
    })? as u32;
    require_bucket(proxy, bck).await?;
    proxy
        .modify(|meta| {
            let props = meta
                .bmd
                .get_mut(bck)
                .ok_or_else(|| ApiError::no_bucket(&bck.cname()))?;
            let mut after = props.clone();
            after.mirror.enabled = copies > 1;
            if copies > 1 {
                after.mirror.copies = copies;
            }
            super::buckets::check_mirror(&after)?;
            *props = after;
            Ok(())
        })
        .await?;
    let id = super::jobs::start_make_n_copies(proxy, bck).await?;
    Ok(id_response(id))
}

/// `DELETE /v1/buckets/<b>` actions other than `destroy-bck`.
pub async fn delete_action(
    proxy: &Arc<Proxy>,
    bck: &Bck,
    query: &Query,
    msg: ActMsg,
) -> Result<Response, ApiError> {
    match msg.action.as_str() {
        jobs::DELETE_OBJECTS => {
            require_bucket(proxy, bck).await?;
            let selection = selection_of(&msg.value)?;
            let spec = JobSpec::Delete {
                bck: bck.clone(),
                selection,
            };
            let id = launch(proxy, moss_jobs::generic_id(), spec, all_targets(proxy)).await?;
            Ok(id_response(id))
        }
        jobs::EVICT_OBJECTS => {
            require_bucket(proxy, bck).await?;
            if bck.provider == Provider::Ais {
                return Err(remote_only(&msg.action, bck));
            }
            let spec = JobSpec::Evict {
                bck: bck.clone(),
                selection: selection_of(&msg.value)?,
                whole_bucket: false,
            };
            let id = launch(proxy, moss_jobs::generic_id(), spec, all_targets(proxy)).await?;
            Ok(id_response(id))
        }
        jobs::EVICT_REMOTE_BCK => evict_bucket(proxy, bck, query).await,
        other => Err(unsupported(other)),
    }
}

/// `prefetch-listrange` as SDK 2.0.0 sends it (`PrefetchMsg`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct PrefetchMsg {
    #[serde(flatten)]
    list_range: ListRange,
    #[serde(rename = "latest-ver")]
    latest: bool,
    #[serde(rename = "num-workers")]
    workers: i64,
}

/// `POST /v1/buckets/<b> {"action":"prefetch-listrange"}`: every target cold-GETs the selected
/// objects it owns; answers the job id.
async fn prefetch(
    proxy: &Arc<Proxy>,
    bck: &Bck,
    value: &serde_json::Value,
) -> Result<Response, ApiError> {
    require_bucket(proxy, bck).await?;
    if bck.provider == Provider::Ais {
        return Err(remote_only(jobs::PREFETCH_OBJECTS, bck));
    }
    let msg: PrefetchMsg = value_of(value, "prefetch")?;
    let spec = JobSpec::Prefetch {
        bck: bck.clone(),
        selection: Selection::of(&msg.list_range).map_err(ApiError::bad_request)?,
        latest: msg.latest,
        workers: msg.workers,
    };
    let id = launch(proxy, moss_jobs::generic_id(), spec, all_targets(proxy)).await?;
    Ok(id_response(id))
}

/// `DELETE /v1/buckets/<b> {"action":"evict-remote-bck"}`: drops every cached object. With
/// `keep_bck_md=true` the bucket stays in the metadata with its props (the cached copies are
/// evicted by a job this call waits for); without, the bucket leaves the metadata and the
/// targets drop its data, as for a destroyed bucket (the next access adds it again).
async fn evict_bucket(proxy: &Arc<Proxy>, bck: &Bck, query: &Query) -> Result<Response, ApiError> {
    if bck.provider == Provider::Ais {
        return Err(remote_only(jobs::EVICT_REMOTE_BCK, bck));
    }
    if proxy.shared.bmd.load().get(bck).is_none() {
        return Err(ApiError::no_bucket(&bck.cname()));
    }
    if !crate::http::parse_bool(query.str("keep_bck_md")) {
        proxy
            .modify(|meta| {
                meta.bmd.buckets.remove(&bck.uname_prefix());
                Ok(())
            })
            .await?;
        tracing::info!(bucket = %bck, "remote bucket evicted");
        return Ok(StatusCode::OK.into_response());
    }
    let spec = JobSpec::Evict {
        bck: bck.clone(),
        selection: Selection::Prefix(String::new()),
        whole_bucket: true,
    };
    let id = launch(proxy, moss_jobs::generic_id(), spec, all_targets(proxy)).await?;
    super::jobs::wait_done(proxy, &id, EVICT_WAIT).await?;
    Ok(StatusCode::OK.into_response())
}

/// The longest an `evict-remote-bck` call waits for the cached copies to be gone.
const EVICT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `PUT /v1/buckets/<b>`: `archive`.
pub async fn bucket_put(
    proxy: &Arc<Proxy>,
    bucket: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    let msg = action_message(req).await?;
    match msg.action.as_str() {
        jobs::ARCHIVE => archive(proxy, &bck, &msg.value).await,
        other => Err(unsupported(other)),
    }
}

/// The destination bucket of a copy, created with the source's props unless it exists (never
/// for a dry run).
async fn copy_destination(
    proxy: &Proxy,
    src: &Bck,
    dst: &Bck,
    dry_run: bool,
) -> Result<(), ApiError> {
    if dst.provider != Provider::Ais {
        return Err(ApiError::bad_request(format!(
            "copy to {}: only ais:// destinations are supported",
            dst.cname()
        )));
    }
    if dry_run || proxy.shared.bmd.load().get(dst).is_some() {
        return Ok(());
    }
    proxy
        .modify(|meta| {
            if meta.bmd.get(dst).is_some() {
                return Ok(());
            }
            reuse_renamed_name(&mut meta.bmd, dst)?;
            if meta.bmd.get(src).is_none() {
                return Err(ApiError::no_bucket(&src.cname()));
            }
            let props = BucketProps::new(dst.clone(), now_nanos(), new_bid(&meta.bmd));
            meta.bmd.buckets.insert(dst.uname_prefix(), props);
            Ok(())
        })
        .await?;
    tracing::info!(bucket = %dst, from = %src, "bucket created as a copy destination");
    Ok(())
}

fn check_copy(src: &Bck, copy: &CopyMsg) -> Result<(), ApiError> {
    if copy.synchronize && !copy.prepend.is_empty() {
        return Err(ApiError::bad_request(
            "invalid copy: \"synchronize\" and a non-empty \"prepend\" cannot be combined",
        ));
    }
    if copy.synchronize && src.provider == Provider::Ais {
        return Err(ApiError::bad_request(format!(
            "invalid copy: \"synchronize\" applies to remote sources; {} has no remote to synchronize with",
            src.cname()
        )));
    }
    Ok(())
}

/// `copy-listrange`: copy a list, range or prefix of objects to another bucket.
async fn copy_objects(
    proxy: &Arc<Proxy>,
    src: &Bck,
    value: &serde_json::Value,
) -> Result<Response, ApiError> {
    require_bucket(proxy, src).await?;
    let selection = selection_of(value)?;
    let copy: CopyMsg = value_of(value, "copy")?;
    check_copy(src, &copy)?;
    let dst = copy
        .tobck
        .to_bck()
        .map_err(ApiError::bad_request)?
        .ok_or_else(|| ApiError::bad_request("copy: missing destination bucket \"tobck\""))?;
    copy_destination(proxy, src, &dst, copy.dry_run).await?;
    let spec = JobSpec::CopyObjects {
        src: src.clone(),
        dst,
        selection,
        copy,
    };
    let id = launch(proxy, moss_jobs::copy_id(), spec, all_targets(proxy)).await?;
    Ok(id_response(id))
}

/// The bucket named by `?bck_to=<uname>`.
fn bck_to(query: &Query) -> Result<Bck, ApiError> {
    let to = query.str("bck_to");
    if to.is_empty() {
        return Err(ApiError::bad_request("missing \"bck_to\" query parameter"));
    }
    Bck::parse_uname(to).map_err(ApiError::bad_request)
}

/// `copy-bck`: copy every object (under a prefix) to another bucket.
async fn copy_bucket(
    proxy: &Arc<Proxy>,
    src: &Bck,
    query: &Query,
    value: &serde_json::Value,
) -> Result<Response, ApiError> {
    require_bucket(proxy, src).await?;
    let dst = bck_to(query)?;
    let copy: CopyMsg = value_of(value, "copy-bucket")?;
    check_copy(src, &copy)?;
    if &dst == src && !copy.dry_run {
        return Err(ApiError::bad_request(format!(
            "cannot copy {} onto itself",
            src.cname()
        )));
    }
    copy_destination(proxy, src, &dst, copy.dry_run).await?;
    let spec = JobSpec::CopyBucket {
        src: src.clone(),
        dst,
        copy,
    };
    let id = launch(proxy, moss_jobs::generic_id(), spec, all_targets(proxy)).await?;
    Ok(id_response(id))
}

/// `archive`: one shard from a list, range or prefix of objects, built by the shard's owner.
async fn archive(
    proxy: &Arc<Proxy>,
    src: &Bck,
    value: &serde_json::Value,
) -> Result<Response, ApiError> {
    require_bucket(proxy, src).await?;
    let selection = selection_of(value)?;
    let archive: ArchiveMsg = value_of(value, "archive")?;
    names::validate_objname(&archive.archname)
        .map_err(|e| ApiError::bad_request(format!("invalid archive name: {e}")))?;
    let format = Format::from_name(&archive.archname).ok_or_else(|| {
        ApiError::bad_request(format!(
            "archive name {:?} must end in .tar, .tgz, .tar.gz, .zip or .tar.lz4",
            archive.archname
        ))
    })?;
    if !archive.mime.is_empty() {
        let named = Format::from_mime(&archive.mime)
            .map_err(|e| ApiError::bad_request(format!("archive: {e}")))?;
        if named != format {
            return Err(ApiError::bad_request(format!(
                "mime mismatch: {:?} is not the format of {:?}",
                archive.mime, archive.archname
            )));
        }
    }
    let dst = match archive.tobck.to_bck().map_err(ApiError::bad_request)? {
        Some(dst) => dst,
        None => src.clone(),
    };
    require_bucket(proxy, &dst).await?;
    let owner = {
        let smap = proxy.shared.smap.load();
        moss_cluster::owner_of_object(&smap, &dst, &archive.archname)
            .cloned()
            .ok_or_else(|| ApiError::unavailable("no targets in the cluster"))?
    };
    let spec = JobSpec::Archive {
        src: src.clone(),
        dst,
        selection,
        archive,
    };
    let id = launch(proxy, moss_jobs::archive_id(), spec, vec![owner]).await?;
    Ok(id_response(id))
}

/// `summary-bck` over GET: the first call starts the job (202 + id); calls with its `uuid` answer
/// 202 (no target done), 206 (some) or 200 with the merged summary as a one-element list.
pub async fn summary(
    proxy: &Proxy,
    bck: &Bck,
    value: &serde_json::Value,
) -> Result<Response, ApiError> {
    let msg: SummaryMsg = value_of(value, "summary")?;
    require_bucket(proxy, bck).await?;
    if msg.uuid.is_empty() {
        let id = start_summary(proxy, bck, &msg.prefix).await?;
        return Ok((StatusCode::ACCEPTED, id).into_response());
    }
    let (status, merged) = summary_progress(proxy, &msg.uuid).await?;
    let body = match merged {
        Some(part) => serde_json::to_vec(&[part.to_summary(bck)]),
        None => Ok(b"[]".to_vec()),
    }
    .map_err(|e| ApiError::internal(format!("encode summary: {e}")))?;
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

async fn start_summary(proxy: &Proxy, bck: &Bck, prefix: &str) -> Result<String, ApiError> {
    if !prefix.is_empty() {
        names::validate_objname(prefix).map_err(ApiError::bad_request)?;
    }
    let spec = JobSpec::Summary {
        bck: bck.clone(),
        prefix: prefix.to_string(),
    };
    launch(proxy, moss_jobs::generic_id(), spec, all_targets(proxy)).await
}

/// Where a summary job stands: 202/206/200, and the merged parts when every target is done.
async fn summary_progress(
    proxy: &Proxy,
    id: &str,
) -> Result<(StatusCode, Option<SummaryPart>), ApiError> {
    let participants = super::jobs::participants(proxy, id).unwrap_or_else(|| all_targets(proxy));
    let smap = proxy.shared.smap.load_full();
    if let Some(gone) = participants
        .iter()
        .find(|p| !smap.tmap.contains_key(&p.daemon_id))
    {
        return Err(ApiError::unavailable(format!(
            "bucket summary {id} is incomplete: {} left the cluster; start a new summary",
            gone.display()
        )));
    }
    let filter = jobs::JobFilter {
        id: id.to_string(),
        ..Default::default()
    };
    let reports = super::jobs::reports(proxy, &participants, &filter).await;
    if reports.is_empty() {
        return Err(ApiError::not_found(format!(
            "\"x-summary-bck[{id}]\" not found"
        )));
    }
    let mut merged = SummaryPart::default();
    let mut done = 0;
    for report in &reports {
        if report.snap.aborted {
            return Err(ApiError::internal(format!(
                "bucket summary {id} failed: {}",
                report.snap.abort_err
            )));
        }
        if let Some(result) = report.result.as_ref().filter(|_| report.snap.finished()) {
            let part: SummaryPart = serde_json::from_value(result.clone())
                .map_err(|e| ApiError::internal(format!("bad summary part: {e}")))?;
            merged.merge(&part);
            done += 1;
        }
    }
    let status = if done == participants.len() {
        StatusCode::OK
    } else if done == 0 {
        StatusCode::ACCEPTED
    } else {
        StatusCode::PARTIAL_CONTENT
    };
    Ok((status, (status == StatusCode::OK).then_some(merged)))
}

/// `HEAD /v1/buckets/<b>[/<prefix>]`: props; with `bsumm_remote` also the bucket info summary
/// (first call 202 + `Ais-Xaction-Id`, then polls with `uuid` until 200 + `Ais-Bucket-Summ`).
pub async fn bucket_head(
    proxy: &Arc<Proxy>,
    bucket: &str,
    prefix: Option<&str>,
    query: &Query,
) -> Result<Response, ApiError> {
    if !query.has("bsumm_remote") {
        if prefix.is_some_and(|p| !p.is_empty()) {
            return Err(ApiError::bad_request(
                "HEAD with an object prefix needs bsumm_remote (bucket info)",
            ));
        }
        return super::buckets::bucket_head(proxy, bucket, query).await;
    }
    let bck = url_bucket(bucket, query)?;
    require_bucket(proxy, &bck).await?;
    let uuid = query.str("uuid");
    if uuid.is_empty() {
        let id = start_summary(proxy, &bck, prefix.unwrap_or("")).await?;
        let mut response = StatusCode::ACCEPTED.into_response();
        set_props_header(proxy, &bck, &mut response)?;
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(headers::XACTION_ID, value);
        }
        return Ok(response);
    }
    let (status, merged) = summary_progress(proxy, uuid).await?;
    let mut response = status.into_response();
    set_props_header(proxy, &bck, &mut response)?;
    if let Some(part) = merged {
        let json = serde_json::to_string(&part.to_summary(&bck))
            .map_err(|e| ApiError::internal(format!("encode summary: {e}")))?;
        if let Ok(value) = HeaderValue::from_str(&json) {
            response.headers_mut().insert(headers::BUCKET_SUMM, value);
        }
    }
    Ok(response)
}

/// Creating a bucket under a name that a rename freed: refused while that rename still moves
/// objects; afterwards the name is free again (its old data belongs to the renamed bucket, which
/// forgets the old name).
pub fn reuse_renamed_name(bmd: &mut Bmd, bck: &Bck) -> Result<(), ApiError> {
    for props in bmd.buckets.values_mut() {
        if !props.renamed_from.contains(bck) {
            continue;
        }
        if !props.renaming.is_empty() {
            return Err(ApiError::conflict(format!(
                "bucket \"{}\" is being renamed to \"{}\" (job {}); try again when it is done",
                bck.cname(),
                props.bck.cname(),
                props.renaming
            )));
        }
        props.renamed_from.retain(|b| b != bck);
    }
    Ok(())
}

/// `move-bck`: renames an `ais` bucket. The rename is committed to the BMD at once (`NEW` exists,
/// `OLD` is gone from every client's view); the targets then move their data, and a coordinator
/// finishes the job when every target is done (RFC 0003).
async fn rename(proxy: &Arc<Proxy>, from: &Bck, query: &Query) -> Result<Response, ApiError> {
    let to = bck_to(query)?;
    if from.provider != Provider::Ais || to.provider != Provider::Ais {
        return Err(ApiError::bad_request(format!(
            "cannot rename {} to {}: only ais:// buckets can be renamed",
            from.cname(),
            to.cname()
        )));
    }
    if &to == from {
        return Err(ApiError::bad_request(format!(
            "cannot rename {} to itself",
            from.cname()
        )));
    }
    let id = moss_jobs::generic_id();
    let participants = all_targets(proxy);
    record_coordinated(proxy, &id, jobs::MOVE_BCK, participants.clone());
    let committed = proxy
        .modify(|meta| {
            let Some(old) = meta.bmd.get(from).cloned() else {
                return Err(ApiError::no_bucket(&from.cname()));
            };
            if meta.bmd.get(&to).is_some() {
                return Err(ApiError::conflict(format!(
                    "bucket \"{}\" already exists",
                    to.cname()
                )));
            }
            if !old.renaming.is_empty() {
                return Err(ApiError::conflict(format!(
                    "bucket \"{}\" is still being renamed into (job {}); try again when it is done",
                    from.cname(),
                    old.renaming
                )));
            }
            reuse_renamed_name(&mut meta.bmd, &to)?;
            let mut props = BucketProps::new(to.clone(), old.created, new_bid(&meta.bmd));
            props.renamed_from = old.renamed_from.clone();
            props.renamed_from.push(from.clone());
            props.renaming = id.clone();
            meta.bmd.buckets.remove(&from.uname_prefix());
            meta.bmd.buckets.insert(to.uname_prefix(), props);
            Ok(())
        })
        .await;
    if let Err(e) = committed {
        finish_coordinated(proxy, &id, Some(e.message.clone()));
        return Err(e);
    }
    tracing::info!(job = %id, from = %from, to = %to, "bucket renamed; targets are moving its objects");
    tokio::spawn(coordinate_rename(
        proxy.clone(),
        id.clone(),
        from.clone(),
        to,
        participants,
    ));
    Ok(id_response(id))
}

/// Waits until every participant has done its share of rename `id` (a participant that left the
/// cluster resumes when it comes back, and the wait goes on), then clears the bucket's
/// `renaming` mark and finishes the job.
async fn coordinate_rename(
    proxy: Arc<Proxy>,
    id: String,
    from: Bck,
    to: Bck,
    participants: Vec<Snode>,
) {
    let mut retry_at: Option<std::time::Instant> = None;
    loop {
        if proxy.shared.cancel.is_cancelled() {
            return;
        }
        let renaming = proxy.shared.bmd.load().get(&to).map(|p| p.renaming.clone());
        match renaming {
            None => {
                finish_coordinated(&proxy, &id, Some(format!("{} was destroyed", to.cname())));
                return;
            }
            Some(mark) if mark != id => {
                finish_coordinated(&proxy, &id, None);
                return;
            }
            Some(_) => {}
        }
        let smap = proxy.shared.smap.load_full();
        let present: Vec<Snode> = participants
            .iter()
            .filter(|p| {
                smap.tmap
                    .get(&p.daemon_id)
                    .is_some_and(|t| t.url() == p.url())
            })
            .cloned()
            .collect();
        let shares = shares(&proxy, &id, &present).await;
        let done = participants.iter().all(|p| {
            shares
                .get(&p.daemon_id)
                .and_then(|s| s.as_ref())
                .is_some_and(|s| s.finished() && !s.aborted)
        });
        // A share that failed (an I/O error) is run again: the rename is committed, so the only
        // way is forward. One a target does not know yet starts when its BMD catches up.
        let failed: Vec<Snode> = present
            .iter()
            .filter(|p| {
                shares
                    .get(&p.daemon_id)
                    .and_then(|s| s.as_ref())
                    .is_some_and(|s| s.aborted)
            })
            .cloned()
            .collect();
        if !failed.is_empty() && retry_at.is_none_or(|at| at <= std::time::Instant::now()) {
            let spec = JobSpec::MoveBucket {
                from: from.clone(),
                to: to.clone(),
            };
            for t in &failed {
                tracing::warn!(job = %id, node = %t.display(), "rename share failed; running it again");
            }
            if let Err(e) = super::jobs::restart_on(&proxy, &id, spec, &failed).await {
                tracing::warn!(job = %id, "rename share restart failed: {}", e.message);
            }
            retry_at = Some(std::time::Instant::now() + RENAME_RETRY);
        }
        if done {
            let cleared = proxy
                .modify(|meta| {
                    if let Some(props) = meta.bmd.get_mut(&to)
                        && props.renaming == id
                    {
                        props.renaming.clear();
                    }
                    Ok(())
                })
                .await;
            match cleared {
                Ok(()) => {
                    tracing::info!(job = %id, bucket = %to, "rename done on every target");
                    finish_coordinated(&proxy, &id, None);
                    return;
                }
                Err(e) => {
                    tracing::warn!(job = %id, "rename: could not clear the mark: {}", e.message)
                }
            }
        }
        tokio::time::sleep(RENAME_POLL).await;
    }
}

/// After a proxy restart: renames still in progress get their coordinator back (the targets in
/// the map stand in for the original participants).
pub fn resume_renames(proxy: &Arc<Proxy>) {
    let bmd = proxy.shared.bmd.load_full();
    for props in bmd.buckets.values().filter(|p| !p.renaming.is_empty()) {
        let Some(from) = props.renamed_from.last().cloned() else {
            continue;
        };
        let participants = all_targets(proxy);
        record_coordinated(proxy, &props.renaming, jobs::MOVE_BCK, participants.clone());
        tracing::info!(job = %props.renaming, bucket = %props.bck, "resuming a rename");
        tokio::spawn(coordinate_rename(
            proxy.clone(),
            props.renaming.clone(),
            from,
            props.bck.clone(),
            participants,
        ));
    }
}

/// `POST /v1/objects/<b> {"action":"promote","name":SRC,"value":PromoteArgs}`: one target (the
/// one named by `tid`, else the first in the map) walks the source on its file system and stores
/// each file at its owner, as a `promote` job; answers the job id.
pub async fn promote(
    proxy: &Arc<Proxy>,
    bucket: &str,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    require_bucket(proxy, &bck).await?;
    let msg = action_message(req).await?;
    if msg.action != "promote" {
        return Err(ApiError::bad_request(format!(
            "invalid action {:?} for POST /v1/objects/{bucket} (expecting promote)",
            msg.action
        )));
    }
    let mut args: moss_types::jobs::PromoteArgs = value_of(&msg.value, "promote")?;
    if !msg.name.is_empty() && !args.src.is_empty() && msg.name != args.src {
        return Err(ApiError::bad_request(format!(
            "conflicting promote source: {:?} vs {:?}",
            msg.name, args.src
        )));
    }
    if args.src.is_empty() {
        args.src = msg.name.clone();
    }
    moss_types::jobs::check_promote_source(&args.src, &crate::node::promote_root())
        .map_err(ApiError::bad_request)?;
    let smap = proxy.shared.smap.load_full();
    let node = if args.tid.is_empty() {
        smap.tmap.values().next().cloned()
    } else {
        Some(smap.tmap.get(&args.tid).cloned().ok_or_else(|| {
            ApiError::not_found(format!("promote: target {:?} node not found", args.tid))
        })?)
    };
    let node = node.ok_or_else(|| ApiError::unavailable("no targets in the cluster"))?;
    let spec = JobSpec::Promote { bck, args };
    let id = launch(proxy, moss_jobs::generic_id(), spec, vec![node]).await?;
    Ok(id_response(id))
}
