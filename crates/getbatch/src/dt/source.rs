//! Sources of a batch on the DT: this node's own disks (a blocking reader) and the sender streams
//! of other targets. Each delivers its entries' stats, then their payloads, in ascending index
//! order, in batches bounded by a byte window.
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use moss_types::moss::{Entry, SendReq};
use moss_types::smap::Snode;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::Engine;
use crate::frame::{self, Decoded, Stat};
use crate::item::{CHUNK, ItemSpec};
use crate::pool::{Block, BufPool};

/// What a source delivers, in its own (ascending) index order.
pub(super) enum Event {
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
pub(super) struct Batch {
    pub(super) events: Vec<Event>,
    pub(super) permit: Option<OwnedSemaphorePermit>,
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
pub(super) struct SourceState {
    /// The owner; `None` for this node's own disks.
    pub(super) target: Option<Snode>,
    pub(super) name: String,
    pub(super) indices: Vec<u32>,
    pub(super) rx: Option<mpsc::UnboundedReceiver<Batch>>,
    /// Events of the batch being consumed, and its window permit.
    pub(super) pending: std::collections::VecDeque<Event>,
    pub(super) held: Option<OwnedSemaphorePermit>,
    pub(super) broken: Option<String>,
}

impl Engine {
    /// Reads this node's own entries on a blocking thread: stats first, then payloads, within the
    /// source's byte window.
    pub(super) fn local_source(
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
        let mut run = Run {
            block: self.pool.take(),
            placed: Vec::new(),
        };
        for k in 0..prepared.len() {
            let (index, spec) = (indices[k], &specs[k]);
            let Ok(p) = &prepared[k] else { continue };
            warm.ahead(&self.reader, &specs, &prepared, k);
            let opened = self.open_item(spec, p, &handle);
            release_handle(&mut prepared[k]);
            let mut item = match opened {
                Ok(item) => item,
                Err(e) => {
                    out.push(Event::Fail {
                        index,
                        msg: e.to_string(),
                    });
                    continue;
                }
            };
            if item.size <= SLICED_ITEM {
                // Small items are read into a shared pooled block and handed out as slices of it.
                let size = item.size as usize;
                if run.block.remaining() < size || run.placed.len() >= RUN_ITEMS {
                    run.seal(&mut out, &self.pool);
                }
                let buf = run.block.tail(size);
                let read = match item.read_exact_into(buf) {
                    Err(e) => self.reader.reread_repaired(spec, e, buf),
                    read => read,
                };
                match read {
                    Ok(()) => {
                        run.placed.push((index, run.block.len(), size));
                        run.block.commit(size);
                    }
                    Err(e) => {
                        run.seal(&mut out, &self.pool);
                        out.push(Event::Fail {
                            index,
                            msg: e.to_string(),
                        });
                    }
                }
                if out.is_full() && !out.flush_blocking(&handle) {
                    return;
                }
                continue;
            }
            run.seal(&mut out, &self.pool);
            let mut first = true;
            loop {
                let chunk = match item.read_chunk_pooled(CHUNK, &self.pool) {
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
        run.seal(&mut out, &self.pool);
        out.finish_with(Event::End, Some(&handle));
    }
}

/// Items up to this size are read into shared blocks.
const SLICED_ITEM: u64 = crate::item::WHOLE_READ;
/// Small items per block before it is handed over (bounds the wait for the first bytes).
const RUN_ITEMS: usize = 64;

/// Small items read back to back into one block: (request index, offset, length) of each.
struct Run {
    block: Block,
    placed: Vec<(u32, usize, usize)>,
}

impl Run {
    /// Hands the items read so far to the batcher as slices of one frozen block.
    fn seal(&mut self, out: &mut Batcher, pool: &Arc<BufPool>) {
        if self.placed.is_empty() {
            return;
        }
        let frozen = std::mem::replace(&mut self.block, pool.take()).freeze();
        for (index, start, len) in self.placed.drain(..) {
            out.push(Event::Data {
                index,
                chunk: frozen.slice(start..start + len),
                last: true,
            });
        }
    }
}

/// Drops the stat phase's handle and held bytes once the item holds its own (the descriptor and
/// the memory go back to their budgets when the item is done).
pub(crate) fn release_handle(prepared: &mut Result<crate::item::Prepared, crate::item::ItemError>) {
    if let Ok(p) = prepared {
        p.opened = None;
        p.memory = None;
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

/// Pulls a sender's framed stream into events; stops (closing the connection) when the DT is gone.
pub(super) async fn remote_source(
    view: Arc<dyn crate::ClusterView>,
    target: Snode,
    req: SendReq,
    tx: mpsc::UnboundedSender<Batch>,
    sem: Arc<Semaphore>,
) {
    let url = format!("{}/v1/internal/moss/send", target.url());
    let sent = view.intra(view.client().post(url)).json(&req).send();
    let sent = tokio::select! {
        sent = sent => sent,
        () = tx.closed() => return,
    };
    let response = match sent {
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
        // Stop as soon as the assembly is gone, even if the sender went silent (a stalled sender
        // would otherwise keep this task and its connection until TCP gives up).
        let next = tokio::select! {
            next = stream.next() => next,
            () = out.tx.closed() => return,
        };
        let chunk = match next {
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
