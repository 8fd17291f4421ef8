//! The sender side: a target streams its share of a batch to the DT as framed items (stats first,
//! then payloads in request order), reading ahead on a blocking thread.
use std::sync::Arc;

use bytes::BytesMut;
use futures::Stream;
use moss_types::moss::SendReq;
use tokio::sync::mpsc;

use crate::Engine;
use crate::coalesce::{BodyItem, Coalescer};
use crate::frame::{self, Stat};
use crate::item::{CHUNK, ItemSpec};
use crate::stats::GaugeGuard;
use moss_jobs::{Job, JobDesc};
use moss_types::jobs::GET_BATCH;

/// Items up to this size are read directly into the outgoing buffer.
const INLINE_ITEM: u64 = crate::item::WHOLE_READ;

/// Frames buffered ahead of the network per stream (× up to 256 KiB each).
const SEND_AHEAD: usize = 8;

impl Engine {
    /// The response body of `POST /v1/internal/moss/send`.
    pub fn send_stream(self: &Arc<Self>, req: SendReq) -> impl Stream<Item = BodyItem> + use<> {
        let (tx, mut rx) = mpsc::channel::<BodyItem>(SEND_AHEAD);
        let engine = self.clone();
        let handle = tokio::runtime::Handle::current();
        let out = Coalescer::new(tx, engine.pool.clone());
        tokio::task::spawn_blocking(move || engine.produce(req, out, &handle));
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    fn produce(&self, req: SendReq, out: Coalescer, handle: &tokio::runtime::Handle) {
        let mut out = Frames {
            out,
            scratch: BytesMut::new(),
        };
        let item = self.renew_job(&req).work_item();
        if let Err(e) = self.stream_items(&req, &mut out, handle, item.job()) {
            tracing::debug!(wid = %req.wid, "send stream stopped: {e}");
        }
    }

    /// The DT's job on this node (created under the DT's id on first use).
    fn renew_job(&self, req: &SendReq) -> Arc<Job> {
        let kind = if req.xkind.is_empty() {
            GET_BATCH
        } else {
            req.xkind.as_str()
        };
        let kind = match moss_types::jobs::kind_info(kind) {
            Some(info) => info.kind,
            None => GET_BATCH,
        };
        let id = if req.xid.is_empty() {
            req.wid.clone()
        } else {
            req.xid.clone()
        };
        // Only GetBatch reads idle with a lag (a burst with gaps is one running job); the archive
        // job's gathering is idle as soon as its stream is done.
        let lag = if kind == GET_BATCH {
            crate::GETBATCH_IDLE_LAG
        } else {
            std::time::Duration::ZERO
        };
        self.jobs.renew(
            |job| job.id == id,
            || {
                let desc = JobDesc::new(id.clone(), kind).idle_lag(lag);
                if kind == GET_BATCH {
                    desc.ctl(self.job_ctl())
                } else {
                    desc
                }
            },
        )
    }

    /// Writes the stat and item frames; `Err` when the DT is gone (or the stream was aborted).
    fn stream_items(
        &self,
        req: &SendReq,
        out: &mut Frames,
        handle: &tokio::runtime::Handle,
        job: &Job,
    ) -> std::io::Result<()> {
        let aborted = || std::io::Error::other(format!("{} job {} aborted", job.kind.kind, job.id));
        if job.is_aborted() {
            return Err(aborted());
        }
        let _active = GaugeGuard::new(&self.stats.active_send_streams);
        let specs: Vec<ItemSpec> = req
            .entries
            .iter()
            .map(|e| ItemSpec {
                bck: &e.bck,
                objname: &e.objname,
                archpath: &e.archpath,
                archmime: "",
                range: e.range,
            })
            .collect();
        let mut prepared = self.reader.prepare(&specs);
        self.find_misses(&specs, &mut prepared, handle);
        for (e, p) in req.entries.iter().zip(&prepared) {
            let stat = match p {
                Ok(p) => Stat::Ok {
                    size: p.size,
                    mtime: p.mtime,
                },
                Err(err) => Stat::Err(err.clone()),
            };
            out.frame(|b| frame::put_stat(b, e.index, &stat))?;
        }
        out.out.flush()?;
        for k in 0..prepared.len() {
            if job.is_aborted() {
                out.out.abort("job aborted");
                return Err(aborted());
            }
            let (e, spec) = (&req.entries[k], &specs[k]);
            let Ok(p) = &prepared[k] else { continue };
            let opened = self.open_item(spec, p, handle);
            crate::dt::release_handle(&mut prepared[k]);
            let mut item = match opened {
                Ok(item) => item,
                Err(err) => {
                    out.frame(|b| frame::put_fail(b, e.index, &err.to_string()))?;
                    continue;
                }
            };
            if item.size <= INLINE_ITEM {
                // Small items are read straight into the outgoing block, after their header.
                let size = item.size as usize;
                out.out.make_room(frame::HEADER_LEN + size)?;
                let mark = out.out.len();
                out.frame(|b| frame::put_header(b, frame::ITEM, e.index, item.size))?;
                let buf = out.out.tail(size);
                let read = match item.read_exact_into(buf) {
                    Err(err) => self.reader.reread_repaired(spec, err, buf),
                    read => read,
                };
                match read {
                    Ok(()) => {
                        out.out.commit(size);
                        job.add_out(1, item.size);
                    }
                    Err(err) => {
                        out.out.truncate(mark);
                        out.frame(|b| frame::put_fail(b, e.index, &err.to_string()))?;
                    }
                }
                continue;
            }
            out.frame(|b| frame::put_header(b, frame::ITEM, e.index, item.size))?;
            loop {
                match item.read_chunk_pooled(CHUNK, &self.pool) {
                    Ok(Some(chunk)) => out.out.put_bytes(chunk)?,
                    Ok(None) => {
                        job.add_out(1, item.size);
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(wid = %req.wid, "aborting send stream: {err}");
                        out.out.abort(&err.to_string());
                        return Err(std::io::Error::other(err.to_string()));
                    }
                }
            }
        }
        out.frame(|b| frame::put_header(b, frame::END, 0, 0))?;
        out.out.flush()
    }
}

/// The coalescer plus a scratch buffer for encoding frame headers.
struct Frames {
    out: Coalescer,
    scratch: BytesMut,
}

impl Frames {
    /// Encodes one frame header (or small frame) and appends it.
    fn frame(&mut self, encode: impl FnOnce(&mut BytesMut)) -> std::io::Result<()> {
        self.scratch.clear();
        encode(&mut self.scratch);
        self.out.put(&self.scratch)
    }
}
