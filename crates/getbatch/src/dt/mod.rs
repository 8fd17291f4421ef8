//! The designated target (DT): splits a batch by owner, opens one source per owner (its own disks,
//! or a sender stream from another target), gathers every item's stat before the first byte, then
//! writes the archive in request order, pulling each item from its owner's ordered source.
//!
//! - `source`: what sources deliver (batched events) and the local and remote sources;
//! - `assembly`: the stat phase, the ordered write loop, and recovery when a source fails.
mod assembly;
mod source;

pub(crate) use self::source::release_handle;

use std::collections::HashSet;
use std::sync::Arc;

use moss_archive::Format;
use moss_types::moss::{Entry, MossReq, SendEntry, SendReq};
use moss_types::smap::Snode;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, oneshot};

use self::assembly::Assembly;
use self::source::{SourceState, remote_source};
use crate::coalesce::BodyItem;
use crate::{BatchJob, Engine};

/// Response body chunks buffered between the assembler and the socket.
const BODY_AHEAD: usize = 4;
/// Smallest read-ahead window of one source.
const MIN_SOURCE_WINDOW: u64 = 1 << 20;

/// A batch that passed the stat phase: the response can start.
pub struct Started {
    pub content_type: String,
    pub body: mpsc::Receiver<BodyItem>,
}

/// A batch that failed before its first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    pub status: u16,
    pub message: String,
    pub retry_after: Option<u64>,
}

impl BatchError {
    fn new(status: u16, message: impl Into<String>) -> BatchError {
        BatchError {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn internal(message: impl Into<String>) -> BatchError {
        BatchError::new(500, message)
    }

    pub fn too_many(message: impl Into<String>) -> BatchError {
        BatchError {
            retry_after: Some(1),
            ..BatchError::new(429, message)
        }
    }

    fn unavailable(message: impl Into<String>) -> BatchError {
        BatchError {
            retry_after: Some(1),
            ..BatchError::new(503, message)
        }
    }
}

impl Engine {
    /// Starts a GetBatch as DT. Returns once every item's stat is known: either the response can
    /// begin (`Started`), or the batch fails with a status and no archive bytes.
    pub async fn getbatch(
        self: &Arc<Self>,
        req: MossReq,
        entries: Vec<Entry>,
        format: Format,
        job: BatchJob,
    ) -> Result<Started, BatchError> {
        let config = self.view.config();
        let admission = self.admit(&config)?;
        if job.item.job().is_aborted() {
            return Err(aborted(job.item.job()));
        }
        let wid = format!("gbt-{}", random_token());
        let smap = self.view.smap();
        let me = self.view.node_id().to_string();
        // Per entry: None for this node, else the index of its owner in `remote`.
        let mut owner_of: Vec<Option<usize>> = Vec::with_capacity(entries.len());
        let mut local = Vec::new();
        let mut remote: Vec<(Snode, Vec<u32>)> = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let owner = moss_cluster::owner_of_object(&smap, &entry.bck, &entry.objname)
                .ok_or_else(|| BatchError::unavailable("no targets in the cluster map"))?;
            if owner.daemon_id == me {
                local.push(i as u32);
                owner_of.push(None);
                continue;
            }
            let slot = match remote
                .iter()
                .position(|(t, _)| t.daemon_id == owner.daemon_id)
            {
                Some(slot) => slot,
                None => {
                    remote.push((owner.clone(), Vec::new()));
                    remote.len() - 1
                }
            };
            remote[slot].1.push(i as u32);
            owner_of.push(Some(slot));
        }
        let source_count = usize::from(!local.is_empty()) + remote.len();
        let window =
            (config.get_batch.window_bytes / source_count.max(1) as u64).max(MIN_SOURCE_WINDOW);
        let mut sources = Vec::with_capacity(source_count);
        if !local.is_empty() {
            let (tx, rx) = mpsc::unbounded_channel();
            let engine = self.clone();
            let indices = local.clone();
            let picked: Vec<Entry> = local.iter().map(|&i| entries[i as usize].clone()).collect();
            let sem = Arc::new(Semaphore::new(window as usize));
            let warmup = config.get_batch.warmup_workers;
            let handle = Handle::current();
            tokio::task::spawn_blocking(move || {
                engine.local_source(indices, picked, tx, sem, handle, warmup)
            });
            sources.push(SourceState {
                target: None,
                name: format!("t[{me}]"),
                indices: local,
                rx: Some(rx),
                pending: Default::default(),
                held: None,
                broken: None,
            });
        }
        let first_remote = sources.len();
        for (target, indices) in remote {
            let (tx, rx) = mpsc::unbounded_channel();
            let send = SendReq {
                wid: wid.clone(),
                xid: job.item.job().id.clone(),
                xkind: job.item.job().kind.kind.to_string(),
                entries: indices
                    .iter()
                    .map(|&i| SendEntry::new(i, &entries[i as usize]))
                    .collect(),
            };
            let sem = Arc::new(Semaphore::new(window as usize));
            tokio::spawn(remote_source(
                self.view.clone(),
                target.clone(),
                send,
                tx,
                sem,
            ));
            sources.push(SourceState {
                name: target.display(),
                target: Some(target),
                indices,
                rx: Some(rx),
                pending: Default::default(),
                held: None,
                broken: None,
            });
        }
        let source_of: Vec<usize> = owner_of
            .iter()
            .map(|slot| slot.map_or(0, |k| first_remote + k))
            .collect();
        let (verdict_tx, verdict_rx) = oneshot::channel();
        let (body_tx, body_rx) = mpsc::channel(BODY_AHEAD);
        let assembly = Assembly {
            engine: self.clone(),
            handle: Handle::current(),
            max_wait: config.get_batch.max_wait.0,
            hold_limit: window,
            max_soft: job
                .max_soft
                .unwrap_or_else(|| config.get_batch.soft_errs_limit()),
            coer: req.coer,
            onob: req.onob,
            streaming: req.strm,
            format,
            wid,
            entries,
            sources,
            source_of,
            soft: 0,
            late: Vec::new(),
            spooling: false,
            unreachable: HashSet::new(),
            delivered: (0, 0),
            counts_entries: job.counts_entries,
            work: job.item,
            _admission: admission,
        };
        tokio::task::spawn_blocking(move || assembly.run(verdict_tx, body_tx));
        match verdict_rx.await {
            Ok(Ok(content_type)) => Ok(Started {
                content_type,
                body: body_rx,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(BatchError::internal(
                "get-batch assembly stopped unexpectedly",
            )),
        }
    }
}

/// The error of a batch whose job was aborted before its first byte.
pub(crate) fn aborted(job: &moss_jobs::Job) -> BatchError {
    let why = job.snap().abort_err;
    BatchError::new(
        409,
        format!("{} job {} was aborted: {why}", job.kind.kind, job.id),
    )
}

fn random_token() -> String {
    (0..10)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect()
}
