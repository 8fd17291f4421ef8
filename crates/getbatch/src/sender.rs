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

/// Items up to this size are read directly into the outgoing buffer.
const INLINE_ITEM: u64 = 64 << 10;

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
        if self.stream_items(&req, &mut out, handle).is_err() {
            tracing::debug!(wid = %req.wid, "designated target went away; stopping");
        }
    }

    /// Writes the stat and item frames; `Err` when the DT is gone (or the stream was aborted).
    fn stream_items(
        &self,
        req: &SendReq,
        out: &mut Frames,
        handle: &tokio::runtime::Handle,
    ) -> std::io::Result<()> {
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
                match item.read_exact_into(out.out.tail(size)) {
                    Ok(()) => out.out.commit(size),
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
                    Ok(None) => break,
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
