//! GetBatch on a target: as designated target (the redirected client request) and as sender
//! (another DT asking for this target's share).
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use moss_getbatch::BatchJob;
use moss_getbatch::stats::Snapshot;
use moss_jobs::{Job, JobDesc, WorkItem};
use moss_types::Bck;
use moss_types::headers;
use moss_types::jobs::GET_BATCH;
use moss_types::moss::SendReq;

use super::Target;
use crate::batch::{MOSS_BODY_LIMIT, validate};
use crate::http::{ApiError, Query, read_body, url_bucket};
use crate::metrics::{Exposition, Kind};

/// `GET|POST /v1/ml/moss[/<bucket>]` redirected here by the proxy.
pub async fn getbatch(
    target: &Arc<Target>,
    bucket: Option<&str>,
    query: &Query,
    req: Request,
) -> Result<Response, ApiError> {
    if !query.has(headers::QP_PROXY_ID) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "direct target access denied: send GetBatch requests to the cluster endpoint (proxy)",
        ));
    }
    let bmd = target.shared.bmd.load_full();
    let default_bck = match bucket {
        Some(name) => Some(url_bucket(name, query)?),
        None => None,
    };
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let body = read_body(req.into_body(), MOSS_BODY_LIMIT).await?;
    target.check_signed(&method, &path, query, &crate::intra::body_digest(&body))?;
    let (request, entries) = validate(&body, default_bck.as_ref())?;
    let referenced =
        crate::batch::buckets_of(default_bck.iter().chain(entries.iter().map(|e| &e.bck)));
    for bck in referenced {
        if bmd.get(bck).is_none() {
            return Err(ApiError::no_bucket(&bck.cname()));
        }
    }
    let format = moss_archive::Format::from_mime(&request.mime)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let job = BatchJob {
        item: getbatch_work_item(target, default_bck.as_ref()),
        max_soft: None,
        counts_entries: true,
    };
    let started = target
        .engine
        .getbatch(request, entries, format, job)
        .await
        .map_err(|e| ApiError {
            status: StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: e.message,
            retry_after: e.retry_after,
            headers: Vec::new(),
        })?;
    let mut rx = started.body;
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let mut response = Response::new(Body::from_stream(stream));
    if let Ok(value) = HeaderValue::from_str(&started.content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    Ok(response)
}

/// The request as a pending work item of this target's `get-batch` job for its default bucket:
/// a running one is reused (AIStore's rule), else a new `gbt-` job starts.
fn getbatch_work_item(target: &Arc<Target>, default_bck: Option<&Bck>) -> WorkItem {
    let reuse = |job: &Job| job.kind.kind == GET_BATCH && job.bck.as_ref() == default_bck;
    target.jobs.renew_item(reuse, || {
        let mut desc = JobDesc::new(moss_jobs::getbatch_id(), GET_BATCH)
            .idle_lag(moss_getbatch::GETBATCH_IDLE_LAG)
            .ctl(target.engine.job_ctl());
        if let Some(bck) = default_bck {
            desc = desc.bck(bck);
        }
        desc
    })
}

/// `POST /v1/internal/moss/send`: this target's share of a batch, as a framed stream.
pub async fn send(target: &Arc<Target>, req: Request) -> Result<Response, ApiError> {
    let body = read_body(req.into_body(), MOSS_BODY_LIMIT).await?;
    let send: SendReq = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid send request: {e}")))?;
    let stream = target.engine.send_stream(send);
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(response)
}

/// The `getbatch.*` family under AIStore's Prometheus names, plus moss's live gauges.
pub fn render_metrics(s: &Snapshot, out: &mut Exposition) {
    let counters: [(&str, u64, &str); 11] = [
        (
            "ais_target_getbatch_count",
            s.reqs,
            "get-batch work items completed as designated target",
        ),
        (
            "ais_target_getbatch_obj_count",
            s.obj_count,
            "whole objects delivered (non-empty)",
        ),
        (
            "ais_target_getbatch_obj_bytes",
            s.obj_bytes,
            "bytes of whole objects delivered",
        ),
        (
            "ais_target_getbatch_file_count",
            s.file_count,
            "archived files delivered (non-empty)",
        ),
        (
            "ais_target_getbatch_file_bytes",
            s.file_bytes,
            "bytes of archived files delivered",
        ),
        (
            "ais_target_getbatch_gfn_count",
            s.gfn_count,
            "get-from-neighbor attempts",
        ),
        (
            "ais_target_getbatch_rxwait_ns",
            s.rxwait_ns,
            "time spent waiting for senders (ns)",
        ),
        (
            "ais_target_getbatch_throttle_ns",
            s.throttle_ns,
            "time spent throttled by admission control (ns)",
        ),
        (
            "ais_target_err_getbatch_count",
            s.err_count,
            "get-batch hard errors, 429 rejections included",
        ),
        (
            "ais_target_err_soft_getbatch_count",
            s.err_soft_count,
            "get-batch soft errors (placeholders)",
        ),
        (
            "ais_target_err_gfn_getbatch_count",
            s.err_gfn_count,
            "failed get-from-neighbor attempts",
        ),
    ];
    for (name, value, help) in counters {
        out.add(name, Kind::Counter, help, value);
    }
    let gauges: [(&str, i64, &str); 2] = [
        (
            "moss_getbatch_active_work_items",
            s.active_work_items,
            "get-batch work items being assembled here",
        ),
        (
            "moss_getbatch_active_send_streams",
            s.active_send_streams,
            "get-batch streams this node is sending",
        ),
    ];
    for (name, value, help) in gauges {
        out.add(name, Kind::Gauge, help, value.max(0) as u64);
    }
}
