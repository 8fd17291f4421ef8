//! `moss local`: one proxy and N targets in one process, each on its own loopback port, talking
//! HTTP (or, with `tls`, HTTPS) to each other exactly like separate processes.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::proxy::{ProxyHandle, start_proxy};
use crate::target::{TargetHandle, TargetOptions, start_target};

/// A running in-process cluster.
pub struct LocalCluster {
    pub proxy: ProxyHandle,
    /// The AuthN service, with `--auth`.
    pub authn: Option<crate::authn::AuthnHandle>,
    pub targets: Vec<TargetHandle>,
    pub cancel: CancellationToken,
    /// With TLS: the certificate every node serves, which is also the CA clients must trust.
    pub ca_file: Option<PathBuf>,
}

/// Options of `moss local`.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    pub listen: SocketAddr,
    pub targets: usize,
    /// Mountpaths per target: `mp`, `mp1`, `mp2`, … under each target's directory.
    pub mountpaths: usize,
    pub data: PathBuf,
    /// Credentials and endpoints of the clouds behind remote buckets.
    pub cloud: moss_backend::CloudEnv,
    /// Run an AuthN service too and require tokens (`moss local --auth`).
    pub auth: bool,
    /// Serve HTTPS with a self-signed certificate in `data/tls` (made on first use).
    pub tls: bool,
}

/// The admin password of `moss local --auth` when `AIS_AUTHN_SU_PASS` is not set.
pub const LOCAL_ADMIN_PASS: &str = "admin";

impl LocalCluster {
    /// Starts the proxy on `listen` and targets on the following ports (or on ephemeral ports when
    /// `listen` has port 0), with data under `data/proxy` and `data/target<i>`.
    pub async fn start(opts: &LocalOptions) -> anyhow::Result<LocalCluster> {
        // Such a cluster would report ready and then fail every write.
        anyhow::ensure!(
            opts.targets > 0,
            "a local cluster needs at least one target (--targets 1 or more)"
        );
        let tls = if opts.tls {
            local_tls(&opts.data, opts.listen)?
        } else {
            crate::tls::NodeTls::default()
        };
        let cancel = CancellationToken::new();
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("listen on {}", opts.listen))?;
        let authn = match opts.auth {
            true => {
                let port = match opts.listen.port() {
                    0 => 0,
                    p => p + 1 + opts.targets as u16,
                };
                let addr = SocketAddr::new(opts.listen.ip(), port);
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listen on {addr} for authn"))?;
                let authn_opts = crate::authn::AuthnOptions::from_env(
                    &opts.data.join("authn"),
                    LOCAL_ADMIN_PASS,
                );
                Some((
                    crate::authn::start_authn(listener, &authn_opts, &tls, cancel.clone()).await?,
                    authn_opts.secret_file,
                ))
            }
            false => None,
        };
        let proxy = start_proxy(
            listener,
            &opts.data.join("proxy"),
            None,
            opts.cloud.clone(),
            authn.as_ref().map(|(_, secret)| secret.as_path()),
            &tls,
            cancel.clone(),
        )
        .await?;
        let authn = authn.map(|(handle, _)| handle);
        if let Some(handle) = &authn {
            let id = proxy.proxy.shared.smap.load().uuid.clone();
            handle
                .authn
                .register_or_update(moss_authn::store::Cluster {
                    id,
                    alias: "local".into(),
                    urls: vec![proxy.url.clone()],
                })
                .map_err(|e| anyhow::anyhow!("register the cluster with authn: {e}"))?;
        }
        let mut targets = Vec::with_capacity(opts.targets);
        for i in 0..opts.targets {
            let addr = if opts.listen.port() == 0 {
                SocketAddr::new(opts.listen.ip(), 0)
            } else {
                SocketAddr::new(opts.listen.ip(), opts.listen.port() + 1 + i as u16)
            };
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listen on {addr} for target {i}"))?;
            let data_dir = target_dir(&opts.data, i);
            let options = TargetOptions {
                mountpaths: (0..opts.mountpaths.max(1))
                    .map(|k| match k {
                        0 => data_dir.join("mp"),
                        k => data_dir.join(format!("mp{k}")),
                    })
                    .collect(),
                data_dir,
                proxy_url: proxy.url.clone(),
                advertise_url: None,
                cloud: opts.cloud.clone(),
                secret_file: Some(opts.data.join("proxy").join(crate::intra::SECRET_FILE)),
                tls: tls.clone(),
            };
            targets.push(start_target(listener, options, cancel.clone()).await?);
        }
        Ok(LocalCluster {
            proxy,
            authn,
            targets,
            cancel,
            ca_file: tls.ca,
        })
    }

    /// Waits until the proxy's map holds all targets and every target has joined.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let smap = self.proxy.proxy.shared.smap.load();
            let all_in_map = self
                .targets
                .iter()
                .all(|t| smap.tmap.contains_key(&t.target.shared.id));
            let all_synced = self
                .targets
                .iter()
                .all(|t| t.target.shared.smap.load().version >= smap.version);
            if all_in_map && all_synced {
                return Ok(());
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "cluster not ready after {timeout:?}: {} of {} targets joined",
                    smap.tmap.len(),
                    self.targets.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every node, draining in-flight requests for at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        self.cancel.cancel();
        let mut tasks = vec![self.proxy.task];
        tasks.extend(self.authn.map(|a| a.task));
        tasks.extend(self.targets.into_iter().map(|t| t.task));
        let _ = tokio::time::timeout(grace, futures::future::join_all(tasks)).await;
    }
}

/// TLS of a local cluster: one self-signed certificate (in `data/tls`) that every node serves
/// and trusts, for `localhost`, `127.0.0.1` and the address the nodes advertise.
fn local_tls(data: &Path, listen: SocketAddr) -> anyhow::Result<crate::tls::NodeTls> {
    let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let advertised = crate::node::reachable_host(listen.ip(), crate::node::primary_ip(listen.ip()));
    if !hosts.contains(&advertised.to_string()) {
        hosts.push(advertised.to_string());
    }
    let identity = crate::tls::ensure_self_signed(&data.join("tls"), &hosts)
        .context("prepare the self-signed TLS certificate")?;
    Ok(crate::tls::NodeTls {
        ca: Some(identity.cert.clone()),
        identity: Some(identity),
    })
}

/// Data directory of target `i` in a local cluster.
pub fn target_dir(data: &Path, i: usize) -> PathBuf {
    data.join(format!("target{i}"))
}
