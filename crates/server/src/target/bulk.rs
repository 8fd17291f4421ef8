//! Bulk object writes between targets (copy jobs): one request carries many small objects of one
//! bucket, one blocking writer commits them, and each directory is fsynced once per request
//! instead of once per object. The answer comes only when everything in it is durable.
//!
//! Body: a sequence of frames, `name_len:u32be name custom_len:u32be custom(JSON object)
//! size:u64be bytes[size]`, until the end of the body.
use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use futures::StreamExt;
use moss_getbatch::coalesce::BodyItem;
use moss_storage::{Store, StoreError};
use moss_types::smap::Snode;
use moss_types::{Bck, names};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::Target;
use crate::http::{ApiError, Query, bucket_query, json_response, url_bucket};

/// Longest object name in a frame (a bigger length is a broken stream, not a name).
const MAX_NAME: usize = 4096;
/// Largest custom-metadata JSON in a frame.
const MAX_CUSTOM: usize = 64 << 10;
/// Payload bytes copied into the write at a time.
const CHUNK: usize = 256 << 10;

/// One object to send: name in the destination bucket, custom metadata, bytes.
pub struct Outgoing {
    pub name: String,
    pub custom: BTreeMap<String, String>,
    pub data: Bytes,
}

/// What a bulk write stored.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Stored {
    pub objects: u64,
    pub bytes: u64,
}

/// Commits objects one after another and syncs their directories once at the end.
pub struct BulkWriter<'a> {
    store: &'a Store,
    bck: &'a Bck,
    /// Keep an existing object (a rebalance must not overwrite a newer write).
    only_if_absent: bool,
    dirs: Vec<PathBuf>,
    stored: Stored,
}

impl<'a> BulkWriter<'a> {
    pub fn new(store: &'a Store, bck: &'a Bck, only_if_absent: bool) -> BulkWriter<'a> {
        BulkWriter {
            store,
            bck,
            only_if_absent,
            dirs: Vec::new(),
            stored: Stored::default(),
        }
    }

    /// Writes one object of `size` bytes read from `data`.
    pub fn write(
        &mut self,
        name: &str,
        custom: BTreeMap<String, String>,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<(), StoreError> {
        if self.only_if_absent && self.store.stat_size(self.bck, name).is_ok() {
            std::io::copy(&mut data.take(size), &mut std::io::sink())?;
            return Ok(());
        }
        let mut txn = self.store.begin_put(self.bck, name)?;
        let mut buf = vec![0u8; CHUNK.min(size as usize).max(1)];
        let mut left = size;
        while left > 0 {
            let want = buf.len().min(left as usize);
            data.read_exact(&mut buf[..want])?;
            txn.write(&buf[..want])?;
            left -= want as u64;
        }
        let (meta, dir) = txn.commit_but_dir(custom)?;
        if !self.dirs.contains(&dir) {
            self.dirs.push(dir);
        }
        self.stored.objects += 1;
        self.stored.bytes += meta.size;
        Ok(())
    }

    /// Makes everything written durable; returns what was stored.
    pub fn finish(self) -> Result<Stored, StoreError> {
        self.store
            .sync_dirs(self.dirs.iter().map(PathBuf::as_path))?;
        Ok(self.stored)
    }
}

/// The frame header of one object.
fn frame_head(name: &str, custom: &BTreeMap<String, String>, size: u64) -> Vec<u8> {
    let custom = if custom.is_empty() {
        Vec::new()
    } else {
        serde_json::to_vec(custom).unwrap_or_default()
    };
    let mut head = Vec::with_capacity(16 + name.len() + custom.len());
    head.extend_from_slice(&(name.len() as u32).to_be_bytes());
    head.extend_from_slice(name.as_bytes());
    head.extend_from_slice(&(custom.len() as u32).to_be_bytes());
    head.extend_from_slice(&custom);
    head.extend_from_slice(&size.to_be_bytes());
    head
}

/// Sends `objects` to `owner` in one request; what it stored (all of it, or an error).
pub async fn send(
    target: &Target,
    owner: &Snode,
    dst: &Bck,
    objects: Vec<Outgoing>,
    xid: &str,
) -> Result<Stored, ApiError> {
    let total: u64 = objects.iter().map(|o| o.data.len() as u64).sum();
    let pieces: Vec<Result<Bytes, std::io::Error>> = objects
        .into_iter()
        .flat_map(|o| {
            let head = Bytes::from(frame_head(&o.name, &o.custom, o.data.len() as u64));
            [Ok(head), Ok(o.data)]
        })
        .collect();
    let url = format!(
        "{}/v1/internal/bulk/{}?{}&xid={xid}",
        owner.url(),
        dst.name,
        bucket_query(dst)
    );
    let response = target
        .shared
        .intra(target.shared.client.put(url))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
        // A hang guard, not a speed limit (as for single copies).
        .timeout(std::time::Duration::from_secs(60 + (total >> 20)))
        .send()
        .await
        .map_err(|e| ApiError::unavailable(format!("copy to {}: {e}", owner.display())))?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .json::<moss_types::ErrorBody>()
            .await
            .unwrap_or_default();
        return Err(ApiError::new(
            status,
            format!("copy to {}: {}", owner.display(), body.message),
        ));
    }
    response
        .json::<Stored>()
        .await
        .map_err(|e| ApiError::unavailable(format!("copy to {}: {e}", owner.display())))
}

/// `PUT /v1/internal/bulk/<bucket>?xid=…[&rebalance=true]`: stores every object of the body.
pub async fn receive(
    target: &Arc<Target>,
    bucket: &str,
    query: &Query,
    req: Request,
) -> Result<axum::response::Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    if target.shared.bmd.load().get(&bck).is_none() {
        crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
        return Err(ApiError::no_bucket(&bck.cname()));
    }
    let only_if_absent = query.str("rebalance") == "true";
    // Objects of a job that was aborted here are not written, even if the sender's request
    // was already on its way (a stalled receiver resuming after the stop).
    let job = query.get("xid").and_then(|id| target.jobs.get(id));
    let (tx, rx) = mpsc::channel::<BodyItem>(8);
    let forward = tokio::spawn(forward_body(req.into_body(), tx));
    let store = target.store.clone();
    let b = bck.clone();
    let watched = job.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut reader = ChannelReader::new(rx);
        let mut writer = BulkWriter::new(&store, &b, only_if_absent);
        while let Some((name, custom, size)) = read_head(&mut reader)? {
            if let Some(job) = watched.as_ref().filter(|j| j.is_aborted()) {
                writer
                    .finish()
                    .map_err(|e| ApiError::from_store(e, &b.cname()))?;
                return Err(ApiError::conflict(format!(
                    "job {} was aborted; not writing {}/{name}",
                    job.id,
                    b.cname()
                )));
            }
            writer
                .write(&name, custom, size, &mut reader)
                .map_err(|e| ApiError::from_store(e, &format!("{}/{name}", b.cname())))?;
        }
        writer
            .finish()
            .map_err(|e| ApiError::from_store(e, &b.cname()))
    })
    .await
    .map_err(|e| ApiError::internal(format!("bulk write task failed: {e}")))?;
    forward.abort();
    let stored = written?;
    crate::metrics::inc(&target.metrics.put_count, stored.objects);
    crate::metrics::inc(&target.metrics.put_bytes, stored.bytes);
    if let Some(job) = job {
        job.add_in(stored.objects, stored.bytes);
    }
    Ok(json_response(&stored))
}

async fn forward_body(body: Body, tx: mpsc::Sender<BodyItem>) {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let item = chunk.map_err(std::io::Error::other);
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// A frame header: object name, custom metadata, payload size.
type Head = (String, BTreeMap<String, String>, u64);

/// The next frame header, or `None` at a clean end of the body.
fn read_head(r: &mut ChannelReader) -> Result<Option<Head>, ApiError> {
    let broken = |what: &str| ApiError::bad_request(format!("bulk write: {what}"));
    let mut len = [0u8; 4];
    match r.read_first(&mut len) {
        Ok(false) => return Ok(None),
        Ok(true) => {}
        Err(e) => return Err(broken(&format!("body broke: {e}"))),
    }
    let name_len = u32::from_be_bytes(len) as usize;
    if name_len == 0 || name_len > MAX_NAME {
        return Err(broken(&format!("bad name length {name_len}")));
    }
    let mut name = vec![0u8; name_len];
    r.read_exact(&mut name)
        .map_err(|e| broken(&format!("truncated frame: {e}")))?;
    let name = String::from_utf8(name).map_err(|_| broken("name is not UTF-8"))?;
    names::validate_objname(&name).map_err(ApiError::bad_request)?;
    r.read_exact(&mut len)
        .map_err(|e| broken(&format!("truncated frame: {e}")))?;
    let custom_len = u32::from_be_bytes(len) as usize;
    if custom_len > MAX_CUSTOM {
        return Err(broken(&format!("custom metadata of {custom_len} bytes")));
    }
    let custom = if custom_len == 0 {
        BTreeMap::new()
    } else {
        let mut raw = vec![0u8; custom_len];
        r.read_exact(&mut raw)
            .map_err(|e| broken(&format!("truncated frame: {e}")))?;
        serde_json::from_slice(&raw).map_err(|e| broken(&format!("bad custom metadata: {e}")))?
    };
    let mut size = [0u8; 8];
    r.read_exact(&mut size)
        .map_err(|e| broken(&format!("truncated frame: {e}")))?;
    Ok(Some((name, custom, u64::from_be_bytes(size))))
}

/// A body arriving over a channel, as a blocking `Read`.
pub struct ChannelReader {
    rx: mpsc::Receiver<BodyItem>,
    current: Bytes,
    /// The body ended cleanly (not cut by an error).
    pub ended: bool,
}

impl ChannelReader {
    pub fn new(rx: mpsc::Receiver<BodyItem>) -> ChannelReader {
        ChannelReader {
            rx,
            current: Bytes::new(),
            ended: false,
        }
    }

    /// Fills `buf`; `false` when the body ended before its first byte (a clean end).
    fn read_first(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = self.read(&mut buf[filled..])?;
            if n == 0 {
                if filled == 0 {
                    return Ok(false);
                }
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            filled += n;
        }
        Ok(true)
    }
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => {
                    self.ended = true;
                    return Ok(0);
                }
            }
        }
        let n = out.len().min(self.current.len());
        out[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}
