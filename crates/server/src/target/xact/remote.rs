//! Jobs on remote buckets: `prefetch-listrange` (bring objects into the cluster) and
//! `delete-listrange` of a remote bucket (remove them from the cloud and the cluster). A prefix
//! selects from the cloud's listing, not from what the cluster holds: every target lists the
//! cloud page by page and keeps the names it owns.
use std::sync::Arc;

use futures::StreamExt;
use moss_backend::{BackendError, ListReq};
use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_storage::StoreError;
use moss_types::Bck;
use moss_types::jobs::{DELETE_OBJECTS, PREFETCH_OBJECTS, Selection};
use tokio::sync::mpsc;

use super::{BATCHES_AHEAD, Scope, Selected, missing, selected_names};
use crate::http::ApiError;
use crate::target::{Target, remote};

/// The names of the selection this target owns: a list or range as any job reads it, a prefix
/// from the cloud's listing.
fn owned_names(
    target: &Arc<Target>,
    job: &Arc<Job>,
    bck: &Bck,
    selection: Selection,
) -> mpsc::Receiver<anyhow::Result<Vec<Selected>>> {
    let prefix = match selection {
        Selection::Prefix(prefix) => prefix,
        other => return selected_names(target, job, bck, other, Scope::Owned),
    };
    let (tx, rx) = mpsc::channel(BATCHES_AHEAD);
    let (target, job, bck) = (target.clone(), job.clone(), bck.clone());
    tokio::spawn(async move {
        let backend = match target.shared.backend(&bck) {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(Err(anyhow::anyhow!(e.message))).await;
                return;
            }
        };
        let mut req = ListReq {
            prefix,
            ..Default::default()
        };
        loop {
            if job.cancel_token().is_cancelled() {
                return;
            }
            let page = match backend.list_page(&req).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx
                        .send(Err(anyhow::anyhow!("list {}: {e}", bck.cname())))
                        .await;
                    return;
                }
            };
            let smap = target.shared.smap.load_full();
            let mine: Vec<Selected> = page
                .entries
                .into_iter()
                .filter(|e| {
                    moss_cluster::owner_of_object(&smap, &bck, &e.name)
                        .is_some_and(|t| t.daemon_id == target.shared.id)
                })
                .map(|e| Selected {
                    name: e.name,
                    owned: true,
                })
                .collect();
            if !mine.is_empty() && tx.send(Ok(mine)).await.is_err() {
                return;
            }
            if page.next_token.is_empty() {
                return;
            }
            req.token = page.next_token;
        }
    });
    rx
}

/// `delete-listrange` in a remote bucket: the cloud's object first, then the cached copy.
pub fn start_delete(
    target: &Arc<Target>,
    id: String,
    bck: Bck,
    selection: Selection,
) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    let job_desc = JobDesc::new(id, DELETE_OBJECTS).bck(&bck).workers(1);
    target.jobs.clone().start(
        job_desc,
        worker_fn(move |job: Arc<Job>| async move {
            let list_mode = matches!(selection, Selection::List(_));
            let mut names = owned_names(&target, &job, &bck, selection);
            while let Some(batch) = names.recv().await {
                for selected in batch? {
                    if job.cancel_token().is_cancelled() {
                        anyhow::bail!("aborted");
                    }
                    let name = selected.name;
                    match remote::delete(&target, &bck, &name).await {
                        Ok(()) => {}
                        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND && !list_mode => {}
                        Err(e) => job.add_err(e.message),
                    }
                    let store = target.store.clone();
                    let (b, n) = (bck.clone(), name.clone());
                    match tokio::task::spawn_blocking(move || store.delete(&b, &n)).await? {
                        Ok(size) => job.add_loc(1, size),
                        Err(StoreError::NotFound) => job.add_loc(1, 0),
                        Err(e) => job.add_err(format!("delete {}/{name}: {e}", bck.cname())),
                    }
                }
            }
            Ok(())
        }),
    )
}

/// `prefetch-listrange`: cold GETs of the selected objects this target owns, `workers` at a
/// time. A cached object is skipped unless `latest` and the cloud's differs. A listed name the
/// cloud does not have is an error of the job; a range or prefix skips it.
pub fn start_prefetch(
    target: &Arc<Target>,
    id: String,
    bck: Bck,
    selection: Selection,
    latest: bool,
    workers: usize,
) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    let job_desc = JobDesc::new(id, PREFETCH_OBJECTS)
        .bck(&bck)
        .workers(workers as u64);
    target.jobs.clone().start(
        job_desc,
        worker_fn(move |job: Arc<Job>| async move {
            let list_mode = matches!(selection, Selection::List(_));
            let mut names = owned_names(&target, &job, &bck, selection);
            while let Some(batch) = names.recv().await {
                let fetched = futures::stream::iter(batch?)
                    .map(|selected| {
                        let (target, bck) = (target.clone(), bck.clone());
                        async move {
                            let result = prefetch_one(&target, &bck, &selected.name, latest).await;
                            (selected.name, result)
                        }
                    })
                    .buffer_unordered(workers);
                let mut fetched = std::pin::pin!(fetched);
                while let Some((name, result)) = fetched.next().await {
                    match result {
                        Ok(Some(size)) => job.add_loc(1, size),
                        Ok(None) => {}
                        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
                            if list_mode {
                                job.add_err(missing(&bck, &name));
                            }
                        }
                        Err(e) => job.add_err(e.message),
                    }
                }
                if job.cancel_token().is_cancelled() {
                    anyhow::bail!("aborted");
                }
            }
            Ok(())
        }),
    )
}

/// One object: `Some(size)` when fetched, `None` when the cached copy is current.
async fn prefetch_one(
    target: &Arc<Target>,
    bck: &Bck,
    name: &str,
    latest: bool,
) -> Result<Option<u64>, ApiError> {
    let store = target.store.clone();
    let (b, n) = (bck.clone(), name.to_string());
    let cached = tokio::task::spawn_blocking(move || store.open_object(&b, &n).map(|h| h.meta))
        .await
        .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?;
    match cached {
        Ok(_) if !latest => return Ok(None),
        Ok(meta) => match target.shared.backend(bck)?.head(name).await {
            Ok(attrs) if remote::same_object(&meta, &attrs) => return Ok(None),
            Ok(_) => {}
            // The cloud lost it: keep the cached copy (AIStore does too), report it.
            Err(BackendError::NotFound(m)) => return Err(ApiError::not_found(m)),
            Err(e) => return Err(e.into()),
        },
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(ApiError::from_store(e, &format!("{}/{name}", bck.cname()))),
    }
    remote::ensure_cached(target, bck, name).await?;
    let size = target.store.stat_size(bck, name).unwrap_or(0);
    Ok(Some(size))
}
