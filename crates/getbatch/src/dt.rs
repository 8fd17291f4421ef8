//! The designated target (DT): splits a batch by owner, opens one source per owner (its own disks,
//! or a sender stream from another target), gathers every item's stat before the first byte, then
//! writes the archive in request order, pulling each item from its owner's ordered source.
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use moss_archive::Format;
use moss_types::moss::{Entry, MISSING_PREFIX, MossOut, MossReq, MossResp, SendEntry, SendReq};
use moss_types::names::encode_path;
use moss_types::smap::Snode;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::coalesce::{BodyItem, Coalescer};
use crate::frame::{self, Decoded, Stat};
use crate::item::{CHUNK, ItemError, ItemSpec};
use crate::output::{Multipart, Output, new_output};
use crate::stats::{self, GaugeGuard};
use crate::{Admission, Engine};

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

/// What a source delivers, in its own (ascending) index order.
enum Event {
    Stat {
        index: u32,
        stat: Stat,
    },
    Data {
        index: u32,
        chunk: Bytes,
        last: bool,
    },
    Fail {
        index: u32,
        msg: String,
    },
    End,
    /// The source failed; nothing more will come.
    Broken(String),
}

/// Events travel in batches, so a stream of small items costs one wake-up per batch, not per
/// item. The permit covers the batch's payload bytes in the source's window and is returned when
/// the assembler has consumed the whole batch.
struct Batch {
    events: Vec<Event>,
    permit: Option<OwnedSemaphorePermit>,
}

/// Payload bytes after which a source hands its batch over.
const BATCH_BYTES: usize = 128 << 10;
/// Events after which a source hands its batch over.
const BATCH_EVENTS: usize = 32;

/// Collects a source's events into batches and sends them once their window permits are granted.
struct Batcher {
    tx: mpsc::UnboundedSender<Batch>,
    sem: Arc<Semaphore>,
    capacity: usize,
    events: Vec<Event>,
    bytes: usize,
}

impl Batcher {
    fn new(tx: mpsc::UnboundedSender<Batch>, sem: Arc<Semaphore>) -> Batcher {
        let capacity = sem.available_permits();
        Batcher {
            tx,
            sem,
            capacity,
            events: Vec::new(),
            bytes: 0,
        }
    }

    fn push(&mut self, event: Event) {
        if let Event::Data { chunk, .. } = &event {
            self.bytes += chunk.len().max(1);
        }
        self.events.push(event);
    }

    fn is_full(&self) -> bool {
        self.bytes >= BATCH_BYTES || self.events.len() >= BATCH_EVENTS
    }

    fn permits_wanted(&self) -> u32 {
        self.bytes.min(self.capacity) as u32
    }

    fn take(&mut self, permit: Option<OwnedSemaphorePermit>) -> Batch {
        self.bytes = 0;
        Batch {
            events: std::mem::take(&mut self.events),
            permit,
        }
    }

    /// Waits for window space (blocking thread) and sends; false when the DT is gone.
    fn flush_blocking(&mut self, handle: &Handle) -> bool {
        if self.events.is_empty() {
            return true;
        }
        let permit = match self.permits_wanted() {
            0 => None,
            n => match handle.block_on(self.sem.clone().acquire_many_owned(n)) {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
        };
        let batch = self.take(permit);
        self.tx.send(batch).is_ok()
    }

    /// Waits for window space and sends; false when the DT is gone.
    async fn flush(&mut self) -> bool {
        if self.events.is_empty() {
            return true;
        }
        let permit = match self.permits_wanted() {
            0 => None,
            n => match self.sem.clone().acquire_many_owned(n).await {
                Ok(p) => Some(p),
                Err(_) => return false,
            },
        };
        let batch = self.take(permit);
        self.tx.send(batch).is_ok()
    }

    /// Sends one final event right away (errors and ends need no window).
    fn finish_with(mut self, event: Event, handle: Option<&Handle>) {
        let sent = match handle {
            Some(h) => self.flush_blocking(h),
            None => true,
        };
        if sent {
            let _ = self.tx.send(Batch {
                events: vec![event],
                permit: None,
            });
        }
    }
}

/// One owner's share of the batch.
struct SourceState {
    /// The owner; `None` for this node's own disks.
    target: Option<Snode>,
    name: String,
    indices: Vec<u32>,
    rx: Option<mpsc::UnboundedReceiver<Batch>>,
    /// Events of the batch being consumed, and its window permit.
    pending: std::collections::VecDeque<Event>,
    held: Option<OwnedSemaphorePermit>,
    broken: Option<String>,
}

/// How an entry will appear in the output.
#[derive(Debug, Clone)]
enum Plan {
    Deliver {
        size: u64,
        mtime: u64,
        archived: bool,
    },
    Placeholder {
        msg: String,
    },
}

impl Engine {
    /// Starts a GetBatch as DT. Returns once every item's stat is known: either the response can
    /// begin (`Started`), or the batch fails with a status and no archive bytes.
    pub async fn getbatch(
        self: &Arc<Self>,
        req: MossReq,
        entries: Vec<Entry>,
        format: Format,
    ) -> Result<Started, BatchError> {
        let config = self.view.config();
        let admission = self.admit(&config)?;
        let wid = format!("gbt-{}", random_token());
        let smap = self.view.smap();
        let me = self.view.node_id().to_string();
        let mut owner_of = Vec::with_capacity(entries.len());
        let mut local = Vec::new();
        let mut remote: BTreeMap<String, (Snode, Vec<u32>)> = BTreeMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let owner = moss_cluster::owner_of(&smap, &entry.bck.object_uname(&entry.objname))
                .ok_or_else(|| BatchError::unavailable("no targets in the cluster map"))?;
            if owner.daemon_id == me {
                local.push(i as u32);
            } else {
                remote
                    .entry(owner.daemon_id.clone())
                    .or_insert_with(|| (owner.clone(), Vec::new()))
                    .1
                    .push(i as u32);
            }
            owner_of.push(owner.daemon_id.clone());
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
        for (_, (target, indices)) in remote {
            let (tx, rx) = mpsc::unbounded_channel();
            let send = SendReq {
                wid: wid.clone(),
                entries: indices
                    .iter()
                    .map(|&i| SendEntry {
                        index: i,
                        entry: entries[i as usize].clone(),
                    })
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
            .map(|id| {
                sources
                    .iter()
                    .position(|s| s.target.as_ref().map_or(*id == me, |t| t.daemon_id == *id))
                    .unwrap_or(0)
            })
            .collect();
        let (verdict_tx, verdict_rx) = oneshot::channel();
        let (body_tx, body_rx) = mpsc::channel(BODY_AHEAD);
        let assembly = Assembly {
            engine: self.clone(),
            handle: Handle::current(),
            max_wait: config.get_batch.max_wait.0,
            max_soft: config.get_batch.max_soft_errs.max(0) as u64,
            coer: req.coer,
            onob: req.onob,
            streaming: req.strm,
            format,
            wid,
            entries,
            sources,
            source_of,
            soft: 0,
            unreachable: HashSet::new(),
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

    /// Reads this node's own entries on a blocking thread: stats first, then payloads, within the
    /// source's byte window.
    fn local_source(
        &self,
        indices: Vec<u32>,
        entries: Vec<Entry>,
        tx: mpsc::UnboundedSender<Batch>,
        sem: Arc<Semaphore>,
        handle: Handle,
        warmup_workers: i64,
    ) {
        let specs: Vec<ItemSpec> = entries.iter().map(spec_of).collect();
        let mut prepared = self.reader.prepare(&specs);
        self.find_misses(&specs, &mut prepared, &handle);
        let mut out = Batcher::new(tx, sem);
        for (&index, p) in indices.iter().zip(&prepared) {
            let stat = match p {
                Ok(p) => Stat::Ok {
                    size: p.size,
                    mtime: p.mtime,
                },
                Err(e) => Stat::Err(e.clone()),
            };
            out.push(Event::Stat { index, stat });
        }
        if !out.flush_blocking(&handle) {
            return;
        }
        let mut warm = crate::warmup::Warmup::new(warmup_workers, &self.stats);
        for (k, ((&index, spec), p)) in indices.iter().zip(&specs).zip(&prepared).enumerate() {
            let Ok(p) = p else { continue };
            warm.ahead(&self.reader, &specs, &prepared, k);
            let mut item = match self.open_item(spec, p, &handle) {
                Ok(item) => item,
                Err(e) => {
                    out.push(Event::Fail {
                        index,
                        msg: e.to_string(),
                    });
                    continue;
                }
            };
            let mut first = true;
            loop {
                let chunk = match item.read_chunk(CHUNK) {
                    Ok(Some(chunk)) => chunk,
                    Ok(None) if first => Bytes::new(),
                    Ok(None) => break,
                    Err(e) if first => {
                        out.push(Event::Fail {
                            index,
                            msg: e.to_string(),
                        });
                        break;
                    }
                    Err(e) => return out.finish_with(Event::Broken(e.to_string()), Some(&handle)),
                };
                first = false;
                let last = item.remaining() == 0;
                out.push(Event::Data { index, chunk, last });
                if out.is_full() && !out.flush_blocking(&handle) {
                    return;
                }
                if last {
                    break;
                }
            }
        }
        out.finish_with(Event::End, Some(&handle));
    }
}

fn spec_of(entry: &Entry) -> ItemSpec<'_> {
    ItemSpec {
        bck: &entry.bck,
        objname: &entry.objname,
        archpath: &entry.archpath,
        archmime: "",
        range: entry.range,
    }
}

fn random_token() -> String {
    (0..10)
        .map(|_| format!("{:x}", rand::random::<u8>() % 16))
        .collect()
}

/// Pulls a sender's framed stream into events; stops (closing the connection) when the DT is gone.
async fn remote_source(
    view: Arc<dyn crate::ClusterView>,
    target: Snode,
    req: SendReq,
    tx: mpsc::UnboundedSender<Batch>,
    sem: Arc<Semaphore>,
) {
    let url = format!("{}/v1/internal/moss/send", target.url());
    let response = match view.intra(view.client().post(url)).json(&req).send().await {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let why = format!("{} refused the batch ({status}): {text}", target.display());
            return Batcher::new(tx, sem).finish_with(Event::Broken(why), None);
        }
        Err(e) => {
            let why = format!("{} unreachable: {e}", target.display());
            return Batcher::new(tx, sem).finish_with(Event::Broken(why), None);
        }
    };
    let mut out = Batcher::new(tx, sem);
    let mut stream = response.bytes_stream();
    let mut decoder = frame::Decoder::new();
    let mut decoded = Vec::new();
    loop {
        let chunk = match stream.next().await {
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => {
                return out.finish_with(
                    Event::Broken(format!("stream from {} broke: {e}", target.display())),
                    None,
                );
            }
            None => {
                return out.finish_with(
                    Event::Broken(format!("stream from {} ended early", target.display())),
                    None,
                );
            }
        };
        if let Err(e) = decoder.feed(chunk, &mut decoded) {
            return out.finish_with(
                Event::Broken(format!("bad stream from {}: {e}", target.display())),
                None,
            );
        }
        let mut ended = false;
        for d in decoded.drain(..) {
            out.push(match d {
                Decoded::Stat { index, stat } => Event::Stat { index, stat },
                Decoded::Fail { index, msg } => Event::Fail { index, msg },
                Decoded::Data { index, chunk, last } => Event::Data { index, chunk, last },
                Decoded::End => {
                    ended = true;
                    Event::End
                }
            });
        }
        // One network read becomes one batch: the wake-up cost is paid per read, not per item.
        if !out.flush().await || ended {
            return;
        }
    }
}

/// Why assembly stopped after the response began.
enum Stop {
    /// The client went away.
    ClientGone,
    /// A failure that must abort the response.
    Abort(String),
}

impl From<io::Error> for Stop {
    fn from(e: io::Error) -> Stop {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Stop::ClientGone
        } else {
            Stop::Abort(format!("archive writer failed: {e}"))
        }
    }
}

struct Assembly {
    engine: Arc<Engine>,
    handle: Handle,
    max_wait: Duration,
    max_soft: u64,
    coer: bool,
    onob: bool,
    streaming: bool,
    format: Format,
    wid: String,
    entries: Vec<Entry>,
    sources: Vec<SourceState>,
    source_of: Vec<usize>,
    soft: u64,
    /// Owners a get-from-neighbor could not reach during this request.
    unreachable: HashSet<String>,
    _admission: Admission,
}

impl Assembly {
    fn run(
        mut self,
        verdict: oneshot::Sender<Result<String, BatchError>>,
        body: mpsc::Sender<BodyItem>,
    ) {
        let engine = self.engine.clone();
        let _active = GaugeGuard::new(&engine.stats.active_work_items);
        let plans = match self.collect_stats() {
            Ok(plans) => plans,
            Err(e) => {
                stats::add(&engine.stats.err_count, 1);
                stats::add(&engine.stats.reqs, 1);
                let _ = verdict.send(Err(e));
                return;
            }
        };
        let multipart = (!self.streaming).then(Multipart::new);
        let content_type = match &multipart {
            Some(m) => m.content_type(),
            None => self.format.content_type().to_string(),
        };
        if verdict.send(Ok(content_type)).is_err() {
            stats::add(&engine.stats.reqs, 1);
            return;
        }
        let abort_tx = body.clone();
        let result = self.write_all(&plans, multipart.as_ref(), body);
        stats::add(&engine.stats.reqs, 1);
        match result {
            Ok(()) => {}
            Err(Stop::ClientGone) => {
                stats::add(&engine.stats.err_count, 1);
                tracing::info!(wid = %self.wid, "client went away; get-batch stopped");
            }
            Err(Stop::Abort(why)) => {
                stats::add(&engine.stats.err_count, 1);
                tracing::warn!(wid = %self.wid, "aborting get-batch response: {why}");
                let _ = abort_tx.blocking_send(Err(io::Error::other(why)));
            }
        }
    }

    /// Waits for every item's stat (each source gets `max_wait`) and decides each entry's fate.
    fn collect_stats(&mut self) -> Result<Vec<Plan>, BatchError> {
        let mut stats: Vec<Option<Stat>> = vec![None; self.entries.len()];
        let deadline = Instant::now() + self.max_wait;
        for s in 0..self.sources.len() {
            let mut missing = self.sources[s].indices.len();
            while missing > 0 {
                match self.recv(s, deadline) {
                    Ok(Event::Stat { index, stat }) => {
                        if let Some(slot) =
                            stats.get_mut(index as usize).filter(|slot| slot.is_none())
                        {
                            *slot = Some(stat);
                            missing -= 1;
                        }
                    }
                    Ok(_) => {
                        self.mark_broken(s, "protocol error: data before all stats".to_string());
                        break;
                    }
                    Err(why) => {
                        self.mark_broken(s, why);
                        break;
                    }
                }
            }
            if let Some(why) = &self.sources[s].broken {
                for &i in &self.sources[s].indices {
                    stats[i as usize].get_or_insert_with(|| Stat::Err(ItemError::Io(why.clone())));
                }
            }
        }
        let mut plans = Vec::with_capacity(stats.len());
        for (i, stat) in stats.into_iter().enumerate() {
            let stat = stat.unwrap_or_else(|| Stat::Err(ItemError::Io("no stat received".into())));
            plans.push(self.plan(i, stat)?);
        }
        if self.soft > self.max_soft {
            return Err(BatchError::new(
                404,
                format!(
                    "get-batch {}: {} items missing or failed, more than get_batch.max_soft_errs={} (first: {})",
                    self.wid,
                    self.soft,
                    self.max_soft,
                    plans
                        .iter()
                        .find_map(|p| match p {
                            Plan::Placeholder { msg } => Some(msg.as_str()),
                            Plan::Deliver { .. } => None,
                        })
                        .unwrap_or("")
                ),
            ));
        }
        Ok(plans)
    }

    fn plan(&mut self, i: usize, stat: Stat) -> Result<Plan, BatchError> {
        let err = match stat {
            Stat::Ok { size, mtime } => {
                let archived = !self.entries[i].archpath.is_empty();
                let mtime = if archived || self.entries[i].range.is_some() {
                    0
                } else {
                    mtime
                };
                return Ok(Plan::Deliver {
                    size,
                    mtime,
                    archived,
                });
            }
            Stat::Err(e) => e,
        };
        let owner = &self.sources[self.source_of[i]].name;
        let (status, msg) = match &err {
            ItemError::Range(m) => {
                return Err(BatchError::new(
                    416,
                    format!("{}: {m}", self.entries[i].describe()),
                ));
            }
            ItemError::NotFound(m) => (404, m.clone()),
            ItemError::Corrupt(m) => (410, m.clone()),
            ItemError::Invalid(m) => (400, m.clone()),
            ItemError::Io(m) => (503, m.clone()),
        };
        if !self.coer {
            let mut e = BatchError::new(status, msg);
            if status == 503 {
                e.retry_after = Some(1);
            }
            return Err(e);
        }
        self.soft += 1;
        stats::add(&self.engine.stats.err_soft_count, 1);
        Ok(Plan::Placeholder {
            msg: format!("{owner}: {msg}"),
        })
    }

    fn mark_broken(&mut self, s: usize, why: String) {
        let source = &mut self.sources[s];
        tracing::warn!(wid = %self.wid, source = %source.name, "get-batch source failed: {why}");
        source.broken = Some(why);
        source.rx = None;
    }

    /// True if source `s` has an event ready without waiting.
    fn has_ready(&mut self, s: usize) -> bool {
        let source = &mut self.sources[s];
        if !source.pending.is_empty() || source.broken.is_some() {
            return true;
        }
        let Some(rx) = source.rx.as_mut() else {
            return true;
        };
        match rx.try_recv() {
            Ok(batch) => {
                source.held = batch.permit;
                source.pending.extend(batch.events);
                true
            }
            Err(mpsc::error::TryRecvError::Empty) => false,
            Err(mpsc::error::TryRecvError::Disconnected) => true,
        }
    }

    /// Next event of source `s`, waiting at most until `deadline`.
    fn recv(&mut self, s: usize, deadline: Instant) -> Result<Event, String> {
        loop {
            let source = &mut self.sources[s];
            if let Some(why) = &source.broken {
                return Err(why.clone());
            }
            if let Some(event) = source.pending.pop_front() {
                return match event {
                    Event::Broken(why) => Err(why),
                    event => Ok(event),
                };
            }
            // The previous batch is fully consumed: its window space goes back to the source.
            source.held = None;
            let Some(rx) = source.rx.as_mut() else {
                return Err("source closed".into());
            };
            let batch = match rx.try_recv() {
                Ok(batch) => Some(batch),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let remote = source.target.is_some();
                    let waiting = Instant::now();
                    let wait = deadline.saturating_duration_since(waiting);
                    let received = self.handle.block_on(tokio::time::timeout(wait, rx.recv()));
                    if remote {
                        stats::add(
                            &self.engine.stats.rxwait_ns,
                            waiting.elapsed().as_nanos() as u64,
                        );
                    }
                    match received {
                        Err(_) => {
                            return Err(format!(
                                "timed out after {:?} waiting for {}",
                                self.max_wait, source.name
                            ));
                        }
                        Ok(batch) => batch,
                    }
                }
            };
            let Some(batch) = batch else {
                return Err(format!("{} closed its stream", source.name));
            };
            source.held = batch.permit;
            source.pending.extend(batch.events);
        }
    }

    fn write_all(
        &mut self,
        plans: &[Plan],
        multipart: Option<&Multipart>,
        body: mpsc::Sender<BodyItem>,
    ) -> Result<(), Stop> {
        let mut out = Coalescer::new(body.clone());
        if let Some(m) = multipart {
            let resp = MossResp {
                uuid: self.wid.clone(),
                out: self.moss_outs(plans),
            };
            let json = serde_json::to_vec(&resp).map_err(|e| Stop::Abort(e.to_string()))?;
            out.put(&m.preamble(&json, &format!("get-batch[{}]", self.wid)))?;
        }
        let mut archive = new_output(self.format, out);
        for (i, plan) in plans.iter().enumerate() {
            match plan {
                Plan::Placeholder { .. } => self.placeholder(&mut *archive, i)?,
                Plan::Deliver {
                    size,
                    mtime,
                    archived,
                } => self.deliver(&mut *archive, i, *size, *mtime, *archived)?,
            }
        }
        archive.finish()?;
        if let Some(m) = multipart {
            body.blocking_send(Ok(Bytes::from(m.epilogue())))
                .map_err(|_| Stop::ClientGone)?;
        }
        Ok(())
    }

    fn moss_outs(&self, plans: &[Plan]) -> Vec<MossOut> {
        plans
            .iter()
            .zip(&self.entries)
            .map(|(plan, entry)| {
                let mut out = entry.moss_out();
                match plan {
                    Plan::Deliver { size, .. } => out.size = *size,
                    Plan::Placeholder { msg } => out.err_msg = Some(msg.clone()),
                }
                out
            })
            .collect()
    }

    fn placeholder(&self, archive: &mut dyn Output, i: usize) -> Result<(), Stop> {
        let name = format!(
            "{MISSING_PREFIX}{}",
            self.entries[i].name_in_archive(self.onob)
        );
        archive.begin(&name, 0, 0)?;
        archive.end()?;
        Ok(())
    }

    /// Writes entry `i` from its source, falling back to get-from-neighbor if the source fails.
    /// Items of at most one chunk are held until complete, so a source failing in the middle of
    /// one still leaves nothing written for it (and a placeholder remains possible).
    fn deliver(
        &mut self,
        archive: &mut dyn Output,
        i: usize,
        size: u64,
        mtime: u64,
        archived: bool,
    ) -> Result<(), Stop> {
        let s = self.source_of[i];
        let name = self.entries[i].name_in_archive(self.onob);
        let hold = size <= CHUNK as u64;
        let mut held: Vec<Bytes> = Vec::new();
        let mut received: u64 = 0;
        let mut written: u64 = 0;
        let mut started = false;
        let max_wait = self.max_wait;
        loop {
            if !self.has_ready(s) {
                // About to wait: whatever is buffered goes to the client now.
                archive.flush()?;
            }
            let event = self.recv(s, Instant::now() + max_wait);
            match event {
                Ok(Event::Data {
                    index, chunk, last, ..
                }) if index as usize == i => {
                    received += chunk.len() as u64;
                    if received > size {
                        return Err(Stop::Abort(format!(
                            "{} sent more than {size} bytes for {name}",
                            self.sources[s].name
                        )));
                    }
                    if hold && !last {
                        held.push(chunk);
                        continue;
                    }
                    if !started {
                        archive.begin(&name, size, mtime)?;
                        started = true;
                    }
                    for piece in held.drain(..).chain(std::iter::once(chunk)) {
                        written += piece.len() as u64;
                        if !piece.is_empty() {
                            archive.data(piece)?;
                        }
                    }
                    if last {
                        break;
                    }
                }
                Ok(Event::Fail { index, msg }) if index as usize == i && !started => {
                    return self.late_failure(
                        archive,
                        i,
                        format!("{}: {msg}", self.sources[s].name),
                    );
                }
                Ok(_) => {
                    self.mark_broken(
                        s,
                        format!("protocol error: unexpected event while waiting for entry {i}"),
                    );
                    return self.recover(archive, i, &name, size, mtime, written, started);
                }
                Err(why) => {
                    if self.sources[s].broken.is_none() {
                        self.mark_broken(s, why);
                    }
                    return self.recover(archive, i, &name, size, mtime, written, started);
                }
            }
        }
        if written != size {
            return Err(Stop::Abort(format!(
                "{name}: expected {size} bytes, got {written}"
            )));
        }
        archive.end()?;
        self.count_delivered(size, archived);
        Ok(())
    }

    fn count_delivered(&self, size: u64, archived: bool) {
        if size == 0 {
            return;
        }
        let s = &self.engine.stats;
        if archived {
            stats::add(&s.file_count, 1);
            stats::add(&s.file_bytes, size);
        } else {
            stats::add(&s.obj_count, 1);
            stats::add(&s.obj_bytes, size);
        }
    }

    /// An item failed before any of its bytes were written.
    fn late_failure(
        &mut self,
        archive: &mut dyn Output,
        i: usize,
        msg: String,
    ) -> Result<(), Stop> {
        // Only a streamed response can still turn this into a placeholder: buffered mode already
        // promised the size in its metadata, and strict mode promised every item.
        if !(self.streaming && self.coer) {
            return Err(Stop::Abort(msg));
        }
        self.soft += 1;
        stats::add(&self.engine.stats.err_soft_count, 1);
        if self.soft > self.max_soft {
            return Err(Stop::Abort(format!(
                "{msg}; more than get_batch.max_soft_errs={} soft errors",
                self.max_soft
            )));
        }
        self.placeholder(archive, i)
    }

    /// The source of entry `i` failed after `written` bytes: fetch the rest from the owner directly.
    #[allow(clippy::too_many_arguments)]
    fn recover(
        &mut self,
        archive: &mut dyn Output,
        i: usize,
        name: &str,
        size: u64,
        mtime: u64,
        written: u64,
        started: bool,
    ) -> Result<(), Stop> {
        let why = self.sources[self.source_of[i]]
            .broken
            .clone()
            .unwrap_or_default();
        stats::add(&self.engine.stats.gfn_count, 1);
        let fetched = self.get_from_neighbor(i, written, size);
        let mut stream = match fetched {
            Ok(stream) => stream,
            Err(e) => {
                stats::add(&self.engine.stats.err_gfn_count, 1);
                let msg = format!("{why}; get-from-neighbor failed: {e}");
                if started {
                    return Err(Stop::Abort(msg));
                }
                return self.late_failure(archive, i, msg);
            }
        };
        if !started {
            archive.begin(name, size, mtime)?;
        }
        let mut total = written;
        let wait = self.max_wait * 2;
        loop {
            let next = self
                .handle
                .block_on(tokio::time::timeout(wait, stream.next()));
            match next {
                Ok(Some(Ok(chunk))) => {
                    total += chunk.len() as u64;
                    if total > size {
                        return Err(Stop::Abort(format!(
                            "get-from-neighbor returned more than {size} bytes for {name}"
                        )));
                    }
                    archive.data(chunk)?;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(Stop::Abort(format!(
                        "get-from-neighbor for {name} broke: {e}"
                    )));
                }
                Err(_) => {
                    return Err(Stop::Abort(format!(
                        "get-from-neighbor for {name} timed out"
                    )));
                }
            }
        }
        if total != size {
            return Err(Stop::Abort(format!(
                "get-from-neighbor for {name}: expected {size} bytes, got {total}"
            )));
        }
        archive.end()?;
        self.count_delivered(size, !self.entries[i].archpath.is_empty());
        Ok(())
    }

    /// Direct GET of bytes `[from, size)` of entry `i` from its owner.
    fn get_from_neighbor(
        &mut self,
        i: usize,
        from: u64,
        size: u64,
    ) -> Result<futures::stream::BoxStream<'static, reqwest::Result<Bytes>>, String> {
        let entry = &self.entries[i];
        let view = &self.engine.view;
        let owner_url = match &self.sources[self.source_of[i]].target {
            Some(t) => t.url().to_string(),
            None => view
                .smap()
                .tmap
                .get(view.node_id())
                .map(|t| t.url().to_string())
                .ok_or("this node is not in the map")?,
        };
        let mut url = format!(
            "{owner_url}/v1/objects/{}/{}?{}&pid={}",
            entry.bck.name,
            encode_path(&entry.objname),
            entry.bck.query(),
            view.node_id()
        );
        if !entry.archpath.is_empty() {
            url.push_str("&archpath=");
            url.push_str(&moss_types::names::encode_query_value(&entry.archpath));
        }
        let base = entry.range.map_or(0, |r| r.start);
        let mut request = view
            .intra(view.client().get(url))
            .timeout(self.max_wait * 2);
        if size > 0 && (entry.range.is_some() || from > 0) {
            request = request.header(
                "range",
                format!("bytes={}-{}", base + from, base + size - 1),
            );
        }
        if self.unreachable.contains(&owner_url) {
            return Err(format!(
                "{owner_url} was unreachable earlier in this request"
            ));
        }
        let response = match self.handle.block_on(request.send()) {
            Ok(r) => r,
            Err(e) => {
                self.unreachable.insert(owner_url);
                return Err(e.to_string());
            }
        };
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        if size == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        Ok(response.bytes_stream().boxed())
    }
}
