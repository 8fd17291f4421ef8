//! Remote buckets: the narrow interface a target uses to reach the cloud bucket behind an `s3://`,
//! `gs://` or `az://` bucket, and the registry that builds one per bucket from the node's
//! environment and the bucket's own overrides.
//!
//! Everything above this crate sees [`Backend`] and [`BackendError`] only. The clients themselves
//! are the `object_store` crate's (feature `cloud`, on by default); [`Deadline`] wraps every one so
//! that a cloud that stops answering turns into an error instead of a hang.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use moss_types::{Bck, Provider};

#[cfg(feature = "cloud")]
mod cloud;
mod deadline;
mod env;

pub use deadline::Deadline;
pub use env::CloudEnv;

/// What the cloud says about one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemoteAttrs {
    pub size: u64,
    /// Without quotes.
    pub etag: String,
    /// The provider's version (S3 version id, GCS generation); empty when unversioned.
    pub version: String,
    /// Last modification, unix nanoseconds (0 when unknown).
    pub last_modified_ns: u64,
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEntry {
    pub name: String,
    pub attrs: RemoteAttrs,
}

/// One page of a remote listing, in the cloud's own pagination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub entries: Vec<RemoteEntry>,
    /// Common prefixes (with their trailing `/`) of a non-recursive listing.
    pub dirs: Vec<String>,
    /// The cloud's token for the next page; empty on the last page.
    pub next_token: String,
}

/// A request for one page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListReq {
    pub prefix: String,
    /// The token of the previous page (empty for the first).
    pub token: String,
    /// At most this many entries (0: the provider's maximum).
    pub max: usize,
    /// One level only: deeper names come back as [`ListPage::dirs`].
    pub no_recursion: bool,
}

/// What a bucket HEAD learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketInfo {
    pub versioning: bool,
}

/// An object's bytes as the cloud sends them.
pub type ByteStream = BoxStream<'static, Result<Bytes, BackendError>>;

/// Bytes to upload: a file (the target's work file) of known size, read from the start.
pub struct PutBody {
    pub file: std::fs::File,
    pub size: u64,
}

/// Why a cloud call failed. The texts are AIStore's (`aws-error[NoSuchKey: s3://b/o]`, `aws bucket
/// "s3://b" does not exist`), so the SDK classifies them the way it does for AIStore.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The object is not in the cloud bucket.
    #[error("{0}")]
    NotFound(String),
    /// The cloud bucket does not exist (or this account cannot see it).
    #[error("{0}")]
    BucketNotFound(String),
    /// The cloud refused the credentials or the operation.
    #[error("{0}")]
    Denied(String),
    /// The cloud asks to slow down (429/503 after the client's own retries).
    #[error("{0}")]
    Throttled(String),
    /// This node has no credentials (or no client) for the provider.
    #[error("{0}")]
    NotConfigured(String),
    /// The request cannot succeed as sent (a name the cloud rejects, say).
    #[error("{0}")]
    Invalid(String),
    /// The cloud is unreachable, failed, or stopped answering.
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// One cloud bucket. Object names are the bucket-relative keys, exactly as clients name them.
pub trait Backend: Send + Sync {
    fn bucket(&self) -> &Bck;
    /// Checks that the bucket exists and is reachable with this node's credentials.
    fn head_bucket(&self) -> BoxFuture<'_, Result<BucketInfo>>;
    fn list_page<'a>(&'a self, req: &'a ListReq) -> BoxFuture<'a, Result<ListPage>>;
    fn head<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<RemoteAttrs>>;
    /// The whole object: its attributes first, then its bytes.
    fn get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(RemoteAttrs, ByteStream)>>;
    /// Uploads `body` as the object (multipart when large); returns what the cloud now holds.
    fn put<'a>(&'a self, name: &'a str, body: PutBody) -> BoxFuture<'a, Result<RemoteAttrs>>;
    fn delete<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<()>>;
}

/// Per-bucket overrides of the node's environment (AIStore's `extra.aws.*` bucket props).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Overrides {
    pub endpoint: String,
    pub region: String,
}

/// How long a cloud call may go without progress before it fails.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// A whole control call (HEAD, list page, delete) and the wait for a GET's first byte.
    pub call: Duration,
    /// The longest gap between two chunks of a GET body, and the time per MiB an upload may take
    /// beyond [`Timeouts::call`].
    pub stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            call: Duration::from_secs(30),
            stall: Duration::from_secs(30),
        }
    }
}

/// The backends of one node: built on first use per bucket and kept.
pub struct Backends {
    #[cfg_attr(not(feature = "cloud"), allow(dead_code))]
    env: CloudEnv,
    timeouts: Timeouts,
    built: Mutex<HashMap<(Bck, Overrides), Arc<dyn Backend>>>,
}

impl Backends {
    /// Backends configured from this process's environment (read once, now).
    pub fn from_env() -> Backends {
        Backends::new(CloudEnv::from_process(), Timeouts::default())
    }

    pub fn new(env: CloudEnv, timeouts: Timeouts) -> Backends {
        Backends {
            env,
            timeouts,
            built: Mutex::new(HashMap::new()),
        }
    }

    /// The backend of a remote bucket.
    pub fn for_bucket(&self, bck: &Bck, overrides: &Overrides) -> Result<Arc<dyn Backend>> {
        if bck.provider == Provider::Ais {
            return Err(BackendError::Invalid(format!(
                "{} is not a remote bucket",
                bck.cname()
            )));
        }
        let key = (bck.clone(), overrides.clone());
        let mut built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(backend) = built.get(&key) {
            return Ok(backend.clone());
        }
        let backend: Arc<dyn Backend> =
            Arc::new(Deadline::new(self.build(bck, overrides)?, self.timeouts));
        built.insert(key, backend.clone());
        Ok(backend)
    }

    #[cfg(feature = "cloud")]
    fn build(&self, bck: &Bck, overrides: &Overrides) -> Result<Box<dyn Backend>> {
        cloud::build(&self.env, bck, overrides, self.timeouts)
    }

    #[cfg(not(feature = "cloud"))]
    fn build(&self, bck: &Bck, _overrides: &Overrides) -> Result<Box<dyn Backend>> {
        let _ = self.timeouts;
        Err(BackendError::NotConfigured(format!(
            "failed to lookup bucket {}, err: this moss build has no cloud backends (feature \"cloud\")",
            bck.cname()
        )))
    }
}

/// AIStore's prefix for a provider's error texts (`aws-error[…]`).
pub fn error_tag(provider: Provider) -> &'static str {
    match provider {
        Provider::Aws => "aws-error",
        Provider::Gcp => "gcp-error",
        Provider::Azure => "azure-error",
        Provider::Oci => "oci-error",
        Provider::Ais => "ais-error",
    }
}

/// `aws bucket "s3://b" does not exist`
pub fn no_bucket_text(bck: &Bck) -> String {
    format!(
        "{} bucket \"{}\" does not exist",
        bck.provider.as_str(),
        bck.cname()
    )
}

/// `aws-error[NotFound: s3://b/o]`
pub fn no_object_text(bck: &Bck, name: &str) -> String {
    format!(
        "{}[NotFound: {}/{}]",
        error_tag(bck.provider),
        bck.cname(),
        name
    )
}
