//! The proxy (gateway): owns the cluster map, bucket metadata and config; serves bucket and
//! cluster calls itself and redirects object calls and GetBatch to targets.
mod bucket_ops;
mod buckets;
mod endpoint;
mod jobs;
mod membership;
mod moss;
mod remote_list;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moss_cluster::digest;
use moss_types::config::ClusterConfig;
use moss_types::headers;
use moss_types::smap::{Bmd, PROXY, Smap, Snode};
use moss_types::{Bck, names};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use endpoint::ProxyEndpoint;

pub use crate::http::url_bucket;
use crate::http::{
    ApiError, Query, ReqCtx, error_response, header_str, json_response, read_body, redirect,
};
use crate::metrics::{Exposition, Kind};
use crate::node::{self, ClusterMeta, Shared, write_atomic};

const SMAP_FILE: &str = ".moss.smap";
const BMD_FILE: &str = ".moss.bmd";
const CONFIG_FILE: &str = ".moss.conf";
const ID_FILE: &str = ".moss.proxy_id";
/// Largest control-plane request body (bucket actions, config).
const CONTROL_BODY_LIMIT: usize = 1 << 20;

/// The proxy node.
pub struct Proxy {
    pub shared: Shared,
    data_dir: PathBuf,
    /// Last keepalive (or successful probe) per target.
    last_seen: Mutex<HashMap<String, Instant>>,
    /// Serializes metadata changes: clone → modify → version++ → persist → push.
    modify_lock: tokio::sync::Mutex<()>,
    requests: std::sync::atomic::AtomicU64,
    /// Jobs this proxy launched: who runs them, how they ended.
    jobs: jobs::JobTable,
    /// Held while a remote bucket is looked up in its cloud: many first requests, one lookup.
    remote_add: tokio::sync::Mutex<()>,
    /// Client authentication, when started with an AuthN secret.
    pub auth: Option<crate::auth::ClusterAuth>,
}

/// A running proxy.
pub struct ProxyHandle {
    pub proxy: Arc<Proxy>,
    pub url: String,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Starts a proxy on `listener` with state under `data_dir`.
/// `advertise` is the URL clients and targets use to reach it (default: from the listen address).
pub async fn start_proxy(
    listener: TcpListener,
    data_dir: &Path,
    advertise: Option<&str>,
    cloud: moss_backend::CloudEnv,
    auth_secret: Option<&Path>,
    tls: &crate::tls::NodeTls,
    cancel: CancellationToken,
) -> anyhow::Result<ProxyHandle> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("create proxy data dir {}", data_dir.display()))?;
    let server_tls = tls.server_config()?;
    let client = tls.intra_client()?;
    let url = node::advertised_url(&listener, advertise, tls.scheme())?;
    let id = node::load_or_create_id(&data_dir.join(ID_FILE))?;
    let auth = auth_secret
        .map(|file| crate::auth::ClusterAuth::open(file, data_dir))
        .transpose()?;
    let mut meta = load_meta(data_dir, &id, &url)?;
    if meta.config.auth.enabled != auth.is_some() {
        meta.config.auth.enabled = auth.is_some();
        meta.config.config_version += 1;
    }
    let known_targets: Vec<String> = meta.smap.tmap.keys().cloned().collect();
    let key = crate::intra::ClusterKey::load_or_create(&data_dir.join(crate::intra::SECRET_FILE))?;
    let proxy = Arc::new(Proxy {
        shared: Shared::new(
            &id,
            &url,
            'p',
            meta,
            cloud,
            node::Peers {
                key: Some(key),
                client,
            },
            cancel.clone(),
        ),
        data_dir: data_dir.to_path_buf(),
        last_seen: Mutex::new(
            known_targets
                .into_iter()
                .map(|t| (t, Instant::now()))
                .collect(),
        ),
        modify_lock: tokio::sync::Mutex::new(()),
        requests: Default::default(),
        jobs: jobs::JobTable::default(),
        remote_add: tokio::sync::Mutex::new(()),
        auth,
    });
    proxy.persist(&proxy.shared.meta())?;
    tokio::spawn(membership::track_keepalives(proxy.clone()));
    bucket_ops::resume_renames(&proxy);
    let router = Router::new().fallback(dispatch).with_state(proxy.clone());
    tracing::info!(node = %proxy.shared.name, %url, "proxy started");
    let task = tokio::spawn(node::serve(listener, router, server_tls, cancel));
    Ok(ProxyHandle { proxy, url, task })
}

/// Loads persisted metadata, or creates a fresh cluster.
fn load_meta(dir: &Path, id: &str, url: &str) -> anyhow::Result<ClusterMeta> {
    fn read<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
        match std::fs::read(path) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("parse {}", path.display()))?,
            )),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("read {}", path.display())),
        }
    }
    let me = Snode::new(id, PROXY, url, digest(id));
    let mut smap = read::<Smap>(&dir.join(SMAP_FILE))?.unwrap_or_else(|| Smap {
        pmap: Default::default(),
        proxy_si: me.clone(),
        tmap: Default::default(),
        uuid: node::random_id(),
        creation_time: now_rfc3339ish(),
        version: 0,
    });
    smap.pmap = [(id.to_string(), me.clone())].into();
    smap.proxy_si = me;
    smap.version += 1;
    let bmd = read::<Bmd>(&dir.join(BMD_FILE))?.unwrap_or_else(|| Bmd {
        version: 1,
        uuid: smap.uuid.clone(),
        buckets: Default::default(),
    });
    let config = read::<ClusterConfig>(&dir.join(CONFIG_FILE))?.unwrap_or_default();
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("persisted config is invalid: {e}"))?;
    Ok(ClusterMeta { smap, bmd, config })
}

fn now_rfc3339ish() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs}")
}

impl Proxy {
    /// True if `bck` keeps redundancy across targets (EC).
    fn redundant(&self, bck: &Bck) -> bool {
        bck.provider == moss_types::Provider::Ais
            && self
                .shared
                .bmd
                .load()
                .get(bck)
                .is_some_and(|p| p.ec.enabled)
    }

    /// True if the target missed two keepalives in a row (it may be dead but still in the map).
    fn silent(&self, target: &Snode) -> bool {
        let interval = self.shared.config.load().keepalive.interval.0;
        self.last_seen.lock().is_ok_and(|seen| {
            seen.get(&target.daemon_id)
                .is_some_and(|at| at.elapsed() > interval * 2)
        })
    }

    fn persist(&self, meta: &ClusterMeta) -> std::io::Result<()> {
        let files: [(&str, Vec<u8>); 3] = [
            (SMAP_FILE, serde_json::to_vec_pretty(&meta.smap)?),
            (BMD_FILE, serde_json::to_vec_pretty(&meta.bmd)?),
            (CONFIG_FILE, serde_json::to_vec_pretty(&meta.config)?),
        ];
        for (name, bytes) in files {
            write_atomic(&self.data_dir.join(name), &bytes)?;
        }
        Ok(())
    }

    /// Applies a change to the cluster metadata: versions of changed parts are bumped, the result is
    /// persisted, installed and pushed to every target before this returns.
    pub async fn modify<T>(
        &self,
        change: impl FnOnce(&mut ClusterMeta) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let _guard = self.modify_lock.lock().await;
        let before = self.shared.meta();
        let mut after = before.clone();
        let out = change(&mut after)?;
        if after.smap != before.smap {
            after.smap.version = before.smap.version + 1;
        }
        if after.bmd != before.bmd {
            after.bmd.version = before.bmd.version + 1;
        }
        if after.config != before.config {
            after.config.config_version = before.config.config_version + 1;
        }
        let unchanged = after.smap.version == before.smap.version
            && after.bmd.version == before.bmd.version
            && after.config.config_version == before.config.config_version;
        if unchanged {
            return Ok(out);
        }
        self.persist(&after)
            .map_err(|e| ApiError::internal(format!("failed to persist cluster metadata: {e}")))?;
        self.shared.install(&after);
        membership::metasync(self, &after).await;
        Ok(out)
    }
}

async fn dispatch(
    State(proxy): State<Arc<Proxy>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    proxy
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ctx = ReqCtx::of(&req, remote, &proxy.shared.name);
    let result = match ProxyEndpoint::parse(req.method(), req.uri().path()) {
        Ok(endpoint) => match authorize(&proxy, &endpoint, req).await {
            Ok(req) => handle(&proxy, endpoint, req).await,
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| error_response(&e, &ctx))
}

/// With auth on: the caller's token must grant what the call needs (401 without a valid
/// token, 403 without the permission). The verified caller rides along in the request's
/// extensions. Action messages are read here to know the action, and handed on unchanged.
async fn authorize(
    proxy: &Proxy,
    endpoint: &ProxyEndpoint,
    req: Request,
) -> Result<Request, ApiError> {
    let Some(auth) = &proxy.auth else {
        return Ok(req);
    };
    let query = Query::parse(req.uri().query())?;
    let (mut req, action) = if crate::auth::needs_action(endpoint) {
        let (parts, body) = req.into_parts();
        let bytes = read_body(body, buckets::ACTION_BODY_LIMIT).await?;
        let action = if bytes.iter().all(u8::is_ascii_whitespace) {
            crate::auth::ActionPeek::default()
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid action message: {e}")))?
        };
        (Request::from_parts(parts, Body::from(bytes)), action)
    } else {
        (req, crate::auth::ActionPeek::default())
    };
    let Some(needs) = crate::auth::required(endpoint, req.method(), &query, &action)? else {
        return Ok(req);
    };
    let claims = match auth.authenticate(req.headers()) {
        Ok(claims) => claims,
        Err(e) => {
            crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
            return Err(e);
        }
    };
    let checked = crate::auth::check(&claims, &proxy.shared.smap.load().uuid, &needs);
    if let Err(e) = checked {
        crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
        return Err(e);
    }
    req.extensions_mut().insert(crate::auth::Caller(claims));
    Ok(req)
}

async fn handle(
    proxy: &Arc<Proxy>,
    endpoint: ProxyEndpoint,
    req: Request,
) -> Result<Response, ApiError> {
    let query = Query::parse(req.uri().query())?;
    match endpoint {
        ProxyEndpoint::Health => Ok(StatusCode::OK.into_response()),
        ProxyEndpoint::Metrics => Ok(metrics(proxy)),
        ProxyEndpoint::Daemon => daemon_get(proxy, &query).await,
        ProxyEndpoint::ReverseDaemon => {
            let id = header_str(req.headers(), headers::NODE_ID)
                .unwrap_or("")
                .to_string();
            reverse_daemon(proxy, &query, &id).await
        }
        ProxyEndpoint::ClusterGet => {
            let body = read_body(req.into_body(), CONTROL_BODY_LIMIT).await?;
            membership::cluster_get(proxy, &query, &body).await
        }
        ProxyEndpoint::SetConfig => set_config(proxy, &query).await,
        ProxyEndpoint::ClusterAction => cluster_action(proxy, req).await,
        ProxyEndpoint::Register => membership::register(proxy, req).await,
        ProxyEndpoint::Keepalive { id } => membership::keepalive(proxy, &id, req.headers()),
        ProxyEndpoint::ListBuckets => buckets::list_buckets(proxy, &query),
        ProxyEndpoint::BucketGet { bucket } => {
            buckets::bucket_get(proxy, &bucket, &query, req).await
        }
        ProxyEndpoint::BucketHead { bucket, prefix } => {
            bucket_ops::bucket_head(proxy, &bucket, prefix.as_deref(), &query).await
        }
        ProxyEndpoint::BucketPut { bucket } => {
            bucket_ops::bucket_put(proxy, &bucket, &query, req).await
        }
        ProxyEndpoint::BucketPost { bucket } => {
            buckets::bucket_post(proxy, &bucket, &query, req).await
        }
        ProxyEndpoint::BucketDelete { bucket } => {
            buckets::bucket_delete(proxy, &bucket, &query, req).await
        }
        ProxyEndpoint::BucketPatch { bucket } => {
            buckets::set_props(proxy, &bucket, &query, req).await
        }
        ProxyEndpoint::Promote { bucket } => bucket_ops::promote(proxy, &bucket, &query, req).await,
        ProxyEndpoint::Object { bucket, objname } => {
            let known = match url_bucket(&bucket, &query) {
                Ok(bck) => require_bucket(proxy, &bck).await,
                Err(e) => Err(e),
            };
            match known.and_then(|()| redirect_object(proxy, &bucket, &objname, &query, &req)) {
                Ok(response) => finish_unread_body(proxy, req, response).await,
                Err(e) => {
                    crate::http::drain_body(req.into_body(), crate::http::ERROR_DRAIN_LIMIT).await;
                    Err(e)
                }
            }
        }
        ProxyEndpoint::Moss { bucket } => {
            moss::getbatch(proxy, bucket.as_deref(), &query, req).await
        }
        ProxyEndpoint::Tokens => {
            let body = read_body(req.into_body(), CONTROL_BODY_LIMIT).await?;
            match &proxy.auth {
                Some(auth) => {
                    auth.revoke(&body)?;
                    Ok(StatusCode::OK.into_response())
                }
                None => Err(ApiError::bad_request(
                    "token revocation: authentication is not enabled on this cluster",
                )),
            }
        }
    }
}

async fn daemon_get(proxy: &Proxy, query: &Query) -> Result<Response, ApiError> {
    match query.str(headers::QP_WHAT) {
        "smap" => Ok(json_response(&**proxy.shared.smap.load())),
        "bmd" => Ok(json_response(&**proxy.shared.bmd.load())),
        "config" | "cluster_config" => Ok(json_response(&**proxy.shared.config.load())),
        "snode" => Ok(json_response(&proxy.shared.smap.load().proxy_si)),
        "log" => crate::daemon::log(query).await,
        "node_status" => {
            let requests = proxy.requests.load(std::sync::atomic::Ordering::Relaxed);
            let stats = crate::daemon::NodeStats {
                counters: vec![("req.n", requests)],
                mountpaths: Vec::new(),
            };
            Ok(json_response(&crate::daemon::node_status(
                &proxy.shared,
                stats,
            )))
        }
        other => Err(ApiError::bad_request(format!(
            "invalid what={other:?} (expecting smap, bmd, config, snode, log, node_status)"
        ))),
    }
}

/// `GET /v1/reverse/daemon` + `Ais-Node-Id`: the named node's `GET /v1/daemon` (this proxy's
/// own when it is named), relayed as it streams.
async fn reverse_daemon(proxy: &Proxy, query: &Query, id: &str) -> Result<Response, ApiError> {
    if id.is_empty() {
        return Err(ApiError::bad_request(
            "missing node ID (the Ais-Node-Id header names the node to ask)",
        ));
    }
    if id == proxy.shared.id {
        return daemon_get(proxy, query).await;
    }
    let smap = proxy.shared.smap.load_full();
    let node = smap.node(id).ok_or_else(|| {
        ApiError::not_found(format!(
            "node {id:?} is not in the cluster map: cannot forward request to node {id}"
        ))
    })?;
    let url = format!("{}/v1/daemon?{}", node.url(), query.raw);
    let upstream = proxy
        .shared
        .intra(proxy.shared.client.get(url))
        .send()
        .await
        .map_err(|e| ApiError::unavailable(format!("{} unreachable: {e}", node.display())))?;
    let status = upstream.status();
    let kept: Vec<_> = upstream
        .headers()
        .iter()
        .filter(|(name, _)| **name == header::CONTENT_TYPE || **name == header::CONTENT_LENGTH)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let mut response = Response::new(axum::body::Body::from_stream(upstream.bytes_stream()));
    *response.status_mut() = status;
    response.headers_mut().extend(kept);
    Ok(response)
}

async fn set_config(proxy: &Proxy, query: &Query) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> = query
        .pairs
        .iter()
        .filter(|(k, _)| k != "transient")
        .cloned()
        .collect();
    if pairs.is_empty() {
        return Err(ApiError::bad_request(
            "set-config: no key=value pairs in the query",
        ));
    }
    proxy
        .modify(|meta| {
            for (key, value) in &pairs {
                meta.config.set(key, value).map_err(ApiError::bad_request)?;
            }
            Ok(())
        })
        .await?;
    Ok(StatusCode::OK.into_response())
}

async fn cluster_action(proxy: &Arc<Proxy>, req: Request) -> Result<Response, ApiError> {
    let body = read_body(req.into_body(), CONTROL_BODY_LIMIT).await?;
    let msg: moss_types::lso::ActMsg = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid action message: {e}")))?;
    match msg.action.as_str() {
        "set-config" => {
            proxy
                .modify(|meta| meta.config.merge(&msg.value).map_err(ApiError::bad_request))
                .await?;
            Ok(StatusCode::OK.into_response())
        }
        "reset-config" => {
            proxy
                .modify(|meta| {
                    let version = meta.config.config_version;
                    meta.config = ClusterConfig {
                        config_version: version,
                        auth: meta.config.auth.clone(),
                        ..Default::default()
                    };
                    Ok(())
                })
                .await?;
            Ok(StatusCode::OK.into_response())
        }
        "start" => jobs::start(proxy, &msg.value).await,
        "stop" => jobs::stop(proxy, &msg.value).await,
        other => Err(ApiError::bad_request(format!(
            "invalid cluster action {other:?}"
        ))),
    }
}

/// Now, in Unix nanoseconds.
pub(crate) fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A bucket id for a bucket created in the next BMD version: distinct incarnations of one name
/// get distinct ids.
pub(crate) fn new_bid(bmd: &Bmd) -> u64 {
    (bmd.version + 1) << 32 | (rand::random::<u32>() as u64)
}

/// 400 for a bucket action this endpoint does not serve.
pub(crate) fn unsupported(action: &str) -> ApiError {
    ApiError::bad_request(format!("unsupported bucket action {action:?}"))
}

/// Fails with the SDK-recognized 404 unless the bucket exists. A remote bucket seen for the first
/// time joins the bucket metadata if the cloud has it (AIStore's on-the-fly add).
pub async fn require_bucket(proxy: &Proxy, bck: &Bck) -> Result<(), ApiError> {
    if proxy.shared.bmd.load().get(bck).is_some() {
        return Ok(());
    }
    if bck.provider == moss_types::Provider::Ais {
        return Err(ApiError::no_bucket(&bck.cname()));
    }
    add_remote_bucket(proxy, bck).await
}

/// Checks that the cloud holds the bucket, then adds it with the defaults for remote buckets.
async fn add_remote_bucket(proxy: &Proxy, bck: &Bck) -> Result<(), ApiError> {
    let _one_at_a_time = proxy.remote_add.lock().await;
    if proxy.shared.bmd.load().get(bck).is_some() {
        return Ok(());
    }
    let backend = proxy.shared.backends.for_bucket(bck, &Default::default())?;
    let info = backend.head_bucket().await?;
    proxy
        .modify(|meta| {
            let key = bck.uname_prefix();
            if meta.bmd.buckets.contains_key(&key) {
                return Ok(());
            }
            let mut props =
                moss_types::smap::BucketProps::new(bck.clone(), now_nanos(), new_bid(&meta.bmd));
            props.versioning.enabled = info.versioning;
            meta.bmd.buckets.insert(key, props);
            Ok(())
        })
        .await?;
    tracing::info!(bucket = %bck, "remote bucket added");
    Ok(())
}

/// Where the proxy sends a request: `<target url><path>?<query>&pid=…&utm=…&sig=…`. The
/// signature binds the method, path and whole query (and `body_digest`, for bodies the proxy
/// checked) under the cluster secret: while auth is on, targets serve client requests only
/// with it.
pub fn signed_location(
    shared: &Shared,
    target: &Snode,
    method: &axum::http::Method,
    path: &str,
    query: &Query,
    body_digest: &str,
) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let sep = if query.raw.is_empty() { "" } else { "&" };
    let signed = format!(
        "{}{sep}{}={}&{}={}",
        query.raw,
        headers::QP_PROXY_ID,
        shared.id,
        headers::QP_UNIX_TIME,
        base36(nanos)
    );
    let sig = shared
        .key
        .as_ref()
        .map(|key| key.sign_redirect(method.as_str(), path, &signed, body_digest))
        .unwrap_or_default();
    format!(
        "{}{path}?{signed}&{}={sig}",
        target.url(),
        headers::QP_SIGNATURE
    )
}

pub(crate) fn base36(mut n: u128) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

fn redirect_object(
    proxy: &Proxy,
    bucket: &str,
    objname: &str,
    query: &Query,
    req: &Request,
) -> Result<Response, ApiError> {
    let bck = url_bucket(bucket, query)?;
    names::validate_objname(objname).map_err(ApiError::bad_request)?;
    let smap = proxy.shared.smap.load();
    let mut owner = moss_cluster::owner_of_object(&smap, &bck, objname)
        .ok_or_else(|| ApiError::unavailable("no targets in the cluster"))?;
    // A read in a bucket with redundancy skips an owner that went silent and is not yet out of
    // the map: the next target in HRW order holds a piece and rebuilds the object from them.
    if matches!(*req.method(), Method::GET | Method::HEAD)
        && proxy.redundant(&bck)
        && proxy.silent(owner)
        && let Some(next) = moss_cluster::ranked_targets(&smap, &bck, objname)
            .into_iter()
            .skip(1)
            .find(|t| !proxy.silent(t))
    {
        tracing::info!(node = %owner.display(), object = objname, "owner is silent; read goes to {}", next.display());
        owner = next;
    }
    redirect(&signed_location(
        &proxy.shared,
        owner,
        req.method(),
        req.uri().path(),
        query,
        "",
    ))
}

/// Longest wait for the owner's answer to an upload the proxy relays. Uploads of any size at any
/// speed must pass, so what really bounds the wait is the owner staying in the map; this is only
/// a backstop.
const UPLOAD_RELAY_LIMIT: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

/// Bodies up to this size are read and dropped before redirecting, so the connection stays usable.
const DRAIN_LIMIT: u64 = 256 << 10;

/// A redirected request that carries a body. A client that asked `Expect: 100-continue` has not
/// sent it yet, and a small body is drained: both get the 307. A large body is already on its way
/// and closing on it would reset the connection before the client reads the redirect, so it is
/// streamed through to the owner instead. A client that sent `Connection: close` gets the 307 at
/// once: it will not reuse the connection, and the SDK's https uploads ask the proxy for the
/// redirect that way, declaring the body's Content-Length without sending the body.
async fn finish_unread_body(
    proxy: &Proxy,
    req: Request,
    redirect: Response,
) -> Result<Response, ApiError> {
    let declared = header_str(req.headers(), header::CONTENT_LENGTH.as_str())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let expects_continue = req.headers().contains_key(header::EXPECT);
    let closing = header_str(req.headers(), header::CONNECTION.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case("close"));
    let small = match declared {
        Some(n) => n <= DRAIN_LIMIT,
        None => !chunked,
    };
    if expects_continue || closing {
        return Ok(redirect);
    }
    if small {
        let _ = read_body(req.into_body(), DRAIN_LIMIT as usize).await;
        return Ok(redirect);
    }
    let location = header_str(redirect.headers(), header::LOCATION.as_str())
        .unwrap_or_default()
        .to_string();
    let mut forward = proxy
        .shared
        .client
        .request(req.method().clone(), location.as_str());
    for name in [header::CONTENT_LENGTH, header::CONTENT_TYPE] {
        if let Some(value) = req.headers().get(&name) {
            forward = forward.header(name, value);
        }
    }
    for (name, value) in req.headers() {
        if name.as_str().starts_with("ais-") {
            forward = forward.header(name, value);
        }
    }
    let body = reqwest::Body::wrap_stream(req.into_body().into_data_stream());
    let send = proxy.shared.intra(forward.body(body)).send();
    let smap = proxy.shared.smap.load_full();
    let owner = smap
        .tmap
        .values()
        .find(|t| location.starts_with(&format!("{}/", t.url())));
    // An upload may legitimately take long; what must not happen is waiting on an owner that hangs
    // and has been dropped from the map.
    let sent = match owner {
        Some(owner) => membership::while_member(proxy, owner, UPLOAD_RELAY_LIMIT, send)
            .await
            .map_err(|abandoned| {
                ApiError::unavailable(format!(
                    "forwarding to the owner failed: target {} {abandoned}",
                    owner.display()
                ))
            })?,
        None => send.await,
    };
    let upstream =
        sent.map_err(|e| ApiError::unavailable(format!("forwarding to the owner failed: {e}")))?;
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let mut response = Response::new(Body::from_stream(upstream.bytes_stream()));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != header::TRANSFER_ENCODING && name != header::CONNECTION {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(response)
}

fn metrics(proxy: &Proxy) -> Response {
    let mut out = Exposition::new(&proxy.shared.id);
    let smap = proxy.shared.smap.load();
    out.add(
        "ais_proxy_req_count",
        Kind::Counter,
        "requests served",
        proxy.requests.load(std::sync::atomic::Ordering::Relaxed),
    );
    out.add(
        "ais_proxy_smap_version",
        Kind::Gauge,
        "cluster map version",
        smap.version,
    );
    out.add(
        "ais_proxy_targets",
        Kind::Gauge,
        "targets in the cluster map",
        smap.tmap.len() as u64,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Body::from(out.finish()),
    )
        .into_response()
}
