//! GetBatch counters of one node (AIStore's `getbatch.*` metric family) and live gauges.
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Node-lifetime GetBatch statistics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Work items completed on this node as DT (success or failure).
    pub reqs: AtomicU64,
    pub obj_count: AtomicU64,
    pub obj_bytes: AtomicU64,
    pub file_count: AtomicU64,
    pub file_bytes: AtomicU64,
    pub gfn_count: AtomicU64,
    pub err_gfn_count: AtomicU64,
    /// Time the DT spent waiting for senders, nanoseconds.
    pub rxwait_ns: AtomicU64,
    /// Time requests spent throttled by admission control, nanoseconds.
    pub throttle_ns: AtomicU64,
    /// Hard errors, 429 rejections included.
    pub err_count: AtomicU64,
    /// Soft errors (placeholders).
    pub err_soft_count: AtomicU64,
    /// Work items being assembled on this node (as DT).
    pub active_work_items: AtomicI64,
    /// Streams this node is sending to DTs.
    pub active_send_streams: AtomicI64,
    /// Page-cache warm-up reads done.
    pub bewarm_done: AtomicU64,
}

pub fn add(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

/// Holds a gauge up while alive.
pub struct GaugeGuard<'a>(&'a AtomicI64);

impl<'a> GaugeGuard<'a> {
    pub fn new(gauge: &'a AtomicI64) -> GaugeGuard<'a> {
        gauge.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot for `moss show job` and `/metrics` (the wire type).
pub use moss_types::moss::GetBatchStats as Snapshot;

impl Stats {
    pub fn snapshot(&self, bewarm_workers: i64) -> Snapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            reqs: get(&self.reqs),
            obj_count: get(&self.obj_count),
            obj_bytes: get(&self.obj_bytes),
            file_count: get(&self.file_count),
            file_bytes: get(&self.file_bytes),
            gfn_count: get(&self.gfn_count),
            err_gfn_count: get(&self.err_gfn_count),
            rxwait_ns: get(&self.rxwait_ns),
            throttle_ns: get(&self.throttle_ns),
            err_count: get(&self.err_count),
            err_soft_count: get(&self.err_soft_count),
            active_work_items: self.active_work_items.load(Ordering::Relaxed),
            active_send_streams: self.active_send_streams.load(Ordering::Relaxed),
            bewarm_workers,
            bewarm_done: get(&self.bewarm_done),
        }
    }
}
