//! The jobs a target runs for the proxy (`POST /v1/internal/jobs`): each does this target's
//! share of a multi-object or bucket-level operation. Design: `docs/rfcs/0003-jobs.md`.
mod archive;
mod copy;
mod delete;
mod maintenance;
mod promote;
mod remote;
pub mod rename;
mod summary;

use std::sync::Arc;

use moss_jobs::{Job, RegisterError};
use moss_types::Bck;
use moss_types::jobs::{
    DELETE_OBJECTS, EVICT_OBJECTS, EVICT_REMOTE_BCK, JobSpec, JobStart, Selection,
};
use tokio::sync::mpsc;

use super::Target;
use crate::http::ApiError;

/// Names handed from the producer thread to a job at a time.
const NAME_BATCH: usize = 512;
/// Batches buffered between the producer and the job.
const BATCHES_AHEAD: usize = 4;
/// Transfers in flight per target when the client does not say (`num-workers` 0).
const DEFAULT_WORKERS: usize = 8;
/// Most transfers in flight per target a client may ask for.
const MAX_WORKERS: usize = 64;

/// Registers the job a start request describes and runs this target's share of it. Returns once
/// the job is registered (the proxy answers the client only after every target has).
pub fn start(target: &Arc<Target>, start: JobStart) -> Result<(), ApiError> {
    let JobStart { id, spec } = start;
    let registered = match spec {
        JobSpec::Lru => maintenance::start_lru(target, id),
        JobSpec::Cleanup => maintenance::start_cleanup(target, id),
        JobSpec::Delete { bck, selection } if bck.provider != moss_types::Provider::Ais => {
            remote::start_delete(target, id, bck, selection)
        }
        JobSpec::Delete { bck, selection } => {
            delete::start(target, id, DELETE_OBJECTS, bck, selection)
        }
        JobSpec::Evict {
            bck,
            selection,
            whole_bucket,
        } => {
            let kind = if whole_bucket {
                EVICT_REMOTE_BCK
            } else {
                EVICT_OBJECTS
            };
            delete::start(target, id, kind, bck, selection)
        }
        JobSpec::Prefetch {
            bck,
            selection,
            latest,
            workers: n,
        } => remote::start_prefetch(target, id, bck, selection, latest, workers(n)),
        JobSpec::CopyObjects {
            src,
            dst,
            selection,
            copy,
        } => copy::start(target, id, src, dst, Some(selection), copy),
        JobSpec::CopyBucket { src, dst, copy } => copy::start(target, id, src, dst, None, copy),
        JobSpec::Archive {
            src,
            dst,
            selection,
            archive,
        } => archive::start(target, id, src, dst, selection, archive),
        JobSpec::Summary { bck, prefix } => summary::start(target, id, bck, prefix),
        JobSpec::MoveBucket { from, to } => rename::start(target, id, from, to),
        JobSpec::Promote { bck, args } => {
            let source = promote::check(&args)?;
            promote::start(target, id, bck, args, source)
        }
        JobSpec::EcEncode { bck } => super::ec::start_encode(target, id, bck),
        JobSpec::MakeNCopies { bck, copies } => super::mirror::start_job(target, id, bck, copies),
    };
    registered?;
    Ok(())
}

/// `num-workers` as AIStore reads it: 0 → our default, -1 → serial, n → n (bounded).
fn workers(requested: i64) -> usize {
    match requested {
        0 => DEFAULT_WORKERS,
        n if n < 0 => 1,
        n => (n as usize).min(MAX_WORKERS),
    }
}

/// One name of a selection that this target acts on.
#[derive(Debug, Clone)]
pub(crate) struct Selected {
    pub name: String,
    /// HRW places the object on this target (else this target may hold a copy not yet moved by
    /// a rebalance: found on its disks for a prefix, merely possible for a list or range).
    pub owned: bool,
}

/// Whether a job acts on local copies it does not own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Only names HRW assigns to this target.
    Owned,
    /// While objects may be in transit, also the names of copies this target may hold (deletes
    /// must remove them, or they would come back).
    OwnedOrHeld,
}

/// Produces, on a blocking thread, the names of `selection` in `bck` that this target acts on —
/// in batches, through a small bounded channel, so a template of millions of names costs a few
/// batches of memory. A prefix is served from this target's own disks. The producer stops when
/// the job is aborted or the receiver is dropped.
pub(crate) fn selected_names(
    target: &Arc<Target>,
    job: &Arc<Job>,
    bck: &Bck,
    selection: Selection,
    scope: Scope,
) -> mpsc::Receiver<anyhow::Result<Vec<Selected>>> {
    let (tx, rx) = mpsc::channel(BATCHES_AHEAD);
    let target = target.clone();
    let job = job.clone();
    let bck = bck.clone();
    tokio::task::spawn_blocking(move || {
        let smap = target.shared.smap.load_full();
        let me = target.shared.id.as_str();
        let held_too = scope == Scope::OwnedOrHeld && target.shared.neighbors_may_hold(&bck);
        let owns = |name: &str| {
            moss_cluster::owner_of_object(&smap, &bck, name).is_some_and(|t| t.daemon_id == me)
        };
        let mut batch = Vec::with_capacity(NAME_BATCH);
        // false: stop (aborted, or nobody is listening any more)
        let push = |selected: Selected, batch: &mut Vec<Selected>| -> bool {
            batch.push(selected);
            if batch.len() < NAME_BATCH {
                return true;
            }
            let full = std::mem::replace(batch, Vec::with_capacity(NAME_BATCH));
            !job.cancel_token().is_cancelled() && tx.blocking_send(Ok(full)).is_ok()
        };
        // A name this target does not own is passed on as is: the job's own attempt (a delete)
        // finds out whether a copy is here, with no extra lookup first.
        let consider = |name: String, batch: &mut Vec<Selected>| -> bool {
            if owns(&name) {
                return push(Selected { name, owned: true }, batch);
            }
            if held_too {
                return push(Selected { name, owned: false }, batch);
            }
            true
        };
        let walked = match selection {
            Selection::List(names) => {
                for name in names {
                    if !consider(name, &mut batch) {
                        return;
                    }
                }
                Ok(())
            }
            Selection::Range(text) => {
                let template = match moss_types::template::Template::parse(&text) {
                    Ok(Some(t)) => t,
                    Ok(None) => {
                        let _ = tx.blocking_send(Err(anyhow::anyhow!("{text:?} is not a range")));
                        return;
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(anyhow::anyhow!(e)));
                        return;
                    }
                };
                for name in template.names() {
                    if !consider(name, &mut batch) {
                        return;
                    }
                }
                Ok(())
            }
            Selection::Prefix(prefix) => target.store.walk_prefix(&bck, &prefix, |obj| {
                let selected = Selected {
                    owned: owns(obj.name),
                    name: obj.name.to_string(),
                };
                push(selected, &mut batch)
            }),
        };
        let last = match walked {
            Ok(()) => Ok(batch),
            Err(e) => Err(anyhow::anyhow!("walk {}: {e}", bck.cname())),
        };
        if last.as_ref().is_ok_and(|b| b.is_empty()) {
            return;
        }
        let _ = tx.blocking_send(last);
    });
    rx
}

/// The error a job records for a listed name that does not exist.
fn missing(bck: &Bck, name: &str) -> String {
    format!("{}/{name} does not exist", bck.cname())
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> ApiError {
        ApiError::conflict(e.to_string())
    }
}
