//! `--remote`: GetBatch over remote (`aws`) buckets whose objects a local S3 server (s3s-fs)
//! holds, against a client that reads the same objects straight from that S3 server.
//!
//! Per object size, every round runs three epochs over every object once, in the seeded order:
//! - D: 64 concurrent keep-alive GETs (SigV4-signed) straight to s3s-fs;
//! - C: cold epoch: GetBatch through the proxy (B per request, 4 in flight) with nothing cached:
//!   the owning targets cold-GET every object from s3s-fs (caching it) and serve it;
//! - W: warm epoch: the same GetBatch requests again, now served from the cluster.
//!
//! Every round starts a fresh cluster (nothing cached); the cached files are counted on the
//! targets' disks before C (none) and after it (all of them). After the last round the buckets
//! are evicted (`evict-remote-bck`, `keep_bck_md=true`) and the count checked again (none).
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use futures::future::join_all;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use md5::Digest as _;
use ring::{digest, hmac};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::timeout;
use xxhash_rust::xxh64::xxh64;

use crate::cells::{self, Ctx};
use crate::cluster::{self, Cluster};
use crate::data::{Catalog, DataSet, Plan, SizeSet, content};
use crate::http::{OP_TIMEOUT, Peer, Req, read_text};
use crate::report::rate;
use crate::stats::Spread;
use crate::sys::{self, Pinning};

/// Credentials s3s-fs is started with (and the nodes and the direct client sign with).
const ACCESS_KEY: &str = "moss-bench";
const SECRET_KEY: &str = "moss-bench-secret-key";
const REGION: &str = "us-east-1";
/// GetBatch requests in flight in C and W.
const BATCHES_IN_FLIGHT: usize = 4;
/// Concurrent GETs of the direct client D.
const DIRECT_K: usize = 64;
/// A worker gives up an epoch after this many failed requests.
const MAX_ERRORS: u64 = 20;
const MIB: f64 = (1u64 << 20) as f64;

/// Where s3s-fs runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum S3Cpu {
    /// On the server CPU, with the cluster (the default: every server on CPU0).
    Server,
    /// On the client CPU, with the bench.
    Client,
    /// On any CPU (the scheduler decides).
    Any,
}

impl S3Cpu {
    pub fn parse(s: &str) -> Result<S3Cpu> {
        match s.trim().to_ascii_lowercase().as_str() {
            "server" | "0" => Ok(S3Cpu::Server),
            "client" | "1" => Ok(S3Cpu::Client),
            "any" | "none" => Ok(S3Cpu::Any),
            other => bail!("--s3-cpu {other:?}: expected server, client or any"),
        }
    }

    fn describe(self, pin: &Pinning) -> String {
        if !pin.enabled {
            return "unpinned (pinning off)".into();
        }
        match self {
            S3Cpu::Server => format!("on CPU{} with the cluster", pin.server_cpu),
            S3Cpu::Client => format!("on CPU{} with the bench client", pin.client_cpu),
            S3Cpu::Any => "on any CPU".into(),
        }
    }
}

/// What `--remote` needs from the command line.
pub struct Opts<'a> {
    pub pin: &'a Pinning,
    pub moss_bin: &'a Path,
    pub s3s_bin: &'a Path,
    pub s3_cpu: S3Cpu,
    pub work: &'a Path,
    pub targets: usize,
    pub rounds: usize,
    pub batch: usize,
    pub plan: Plan,
    pub keep_data: bool,
}

/// What `--remote` produced.
pub struct Outcome {
    pub text: String,
    pub json: Value,
    pub verified: bool,
}

fn elapsed(t: Instant) -> String {
    format!("[{:6.1}s]", t.elapsed().as_secs_f64())
}

/// Runs the remote-bucket cells; cleans up its data unless `keep_data`.
pub async fn run(opts: Opts<'_>) -> Result<Outcome> {
    let s3root = opts.work.join("s3root");
    let data = opts.work.join("remote-data");
    let result = run_inner(&opts, &s3root, &data).await;
    if !opts.keep_data {
        let _ = std::fs::remove_dir_all(&s3root);
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

async fn run_inner(opts: &Opts<'_>, s3root: &Path, data: &Path) -> Result<Outcome> {
    let t0 = Instant::now();
    let pin = opts.pin;
    let s3s_version = sys::command_line(&opts.s3s_bin.display().to_string(), &["--version"])
        .with_context(|| {
            format!(
                "{} does not run: install it (scripts/bench.sh --remote does) or pass --s3s-fs",
                opts.s3s_bin.display()
            )
        })?;
    eprintln!("{} building the data set catalog", elapsed(t0));
    let ds = DataSet::build(&opts.plan);
    eprintln!(
        "{} writing {:.0} MB into s3s-fs's directory {}",
        elapsed(t0),
        ds.sizes
            .iter()
            .map(|s| ds.cat.bytes_of(&s.ids))
            .sum::<u64>() as f64
            / 1e6,
        s3root.display()
    );
    write_s3_root(s3root, &ds)?;
    let logs = opts.work.join("logs");
    std::fs::create_dir_all(&logs)?;
    let mut s3 = S3Server::start(
        pin,
        opts.s3_cpu,
        opts.s3s_bin,
        s3root,
        &logs.join("s3s-fs.log"),
    )?;
    let signer = Signer::new(ACCESS_KEY, SECRET_KEY, REGION);
    let api = S3Api {
        addr: s3.addr,
        host: s3.addr.to_string(),
        signer: &signer,
    };
    let mut probe = S3Conn::default();
    s3.wait_ready(&api, &mut probe).await?;
    eprintln!(
        "{} s3s-fs ({s3s_version}) at {} {}; checking its listing",
        elapsed(t0),
        s3.addr,
        opts.s3_cpu.describe(pin)
    );
    for set in &ds.sizes {
        check_listing(&api, &mut probe, &ds.cat, set).await?;
    }

    let endpoint = format!("http://{}", s3.addr);
    let env: Vec<(&str, Option<&str>)> = vec![
        ("AWS_ENDPOINT_URL", Some(endpoint.as_str())),
        ("AWS_ACCESS_KEY_ID", Some(ACCESS_KEY)),
        ("AWS_SECRET_ACCESS_KEY", Some(SECRET_KEY)),
        ("AWS_REGION", Some(REGION)),
        // Nothing else from the caller's environment may redirect or re-sign the requests.
        ("AWS_ENDPOINT_URL_S3", None),
        ("AWS_ENDPOINT", None),
        ("S3_ENDPOINT", None),
        ("AWS_SESSION_TOKEN", None),
        ("AWS_PROFILE", None),
        ("AWS_DEFAULT_REGION", None),
    ];
    eprintln!(
        "{} rounds: a fresh moss cluster each (proxy + {} targets, AWS_ENDPOINT_URL={endpoint})",
        elapsed(t0),
        opts.targets
    );
    let s3_pids = vec![s3.pid()];
    let mut conns: Vec<S3Conn> = (0..DIRECT_K).map(|_| S3Conn::default()).collect();
    for c in &mut conns {
        c.connect(api.addr).await?;
    }
    let mut cells: Vec<SizeCells> = ds
        .sizes
        .iter()
        .map(|s| SizeCells {
            label: s.label.clone(),
            size: s.size,
            count: s.ids.len(),
            bucket: s.bucket.clone(),
            d: Vec::new(),
            c: Vec::new(),
            w: Vec::new(),
            evict_secs: Vec::new(),
        })
        .collect();
    for round in 1..=opts.rounds {
        // A fresh cluster (new data directories) per round: nothing is cached. Evicting instead
        // would delete every cached file right before the next cold epoch, and on ext4 without
        // a journal (this machine's root file system) creating files right after mass deletions
        // is much slower for a minute or more (`recently_deleted` in the inode allocator).
        // Old rounds' data is removed at the end.
        let mut cluster = Cluster::start_with_env(
            pin,
            opts.moss_bin,
            &data.join(format!("r{round}")),
            &logs.join(format!("r{round}")),
            opts.targets,
            &env,
        )
        .await?;
        let moss_pids = cluster.pids();
        let ctx = Ctx {
            cat: &ds.cat,
            proxy: cluster.proxy.addr,
            targets: cluster.target_addrs(),
            nginx: None,
            pin,
        };
        let dirs = cluster.target_dirs();
        let mut pool: Vec<Peer> = (0..BATCHES_IN_FLIGHT).map(|_| Peer::new()).collect();
        for peer in &mut pool {
            peer.warm(ctx.proxy).await?;
            for &t in &ctx.targets {
                peer.warm(t).await?;
            }
        }
        let pids = Pids {
            s3: &s3_pids,
            moss: &moss_pids,
        };
        for (set, cell) in ds.sizes.iter().zip(cells.iter_mut()) {
            let label = &set.label;
            // The first access adds the bucket to the cluster (as AIStore: a HEAD of the cloud
            // bucket).
            head_bucket(&mut pool[0], ctx.proxy, &set.bucket).await?;
            let cached = cached_files(&dirs, &set.bucket);
            ensure!(
                cached == 0,
                "{label}: {cached} objects cached before the cold epoch"
            );
            let d = direct_epoch(&mut conns, &api, &ds.cat, set, pids).await;
            log_epoch(t0, label, "D", round, opts.rounds, &d);
            cell.d.push(d);
            let path = format!("/v1/ml/moss/{}?provider=aws", set.bucket);
            let c = batch_epoch(&mut pool, &ctx, set, &path, opts.batch, pids).await;
            log_epoch(t0, label, "C", round, opts.rounds, &c);
            cell.c.push(c);
            let cached = cached_files(&dirs, &set.bucket);
            if cached != set.ids.len() as u64 {
                eprintln!(
                    "warning: {label}: {cached} of {} objects cached after the cold epoch",
                    set.ids.len()
                );
            }
            let w = batch_epoch(&mut pool, &ctx, set, &path, opts.batch, pids).await;
            log_epoch(t0, label, "W", round, opts.rounds, &w);
            cell.w.push(w);
            cluster.check_alive()?;
            s3.check_alive()?;
        }
        if round == opts.rounds {
            // Not timed as a cell: eviction empties the cache (and the next W would be cold).
            for (set, cell) in ds.sizes.iter().zip(cells.iter_mut()) {
                let evict = Instant::now();
                evict_bucket(&mut pool[0], ctx.proxy, &set.bucket).await?;
                cell.evict_secs.push(evict.elapsed().as_secs_f64());
                let cached = cached_files(&dirs, &set.bucket);
                ensure!(
                    cached == 0,
                    "{}: {cached} cached objects remain after evict-remote-bck",
                    set.label
                );
                eprintln!(
                    "{} {:>5} evict-remote-bck of {} objects: {:.2} s, none left",
                    elapsed(t0),
                    set.label,
                    set.ids.len(),
                    evict.elapsed().as_secs_f64()
                );
            }
        }
        cluster.stop();
    }
    s3.stop();

    let verified = cells.iter().all(SizeCells::verified);
    let placement = opts.s3_cpu.describe(pin);
    let text = table(&cells, opts, &s3s_version, &placement);
    let json = json!({
        "mode": "remote",
        "s3_server": {"name": "s3s-fs", "version": s3s_version, "placement": placement, "cpu": opts.s3_cpu},
        "config": {
            "targets": opts.targets,
            "rounds": opts.rounds,
            "batch": opts.batch,
            "batches_in_flight": BATCHES_IN_FLIGHT,
            "direct_concurrency": DIRECT_K,
        },
        "env": {
            "kernel": sys::kernel(),
            "nproc": sys::online_cpus(),
            "cpu_model": sys::cpu_model(),
            "pinning": {"enabled": pin.enabled, "server_cpu": pin.server_cpu, "client_cpu": pin.client_cpu, "note": pin.note},
            "wall_secs": t0.elapsed().as_secs_f64(),
        },
        "sizes": cells.iter().map(SizeCells::to_json).collect::<Vec<_>>(),
        "verified": verified,
    });
    Ok(Outcome {
        text,
        json,
        verified,
    })
}

/// The processes whose CPU time each epoch reports.
#[derive(Clone, Copy)]
struct Pids<'a> {
    s3: &'a [u32],
    moss: &'a [u32],
}

/// One epoch: every object of a size once.
#[derive(Debug, Clone, Default, Serialize)]
struct Epoch {
    objects: u64,
    bytes: u64,
    secs: f64,
    /// CPU time of s3s-fs, of the moss processes, and of the bench during the epoch.
    s3_us: f64,
    moss_us: f64,
    cli_us: f64,
    /// Bytes s3s-fs and the moss processes read from the disk (`read_bytes` of `/proc/<pid>/io`):
    /// non-zero when the data was not all in the page cache (this VM pages out page-cache data
    /// that has not been touched for about a minute).
    s3_disk_read: u64,
    moss_disk_read: u64,
    /// CPU time of every other process on the machine during the epoch, in CPUs (0.5 = half of
    /// one CPU on average): noise.
    other_cpus: f64,
    checksums: u64,
    errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
    /// Objects the epoch had to fetch (all of the size).
    expected: u64,
}

impl Epoch {
    fn obj_per_s(&self) -> f64 {
        if self.secs > 0.0 {
            self.objects as f64 / self.secs
        } else {
            0.0
        }
    }

    fn mib_per_s(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 / MIB / self.secs
        } else {
            0.0
        }
    }

    fn verified(&self) -> bool {
        self.errors == 0 && self.objects == self.expected && self.expected > 0
    }
}

fn log_epoch(t0: Instant, label: &str, id: &str, round: usize, rounds: usize, e: &Epoch) {
    let n = e.objects.max(1) as f64;
    eprintln!(
        "{} {label:>5} {id} round {round}/{rounds}: {:>8} obj/s {:>8.1} MiB/s in {:6.2} s  s3s-fs {:6.1} µs/obj  moss {:6.1} µs/obj  client {:5.1} µs/obj  other {:.2} CPU  disk reads s3s-fs {:.1} / moss {:.1} MiB{}",
        elapsed(t0),
        rate(e.obj_per_s()),
        e.mib_per_s(),
        e.secs,
        e.s3_us / n,
        e.moss_us / n,
        e.cli_us / n,
        e.other_cpus,
        e.s3_disk_read as f64 / MIB,
        e.moss_disk_read as f64 / MIB,
        e.first_error
            .as_deref()
            .map(|m| format!("  ERROR x{}: {m}", e.errors))
            .unwrap_or_default()
    );
}

/// Counters of one epoch, shared by its workers (all on the client thread).
struct Tally {
    next: Cell<usize>,
    objects: Cell<u64>,
    bytes: Cell<u64>,
    checksums: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            next: Cell::new(0),
            objects: Cell::new(0),
            bytes: Cell::new(0),
            checksums: Cell::new(0),
            errors: Cell::new(0),
            first_error: RefCell::new(None),
        }
    }

    /// The next unit of work (an index), while there is any and errors are few.
    fn take(&self, units: usize) -> Option<usize> {
        let i = self.next.get();
        if i >= units || self.errors.get() >= MAX_ERRORS {
            return None;
        }
        self.next.set(i + 1);
        Some(i)
    }

    fn ok(&self, objects: u64, bytes: u64, checksums: u64) {
        self.objects.set(self.objects.get() + objects);
        self.bytes.set(self.bytes.get() + bytes);
        self.checksums.set(self.checksums.get() + checksums);
    }

    fn record<T>(&self, r: Result<Result<T>, tokio::time::error::Elapsed>) -> Option<T> {
        let err = match r {
            Ok(Ok(v)) => return Some(v),
            Ok(Err(e)) => e,
            Err(_) => anyhow!("request timed out after {OP_TIMEOUT:?}"),
        };
        self.errors.set(self.errors.get() + 1);
        let mut first = self.first_error.borrow_mut();
        if first.is_none() {
            *first = Some(format!("{err:#}"));
        }
        None
    }
}

/// CPU counters at the start of an epoch.
struct Clock {
    start: Instant,
    s3: u64,
    moss: u64,
    cli: u64,
    machine: u64,
    s3_read: u64,
    moss_read: u64,
}

/// Bytes the processes read from storage so far (`read_bytes` of `/proc/<pid>/io`).
fn disk_read_bytes(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(format!("/proc/{p}/io")).ok()?;
            text.lines()
                .find_map(|l| l.strip_prefix("read_bytes:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
        .sum()
}

/// Busy clock ticks of the whole machine (all CPUs; `/proc/stat`).
fn machine_busy_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    v.iter().sum::<u64>().saturating_sub(idle)
}

impl Clock {
    fn start(pids: Pids<'_>) -> Clock {
        Clock {
            s3: sys::total_cpu_ticks(pids.s3),
            moss: sys::total_cpu_ticks(pids.moss),
            cli: sys::self_cpu_ticks(),
            machine: machine_busy_ticks(),
            s3_read: disk_read_bytes(pids.s3),
            moss_read: disk_read_bytes(pids.moss),
            start: Instant::now(),
        }
    }

    fn finish(self, pids: Pids<'_>, tally: Tally, expected: usize) -> Epoch {
        let secs = self.start.elapsed().as_secs_f64();
        let s3 = sys::total_cpu_ticks(pids.s3).saturating_sub(self.s3);
        let moss = sys::total_cpu_ticks(pids.moss).saturating_sub(self.moss);
        let cli = sys::self_cpu_ticks().saturating_sub(self.cli);
        let busy = machine_busy_ticks().saturating_sub(self.machine);
        let other = busy.saturating_sub(s3 + moss + cli);
        Epoch {
            objects: tally.objects.get(),
            bytes: tally.bytes.get(),
            secs,
            s3_us: sys::ticks_to_us(s3),
            moss_us: sys::ticks_to_us(moss),
            cli_us: sys::ticks_to_us(cli),
            other_cpus: sys::ticks_to_us(other) / 1e6 / secs.max(1e-9),
            s3_disk_read: disk_read_bytes(pids.s3).saturating_sub(self.s3_read),
            moss_disk_read: disk_read_bytes(pids.moss).saturating_sub(self.moss_read),
            checksums: tally.checksums.get(),
            errors: tally.errors.get(),
            first_error: tally.first_error.into_inner(),
            expected: expected as u64,
        }
    }
}

/// D: every object of `set` once, `conns.len()` signed GETs in flight straight to s3s-fs.
async fn direct_epoch(
    conns: &mut [S3Conn],
    api: &S3Api<'_>,
    cat: &Catalog,
    set: &SizeSet,
    pids: Pids<'_>,
) -> Epoch {
    let tally = Tally::new();
    let clock = Clock::start(pids);
    let n = set.perm.len();
    let tally_ref = &tally;
    let workers = conns.iter_mut().map(|conn| async move {
        while let Some(i) = tally_ref.take(n) {
            let id = set.perm[i];
            let r = timeout(OP_TIMEOUT, direct_get(conn, api, cat, set, id)).await;
            if let Some((bytes, checksums)) = tally_ref.record(r) {
                tally_ref.ok(1, bytes, checksums);
            }
        }
    });
    join_all(workers).await;
    clock.finish(pids, tally, n)
}

/// The object name of catalog item `id` of `set` (its key in the S3 bucket).
fn objname<'c>(cat: &'c Catalog, set: &SizeSet, id: u32) -> &'c str {
    let name = &cat.item(id).tar_name;
    name.strip_prefix(set.bucket.as_str())
        .and_then(|n| n.strip_prefix('/'))
        .unwrap_or(name)
}

/// One direct GET, its body read to the end: length and (sampled ids) checksum checked.
async fn direct_get(
    conn: &mut S3Conn,
    api: &S3Api<'_>,
    cat: &Catalog,
    set: &SizeSet,
    id: u32,
) -> Result<(u64, u64)> {
    let path = format!(
        "/{}/{}",
        set.bucket,
        uri_encode(objname(cat, set, id), false)
    );
    let resp = conn.get(api, &path, "").await?;
    let status = resp.status();
    if status != StatusCode::OK {
        let text = read_text(resp).await;
        bail!("GET {path}: {status}: {}", text.trim());
    }
    cells::read_verified(resp.into_body(), cat, id)
        .await
        .with_context(|| format!("GET {path}"))
}

/// C and W: every object of `set` once, GetBatch of `b` (in the seeded order), 4 in flight;
/// every archive parsed while it streams and checked member by member.
async fn batch_epoch(
    pool: &mut [Peer],
    ctx: &Ctx<'_>,
    set: &SizeSet,
    path: &str,
    b: usize,
    pids: Pids<'_>,
) -> Epoch {
    let chunks: Vec<&[u32]> = set.perm.chunks(b.max(1)).collect();
    let tally = Tally::new();
    let clock = Clock::start(pids);
    let (tally_ref, chunks_ref) = (&tally, &chunks);
    let workers = pool.iter_mut().map(|peer| async move {
        while let Some(i) = tally_ref.take(chunks_ref.len()) {
            let ids = chunks_ref[i].to_vec();
            let r = timeout(
                OP_TIMEOUT,
                cells::fetch_batch(peer, ctx, path, ids, None, false),
            )
            .await;
            if let Some(out) = tally_ref.record(r) {
                tally_ref.ok(out.objects, out.bytes, out.checksums);
            }
        }
    });
    join_all(workers).await;
    clock.finish(pids, tally, set.perm.len())
}

/// `HEAD /v1/buckets/<b>?provider=aws` through the proxy.
async fn head_bucket(peer: &mut Peer, proxy: SocketAddr, bucket: &str) -> Result<()> {
    let path = format!("/v1/buckets/{bucket}?provider=aws");
    bucket_call(peer, proxy, Method::HEAD, &path, Bytes::new())
        .await
        .with_context(|| format!("HEAD s3://{bucket}"))
}

/// `DELETE /v1/buckets/<b>?provider=aws&keep_bck_md=true {"action":"evict-remote-bck"}`: drops
/// every cached copy (the call waits for the job).
async fn evict_bucket(peer: &mut Peer, proxy: SocketAddr, bucket: &str) -> Result<()> {
    let path = format!("/v1/buckets/{bucket}?provider=aws&keep_bck_md=true");
    let body = Bytes::from_static(b"{\"action\":\"evict-remote-bck\"}");
    bucket_call(peer, proxy, Method::DELETE, &path, body)
        .await
        .with_context(|| format!("evict s3://{bucket}"))
}

/// One bucket-level call through the proxy (redirects followed); a non-2xx is an error.
async fn bucket_call(
    peer: &mut Peer,
    proxy: SocketAddr,
    method: Method,
    path: &str,
    body: Bytes,
) -> Result<()> {
    let json = !body.is_empty();
    let req = Req {
        method,
        path,
        body,
        json,
        range: None,
    };
    let resp = peer.send_follow(proxy, &req, None).await?;
    let status = resp.status();
    let text = read_text(resp).await;
    ensure!(status.is_success(), "{status} {}", text.trim());
    Ok(())
}

/// Objects of `bucket` cached on the targets (files under `<dir>/mp/@aws/<bucket>/%ob/`).
fn cached_files(target_dirs: &[PathBuf], bucket: &str) -> u64 {
    fn walk(dir: &Path) -> u64 {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        rd.filter_map(|e| e.ok())
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => walk(&e.path()),
                Ok(t) if t.is_file() => 1,
                _ => 0,
            })
            .sum()
    }
    target_dirs
        .iter()
        .map(|d| walk(&d.join("mp").join("@aws").join(bucket).join("%ob")))
        .sum()
}

/// Writes every object of `ds` into s3s-fs's directory as its own PUT would leave it: the file
/// `<root>/<bucket>/<key>`, plus `.bucket-<b64>.object-<b64>.internal.json` with the MD5 ETag
/// and an empty `.metadata.json` (without the ETag file s3s-fs would hash the whole object on
/// every GET).
fn write_s3_root(root: &Path, ds: &DataSet) -> Result<()> {
    if root.exists() {
        std::fs::remove_dir_all(root).with_context(|| format!("clean {}", root.display()))?;
    }
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    for set in &ds.sizes {
        let dir = root.join(&set.bucket);
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        for &id in &set.ids {
            let item = ds.cat.item(id);
            let key = objname(&ds.cat, set, id);
            let data = content(item.seed, item.size as usize);
            ensure!(
                xxh64(&data, 0) == item.hash,
                "{key}: content differs from the catalog"
            );
            let file = dir.join(key);
            std::fs::write(&file, &data).with_context(|| format!("write {}", file.display()))?;
            let etag = hex(&md5::Md5::digest(&data));
            let stem = format!(".bucket-{}.object-{}", b64(&set.bucket), b64(key));
            std::fs::write(
                root.join(format!("{stem}.internal.json")),
                format!("{{\"e_tag\":\"{etag}\"}}"),
            )?;
            std::fs::write(root.join(format!("{stem}.metadata.json")), "{}")?;
        }
    }
    Ok(())
}

/// ListObjectsV2 of the bucket, page by page (`start-after`): every object with its size, and
/// nothing else.
async fn check_listing(
    api: &S3Api<'_>,
    conn: &mut S3Conn,
    cat: &Catalog,
    set: &SizeSet,
) -> Result<()> {
    let mut expected: BTreeMap<String, u64> = set
        .ids
        .iter()
        .map(|&id| (objname(cat, set, id).to_string(), cat.item(id).size))
        .collect();
    let path = format!("/{}", set.bucket);
    let mut after: Option<String> = None;
    let mut listed = 0usize;
    loop {
        let mut query = "list-type=2&max-keys=1000".to_string();
        if let Some(a) = &after {
            query.push_str("&start-after=");
            query.push_str(&uri_encode(a, true));
        }
        let resp = conn.get(api, &path, &query).await?;
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .context("read listing")?
            .to_bytes();
        let xml = String::from_utf8_lossy(&body);
        ensure!(status == StatusCode::OK, "list {path}: {status} {xml}");
        let page = parse_listing(&xml)?;
        if page.is_empty() {
            break;
        }
        for (key, size) in &page {
            match expected.remove(key) {
                Some(want) if want == *size => {}
                Some(want) => bail!("s3s-fs lists {key} with {size} bytes, expected {want}"),
                None => bail!("s3s-fs lists {key}, which the bench did not write"),
            }
        }
        listed += page.len();
        after = page.last().map(|(k, _)| k.clone());
        if !xml.contains("<IsTruncated>true</IsTruncated>") {
            break;
        }
    }
    ensure!(
        expected.is_empty(),
        "s3s-fs does not list {} of the objects of {} (e.g. {:?})",
        expected.len(),
        set.bucket,
        expected.keys().next()
    );
    ensure!(listed == set.ids.len(), "listed {listed} objects");
    Ok(())
}

/// `(Key, Size)` of every `<Contents>` of a ListObjectsV2 answer.
fn parse_listing(xml: &str) -> Result<Vec<(String, u64)>> {
    fn tag<'x>(s: &'x str, name: &str) -> Option<&'x str> {
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        let start = s.find(&open)? + open.len();
        let end = s[start..].find(&close)? + start;
        Some(&s[start..end])
    }
    let mut out = Vec::new();
    for block in xml.split("<Contents>").skip(1) {
        let block = block.split("</Contents>").next().unwrap_or(block);
        let key = tag(block, "Key").context("listing entry without a Key")?;
        let size = tag(block, "Size")
            .context("listing entry without a Size")?
            .parse::<u64>()
            .context("listing entry with a bad Size")?;
        out.push((xml_unescape(key), size));
    }
    Ok(out)
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The s3s-fs process.
struct S3Server {
    proc: cluster::Proc,
    addr: SocketAddr,
}

impl S3Server {
    fn start(pin: &Pinning, cpu: S3Cpu, bin: &Path, root: &Path, log: &Path) -> Result<S3Server> {
        let addr = cluster::free_addr()?;
        let mut cmd = if pin.enabled {
            // Without taskset the child would inherit the bench's own CPU1 affinity.
            let cpus = match cpu {
                S3Cpu::Server => pin.server_cpu.to_string(),
                S3Cpu::Client => pin.client_cpu.to_string(),
                S3Cpu::Any => format!("0-{}", sys::online_cpus().saturating_sub(1)),
            };
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(bin);
            c
        } else {
            Command::new(bin)
        };
        let out =
            std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .arg("--host")
            .arg(addr.ip().to_string())
            .arg("--port")
            .arg(addr.port().to_string())
            .arg("--access-key")
            .arg(ACCESS_KEY)
            .arg("--secret-key")
            .arg(SECRET_KEY)
            .arg(root)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let proc = cluster::Proc {
            name: "s3s-fs".into(),
            child,
            addr,
            dir: root.to_path_buf(),
        };
        Ok(S3Server { proc, addr })
    }

    fn pid(&self) -> u32 {
        self.proc.pid()
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.proc.child.try_wait()? {
            bail!("s3s-fs exited: {status} (see its log)");
        }
        Ok(())
    }

    /// Waits until a signed ListBuckets succeeds.
    async fn wait_ready(&mut self, api: &S3Api<'_>, conn: &mut S3Conn) -> Result<()> {
        let start = Instant::now();
        loop {
            self.check_alive()?;
            if let Ok(resp) = conn.get(api, "/", "").await {
                let status = resp.status();
                let text = read_text(resp).await;
                ensure!(
                    status == StatusCode::OK,
                    "s3s-fs ListBuckets: {status} {text}"
                );
                return Ok(());
            }
            conn.tx = None;
            if start.elapsed() > Duration::from_secs(30) {
                bail!("s3s-fs at {} did not answer within 30 s", self.addr);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn stop(&mut self) {
        cluster::stop_all(vec![&mut self.proc]);
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The S3 endpoint and how to sign for it.
struct S3Api<'a> {
    addr: SocketAddr,
    host: String,
    signer: &'a Signer,
}

/// One keep-alive connection to s3s-fs.
#[derive(Default)]
struct S3Conn {
    tx: Option<http1::SendRequest<Empty<Bytes>>>,
}

impl S3Conn {
    async fn connect(&mut self, addr: SocketAddr) -> Result<()> {
        self.tx = Some(crate::http::connect(addr).await?);
        Ok(())
    }

    /// A signed GET of `path?query` (`query` canonical: sorted, encoded); reconnects once if
    /// the server closed the connection.
    async fn get(
        &mut self,
        api: &S3Api<'_>,
        path: &str,
        query: &str,
    ) -> Result<Response<Incoming>> {
        let uri = if query.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{query}")
        };
        let mut last = None;
        for _ in 0..2 {
            let fresh = self.tx.as_ref().is_none_or(|t| t.is_closed());
            if fresh {
                self.connect(api.addr).await?;
            }
            let Some(tx) = self.tx.as_mut() else {
                bail!("no connection to {}", api.addr);
            };
            if tx.ready().await.is_err() {
                self.tx = None;
                continue;
            }
            let (amz_date, auth) = api.signer.sign(
                "GET",
                path,
                query,
                &[("host", &api.host)],
                UNSIGNED_PAYLOAD,
                unix_now(),
            );
            let req = Request::builder()
                .method(Method::GET)
                .uri(&uri)
                .header(HOST, HeaderValue::from_str(&api.host)?)
                .header("x-amz-date", amz_date)
                .header("x-amz-content-sha256", UNSIGNED_PAYLOAD)
                .header(AUTHORIZATION, auth)
                .body(Empty::new())
                .context("build request")?;
            match tx.send_request(req).await {
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    self.tx = None;
                    if fresh {
                        return Err(anyhow!(e).context(format!("GET {uri}")));
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.map_or_else(|| anyhow!("connection keeps closing"), |e| anyhow!(e)))
            .with_context(|| format!("GET {uri}"))
    }
}

const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// AWS Signature Version 4 for S3 requests (header auth), with the day's signing key cached.
struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    key: RefCell<Option<(String, hmac::Key)>>,
}

impl Signer {
    fn new(access_key: &str, secret_key: &str, region: &str) -> Signer {
        Signer {
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            region: region.into(),
            key: RefCell::new(None),
        }
    }

    fn signing_key(&self, date: &str) -> hmac::Key {
        if let Some((d, k)) = self.key.borrow().as_ref()
            && d == date
        {
            return k.clone();
        }
        let step = |key: &[u8], data: &str| {
            hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        };
        let k = step(format!("AWS4{}", self.secret_key).as_bytes(), date);
        let k = step(k.as_ref(), &self.region);
        let k = step(k.as_ref(), "s3");
        let k = step(k.as_ref(), "aws4_request");
        let key = hmac::Key::new(hmac::HMAC_SHA256, k.as_ref());
        *self.key.borrow_mut() = Some((date.to_string(), key.clone()));
        key
    }

    /// `(x-amz-date, Authorization)` for a request. `path` is URI-encoded, `query` canonical,
    /// `headers` lower-case names sorted, without `x-amz-content-sha256`/`x-amz-date` (added).
    fn sign(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        payload_hash: &str,
        unix: u64,
    ) -> (String, String) {
        let (date, amz_date) = amz_dates(unix);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("x-amz-content-sha256", payload_hash));
        all.push(("x-amz-date", &amz_date));
        all.sort_by(|a, b| a.0.cmp(b.0));
        let mut canonical = format!("{method}\n{path}\n{query}\n");
        for (k, v) in &all {
            let _ = writeln!(canonical, "{k}:{}", v.trim());
        }
        let signed: Vec<&str> = all.iter().map(|(k, _)| *k).collect();
        let signed = signed.join(";");
        let _ = write!(canonical, "\n{signed}\n{payload_hash}");
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
        );
        let signature = hex(hmac::sign(&self.signing_key(&date), to_sign.as_bytes()).as_ref());
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            self.access_key
        );
        (amz_date, auth)
    }
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` of a Unix time (UTC).
fn amz_dates(unix: u64) -> (String, String) {
    let secs = unix % 86_400;
    let (y, m, d) = moss_archive::writer::civil_from_days((unix / 86_400) as i64);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    (date, stamp)
}

/// S3's URI encoding: everything but `A-Za-z0-9-._~` (and `/` unless `slash`) as `%XX`.
fn uri_encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if !slash => out.push('/'),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// The three epochs of one object size over every round.
struct SizeCells {
    label: String,
    size: u64,
    count: usize,
    bucket: String,
    d: Vec<Epoch>,
    c: Vec<Epoch>,
    w: Vec<Epoch>,
    evict_secs: Vec<f64>,
}

impl SizeCells {
    fn verified(&self) -> bool {
        [&self.d, &self.c, &self.w]
            .iter()
            .all(|v| !v.is_empty() && v.iter().all(Epoch::verified))
    }

    /// Per-round ratio of `num`'s rate to D's.
    fn ratio(&self, num: &[Epoch]) -> Spread {
        let v: Vec<f64> = num
            .iter()
            .zip(&self.d)
            .filter(|(_, d)| d.obj_per_s() > 0.0)
            .map(|(n, d)| n.obj_per_s() / d.obj_per_s())
            .collect();
        Spread::of(&v)
    }

    fn to_json(&self) -> Value {
        let cell = |id: &str, what: &str, v: &[Epoch]| {
            let n: u64 = v.iter().map(|e| e.objects).sum::<u64>().max(1);
            let per = |f: fn(&Epoch) -> f64| v.iter().map(f).sum::<f64>() / n as f64;
            json!({
                "id": id,
                "what": what,
                "obj_per_s": Spread::of(&v.iter().map(Epoch::obj_per_s).collect::<Vec<_>>()),
                "mib_per_s": Spread::of(&v.iter().map(Epoch::mib_per_s).collect::<Vec<_>>()),
                "s3_cpu_us_per_obj": per(|e| e.s3_us),
                "moss_cpu_us_per_obj": per(|e| e.moss_us),
                "cli_cpu_us_per_obj": per(|e| e.cli_us),
                "max_other_cpus": v.iter().map(|e| e.other_cpus).fold(0.0, f64::max),
                "verified": !v.is_empty() && v.iter().all(Epoch::verified),
                "runs": v,
            })
        };
        json!({
            "label": self.label,
            "object_size": self.size,
            "objects": self.count,
            "bucket": format!("s3://{}", self.bucket),
            "cells": [
                cell("D", "direct: 64 concurrent signed GETs to s3s-fs", &self.d),
                cell("C", "GetBatch cold epoch (nothing cached)", &self.c),
                cell("W", "GetBatch warm epoch (all cached)", &self.w),
            ],
            "ratio_c_over_d": self.ratio(&self.c),
            "ratio_w_over_d": self.ratio(&self.w),
            "evict_secs": self.evict_secs,
        })
    }
}

fn spread_text(s: Spread, f: impl Fn(f64) -> String) -> String {
    format!("{} ({}–{})", f(s.median), f(s.min), f(s.max))
}

fn table(cells: &[SizeCells], opts: &Opts<'_>, version: &str, placement: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "remote buckets: GetBatch over s3://bench-<size> ({version} {placement}; moss: proxy + {} targets; client: {}), {} rounds",
        opts.targets,
        if opts.pin.enabled {
            format!("CPU{}", opts.pin.client_cpu)
        } else {
            "unpinned".into()
        },
        opts.rounds
    );
    let _ = writeln!(
        out,
        "D = {DIRECT_K} concurrent signed keep-alive GETs straight to s3s-fs; C = cold epoch: GetBatch B={}, {BATCHES_IN_FLIGHT} in flight, nothing cached; W = warm epoch: the same again",
        opts.batch
    );
    let _ = writeln!(
        out,
        "{:<5} {:<4} {:>7} {:>26} {:>24} {:>10} {:>11} {:>10} {:>10} {:>9} {:>8}",
        "size",
        "cell",
        "objects",
        "obj/s median (min–max)",
        "MiB/s median (min–max)",
        "s3s µs/obj",
        "moss µs/obj",
        "cli µs/obj",
        "other CPU",
        "disk MiB",
        "verified"
    );
    for c in cells {
        for (id, v) in [("D", &c.d), ("C", &c.c), ("W", &c.w)] {
            let n = v.iter().map(|e| e.objects).sum::<u64>().max(1) as f64;
            let per = |f: fn(&Epoch) -> f64| v.iter().map(f).sum::<f64>() / n;
            let ops = Spread::of(&v.iter().map(Epoch::obj_per_s).collect::<Vec<_>>());
            let mib = Spread::of(&v.iter().map(Epoch::mib_per_s).collect::<Vec<_>>());
            let ok = !v.is_empty() && v.iter().all(Epoch::verified);
            let moss = if id == "D" {
                "-".to_string()
            } else {
                format!("{:.1}", per(|e| e.moss_us))
            };
            let _ = writeln!(
                out,
                "{:<5} {:<4} {:>7} {:>26} {:>24} {:>10.1} {:>11} {:>10.1} {:>10.2} {:>9.1} {:>8}",
                c.label,
                id,
                c.count,
                spread_text(ops, rate),
                spread_text(mib, |x| format!("{x:.1}")),
                per(|e| e.s3_us),
                moss,
                per(|e| e.cli_us),
                v.iter().map(|e| e.other_cpus).fold(0.0, f64::max),
                v.iter()
                    .map(|e| (e.s3_disk_read + e.moss_disk_read) as f64 / MIB)
                    .fold(0.0, f64::max),
                if ok { "yes" } else { "NO" }
            );
            if let Some(e) = v.iter().find_map(|e| e.first_error.as_deref()) {
                let _ = writeln!(out, "      first error: {e}");
            }
        }
    }
    let _ = writeln!(
        out,
        "CPU µs/obj: over all rounds; other CPU: the most any epoch saw taken by other processes (in CPUs; the machine has {}); disk MiB: the most any epoch read from the disk (s3s-fs + moss; 0 = all from the page cache)",
        sys::online_cpus()
    );
    let _ = writeln!(out, "ratios of obj/s, per round: median (min–max)");
    for c in cells {
        let _ = writeln!(
            out,
            "{:<5} C/D {}   W/D {}",
            c.label,
            spread_text(c.ratio(&c.c), |x| format!("{x:.2}")),
            spread_text(c.ratio(&c.w), |x| format!("{x:.2}"))
        );
    }
    let _ = writeln!(out, "targets (median ratios):");
    for c in cells {
        let cd = c.ratio(&c.c).median;
        let _ = writeln!(
            out,
            "  cold epoch at least as fast as the direct client, {}: C/D = {cd:.2} {}",
            c.label,
            if cd >= 1.0 { "met" } else { "NOT met" }
        );
    }
    for c in cells.iter().filter(|c| c.size <= 16 << 10) {
        let wd = c.ratio(&c.w).median;
        let _ = writeln!(
            out,
            "  warm epoch >= 10x the direct client, {}: W/D = {wd:.2} {}",
            c.label,
            if wd >= 10.0 { "met" } else { "NOT met" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil() {
        assert_eq!(
            amz_dates(1_369_353_600),
            ("20130524".into(), "20130524T000000Z".into())
        );
        assert_eq!(amz_dates(951_782_400 + 3_723).1, "20000229T010203Z");
        assert_eq!(amz_dates(0).1, "19700101T000000Z");
    }

    /// The GET Object example of AWS's SigV4 documentation ("Signature Calculations for the
    /// Authorization Header").
    #[test]
    fn sigv4_matches_the_aws_example() {
        let s = Signer::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
        );
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let (date, auth) = s.sign(
            "GET",
            "/test.txt",
            "",
            &[
                ("host", "examplebucket.s3.amazonaws.com"),
                ("range", "bytes=0-9"),
            ],
            empty,
            1_369_353_600,
        );
        assert_eq!(date, "20130524T000000Z");
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn uri_encoding_and_listing_parse() {
        assert_eq!(uri_encode("a b/c~d", false), "a%20b/c~d");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
        let xml = "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>o-1</Key>\
                   <Size>10</Size></Contents><Contents><ETag>x</ETag><Key>a&amp;b</Key><Size>3</Size>\
                   </Contents></ListBucketResult>";
        assert_eq!(
            parse_listing(xml).unwrap(),
            vec![("o-1".to_string(), 10), ("a&b".to_string(), 3)]
        );
        assert!(S3Cpu::parse("client").is_ok() && S3Cpu::parse("x").is_err());
    }
}
