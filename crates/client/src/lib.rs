//! An async client for moss (and AIStore-compatible clusters): buckets, objects, listing,
//! cluster map and configuration, GetBatch statistics, and GetBatch itself with incremental
//! decoding of the returned archive.
//!
//! ```no_run
//! # async fn demo() -> moss_client::Result<()> {
//! use futures::TryStreamExt;
//! use moss_types::moss::{MossIn, MossReq};
//!
//! let client = moss_client::Client::new("http://127.0.0.1:8080")?;
//! client.create_bucket("b").await?;
//! client.put_bytes("b", "a.txt", "hello").await?;
//! let req = MossReq {
//!     entries: vec![MossIn { objname: "a.txt".into(), ..Default::default() }],
//!     strm: true,
//!     ..Default::default()
//! };
//! let items: Vec<_> = client.batch(req, Some("b")).try_collect().await?;
//! assert_eq!(&items[0].data[..], b"hello");
//! # Ok(()) }
//! ```
//!
//! Calls that the cluster's proxy answers with `307` (object calls and GetBatch) are followed by
//! hand, re-sending method and body. Object PUTs locate the owning target first and send the
//! data only there.
mod batch;
mod buckets;
mod cluster;
mod error;
mod http;
mod jobs;
mod multipart;
mod objects;

pub use batch::multipart::{MultipartEvent, MultipartSplitter, PartHeaders};
pub use batch::plan::{BatchPlan, STREAMED_MISSING, split_archpath};
pub use batch::{BatchArchive, BatchItem, BatchStream, BatchSummary, ByteStream};
pub use buckets::ListOptions;
pub use cluster::GetBatchStats;
pub use error::{Error, Result};
pub use jobs::{ArchiveOptions, CopyOptions, JobOutcome, JobSnaps, snap_bucket};
pub use multipart::{FilePart, MultipartOptions};
pub use objects::{GetOptions, ObjectProps, ObjectStream};

use std::time::Duration;

/// Files at most this large are uploaded from memory; larger ones are streamed from disk.
pub const SMALL_FILE_LIMIT: u64 = 8 << 20;

/// A handle to one cluster endpoint (the proxy). Cheap to clone; clones share connections.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// How a client checks the certificates of an `https://` cluster.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// The system's roots.
    #[default]
    System,
    /// Only the certificates of this PEM file (a cluster's CA, or its self-signed certificate).
    CaFile(std::path::PathBuf),
    /// No verification at all: anyone on the path can read and change the traffic.
    SkipVerify,
}

impl Trust {
    /// What the AIStore SDK and CLI read: `AIS_SKIP_VERIFY_CRT=true` (or `1`) skips verification,
    /// else `AIS_CLIENT_CA` names a CA file, else the system's roots.
    pub fn from_env() -> Trust {
        let skip = std::env::var("AIS_SKIP_VERIFY_CRT")
            .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"));
        if skip {
            return Trust::SkipVerify;
        }
        match std::env::var_os("AIS_CLIENT_CA") {
            Some(path) if !path.is_empty() => Trust::CaFile(path.into()),
            _ => Trust::System,
        }
    }
}

impl Client {
    /// A client for `endpoint` (`http://host:port` or `https://host:port`; a bare `host:port`
    /// means `http://`) that trusts the system's roots. Sends nothing until the first call.
    pub fn new(endpoint: &str) -> Result<Client> {
        Client::with_trust(endpoint, &Trust::System)
    }

    /// A client for `endpoint` that checks an https cluster's certificate as `trust` says.
    pub fn with_trust(endpoint: &str, trust: &Trust) -> Result<Client> {
        let base = normalize_endpoint(endpoint)?;
        // TLS (when a URL is https) uses rustls with ring; installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = reqwest::Client::builder()
            // Redirects are followed by `http::execute`, which knows which bodies can be re-sent.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            // A gap this long inside a response means the server is stuck; GetBatch waits for
            // senders at most `get_batch.max_wait` (20 s by default) between items.
            .read_timeout(Duration::from_secs(300))
            // Below the nodes' idle timeout (20 s), so a pooled connection is never one the
            // server is closing.
            .pool_idle_timeout(Duration::from_secs(10));
        let builder = match trust {
            Trust::System => builder,
            Trust::SkipVerify => builder.tls_danger_accept_invalid_certs(true),
            Trust::CaFile(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    Error::InvalidRequest(format!("read CA file {}: {e}", path.display()))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| Error::transport("parse CA file", e))?;
                if certs.is_empty() {
                    return Err(Error::InvalidRequest(format!(
                        "no PEM certificate in CA file {}",
                        path.display()
                    )));
                }
                builder.tls_certs_only(certs)
            }
        };
        let http = builder
            .build()
            .map_err(|e| Error::transport("build http client", e))?;
        Ok(Client { base, http })
    }

    /// The endpoint this client talks to, without a trailing `/`.
    pub fn endpoint(&self) -> &str {
        &self.base
    }
}

fn normalize_endpoint(endpoint: &str) -> Result<String> {
    let trimmed = endpoint.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return Err(Error::InvalidRequest("empty endpoint".to_string()));
    }
    let with_scheme = if trimmed.contains("://") {
        trimmed.to_string()
    } else {
        format!("http://{trimmed}")
    };
    let url = reqwest::Url::parse(&with_scheme)
        .map_err(|e| Error::InvalidRequest(format!("invalid endpoint {endpoint:?}: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::InvalidRequest(format!(
            "invalid endpoint {endpoint:?}: unsupported scheme {:?}",
            url.scheme()
        )));
    }
    if url.path() != "/" {
        return Err(Error::InvalidRequest(format!(
            "invalid endpoint {endpoint:?}: must not have a path"
        )));
    }
    Ok(with_scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_normalize() {
        assert_eq!(
            normalize_endpoint("http://127.0.0.1:8080/").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_endpoint("localhost:9").unwrap(),
            "http://localhost:9"
        );
        assert_eq!(normalize_endpoint("https://h:1/").unwrap(), "https://h:1");
        assert!(normalize_endpoint("ftp://h:1").is_err());
        assert!(normalize_endpoint("http://h:1/v1").is_err());
        assert!(normalize_endpoint("").is_err());
    }
}
