//! The jobs of one node: registration, queries, abort, running workers, housekeeping (idle
//! finish, bounded history) and clean shutdown.
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moss_types::jobs::{GET_BATCH, JobFilter, JobStop, Snap};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::IDLE_FINISH;
use crate::job::{Job, JobDesc, WorkItem};

/// Finished jobs kept for queries (waits poll finished jobs).
const HISTORY: Duration = Duration::from_secs(3600);
/// GetBatch jobs are many and short-lived: AIStore drops them a minute after they finish.
const GETBATCH_HISTORY: Duration = Duration::from_secs(60);
/// At most this many finished jobs are kept; the oldest go first.
const MAX_FINISHED: usize = 4096;
/// How often the housekeeper runs.
const TICK: Duration = Duration::from_secs(1);

/// The work of a job. `run` does the job's share on this node and returns when it is done; it
/// checks `job.cancel_token()` between steps. An `Err` aborts the job with that error.
pub trait Worker: Send + 'static {
    fn run(self, job: Arc<Job>) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A worker from an async closure.
pub fn worker_fn<F, Fut>(f: F) -> FnWorker<F>
where
    F: FnOnce(Arc<Job>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    FnWorker(f)
}

pub struct FnWorker<F>(F);

impl<F, Fut> Worker for FnWorker<F>
where
    F: FnOnce(Arc<Job>) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    fn run(self, job: Arc<Job>) -> impl Future<Output = anyhow::Result<()>> + Send {
        (self.0)(job)
    }
}

/// The jobs of a node.
pub struct Registry {
    node: String,
    inner: Mutex<Inner>,
    tasks: TaskTracker,
}

#[derive(Default)]
struct Inner {
    jobs: HashMap<String, Arc<Job>>,
    /// Ids in registration order.
    order: VecDeque<String>,
    /// Jobs not known to be finished, oldest first: what `renew` searches on every GetBatch
    /// request, a handful of entries instead of the whole history.
    running: Vec<Arc<Job>>,
}

impl Inner {
    fn insert(&mut self, job: Arc<Job>) {
        self.order.retain(|id| id != &job.id);
        self.order.push_back(job.id.clone());
        self.running.retain(|j| j.id != job.id);
        self.running.push(job.clone());
        self.jobs.insert(job.id.clone(), job);
    }
}

/// Why a job could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// A job with this id exists and is not finished.
    #[error("job {0} is already running")]
    Duplicate(String),
}

impl Registry {
    /// A registry for node `node` (`t[id]`); its housekeeper runs until `shutdown` fires, which
    /// also aborts every running job.
    pub fn new(node: &str, shutdown: CancellationToken) -> Arc<Registry> {
        let registry = Arc::new(Registry {
            node: node.to_string(),
            inner: Mutex::new(Inner::default()),
            tasks: TaskTracker::new(),
        });
        let weak = Arc::downgrade(&registry);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        if let Some(registry) = weak.upgrade() {
                            registry.abort_all("node shutting down");
                        }
                        return;
                    }
                    _ = tokio::time::sleep(TICK) => {}
                }
                match weak.upgrade() {
                    Some(registry) => registry.housekeep(),
                    None => return,
                }
            }
        });
        registry
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a job (no worker: its work items come from elsewhere, as GetBatch's do). A
    /// finished job of the same id is replaced.
    pub fn register(&self, desc: JobDesc) -> Result<Arc<Job>, RegisterError> {
        let mut inner = self.lock();
        if let Some(existing) = inner.jobs.get(&desc.id)
            && !existing.is_finished()
        {
            return Err(RegisterError::Duplicate(desc.id));
        }
        let job = Arc::new(Job::new(desc));
        inner.insert(job.clone());
        tracing::debug!(node = %self.node, job = %job.id, kind = job.kind.kind, "job registered");
        Ok(job)
    }

    /// The running job `reuse` accepts, or a new one from `desc()` (AIStore's "renew").
    pub fn renew(&self, reuse: impl Fn(&Job) -> bool, desc: impl FnOnce() -> JobDesc) -> Arc<Job> {
        self.renew_locked(&mut self.lock(), reuse, desc)
    }

    /// [`Registry::renew`], with a new pending work item of the job: taken under the registry's
    /// lock, so the housekeeper cannot finish an idle job between finding it and using it.
    pub fn renew_item(
        &self,
        reuse: impl Fn(&Job) -> bool,
        desc: impl FnOnce() -> JobDesc,
    ) -> WorkItem {
        let mut inner = self.lock();
        let job = self.renew_locked(&mut inner, reuse, desc);
        job.work_item()
    }

    fn renew_locked(
        &self,
        inner: &mut Inner,
        reuse: impl Fn(&Job) -> bool,
        desc: impl FnOnce() -> JobDesc,
    ) -> Arc<Job> {
        inner.running.retain(|job| !job.is_finished());
        let found = inner.running.iter().rev().find(|job| reuse(job)).cloned();
        if let Some(job) = found {
            return job;
        }
        let job = Arc::new(Job::new(desc()));
        inner.insert(job.clone());
        job
    }

    /// Registers a job and runs `worker` for it. Demand-driven kinds count the worker as one
    /// pending work item (they stay running, idle, after it returns); the others finish when it
    /// returns. An error aborts the job with that error.
    pub fn start(
        self: &Arc<Self>,
        desc: JobDesc,
        worker: impl Worker,
    ) -> Result<Arc<Job>, RegisterError> {
        let job = self.register(desc)?;
        self.run(job.clone(), worker);
        Ok(job)
    }

    /// Runs `worker` for an already registered job.
    pub fn run(self: &Arc<Self>, job: Arc<Job>, worker: impl Worker) {
        let item = job.work_item();
        let node = self.node.clone();
        let work: Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>> =
            Box::pin(worker.run(job.clone()));
        self.tasks.spawn(async move {
            let outcome = work.await;
            let idles = job.kind.idles;
            match outcome {
                Ok(()) if job.is_aborted() => {}
                Ok(()) if idles => {}
                Ok(()) => job.finish(),
                Err(e) => {
                    if !job.is_aborted() {
                        tracing::warn!(%node, job = %job.id, kind = job.kind.kind, "job failed: {e:#}");
                    }
                    job.abort(format!("{e:#}"));
                }
            }
            drop(item);
        });
    }

    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().jobs.get(id).cloned()
    }

    /// The jobs a filter selects, oldest first.
    pub fn select(&self, filter: &JobFilter) -> Vec<Arc<Job>> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .filter_map(|id| inner.jobs.get(id))
            .filter(|job| filter.id.is_empty() || job.id == filter.id)
            .filter(|job| filter.kind.is_empty() || job.kind.kind == filter.kind)
            .filter(|job| {
                filter.bck.as_ref().is_none_or(|b| {
                    job.bck.as_ref() == Some(b)
                        || job.src.as_ref() == Some(b)
                        || job.dst.as_ref() == Some(b)
                })
            })
            .filter(|job| !filter.only_running || !job.is_finished())
            .cloned()
            .collect()
    }

    /// Snapshots of the jobs a filter selects.
    pub fn query(&self, filter: &JobFilter) -> Vec<Snap> {
        self.select(filter).iter().map(|job| job.snap()).collect()
    }

    /// Aborts the running jobs a stop request names; returns how many.
    pub fn stop(&self, stop: &JobStop) -> usize {
        let filter = JobFilter {
            id: stop.id.clone(),
            kind: stop.kind.clone(),
            bck: stop.bck.clone(),
            only_running: true,
        };
        let jobs = self.select(&filter);
        for job in &jobs {
            job.abort(stop.reason.clone());
        }
        jobs.len()
    }

    fn abort_all(&self, reason: &str) {
        let running: Vec<Arc<Job>> = self.lock().running.clone();
        for job in running {
            job.abort(reason);
        }
    }

    /// Finishes demand-driven jobs idle for [`IDLE_FINISH`] and forgets old finished jobs.
    pub fn housekeep(&self) {
        self.sweep(IDLE_FINISH);
    }

    fn sweep(&self, idle_finish: Duration) {
        let mut inner = self.lock();
        for job in &inner.running {
            if job.kind.idles
                && !job.is_finished()
                && job.pending() == 0
                && job.inactive_for() >= idle_finish
            {
                job.finish();
            }
        }
        let expired = |job: &Job| {
            let keep = if job.kind.kind == GET_BATCH {
                GETBATCH_HISTORY
            } else {
                HISTORY
            };
            job.ended_ago().is_some_and(|ago| ago > keep)
        };
        let mut finished = inner.jobs.values().filter(|j| j.is_finished()).count();
        inner.running.retain(|job| !job.is_finished());
        let Inner { jobs, order, .. } = &mut *inner;
        order.retain(|id| {
            let Some(job) = jobs.get(id) else {
                return false;
            };
            let drop = job.is_finished() && (expired(job) || finished > MAX_FINISHED);
            if drop {
                finished -= 1;
                jobs.remove(id);
            }
            !drop
        });
    }

    /// Aborts every running job and waits up to `grace` for their workers to return.
    pub async fn shutdown(&self, grace: Duration) {
        self.abort_all("node shutting down");
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(node = %self.node, "job workers did not stop within {grace:?}");
        }
    }

    /// How many jobs are known (running and finished).
    pub fn len(&self) -> usize {
        self.lock().jobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_types::jobs::{COPY_OBJECTS, DELETE_OBJECTS, LRU, USER_ABORT};

    fn filter_kind(kind: &str) -> JobFilter {
        JobFilter {
            kind: kind.into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_worker_runs_and_its_outcome_is_recorded() {
        let registry = Registry::new("t[x]", CancellationToken::new());
        let job = registry
            .start(
                JobDesc::new("Aaaaaaaaaa", DELETE_OBJECTS),
                worker_fn(|job: Arc<Job>| async move {
                    job.add_loc(2, 20);
                    Ok(())
                }),
            )
            .unwrap();
        registry.tasks.close();
        registry.tasks.wait().await;
        let snap = job.snap();
        assert!(snap.finished() && !snap.aborted, "{snap:?}");
        assert_eq!(snap.stats.loc_objs, 2);

        let failing = registry
            .start(
                JobDesc::new("Bbbbbbbbbb", LRU),
                worker_fn(|_job: Arc<Job>| async move { anyhow::bail!("disk on fire") }),
            )
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(failing.snap().abort_err, "disk on fire");
    }

    #[tokio::test]
    async fn demand_driven_jobs_stay_running_after_their_worker() {
        let registry = Registry::new("t[x]", CancellationToken::new());
        let job = registry
            .start(
                JobDesc::new("tco-aaaaaaaaaa", COPY_OBJECTS),
                worker_fn(|_job: Arc<Job>| async move { Ok(()) }),
            )
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let snap = job.snap();
        assert!(snap.running() && snap.is_idle, "{snap:?}");
        assert_eq!(registry.query(&filter_kind(COPY_OBJECTS)).len(), 1);
    }

    #[tokio::test]
    async fn stop_aborts_by_id_or_kind_and_the_worker_sees_it() {
        let registry = Registry::new("t[x]", CancellationToken::new());
        let job = registry
            .start(
                JobDesc::new("Cccccccccc", DELETE_OBJECTS),
                worker_fn(|job: Arc<Job>| async move {
                    job.cancelled().await;
                    anyhow::bail!("stopped")
                }),
            )
            .unwrap();
        let stopped = registry.stop(&JobStop {
            kind: DELETE_OBJECTS.into(),
            reason: USER_ABORT.into(),
            ..Default::default()
        });
        assert_eq!(stopped, 1);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let snap = job.snap();
        assert!(snap.aborted);
        assert_eq!(snap.abort_err, USER_ABORT);
        // finished jobs are not stopped again
        assert_eq!(
            registry.stop(&JobStop {
                id: "Cccccccccc".into(),
                reason: USER_ABORT.into(),
                ..Default::default()
            }),
            0
        );
    }

    #[tokio::test]
    async fn renew_reuses_running_jobs_only() {
        let registry = Registry::new("t[x]", CancellationToken::new());
        let desc = || JobDesc::new(crate::getbatch_id(), GET_BATCH);
        let first = registry.renew(|_| true, desc);
        let again = registry.renew(|_| true, desc);
        assert_eq!(first.id, again.id);
        first.abort(USER_ABORT);
        let fresh = registry.renew(|_| true, desc);
        assert_ne!(fresh.id, first.id);
        assert!(
            registry
                .register(JobDesc::new(fresh.id.clone(), GET_BATCH))
                .is_err()
        );
    }

    #[tokio::test]
    async fn idle_jobs_finish_and_history_is_bounded() {
        let registry = Registry::new("t[x]", CancellationToken::new());
        let gb = registry
            .register(JobDesc::new(crate::getbatch_id(), GET_BATCH))
            .unwrap();
        drop(gb.work_item());
        for i in 0..(MAX_FINISHED + 10) {
            let job = registry
                .register(JobDesc::new(format!("J{i:09}"), DELETE_OBJECTS))
                .unwrap();
            job.finish();
        }
        registry.housekeep();
        assert_eq!(registry.len(), MAX_FINISHED + 1);
        assert!(
            registry.get("J000000000").is_none(),
            "the oldest went first"
        );
        assert!(!gb.is_finished(), "idle for less than a minute");
        let busy = registry
            .register(JobDesc::new(crate::getbatch_id(), GET_BATCH))
            .unwrap();
        let item = busy.work_item();
        registry.sweep(Duration::ZERO);
        assert!(gb.is_finished(), "idle long enough");
        assert!(
            !busy.is_finished(),
            "a job with pending work never finishes by itself"
        );
        drop(item);
    }

    #[tokio::test]
    async fn shutdown_aborts_running_jobs() {
        let token = CancellationToken::new();
        let registry = Registry::new("t[x]", token.clone());
        let job = registry
            .start(
                JobDesc::new("Dddddddddd", DELETE_OBJECTS),
                worker_fn(|job: Arc<Job>| async move {
                    job.cancelled().await;
                    Ok(())
                }),
            )
            .unwrap();
        registry.shutdown(Duration::from_secs(5)).await;
        assert_eq!(job.snap().abort_err, "node shutting down");
    }
}
