//! `delete-listrange` (and `evict-listrange`, the same for a remote bucket's cached copies):
//! this target removes its objects of a list, range or prefix.
use std::sync::Arc;

use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_storage::StoreError;
use moss_types::Bck;
use moss_types::jobs::Selection;

use super::{Scope, missing, selected_names};
use crate::target::Target;
use crate::target::objects::delete_on_neighbors;

pub fn start(
    target: &Arc<Target>,
    id: String,
    kind: &'static str,
    bck: Bck,
    selection: Selection,
) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    let job_desc = JobDesc::new(id, kind).bck(&bck).workers(1);
    target.jobs.clone().start(
        job_desc,
        worker_fn(move |job: Arc<Job>| async move {
            // In list mode a name nobody holds is an error of the job, as in AIStore; in range
            // and prefix mode missing names are simply not there. So in list mode only the owner
            // acts on a name (and, for a miss, asks the others for a copy not yet moved to it);
            // otherwise every target removes what it holds.
            let list_mode = matches!(selection, Selection::List(_));
            let scope = if list_mode {
                Scope::Owned
            } else {
                Scope::OwnedOrHeld
            };
            let mut names = selected_names(&target, &job, &bck, selection, scope);
            while let Some(batch) = names.recv().await {
                let batch = batch?;
                if job.cancel_token().is_cancelled() {
                    anyhow::bail!("aborted");
                }
                let store = target.store.clone();
                let b = bck.clone();
                let protected = (bck.provider == moss_types::Provider::Ais
                    && crate::target::ec::conf(&target, &bck).is_some())
                .then(|| batch.iter().map(|s| s.name.clone()).collect::<Vec<_>>());
                let (deleted, bytes, missed, failed) = tokio::task::spawn_blocking(move || {
                    let (mut deleted, mut bytes) = (0u64, 0u64);
                    let (mut missed, mut failed) = (Vec::new(), Vec::new());
                    for selected in batch {
                        match store.delete(&b, &selected.name) {
                            Ok(size) => {
                                deleted += 1;
                                bytes += size;
                            }
                            Err(StoreError::NotFound) if selected.owned => {
                                missed.push(selected.name)
                            }
                            Err(StoreError::NotFound) => {}
                            Err(e) => {
                                failed.push(format!("delete {}/{}: {e}", b.cname(), selected.name))
                            }
                        }
                    }
                    (deleted, bytes, missed, failed)
                })
                .await?;
                // Pieces would bring the objects back on the next read.
                for name in protected.into_iter().flatten() {
                    crate::target::ec::unprotect_deleted(&target, &bck, &name).await;
                }
                job.add_loc(deleted, bytes);
                for e in failed {
                    job.add_err(e);
                }
                if !list_mode {
                    continue;
                }
                for name in missed {
                    let held_elsewhere = target.shared.neighbors_may_hold(&bck)
                        && delete_on_neighbors(&target, &bck, &name).await;
                    if held_elsewhere {
                        job.add_loc(1, 0);
                    } else {
                        job.add_err(missing(&bck, &name));
                    }
                }
            }
            Ok(())
        }),
    )
}
