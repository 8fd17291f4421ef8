//! Test support: real clusters on loopback ports — in-process ([`ClusterSandbox`]) or as separate
//! `moss` processes ([`ProcessNode`]) — and helpers to talk to them and read what they return.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod clouds;
mod process;
mod sandbox;

pub use process::{ProcessNode, TestTls, free_port};
pub use sandbox::{ClusterSandbox, SandboxBuilder};

use bytes::Bytes;

/// An HTTP client that follows redirects (as `curl -L` and the SDK do).
pub fn http() -> reqwest::Client {
    // TLS (when a URL is https) uses rustls with ring; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .pool_idle_timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An HTTP client that follows redirects and trusts only the certificates of the PEM file `ca`.
pub fn https_with_ca(ca: &std::path::Path) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = reqwest::Certificate::from_pem_bundle(&std::fs::read(ca).unwrap()).unwrap();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .pool_idle_timeout(std::time::Duration::from_secs(10))
        .tls_certs_only(certs)
        .build()
        .unwrap()
}

/// An HTTP client that does not follow redirects.
pub fn http_no_redirect() -> reqwest::Client {
    // TLS (when a URL is https) uses rustls with ring; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap()
}

/// A tiny cluster client for tests.
#[derive(Clone)]
pub struct Api {
    pub endpoint: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(endpoint: &str) -> Api {
        Api {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            http: http(),
        }
    }

    /// A client of an https cluster whose certificates chain to the PEM file `ca`.
    pub fn with_ca(endpoint: &str, ca: &std::path::Path) -> Api {
        Api {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            http: https_with_ca(ca),
        }
    }

    pub async fn create_bucket(&self, name: &str) {
        let r = self
            .http
            .post(format!("{}/v1/buckets/{name}?provider=ais", self.endpoint))
            .body(r#"{"action":"create-bck"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "create bucket {name}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    pub fn object_url(&self, bucket: &str, objname: &str) -> String {
        format!(
            "{}/v1/objects/{bucket}/{}?provider=ais",
            self.endpoint,
            moss_types::names::encode_path(objname)
        )
    }

    pub async fn put(&self, bucket: &str, objname: &str, data: impl Into<reqwest::Body>) {
        let r = self
            .http
            .put(self.object_url(bucket, objname))
            .body(data)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "put {bucket}/{objname}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    /// PUTs many objects with bounded concurrency.
    pub async fn put_many(&self, bucket: &str, objects: Vec<(String, Vec<u8>)>) {
        let mut tasks = tokio::task::JoinSet::new();
        let limit = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
        for (name, data) in objects {
            let api = self.clone();
            let bucket = bucket.to_string();
            let permit = limit.clone().acquire_owned().await.unwrap();
            tasks.spawn(async move {
                api.put(&bucket, &name, data).await;
                drop(permit);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
    }

    pub async fn get(&self, bucket: &str, objname: &str) -> reqwest::Response {
        self.http
            .get(self.object_url(bucket, objname))
            .send()
            .await
            .unwrap()
    }

    pub async fn get_bytes(&self, bucket: &str, objname: &str) -> Bytes {
        let r = self.get(bucket, objname).await;
        assert_eq!(r.status(), 200, "get {bucket}/{objname}");
        r.bytes().await.unwrap()
    }

    /// Sends a GetBatch request (JSON body) with `GET`, following the redirect.
    pub async fn batch(
        &self,
        path_bucket: Option<&str>,
        body: &serde_json::Value,
    ) -> reqwest::Response {
        let url = match path_bucket {
            Some(b) => format!("{}/v1/ml/moss/{b}?provider=ais", self.endpoint),
            None => format!("{}/v1/ml/moss", self.endpoint),
        };
        self.http.get(url).json(body).send().await.unwrap()
    }

    pub async fn set_config(&self, key: &str, value: &str) {
        let r = self
            .http
            .put(format!(
                "{}/v1/cluster/set-config?{key}={value}",
                self.endpoint
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "set {key}={value}: {}",
            r.text().await.unwrap_or_default()
        );
    }

    pub async fn smap(&self) -> moss_types::smap::Smap {
        self.http
            .get(format!("{}/v1/daemon?what=smap", self.endpoint))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// Entries of a TAR archive: (name, bytes), in order.
pub fn read_tar(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut archive = tar::Archive::new(data);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((name, bytes));
    }
    out
}

/// Splits a buffered GetBatch response (`multipart/mixed`) into its metadata and archive parts.
pub fn split_multipart(content_type: &str, body: &[u8]) -> (moss_types::moss::MossResp, Vec<u8>) {
    let boundary = content_type
        .split("boundary=")
        .nth(1)
        .expect("no boundary")
        .trim_matches('"');
    let delimiter = format!("--{boundary}");
    let parts: Vec<&[u8]> = split_bytes(body, delimiter.as_bytes());
    // parts: preamble, metadata part, archive part, closing "--\r\n"
    assert!(parts.len() >= 4, "multipart with {} parts", parts.len());
    let payload = |part: &[u8]| -> Vec<u8> {
        let start = find(part, b"\r\n\r\n").expect("part headers") + 4;
        let mut body = part[start..].to_vec();
        if body.ends_with(b"\r\n") {
            body.truncate(body.len() - 2);
        }
        body
    };
    let meta: moss_types::moss::MossResp = serde_json::from_slice(&payload(parts[1])).unwrap();
    (meta, payload(parts[2]))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn split_bytes<'a>(mut hay: &'a [u8], delimiter: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    while let Some(at) = find(hay, delimiter) {
        out.push(&hay[..at]);
        hay = &hay[at + delimiter.len()..];
    }
    out.push(hay);
    out
}

/// Deterministic pseudo-random bytes.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Sends a request with the path exactly as given (no client-side normalization of `..`) and
/// returns (status, body).
pub async fn raw_request(endpoint: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

/// Routes server logs to the test output (`RUST_LOG` filters; warnings by default).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
