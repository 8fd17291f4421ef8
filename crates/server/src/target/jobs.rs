//! The job API of a target, for the proxy: query snapshots, start this target's share of a job,
//! stop jobs (`/v1/internal/jobs`).
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use moss_types::jobs::{JobFilter, JobReport, JobStart, JobStop};

use super::{Target, xact};
use crate::http::{ApiError, json_response, read_body};

/// Largest job message: a start may carry the names of a list-mode selection.
pub const JOB_BODY_LIMIT: usize = 64 << 20;

async fn body_json<T: serde::de::DeserializeOwned>(
    req: Request,
    what: &str,
) -> Result<T, ApiError> {
    let body = read_body(req.into_body(), JOB_BODY_LIMIT).await?;
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid {what}: {e}")))
}

/// `GET /v1/internal/jobs` with a [`JobFilter`] body: the matching jobs, with their results. An id
/// that this target does not know is a 404 (the proxy leaves the target out).
pub async fn query(target: &Arc<Target>, req: Request) -> Result<Response, ApiError> {
    let filter: JobFilter = body_json(req, "job query").await?;
    let reports: Vec<JobReport> = target
        .jobs
        .select(&filter)
        .iter()
        .map(|job| JobReport {
            snap: job.snap(),
            result: job.result(),
        })
        .collect();
    if reports.is_empty() && !filter.id.is_empty() {
        return Err(ApiError::not_found(format!(
            "\"x-[{}]\" not found",
            filter.id
        )));
    }
    Ok(json_response(&reports))
}

/// `POST /v1/internal/jobs`: registers this target's share of a job and starts it.
pub async fn start(target: &Arc<Target>, req: Request) -> Result<Response, ApiError> {
    let start: JobStart = body_json(req, "job start").await?;
    xact::start(target, start)?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /v1/internal/jobs/stop`: aborts the running jobs a stop names.
pub async fn stop(target: &Arc<Target>, req: Request) -> Result<Response, ApiError> {
    let stop: JobStop = body_json(req, "job stop").await?;
    let stopped = target.jobs.stop(&stop);
    Ok(json_response(&serde_json::json!({ "stopped": stopped })))
}
