//! The job model of a moss node (AIStore's "xactions"): every operation that outlives a request
//! is a [`Job`] in the node's [`Registry`] — identity, counters, state, abort — whose work is a
//! [`Worker`] the registry runs and whose outcome it records.
//!
//! Design: `docs/rfcs/0003-jobs.md`; the wire shapes are in `moss_types::jobs`.
mod id;
mod job;
mod registry;

pub use id::{archive_id, copy_id, generic_id, getbatch_id, rebalance_id};
pub use job::{CtlFn, Job, JobDesc, State, WorkItem, rfc3339, unix_nanos};
pub use registry::{RegisterError, Registry, Worker, worker_fn};

/// How long a demand-driven job stays running without work before it finishes (AIStore: 1 min).
pub const IDLE_FINISH: std::time::Duration = std::time::Duration::from_secs(60);
