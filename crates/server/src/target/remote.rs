//! Remote buckets on a target: cold GET (one fetch per object however many readers want it at
//! once, streamed to the first reader while it is written), warm-GET validation against the
//! cloud, write-through PUT, DELETE in the cloud, and the cold-GET hook GetBatch reads through.
//!
//! A cold GET writes into a work file and commits only a complete object (size checked against
//! the cloud's): a fetch that fails half way leaves nothing in the store, and the reader being
//! streamed to sees its transfer cut short. The fetch runs in its own task, so a reader that goes
//! away does not stop it: the object still ends up cached, as in AIStore.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use moss_backend::{Backend, BackendError, PutBody, RemoteAttrs};
use moss_getbatch::item::{ItemError, MissingFill};
use moss_storage::{ObjMeta, StoreError};
use moss_types::{Bck, Provider, headers};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use super::Target;
use crate::http::{ApiError, Query};

/// Cold GETs one target runs at once (more wait their turn).
const COLD_GETS: usize = 32;

/// Custom-metadata keys a cold GET or write-through PUT records (AIStore's names).
pub const MD_SOURCE: &str = "source";
pub const MD_ETAG: &str = "ETag";
pub const MD_VERSION: &str = "version";
pub const MD_LAST_MODIFIED: &str = "Last-Modified";

type Outcome = Option<Result<(), ApiError>>;

/// The cold GETs in flight on one target.
pub struct Cold {
    flights: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    slots: Arc<Semaphore>,
}

impl Default for Cold {
    fn default() -> Cold {
        Cold {
            flights: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(COLD_GETS)),
        }
    }
}

enum Role {
    /// This caller fetches; it reports the outcome through the sender.
    Lead(Flight),
    /// Another caller fetches; the outcome arrives here.
    Follow(watch::Receiver<Outcome>),
}

/// The right to fetch one object. Dropping it without [`Flight::finish`] reports a failure, so
/// followers never wait forever.
struct Flight {
    target: Arc<Target>,
    key: String,
    tx: Option<watch::Sender<Outcome>>,
}

impl Flight {
    fn finish(mut self, outcome: Result<(), ApiError>) {
        self.report(outcome);
    }

    fn report(&mut self, outcome: Result<(), ApiError>) {
        let Some(tx) = self.tx.take() else { return };
        self.target
            .cold
            .flights
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        let _ = tx.send(Some(outcome));
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.report(Err(ApiError::internal("cold GET ended without a result")));
    }
}

fn join(target: &Arc<Target>, bck: &Bck, name: &str) -> Role {
    let key = format!("{}{name}", bck.uname_prefix());
    let mut flights = target
        .cold
        .flights
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(rx) = flights.get(&key) {
        return Role::Follow(rx.clone());
    }
    let (tx, rx) = watch::channel(None);
    flights.insert(key.clone(), rx);
    Role::Lead(Flight {
        target: target.clone(),
        key,
        tx: Some(tx),
    })
}

async fn outcome(mut rx: watch::Receiver<Outcome>) -> Result<(), ApiError> {
    match rx.wait_for(Option::is_some).await {
        Ok(done) => done.clone().unwrap_or(Ok(())),
        Err(_) => Err(ApiError::internal("cold GET ended without a result")),
    }
}

/// The client of the cloud bucket behind `bck`.
pub fn backend(target: &Target, bck: &Bck) -> Result<Arc<dyn Backend>, ApiError> {
    target.shared.backend(bck)
}

/// What a cached copy records about its cloud original.
fn remote_custom(provider: Provider, attrs: &RemoteAttrs) -> BTreeMap<String, String> {
    let mut md = BTreeMap::new();
    md.insert(MD_SOURCE.to_string(), provider.as_str().to_string());
    if !attrs.etag.is_empty() {
        md.insert(MD_ETAG.to_string(), attrs.etag.clone());
    }
    if !attrs.version.is_empty() {
        md.insert(MD_VERSION.to_string(), attrs.version.clone());
    }
    if attrs.last_modified_ns > 0 {
        md.insert(
            MD_LAST_MODIFIED.to_string(),
            http_date(attrs.last_modified_ns),
        );
    }
    md
}

/// RFC 1123 (`Mon, 02 Jan 2006 15:04:05 GMT`), as HTTP's `Last-Modified`.
pub fn http_date(unix_ns: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns);
    httpdate::fmt_http_date(time)
}

/// True when the cached copy is the cloud's current object: same size and, where both sides have
/// one, the same version and ETag (at least one of them compared).
pub(crate) fn same_object(local: &ObjMeta, remote: &RemoteAttrs) -> bool {
    if local.size != remote.size {
        return false;
    }
    let pairs = [
        (local.custom.get(MD_VERSION), &remote.version),
        (local.custom.get(MD_ETAG), &remote.etag),
    ];
    let mut compared = 0;
    for (mine, theirs) in pairs {
        if let Some(mine) = mine
            && !theirs.is_empty()
        {
            if mine != theirs {
                return false;
            }
            compared += 1;
        }
    }
    compared > 0
}

/// Fetches the object from the cloud into the store, sending its attributes (once the cloud
/// answered) and its bytes (as they arrive) to whoever streams it to a reader.
async fn fill(
    target: &Arc<Target>,
    bck: &Bck,
    name: &str,
    attrs_tx: Option<oneshot::Sender<RemoteAttrs>>,
    tee: Option<mpsc::Sender<Result<Bytes, std::io::Error>>>,
) -> Result<(), ApiError> {
    let _slot = target
        .cold
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::unavailable("node is shutting down"))?;
    let backend = backend(target, bck)?;
    let (attrs, body) = backend.get(name).await?;
    let custom = remote_custom(bck.provider, &attrs);
    if let Some(tx) = attrs_tx {
        let _ = tx.send(attrs.clone());
    }
    let expected = attrs.size;
    // The reader gets every chunk as it arrives except the last, which it gets once the object
    // is committed: a reader that has the whole object can read it back (and a failed commit
    // leaves it a transfer cut short).
    let held: Arc<Mutex<Option<Bytes>>> = Arc::default();
    let (last_tee, last) = (tee.clone(), held.clone());
    let body = body.then(move |item| {
        let (tee, held) = (tee.clone(), held.clone());
        async move {
            if let Some(tee) = &tee {
                // A reader that went away does not stop the fetch.
                let send = match &item {
                    Ok(bytes) => held
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .replace(bytes.clone())
                        .map(Ok),
                    Err(e) => Some(Err(std::io::Error::other(e.to_string()))),
                };
                if let Some(send) = send {
                    let _ = tee.send(send).await;
                }
            }
            item.map_err(|e| e.to_string())
        }
    });
    let txn =
        super::objects::spool(target.store.clone(), bck.clone(), name.to_string(), body).await?;
    if txn.size() != expected {
        return Err(ApiError::new(
            axum::http::StatusCode::BAD_GATEWAY,
            format!(
                "cold GET {}/{name}: the cloud sent {} of {expected} bytes",
                bck.cname(),
                txn.size()
            ),
        ));
    }
    let meta = tokio::task::spawn_blocking(move || txn.commit(custom))
        .await
        .map_err(|e| ApiError::internal(format!("write task failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, &format!("{}/{name}", bck.cname())))?;
    crate::metrics::inc(&target.metrics.put_bytes, meta.size);
    tracing::debug!(object = %format!("{}/{name}", bck.cname()), size = meta.size, "cold GET");
    let last = last.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let (Some(tee), Some(last)) = (last_tee, last) {
        let _ = tee.send(Ok(last)).await;
    }
    Ok(())
}

/// Fetches the object from the cloud into the store (also over a cached copy), once however many
/// callers ask at the same time.
pub async fn ensure_cached(target: &Arc<Target>, bck: &Bck, name: &str) -> Result<(), ApiError> {
    match join(target, bck, name) {
        Role::Follow(rx) => outcome(rx).await,
        Role::Lead(flight) => lead(target, bck, name, flight).await,
    }
}

/// Runs the fetch this caller leads, in its own task (it completes, and caches, even if the
/// caller goes away), and waits for it.
async fn lead(target: &Arc<Target>, bck: &Bck, name: &str, flight: Flight) -> Result<(), ApiError> {
    let (t, b, n) = (target.clone(), bck.clone(), name.to_string());
    let task = tokio::spawn(async move {
        let result = fill(&t, &b, &n, None, None).await;
        flight.finish(result.clone());
        result
    });
    task.await
        .unwrap_or_else(|e| Err(ApiError::internal(format!("cold GET failed: {e}"))))
}

/// Whether a warm read must first compare with the cloud (`?latest-ver=true`, or the bucket's
/// `versioning.validate_warm_get`/`synchronize`), and whether a copy the cloud lost is removed.
fn latest_wanted(target: &Target, bck: &Bck, query: &Query) -> (bool, bool) {
    let asked = crate::http::parse_bool(query.str("latest-ver"));
    let bmd = target.shared.bmd.load();
    let v = bmd
        .get(bck)
        .map(|p| p.versioning.clone())
        .unwrap_or_default();
    (asked || v.validate_warm_get || v.synchronize, v.synchronize)
}

/// GET of an object in a remote bucket, before the local read: answers a cold GET itself
/// (streaming), or returns `None` once the store holds the current object.
pub async fn get(
    target: &Arc<Target>,
    bck: &Bck,
    name: &str,
    query: &Query,
    plain: bool,
) -> Result<Option<Response>, ApiError> {
    let store = target.store.clone();
    let (b, n) = (bck.clone(), name.to_string());
    let local = tokio::task::spawn_blocking(move || store.open_object(&b, &n).map(|h| h.meta))
        .await
        .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?;
    let mut changed = None;
    match local {
        Ok(meta) => {
            let (latest, synchronize) = latest_wanted(target, bck, query);
            if !latest {
                return Ok(None);
            }
            match backend(target, bck)?.head(name).await {
                Ok(remote) if same_object(&meta, &remote) => return Ok(None),
                Ok(remote) => changed = Some(remote),
                Err(BackendError::NotFound(m)) => {
                    if synchronize {
                        let store = target.store.clone();
                        let (b, n) = (bck.clone(), name.to_string());
                        let _ = tokio::task::spawn_blocking(move || store.delete(&b, &n)).await;
                    }
                    return Err(ApiError::not_found(m));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(ApiError::from_store(e, &format!("{}/{name}", bck.cname()))),
    }
    // A fetch already in flight may have started before the cloud's object changed; after
    // following one, a reader that knows what the cloud holds checks that it got that.
    let wanted = changed;
    for _ in 0..FOLLOW_ROUNDS {
        match join(target, bck, name) {
            Role::Lead(flight) if plain => {
                return stream_cold(target, bck, name, flight).await.map(Some);
            }
            Role::Lead(flight) => return lead(target, bck, name, flight).await.map(|()| None),
            Role::Follow(rx) => {
                outcome(rx).await?;
                let Some(want) = &wanted else { return Ok(None) };
                let store = target.store.clone();
                let (b, n) = (bck.clone(), name.to_string());
                let now =
                    tokio::task::spawn_blocking(move || store.open_object(&b, &n).map(|h| h.meta))
                        .await
                        .map_err(|e| ApiError::internal(format!("read task failed: {e}")))?;
                if now.is_ok_and(|meta| same_object(&meta, want)) {
                    return Ok(None);
                }
            }
        }
    }
    Err(ApiError::conflict(format!(
        "{}/{name} keeps changing in the cloud while it is fetched; retry",
        bck.cname()
    )))
}

/// How many fetches by others a reader follows before it gives up on getting the current object.
const FOLLOW_ROUNDS: usize = 4;

/// The first reader of a cold object: the fetch streams to it while it is written.
async fn stream_cold(
    target: &Arc<Target>,
    bck: &Bck,
    name: &str,
    flight: Flight,
) -> Result<Response, ApiError> {
    let rx = target
        .cold
        .flights
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&flight.key)
        .cloned();
    let (attrs_tx, attrs_rx) = oneshot::channel();
    let (tee_tx, tee_rx) = mpsc::channel(8);
    let (t, b, n) = (target.clone(), bck.clone(), name.to_string());
    tokio::spawn(async move {
        let result = fill(&t, &b, &n, Some(attrs_tx), Some(tee_tx)).await;
        if let Err(e) = &result {
            tracing::warn!("cold GET {}/{n} failed: {}", b.cname(), e.message);
        }
        flight.finish(result);
    });
    let attrs = match attrs_rx.await {
        Ok(attrs) => attrs,
        // The fetch failed before the cloud answered: its outcome says why.
        Err(_) => {
            let failed = match rx {
                Some(rx) => outcome(rx).await,
                None => Err(ApiError::internal("cold GET ended without a result")),
            };
            return Err(failed.err().unwrap_or_else(|| {
                ApiError::internal("cold GET ended without the object's attributes")
            }));
        }
    };
    crate::metrics::inc(&target.metrics.get_count, 1);
    crate::metrics::inc(&target.metrics.get_bytes, attrs.size);
    let mut response = Response::new(Body::from_stream(super::objects::tokio_stream(tee_rx)));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(attrs.size));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    set_remote_headers(h, &attrs);
    Ok(response)
}

/// `ETag` (unquoted, as AIStore sends it for cloud objects) and `Ais-Version`.
pub fn set_remote_headers(h: &mut HeaderMap, attrs: &RemoteAttrs) {
    if let Ok(v) = HeaderValue::from_str(&attrs.etag)
        && !attrs.etag.is_empty()
    {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&attrs.version)
        && !attrs.version.is_empty()
    {
        h.insert(headers::VERSION, v);
    }
    if attrs.last_modified_ns > 0
        && let Ok(v) = HeaderValue::from_str(&http_date(attrs.last_modified_ns))
    {
        h.insert(header::LAST_MODIFIED, v);
    }
}

/// Uploads a spooled write to the cloud, then commits it locally with the cloud's attributes:
/// acknowledged only when both hold it. A failed upload leaves the cached copy as it was.
pub async fn write_through(
    target: &Arc<Target>,
    bck: &Bck,
    name: &str,
    txn: moss_storage::PutTxn,
    mut custom: BTreeMap<String, String>,
) -> Result<ObjMeta, ApiError> {
    let file = txn
        .reader()
        .map_err(|e| ApiError::from_store(e, &format!("{}/{name}", bck.cname())))?;
    let body = PutBody {
        file,
        size: txn.size(),
    };
    let attrs = backend(target, bck)?.put(name, body).await?;
    custom.extend(remote_custom(bck.provider, &attrs));
    tokio::task::spawn_blocking(move || txn.commit(custom))
        .await
        .map_err(|e| ApiError::internal(format!("write task failed: {e}")))?
        .map_err(|e| ApiError::from_store(e, &format!("{}/{name}", bck.cname())))
}

/// The cloud's attributes of an object this target does not hold (HEAD of a remote object).
pub async fn head_absent(target: &Target, bck: &Bck, name: &str) -> Result<Response, ApiError> {
    let attrs = backend(target, bck)?.head(name).await?;
    let mut response = Response::new(Body::empty());
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(attrs.size));
    h.insert(headers::PRESENT, HeaderValue::from_static("false"));
    set_remote_headers(h, &attrs);
    Ok(response)
}

/// Deletes the object in the cloud. A missing object is not an error for S3 (its delete is
/// idempotent, AIStore cannot tell either); for GCS and Azure it is.
pub async fn delete(target: &Target, bck: &Bck, name: &str) -> Result<(), ApiError> {
    match backend(target, bck)?.delete(name).await {
        Ok(()) => Ok(()),
        Err(BackendError::NotFound(_)) if bck.provider == Provider::Aws => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The hook GetBatch (and ranged or archived reads) use to bring missing remote objects in:
/// every missing object of one call is fetched concurrently (within the node's cold-GET slots),
/// each bounded by the backend's deadlines.
pub struct Filler {
    pub target: std::sync::Weak<Target>,
    pub handle: tokio::runtime::Handle,
}

impl MissingFill for Filler {
    fn fill(&self, wanted: &[(&Bck, &str)]) -> Vec<Result<(), ItemError>> {
        let Some(target) = self.target.upgrade() else {
            return wanted
                .iter()
                .map(|_| Err(ItemError::Io("node is shutting down".into())))
                .collect();
        };
        let smap = target.shared.smap.load_full();
        let calls = wanted.iter().map(|(bck, name)| {
            let target = target.clone();
            let (bck, name) = ((*bck).clone(), name.to_string());
            // Only the owner fetches: a neighbor asked for its copy must not cache one too.
            let owner = moss_cluster::owner_of_object(&smap, &bck, &name)
                .is_some_and(|o| o.daemon_id == target.shared.id);
            async move {
                if !owner {
                    return Err(ItemError::NotFound(format!(
                        "{}/{name} does not exist",
                        bck.cname()
                    )));
                }
                ensure_cached(&target, &bck, &name).await.map_err(|e| {
                    if e.status == axum::http::StatusCode::NOT_FOUND {
                        ItemError::NotFound(e.message)
                    } else {
                        ItemError::Io(e.message)
                    }
                })
            }
        });
        self.handle.block_on(futures::future::join_all(calls))
    }

    fn rebuilds(&self, bck: &Bck) -> bool {
        self.target.upgrade().is_some_and(|t| {
            super::mirror::copies(&t, bck).is_some() || super::ec::conf(&t, bck).is_some()
        })
    }

    /// From a mirror copy on another mountpath first (local, no network), else from the EC
    /// pieces on other targets.
    fn rebuild(&self, bck: &Bck, objname: &str) -> Result<(), ItemError> {
        let target = self
            .target
            .upgrade()
            .ok_or_else(|| ItemError::Io("node is shutting down".into()))?;
        let what = format!("{}/{objname}", bck.cname());
        let ec = super::ec::conf(&target, bck).is_some();
        if super::mirror::copies(&target, bck).is_some() {
            match target.store.restore_from_copy(bck, objname) {
                Ok(_) => {
                    tracing::info!(object = %what, "object restored from its mirror copy");
                    return Ok(());
                }
                Err(e @ StoreError::NotFound) if !ec => {
                    return Err(ItemError::from_store(e, &what));
                }
                Err(e) if !ec => {
                    return Err(ItemError::Io(format!(
                        "{what}: not restored from its mirror copy: {e}"
                    )));
                }
                Err(e) => {
                    tracing::warn!(object = %what, "no mirror copy restored it ({e}); trying EC")
                }
            }
        }
        let _enter = self.handle.enter();
        super::ec::rebuild(&target, bck, objname)
    }
}
