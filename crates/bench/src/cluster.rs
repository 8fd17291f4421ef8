//! The moss cluster under test: one proxy and N targets as separate processes (pinned to the
//! server CPU), started and stopped by the bench.
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::http::{Peer, Req, read_json, read_text};
use crate::sys::{self, Pinning};

/// A server process the bench started.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub addr: SocketAddr,
    /// The node's data directory.
    pub dir: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Running cluster.
pub struct Cluster {
    pub proxy: Proc,
    pub targets: Vec<Proc>,
}

/// A loopback address free now, for a server process to listen on. Picked below Linux's
/// ephemeral range (32768–60999 by default): a port the kernel hands out for an outgoing
/// connection or a `:0` listener — this process's cells, or another test running beside it —
/// could take it between this check and the server's own bind.
pub fn free_addr() -> Result<SocketAddr> {
    use std::hash::{BuildHasher, Hasher};
    const PORTS: std::ops::Range<u64> = 20_000..32_000;
    for attempt in 0..200u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(attempt);
        let port = PORTS.start + h.finish() % (PORTS.end - PORTS.start);
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port as u16)) {
            return Ok(l.local_addr()?);
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").context("bind a free port")?;
    Ok(l.local_addr()?)
}

/// Environment changes for the server processes: `(name, Some(value))` sets, `(name, None)`
/// removes.
pub type Env<'a> = &'a [(&'a str, Option<&'a str>)];

#[allow(clippy::too_many_arguments)]
fn spawn(
    pin: &Pinning,
    bin: &Path,
    args: &[String],
    log: &Path,
    name: &str,
    addr: SocketAddr,
    dir: PathBuf,
    env: Env<'_>,
) -> Result<Proc> {
    let out = File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let mut cmd = pin.server_command(bin);
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let child = cmd
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("start {} ({name})", bin.display()))?;
    Ok(Proc {
        name: name.into(),
        child,
        addr,
        dir,
    })
}

impl Cluster {
    /// Starts the proxy and `n` targets with data under `root` (logs in `logs`) and waits until every target joined.
    pub async fn start(
        pin: &Pinning,
        bin: &Path,
        root: &Path,
        logs: &Path,
        n: usize,
    ) -> Result<Cluster> {
        Cluster::start_with_env(pin, bin, root, logs, n, &[]).await
    }

    /// [`Cluster::start`] with `env` applied to every node's environment.
    pub async fn start_with_env(
        pin: &Pinning,
        bin: &Path,
        root: &Path,
        logs: &Path,
        n: usize,
        env: Env<'_>,
    ) -> Result<Cluster> {
        std::fs::create_dir_all(logs)?;
        let paddr = free_addr()?;
        let pdir = root.join("proxy");
        let secret = pdir.join("cluster.secret");
        let proxy = spawn(
            pin,
            bin,
            &[
                "proxy".into(),
                "--listen".into(),
                paddr.to_string(),
                "--data".into(),
                pdir.display().to_string(),
            ],
            &logs.join("proxy.log"),
            "proxy",
            paddr,
            pdir,
            env,
        )?;
        let mut cluster = Cluster {
            proxy,
            targets: Vec::new(),
        };
        let mut peer = Peer::new();
        cluster
            .wait_http(&mut peer, paddr, Duration::from_secs(30))
            .await?;
        for t in 0..n {
            let taddr = free_addr()?;
            let tdir = root.join(format!("t{t}"));
            let proc = spawn(
                pin,
                bin,
                &[
                    "target".into(),
                    "--listen".into(),
                    taddr.to_string(),
                    "--proxy".into(),
                    format!("http://{paddr}"),
                    "--data".into(),
                    tdir.display().to_string(),
                    // The proxy created it at its start (wait_http above).
                    "--cluster-secret-file".into(),
                    secret.display().to_string(),
                ],
                &logs.join(format!("target{t}.log")),
                &format!("target{t}"),
                taddr,
                tdir,
                env,
            )?;
            cluster.targets.push(proc);
        }
        cluster.wait_joined(&mut peer, n).await?;
        Ok(cluster)
    }

    /// Server pids (for CPU accounting).
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(&self.proxy)
            .chain(&self.targets)
            .map(Proc::pid)
            .collect()
    }

    pub fn target_pids(&self) -> Vec<u32> {
        self.targets.iter().map(Proc::pid).collect()
    }

    pub fn target_addrs(&self) -> Vec<SocketAddr> {
        self.targets.iter().map(|t| t.addr).collect()
    }

    pub fn target_dirs(&self) -> Vec<PathBuf> {
        self.targets.iter().map(|t| t.dir.clone()).collect()
    }

    /// Fails if a server process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        for p in std::iter::once(&mut self.proxy).chain(self.targets.iter_mut()) {
            if let Some(status) = p.child.try_wait()? {
                bail!("{} exited: {status} (see its log)", p.name);
            }
        }
        Ok(())
    }

    async fn wait_http(
        &mut self,
        peer: &mut Peer,
        addr: SocketAddr,
        limit: Duration,
    ) -> Result<()> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok(resp) = peer
                .send(addr, &Req::get("/v1/health"), "/v1/health", None)
                .await
            {
                let _ = read_text(resp).await;
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!("{addr} did not answer within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the proxy's and every target's cluster map lists `n` targets.
    async fn wait_joined(&mut self, peer: &mut Peer, n: usize) -> Result<()> {
        let start = Instant::now();
        let mut nodes = vec![self.proxy.addr];
        nodes.extend(self.targets.iter().map(|t| t.addr));
        for addr in nodes {
            loop {
                self.check_alive()?;
                let path = "/v1/daemon?what=smap";
                let joined = match peer.send(addr, &Req::get(path), path, None).await {
                    Ok(resp) => read_json(resp)
                        .await
                        .ok()
                        .and_then(|v| v["tmap"].as_object().map(|m| m.len()))
                        .unwrap_or(0),
                    Err(_) => 0,
                };
                if joined >= n {
                    break;
                }
                if start.elapsed() > Duration::from_secs(60) {
                    bail!("cluster map of {addr} lists {joined} of {n} targets after 60 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Stops every process: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        let procs: Vec<&mut Proc> = self
            .targets
            .iter_mut()
            .chain(std::iter::once(&mut self.proxy))
            .collect();
        stop_all(procs);
    }
}

/// Stops processes: SIGTERM to all, wait up to 5 s, then SIGKILL.
pub fn stop_all(procs: Vec<&mut Proc>) {
    for p in &procs {
        let _ = sys::terminate(p.pid());
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    for p in procs {
        loop {
            match p.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}
