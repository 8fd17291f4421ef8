//! The assembly loop of a work item: the stat phase (the last point where the request can still
//! fail with a status), then the ordered write of every entry, with get-from-neighbor when a
//! source fails.
use std::collections::HashSet;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use moss_archive::Format;
use moss_types::moss::{Entry, MISSING_PREFIX, MossOut, MossResp};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::BatchError;
use moss_types::smap::Snode;

use super::source::{Batch, Event, SourceState};
use crate::coalesce::{BUF_SIZE, BodyItem, Coalescer};
use crate::frame::Stat;
use crate::item::{CHUNK, ItemError};
use crate::output::{Multipart, Output, new_output};
use crate::stats::{self, GaugeGuard};
use crate::{Admission, Engine};
use moss_jobs::WorkItem;

/// How often a wait for a remote source checks that its target is still in the cluster map.
const MEMBERSHIP_CHECK: Duration = Duration::from_secs(1);
/// Archive bytes per entry beyond its payload (TAR header and padding; PAX headers for long names).
const SPOOL_ENTRY_OVERHEAD: u64 = 2048;
/// Free space a spool must leave on its mountpath.
const SPOOL_RESERVE: u64 = 1 << 30;
/// How long a target whose stream stalled gets to answer a health probe.
const HEALTH_PROBE: Duration = Duration::from_secs(1);

/// Why waiting for a source's next batch ended without one.
struct Stall {
    why: String,
    /// The source's target was dropped from the cluster map meanwhile.
    left_map: bool,
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

pub(super) struct Assembly {
    pub(super) engine: Arc<Engine>,
    pub(super) handle: Handle,
    pub(super) max_wait: Duration,
    /// Bytes of one entry from a sender that are held back until the entry is complete while a
    /// placeholder is still possible (a source's window).
    pub(super) hold_limit: u64,
    pub(super) max_soft: u64,
    pub(super) coer: bool,
    pub(super) onob: bool,
    pub(super) streaming: bool,
    pub(super) format: Format,
    pub(super) wid: String,
    pub(super) entries: Vec<Entry>,
    pub(super) sources: Vec<SourceState>,
    pub(super) source_of: Vec<usize>,
    pub(super) soft: u64,
    /// Entries that became placeholders while the archive was written (index, error).
    pub(super) late: Vec<(usize, String)>,
    /// The archive part is being spooled (buffered `coer` with room on disk), so the metadata
    /// part can still report late placeholders.
    pub(super) spooling: bool,
    /// Owners a get-from-neighbor could not reach during this request.
    pub(super) unreachable: HashSet<String>,
    /// Entries (objects and archived files) and bytes delivered, for the job's counters.
    pub(super) delivered: (u64, u64),
    pub(super) counts_entries: bool,
    /// The request as a pending work item of its job (abort, counters).
    pub(super) work: WorkItem,
    pub(super) _admission: Admission,
}

impl Assembly {
    pub(super) fn run(
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
        if self.counts_entries {
            let (objs, bytes) = self.delivered;
            self.work.job().add_loc(objs, bytes);
        }
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
            if let Some(why) = self.sources[s].broken.clone() {
                let unstated: Vec<usize> = self.sources[s]
                    .indices
                    .iter()
                    .map(|&i| i as usize)
                    .filter(|&i| stats[i].is_none())
                    .collect();
                for (i, stat) in self.stat_around(s, &unstated) {
                    stats[i] = Some(stat);
                }
                for &i in &unstated {
                    stats[i].get_or_insert_with(|| Stat::Err(ItemError::Io(why.clone())));
                }
            }
        }
        if self.work.job().is_aborted() {
            return Err(super::aborted(self.work.job()));
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

    /// Stats of entries whose source failed before sending them, from the next targets in HRW
    /// order where the bucket keeps redundancy (each rebuilds the object it lacks). Their bytes
    /// then come by get-from-neighbor. Entries no target could stat are left out.
    fn stat_around(&mut self, s: usize, indices: &[usize]) -> Vec<(usize, Stat)> {
        /// Entries stated at once.
        const PARALLEL: usize = 16;
        let view = self.engine.view.clone();
        let smap = view.smap();
        let mut skip = self.unreachable.clone();
        if let Some(t) = &self.sources[s].target {
            skip.insert(t.url().to_string());
        }
        let calls: Vec<_> = indices
            .iter()
            .filter(|&&i| view.redundant(&self.entries[i].bck))
            .map(|&i| {
                let entry = self.entries[i].clone();
                let mut holders = ranked_urls(&smap, &entry);
                holders.retain(|url| !skip.contains(url));
                let (view, timeout) = (view.clone(), self.max_wait);
                async move {
                    for base in holders {
                        let mut request = direct_get(&*view, &base, &entry).timeout(timeout);
                        if let Some(r) = entry.range.filter(|r| r.length != Some(0)) {
                            let end = r.length.map(|n| (r.start + n - 1).to_string());
                            request = request.header(
                                "range",
                                format!("bytes={}-{}", r.start, end.unwrap_or_default()),
                            );
                        }
                        // Only the head is needed: dropping the response ends the transfer.
                        let Ok(response) = request.send().await else {
                            continue;
                        };
                        let status = response.status();
                        if status == reqwest::StatusCode::NOT_FOUND {
                            let msg = format!("{} does not exist", entry.describe());
                            return Some((i, Stat::Err(ItemError::NotFound(msg))));
                        }
                        let size = response.content_length().filter(|_| status.is_success());
                        let Some(size) = size else { continue };
                        let mtime = response
                            .headers()
                            .get(moss_types::headers::OBJ_MTIME)
                            .and_then(|v| v.to_str().ok()?.parse().ok())
                            .unwrap_or(0);
                        return Some((i, Stat::Ok { size, mtime }));
                    }
                    None
                }
            })
            .collect();
        if calls.is_empty() {
            return Vec::new();
        }
        let found: Vec<Option<(usize, Stat)>> = self
            .handle
            .block_on(futures::stream::iter(calls).buffered(PARALLEL).collect());
        let found: Vec<(usize, Stat)> = found.into_iter().flatten().collect();
        tracing::info!(wid = %self.wid, source = %self.sources[s].name, "{} of {} entries stated around a failed source", found.len(), indices.len());
        found
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
            let polled = rx.try_recv();
            let batch = match polled {
                Ok(batch) => Some(batch),
                Err(mpsc::error::TryRecvError::Disconnected) => None,
                Err(mpsc::error::TryRecvError::Empty) => {
                    let waiting = Instant::now();
                    let received = self.wait_for(s, deadline);
                    if self.sources[s].target.is_some() {
                        stats::add(
                            &self.engine.stats.rxwait_ns,
                            waiting.elapsed().as_nanos() as u64,
                        );
                    }
                    match received {
                        Err(Stall { why, left_map }) => {
                            // A sender that left the cluster, or stalled and does not answer a
                            // health probe either, is not asked again (by get-from-neighbor) in
                            // this request: its items fail without a second wait. One that is
                            // alive but slow still serves its items by direct GET.
                            if let Some(t) = self.sources[s].target.clone()
                                && (left_map || !self.answers_health_probe(&t))
                            {
                                self.unreachable.insert(t.url().to_string());
                            }
                            return Err(why);
                        }
                        Ok(batch) => batch,
                    }
                }
            };
            let source = &mut self.sources[s];
            let Some(batch) = batch else {
                return Err(format!("{} closed its stream", source.name));
            };
            source.held = batch.permit;
            source.pending.extend(batch.events);
        }
    }

    /// Waits for source `s`'s next batch until `deadline`, giving up early if the source's target
    /// leaves the cluster map (the proxy dropped it for missed keepalives).
    fn wait_for(&mut self, s: usize, deadline: Instant) -> Result<Option<Batch>, Stall> {
        let cancel = self.work.job().cancel_token().clone();
        let job_id = self.work.job().id.clone();
        let source = &mut self.sources[s];
        let Some(rx) = source.rx.as_mut() else {
            return Ok(None);
        };
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(Stall {
                    why: format!(
                        "timed out after {:?} waiting for {}",
                        self.max_wait, source.name
                    ),
                    left_map: false,
                });
            }
            let slice = deadline
                .saturating_duration_since(now)
                .min(MEMBERSHIP_CHECK);
            let waited = self.handle.block_on(async {
                tokio::select! {
                    got = tokio::time::timeout(slice, rx.recv()) => got.ok(),
                    () = cancel.cancelled() => None,
                }
            });
            if let Some(batch) = waited {
                return Ok(batch);
            }
            if cancel.is_cancelled() {
                return Err(Stall {
                    why: format!("job {job_id} aborted"),
                    left_map: false,
                });
            }
            if let Some(t) = &source.target
                && !self.engine.view.smap().tmap.contains_key(&t.daemon_id)
            {
                return Err(Stall {
                    why: format!("{} left the cluster map", source.name),
                    left_map: true,
                });
            }
        }
    }

    /// Whether a target whose stream stalled still answers `GET /v1/health` promptly.
    fn answers_health_probe(&self, target: &Snode) -> bool {
        let view = &self.engine.view;
        let url = format!("{}/v1/health", target.url());
        let probe = view.intra(view.client().get(url)).timeout(HEALTH_PROBE);
        matches!(self.handle.block_on(probe.send()), Ok(r) if r.status().is_success())
    }

    fn write_all(
        &mut self,
        plans: &[Plan],
        multipart: Option<&Multipart>,
        body: mpsc::Sender<BodyItem>,
    ) -> Result<(), Stop> {
        if let Some(m) = multipart.filter(|_| self.spools())
            && let Some(spool) = self.spool_file(plans)
        {
            self.spooling = true;
            return self.write_spooled(plans, m, spool, body);
        }
        let mut out = Coalescer::new(body.clone(), self.engine.pool.clone());
        if let Some(m) = multipart {
            out.put(&self.preamble(plans, m)?)?;
        }
        self.write_entries(plans, out)?;
        if let Some(m) = multipart {
            body.blocking_send(Ok(Bytes::from(m.epilogue())))
                .map_err(|_| Stop::ClientGone)?;
        }
        Ok(())
    }

    /// Buffered mode with `coer` writes the archive part to a scratch file first, so an item whose
    /// source fails while the archive is written still becomes a placeholder that the metadata
    /// part (sent first) reports. Memory stays bounded; the disk holds the archive meanwhile.
    fn spools(&self) -> bool {
        !self.streaming && self.coer
    }

    /// A scratch file for the archive part, if its mountpath has room for the planned archive
    /// plus a reserve; otherwise the archive streams (and a late failure aborts it).
    fn spool_file(&self, plans: &[Plan]) -> Option<std::fs::File> {
        let planned: u64 = plans
            .iter()
            .map(|p| match p {
                Plan::Deliver { size, .. } => size + SPOOL_ENTRY_OVERHEAD,
                Plan::Placeholder { .. } => SPOOL_ENTRY_OVERHEAD,
            })
            .sum();
        let spool = match self.engine.reader.store.scratch_file() {
            Ok(spool) => spool,
            Err(e) => {
                tracing::warn!(wid = %self.wid, "cannot create a spool file ({e}); streaming");
                return None;
            }
        };
        let free = rustix::fs::fstatvfs(&spool)
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
            .unwrap_or(0);
        if free < planned.saturating_add(SPOOL_RESERVE) {
            tracing::warn!(
                wid = %self.wid,
                "{} MiB free on the spool mountpath for a {} MiB archive; streaming it unspooled",
                free >> 20,
                planned >> 20
            );
            return None;
        }
        Some(spool)
    }

    fn write_spooled(
        &mut self,
        plans: &[Plan],
        m: &Multipart,
        spool: std::fs::File,
        body: mpsc::Sender<BodyItem>,
    ) -> Result<(), Stop> {
        use std::os::unix::fs::FileExt;
        let pool = self.engine.pool.clone();
        let reader = spool.try_clone()?;
        self.write_entries(
            plans,
            Coalescer::spooling(spool, body.clone(), pool.clone()),
        )?;
        let mut out = Coalescer::new(body, pool);
        out.put(&self.preamble(plans, m)?)?;
        let mut offset = 0;
        loop {
            out.make_room(BUF_SIZE)?;
            let n = reader.read_at(out.tail(BUF_SIZE), offset)?;
            if n == 0 {
                break;
            }
            out.commit(n);
            offset += n as u64;
        }
        out.put(&m.epilogue())?;
        Ok(out.flush()?)
    }

    /// The metadata part and the archive part's headers.
    fn preamble(&self, plans: &[Plan], m: &Multipart) -> Result<Vec<u8>, Stop> {
        let resp = MossResp {
            uuid: self.wid.clone(),
            out: self.moss_outs(plans),
        };
        let json = serde_json::to_vec(&resp).map_err(|e| Stop::Abort(e.to_string()))?;
        Ok(m.preamble(&json, &format!("get-batch[{}]", self.wid)))
    }

    /// The archive itself, entry by entry in request order.
    fn write_entries(&mut self, plans: &[Plan], out: Coalescer) -> Result<(), Stop> {
        let mut archive = new_output(self.format, out);
        for (i, plan) in plans.iter().enumerate() {
            self.check_aborted()?;
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
        Ok(())
    }

    /// Stops the response when the job was aborted (`ais job stop`): the client sees a broken
    /// transfer, never a short archive.
    fn check_aborted(&self) -> Result<(), Stop> {
        let job = self.work.job();
        if job.is_aborted() {
            return Err(Stop::Abort(format!(
                "{} job {} aborted: {}",
                job.kind.kind,
                job.id,
                job.snap().abort_err
            )));
        }
        Ok(())
    }

    fn moss_outs(&self, plans: &[Plan]) -> Vec<MossOut> {
        let mut outs: Vec<MossOut> = plans
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
            .collect();
        for (i, msg) in &self.late {
            outs[*i].size = 0;
            outs[*i].err_msg = Some(msg.clone());
        }
        outs
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
    /// Items of at most one chunk — with `coer`, from a sender, up to the source's window — are
    /// held until complete, so a source failing in the middle of one still leaves nothing written
    /// for it (and a placeholder remains possible). Only a bigger entry may still abort.
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
        // Held entries cost memory beyond the window (one entry at a time per request); it buys
        // a placeholder instead of an aborted response when a sender dies mid-entry, so only
        // where a placeholder is possible and the source can die.
        let may_placehold = self.coer && (self.streaming || self.spooling);
        let limit = if may_placehold && self.sources[s].target.is_some() {
            self.hold_limit.max(CHUNK as u64)
        } else {
            CHUNK as u64
        };
        let hold = size <= limit;
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
        self.count_delivered(i, size, archived);
        Ok(())
    }

    fn count_delivered(&mut self, i: usize, size: u64, archived: bool) {
        self.delivered.0 += 1;
        self.delivered.1 += size;
        if self.sources[self.source_of[i]].target.is_some() {
            self.work.job().add_in(1, size);
        }
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
        // Strict mode promised every item; buffered mode can still report a placeholder only when
        // its archive part is spooled (the metadata part then comes after the archive is done).
        if !self.coer || !(self.streaming || self.spooling) {
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
        self.late.push((i, msg));
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
        let wait = self.max_wait;
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
        self.count_delivered(i, size, !self.entries[i].archpath.is_empty());
        Ok(())
    }

    /// Direct GET of bytes `[from, size)` of entry `i` from its owner; in a bucket with
    /// redundancy, then from the next targets in HRW order (each rebuilds the object from its
    /// pieces), so a dead owner costs neither a placeholder nor the response.
    fn get_from_neighbor(
        &mut self,
        i: usize,
        from: u64,
        size: u64,
    ) -> Result<futures::stream::BoxStream<'static, reqwest::Result<Bytes>>, String> {
        let view = self.engine.view.clone();
        let owner_url = match &self.sources[self.source_of[i]].target {
            Some(t) => t.url().to_string(),
            None => view
                .smap()
                .tmap
                .get(view.node_id())
                .map(|t| t.url().to_string())
                .ok_or("this node is not in the map")?,
        };
        let mut holders = vec![owner_url.clone()];
        let entry = &self.entries[i];
        if view.redundant(&entry.bck) {
            let alternates = ranked_urls(&view.smap(), entry);
            holders.extend(alternates.into_iter().filter(|url| *url != owner_url));
        }
        let mut failed = Vec::new();
        for url in holders {
            if self.unreachable.contains(&url) {
                failed.push(format!("{url} was unreachable earlier in this request"));
                continue;
            }
            match self.get_from(&url, i, from, size) {
                Ok(stream) => {
                    if !failed.is_empty() {
                        tracing::info!(wid = %self.wid, "{}: read around a failure from {url}", self.entries[i].describe());
                    }
                    return Ok(stream);
                }
                Err(e) => failed.push(e),
            }
        }
        Err(failed.join("; "))
    }

    /// Direct GET of bytes `[from, size)` of entry `i` from the target at `base_url`.
    fn get_from(
        &mut self,
        base_url: &str,
        i: usize,
        from: u64,
        size: u64,
    ) -> Result<futures::stream::BoxStream<'static, reqwest::Result<Bytes>>, String> {
        let entry = &self.entries[i];
        let base = entry.range.map_or(0, |r| r.start);
        // The rest of a whole object is read as the whole object, so that the GET checks its
        // checksum over every byte — also over the part the failed source already sent, which
        // may be why it failed (damaged bytes on its disk): a range GET is not checked.
        let whole = entry.range.is_none() && entry.archpath.is_empty();
        let mut request = direct_get(&*self.engine.view, base_url, entry).timeout(self.max_wait);
        if size > 0 && (entry.range.is_some() || (from > 0 && !whole)) {
            request = request.header(
                "range",
                format!("bytes={}-{}", base + from, base + size - 1),
            );
        }
        let response = match self.handle.block_on(request.send()) {
            Ok(r) => r,
            Err(e) => {
                self.unreachable.insert(base_url.to_string());
                return Err(format!("{base_url}: {e}"));
            }
        };
        if !response.status().is_success() {
            return Err(format!("{base_url}: status {}", response.status()));
        }
        if size == 0 {
            return Ok(futures::stream::empty().boxed());
        }
        if whole && from > 0 {
            return Ok(skip_prefix(response.bytes_stream().boxed(), from));
        }
        Ok(response.bytes_stream().boxed())
    }
}

/// The stream without its first `n` bytes.
fn skip_prefix(
    stream: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    n: u64,
) -> futures::stream::BoxStream<'static, reqwest::Result<Bytes>> {
    let mut left = n;
    stream
        .filter_map(move |chunk| {
            let kept = match chunk {
                Ok(chunk) if left >= chunk.len() as u64 => {
                    left -= chunk.len() as u64;
                    None
                }
                Ok(mut chunk) => {
                    let rest = chunk.split_off(left as usize);
                    left = 0;
                    Some(Ok(rest))
                }
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(kept)
        })
        .boxed()
}

/// Targets' URLs in HRW order for an entry's object (its owner first).
fn ranked_urls(smap: &moss_types::smap::Smap, entry: &Entry) -> Vec<String> {
    moss_cluster::ranked_targets(smap, &entry.bck, &entry.objname)
        .into_iter()
        .map(|t| t.url().to_string())
        .collect()
}

/// A direct GET of an entry from the target at `base_url`, as this node (`pid`: served where it
/// is, never redirected).
fn direct_get(
    view: &dyn crate::ClusterView,
    base_url: &str,
    entry: &Entry,
) -> reqwest::RequestBuilder {
    let mut url = crate::neighbor::object_url(
        base_url,
        "objects",
        &entry.bck,
        &entry.objname,
        &entry.archpath,
    );
    url.push_str("&pid=");
    url.push_str(view.node_id());
    view.intra(view.client().get(url))
}
