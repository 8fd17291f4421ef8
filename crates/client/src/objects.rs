//! Object calls: PUT (bytes, stream, file), GET (whole, streamed, range, archived file), HEAD,
//! DELETE.
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::{Stream, StreamExt, TryStreamExt};
use moss_types::headers;
use moss_types::moss::ByteRange;
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio_util::io::ReaderStream;

use crate::error::{Error, Result, body_io_error};
use crate::http::{Call, error_from_response};
use crate::{Client, SMALL_FILE_LIMIT};

/// What `HEAD` reports about an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectProps {
    pub size: u64,
    pub checksum_type: Option<String>,
    pub checksum_value: Option<String>,
    pub version: Option<String>,
    /// Last access, unix nanoseconds as sent by the server.
    pub atime: Option<String>,
    /// The node that stores it (`t[id]:<mountpath>`).
    pub location: Option<String>,
}

/// Options of a streamed GET.
#[derive(Debug, Clone, Default)]
pub struct GetOptions {
    /// Only these bytes (answered with 206).
    pub range: Option<ByteRange>,
    /// A file inside the object (a shard), instead of the object itself.
    pub archpath: Option<String>,
}

/// The body of a GET, chunk by chunk. A body that ends short of `Content-Length` or breaks off
/// yields an error item, never a silent short read.
pub struct ObjectStream {
    /// `Content-Length` of the answer (the range length for ranged reads).
    pub content_length: Option<u64>,
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
}

impl std::fmt::Debug for ObjectStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectStream")
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

impl Stream for ObjectStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Bodies up to this size may be answered with a 307 by the proxy (it drains them first).
const STREAM_THRESHOLD: u64 = 256 << 10;

impl Client {
    /// Stores `data` as `bucket/objname` (the proxy redirects small bodies to the owner and
    /// streams large ones through; either way the call is one PUT from here).
    pub async fn put_bytes(
        &self,
        bucket: &str,
        objname: &str,
        data: impl Into<Bytes>,
    ) -> Result<()> {
        let url = self.object_url(bucket, objname, &[]);
        self.unit(Call::new(Method::PUT, url).body(data.into()))
            .await
    }

    /// Stores exactly `len` bytes from `body` as `bucket/objname`. Bodies above the proxy's
    /// redirect threshold are streamed through the proxy to the owner; smaller ones are sent
    /// from memory, since a stream cannot be re-sent after a 307.
    pub async fn put_stream<S>(&self, bucket: &str, objname: &str, len: u64, body: S) -> Result<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        if len <= STREAM_THRESHOLD {
            let chunks: Vec<std::io::Result<Bytes>> = body.collect().await;
            let mut data = bytes::BytesMut::with_capacity(len as usize);
            for chunk in chunks {
                data.extend_from_slice(&chunk.map_err(|e| Error::io("read upload body", e))?);
            }
            return self.put_bytes(bucket, objname, data.freeze()).await;
        }
        let url = self.object_url(bucket, objname, &[]);
        self.put_streamed(&url, len, body).await
    }

    /// One PUT of exactly `len` bytes from `body` to `url`, streamed (no redirect is followed:
    /// the proxy streams such bodies through to the owner).
    pub(crate) async fn put_streamed<S>(&self, url: &str, len: u64, body: S) -> Result<()>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
    {
        let what = crate::http::describe(&Method::PUT, url);
        let response = self
            .http
            .put(url)
            .header(header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| Error::transport(what.clone(), e))?;
        if !response.status().is_success() {
            return Err(error_from_response(response).await);
        }
        response
            .bytes()
            .await
            .map_err(|e| Error::transport(what, e))?;
        Ok(())
    }

    /// Uploads a local file as `bucket/objname`; returns its size. Small files go from memory,
    /// large ones are streamed.
    pub async fn put_file(&self, bucket: &str, objname: &str, path: &Path) -> Result<u64> {
        let shown = path.display().to_string();
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::io(format!("open {shown}"), e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| Error::io(format!("stat {shown}"), e))?
            .len();
        if len <= SMALL_FILE_LIMIT {
            let data = tokio::fs::read(path)
                .await
                .map_err(|e| Error::io(format!("read {shown}"), e))?;
            if data.len() as u64 != len {
                return Err(Error::io(
                    format!("read {shown}"),
                    std::io::Error::other("file changed size while being read"),
                ));
            }
            self.put_bytes(bucket, objname, data).await?;
            return Ok(len);
        }
        self.put_stream(bucket, objname, len, ReaderStream::new(file))
            .await?;
        Ok(len)
    }

    /// The whole object in memory.
    pub async fn get(&self, bucket: &str, objname: &str) -> Result<Bytes> {
        self.get_stream(bucket, objname, &GetOptions::default())
            .await?
            .collect_bytes()
            .await
    }

    /// `length` bytes from `start` (`None` = to the end).
    pub async fn get_range(
        &self,
        bucket: &str,
        objname: &str,
        start: u64,
        length: Option<u64>,
    ) -> Result<Bytes> {
        let options = GetOptions {
            range: Some(ByteRange { start, length }),
            archpath: None,
        };
        self.get_stream(bucket, objname, &options)
            .await?
            .collect_bytes()
            .await
    }

    /// One file inside a shard object (`?archpath=`).
    pub async fn get_archived(&self, bucket: &str, objname: &str, archpath: &str) -> Result<Bytes> {
        let options = GetOptions {
            range: None,
            archpath: Some(archpath.to_string()),
        };
        self.get_stream(bucket, objname, &options)
            .await?
            .collect_bytes()
            .await
    }

    /// Starts a GET and returns its body as a stream (for objects too large for memory).
    pub async fn get_stream(
        &self,
        bucket: &str,
        objname: &str,
        options: &GetOptions,
    ) -> Result<ObjectStream> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if let Some(archpath) = &options.archpath {
            query.push((headers::QP_ARCHPATH, archpath));
        }
        let mut call = Call::new(Method::GET, self.object_url(bucket, objname, &query));
        if let Some(range) = &options.range {
            call = call.header(header::RANGE, range_header(range)?);
        }
        let what = call.describe();
        let response = self.execute(call).await?;
        if options.range.is_some() && response.status() != StatusCode::PARTIAL_CONTENT {
            return Err(Error::decode(
                what,
                format!(
                    "expected 206 for a range request, got {}",
                    response.status()
                ),
            ));
        }
        let content_length = response.content_length();
        let inner = response
            .bytes_stream()
            .map_err(move |e| Error::Body {
                context: format!("read {what}"),
                error: body_io_error(e),
            })
            .boxed();
        Ok(ObjectStream {
            content_length,
            inner,
        })
    }

    /// Size, checksum and version of an object.
    pub async fn head_object(&self, bucket: &str, objname: &str) -> Result<ObjectProps> {
        let call = Call::new(Method::HEAD, self.object_url(bucket, objname, &[]));
        let what = call.describe();
        let response = self.execute(call).await?;
        let map = response.headers();
        let size = map
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Error::decode(what, "no Content-Length in HEAD answer"))?;
        Ok(ObjectProps {
            size,
            checksum_type: header_text(map, headers::CHECKSUM_TYPE),
            checksum_value: header_text(map, headers::CHECKSUM_VALUE),
            version: header_text(map, headers::VERSION),
            atime: header_text(map, headers::ATIME),
            location: header_text(map, headers::LOCATION),
        })
    }

    /// Deletes an object (404 if it does not exist).
    pub async fn delete_object(&self, bucket: &str, objname: &str) -> Result<()> {
        let call = Call::new(Method::DELETE, self.object_url(bucket, objname, &[]));
        self.unit(call).await
    }
}

impl ObjectStream {
    /// Reads the rest of the body into memory.
    pub async fn collect_bytes(self) -> Result<Bytes> {
        let capacity = self.content_length.unwrap_or(0).min(64 << 20) as usize;
        let mut buf = Vec::with_capacity(capacity);
        let mut inner = self.inner;
        while let Some(chunk) = inner.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(Bytes::from(buf))
    }
}

fn header_text(map: &HeaderMap, name: &str) -> Option<String> {
    map.get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// `bytes=a-b` (inclusive end) or `bytes=a-`.
fn range_header(range: &ByteRange) -> Result<HeaderValue> {
    let text = match range.length {
        None => format!("bytes={}-", range.start),
        Some(0) => {
            return Err(Error::InvalidRequest(
                "invalid range: length must be positive".to_string(),
            ));
        }
        Some(len) => {
            let last = range
                .start
                .checked_add(len - 1)
                .ok_or_else(|| Error::InvalidRequest("invalid range: overflow".to_string()))?;
            format!("bytes={}-{last}", range.start)
        }
    };
    HeaderValue::from_str(&text).map_err(|e| Error::InvalidRequest(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers() {
        let hv = |start, length| {
            range_header(&ByteRange { start, length }).map(|v| v.to_str().unwrap().to_string())
        };
        assert_eq!(hv(2, Some(4)).unwrap(), "bytes=2-5");
        assert_eq!(hv(7, None).unwrap(), "bytes=7-");
        assert!(hv(1, Some(0)).is_err());
        assert!(hv(u64::MAX, Some(2)).is_err());
    }
}
