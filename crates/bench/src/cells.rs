//! The cells: what each one sends, how its responses are read and verified, and how a timed
//! run is accounted (objects, bytes, server and client CPU).
use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use futures::future::join_all;
use hyper::StatusCode;
use serde::Serialize;
use tokio::time::timeout;
use xxhash_rust::xxh64::Xxh64;

use crate::data::{Catalog, Item, Rng, ShardSet, SizeSet};
use crate::delay::Delay;
use crate::http::{OP_TIMEOUT, Peer, Req, expect_status, for_each_chunk};
use crate::local;
use crate::sys::{self, Pinning};
use crate::tarcheck::{BatchCheck, Event, TarParser};

/// A worker stops after this many failed operations in one run.
const MAX_ERRORS: u64 = 20;

/// Addresses and the catalog every cell needs.
pub struct Ctx<'a> {
    pub cat: &'a Catalog,
    pub proxy: SocketAddr,
    pub targets: Vec<SocketAddr>,
    pub nginx: Option<SocketAddr>,
    pub pin: &'a Pinning,
}

/// Where individual GETs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Through the proxy (307 to the owner), as a user does.
    Proxy,
    /// Straight to the owning target (the redirect's share made visible).
    Direct,
    /// nginx serving the same files.
    Nginx,
}

/// Which objects a cell asks for.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// Plain objects in the seeded order.
    Perm(&'a SizeSet),
    /// Members of shards: one random member from each of B distinct random shards.
    Members(&'a ShardSet),
}

/// What a cell does.
#[derive(Clone, Copy)]
pub enum Spec<'a> {
    /// Local bound with `streams` sender/reader pairs, batches of `b`.
    Local {
        set: &'a SizeSet,
        shape: local::Shape,
    },
    /// GetBatch: `w` batches of `b` in flight.
    Batch {
        w: usize,
        b: usize,
        src: Source<'a>,
        delay: bool,
    },
    /// Individual GETs, `k` in flight.
    Get {
        k: usize,
        via: Via,
        set: &'a SizeSet,
        delay: bool,
    },
    /// GET whole shards (`k` in flight) and extract one member each.
    ShardWhole { k: usize, shards: &'a ShardSet },
    /// Range GETs of members using a client-side index, `k` in flight.
    ShardRange { k: usize, shards: &'a ShardSet },
}

impl Spec<'_> {
    /// Whether the cell's server is nginx.
    pub fn uses_nginx(&self) -> bool {
        matches!(
            self,
            Spec::Get {
                via: Via::Nginx,
                ..
            }
        )
    }
}

/// One timed run of a cell.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    pub objects: u64,
    pub bytes: u64,
    pub secs: f64,
    /// Server CPU time during the run (all server processes, or the L sender threads).
    pub srv_us: f64,
    /// Client CPU time during the run.
    pub cli_us: f64,
    /// Sampled checksums verified.
    pub checksums: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl Sample {
    pub fn obj_per_s(&self) -> f64 {
        if self.secs > 0.0 {
            self.objects as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Counters shared by the workers of one run (all on the client thread).
struct Tally {
    objects: Cell<u64>,
    bytes: Cell<u64>,
    checksums: Cell<u64>,
    errors: Cell<u64>,
    first_error: RefCell<Option<String>>,
    cursor: Cell<usize>,
    rng: RefCell<Rng>,
    deadline: Instant,
}

impl Tally {
    fn new(deadline: Instant, seed: u64) -> Tally {
        Tally {
            objects: Cell::new(0),
            bytes: Cell::new(0),
            checksums: Cell::new(0),
            errors: Cell::new(0),
            first_error: RefCell::new(None),
            cursor: Cell::new(0),
            rng: RefCell::new(Rng::new(seed)),
            deadline,
        }
    }

    fn running(&self) -> bool {
        Instant::now() < self.deadline && self.errors.get() < MAX_ERRORS
    }

    fn ok(&self, objects: u64, bytes: u64, checksums: u64) {
        self.objects.set(self.objects.get() + objects);
        self.bytes.set(self.bytes.get() + bytes);
        self.checksums.set(self.checksums.get() + checksums);
    }

    fn fail(&self, err: anyhow::Error) {
        self.errors.set(self.errors.get() + 1);
        let mut first = self.first_error.borrow_mut();
        if first.is_none() {
            *first = Some(format!("{err:#}"));
        }
    }

    fn record<T>(&self, r: Result<Result<T>, tokio::time::error::Elapsed>) -> Option<T> {
        match r {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.fail(e);
                None
            }
            Err(_) => {
                self.fail(anyhow!("operation timed out after {OP_TIMEOUT:?}"));
                None
            }
        }
    }

    /// The next `n` ids of the seeded order.
    fn next_ids(&self, set: &SizeSet, n: usize) -> Vec<u32> {
        let at = self.cursor.get();
        self.cursor.set(at + n);
        (0..n)
            .map(|k| set.perm[(at + k) % set.perm.len()])
            .collect()
    }

    fn next_batch(&self, src: Source<'_>, b: usize) -> Vec<u32> {
        match src {
            Source::Perm(set) => self.next_ids(set, b),
            Source::Members(shards) => shards.pick_distinct(&mut self.rng.borrow_mut(), b),
        }
    }

    fn sample(&self) -> Sample {
        Sample {
            objects: self.objects.get(),
            bytes: self.bytes.get(),
            checksums: self.checksums.get(),
            errors: self.errors.get(),
            first_error: self.first_error.borrow().clone(),
            ..Sample::default()
        }
    }
}

/// Result of one GetBatch request.
pub struct BatchOut {
    pub objects: u64,
    pub bytes: u64,
    pub checksums: u64,
    /// Request start to the response headers of the archive (after the redirect).
    pub headers: Duration,
    /// Request start to the first archive byte.
    pub ttfb: Duration,
    /// Request start to each member's last byte (when recorded).
    pub ends: Vec<Duration>,
    pub total: Duration,
}

/// Sends one GetBatch for `ids` and parses the TAR stream member by member.
pub async fn fetch_batch(
    peer: &mut Peer,
    ctx: &Ctx<'_>,
    path: &str,
    ids: Vec<u32>,
    delay: Option<&Delay>,
    record: bool,
) -> Result<BatchOut> {
    let body = ctx.cat.batch_body(&ids);
    let t0 = Instant::now();
    let req = Req::get_json(path, body);
    let resp = peer.send_follow(ctx.proxy, &req, delay).await?;
    let headers = t0.elapsed();
    let body = expect_status(resp, StatusCode::OK)
        .await
        .context("getbatch")?;
    let mut check = BatchCheck::new(ctx.cat, ids);
    if record {
        check = check.record_ends();
    }
    let mut parser = TarParser::new();
    let mut first: Option<Instant> = None;
    for_each_chunk(body, |chunk| {
        if first.is_none() {
            first = Some(Instant::now());
        }
        parser.feed(chunk, &mut |ev| check.on(ev))
    })
    .await?;
    parser.finish()?;
    check.finish()?;
    let ends = check
        .ends
        .as_ref()
        .map(|e| e.iter().map(|t| t.duration_since(t0)).collect())
        .unwrap_or_default();
    Ok(BatchOut {
        objects: check.members() as u64,
        bytes: check.bytes,
        checksums: check.checksums,
        headers,
        ttfb: first.map_or(Duration::ZERO, |f| f.duration_since(t0)),
        ends,
        total: t0.elapsed(),
    })
}

/// Result of one GET.
pub struct GetOut {
    pub bytes: u64,
    pub checksums: u64,
    /// When the response headers arrived.
    pub headers_at: Instant,
}

/// Reads a body, checking its length and (for sampled ids) its checksum.
pub async fn read_verified(
    body: hyper::body::Incoming,
    cat: &Catalog,
    id: u32,
) -> Result<(u64, u64)> {
    let item = cat.item(id);
    let mut hasher = Catalog::sampled(id).then(|| Xxh64::new(0));
    let mut n = 0u64;
    for_each_chunk(body, |c| {
        n += c.len() as u64;
        if let Some(h) = hasher.as_mut() {
            h.update(c);
        }
        Ok(())
    })
    .await?;
    ensure!(
        n == item.size,
        "{}: got {n} bytes, expected {}",
        item.tar_name,
        item.size
    );
    Ok((n, verify_digest(hasher, item)?))
}

/// Checks a sampled item's checksum; returns how many checksums were verified (0 or 1).
fn verify_digest(hasher: Option<Xxh64>, item: &Item) -> Result<u64> {
    let Some(h) = hasher else { return Ok(0) };
    ensure!(
        h.digest() == item.hash,
        "{}: checksum mismatch",
        item.tar_name
    );
    Ok(1)
}

/// One GET of a plain object.
pub async fn fetch_get(
    peer: &mut Peer,
    ctx: &Ctx<'_>,
    id: u32,
    via: Via,
    delay: Option<&Delay>,
) -> Result<GetOut> {
    let item = ctx.cat.item(id);
    let resp = match via {
        Via::Proxy => {
            peer.send_follow(ctx.proxy, &Req::get(&item.get_path), delay)
                .await?
        }
        Via::Direct => {
            let owner = *ctx
                .targets
                .get(item.owner)
                .context("owner index out of range")?;
            peer.send_follow(owner, &Req::get(&item.get_path), delay)
                .await?
        }
        Via::Nginx => {
            let addr = ctx.nginx.context("nginx is not running")?;
            peer.send(addr, &Req::get(&item.web_path), &item.web_path, delay)
                .await?
        }
    };
    let headers_at = Instant::now();
    let body = expect_status(resp, StatusCode::OK)
        .await
        .with_context(|| format!("GET {}", item.tar_name))?;
    let (bytes, checksums) = read_verified(body, ctx.cat, id).await?;
    Ok(GetOut {
        bytes,
        checksums,
        headers_at,
    })
}

/// GET the whole shard of member `id` and extract the member from it.
async fn fetch_shard_whole(peer: &mut Peer, ctx: &Ctx<'_>, id: u32) -> Result<(u64, u64)> {
    let item = ctx.cat.item(id);
    let member = item.member.as_ref().context("not a shard member")?;
    let shard = ctx.cat.item(member.shard);
    let resp = peer
        .send_follow(ctx.proxy, &Req::get(&shard.get_path), None)
        .await?;
    let body = expect_status(resp, StatusCode::OK)
        .await
        .with_context(|| format!("GET {}", shard.tar_name))?;
    let mut parser = TarParser::new();
    let mut total = 0u64;
    let mut inside = false;
    let mut found: Option<u64> = None;
    let mut got = 0u64;
    let mut hasher = Catalog::sampled(id).then(|| Xxh64::new(0));
    for_each_chunk(body, |chunk| {
        total += chunk.len() as u64;
        parser.feed(chunk, &mut |ev| {
            match ev {
                Event::Member { name, size } => {
                    inside = found.is_none() && name == member.archpath;
                    if inside {
                        ensure!(size == item.size, "member {name} has {size} bytes");
                    }
                }
                Event::Data(d) if inside => {
                    got += d.len() as u64;
                    if let Some(h) = hasher.as_mut() {
                        h.update(d);
                    }
                }
                Event::MemberEnd if inside => {
                    inside = false;
                    found = Some(got);
                }
                _ => {}
            }
            Ok(())
        })
    })
    .await?;
    parser.finish()?;
    ensure!(
        total == shard.size,
        "{}: got {total} bytes, expected {}",
        shard.tar_name,
        shard.size
    );
    ensure!(
        found == Some(item.size),
        "{} not found in its shard",
        item.tar_name
    );
    Ok((item.size, verify_digest(hasher, item)?))
}

/// Range GET of member `id` at its known offset.
async fn fetch_shard_range(peer: &mut Peer, ctx: &Ctx<'_>, id: u32) -> Result<(u64, u64)> {
    let item = ctx.cat.item(id);
    let member = item.member.as_ref().context("not a shard member")?;
    let shard = ctx.cat.item(member.shard);
    let req = Req::get(&shard.get_path).range(member.offset, item.size);
    let resp = peer.send_follow(ctx.proxy, &req, None).await?;
    let body = expect_status(resp, StatusCode::PARTIAL_CONTENT)
        .await
        .with_context(|| format!("range GET {}", item.tar_name))?;
    read_verified(body, ctx.cat, id).await
}

async fn batch_worker(
    peer: &mut Peer,
    ctx: &Ctx<'_>,
    tally: &Tally,
    src: Source<'_>,
    b: usize,
    delay: Option<&Delay>,
) {
    let path = match src {
        Source::Perm(set) => set.batch_path(),
        Source::Members(shards) => shards.batch_path(),
    };
    while tally.running() {
        let ids = tally.next_batch(src, b);
        let r = timeout(OP_TIMEOUT, fetch_batch(peer, ctx, &path, ids, delay, false)).await;
        if let Some(out) = tally.record(r) {
            tally.ok(out.objects, out.bytes, out.checksums);
        }
    }
}

async fn get_worker(
    peer: &mut Peer,
    ctx: &Ctx<'_>,
    tally: &Tally,
    set: &SizeSet,
    via: Via,
    delay: Option<&Delay>,
) {
    while tally.running() {
        let id = tally.next_ids(set, 1)[0];
        let r = timeout(OP_TIMEOUT, fetch_get(peer, ctx, id, via, delay)).await;
        if let Some(out) = tally.record(r) {
            tally.ok(1, out.bytes, out.checksums);
        }
    }
}

async fn shard_worker(
    peer: &mut Peer,
    ctx: &Ctx<'_>,
    tally: &Tally,
    shards: &ShardSet,
    whole: bool,
) {
    while tally.running() {
        let id = shards.pick_one(&mut tally.rng.borrow_mut());
        let r = if whole {
            timeout(OP_TIMEOUT, fetch_shard_whole(peer, ctx, id)).await
        } else {
            timeout(OP_TIMEOUT, fetch_shard_range(peer, ctx, id)).await
        };
        if let Some((bytes, checksums)) = tally.record(r) {
            tally.ok(1, bytes, checksums);
        }
    }
}

/// Runs one cell for `secs` and accounts it. `pids` are the server processes to charge.
pub async fn run(
    spec: Spec<'_>,
    pool: &mut [Peer],
    ctx: &Ctx<'_>,
    secs: f64,
    delay: &Delay,
    pids: &[u32],
    seed: u64,
) -> Result<Sample> {
    if let Spec::Local { set, shape } = spec {
        let out = local::run(ctx.cat, set, shape, secs, ctx.pin)?;
        return Ok(Sample {
            objects: out.objects,
            bytes: out.bytes,
            secs: out.secs,
            srv_us: sys::ticks_to_us(out.srv_ticks),
            cli_us: sys::ticks_to_us(out.cli_ticks),
            checksums: out.checksums,
            errors: 0,
            first_error: None,
        });
    }
    let srv0 = sys::total_cpu_ticks(pids);
    let cli0 = sys::self_cpu_ticks();
    let start = Instant::now();
    let tally = Tally::new(start + Duration::from_secs_f64(secs), seed);
    let uses_delay = match spec {
        Spec::Batch { delay, .. } | Spec::Get { delay, .. } => delay,
        _ => false,
    };
    let delay = uses_delay.then_some(delay);
    let spun0 = delay.filter(|d| d.spins()).map(Delay::total);
    let workers = match spec {
        Spec::Batch { w, .. } => w,
        Spec::Get { k, .. } | Spec::ShardWhole { k, .. } | Spec::ShardRange { k, .. } => k,
        Spec::Local { .. } => 0,
    };
    if workers > pool.len() {
        bail!("cell needs {workers} workers, pool has {}", pool.len());
    }
    let tally_ref = &tally;
    let futs = pool.iter_mut().take(workers).map(|peer| async move {
        match spec {
            Spec::Batch { b, src, .. } => batch_worker(peer, ctx, tally_ref, src, b, delay).await,
            Spec::Get { via, set, .. } => get_worker(peer, ctx, tally_ref, set, via, delay).await,
            Spec::ShardWhole { shards, .. } => {
                shard_worker(peer, ctx, tally_ref, shards, true).await
            }
            Spec::ShardRange { shards, .. } => {
                shard_worker(peer, ctx, tally_ref, shards, false).await
            }
            Spec::Local { .. } => {}
        }
    });
    join_all(futs).await;
    let mut sample = tally.sample();
    sample.secs = start.elapsed().as_secs_f64();
    sample.srv_us = sys::ticks_to_us(sys::total_cpu_ticks(pids).saturating_sub(srv0));
    sample.cli_us = sys::ticks_to_us(sys::self_cpu_ticks().saturating_sub(cli0));
    if let (Some(d), Some(before)) = (delay, spun0) {
        // A real client waits for the network idle; the emulated wait spun on the client CPU.
        let spun = d.total().saturating_sub(before).as_secs_f64() * 1e6;
        sample.cli_us = (sample.cli_us - spun).max(0.0);
    }
    Ok(sample)
}

/// Fetches the first `limit` ids of the seeded order once (untimed): GetBatch batches when
/// `batch` is set, else GETs through `via`; one request per peer in flight.
pub async fn warm_pass(
    pool: &mut [Peer],
    ctx: &Ctx<'_>,
    set: &SizeSet,
    batch: Option<usize>,
    via: Via,
    limit: usize,
) -> Result<()> {
    let n = set.perm.len().min(limit);
    let tally = Tally::new(Instant::now() + Duration::from_secs(3600), 1);
    let path = set.batch_path();
    let (tally_ref, path_ref) = (&tally, &path);
    let futs = pool.iter_mut().map(|peer| async move {
        while tally_ref.cursor.get() < n && tally_ref.errors.get() == 0 {
            match batch {
                Some(b) => {
                    let ids = tally_ref.next_ids(set, b.min(n));
                    let r = timeout(
                        OP_TIMEOUT,
                        fetch_batch(peer, ctx, path_ref, ids, None, false),
                    )
                    .await;
                    tally_ref.record(r);
                }
                None => {
                    let id = tally_ref.next_ids(set, 1)[0];
                    let r = timeout(OP_TIMEOUT, fetch_get(peer, ctx, id, via, None)).await;
                    tally_ref.record(r);
                }
            }
        }
    });
    join_all(futs).await;
    if let Some(e) = tally.first_error.borrow().clone() {
        bail!("warm-up failed: {e}");
    }
    Ok(())
}

/// Cold-index pass over shards: GetBatch (one request at a time) of one member from each shard
/// never touched before, B shards per request, every shard exactly once.
pub async fn shard_first_touch(
    peer: &mut Peer,
    ctx: &Ctx<'_>,
    shards: &ShardSet,
    b: usize,
    pids: &[u32],
    seed: u64,
) -> Result<Sample> {
    let mut rng = Rng::new(seed);
    let all = shards.pick_distinct(&mut rng, shards.shards.len());
    let path = shards.batch_path();
    let srv0 = sys::total_cpu_ticks(pids);
    let cli0 = sys::self_cpu_ticks();
    let start = Instant::now();
    let tally = Tally::new(start, seed);
    for chunk in all.chunks(b.max(1)) {
        let r = timeout(
            OP_TIMEOUT,
            fetch_batch(peer, ctx, &path, chunk.to_vec(), None, false),
        )
        .await;
        if let Some(out) = tally.record(r) {
            tally.ok(out.objects, out.bytes, out.checksums);
        }
    }
    let mut sample = tally.sample();
    sample.secs = start.elapsed().as_secs_f64();
    sample.srv_us = sys::ticks_to_us(sys::total_cpu_ticks(pids).saturating_sub(srv0));
    sample.cli_us = sys::ticks_to_us(sys::self_cpu_ticks().saturating_sub(cli0));
    Ok(sample)
}

/// Latency samples of cell T (seconds).
#[derive(Debug, Default)]
pub struct Latency {
    /// Batch start to its last byte.
    pub batch: Vec<f64>,
    /// Batch start to each object's last byte.
    pub object: Vec<f64>,
    /// Batch start to the first data byte (GetBatch: first archive byte; GETs: first response).
    pub ttfb: Vec<f64>,
    /// Batch start to the response headers (GetBatch: the archive's, after the redirect).
    pub headers: Vec<f64>,
    pub sample: Sample,
}

/// T, GetBatch side: `w` workers, each with one batch of `b` in flight.
pub async fn latency_getbatch(
    pool: &mut [Peer],
    ctx: &Ctx<'_>,
    set: &SizeSet,
    secs: f64,
    w: usize,
    b: usize,
    pids: &[u32],
) -> Result<Latency> {
    let srv0 = sys::total_cpu_ticks(pids);
    let cli0 = sys::self_cpu_ticks();
    let start = Instant::now();
    let tally = Tally::new(start + Duration::from_secs_f64(secs), 7);
    let lat = RefCell::new(Latency::default());
    let path = set.batch_path();
    let (tally_ref, lat_ref, path_ref) = (&tally, &lat, &path);
    let futs = pool.iter_mut().take(w).map(|peer| async move {
        while tally_ref.running() {
            let ids = tally_ref.next_ids(set, b);
            let r = timeout(
                OP_TIMEOUT,
                fetch_batch(peer, ctx, path_ref, ids, None, true),
            )
            .await;
            if let Some(out) = tally_ref.record(r) {
                tally_ref.ok(out.objects, out.bytes, out.checksums);
                let mut l = lat_ref.borrow_mut();
                l.batch.push(out.total.as_secs_f64());
                l.ttfb.push(out.ttfb.as_secs_f64());
                l.headers.push(out.headers.as_secs_f64());
                l.object.extend(out.ends.iter().map(Duration::as_secs_f64));
            }
        }
    });
    join_all(futs).await;
    let mut lat = lat.into_inner();
    lat.sample = tally.sample();
    lat.sample.secs = start.elapsed().as_secs_f64();
    lat.sample.srv_us = sys::ticks_to_us(sys::total_cpu_ticks(pids).saturating_sub(srv0));
    lat.sample.cli_us = sys::ticks_to_us(sys::self_cpu_ticks().saturating_sub(cli0));
    Ok(lat)
}

/// T, GET side: `w` workers, each fetching a batch of `b` objects with `k` concurrent GETs.
#[allow(clippy::too_many_arguments)]
pub async fn latency_gets(
    pool: &mut [Peer],
    ctx: &Ctx<'_>,
    set: &SizeSet,
    secs: f64,
    w: usize,
    k: usize,
    b: usize,
    pids: &[u32],
) -> Result<Latency> {
    if w * k > pool.len() {
        bail!("latency cell needs {} workers", w * k);
    }
    let srv0 = sys::total_cpu_ticks(pids);
    let cli0 = sys::self_cpu_ticks();
    let start = Instant::now();
    let tally = Tally::new(start + Duration::from_secs_f64(secs), 8);
    let lat = RefCell::new(Latency::default());
    let (tally_ref, lat_ref) = (&tally, &lat);
    let futs = pool.chunks_mut(k).take(w).map(|peers| async move {
        while tally_ref.running() {
            let ids = tally_ref.next_ids(set, b);
            let t0 = Instant::now();
            let next = Cell::new(0usize);
            let first = Cell::new(None::<Instant>);
            let (ids_ref, next_ref, first_ref) = (&ids, &next, &first);
            let subs = peers.iter_mut().map(|peer| async move {
                let mut ends = Vec::new();
                loop {
                    let i = next_ref.get();
                    let Some(&id) = ids_ref.get(i) else {
                        return ends;
                    };
                    next_ref.set(i + 1);
                    let r = timeout(OP_TIMEOUT, fetch_get(peer, ctx, id, Via::Proxy, None)).await;
                    if let Some(out) = tally_ref.record(r) {
                        tally_ref.ok(1, out.bytes, out.checksums);
                        if first_ref.get().is_none_or(|f| out.headers_at < f) {
                            first_ref.set(Some(out.headers_at));
                        }
                        ends.push(t0.elapsed().as_secs_f64());
                    }
                }
            });
            let ends: Vec<Vec<f64>> = join_all(subs).await;
            let total = t0.elapsed().as_secs_f64();
            let mut l = lat_ref.borrow_mut();
            l.batch.push(total);
            if let Some(f) = first.get() {
                l.ttfb.push(f.duration_since(t0).as_secs_f64());
                l.headers.push(f.duration_since(t0).as_secs_f64());
            }
            l.object.extend(ends.into_iter().flatten());
        }
    });
    join_all(futs).await;
    let mut lat = lat.into_inner();
    lat.sample = tally.sample();
    lat.sample.secs = start.elapsed().as_secs_f64();
    lat.sample.srv_us = sys::ticks_to_us(sys::total_cpu_ticks(pids).saturating_sub(srv0));
    lat.sample.cli_us = sys::ticks_to_us(sys::self_cpu_ticks().saturating_sub(cli0));
    Ok(lat)
}

/// Outcome of the memory cell M.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    pub requests: usize,
    pub entries_per_request: usize,
    pub object_size: u64,
    /// RSS of each target before the cell (after resetting its peak).
    pub baseline_rss: Vec<u64>,
    /// Peak RSS (VmHWM) of each target over the cell.
    pub peak_rss: Vec<u64>,
    /// Highest RSS seen by sampling every 5 ms (cross-check of VmHWM).
    pub sampled_peak_rss: Vec<u64>,
    pub max_peak_rss: u64,
    pub peak_reset: bool,
    pub sample: Sample,
}

/// M: `requests` concurrent GetBatch requests of `entries` objects of `set` each.
pub async fn memory_cell(
    pool: &mut [Peer],
    ctx: &Ctx<'_>,
    set: &SizeSet,
    requests: usize,
    entries: usize,
    target_pids: &[u32],
    all_pids: &[u32],
) -> Result<Memory> {
    if requests > pool.len() {
        bail!("memory cell needs {requests} workers");
    }
    let peak_reset = target_pids.iter().all(|&p| sys::reset_peak_rss(p).is_ok());
    let baseline: Vec<u64> = target_pids
        .iter()
        .map(|&p| sys::vm_bytes(p, "VmRSS").unwrap_or(0))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, pids) = (stop.clone(), target_pids.to_vec());
        std::thread::spawn(move || {
            let mut peak = vec![0u64; pids.len()];
            while !stop.load(Ordering::Relaxed) {
                for (i, &p) in pids.iter().enumerate() {
                    peak[i] = peak[i].max(sys::vm_bytes(p, "VmRSS").unwrap_or(0));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            peak
        })
    };
    let srv0 = sys::total_cpu_ticks(all_pids);
    let cli0 = sys::self_cpu_ticks();
    let start = Instant::now();
    let tally = Tally::new(start + Duration::from_secs(3600), 9);
    let n = set.perm.len();
    let path = set.batch_path();
    let (tally_ref, path_ref) = (&tally, &path);
    let futs = pool
        .iter_mut()
        .take(requests)
        .enumerate()
        .map(|(r, peer)| async move {
            let ids: Vec<u32> = (0..entries)
                .map(|k| set.perm[(r * n / requests.max(1) + k) % n])
                .collect();
            let res = timeout(
                OP_TIMEOUT,
                fetch_batch(peer, ctx, path_ref, ids, None, false),
            )
            .await;
            if let Some(out) = tally_ref.record(res) {
                tally_ref.ok(out.objects, out.bytes, out.checksums);
            }
        });
    join_all(futs).await;
    let mut sample = tally.sample();
    sample.secs = start.elapsed().as_secs_f64();
    sample.srv_us = sys::ticks_to_us(sys::total_cpu_ticks(all_pids).saturating_sub(srv0));
    sample.cli_us = sys::ticks_to_us(sys::self_cpu_ticks().saturating_sub(cli0));
    stop.store(true, Ordering::Relaxed);
    let sampled = sampler
        .join()
        .map_err(|_| anyhow!("rss sampler panicked"))?;
    let peak: Vec<u64> = target_pids
        .iter()
        .map(|&p| sys::vm_bytes(p, "VmHWM").unwrap_or(0))
        .collect();
    Ok(Memory {
        requests,
        entries_per_request: entries,
        object_size: set.size,
        max_peak_rss: peak.iter().copied().max().unwrap_or(0),
        baseline_rss: baseline,
        peak_rss: peak,
        sampled_peak_rss: sampled,
        peak_reset,
        sample,
    })
}
