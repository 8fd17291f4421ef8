//! Mirror copies across this target's mountpaths (`mirror.*`, RFC 0008): after an object of a
//! mirrored bucket is written, its `copies - 1` copies are made on the next mountpaths in HRW
//! order, and the write is acknowledged only once they are durable. Reads fall back to a copy
//! (and restore the object from it) when the object's disk is lost, unreadable or returns
//! damaged bytes. The `make-n-copies` job brings a bucket's objects to its setting.
use std::sync::Arc;

use futures::StreamExt;
use moss_storage::{CopiesMade, StoreError};
use moss_types::{Bck, Provider};

use super::Target;
use crate::http::ApiError;

/// Objects brought up to date concurrently by a `make-n-copies` pass.
const PARALLEL_COPIES: usize = 4;
/// Names handed from the disk walk to the copiers at a time.
const COPY_BATCH: usize = 256;

/// Copies each object of the bucket should have, itself included, when mirroring is on.
pub fn copies(target: &Target, bck: &Bck) -> Option<usize> {
    if bck.provider != Provider::Ais {
        return None;
    }
    let bmd = target.shared.bmd.load();
    bmd.get(bck)
        .filter(|p| p.mirror.enabled)
        .map(|p| p.mirror.wanted())
}

/// Makes the mirror copies of an object just written here; returns once they are durable.
/// The object itself stays written if this fails, and a retried write makes them again.
pub async fn protect(target: &Arc<Target>, bck: &Bck, objname: &str) -> Result<(), ApiError> {
    let Some(n) = copies(target, bck) else {
        return Ok(());
    };
    let what = format!("{}/{objname}", bck.cname());
    let (store, b, name) = (target.store.clone(), bck.clone(), objname.to_string());
    tokio::task::spawn_blocking(move || store.make_copies(&b, &name, n))
        .await
        .map_err(|e| ApiError::internal(format!("mirror task failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, &what))?;
    Ok(())
}

/// `make-n-copies`: this target's share of bringing a bucket to `copies` copies per object.
pub fn start_job(
    target: &Arc<Target>,
    id: String,
    bck: Bck,
    copies: u32,
) -> Result<Arc<moss_jobs::Job>, moss_jobs::RegisterError> {
    let target = target.clone();
    let desc = moss_jobs::JobDesc::new(id, moss_types::jobs::MAKE_N_COPIES)
        .bck(&bck)
        .workers(PARALLEL_COPIES as u64);
    target.jobs.clone().start(
        desc,
        moss_jobs::worker_fn(move |job: Arc<moss_jobs::Job>| async move {
            mirror_bucket(&target, &job, &bck, copies.max(1) as usize).await
        }),
    )
}

/// The mirror share of a rebalance pass (after a cluster-map change, or `rebalance` by hand):
/// every mirrored bucket this target holds is brought to its setting, so objects of a mountpath
/// that went missing while the target was down are restored from their copies.
pub async fn repair_all(target: &Arc<Target>, job: &Arc<moss_jobs::Job>) {
    let buckets: Vec<(Bck, usize)> = target
        .store
        .buckets_on_disk()
        .into_iter()
        .filter_map(|b| copies(target, &b).map(|n| (b, n)))
        .collect();
    for (bck, n) in buckets {
        if let Err(e) = mirror_bucket(target, job, &bck, n).await {
            tracing::warn!(bucket = %bck, "mirror repair incomplete: {e:#}");
            job.add_err(format!("mirror repair of {}: {e:#}", bck.cname()));
        }
    }
}

/// Walks the bucket on this target: every object gets exactly `copies` copies (missing ones
/// made, extra ones removed), and an object whose own disk was lost is first restored from a
/// copy. Names stream from the walk through a small channel, so memory stays bounded; each
/// object that needed work counts on the job (`loc`), each failure is one of its errors.
async fn mirror_bucket(
    target: &Arc<Target>,
    job: &Arc<moss_jobs::Job>,
    bck: &Bck,
    copies: usize,
) -> anyhow::Result<()> {
    let (store, b) = (target.store.clone(), bck.clone());
    let (names, walker) =
        super::walk::batched(job.cancel_token().clone(), COPY_BATCH, move |out| {
            // Copies whose object is gone (its disk was lost) first, then every object.
            store.walk_copies(&b, |name| {
                if out.is_open() && store.open_file(&b, name).is_none() {
                    out.push(name.to_string());
                }
            })?;
            if out.is_open() {
                store.walk_prefix(&b, "", |obj| out.push(obj.name.to_string()))?;
            }
            Ok(())
        });
    let checks = names
        .map(|name| {
            let (store, b) = (target.store.clone(), bck.clone());
            async move {
                let n = name.clone();
                let outcome =
                    tokio::task::spawn_blocking(move || mirror_one(&store, &b, &n, copies))
                        .await
                        .map_err(|e| StoreError::Io(std::io::Error::other(e)))
                        .and_then(|r| r);
                (outcome, name)
            }
        })
        .buffer_unordered(PARALLEL_COPIES);
    futures::pin_mut!(checks);
    while let Some((outcome, name)) = checks.next().await {
        if job.cancel_token().is_cancelled() {
            anyhow::bail!("aborted");
        }
        match outcome {
            Ok((restored, made)) if restored || made.written > 0 || made.removed > 0 => {
                job.add_loc(1, made.size)
            }
            Ok(_) => {}
            // Deleted while the walk went on.
            Err(StoreError::NotFound) => {}
            Err(e) => {
                tracing::warn!(bucket = %bck, object = %name, "make-n-copies: {e}");
                job.add_err(format!("{}/{name}: {e}", bck.cname()));
            }
        }
    }
    walker.await??;
    Ok(())
}

/// One object of a `make-n-copies` pass: restored from a copy if it is missing here, then
/// brought to `copies`. Whether it was restored, and what making copies did.
fn mirror_one(
    store: &moss_storage::Store,
    bck: &Bck,
    objname: &str,
    copies: usize,
) -> Result<(bool, CopiesMade), StoreError> {
    let restored = match store.open_object(bck, objname) {
        Ok(_) => false,
        Err(StoreError::NotFound | StoreError::Corrupt(_)) => {
            store.restore_from_copy(bck, objname)?;
            tracing::info!(bucket = %bck, object = objname, "object restored from its mirror copy");
            true
        }
        Err(e) => return Err(e),
    };
    match store.make_copies(bck, objname, copies) {
        // The object failed its checksum while being copied: its copies have it right.
        Err(StoreError::Corrupt(why)) if !restored => {
            store.restore_from_copy(bck, objname)?;
            tracing::warn!(bucket = %bck, object = objname, "damaged object restored from its mirror copy: {why}");
            Ok((true, store.make_copies(bck, objname, copies)?))
        }
        made => Ok((restored, made?)),
    }
}
