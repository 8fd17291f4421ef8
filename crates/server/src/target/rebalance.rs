//! Rebalance: after the set of targets changes, move every object this target no longer owns to
//! its HRW owner, deleting the local copy only once the owner has it. Each pass is a `rebalance`
//! job `g<smap version>`; the same mover also finishes bucket renames (`xact::rename`).
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use moss_jobs::{Job, JobDesc};
use moss_types::Bck;
use moss_types::jobs::REBALANCE;

use super::Target;
use super::objects::{CopyOpts, copy_object};
use crate::metrics::inc;

/// Objects moved concurrently.
const PARALLEL_MOVES: usize = 4;
/// Misplaced objects handed from the disk walk to the movers at a time.
const MOVE_BATCH: usize = 256;

/// Waits for cluster-map changes and rebalances after each (coalescing bursts of changes).
pub async fn run(target: Arc<Target>) {
    loop {
        tokio::select! {
            _ = target.shared.cancel.cancelled() => return,
            _ = target.rebalance_kick.notified() => {}
        }
        // Let a burst of joins settle before walking the disks.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let smap = target.shared.smap.load_full();
        if !smap.tmap.contains_key(&target.shared.id) {
            continue;
        }
        let Some(job) = register(&target) else {
            continue;
        };
        // Passes for map versions that a newer one replaced before they ran.
        let older = target.jobs.select(&moss_types::jobs::JobFilter {
            kind: REBALANCE.to_string(),
            only_running: true,
            ..Default::default()
        });
        // Nothing is lost by not running them: this pass moves everything misplaced.
        for stale in older.iter().filter(|j| j.id != job.id) {
            stale.set_note(format!("superseded by rebalance {}", job.id));
            stale.finish();
        }
        target
            .shared
            .rebalancing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let outcome = move_misplaced(&target, &job, None).await;
        if outcome.is_ok() {
            // Pieces lost with a target, and objects whose owner was lost, are rebuilt; objects
            // of a lost mountpath come back from their mirror copies.
            super::ec::repair_all(&target, &job).await;
            super::mirror::repair_all(&target, &job).await;
        }
        target
            .shared
            .rebalancing
            .store(false, std::sync::atomic::Ordering::Relaxed);
        match outcome {
            Ok(moved) => {
                if moved > 0 {
                    tracing::info!(node = %target.shared.name, moved, smap = smap.version, "rebalance done");
                }
                job.finish();
            }
            Err(e) => {
                tracing::warn!(node = %target.shared.name, job = %job.id, "rebalance incomplete: {e:#}");
                job.abort(format!("{e:#}"));
            }
        }
    }
}

/// The rebalance job of the current map version on this target (registered on first call).
pub fn register(target: &Target) -> Option<Arc<Job>> {
    let smap = target.shared.smap.load();
    if !smap.tmap.contains_key(&target.shared.id) {
        return None;
    }
    let id = moss_jobs::rebalance_id(smap.version);
    if let Some(job) = target.jobs.get(&id) {
        return Some(job);
    }
    match target
        .jobs
        .register(JobDesc::new(id, REBALANCE).workers(PARALLEL_MOVES as u64))
    {
        Ok(job) => Some(job),
        Err(e) => {
            tracing::warn!(node = %target.shared.name, "rebalance not registered: {e}");
            None
        }
    }
}

/// Moves the local objects of `only` (or of every bucket) that HRW places on another target to
/// that target; returns how many moved. The disk walk streams names through a small channel, so
/// memory does not grow with the number of misplaced objects. Objects that fail to move are
/// recorded on the job and stay here (readable by get-from-neighbor) for the next pass.
pub async fn move_misplaced(
    target: &Arc<Target>,
    job: &Arc<Job>,
    only: Option<&Bck>,
) -> anyhow::Result<u64> {
    let smap = target.shared.smap.load_full();
    if smap.tmap.len() < 2 || !smap.tmap.contains_key(&target.shared.id) {
        return Ok(0);
    }
    let store = target.store.clone();
    let bmd = target.shared.bmd.load_full();
    let me = target.shared.id.clone();
    let buckets: Vec<Bck> = match only {
        Some(b) => vec![b.clone()],
        None => store.buckets_on_disk(),
    };
    let (misplaced, walker) =
        super::walk::batched(job.cancel_token().clone(), MOVE_BATCH, move |out| {
            for bck in buckets {
                if bmd.get(&bck).is_none() {
                    continue;
                }
                let walked = store.walk_prefix(&bck, "", |obj| {
                    let owner = moss_cluster::owner_of_object(&smap, &bck, obj.name);
                    if owner.is_some_and(|o| o.daemon_id != me) {
                        out.push((bck.clone(), obj.name.to_string()))
                    } else {
                        out.is_open()
                    }
                });
                if let Err(e) = walked {
                    tracing::warn!(bucket = %bck, "rebalance walk failed: {e}");
                }
                if !out.is_open() {
                    break;
                }
            }
            Ok(())
        });
    let moves = misplaced
        .map(|(bck, objname)| {
            let (target, job) = (target.clone(), job.clone());
            async move { move_one(&target, &job, &bck, &objname).await }
        })
        .buffer_unordered(PARALLEL_MOVES);
    futures::pin_mut!(moves);
    let mut moved = 0u64;
    while let Some(outcome) = moves.next().await {
        if job.cancel_token().is_cancelled() {
            anyhow::bail!("aborted");
        }
        match outcome {
            Ok(true) => moved += 1,
            Ok(false) => {}
            Err(e) => job.add_err(e),
        }
    }
    walker.await??;
    Ok(moved)
}

/// Moves one object to its owner; `Ok(false)` when it is gone already.
async fn move_one(
    target: &Arc<Target>,
    job: &Arc<Job>,
    bck: &Bck,
    objname: &str,
) -> anyhow::Result<bool> {
    let opts = CopyOpts {
        xid: Some(job.id.clone()),
        only_if_absent: true,
    };
    let copying = copy_object(target, bck, objname, bck, objname, &opts);
    let copied = tokio::select! {
        copied = copying => copied,
        () = job.cancelled() => anyhow::bail!("aborted"),
    };
    let copied = match copied {
        Ok(copied) => copied,
        Err(e) if e.status == http::StatusCode::NOT_FOUND => return Ok(false),
        Err(e) => anyhow::bail!("move {}/{objname}: {}", bck.cname(), e.message),
    };
    if !copied.sent {
        // The map changed under us and this target owns it after all.
        return Ok(false);
    }
    let store = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    match tokio::task::spawn_blocking(move || store.delete(&b, &name)).await? {
        Ok(_) | Err(moss_storage::StoreError::NotFound) => {}
        Err(e) => anyhow::bail!(
            "moved {}/{objname} but could not delete it here: {e}",
            bck.cname()
        ),
    }
    job.add_out(1, copied.bytes);
    job.add_loc(1, copied.bytes);
    inc(&target.metrics.rebalance_moved_count, 1);
    Ok(true)
}
