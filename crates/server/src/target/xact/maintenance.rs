//! `lru` and `cleanup-store`: storage housekeeping a user (or a schedule) starts.
use std::sync::Arc;
use std::time::Duration;

use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_types::jobs::{CLEANUP, LRU};

use crate::target::Target;

/// AIStore's default high watermark: LRU evicts only above it.
const HIGH_WATERMARK_PCT: u64 = 90;
/// Work files older than this belong to writes that will never finish.
const STALE_WORK: Duration = Duration::from_secs(3600);

/// LRU eviction. AIStore evicts only cached copies of remote buckets (an `ais` bucket's objects
/// exist nowhere else) and only on a mountpath above the high watermark. moss has no remote
/// buckets yet, so a pass measures usage and records that nothing is evictable.
pub fn start_lru(target: &Arc<Target>, id: String) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, LRU),
        worker_fn(move |job: Arc<Job>| async move {
            let store = target.store.clone();
            let usage = tokio::task::spawn_blocking(move || store.usage()).await?;
            let fullest = usage
                .iter()
                .map(|(_, used, capacity)| used * 100 / (*capacity).max(1))
                .max()
                .unwrap_or(0);
            let verdict = if fullest > HIGH_WATERMARK_PCT {
                "above the high watermark, but only remote buckets' objects are evictable and there are none"
            } else {
                "below the high watermark: nothing to evict"
            };
            job.set_note(format!(
                "fullest mountpath {fullest}% used (high watermark {HIGH_WATERMARK_PCT}%): {verdict}"
            ));
            Ok(())
        }),
    )
}

/// Store cleanup: data of destroyed buckets, stale work files, empty directories.
pub fn start_cleanup(target: &Arc<Target>, id: String) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, CLEANUP),
        worker_fn(move |job: Arc<Job>| async move {
            let cleaner = target.clone();
            let (buckets, (files, bytes, dirs)) = tokio::task::spawn_blocking(move || {
                let buckets = cleaner.drop_destroyed_buckets();
                cleaner.store.clean_up(STALE_WORK).map(|found| (buckets, found))
            })
            .await??;
            job.add_loc(files, bytes);
            job.set_note(format!(
                "removed {buckets} destroyed bucket(s), {files} stale work file(s), {dirs} empty director(ies)"
            ));
            Ok(())
        }),
    )
}
