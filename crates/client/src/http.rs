//! Request plumbing: URL building, redirect following with body re-send, and turning error
//! answers into [`Error::Http`].
use std::time::Duration;

use bytes::Bytes;
use moss_types::ErrorBody;
use moss_types::names::{encode_path, encode_query_value};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Response, StatusCode};
use serde::de::DeserializeOwned;

use crate::Client;
use crate::error::{Error, Result};

/// Redirect hops followed before giving up (the proxy → target path needs one).
const MAX_REDIRECTS: usize = 8;

/// Longest error body text kept in a message.
const MAX_ERROR_TEXT: usize = 2000;

/// One request that may be sent several times (once per redirect hop).
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub method: Method,
    pub url: String,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

impl Call {
    pub fn new(method: Method, url: String) -> Call {
        Call {
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
        }
    }

    /// A JSON body (GET bodies included: AIStore reads them).
    pub fn json<T: serde::Serialize>(mut self, value: &T) -> Result<Call> {
        let body = serde_json::to_vec(value)
            .map_err(|e| Error::InvalidRequest(format!("cannot encode request: {e}")))?;
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self.body = Some(Bytes::from(body));
        Ok(self)
    }

    pub fn body(mut self, body: Bytes) -> Call {
        self.body = Some(body);
        self
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Call {
        self.headers.insert(name, value);
        self
    }

    /// `METHOD /path` for error messages (the host is the same for every call).
    pub fn describe(&self) -> String {
        describe(&self.method, &self.url)
    }
}

pub(crate) fn describe(method: &Method, url: &str) -> String {
    let path = reqwest::Url::parse(url)
        .map(|u| u.path().to_string())
        .unwrap_or_else(|_| url.to_string());
    format!("{method} {path}")
}

impl Client {
    /// `<endpoint>/v1/<path>?<query>`; `path` is already encoded, query values are encoded here.
    pub(crate) fn url(&self, path: &str, query: &[(&str, &str)]) -> String {
        let mut url = format!("{}/v1/{}", self.base, path);
        for (i, (key, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(key);
            url.push('=');
            url.push_str(&encode_query_value(value));
        }
        url
    }

    /// URL of a bucket call (`/v1/buckets/<b>?provider=ais`; `s3://b` names a remote bucket).
    pub(crate) fn bucket_url(&self, bucket: &str, extra: &[(&str, &str)]) -> String {
        let (name, provider) = bucket_parts(bucket);
        let mut query = vec![("provider", provider)];
        query.extend_from_slice(extra);
        self.url(&format!("buckets/{}", encode_path(name)), &query)
    }

    /// URL of an object call (`/v1/objects/<b>/<obj>?provider=ais`), `/` kept in the name.
    pub(crate) fn object_url(&self, bucket: &str, objname: &str, extra: &[(&str, &str)]) -> String {
        let (name, provider) = bucket_parts(bucket);
        let mut query = vec![("provider", provider)];
        query.extend_from_slice(extra);
        self.url(
            &format!("objects/{}/{}", encode_path(name), encode_path(objname)),
            &query,
        )
    }

    /// Sends `call`, following 307/308 redirects with the same method and body. Returns the
    /// first non-redirect response if it is a success, else its error.
    pub(crate) async fn execute(&self, call: Call) -> Result<Response> {
        let response = self.send_following(call).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(error_from_response(response).await)
    }

    /// Like [`Client::execute`] but hands back any final response, errors included.
    pub(crate) async fn send_following(&self, mut call: Call) -> Result<Response> {
        for _ in 0..=MAX_REDIRECTS {
            let response = self.send_once(&call).await?;
            let status = response.status();
            if status != StatusCode::TEMPORARY_REDIRECT && status != StatusCode::PERMANENT_REDIRECT
            {
                return Ok(response);
            }
            call.url = redirect_target(&call.url, &response)?;
        }
        Err(Error::decode(
            call.describe(),
            format!("more than {MAX_REDIRECTS} redirects"),
        ))
    }

    /// One hop, no redirect handling.
    pub(crate) async fn send_once(&self, call: &Call) -> Result<Response> {
        let mut request = self
            .http
            .request(call.method.clone(), &call.url)
            .headers(call.headers.clone());
        if let Some(body) = &call.body {
            request = request.body(body.clone());
        }
        request
            .send()
            .await
            .map_err(|e| Error::transport(call.describe(), e))
    }

    /// Executes `call` and decodes a JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<T> {
        let what = call.describe();
        let response = self.execute(call).await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::transport(what.clone(), e))?;
        serde_json::from_slice(&body).map_err(|e| Error::decode(what, e))
    }

    /// Executes `call` and discards the (small) answer body.
    pub(crate) async fn unit(&self, call: Call) -> Result<()> {
        let what = call.describe();
        let response = self.execute(call).await?;
        response
            .bytes()
            .await
            .map_err(|e| Error::transport(what, e))?;
        Ok(())
    }
}

/// The absolute URL a redirect points to.
pub(crate) fn redirect_target(current: &str, response: &Response) -> Result<String> {
    let what = describe(&Method::GET, current);
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::decode(what.clone(), "redirect without a Location header"))?;
    let base = reqwest::Url::parse(current).map_err(|e| Error::decode(what.clone(), e))?;
    let next = base
        .join(location)
        .map_err(|e| Error::decode(what, format!("bad redirect location {location:?}: {e}")))?;
    Ok(next.to_string())
}

/// Builds [`Error::Http`] from an error response: the JSON `message` of AIStore's error body
/// (from the body, or from the `Hdr-Error` header of a HEAD answer), else the body text, else
/// the status reason.
pub(crate) async fn error_from_response(response: Response) -> Error {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let header_text = response
        .headers()
        .get("hdr-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    // A broken error body still leaves the status to report.
    let body = response.bytes().await.unwrap_or_default();
    let message = error_message(status, &body, header_text.as_deref());
    Error::Http {
        status: status.as_u16(),
        message,
        retry_after,
    }
}

pub(crate) fn error_message(status: StatusCode, body: &[u8], header_text: Option<&str>) -> String {
    let from_json = |bytes: &[u8]| {
        serde_json::from_slice::<ErrorBody>(bytes)
            .ok()
            .map(|e| e.message)
            .filter(|m| !m.is_empty())
    };
    if let Some(message) = from_json(body) {
        return message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if !text.is_empty() {
        return truncate(text);
    }
    if let Some(header_text) = header_text {
        if let Some(message) = from_json(header_text.as_bytes()) {
            return message;
        }
        if !header_text.trim().is_empty() {
            return truncate(header_text.trim());
        }
    }
    status
        .canonical_reason()
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| format!("http status {}", status.as_u16()))
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_string();
    }
    let mut end = MAX_ERROR_TEXT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// The bucket a client argument names (see [`bucket_parts`]).
pub fn bck_of(bucket: &str) -> moss_types::Bck {
    let (name, provider) = bucket_parts(bucket);
    moss_types::Bck {
        name: name.to_string(),
        provider: moss_types::Provider::parse(provider).unwrap_or(moss_types::Provider::Ais),
        namespace: Default::default(),
    }
}

/// A bucket as the client's calls take it — `b` (an ais bucket) or `<scheme>://b` for a remote
/// one (`s3://`, `gs://`, `az://`, also `aws://`, `gcp://`, `azure://`) — split into its name
/// and the provider's normalized name. An unknown scheme is passed on for the server to refuse.
pub fn bucket_parts(bucket: &str) -> (&str, &str) {
    let Some((scheme, name)) = bucket.split_once("://") else {
        return (bucket, "ais");
    };
    let provider = match moss_types::Provider::parse(scheme) {
        Ok(p) => p.as_str(),
        Err(_) => scheme,
    };
    (name, provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_prefer_json_then_text_then_reason() {
        let json = br#"{"message":"bucket \"ais://x\" does not exist","status":404}"#;
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, json, None),
            "bucket \"ais://x\" does not exist"
        );
        assert_eq!(
            error_message(StatusCode::BAD_REQUEST, b"  plain text\n", None),
            "plain text"
        );
        let header = r#"{"message":"ais://b/o does not exist"}"#;
        assert_eq!(
            error_message(StatusCode::NOT_FOUND, b"", Some(header)),
            "ais://b/o does not exist"
        );
        assert_eq!(error_message(StatusCode::NOT_FOUND, b"", None), "not found");
        let long = "x".repeat(5000);
        assert!(error_message(StatusCode::BAD_REQUEST, long.as_bytes(), None).len() < 2100);
    }

    #[test]
    fn urls_encode_names() {
        let client = Client::new("http://h:1").unwrap();
        assert_eq!(
            client.object_url("b", "dir/a b?.txt", &[("archpath", "x/1 2")]),
            "http://h:1/v1/objects/b/dir/a%20b%3F.txt?provider=ais&archpath=x%2F1%202"
        );
        assert_eq!(
            client.bucket_url("b", &[]),
            "http://h:1/v1/buckets/b?provider=ais"
        );
    }
}
