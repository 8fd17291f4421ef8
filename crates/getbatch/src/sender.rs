//! The sender side: a target streams its share of a batch to the DT as framed items (stats first,
//! then payloads in request order), reading ahead on a blocking thread.
use std::sync::Arc;

use futures::Stream;
use moss_types::moss::SendReq;
use tokio::sync::mpsc;

use crate::Engine;
use crate::coalesce::{BUF_SIZE, BodyItem, Coalescer};
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
        tokio::task::spawn_blocking(move || engine.produce(req, Coalescer::new(tx), &handle));
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    fn produce(&self, req: SendReq, mut out: Coalescer, handle: &tokio::runtime::Handle) {
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
            frame::put_stat(out.buffer(), e.index, &stat);
        }
        if out.flush().is_err() {
            return;
        }
        for k in 0..prepared.len() {
            let (e, spec) = (&req.entries[k], &specs[k]);
            let Ok(p) = &prepared[k] else { continue };
            let opened = self.open_item(spec, p, handle);
            crate::dt::release_handle(&mut prepared[k]);
            let mut item = match opened {
                Ok(item) => item,
                Err(err) => {
                    frame::put_fail(out.buffer(), e.index, &err.to_string());
                    continue;
                }
            };
            if item.size <= INLINE_ITEM {
                // Small items are read straight into the outgoing buffer, after their header.
                let mark = out.buffer().len();
                frame::put_header(out.buffer(), frame::ITEM, e.index, item.size);
                if let Err(err) = item.read_into(out.buffer()) {
                    out.buffer().truncate(mark);
                    frame::put_fail(out.buffer(), e.index, &err.to_string());
                }
                if out.buffer().len() >= BUF_SIZE && out.flush().is_err() {
                    return;
                }
                continue;
            }
            frame::put_header(out.buffer(), frame::ITEM, e.index, item.size);
            loop {
                match item.read_chunk(CHUNK) {
                    Ok(Some(chunk)) => {
                        if out.put_bytes(chunk).is_err() {
                            tracing::debug!(wid = %req.wid, "designated target went away; stopping");
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        tracing::warn!(wid = %req.wid, "aborting send stream: {err}");
                        out.abort(&err.to_string());
                        return;
                    }
                }
            }
        }
        frame::put_header(out.buffer(), frame::END, 0, 0);
        let _ = out.flush();
    }
}
