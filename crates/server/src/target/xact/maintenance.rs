//! `lru` and `cleanup-store`: storage housekeeping a user (or a schedule) starts.
use std::sync::Arc;
use std::time::Duration;

use std::collections::BinaryHeap;

use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_storage::StoreError;
use moss_types::config::SpaceConfig;
use moss_types::jobs::{CLEANUP, LRU};
use moss_types::{Bck, Provider};

use crate::target::Target;

/// Work files older than this belong to writes that will never finish.
const STALE_WORK: Duration = Duration::from_secs(3600);
/// A multipart upload without a new part for this long is abandoned.
const STALE_UPLOAD: Duration = Duration::from_secs(7 * 24 * 3600);

/// LRU eviction, as in AIStore: only cached copies of remote buckets' objects (an `ais` bucket's
/// objects exist nowhere else), only on a mountpath above `space.highwm`, least recently used
/// first, until the mountpath is down to `space.lowwm`. Memory: the candidates that must go, not
/// every object (a bounded heap of the oldest ones, by the bytes to free).
pub fn start_lru(target: &Arc<Target>, id: String) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, LRU),
        worker_fn(move |job: Arc<Job>| async move {
            let space = target.shared.config.load().space.clone();
            let remote: Vec<Bck> = target
                .shared
                .bmd
                .load()
                .buckets
                .values()
                .map(|p| p.bck.clone())
                .filter(|b| b.provider != Provider::Ais)
                .collect();
            let t = target.clone();
            let worker = job.clone();
            let (evicted, bytes, note) =
                tokio::task::spawn_blocking(move || evict_lru(&t, &worker, &space, &remote))
                    .await??;
            job.add_loc(evicted, bytes);
            job.set_note(note);
            Ok(())
        }),
    )
}

/// One candidate for eviction: older first.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    atime: u64,
    size: u64,
    bck: Bck,
    name: String,
}

fn evict_lru(
    target: &Target,
    job: &Job,
    space: &SpaceConfig,
    remote: &[Bck],
) -> anyhow::Result<(u64, u64, String)> {
    let store = &target.store;
    let usage = store.usage();
    let paths = store.mountpaths();
    // Bytes to free per mountpath index (only those above the high watermark).
    let mut to_free: Vec<u64> = vec![0; paths.len()];
    let mut fullest = 0;
    for (i, m) in paths.iter().enumerate() {
        let Some((_, used, capacity)) = usage.iter().find(|(p, _, _)| *p == m.path) else {
            continue;
        };
        let pct = used * 100 / (*capacity).max(1);
        fullest = fullest.max(pct);
        if pct as i64 > space.highwm {
            to_free[i] = used.saturating_sub(capacity * space.lowwm as u64 / 100);
        }
    }
    let watermarks = format!(
        "fullest mountpath {fullest}% used (high watermark {}%, low {}%)",
        space.highwm, space.lowwm
    );
    if to_free.iter().all(|&n| n == 0) {
        return Ok((0, 0, format!("{watermarks}: nothing to evict")));
    }
    // Per mountpath, the oldest objects whose sizes add up to what must be freed: a max-heap on
    // atime drops the newest candidate whenever the rest already free enough.
    let mut heaps: Vec<(BinaryHeap<Candidate>, u64)> =
        (0..paths.len()).map(|_| (BinaryHeap::new(), 0)).collect();
    for bck in remote {
        store.walk_bucket(bck, |name, mp| {
            if to_free[mp] == 0 {
                return;
            }
            let Ok(handle) = store.open_object(bck, name) else {
                return;
            };
            let (heap, sum) = &mut heaps[mp];
            heap.push(Candidate {
                atime: handle.atime_secs(),
                size: handle.meta.size,
                bck: bck.clone(),
                name: name.to_string(),
            });
            *sum += handle.meta.size;
            while let Some(newest) = heap.peek() {
                if *sum - newest.size < to_free[mp] {
                    break;
                }
                *sum -= newest.size;
                heap.pop();
            }
        })?;
    }
    let (mut evicted, mut bytes) = (0, 0);
    for (heap, _) in heaps {
        for c in heap.into_sorted_vec() {
            if job.cancel_token().is_cancelled() {
                anyhow::bail!("aborted");
            }
            match store.delete(&c.bck, &c.name) {
                Ok(size) => {
                    evicted += 1;
                    bytes += size;
                }
                Err(StoreError::NotFound) => {}
                Err(e) => job.add_err(format!("evict {}/{}: {e}", c.bck.cname(), c.name)),
            }
        }
    }
    Ok((
        evicted,
        bytes,
        format!("{watermarks}: evicted {evicted} cached remote object(s)"),
    ))
}

/// Store cleanup: data of destroyed buckets, stale work files (append sessions included),
/// multipart uploads without a part for [`STALE_UPLOAD`], empty directories.
pub fn start_cleanup(target: &Arc<Target>, id: String) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, CLEANUP),
        worker_fn(move |job: Arc<Job>| async move {
            let cleaner = target.clone();
            let (buckets, uploads, (files, bytes, dirs)) = tokio::task::spawn_blocking(move || {
                let buckets = cleaner.drop_destroyed_buckets();
                let uploads = cleaner.store.mpu_expire(STALE_UPLOAD);
                cleaner
                    .store
                    .clean_up(STALE_WORK)
                    .map(|found| (buckets, uploads, found))
            })
            .await??;
            job.add_loc(files, bytes);
            job.set_note(format!(
                "removed {buckets} destroyed bucket(s), {files} stale work file(s), {uploads} abandoned multipart upload(s), {dirs} empty director(ies)"
            ));
            Ok(())
        }),
    )
}
