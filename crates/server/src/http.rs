//! HTTP plumbing shared by both node roles: the one place where errors become status codes and
//! JSON bodies, query and path decoding, bounded body reads, and response helpers.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moss_storage::StoreError;
use moss_types::{Bck, ErrorBody, Namespace, Provider, headers, names};
use percent_encoding::percent_decode_str;

/// An error that ends a request: an HTTP status and a message for the JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Seconds for `Retry-After` (429/503).
    pub retry_after: Option<u64>,
    /// Headers the status calls for (`Allow` on 405, `Content-Range` on 416).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// Adds a response header (dropped if the value is not valid header text).
    pub fn with_header(mut self, name: header::HeaderName, value: &str) -> ApiError {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    /// 405 with the `Allow` header listing what the resource accepts.
    pub fn method_not_allowed(method: &Method, allowed: &[Method]) -> ApiError {
        let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
        let allow = allow.join(", ");
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("method {method} is not allowed here (allowed: {allow})"),
        )
        .with_header(header::ALLOW, &allow)
    }

    /// 416 with `Content-Range: bytes */<size>`, as RFC 9110 asks.
    pub fn range_not_satisfiable(message: impl Into<String>, size: u64) -> ApiError {
        ApiError::new(StatusCode::RANGE_NOT_SATISFIABLE, message)
            .with_header(header::CONTENT_RANGE, &format!("bytes */{size}"))
    }

    /// Load shedding: 429 with `Retry-After`.
    pub fn too_many(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, message)
        }
    }

    /// A node the request depends on is unreachable.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// A failure that is ours, not the client's.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// `bucket "ais://b" does not exist` (404), the text the SDK maps to `ErrBckNotFound`.
    pub fn no_bucket(cname: &str) -> ApiError {
        ApiError::not_found(format!("bucket \"{cname}\" does not exist"))
    }

    /// Maps a storage error for an object `cname` (`ais://b/o`).
    pub fn from_store(err: StoreError, cname: &str) -> ApiError {
        match err {
            StoreError::NotFound => ApiError::not_found(format!("{cname} does not exist")),
            StoreError::Conflict(m) => ApiError::conflict(m),
            StoreError::Corrupt(m) => {
                ApiError::new(StatusCode::GONE, format!("{cname} is corrupted: {m}"))
            }
            StoreError::Invalid(m) => ApiError::bad_request(m),
            StoreError::Missing(m) => ApiError::not_found(m),
            StoreError::Io(e) => ApiError::internal(format!("{cname}: {e}")),
        }
    }
}

impl From<moss_backend::BackendError> for ApiError {
    /// The status of a cloud failure: missing → 404 (also for a provider this node has no
    /// credentials for, as AIStore answers), refused → 403, throttled → 429, a request the cloud
    /// rejects → 400, unreachable or failing → 502.
    fn from(err: moss_backend::BackendError) -> ApiError {
        use moss_backend::BackendError as B;
        match err {
            B::NotFound(m) | B::BucketNotFound(m) | B::NotConfigured(m) => ApiError::not_found(m),
            B::Denied(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            B::Throttled(m) => ApiError::too_many(m),
            B::Invalid(m) => ApiError::bad_request(m),
            B::Unavailable(m) => ApiError::new(StatusCode::BAD_GATEWAY, m),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

/// What an error response says about the request it answers.
#[derive(Debug, Clone)]
pub struct ReqCtx {
    pub method: Method,
    pub path: String,
    pub remote: SocketAddr,
    pub caller: String,
    pub node: String,
}

impl ReqCtx {
    /// The context of `req` from `remote`, answered by node `node`.
    pub fn of(req: &axum::extract::Request, remote: SocketAddr, node: &str) -> ReqCtx {
        ReqCtx {
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            remote,
            caller: header_str(req.headers(), moss_types::headers::CALLER_NAME)
                .unwrap_or("")
                .to_string(),
            node: node.to_string(),
        }
    }
}

/// Renders an error as AIStore does: JSON body (or, for HEAD, the JSON in `Hdr-Error`).
pub fn error_response(err: &ApiError, ctx: &ReqCtx) -> Response {
    if err.status.is_server_error() {
        tracing::warn!(status = err.status.as_u16(), path = %ctx.path, "request failed: {}", err.message);
    } else {
        tracing::debug!(status = err.status.as_u16(), path = %ctx.path, "request rejected: {}", err.message);
    }
    let body = ErrorBody {
        message: err.message.clone(),
        method: ctx.method.to_string(),
        url_path: ctx.path.clone(),
        remote_addr: ctx.remote.to_string(),
        caller: ctx.caller.clone(),
        node: ctx.node.clone(),
        status: err.status.as_u16(),
    };
    let json = serde_json::to_string(&body).unwrap_or_else(|_| err.message.clone());
    let mut response = if ctx.method == Method::HEAD {
        let mut r = Response::new(Body::empty());
        if let Ok(v) = HeaderValue::from_str(&json) {
            r.headers_mut().insert("hdr-error", v);
        }
        r
    } else {
        let mut r = Response::new(Body::from(json));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r
    };
    *response.status_mut() = err.status;
    response.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    for (name, value) in &err.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    if let Some(secs) = err.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}

/// Decoded query parameters (last value wins; `+` is a space).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub raw: String,
    params: HashMap<String, String>,
    /// Parameters in order, for `set-config`.
    pub pairs: Vec<(String, String)>,
}

/// A boolean query value as AIStore parses it (Go's `ParseBool` plus `y`/`yes`/`on`); anything
/// else, or nothing, is false.
pub fn parse_bool(value: &str) -> bool {
    matches!(
        value,
        "1" | "t" | "T" | "true" | "TRUE" | "True" | "y" | "yes" | "on"
    )
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let raw = raw.unwrap_or("");
        let mut query = Query {
            raw: raw.to_string(),
            ..Default::default()
        };
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode_component(&key.replace('+', " "))?;
            let value = decode_component(&value.replace('+', " "))?;
            query.params.insert(key.clone(), value.clone());
            query.pairs.push((key, value));
        }
        Ok(query)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The value of `key`, or "" when absent.
    pub fn str(&self, key: &str) -> &str {
        self.get(key).unwrap_or("")
    }

    pub fn has(&self, key: &str) -> bool {
        self.params.contains_key(key)
    }
}

/// Percent-decodes one URL component, rejecting invalid UTF-8.
pub fn decode_component(raw: &str) -> Result<String, ApiError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ApiError::bad_request(format!("invalid URL encoding in {raw:?}: not UTF-8")))
}

/// Reads a whole request body, refusing more than `limit` bytes with 413. The excess is drained
/// (up to [`ERROR_DRAIN_LIMIT`]) so the client gets to read the 413 instead of a reset.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut collected = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("failed to read request body: {e}")))?;
        if collected.len() + chunk.len() > limit {
            let mut excess = collected.len() + chunk.len() - limit;
            while excess <= ERROR_DRAIN_LIMIT {
                match stream.next().await {
                    Some(Ok(more)) => excess += more.len(),
                    _ => break,
                }
            }
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body exceeds {limit} bytes"),
            ));
        }
        collected.extend_from_slice(&chunk);
    }
    Ok(collected.freeze())
}

/// Bytes of an unread request body discarded before an error response, so the client sees the
/// error instead of a connection reset while it is still sending.
pub const ERROR_DRAIN_LIMIT: usize = 16 << 20;

/// Reads and drops up to `limit` bytes of a body.
pub async fn drain_body(body: Body, limit: usize) {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > limit {
            return;
        }
    }
}

/// Middleware: a response sent before the request body was read to its end gets
/// `Connection: close`. The server drops such a connection (its unread bytes would be taken for the
/// next request), so a client must not pool it; without the header it would, and its next request
/// on that connection fails with a reset or an incomplete message.
pub async fn close_if_body_unread(req: Request, next: axum::middleware::Next) -> Response {
    if http_body::Body::is_end_stream(req.body()) {
        // No body (a plain GET, HEAD): nothing to watch.
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let finished = Arc::new(AtomicBool::new(false));
    let watched = WatchedBody {
        inner: body,
        finished: finished.clone(),
    };
    let mut response = next
        .run(Request::from_parts(parts, Body::new(watched)))
        .await;
    if !finished.load(Ordering::Acquire) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// A request body that records when it has been read to its end.
struct WatchedBody {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A JSON response.
pub fn json_response<T: serde::Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => ApiError::internal(format!("failed to encode response: {e}")).into_plain(),
    }
}

impl ApiError {
    /// A bare response for places without request context.
    pub fn into_plain(self) -> Response {
        (self.status, self.message).into_response()
    }
}

/// A 307 redirect (keeps method and body) to `location`.
pub fn redirect(location: &str) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(location)
        .map_err(|_| ApiError::internal(format!("invalid redirect location {location:?}")))?;
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

/// The value of a header as text, if present and valid.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Splits a request path into segments after `/v1/`; `None` if it does not start with `/v1/`.
pub fn v1_segments(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix("/v1/")?;
    Some(rest.split('/').collect())
}

/// Resolves the bucket named in a URL with its `provider` and `namespace` query parameters.
pub fn url_bucket(name: &str, query: &Query) -> Result<Bck, ApiError> {
    names::validate_bucket_name(name).map_err(ApiError::bad_request)?;
    let provider =
        Provider::parse(query.str(headers::QP_PROVIDER)).map_err(ApiError::bad_request)?;
    let namespace =
        Namespace::parse(query.str(headers::QP_NAMESPACE)).map_err(ApiError::bad_request)?;
    Ok(Bck {
        name: name.to_string(),
        provider,
        namespace,
    })
}

pub use moss_types::names::encode_path;

/// Query string naming a bucket's provider and namespace.
pub fn bucket_query(bck: &Bck) -> String {
    bck.query()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_decode() {
        let q = Query::parse(Some("provider=ais&archpath=x%2F1.txt&archregx=&a+b=c+d")).unwrap();
        assert_eq!(q.get("archpath"), Some("x/1.txt"));
        assert_eq!(q.get("archregx"), Some(""));
        assert_eq!(q.get("a b"), Some("c d"));
        assert!(Query::parse(Some("x=%ff")).is_err());
    }
}
