//! One job on one node: identity, counters, errors, state, and its snapshot.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use moss_types::Bck;
use moss_types::jobs::{BckJson, KindInfo, Snap, SnapStats, ZERO_TIME, pack_workers};
use tokio_util::sync::CancellationToken;

/// Non-fatal errors kept verbatim per job; the rest are only counted.
const KEPT_ERRORS: usize = 16;

/// Builds the control message of a snapshot (GetBatch puts its node counters there).
pub type CtlFn = Box<dyn Fn(&Job) -> String + Send + Sync>;

/// What a new job is.
pub struct JobDesc {
    pub id: String,
    pub kind: &'static KindInfo,
    pub bck: Option<Bck>,
    pub src: Option<Bck>,
    pub dst: Option<Bck>,
    /// For demand-driven kinds: how long nothing must be pending before the job reads idle.
    pub idle_lag: Duration,
    /// Workers running the job's share on this node (shown in `glob.id`).
    pub workers: u64,
    pub ctl: Option<CtlFn>,
}

impl JobDesc {
    /// A job of `kind` (a wire name from `moss_types::jobs`) with id `id`.
    ///
    /// # Panics
    /// Never for the kinds moss names in `moss_types::jobs`; an unknown kind is a programming error.
    pub fn new(id: impl Into<String>, kind: &str) -> JobDesc {
        #[allow(clippy::expect_used)]
        let kind = moss_types::jobs::kind_info(kind).expect("a kind from the kind table");
        JobDesc {
            id: id.into(),
            kind,
            bck: None,
            src: None,
            dst: None,
            idle_lag: Duration::ZERO,
            workers: 0,
            ctl: None,
        }
    }

    pub fn bck(mut self, bck: &Bck) -> JobDesc {
        self.bck = Some(bck.clone());
        self
    }

    /// Source and destination (also sets `bck` to the source, as AIStore does).
    pub fn src_dst(mut self, src: &Bck, dst: &Bck) -> JobDesc {
        self.bck = Some(src.clone());
        self.src = Some(src.clone());
        self.dst = Some(dst.clone());
        self
    }

    pub fn idle_lag(mut self, lag: Duration) -> JobDesc {
        self.idle_lag = lag;
        self
    }

    pub fn workers(mut self, n: u64) -> JobDesc {
        self.workers = n;
        self
    }

    pub fn ctl(mut self, ctl: CtlFn) -> JobDesc {
        self.ctl = Some(ctl);
        self
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    Running { idle: bool },
    Finished { errors: bool },
    Aborted(String),
}

/// A job. Shared (`Arc`) between its worker, the registry and whoever feeds it work items.
pub struct Job {
    pub id: String,
    pub kind: &'static KindInfo,
    pub bck: Option<Bck>,
    pub src: Option<Bck>,
    pub dst: Option<Bck>,
    started: SystemTime,
    ended: OnceLock<(SystemTime, Instant)>,
    abort_err: OnceLock<String>,
    cancel: CancellationToken,
    loc_objs: AtomicU64,
    loc_bytes: AtomicU64,
    out_objs: AtomicU64,
    out_bytes: AtomicU64,
    in_objs: AtomicU64,
    in_bytes: AtomicU64,
    errors: Mutex<Errors>,
    pending: AtomicU64,
    last_active: Mutex<Instant>,
    idle_lag: Duration,
    workers: AtomicU64,
    ctl: Option<CtlFn>,
    /// Free-form status line (what a job is waiting for, what it found).
    note: Mutex<String>,
    /// A result the job produced (a bucket summary part), for whoever asks.
    result: Mutex<Option<serde_json::Value>>,
}

#[derive(Default)]
struct Errors {
    kept: Vec<String>,
    more: u64,
}

impl Job {
    pub(crate) fn new(desc: JobDesc) -> Job {
        Job {
            id: desc.id,
            kind: desc.kind,
            bck: desc.bck,
            src: desc.src,
            dst: desc.dst,
            started: SystemTime::now(),
            ended: OnceLock::new(),
            abort_err: OnceLock::new(),
            cancel: CancellationToken::new(),
            loc_objs: AtomicU64::new(0),
            loc_bytes: AtomicU64::new(0),
            out_objs: AtomicU64::new(0),
            out_bytes: AtomicU64::new(0),
            in_objs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            errors: Mutex::new(Errors::default()),
            pending: AtomicU64::new(0),
            last_active: Mutex::new(Instant::now()),
            idle_lag: desc.idle_lag,
            workers: AtomicU64::new(desc.workers),
            ctl: desc.ctl,
            note: Mutex::new(String::new()),
            result: Mutex::new(None),
        }
    }

    /// Objects and bytes processed on this node.
    pub fn add_loc(&self, objs: u64, bytes: u64) {
        self.loc_objs.fetch_add(objs, Ordering::Relaxed);
        self.loc_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Objects and bytes sent to other nodes.
    pub fn add_out(&self, objs: u64, bytes: u64) {
        self.out_objs.fetch_add(objs, Ordering::Relaxed);
        self.out_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Objects and bytes received from other nodes.
    pub fn add_in(&self, objs: u64, bytes: u64) {
        self.in_objs.fetch_add(objs, Ordering::Relaxed);
        self.in_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Records an error that does not stop the job (it shows in `err`) and logs it.
    pub fn add_err(&self, err: impl std::fmt::Display) {
        tracing::warn!(job = %self.id, kind = self.kind.kind, "{err}");
        if let Ok(mut errors) = self.errors.lock() {
            if errors.kept.len() < KEPT_ERRORS {
                errors.kept.push(err.to_string());
            } else {
                errors.more += 1;
            }
        }
    }

    /// The errors recorded so far, joined as AIStore joins them.
    pub fn err_text(&self) -> String {
        let Ok(errors) = self.errors.lock() else {
            return String::new();
        };
        let mut text = errors.kept.join("; ");
        if errors.more > 0 {
            text.push_str(&format!(" (and {} more)", errors.more));
        }
        text
    }

    /// Sets the status line shown in the snapshot's `ctlmsg`.
    pub fn set_note(&self, note: impl Into<String>) {
        if let Ok(mut slot) = self.note.lock() {
            *slot = note.into();
        }
    }

    pub fn set_result(&self, value: serde_json::Value) {
        if let Ok(mut slot) = self.result.lock() {
            *slot = Some(value);
        }
    }

    pub fn result(&self) -> Option<serde_json::Value> {
        self.result.lock().ok().and_then(|r| r.clone())
    }

    /// The token cancelled when the job is aborted.
    pub fn cancel_token(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn is_aborted(&self) -> bool {
        self.abort_err.get().is_some()
    }

    /// Resolves once the job is aborted.
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// Aborts the job (the first reason wins): its work stops at the next check.
    pub fn abort(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if self.ended.get().is_some() && !self.is_aborted() {
            return;
        }
        if self.abort_err.set(reason.clone()).is_ok() {
            tracing::info!(job = %self.id, kind = self.kind.kind, "job aborted: {reason}");
        }
        self.cancel.cancel();
        self.mark_ended();
    }

    /// Finishes the job (no-op once finished or aborted).
    pub fn finish(&self) {
        if self.mark_ended() {
            tracing::debug!(job = %self.id, kind = self.kind.kind, "job finished");
        }
    }

    fn mark_ended(&self) -> bool {
        self.ended.set((SystemTime::now(), Instant::now())).is_ok()
    }

    pub fn is_finished(&self) -> bool {
        self.ended.get().is_some()
    }

    /// How long ago the job ended.
    pub(crate) fn ended_ago(&self) -> Option<Duration> {
        self.ended.get().map(|(_, at)| at.elapsed())
    }

    /// One more pending work item; dropping the guard ends it.
    pub fn work_item(self: &Arc<Self>) -> WorkItem {
        self.pending.fetch_add(1, Ordering::AcqRel);
        self.touch();
        WorkItem { job: self.clone() }
    }

    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    fn touch(&self) {
        if let Ok(mut at) = self.last_active.lock() {
            *at = Instant::now();
        }
    }

    /// Time since the last work item started or ended.
    pub(crate) fn inactive_for(&self) -> Duration {
        self.last_active
            .lock()
            .map(|at| at.elapsed())
            .unwrap_or_default()
    }

    pub fn state(&self) -> State {
        if let Some(reason) = self.abort_err.get() {
            return State::Aborted(reason.clone());
        }
        if self.is_finished() {
            let errors = self
                .errors
                .lock()
                .map(|e| !e.kept.is_empty())
                .unwrap_or(false);
            return State::Finished { errors };
        }
        State::Running {
            idle: self.is_idle(),
        }
    }

    /// AIStore's `is_idle`: finished or aborted; for demand-driven kinds also "nothing pending for
    /// the idle lag".
    pub fn is_idle(&self) -> bool {
        if self.is_finished() {
            return true;
        }
        self.kind.idles && self.pending() == 0 && self.inactive_for() >= self.idle_lag
    }

    /// The job as the SDK sees it.
    pub fn snap(&self) -> Snap {
        let end_time = match self.ended.get() {
            Some((at, _)) => rfc3339(*at),
            None => ZERO_TIME.to_string(),
        };
        let mut ctlmsg = match &self.ctl {
            Some(ctl) => ctl(self),
            None => String::new(),
        };
        if let Ok(note) = self.note.lock()
            && !note.is_empty()
        {
            if !ctlmsg.is_empty() {
                ctlmsg.push_str("; ");
            }
            ctlmsg.push_str(&note);
        }
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snap {
            ext: None,
            start_time: rfc3339(self.started),
            end_time,
            bck: BckJson::of(self.bck.as_ref()),
            src_bck: BckJson::of(self.src.as_ref()),
            dst_bck: BckJson::of(self.dst.as_ref()),
            id: self.id.clone(),
            kind: self.kind.kind.to_string(),
            ctlmsg,
            abort_err: self.abort_err.get().cloned().unwrap_or_default(),
            err: self.err_text(),
            glob_id: pack_workers(load(&self.workers)),
            stats: SnapStats {
                loc_objs: load(&self.loc_objs),
                loc_bytes: load(&self.loc_bytes),
                out_objs: load(&self.out_objs),
                out_bytes: load(&self.out_bytes),
                in_objs: load(&self.in_objs),
                in_bytes: load(&self.in_bytes),
            },
            aborted: self.is_aborted(),
            is_idle: self.is_idle(),
        }
    }
}

/// A pending work item of a demand-driven job; dropping it ends the item.
pub struct WorkItem {
    job: Arc<Job>,
}

impl WorkItem {
    pub fn job(&self) -> &Arc<Job> {
        &self.job
    }
}

impl Drop for WorkItem {
    fn drop(&mut self) {
        self.job.touch();
        self.job.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Unix nanoseconds of an RFC 3339 time (0 for the zero time or text that does not parse).
pub fn unix_nanos(rfc3339: &str) -> u64 {
    humantime::parse_rfc3339(rfc3339)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// RFC 3339 with nanoseconds in UTC (`2026-08-21T19:17:52.512034917Z`): what Go prints, and what
/// the SDK's timezone-aware comparisons need.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_nanos(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_types::jobs::{COPY_OBJECTS, DELETE_OBJECTS, USER_ABORT};

    #[test]
    fn ordinary_jobs_are_idle_only_when_done() {
        let job = Arc::new(Job::new(JobDesc::new("Abcdefghij", DELETE_OBJECTS)));
        assert_eq!(job.state(), State::Running { idle: false });
        let snap = job.snap();
        assert_eq!(snap.end_time, ZERO_TIME);
        assert!(!snap.is_idle);
        assert!(snap.start_time.ends_with('Z'));
        job.add_loc(3, 30);
        job.finish();
        let snap = job.snap();
        assert!(snap.is_idle && snap.finished() && !snap.aborted);
        assert_eq!(snap.stats.loc_objs, 3);
        assert_eq!(job.state(), State::Finished { errors: false });
        // a finished job cannot be aborted any more
        job.abort(USER_ABORT);
        assert!(!job.is_aborted());
    }

    #[test]
    fn demand_driven_jobs_idle_between_work_items() {
        let job = Arc::new(Job::new(JobDesc::new("tco-abcdefghij", COPY_OBJECTS)));
        let item = job.work_item();
        assert!(!job.is_idle());
        drop(item);
        assert!(job.is_idle());
        assert_eq!(job.state(), State::Running { idle: true });
        assert!(job.snap().running());
    }

    #[test]
    fn abort_records_the_first_reason_and_cancels() {
        let job = Arc::new(Job::new(JobDesc::new("Abcdefghij", DELETE_OBJECTS)));
        job.abort(USER_ABORT);
        job.abort("something else");
        assert!(job.cancel_token().is_cancelled());
        let snap = job.snap();
        assert!(snap.aborted);
        assert_eq!(snap.abort_err, USER_ABORT);
        assert!(snap.finished());
    }

    #[test]
    fn errors_are_kept_bounded() {
        let job = Job::new(JobDesc::new("Abcdefghij", DELETE_OBJECTS));
        for i in 0..20 {
            job.add_err(format!("e{i}"));
        }
        let text = job.err_text();
        assert!(text.starts_with("e0; e1"));
        assert!(text.ends_with("(and 4 more)"), "{text}");
        job.finish();
        assert_eq!(job.state(), State::Finished { errors: true });
    }
}
