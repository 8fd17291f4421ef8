//! The target (storage node): serves objects from its mountpaths, assembles GetBatch responses as
//! the designated target, streams its share of batches to other DTs, and keeps itself registered.
mod archsel;
mod bulk;
mod ec;
mod endpoint;
mod jobs;
mod join;
mod mirror;
mod moss;
mod objects;
mod rebalance;
mod remote;
mod upload;
mod walk;
mod xact;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use moss_getbatch::Engine;
use moss_getbatch::item::LocalReader;
use moss_jobs::Registry;
use moss_storage::Store;
use moss_types::config::ClusterConfig;
use moss_types::headers;
use moss_types::smap::{Bmd, PROXY, Smap, Snode};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use endpoint::{ObjMethod, TargetEndpoint};

use crate::http::{ApiError, Query, ReqCtx, error_response, json_response, read_body};
use crate::metrics::{Exposition, Kind, ObjectMetrics};
use crate::node::{self, ClusterMeta, Shared};

const ID_FILE: &str = ".moss.target_id";

/// Makes the redundancy of an object just committed here durable — its mirror copies on other
/// mountpaths, then its EC pieces on other targets — before the write is acknowledged.
pub(crate) async fn protect(
    target: &Arc<Target>,
    bck: &moss_types::Bck,
    objname: &str,
) -> Result<(), ApiError> {
    mirror::protect(target, bck, objname).await?;
    ec::protect(target, bck, objname).await
}

/// How to start a target.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// Holds the target id (and the default mountpath when none is given).
    pub data_dir: PathBuf,
    pub mountpaths: Vec<PathBuf>,
    /// Base URL of the primary proxy.
    pub proxy_url: String,
    /// URL other nodes use to reach this target; defaults to the listener's address (the host's
    /// primary address when listening on all interfaces).
    pub advertise_url: Option<String>,
    /// Credentials and endpoints of the clouds behind remote buckets.
    pub cloud: moss_backend::CloudEnv,
    /// The cluster secret (the proxy's `cluster.secret`); without it the target cannot join.
    pub secret_file: Option<PathBuf>,
    /// The certificate to serve HTTPS with, and the CA to trust in other nodes.
    pub tls: crate::tls::NodeTls,
}

/// Largest list of names one presence check may carry (a page of a remote listing).
const PRESENT_BODY_LIMIT: usize = 16 << 20;

/// The target node.
pub struct Target {
    pub shared: Arc<Shared>,
    /// GetBatch: designated-target assembly and sender streams.
    pub engine: Arc<Engine>,
    pub store: Arc<Store>,
    /// Local item access (objects, ranges, archived files) shared by GET and GetBatch.
    pub reader: Arc<LocalReader>,
    pub proxy_url: String,
    pub metrics: ObjectMetrics,
    /// This node's jobs (GetBatch, rebalance, and its shares of cluster jobs).
    pub jobs: Arc<Registry>,
    /// Wakes the rebalancer after a cluster-map change.
    rebalance_kick: Notify,
    /// Cold GETs of remote objects in flight.
    cold: remote::Cold,
}

/// A running target.
pub struct TargetHandle {
    pub target: Arc<Target>,
    pub url: String,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Starts a target on `listener`; it registers with the proxy in the background.
pub async fn start_target(
    listener: TcpListener,
    opts: TargetOptions,
    cancel: CancellationToken,
) -> anyhow::Result<TargetHandle> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("create target data dir {}", opts.data_dir.display()))?;
    let mountpaths = if opts.mountpaths.is_empty() {
        vec![opts.data_dir.join("mp")]
    } else {
        opts.mountpaths.clone()
    };
    let store = Store::open(&mountpaths).context("open mountpaths")?;
    let server_tls = opts.tls.server_config()?;
    let client = opts.tls.intra_client()?;
    let url = node::advertised_url(&listener, opts.advertise_url.as_deref(), opts.tls.scheme())?;
    let id = node::load_or_create_id(&opts.data_dir.join(ID_FILE))?;
    let proxy_placeholder = Snode::new("", PROXY, &opts.proxy_url, 0);
    let empty = ClusterMeta {
        smap: Smap {
            pmap: Default::default(),
            proxy_si: proxy_placeholder,
            tmap: Default::default(),
            uuid: String::new(),
            creation_time: String::new(),
            version: 0,
        },
        bmd: Bmd::default(),
        config: ClusterConfig {
            config_version: 0,
            ..Default::default()
        },
    };
    let store = Arc::new(store);
    let key = match &opts.secret_file {
        Some(path) => Some(crate::intra::ClusterKey::load(path)?),
        None => {
            tracing::error!(
                "no cluster secret (--cluster-secret-file): the proxy will refuse this target"
            );
            None
        }
    };
    let shared = Arc::new(Shared::new(
        &id,
        &url,
        't',
        empty,
        opts.cloud.clone(),
        node::Peers { key, client },
        cancel.clone(),
    ));
    let reader = Arc::new(LocalReader::new(store.clone()));
    let jobs = Registry::new(&shared.name, cancel.clone());
    let target = Arc::new(Target {
        engine: Engine::new(shared.clone(), reader.clone(), jobs.clone()),
        shared,
        reader,
        store,
        proxy_url: opts.proxy_url.trim_end_matches('/').to_string(),
        metrics: ObjectMetrics::default(),
        jobs,
        rebalance_kick: Notify::new(),
        cold: remote::Cold::default(),
    });
    target.reader.set_fill(Arc::new(remote::Filler {
        target: Arc::downgrade(&target),
        handle: tokio::runtime::Handle::current(),
    }));
    let router = Router::new().fallback(dispatch).with_state(target.clone());
    let task = tokio::spawn(node::serve(listener, router, server_tls, cancel));
    tokio::spawn(join::stay_registered(target.clone()));
    tokio::spawn(rebalance::run(target.clone()));
    tokio::spawn(close_stale_files(Arc::downgrade(&target.reader)));
    tracing::info!(node = %target.shared.name, %url, "target started");
    Ok(TargetHandle { target, url, task })
}

impl Target {
    /// Installs new metadata and reacts to it (rebalance on map changes, cleanup of dropped buckets).
    pub fn on_meta(self: &Arc<Self>, meta: &ClusterMeta) {
        let changed = self.shared.install(meta);
        if changed.smap {
            // Registered before the metasync is answered, so the pass is visible (as a job) to
            // whoever changed the map as soon as the change returns.
            rebalance::register(self);
            self.rebalance_kick.notify_one();
        }
        if changed.bmd {
            let target = self.clone();
            tokio::task::spawn_blocking(move || target.drop_destroyed_buckets());
            xact::rename::on_bmd(self);
        }
    }

    /// Removes the data of buckets that are no longer in the BMD — except buckets renamed into
    /// another one, whose data belongs to it (`xact::rename` moves it). Returns how many.
    pub(crate) fn drop_destroyed_buckets(&self) -> u64 {
        let bmd = self.shared.bmd.load_full();
        if bmd.version == 0 {
            return 0;
        }
        let mut dropped = 0;
        for bck in self.store.buckets_on_disk() {
            if bmd.get(&bck).is_some() || bmd.renamed_into(&bck).is_some() {
                continue;
            }
            tracing::info!(bucket = %bck, "removing data of destroyed bucket");
            match self.store.destroy_bucket(&bck) {
                Ok(()) => dropped += 1,
                Err(e) => tracing::warn!(bucket = %bck, "failed to remove bucket data: {e}"),
            }
        }
        dropped
    }

    /// Aborts the running jobs of this target after the proxy dropped it from the map — except
    /// renames, whose shares resume (their data must end up under the new name).
    fn abort_jobs_of_a_dropped_member(&self) {
        let running = self.jobs.select(&moss_types::jobs::JobFilter {
            only_running: true,
            ..Default::default()
        });
        for job in running {
            if job.kind.kind != moss_types::jobs::MOVE_BCK {
                job.abort(format!(
                    "{} was removed from the cluster map while the job ran",
                    self.shared.name
                ));
            }
        }
    }

    /// `what=node_status`: AIStore's node status with this target's counters and disks.
    fn node_status(&self) -> serde_json::Value {
        use std::sync::atomic::Ordering::Relaxed;
        let m = &self.metrics;
        let counters: Vec<(&'static str, u64)> = vec![
            ("get.n", m.get_count.load(Relaxed)),
            ("get.size", m.get_bytes.load(Relaxed)),
            ("put.n", m.put_count.load(Relaxed)),
            ("put.size", m.put_bytes.load(Relaxed)),
            ("err.get.n", m.err_get_count.load(Relaxed)),
            ("err.put.n", m.err_put_count.load(Relaxed)),
        ];
        let batch = self.engine.snapshot();
        let counters = counters
            .into_iter()
            .chain([
                ("getbatch.n", batch.reqs),
                ("getbatch.obj.n", batch.obj_count),
                ("getbatch.obj.size", batch.obj_bytes),
                ("getbatch.file.n", batch.file_count),
                ("getbatch.file.size", batch.file_bytes),
            ])
            .collect();
        crate::daemon::node_status(
            &self.shared,
            crate::daemon::NodeStats {
                counters,
                mountpaths: self.store.usage(),
            },
        )
    }

    /// While auth is on, a client request must be one the proxy authorized: its query ends with
    /// the proxy's signature over method, path, query and `body_digest`, made within the
    /// intra-cluster skew. Off, anything goes (direct reads included), as before.
    pub(crate) fn check_signed(
        &self,
        method: &axum::http::Method,
        path: &str,
        query: &Query,
        body_digest: &str,
    ) -> Result<(), ApiError> {
        if !self.shared.config.load().auth.enabled {
            return Ok(());
        }
        let forbidden = |why: &str| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "direct target access denied while authentication is on: {why}; send requests to the cluster endpoint (proxy)"
                ),
            )
        };
        let marker = format!("&{}=", headers::QP_SIGNATURE);
        let (signed, sig) = query
            .raw
            .rsplit_once(&marker)
            .ok_or_else(|| forbidden("the request is not signed by a proxy"))?;
        let sent = u128::from_str_radix(query.str(headers::QP_UNIX_TIME), 36).unwrap_or(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        if now.abs_diff(sent) > crate::intra::MAX_SKEW.as_nanos() {
            return Err(forbidden("the proxy's signature has expired"));
        }
        let key = self
            .shared
            .key
            .as_ref()
            .ok_or_else(|| forbidden("this target has no cluster secret"))?;
        if key.verify_redirect(method.as_str(), path, signed, body_digest, sig) {
            Ok(())
        } else {
            Err(forbidden("invalid proxy signature"))
        }
    }

    /// Requires a call from a cluster member: a valid cluster token, from a node of the map.
    fn check_intra(&self, req: &Request) -> Result<(), ApiError> {
        let caller = self.shared.verify_intra(req.headers())?;
        let smap = self.shared.smap.load();
        let known = smap.node(caller).is_some() || (smap.version == 0 && !caller.is_empty());
        if known {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("intra-cluster call from unknown node {caller:?}"),
            ))
        }
    }
}

async fn dispatch(
    State(target): State<Arc<Target>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let ctx = ReqCtx::of(&req, remote, &target.shared.name);
    let result = match TargetEndpoint::parse(req.method(), req.uri().path()) {
        Ok(endpoint) => handle(&target, endpoint, req).await,
        Err(e) => Err(e),
    };
    result.unwrap_or_else(|e| error_response(&e, &ctx))
}

async fn handle(
    target: &Arc<Target>,
    endpoint: TargetEndpoint,
    req: Request,
) -> Result<Response, ApiError> {
    let query = Query::parse(req.uri().query())?;
    match endpoint {
        TargetEndpoint::Health => Ok(StatusCode::OK.into_response()),
        TargetEndpoint::Metrics => Ok(metrics(target)),
        TargetEndpoint::Daemon if target.shared.config.load().auth.enabled => {
            // With auth on, node internals go through the proxy's checked `reverse/daemon`.
            target.check_intra(&req)?;
            daemon(target, &query).await
        }
        TargetEndpoint::Daemon => daemon(target, &query).await,
        TargetEndpoint::Metasync => {
            target.check_intra(&req)?;
            let body = read_body(req.into_body(), 64 << 20).await?;
            let meta: ClusterMeta = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid metasync payload: {e}")))?;
            target.on_meta(&meta);
            Ok(StatusCode::OK.into_response())
        }
        TargetEndpoint::Object {
            method,
            bucket,
            objname,
        } => {
            target.check_signed(req.method(), req.uri().path(), &query, "")?;
            objects::object(target, method, &bucket, &objname, &query, req, false).await
        }
        TargetEndpoint::Internal {
            method,
            bucket,
            objname,
        } => {
            target.check_intra(&req)?;
            objects::object(target, method, &bucket, &objname, &query, req, true).await
        }
        TargetEndpoint::Piece {
            method,
            bucket,
            objname,
        } => {
            target.check_intra(&req)?;
            ec::piece(target, method, &bucket, &objname, &query, req).await
        }
        TargetEndpoint::List { bucket } => {
            target.check_intra(&req)?;
            objects::list(target, &bucket, &query).await
        }
        TargetEndpoint::Present { bucket } => {
            target.check_intra(&req)?;
            let body = crate::http::read_body(req.into_body(), PRESENT_BODY_LIMIT).await?;
            objects::present(target, &bucket, &query, &body).await
        }
        TargetEndpoint::Moss { bucket } => {
            moss::getbatch(target, bucket.as_deref(), &query, req).await
        }
        TargetEndpoint::MossSend => {
            target.check_intra(&req)?;
            moss::send(target, req).await
        }
        TargetEndpoint::GetBatchStats => Ok(json_response(&target.engine.snapshot())),
        TargetEndpoint::JobQuery => {
            target.check_intra(&req)?;
            jobs::query(target, req).await
        }
        TargetEndpoint::JobStart => {
            target.check_intra(&req)?;
            jobs::start(target, req).await
        }
        TargetEndpoint::BulkPut { bucket } => {
            target.check_intra(&req)?;
            bulk::receive(target, &bucket, &query, req).await
        }
        TargetEndpoint::JobStop => {
            target.check_intra(&req)?;
            jobs::stop(target, req).await
        }
    }
}

/// `GET /v1/daemon?what=…`
async fn daemon(target: &Target, query: &Query) -> Result<Response, ApiError> {
    match query.str(headers::QP_WHAT) {
        "smap" => Ok(json_response(&**target.shared.smap.load())),
        "bmd" => Ok(json_response(&**target.shared.bmd.load())),
        "config" | "cluster_config" => Ok(json_response(&**target.shared.config.load())),
        "log" => crate::daemon::log(query).await,
        "node_status" => Ok(json_response(&target.node_status())),
        other => Err(ApiError::bad_request(format!(
            "invalid what={other:?} (expecting smap, bmd, config, log, node_status)"
        ))),
    }
}

fn metrics(target: &Target) -> Response {
    let mut out = Exposition::new(&target.shared.id);
    target.metrics.render(&mut out);
    moss::render_metrics(&target.engine.snapshot(), &mut out);
    let shards = &target.reader.shards;
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    out.add(
        "moss_target_shard_index_builds_count",
        Kind::Counter,
        "shard member indexes built",
        load(&shards.index_builds),
    );
    out.add(
        "moss_target_shard_index_hits_count",
        Kind::Counter,
        "member lookups served by a cached index",
        load(&shards.index_hits),
    );
    out.add(
        "moss_target_shard_scans_count",
        Kind::Counter,
        "decompressing passes over compressed shards",
        load(&shards.scans),
    );
    out.add(
        "moss_target_shard_open_reused_count",
        Kind::Counter,
        "shard opens served by a shard kept open from an earlier request",
        load(&target.reader.open_shards.hits),
    );
    out.add(
        "moss_target_shards_kept_open",
        Kind::Gauge,
        "shards kept open between requests",
        target.reader.open_shards.len() as u64,
    );
    out.add(
        "moss_target_object_open_reused_count",
        Kind::Counter,
        "GetBatch object opens served by an object kept open from an earlier request",
        load(&target.reader.open_objects.hits),
    );
    out.add(
        "moss_target_objects_kept_open",
        Kind::Gauge,
        "objects kept open between requests",
        target.reader.open_objects.len() as u64,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Body::from(out.finish()),
    )
        .into_response()
}

/// Every second, closes the objects and shards GetBatch keeps open that were overwritten or
/// deleted since, so their space is freed even when no request comes; ends with the target.
async fn close_stale_files(reader: std::sync::Weak<LocalReader>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(reader) = reader.upgrade() else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || reader.close_stale()).await;
    }
}
