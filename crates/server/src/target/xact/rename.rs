//! `move-bck`: this target's share of a bucket rename. The proxy has already committed the
//! rename to the BMD (`NEW` exists, `renamed_from: [OLD]`, `renaming: <job id>`); here the
//! target moves its `OLD` data under `NEW` (one directory rename per mountpath) and sends the
//! objects HRW now places elsewhere to their owners. Idempotent and resumable: a target that was
//! down, or restarted mid-way, does its share when it sees the BMD (RFC 0003, "Rename").
use std::sync::Arc;

use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_types::Bck;
use moss_types::jobs::MOVE_BCK;

use crate::target::Target;
use crate::target::rebalance::move_misplaced;

/// Starts (or, when it already runs here, keeps) this target's share of renaming `from` to `to`.
pub fn start(
    target: &Arc<Target>,
    id: String,
    from: Bck,
    to: Bck,
) -> Result<Arc<Job>, RegisterError> {
    if let Some(job) = target.jobs.get(&id)
        && !job.is_finished()
    {
        return Ok(job);
    }
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, MOVE_BCK).src_dst(&from, &to).workers(1),
        worker_fn(move |job: Arc<Job>| async move {
            let store = target.store.clone();
            let (f, t) = (from.clone(), to.clone());
            let renamed_one_by_one = tokio::task::spawn_blocking(move || store.rename_bucket(&f, &t))
                .await??;
            if renamed_one_by_one > 0 {
                tracing::info!(job = %job.id, from = %from, to = %to, renamed_one_by_one, "merged into an existing bucket directory");
            }
            let moved = move_misplaced(&target, &job, Some(&to)).await?;
            tracing::info!(node = %target.shared.name, job = %job.id, from = %from, to = %to, moved, "rename: this target's share is done");
            Ok(())
        }),
    )
}

/// Reacts to a new BMD: runs this target's share of every rename in progress that it has not run
/// yet, and of any finished rename whose old data it still holds (it was away meanwhile).
pub fn on_bmd(target: &Arc<Target>) {
    let bmd = target.shared.bmd.load_full();
    for props in bmd.buckets.values() {
        for old in &props.renamed_from {
            // An old name that exists again is a new bucket: its data is its own.
            if bmd.get(old).is_some() {
                continue;
            }
            let id = if props.renaming.is_empty() {
                if !target.store.has_bucket_data(old) {
                    continue;
                }
                moss_jobs::generic_id()
            } else {
                props.renaming.clone()
            };
            if target.jobs.get(&id).is_some() {
                continue;
            }
            if let Err(e) = start(target, id, old.clone(), props.bck.clone()) {
                tracing::warn!(from = %old, to = %props.bck, "rename share not started: {e}");
            }
        }
    }
}
