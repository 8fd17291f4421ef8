//! State shared by both node roles: identity, the replicated cluster metadata (Smap, BMD,
//! config), the intra-cluster HTTP client, persistence helpers, and the HTTP server loop.
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::Router;
use moss_types::config::ClusterConfig;
use moss_types::headers;
use moss_types::smap::{Bmd, Smap};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Everything the proxy replicates to every node (`PUT /v1/metasync`, registration replies).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterMeta {
    pub smap: Smap,
    pub bmd: Bmd,
    pub config: ClusterConfig,
}

/// How a node calls the others: the cluster secret that signs its calls and the client (with
/// its TLS trust) that sends them.
pub struct Peers {
    pub key: Option<crate::intra::ClusterKey>,
    pub client: reqwest::Client,
}

/// Identity and replicated state of a node.
pub struct Shared {
    pub id: String,
    pub url: String,
    /// `p[id]` or `t[id]`.
    pub name: String,
    pub smap: ArcSwap<Smap>,
    pub bmd: ArcSwap<Bmd>,
    pub config: ArcSwap<ClusterConfig>,
    /// Keep-alive connection pool for every intra-cluster call.
    pub client: reqwest::Client,
    pub cancel: CancellationToken,
    /// When the cluster map last changed (objects may be on their way to a new owner).
    pub smap_changed_at: std::sync::Mutex<std::time::Instant>,
    /// Set while this node moves objects to their owners.
    pub rebalancing: std::sync::atomic::AtomicBool,
    /// Clients of the cloud buckets behind remote buckets.
    pub backends: moss_backend::Backends,
    /// The cluster secret: signs this node's intra-cluster calls and checks others'.
    pub key: Option<crate::intra::ClusterKey>,
}

impl Shared {
    pub fn new(
        id: &str,
        url: &str,
        role: char,
        meta: ClusterMeta,
        cloud: moss_backend::CloudEnv,
        peers: Peers,
        cancel: CancellationToken,
    ) -> Shared {
        Shared {
            id: id.to_string(),
            url: url.to_string(),
            name: format!("{role}[{id}]"),
            smap: ArcSwap::from_pointee(meta.smap),
            bmd: ArcSwap::from_pointee(meta.bmd),
            config: ArcSwap::from_pointee(meta.config),
            client: peers.client,
            cancel,
            smap_changed_at: std::sync::Mutex::new(std::time::Instant::now()),
            rebalancing: std::sync::atomic::AtomicBool::new(false),
            backends: moss_backend::Backends::new(cloud, Default::default()),
            key: peers.key,
        }
    }

    /// The client of the cloud bucket behind a remote bucket, with the bucket's own overrides
    /// (`extra.aws.endpoint`, `extra.aws.cloud_region`).
    pub fn backend(
        &self,
        bck: &moss_types::Bck,
    ) -> Result<std::sync::Arc<dyn moss_backend::Backend>, crate::http::ApiError> {
        let overrides = self
            .bmd
            .load()
            .get(bck)
            .map(|p| moss_backend::Overrides {
                endpoint: p.extra.aws.endpoint.clone(),
                region: p.extra.aws.cloud_region.clone(),
            })
            .unwrap_or_default();
        Ok(self.backends.for_bucket(bck, &overrides)?)
    }

    /// Installs whatever parts of `meta` are newer than ours; returns what changed.
    pub fn install(&self, meta: &ClusterMeta) -> Installed {
        let mut changed = Installed::default();
        if meta.smap.version > self.smap.load().version {
            let targets_changed = meta.smap.tmap.keys().ne(self.smap.load().tmap.keys());
            self.smap.store(Arc::new(meta.smap.clone()));
            changed.smap = true;
            if targets_changed && let Ok(mut at) = self.smap_changed_at.lock() {
                *at = std::time::Instant::now();
            }
        }
        if meta.bmd.version > self.bmd.load().version {
            self.bmd.store(Arc::new(meta.bmd.clone()));
            changed.bmd = true;
        }
        if meta.config.config_version > self.config.load().config_version {
            self.config.store(Arc::new(meta.config.clone()));
            changed.config = true;
        }
        changed
    }

    /// Current metadata as one value.
    pub fn meta(&self) -> ClusterMeta {
        ClusterMeta {
            smap: (**self.smap.load()).clone(),
            bmd: (**self.bmd.load()).clone(),
            config: (**self.config.load()).clone(),
        }
    }

    /// True while objects of `bck` may sit on a target that does not own them: the set of targets
    /// changed recently, this node is rebalancing, or a rename is moving objects into `bck`.
    pub fn neighbors_may_hold(&self, bck: &moss_types::Bck) -> bool {
        const WINDOW: std::time::Duration = std::time::Duration::from_secs(600);
        if self.smap.load().tmap.len() < 2 {
            return false;
        }
        let recent = self
            .smap_changed_at
            .lock()
            .map(|at| at.elapsed() < WINDOW)
            .unwrap_or(true);
        recent
            || self.rebalancing.load(std::sync::atomic::Ordering::Relaxed)
            || self
                .bmd
                .load()
                .get(bck)
                .is_some_and(|p| !p.renaming.is_empty())
    }

    /// Adds the intra-cluster caller headers to a request.
    pub fn intra(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        let rb = match &self.key {
            Some(key) => rb.header(headers::INTRA_AUTH, key.token(&self.id)),
            None => rb,
        };
        rb.header(headers::CALLER_ID, &self.id)
            .header(headers::CALLER_NAME, &self.name)
            .header(
                headers::CALLER_SMAP_VER,
                self.smap.load().version.to_string(),
            )
    }
}

impl Shared {
    /// Proves that an internal call comes from a cluster member: a valid token under the
    /// cluster secret for the caller id it names. Returns the caller id.
    pub fn verify_intra<'h>(
        &self,
        h: &'h axum::http::HeaderMap,
    ) -> Result<&'h str, crate::http::ApiError> {
        let forbidden =
            |why: String| crate::http::ApiError::new(axum::http::StatusCode::FORBIDDEN, why);
        let caller = crate::http::header_str(h, headers::CALLER_ID).unwrap_or("");
        let Some(key) = &self.key else {
            return Err(forbidden(format!(
                "{} has no cluster secret and accepts no intra-cluster calls (start it with --cluster-secret-file)",
                self.name
            )));
        };
        let token = crate::http::header_str(h, headers::INTRA_AUTH).unwrap_or("");
        if token.is_empty() {
            return Err(forbidden(format!(
                "intra-cluster call from {caller:?} without a cluster token"
            )));
        }
        key.verify(caller, token)
            .map_err(|why| forbidden(format!("intra-cluster call from {caller:?}: {why}")))?;
        Ok(caller)
    }
}

/// True when a keepalive reply (`{"smap":n,"bmd":n,"config":n}`) names a version newer than ours.
pub fn keepalive_says_stale(reply: &serde_json::Value, shared: &Shared) -> bool {
    let newer = |key: &str, ours: u64| {
        reply
            .get(key)
            .and_then(|v| v.as_u64())
            .is_some_and(|v| v > ours)
    };
    newer("smap", shared.smap.load().version)
        || newer("bmd", shared.bmd.load().version)
        || newer("config", shared.config.load().config_version)
}

/// Which parts of the metadata an install changed.
#[derive(Debug, Default, Clone, Copy)]
pub struct Installed {
    pub smap: bool,
    pub bmd: bool,
    pub config: bool,
}

/// The HTTP client used between nodes: pooled keep-alive connections, no Nagle delay, no redirects.
/// `trust`: the only certificates an https peer may chain to (the cluster's CA); `None`: the
/// system's roots.
pub fn intra_client(trust: Option<Vec<reqwest::Certificate>>) -> anyhow::Result<reqwest::Client> {
    use anyhow::Context as _;
    // TLS (when a URL is https) uses rustls with ring; installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(3))
        .pool_idle_timeout(CLIENT_POOL_IDLE)
        .redirect(reqwest::redirect::Policy::none());
    let builder = match trust {
        Some(certs) => builder.tls_certs_only(certs),
        None => builder,
    };
    builder
        .build()
        .context("build the intra-cluster http client")
}

/// A random node id: 8 alphanumeric characters.
pub fn random_id() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..8)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Reads a persisted id, or creates and persists a new one.
pub fn load_or_create_id(path: &Path) -> anyhow::Result<String> {
    use anyhow::Context;
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
        Ok(_) => anyhow::bail!("node id file {} is empty", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = random_id();
            write_atomic(path, id.as_bytes())
                .with_context(|| format!("persist node id to {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("read node id from {}", path.display())),
    }
}

/// Writes a file atomically and durably: temp file, fsync, rename, directory fsync.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    moss_types::fsio::write_atomic(path, bytes, 0o644)
}

/// Raises the soft limit on open files to the hard limit, as servers do (and as Go programs such
/// as AIStore do by themselves): the stat phases of GetBatch and the shards kept open between
/// requests draw their descriptors from a budget sized by this limit. Call before serving.
pub fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::debug!("could not raise the open files limit: {e}");
        }
    }
}

/// How long a client may take to send a request's headers, and how long a kept-alive connection
/// may sit idle before the next request (hyper starts the same timer for both). Intra-cluster
/// clients drop idle connections sooner ([`CLIENT_POOL_IDLE`]) so they never reuse one this end
/// is closing.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Idle time after which a client of ours drops a pooled connection.
pub const CLIENT_POOL_IDLE: Duration = Duration::from_secs(10);
/// Most connections one node keeps open: also bounded by its open-files limit, less
/// [`FD_RESERVE`] for its own files and calls to other nodes.
pub const MAX_CONNECTIONS: usize = 32 << 10;
/// Descriptors kept free of client connections.
const FD_RESERVE: usize = 2048;
/// How long a shutdown waits for in-flight requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The connection cap of this process: [`MAX_CONNECTIONS`], or less where the open-files limit
/// would run out first — after [`FD_RESERVE`] and the descriptors GetBatch may keep open.
pub fn connection_cap() -> usize {
    let limit = open_files_limit();
    let getbatch = moss_getbatch::item::fd_budget_for(limit as u64) as usize;
    limit
        .saturating_sub(FD_RESERVE)
        .saturating_sub(getbatch)
        .clamp(64, MAX_CONNECTIONS)
}

/// This process's current open-files limit.
pub fn open_files_limit() -> usize {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(limit).unwrap_or(usize::MAX)
}

/// One open client connection: how many of its requests are in flight (a response body still
/// streaming counts) and when its last request started.
struct Conn {
    active: std::sync::atomic::AtomicUsize,
    last_start_ns: std::sync::atomic::AtomicU64,
    close: CancellationToken,
}

/// The open connections of a node. At the cap, a new connection takes the place of the one that
/// has been idle longest — no request in flight, oldest last request (a half-open connection that
/// never sent its headers counts from its accept) — so thousands of half-open connections
/// (slowloris) cannot lock a normal client out; only when every connection is busy is the new
/// one refused with a 503.
struct Conns {
    cap: usize,
    epoch: std::time::Instant,
    open: std::sync::Mutex<std::collections::HashMap<u64, Arc<Conn>>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Conns {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Registers a new connection, closing the longest-idle one at the cap; `None`: refuse.
    fn admit(&self) -> Option<(u64, Arc<Conn>)> {
        use std::sync::atomic::Ordering::Relaxed;
        let conn = Arc::new(Conn {
            active: Default::default(),
            last_start_ns: self.now_ns().into(),
            close: CancellationToken::new(),
        });
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= self.cap {
            let victim = open
                .iter()
                .filter(|(_, c)| c.active.load(Relaxed) == 0 && !c.close.is_cancelled())
                .min_by_key(|(_, c)| c.last_start_ns.load(Relaxed))
                .map(|(id, c)| (*id, c.clone()));
            let (id, victim) = victim?;
            victim.close.cancel();
            open.remove(&id);
        }
        let id = self.next_id.fetch_add(1, Relaxed);
        open.insert(id, conn.clone());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// A response body that marks its connection busy until it is done (or dropped).
struct Tracked {
    body: axum::body::Body,
    _busy: Busy,
}

struct Busy(Arc<Conn>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl http_body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves `router` on `listener` until `cancel` fires, then drains in-flight requests. Every
/// connection is HTTP/1.1 with a header-read (and keep-alive idle) timeout, and at most
/// [`connection_cap`] are open at once (see [`Conns`] for who gives way). With `tls`, every
/// connection is HTTPS: its handshake counts as part of the first request's headers (same
/// timeout, and a connection still shaking hands is idle for the cap).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    use tower::Service as _;
    let app = router.layer(axum::middleware::from_fn(crate::http::close_if_body_unread));
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let conns = Arc::new(Conns {
        cap: connection_cap(),
        epoch: std::time::Instant::now(),
        open: Default::default(),
        next_id: Default::default(),
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a transient error: never spin on it.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = cancel.cancelled() => break,
        };
        let _ = tcp.set_nodelay(true);
        let Some((id, conn)) = conns.admit() else {
            tokio::spawn(refuse(tcp, acceptor.clone(), conns.cap));
            continue;
        };
        let (app, state, registry) = (app.clone(), conn.clone(), conns.clone());
        let service =
            hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(remote));
                state.active.fetch_add(1, Relaxed);
                state.last_start_ns.store(registry.now_ns(), Relaxed);
                let busy = Busy(state.clone());
                let mut app = app.clone();
                async move {
                    let response = app.call(req).await?;
                    Ok::<_, std::convert::Infallible>(
                        response.map(|body| Tracked { body, _busy: busy }),
                    )
                }
            });
        let (http, watcher, acceptor) = (http.clone(), graceful.watcher(), acceptor.clone());
        let served = async move {
            let Some(acceptor) = acceptor else {
                let io = hyper_util::rt::TokioIo::new(tcp);
                return watcher.watch(http.serve_connection(io, service)).await;
            };
            match handshake(&acceptor, tcp).await {
                Ok(stream) => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    watcher.watch(http.serve_connection(io, service)).await
                }
                Err(e) => {
                    tracing::debug!(%remote, "tls handshake failed: {e}");
                    Ok(())
                }
            }
        };
        let registry = conns.clone();
        tokio::spawn(async move {
            tokio::select! {
                ended = served => {
                    if let Err(e) = ended {
                        tracing::debug!(%remote, "connection ended: {e}");
                    }
                }
                () = conn.close.cancelled() => {
                    tracing::debug!(%remote, "idle connection closed to make room for a new one");
                }
            }
            registry.remove(id);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown: requests still running after {SHUTDOWN_GRACE:?}, closing them");
    }
    Ok(())
}

/// The first byte of a TLS connection: a handshake record (a ClientHello).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Runs the server side of a TLS handshake within [`HEADER_READ_TIMEOUT`], so half-open
/// handshakes are closed like half-sent headers. A client that speaks plain HTTP to this port
/// gets a plain-HTTP 400 that says so, instead of a connection closed for no visible reason.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    tcp: tokio::net::TcpStream,
) -> std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let timed_out = || {
        std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no tls handshake within {HEADER_READ_TIMEOUT:?}"),
        )
    };
    let deadline = tokio::time::Instant::now() + HEADER_READ_TIMEOUT;
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(deadline, tcp.peek(&mut first))
        .await
        .map_err(|_| timed_out())??;
    if peeked == 1 && first[0] != TLS_HANDSHAKE_RECORD {
        tokio::time::timeout_at(deadline, answer_plain_http(tcp))
            .await
            .map_err(|_| timed_out())?;
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "plain http on an https port",
        ));
    }
    tokio::time::timeout_at(deadline, acceptor.accept(tcp))
        .await
        .map_err(|_| timed_out())?
}

/// Error text for a plain-HTTP request to a node that serves HTTPS only.
pub const PLAIN_HTTP_ON_TLS: &str =
    "this node serves https only: client sent an HTTP request to an HTTPS server";

/// The plain-HTTP 400 for a client that forgot `https://`; then close after reading what the
/// client sent (closing with unread input would reset the connection and lose the answer).
async fn answer_plain_http(mut tcp: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let body = format!("{{\"message\":\"{PLAIN_HTTP_ON_TLS}\",\"status\":400}}");
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(reply.as_bytes()).await;
    let _ = tcp.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    while drained < (64 << 10) {
        match tcp.read(&mut sink).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// The answer to a connection when every open one is busy: a 503 with the usual error body,
/// then close (never left waiting). On an https port the 503 goes over TLS, after a handshake
/// bounded like the rest of the answer.
async fn refuse(
    tcp: tokio::net::TcpStream,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    cap: usize,
) {
    use tokio::io::AsyncWriteExt as _;
    let body = format!(
        "{{\"message\":\"too many connections: all {cap} are busy; retry\",\"status\":503}}"
    );
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        match acceptor {
            None => {
                let mut tcp = tcp;
                let _ = tcp.write_all(reply.as_bytes()).await;
                let _ = tcp.shutdown().await;
            }
            Some(acceptor) => {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let _ = tls.write_all(reply.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            }
        }
    })
    .await;
}

/// The URL a node registers and hands to clients (redirects, the cluster map): `advertise` when
/// given (with `scheme` when it names none), else `<scheme>://<listen address>` — except that an
/// unspecified listen address (`0.0.0.0`, `::`) is useless to anyone else, so the host's primary
/// address stands in for it. `scheme` is `http`, or `https` for a node that serves TLS.
pub fn advertised_url(
    listener: &TcpListener,
    advertise: Option<&str>,
    scheme: &str,
) -> std::io::Result<String> {
    if let Some(url) = advertise {
        let url = url.trim().trim_end_matches('/');
        return Ok(if url.contains("://") {
            url.to_string()
        } else {
            format!("{scheme}://{url}")
        });
    }
    let bound = listener.local_addr()?;
    if !bound.ip().is_unspecified() {
        return Ok(format!("{scheme}://{bound}"));
    }
    let probed = primary_ip(bound.ip());
    let host = reachable_host(bound.ip(), probed);
    let how = if probed.is_some() {
        "the host's primary address"
    } else {
        "no route found, loopback"
    };
    let url = format!("{scheme}://{}", SocketAddr::new(host, bound.port()));
    tracing::info!(listen = %bound, %url, "listening on all interfaces; advertising {how} (set --advertise to override)");
    Ok(url)
}

/// The host to advertise for a listener bound to `bound`: itself when specific, else the
/// probed primary address, else loopback.
pub fn reachable_host(bound: IpAddr, probed: Option<IpAddr>) -> IpAddr {
    if !bound.is_unspecified() {
        return bound;
    }
    match probed {
        Some(ip) if !ip.is_unspecified() => ip,
        _ if bound.is_ipv6() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// The local address the OS would use to reach the outside world: "connecting" a UDP socket only
/// selects a route and a source address, no packet is sent.
pub(crate) fn primary_ip(family: IpAddr) -> Option<IpAddr> {
    let (local, remote): (SocketAddr, SocketAddr) = if family.is_ipv6() {
        (
            (Ipv6Addr::UNSPECIFIED, 0).into(),
            (
                Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888),
                53,
            )
                .into(),
        )
    } else {
        (
            (Ipv4Addr::UNSPECIFIED, 0).into(),
            (Ipv4Addr::new(8, 8, 8, 8), 53).into(),
        )
    };
    let socket = std::net::UdpSocket::bind(local).ok()?;
    socket.connect(remote).ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

impl moss_getbatch::ClusterView for Shared {
    fn node_id(&self) -> &str {
        &self.id
    }

    fn smap(&self) -> Arc<Smap> {
        self.smap.load_full()
    }

    fn config(&self) -> Arc<ClusterConfig> {
        self.config.load_full()
    }

    fn intra(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        Shared::intra(self, request)
    }

    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn neighbors_may_hold(&self, bck: &moss_types::Bck) -> bool {
        Shared::neighbors_may_hold(self, bck)
    }

    fn redundant(&self, bck: &moss_types::Bck) -> bool {
        bck.provider == moss_types::Provider::Ais
            && self.bmd.load().get(bck).is_some_and(|p| p.ec.enabled)
    }
}

/// The directory under which `promote` may read files (`MOSS_PROMOTE_ROOT`, else AIStore's
/// `/var/lib/ais/promote`). Set where the node starts, never through the API: a client that
/// could move it could read any file of the host.
pub fn promote_root() -> String {
    std::env::var("MOSS_PROMOTE_ROOT")
        .ok()
        .filter(|r| r.starts_with('/'))
        .unwrap_or_else(|| "/var/lib/ais/promote".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_listen_addresses_advertise_a_reachable_host() {
        let any4 = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
        let lan: IpAddr = "10.1.2.3".parse().unwrap();
        let specific: IpAddr = "192.168.0.7".parse().unwrap();
        assert_eq!(reachable_host(specific, Some(lan)), specific);
        assert_eq!(reachable_host(any4, Some(lan)), lan);
        assert_eq!(reachable_host(any4, None), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(reachable_host(any6, None), IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert_eq!(
            reachable_host(any4, Some(any4)),
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        );
    }

    #[tokio::test]
    async fn advertised_urls_are_never_unspecified() {
        let any = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = any.local_addr().unwrap().port();
        let url = advertised_url(&any, None, "http").unwrap();
        assert!(!url.contains("0.0.0.0"), "{url}");
        assert!(url.ends_with(&format!(":{port}")), "{url}");
        // Whatever was chosen must reach this listener.
        let addr = url.trim_start_matches("http://").to_string();
        let accept = tokio::spawn(async move { any.accept().await.map(|_| ()) });
        tokio::net::TcpStream::connect(addr).await.unwrap();
        accept.await.unwrap().unwrap();

        let local = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let bound = local.local_addr().unwrap();
        assert_eq!(
            advertised_url(&local, None, "http").unwrap(),
            format!("http://{bound}")
        );
        assert_eq!(
            advertised_url(&local, Some("node7.example:9000/"), "http").unwrap(),
            "http://node7.example:9000"
        );
        assert_eq!(
            advertised_url(&local, Some("https://n:1"), "http").unwrap(),
            "https://n:1"
        );
        assert_eq!(
            advertised_url(&local, None, "https").unwrap(),
            format!("https://{bound}")
        );
        assert_eq!(
            advertised_url(&local, Some("node7.example:9000"), "https").unwrap(),
            "https://node7.example:9000"
        );
    }
}
