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

/// The control message of a get-batch job, in the layout of the seed's `ais show job`:
/// `pending:(1,1) reqs:21849 objs: [1398300 2.00GiB] files: [391284 8.70GiB], bewarm:on avg-wait:2.3ms`.
/// `pending` is (work items being assembled or sent on this node, work items of this job); the
/// other counters are the node's lifetime GetBatch counters.
pub fn job_ctl(s: &Snapshot, job_pending: u64) -> String {
    use moss_types::units::{duration_ns, iec};
    let active = (s.active_work_items + s.active_send_streams).max(0);
    let avg_wait = match s.reqs {
        0 => "-".to_string(),
        reqs => duration_ns(s.rxwait_ns / reqs),
    };
    let bewarm = if s.bewarm_workers > 0 { "on" } else { "off" };
    // Errors only when there are any, so the common line keeps the seed's layout.
    let mut errs = String::new();
    if s.err_count > 0 {
        errs.push_str(&format!(" errs:{}", s.err_count));
    }
    if s.err_soft_count > 0 {
        errs.push_str(&format!(" soft-errs:{}", s.err_soft_count));
    }
    format!(
        "pending:({active},{job_pending}) reqs:{}{errs} objs: [{} {}] files: [{} {}], bewarm:{bewarm} avg-wait:{avg_wait}",
        s.reqs,
        s.obj_count,
        iec(s.obj_bytes),
        s.file_count,
        iec(s.file_bytes),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_control_message_has_the_seeds_layout() {
        let s = Snapshot {
            reqs: 4,
            obj_count: 1398300,
            obj_bytes: 2 << 30,
            file_count: 2,
            file_bytes: 2048,
            rxwait_ns: 9_200_000,
            active_work_items: 1,
            bewarm_workers: 2,
            ..Default::default()
        };
        assert_eq!(
            job_ctl(&s, 1),
            "pending:(1,1) reqs:4 objs: [1398300 2.00GiB] files: [2 2.00KiB], bewarm:on avg-wait:2.3ms"
        );
        let failing = Snapshot {
            err_count: 2,
            err_soft_count: 5,
            ..s
        };
        assert!(job_ctl(&failing, 0).starts_with("pending:(1,0) reqs:4 errs:2 soft-errs:5 objs:"));
    }
}
