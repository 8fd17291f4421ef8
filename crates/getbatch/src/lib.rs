//! The GetBatch engine: reading items from local storage, streaming a target's share of a batch
//! to the designated target (DT), and assembling the ordered output archive on the DT.
//! Design: `docs/rfcs/0002-getbatch-engine.md`.
pub mod coalesce;
mod dt;
pub mod frame;
pub mod item;
pub mod kept;
mod neighbor;
pub mod output;
pub mod pool;
mod sender;
pub mod shard;
pub mod stats;
mod warmup;

use std::sync::{Arc, Mutex};

use moss_jobs::{Registry, WorkItem};
use moss_types::config::ClusterConfig;
use moss_types::smap::Smap;

pub use dt::{BatchError, Started};
pub use moss_jobs;

use crate::item::LocalReader;
use crate::stats::Stats;

/// How long a GetBatch job must have nothing pending before it reads idle (AIStore's minimum), so
/// a burst of requests with small gaps shows as one running job.
pub const GETBATCH_IDLE_LAG: std::time::Duration = std::time::Duration::from_secs(4);

/// Idle blocks kept for reuse (64 × 256 KiB = 16 MiB at most).
const POOLED_BLOCKS: usize = 64;

/// What the engine needs to know about the node it runs on.
pub trait ClusterView: Send + Sync + 'static {
    fn node_id(&self) -> &str;
    fn smap(&self) -> Arc<Smap>;
    fn config(&self) -> Arc<ClusterConfig>;
    /// Adds intra-cluster caller headers.
    fn intra(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder;
    fn client(&self) -> &reqwest::Client;
    /// True while objects of `bck` may sit on a non-owner: the cluster map changed recently, this
    /// node is rebalancing, or the bucket is being renamed into. Misses are then looked up on the
    /// other targets (get-from-neighbor).
    fn neighbors_may_hold(&self, bck: &moss_types::Bck) -> bool;
    /// True if `bck` keeps redundancy across targets (EC): an entry whose owner fails can be
    /// read from the next targets in HRW order, which rebuild it from its pieces.
    fn redundant(&self, bck: &moss_types::Bck) -> bool;
}

/// The job a batch runs in: its pending work item (counters, abort), held until the batch is
/// done, and limits that differ for internal batches.
pub struct BatchJob {
    pub item: WorkItem,
    /// Soft errors tolerated with `coer`; `None` means `get_batch.max_soft_errs`.
    pub max_soft: Option<u64>,
    /// Add the entries delivered to the job's `loc` counters (GetBatch does; the archive job
    /// counts the archives it writes instead).
    pub counts_entries: bool,
}

/// GetBatch service of one target.
pub struct Engine {
    view: Arc<dyn ClusterView>,
    /// This node's jobs: senders count their share under the DT's job.
    jobs: Arc<Registry>,
    pub reader: Arc<LocalReader>,
    pub stats: Arc<Stats>,
    /// Reusable I/O blocks for output buffers and small items.
    pub pool: Arc<pool::BufPool>,
    admitted: Mutex<Admitted>,
}

/// Resources held by admitted work items.
#[derive(Debug, Default)]
struct Admitted {
    items: u64,
    window_bytes: u64,
}

/// Releases an admitted work item's resources when dropped.
pub struct Admission {
    engine: Arc<Engine>,
    window: u64,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Ok(mut a) = self.engine.admitted.lock() {
            a.items -= 1;
            a.window_bytes -= self.window;
        }
    }
}

impl Engine {
    pub fn new(
        view: Arc<dyn ClusterView>,
        reader: Arc<LocalReader>,
        jobs: Arc<Registry>,
    ) -> Arc<Engine> {
        Arc::new(Engine {
            view,
            jobs,
            reader,
            stats: Arc::new(Stats::default()),
            pool: pool::BufPool::new(POOLED_BLOCKS),
            admitted: Mutex::new(Admitted::default()),
        })
    }

    /// Admits a work item or explains why not (429).
    fn admit(self: &Arc<Self>, config: &ClusterConfig) -> Result<Admission, BatchError> {
        let gb = &config.get_batch;
        let mut admitted = self
            .admitted
            .lock()
            .map_err(|_| BatchError::internal("admission lock poisoned"))?;
        if admitted.items >= gb.max_active
            || admitted.window_bytes + gb.window_bytes > gb.max_window_total
        {
            stats::add(&self.stats.err_count, 1);
            return Err(BatchError::too_many(format!(
                "get-batch rejected: {} work items active (max {}), {} MiB of windows in use (max {} MiB)",
                admitted.items,
                gb.max_active,
                admitted.window_bytes >> 20,
                gb.max_window_total >> 20
            )));
        }
        admitted.items += 1;
        admitted.window_bytes += gb.window_bytes;
        Ok(Admission {
            engine: self.clone(),
            window: gb.window_bytes,
        })
    }

    /// The control message of this node's get-batch jobs (`JobDesc::ctl`).
    pub fn job_ctl(&self) -> moss_jobs::CtlFn {
        let stats = self.stats.clone();
        let view = self.view.clone();
        Box::new(move |job: &moss_jobs::Job| {
            let workers = view.config().get_batch.warmup_workers.max(0);
            stats::job_ctl(&stats.snapshot(workers), job.pending())
        })
    }

    /// Statistics snapshot including live gauges.
    pub fn snapshot(&self) -> stats::Snapshot {
        let workers = self.view.config().get_batch.warmup_workers.max(0);
        self.stats.snapshot(workers)
    }
}
