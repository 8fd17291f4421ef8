//! Multipart upload: create, parts (in parallel, each streamed from its slice of a file),
//! complete, abort — AIStore's wire format (`mpt-upload`, `uploadId`/`partNumber`,
//! `mpt-complete`, `mpt-abort`).
use std::io::SeekFrom;
use std::path::Path;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::Client;
use crate::error::{Error, Result};
use crate::http::Call;

/// How a file is cut and sent.
#[derive(Debug, Clone, Copy)]
pub struct MultipartOptions {
    /// Bytes per part (the last one may be shorter).
    pub part_size: u64,
    /// Parts in flight at once.
    pub parallel: usize,
}

impl Default for MultipartOptions {
    fn default() -> Self {
        MultipartOptions {
            part_size: 64 << 20,
            parallel: 4,
        }
    }
}

/// A slice of a file sent as one part.
#[derive(Debug, Clone, Copy)]
pub struct FilePart<'a> {
    /// Part number, from 1.
    pub n: u32,
    pub path: &'a Path,
    pub offset: u64,
    pub len: u64,
}

/// Most parts an upload may have (AIStore's limit).
pub const MAX_PARTS: u64 = 9999;

impl Client {
    /// Starts a multipart upload of `bucket/objname`; returns its id.
    pub async fn mpu_create(&self, bucket: &str, objname: &str) -> Result<String> {
        let url = self.object_url(bucket, objname, &[]);
        let call = Call::new(Method::POST, url)
            .json(&json!({"action": "mpt-upload", "name": "", "value": null}))?;
        let what = call.describe();
        let response = self.execute(call).await?;
        response.text().await.map_err(|e| Error::transport(what, e))
    }

    /// Uploads one part: its slice of the file, streamed.
    pub async fn mpu_put_part_from_file(
        &self,
        bucket: &str,
        objname: &str,
        upload_id: &str,
        part: FilePart<'_>,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<()> {
        let FilePart {
            n,
            path,
            offset,
            len,
        } = part;
        let shown = path.display().to_string();
        let mut f = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("open {shown}"), e))?;
        f.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| Error::io(format!("seek {shown}"), e))?;
        let body = ReaderStream::with_capacity(f.take(len), 256 << 10).inspect_ok(move |c| {
            progress(c.len() as u64);
        });
        let part = n.to_string();
        let url = self.object_url(
            bucket,
            objname,
            &[("uploadId", upload_id), ("partNumber", &part)],
        );
        self.put_streamed(&url, len, body).await
    }

    /// Completes an upload from parts `1..=parts`.
    pub async fn mpu_complete(
        &self,
        bucket: &str,
        objname: &str,
        upload_id: &str,
        parts: u32,
    ) -> Result<()> {
        let list: Vec<_> = (1..=parts)
            .map(|n| json!({"part-number": n, "etag": ""}))
            .collect();
        let url = self.object_url(bucket, objname, &[("uploadId", upload_id)]);
        let call = Call::new(Method::POST, url)
            .json(&json!({"action": "mpt-complete", "name": "", "value": list}))?;
        self.unit(call).await
    }

    /// Aborts an upload (its parts are dropped; the object is untouched).
    pub async fn mpu_abort(&self, bucket: &str, objname: &str, upload_id: &str) -> Result<()> {
        let url = self.object_url(bucket, objname, &[("uploadId", upload_id)]);
        let call = Call::new(Method::DELETE, url)
            .json(&json!({"action": "mpt-abort", "name": "", "value": null}))?;
        self.unit(call).await
    }

    /// Uploads a file as `bucket/objname` in parts, `opts.parallel` at a time; `progress` is
    /// called with every chunk sent. On failure the upload is aborted. Returns how many parts
    /// were sent.
    pub async fn put_file_multipart(
        &self,
        bucket: &str,
        objname: &str,
        path: &Path,
        opts: MultipartOptions,
        progress: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<u32> {
        let shown = path.display().to_string();
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| Error::io(format!("stat {shown}"), e))?
            .len();
        if size == 0 {
            return Err(Error::InvalidRequest(format!(
                "{shown} is empty: a multipart upload needs at least one byte"
            )));
        }
        let part_size = opts.part_size.max(1).max(size.div_ceil(MAX_PARTS));
        let parts = size.div_ceil(part_size).max(1) as u32;
        let id = self.mpu_create(bucket, objname).await?;
        let sent = futures::stream::iter(1..=parts)
            .map(|n| {
                let offset = u64::from(n - 1) * part_size;
                let len = part_size.min(size - offset.min(size));
                let (id, progress) = (id.clone(), progress.clone());
                async move {
                    let part = FilePart {
                        n,
                        path,
                        offset,
                        len,
                    };
                    self.mpu_put_part_from_file(bucket, objname, &id, part, progress)
                        .await
                }
            })
            .buffer_unordered(opts.parallel.max(1))
            .try_collect::<Vec<()>>()
            .await;
        let done = match sent {
            Ok(_) => self.mpu_complete(bucket, objname, &id, parts).await,
            Err(e) => Err(e),
        };
        if let Err(e) = done {
            let _ = self.mpu_abort(bucket, objname, &id).await;
            return Err(e);
        }
        Ok(parts)
    }
}
