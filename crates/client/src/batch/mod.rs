//! GetBatch: send one request, get many objects back as one archive in request order.
//!
//! - [`Client::batch`]: entries one by one, each paired with its request entry ([`BatchItem`]).
//! - [`Client::batch_archive`]: the archive bytes (metadata split off in buffered mode), to be
//!   written as is ([`BatchArchive::write_to`] verifies while writing).
//! - [`Client::batch_raw`]: the response as the server sent it.
pub(crate) mod decode;
pub mod multipart;
pub mod plan;

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use moss_archive::Format;
use moss_types::moss::{MossOut, MossReq, MossResp};
use moss_types::names::encode_path;
use reqwest::Method;
use reqwest::header;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::Client;
use crate::error::{Error, Result, body_io_error};
use crate::http::Call;
use multipart::{MultipartEvent, MultipartSplitter, parse_boundary};
use plan::BatchPlan;

/// A stream of response bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// Largest metadata part accepted in buffered mode (about 100 bytes per entry).
const MAX_METADATA: usize = 512 << 20;

/// One entry of a GetBatch result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchItem {
    /// The entry's name inside the archive (`bucket/object[/archpath]`, `__404__/…` when missing).
    pub name: String,
    /// What the server reported (buffered mode) or what the request implies (streaming mode).
    pub out: MossOut,
    /// The payload (empty for a missing item).
    pub data: Bytes,
}

impl BatchItem {
    /// True for a placeholder of a missing item (`coer`).
    pub fn is_missing(&self) -> bool {
        self.out.err_msg.is_some()
    }
}

/// Entries of a GetBatch response in request order. Ends with an error item (and nothing
/// after it) when the response is an error, breaks off, or does not match the request.
pub struct BatchStream {
    inner: Pin<Box<dyn Stream<Item = Result<BatchItem>> + Send>>,
}

impl BatchStream {
    pub(crate) fn new(inner: Pin<Box<dyn Stream<Item = Result<BatchItem>> + Send>>) -> Self {
        BatchStream { inner }
    }
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream").finish_non_exhaustive()
    }
}

impl Stream for BatchStream {
    type Item = Result<BatchItem>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// The archive of a GetBatch response, not yet read.
pub struct BatchArchive {
    /// Content-Type of the archive (`application/x-tar`, ...).
    pub content_type: String,
    /// The metadata part of a buffered response (`None` when streaming).
    pub metadata: Option<MossResp>,
    plan: Arc<BatchPlan>,
    body: ByteStream,
}

impl std::fmt::Debug for BatchArchive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchArchive")
            .field("content_type", &self.content_type)
            .field("entries", &self.plan.len())
            .finish_non_exhaustive()
    }
}

/// What [`BatchArchive::write_to`] wrote and checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchSummary {
    /// Entries in the archive (= entries requested).
    pub entries: usize,
    /// Payload bytes over all entries.
    pub payload_bytes: u64,
    /// Archive bytes written.
    pub archive_bytes: u64,
    /// Placeholders for missing items, in order.
    pub missing: Vec<MossOut>,
}

impl BatchArchive {
    /// What the archive must contain.
    pub fn plan(&self) -> &BatchPlan {
        &self.plan
    }

    /// Output format.
    pub fn format(&self) -> Format {
        self.plan.format()
    }

    /// The archive bytes as received, unchecked.
    pub fn into_bytes(self) -> ByteStream {
        self.body
    }

    /// Decodes the archive entry by entry.
    pub fn into_items(self) -> BatchStream {
        let metadata = self.metadata.map(|m| Arc::new(m.out));
        decode::decode(self.plan, metadata, self.body, true)
    }

    /// Writes the archive bytes as received to `out` while checking them (entry count, names,
    /// sizes, archive integrity); `on_entry` sees every entry (with empty `data`) as it passes.
    /// On error, `out` holds a partial archive that the caller should discard. (Checking a ZIP
    /// needs its directory, at the end: a temporary copy is kept while checking.)
    pub async fn write_to<W: AsyncWrite + Unpin>(
        self,
        mut out: W,
        mut on_entry: impl FnMut(&BatchItem),
    ) -> Result<BatchSummary> {
        let (tee, tee_rx) = mpsc::channel::<Result<Bytes>>(16);
        let checked_body = stream::unfold(tee_rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        })
        .boxed();
        let metadata = self.metadata.map(|m| Arc::new(m.out));
        let mut entries = decode::decode(self.plan, metadata, checked_body, false);
        let mut body = self.body;

        let write = async move {
            let mut written = 0u64;
            while let Some(chunk) = body.next().await {
                let bytes = match chunk {
                    Ok(bytes) => bytes,
                    Err(err) => {
                        // The checker must not take the early end for a complete archive.
                        let copy = Error::Archive(format!("response broke off: {err}"));
                        let _ = tee.send(Err(copy)).await;
                        return Err(err);
                    }
                };
                out.write_all(&bytes)
                    .await
                    .map_err(|e| Error::io("write archive", e))?;
                written += bytes.len() as u64;
                if tee.send(Ok(bytes)).await.is_err() {
                    // The checker stopped; it reports why.
                    break;
                }
            }
            drop(tee);
            out.flush()
                .await
                .map_err(|e| Error::io("write archive", e))?;
            Ok::<u64, Error>(written)
        };
        let check = async {
            let mut summary = BatchSummary::default();
            while let Some(item) = entries.next().await {
                let item = item?;
                on_entry(&item);
                summary.entries += 1;
                summary.payload_bytes += item.out.size;
                if item.is_missing() {
                    summary.missing.push(item.out);
                }
            }
            Ok::<BatchSummary, Error>(summary)
        };
        let (written, checked) = futures::join!(write, check);
        let archive_bytes = written?;
        let mut summary = checked?;
        summary.archive_bytes = archive_bytes;
        Ok(summary)
    }
}

impl Client {
    /// Runs a GetBatch request and yields its entries in request order, decoding the archive
    /// as it arrives. `default_bucket` (an `ais://` bucket name) applies to entries without a
    /// bucket. Works in both response modes (`req.strm`) and for every output format (ZIP is
    /// spilled to a temporary file first: its directory comes last).
    pub fn batch(&self, req: MossReq, default_bucket: Option<&str>) -> BatchStream {
        let client = self.clone();
        let default_bucket = default_bucket.map(str::to_string);
        let open = async move {
            match client.batch_archive(req, default_bucket.as_deref()).await {
                Ok(archive) => archive.into_items().boxed(),
                Err(err) => stream::iter([Err(err)]).boxed(),
            }
        };
        BatchStream::new(stream::once(open).flatten().boxed())
    }

    /// Runs a GetBatch request and returns its archive (after the metadata part, in buffered
    /// mode). Validates the request first, with the server's rules.
    pub async fn batch_archive(
        &self,
        mut req: MossReq,
        default_bucket: Option<&str>,
    ) -> Result<BatchArchive> {
        let plan = Arc::new(BatchPlan::new(&req, default_bucket)?);
        if req.mime.is_empty() {
            req.mime = plan.format().ext().to_string();
        }
        let (content_type, body) = self.batch_raw(&req, default_bucket).await?;
        if req.strm {
            check_streamed_type(&content_type, plan.format())?;
            return Ok(BatchArchive {
                content_type,
                metadata: None,
                plan,
                body,
            });
        }
        let boundary = parse_boundary(&content_type).ok_or_else(|| {
            Error::decode(
                "GetBatch",
                format!("expected multipart/mixed with a boundary, got {content_type:?}"),
            )
        })?;
        let mut parts = MultipartReader::new(body, &boundary);
        let metadata = parts.read_metadata().await?;
        if metadata.out.len() != plan.len() {
            return Err(Error::Archive(format!(
                "metadata lists {} entries, {} were requested",
                metadata.out.len(),
                plan.len()
            )));
        }
        Ok(BatchArchive {
            content_type: plan.format().content_type().to_string(),
            metadata: Some(metadata),
            plan,
            body: parts.into_part_stream(),
        })
    }

    /// Sends a GetBatch request as is and returns the response's Content-Type and body
    /// (the archive when streaming, `multipart/mixed` when buffered). Error answers (4xx with
    /// a JSON body, 429 with `Retry-After`) become [`Error::Http`].
    pub async fn batch_raw(
        &self,
        req: &MossReq,
        default_bucket: Option<&str>,
    ) -> Result<(String, ByteStream)> {
        let parts = default_bucket.map(crate::http::bucket_parts);
        let path = match parts {
            Some((name, _)) => format!("ml/moss/{}", encode_path(name)),
            None => "ml/moss".to_string(),
        };
        let coloc = req.coloc.filter(|&c| c > 0).map(|c| c.to_string());
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some((_, provider)) = parts {
            query.push(("provider", provider));
        }
        if let Some(coloc) = &coloc {
            query.push(("coloc", coloc));
        }
        let call = Call::new(Method::GET, self.url(&path, &query)).json(req)?;
        let what = call.describe();
        let response = self.execute(call).await?;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .bytes_stream()
            .map_err(move |e| Error::Body {
                context: format!("{what} response broke off"),
                error: body_io_error(e),
            })
            .boxed();
        Ok((content_type, body))
    }
}

/// A streamed archive must come with an `application/*` type naming the requested format.
fn check_streamed_type(content_type: &str, want: Format) -> Result<()> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if !media.starts_with("application/") {
        return Err(Error::decode(
            "GetBatch",
            format!("expected an archive, got Content-Type {content_type:?}"),
        ));
    }
    match Format::from_mime(&media) {
        Ok(got) if got != want => Err(Error::decode(
            "GetBatch",
            format!(
                "asked for {} but got Content-Type {content_type:?}",
                want.ext()
            ),
        )),
        // `application/octet-stream` and friends: trust the request.
        _ => Ok(()),
    }
}

/// Async driver of [`MultipartSplitter`] over a response body.
struct MultipartReader {
    body: ByteStream,
    splitter: MultipartSplitter,
    eof: bool,
}

impl MultipartReader {
    fn new(body: ByteStream, boundary: &str) -> Self {
        MultipartReader {
            body,
            splitter: MultipartSplitter::new(boundary),
            eof: false,
        }
    }

    /// The next event; `None` after the body ended (checked to be complete).
    async fn next_event(&mut self) -> Result<Option<MultipartEvent>> {
        loop {
            if let Some(event) = self.splitter.next_event().map_err(Error::Archive)? {
                return Ok(Some(event));
            }
            if self.eof {
                self.splitter.finish().map_err(Error::Archive)?;
                return Ok(None);
            }
            match self.body.next().await {
                Some(chunk) => self.splitter.feed(&chunk?),
                None => self.eof = true,
            }
        }
    }

    /// Reads part 1 (`metadata`) and the headers of part 2 (`archive`).
    async fn read_metadata(&mut self) -> Result<MossResp> {
        let headers = match self.next_event().await? {
            Some(MultipartEvent::Part(headers)) => headers,
            _ => {
                return Err(Error::Archive(
                    "multipart response has no parts".to_string(),
                ));
            }
        };
        check_part_name(headers.name.as_deref(), "metadata", 1)?;
        let mut json = Vec::new();
        let archive_headers = loop {
            match self.next_event().await? {
                Some(MultipartEvent::Data(data)) => {
                    if json.len() + data.len() > MAX_METADATA {
                        return Err(Error::Archive(format!(
                            "metadata part larger than {MAX_METADATA} bytes"
                        )));
                    }
                    json.extend_from_slice(&data);
                }
                Some(MultipartEvent::Part(headers)) => break headers,
                _ => {
                    return Err(Error::Archive(
                        "multipart response has no archive part".to_string(),
                    ));
                }
            }
        };
        check_part_name(archive_headers.name.as_deref(), "archive", 2)?;
        serde_json::from_slice(&json).map_err(|e| Error::decode("GetBatch metadata", e))
    }

    /// The data of the current part; fails if another part follows or the body is truncated.
    fn into_part_stream(self) -> ByteStream {
        stream::try_unfold(Some(self), |state| async move {
            let Some(mut reader) = state else {
                return Ok(None);
            };
            loop {
                match reader.next_event().await? {
                    Some(MultipartEvent::Data(data)) => return Ok(Some((data, Some(reader)))),
                    Some(MultipartEvent::End) => continue,
                    Some(MultipartEvent::Part(_)) => {
                        return Err(Error::Archive(
                            "multipart response has more than two parts".to_string(),
                        ));
                    }
                    None => return Ok(None),
                }
            }
        })
        .boxed()
    }
}

/// Parts are identified by position, as the SDKs do; a name, when present, must agree.
fn check_part_name(name: Option<&str>, want: &str, position: usize) -> Result<()> {
    match name {
        Some(name) if name != want => Err(Error::Archive(format!(
            "multipart part {position} is {name:?}, expected {want:?}"
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
