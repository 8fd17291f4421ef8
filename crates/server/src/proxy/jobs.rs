//! The job API on the proxy, as the SDK's `Job` and `Cluster` classes use it:
//! `GET /v1/cluster?what=qryxstats|status|status_all|running_all` and `PUT /v1/cluster`
//! `start|stop`; plus launching jobs on targets and remembering who runs them.
//! Design: `docs/rfcs/0003-jobs.md`; wire contract: `shared/reference/ais-jobs.md` §2.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use moss_types::jobs::{
    self, JobArgs, JobFilter, JobReport, JobSpec, JobStart, JobStatus, JobStop, KindInfo, Snap,
    USER_ABORT, ZERO_TIME, kind_info, valid_job_id,
};
use moss_types::smap::Snode;

use super::membership::{FANOUT_TIMEOUT, while_member};
use super::{Proxy, now_nanos};
use crate::http::{ApiError, json_response};

/// Launched jobs remembered (their participants, then their final status).
const LAUNCHED_KEPT: usize = 1024;
/// How long a finished job's record is kept.
const LAUNCHED_TTL: Duration = Duration::from_secs(3600);

/// A job this proxy started: where it runs, and how it ended once that is known.
#[derive(Debug, Clone)]
struct Launched {
    kind: &'static KindInfo,
    participants: Vec<Snode>,
    started: SystemTime,
    /// Set once every participant is accounted for; the targets are not asked again.
    done: Option<(JobStatus, Instant)>,
    /// Jobs whose status the proxy decides itself (a rename finishes when the proxy has cleared
    /// the bucket's `renaming` mark, not when the last target is done).
    coordinated: bool,
}

/// The proxy's record of launched jobs.
#[derive(Default)]
pub struct JobTable {
    inner: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    jobs: HashMap<String, Launched>,
    order: VecDeque<String>,
}

impl JobTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn insert(&self, id: &str, launched: Launched) {
        let mut table = self.lock();
        table.order.retain(|x| x != id);
        table.order.push_back(id.to_string());
        table.jobs.insert(id.to_string(), launched);
        // Oldest first: finished ones past their time, and anything beyond the cap.
        while table.order.len() > LAUNCHED_KEPT {
            if let Some(old) = table.order.pop_front() {
                table.jobs.remove(&old);
            }
        }
        let Table { jobs, order } = &mut *table;
        order.retain(|x| {
            let expired = jobs
                .get(x)
                .and_then(|l| l.done.as_ref())
                .is_some_and(|(_, at)| at.elapsed() > LAUNCHED_TTL);
            if expired {
                jobs.remove(x);
            }
            !expired
        });
    }

    fn get(&self, id: &str) -> Option<Launched> {
        self.lock().jobs.get(id).cloned()
    }

    fn set_done(&self, id: &str, status: &JobStatus) {
        if let Some(l) = self.lock().jobs.get_mut(id)
            && l.done.is_none()
        {
            l.done = Some((status.clone(), Instant::now()));
        }
    }

    /// Launched jobs of a kind (all when `kind` is empty), oldest first.
    fn of_kind(&self, kind: &str) -> Vec<(String, Launched)> {
        let table = self.lock();
        table
            .order
            .iter()
            .filter_map(|id| table.jobs.get(id).map(|l| (id.clone(), l.clone())))
            .filter(|(_, l)| kind.is_empty() || l.kind.kind == kind)
            .collect()
    }
}

/// One target's answer to a job query.
enum Answer {
    Reports(Vec<JobReport>),
    /// It does not know the job (a 404 to an id query).
    Unknown,
    Failed(String),
}

/// Asks `targets` (concurrently, each bounded) for the jobs `filter` selects.
async fn fanout(proxy: &Proxy, targets: &[Snode], filter: &JobFilter) -> Vec<(Snode, Answer)> {
    let calls = targets.iter().map(|t| {
        let request = jobs_call(proxy, reqwest::Method::GET, t, "").json(filter);
        async move {
            let call = async {
                match request.send().await {
                    Ok(r) if r.status() == StatusCode::NOT_FOUND => Answer::Unknown,
                    Ok(r) if r.status().is_success() => match r.json::<Vec<JobReport>>().await {
                        Ok(reports) => Answer::Reports(reports),
                        Err(e) => Answer::Failed(e.to_string()),
                    },
                    Ok(r) => Answer::Failed(format!("status {}", r.status())),
                    Err(e) => Answer::Failed(e.to_string()),
                }
            };
            let answer = match while_member(proxy, t, FANOUT_TIMEOUT, call).await {
                Ok(answer) => answer,
                Err(abandoned) => Answer::Failed(abandoned.to_string()),
            };
            (t.clone(), answer)
        }
    });
    join_all(calls).await
}

/// A call to a target's job API (`/v1/internal/jobs{suffix}`), bounded by the fan-out timeout.
fn jobs_call(
    proxy: &Proxy,
    method: reqwest::Method,
    t: &Snode,
    suffix: &str,
) -> reqwest::RequestBuilder {
    let url = format!("{}/v1/internal/jobs{suffix}", t.url());
    proxy
        .shared
        .intra(proxy.shared.client.request(method, url))
        .timeout(FANOUT_TIMEOUT)
}

fn targets(proxy: &Proxy) -> Vec<Snode> {
    proxy.shared.smap.load().tmap.values().cloned().collect()
}

/// A kind named by wire or display name; unknown names become "" (AIStore's quirk: the filter
/// then matches every kind).
fn translate(kind: &str) -> String {
    kind_info(kind)
        .map(|k| k.kind.to_string())
        .unwrap_or_default()
}

fn parse_args(body: &[u8]) -> Result<JobArgs, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(JobArgs::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid job arguments: {e}")))?;
    JobArgs::parse(&value).map_err(ApiError::bad_request)
}

fn not_found_text(id: &str, kind: &str) -> String {
    if kind.is_empty() {
        format!("\"x-[{id}]\" not found")
    } else {
        format!("\"x-{kind}[{id}]\" not found")
    }
}

/// `what=qryxstats`: snapshots by target id. An id that no target knows is a 404; a kind-only
/// query always answers 200, with an empty list for targets that have nothing.
pub async fn qryxstats(proxy: &Proxy, body: &[u8]) -> Result<Response, ApiError> {
    let args = parse_args(body)?;
    let kind = translate(&args.kind);
    let filter = JobFilter {
        id: args.id.clone(),
        kind: kind.clone(),
        bck: args.bck.clone(),
        only_running: args.only_running,
    };
    let targets = targets(proxy);
    let answers = fanout(proxy, &targets, &filter).await;
    let mut by_target: BTreeMap<String, Vec<Snap>> = BTreeMap::new();
    let mut unknown_to = Vec::new();
    for (t, answer) in answers {
        match answer {
            Answer::Reports(reports) => {
                by_target.insert(
                    t.daemon_id.clone(),
                    reports.into_iter().map(|r| r.snap).collect(),
                );
            }
            Answer::Unknown => unknown_to.push(t.daemon_id.clone()),
            Answer::Failed(why) => {
                tracing::debug!(node = %t.display(), "job query failed: {why}");
                if args.id.is_empty() {
                    by_target.insert(t.daemon_id.clone(), Vec::new());
                }
            }
        }
    }
    if args.id.is_empty() {
        return Ok(json_response(&by_target));
    }
    if let Some(launched) = proxy.jobs.get(&args.id)
        && !launched.coordinated
    {
        let smap = proxy.shared.smap.load();
        for p in &launched.participants {
            // Only a participant that said it does not know the job, or that left, is lost; one
            // that did not answer this time may still be working.
            let said_unknown = unknown_to.contains(&p.daemon_id);
            let left = !smap.tmap.contains_key(&p.daemon_id);
            if by_target.contains_key(&p.daemon_id) || !(said_unknown || left) {
                continue;
            }
            let why = lost(&smap, p);
            by_target.insert(
                p.daemon_id.clone(),
                vec![lost_snap(&args.id, &launched, &why)],
            );
        }
    }
    if by_target.values().all(Vec::is_empty) {
        return Err(ApiError::not_found(not_found_text(&args.id, &kind)));
    }
    Ok(json_response(&by_target))
}

/// Why a participant that no longer reports on a job cannot: it left the cluster map (or came
/// back as another node), or it restarted and forgot the job.
fn lost(smap: &moss_types::smap::Smap, participant: &Snode) -> String {
    match smap.tmap.get(&participant.daemon_id) {
        Some(now) if now.url() == participant.url() => format!(
            "{} restarted while the job ran and no longer knows it",
            participant.display()
        ),
        _ => format!(
            "{} left the cluster while the job ran",
            participant.display()
        ),
    }
}

/// A participant that can no longer report, as an aborted snapshot, so waits fail honestly.
fn lost_snap(id: &str, launched: &Launched, why: &str) -> Snap {
    Snap {
        start_time: moss_jobs::rfc3339(launched.started),
        end_time: moss_jobs::rfc3339(SystemTime::now()),
        id: id.to_string(),
        kind: launched.kind.kind.to_string(),
        abort_err: why.to_string(),
        aborted: true,
        is_idle: true,
        ..Snap::default()
    }
}

/// The IC status of job `id` from its participants' snapshots (`reports`, by target id). Lost
/// participants make the job aborted; the status is final once nobody is still running it.
fn status_of(
    id: &str,
    launched: Option<&Launched>,
    reports: &BTreeMap<String, Vec<Snap>>,
    smap: &moss_types::smap::Smap,
) -> Option<JobStatus> {
    let mut snaps: Vec<&Snap> = reports.values().flatten().filter(|s| s.id == id).collect();
    let kind = launched
        .map(|l| l.kind.kind.to_string())
        .or_else(|| snaps.first().map(|s| s.kind.clone()))?;
    let mut lost_errs = Vec::new();
    if let Some(l) = launched {
        for p in &l.participants {
            if !reports
                .get(&p.daemon_id)
                .is_some_and(|v| v.iter().any(|s| s.id == id))
            {
                lost_errs.push(lost(smap, p));
            }
        }
    } else if snaps.is_empty() {
        return None;
    }
    snaps.sort_by(|a, b| a.end_time.cmp(&b.end_time));
    let aborted = !lost_errs.is_empty() || snaps.iter().any(|s| s.aborted);
    let all_done = snaps.iter().all(|s| s.finished() || s.aborted);
    let mut errs: Vec<String> = lost_errs;
    for s in &snaps {
        for text in [&s.abort_err, &s.err] {
            if !text.is_empty() && !errs.contains(text) {
                errs.push(text.clone());
            }
        }
    }
    let end_time = if all_done {
        snaps
            .iter()
            .map(|s| moss_jobs::unix_nanos(&s.end_time))
            .max()
            .unwrap_or(0)
            .max(1)
    } else {
        0
    };
    Some(JobStatus {
        kind,
        uuid: id.to_string(),
        err: errs.join("; "),
        end_time,
        aborted,
        is_idle: all_done,
    })
}

/// Status of one launched or target-known job, caching it once final.
async fn one_status(proxy: &Proxy, id: &str) -> Option<JobStatus> {
    let launched = proxy.jobs.get(id);
    if let Some((status, _)) = launched.as_ref().and_then(|l| l.done.clone()) {
        return Some(status);
    }
    if let Some(l) = &launched
        && l.coordinated
    {
        return Some(JobStatus {
            kind: l.kind.kind.to_string(),
            uuid: id.to_string(),
            ..Default::default()
        });
    }
    let filter = JobFilter {
        id: id.to_string(),
        ..Default::default()
    };
    let asked = match &launched {
        Some(l) => l.participants.clone(),
        None => targets(proxy),
    };
    let mut reports = BTreeMap::new();
    let answers = fanout(proxy, &asked, &filter).await;
    let smap = proxy.shared.smap.load_full();
    for (t, answer) in answers {
        match answer {
            Answer::Reports(r) => {
                reports.insert(t.daemon_id, r.into_iter().map(|r| r.snap).collect());
            }
            Answer::Unknown => {}
            // Unreachable but still a member: neither done nor lost yet. One that left the map is
            // lost (`status_of` says so).
            Answer::Failed(_) => {
                let member = smap
                    .tmap
                    .get(&t.daemon_id)
                    .is_some_and(|now| now.url() == t.url());
                if member {
                    reports.insert(t.daemon_id, vec![running_placeholder(id)]);
                }
            }
        }
    }
    let status = status_of(id, launched.as_ref(), &reports, &smap)?;
    if status.end_time != 0 && launched.is_some() {
        proxy.jobs.set_done(id, &status);
    }
    Some(status)
}

/// Stands in for a participant that did not answer this time: still running, as far as we know.
fn running_placeholder(id: &str) -> Snap {
    Snap {
        id: id.to_string(),
        end_time: ZERO_TIME.to_string(),
        ..Snap::default()
    }
}

/// `what=status`: one job's IC status (id, or the latest of a kind).
pub async fn status(proxy: &Proxy, body: &[u8]) -> Result<Response, ApiError> {
    let args = parse_args(body)?;
    let kind = translate(&args.kind);
    if args.id.is_empty() && kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid x-{}[]: a job id or kind is required",
            args.kind
        )));
    }
    let nl_missing = |id: &str| {
        ApiError::not_found(format!(
            "{}: nl [x-{kind}[{id}]] does not exist",
            proxy.shared.name
        ))
    };
    if let Some(info) = kind_info(&kind)
        && !info.ic
    {
        // Only kinds with a notification listener have a status (AIStore: 404 for the others).
        return Err(nl_missing(&args.id));
    }
    let id = if args.id.is_empty() {
        latest_of_kind(proxy, &kind)
            .await
            .ok_or_else(|| nl_missing(""))?
    } else {
        args.id.clone()
    };
    let status = one_status(proxy, &id)
        .await
        .ok_or_else(|| nl_missing(&id))?;
    if !kind.is_empty() && status.kind != kind {
        return Err(ApiError::bad_request(format!(
            "job {id} is {:?}, not {kind:?}",
            status.kind
        )));
    }
    if !kind_info(&status.kind).is_some_and(|k| k.ic) {
        return Err(nl_missing(&id));
    }
    Ok(json_response(&status))
}

/// Waits until job `id` has ended everywhere; its error (or abort) is the caller's error.
pub async fn wait_done(proxy: &Proxy, id: &str, limit: Duration) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(status) = one_status(proxy, id).await
            && status.end_time != 0
        {
            if status.err.is_empty() && !status.aborted {
                return Ok(());
            }
            return Err(ApiError::internal(format!(
                "job {id} failed: {}",
                status.err
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::unavailable(format!(
                "job {id} is still running after {limit:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The running job of a kind, or else the one launched most recently.
async fn latest_of_kind(proxy: &Proxy, kind: &str) -> Option<String> {
    let launched = proxy.jobs.of_kind(kind);
    // The newest few are enough: an older one still running is rare, and each look is a fan-out.
    for (id, _) in launched.iter().rev().take(16) {
        if one_status(proxy, id).await.is_some_and(|s| s.end_time == 0) {
            return Some(id.clone());
        }
    }
    launched.last().map(|(id, _)| id.clone())
}

/// `what=status_all`: the IC status of every launched job of a kind (finished ones included).
pub async fn status_all(proxy: &Proxy, body: &[u8]) -> Result<Response, ApiError> {
    let args = parse_args(body)?;
    // AIStore does not translate display names here.
    let launched = proxy.jobs.of_kind(&args.kind);
    let mut list = Vec::with_capacity(launched.len());
    for (id, l) in launched {
        if !l.kind.ic {
            continue;
        }
        if let Some(status) = one_status(proxy, &id).await
            && (!args.only_running || status.end_time == 0)
        {
            list.push(status);
        }
    }
    Ok(json_response(&list))
}

/// `what=running_all`: `kind[id]` of every job not finished (idle ones included), de-duplicated.
pub async fn running_all(proxy: &Proxy, body: &[u8]) -> Result<Response, ApiError> {
    let args = parse_args(body)?;
    let filter = JobFilter {
        kind: translate(&args.kind),
        only_running: true,
        ..Default::default()
    };
    let mut names: Vec<String> = Vec::new();
    for (_, answer) in fanout(proxy, &targets(proxy), &filter).await {
        if let Answer::Reports(reports) = answer {
            for r in reports {
                let name = format!("{}[{}]", r.snap.kind, r.snap.id);
                if r.snap.running() && !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    for (id, l) in proxy.jobs.of_kind(&filter.kind) {
        let name = format!("{}[{id}]", l.kind.kind);
        if l.coordinated && l.done.is_none() && !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(json_response(&names))
}

/// `PUT /v1/cluster {"action":"start"}`: starts a startable kind moss runs; answers its id.
pub async fn start(proxy: &Arc<Proxy>, value: &serde_json::Value) -> Result<Response, ApiError> {
    let args = JobArgs::parse(value).map_err(ApiError::bad_request)?;
    let Some(info) = kind_info(&args.kind) else {
        return Err(ApiError::bad_request(format!(
            "invalid xaction (job) kind {:?}",
            args.kind
        )));
    };
    if !info.startable {
        return Err(ApiError::bad_request(format!(
            "job kind {:?} cannot be started with \"start\": it runs as part of its operation",
            info.kind
        )));
    }
    for bck in args.bck.iter().chain(&args.buckets) {
        super::require_bucket(proxy, bck).await?;
    }
    let id = match info.kind {
        jobs::LRU => launch(proxy, moss_jobs::generic_id(), JobSpec::Lru, targets(proxy)).await?,
        jobs::CLEANUP => {
            launch(
                proxy,
                moss_jobs::generic_id(),
                JobSpec::Cleanup,
                targets(proxy),
            )
            .await?
        }
        jobs::REBALANCE => start_rebalance(proxy).await?,
        kind @ (jobs::EC_ENCODE | jobs::MAKE_N_COPIES) => {
            let bck = args
                .bck
                .clone()
                .ok_or_else(|| ApiError::bad_request(format!("{kind} needs a bucket")))?;
            if kind == jobs::EC_ENCODE {
                start_ec_encode(proxy, &bck).await?
            } else {
                start_make_n_copies(proxy, &bck).await?
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "job kind {other:?} is not supported by moss"
            )));
        }
    };
    Ok(id.into_response())
}

/// An `ec-encode` job on every target for a bucket whose EC is on.
pub async fn start_ec_encode(proxy: &Proxy, bck: &moss_types::Bck) -> Result<String, ApiError> {
    let enabled = proxy
        .shared
        .bmd
        .load()
        .get(bck)
        .is_some_and(|p| p.ec.enabled);
    if !enabled {
        return Err(ApiError::bad_request(format!(
            "ec-encode: EC is not enabled for {} (set ec.enabled first)",
            bck.cname()
        )));
    }
    let spec = JobSpec::EcEncode { bck: bck.clone() };
    launch(proxy, moss_jobs::generic_id(), spec, targets(proxy)).await
}

/// `make-n-copies` on every target: each brings the bucket's objects to its `mirror` setting
/// (copies made or removed; 1 when mirroring is off).
pub async fn start_make_n_copies(proxy: &Proxy, bck: &moss_types::Bck) -> Result<String, ApiError> {
    let copies = proxy
        .shared
        .bmd
        .load()
        .get(bck)
        .map(|p| p.mirror.wanted() as u32)
        .ok_or_else(|| ApiError::no_bucket(&bck.cname()))?;
    let spec = JobSpec::MakeNCopies {
        bck: bck.clone(),
        copies,
    };
    launch(proxy, moss_jobs::generic_id(), spec, targets(proxy)).await
}

/// A new rebalance: a new cluster-map version, which every target answers with a pass `g<ver>`.
async fn start_rebalance(proxy: &Arc<Proxy>) -> Result<String, ApiError> {
    let participants = targets(proxy);
    let version = proxy
        .modify(|meta| {
            meta.smap.version += 1;
            Ok(meta.smap.version)
        })
        .await?;
    let id = moss_jobs::rebalance_id(version);
    let kind = kind_info(jobs::REBALANCE).ok_or_else(|| ApiError::internal("no rebalance kind"))?;
    proxy.jobs.insert(
        &id,
        Launched {
            kind,
            participants,
            started: SystemTime::now(),
            done: None,
            coordinated: false,
        },
    );
    Ok(id)
}

/// `PUT /v1/cluster {"action":"stop"}`: aborts a job by id, or every running job of a kind.
pub async fn stop(proxy: &Proxy, value: &serde_json::Value) -> Result<Response, ApiError> {
    let args = JobArgs::parse(value).map_err(ApiError::bad_request)?;
    if args.id.is_empty() && args.kind.is_empty() {
        return Err(ApiError::bad_request("stop: a job id or kind is required"));
    }
    if !args.id.is_empty() && !valid_job_id(&args.id) {
        return Err(ApiError::bad_request(format!(
            "invalid xaction (job) UUID {:?}",
            args.id
        )));
    }
    let kind = translate(&args.kind);
    let renaming = kind == jobs::MOVE_BCK
        || proxy
            .jobs
            .get(&args.id)
            .is_some_and(|l| l.kind.kind == jobs::MOVE_BCK);
    if renaming {
        return Err(ApiError::bad_request(
            "a bucket rename cannot be aborted: its objects are already under the new name; it finishes by itself",
        ));
    }
    let stop = JobStop {
        id: args.id.clone(),
        kind,
        bck: args.bck.clone(),
        reason: USER_ABORT.to_string(),
    };
    broadcast_stop(proxy, &targets(proxy), &stop).await;
    Ok(StatusCode::OK.into_response())
}

async fn broadcast_stop(proxy: &Proxy, targets: &[Snode], stop: &JobStop) {
    let calls = targets.iter().map(|t| {
        let request = jobs_call(proxy, reqwest::Method::POST, t, "/stop").json(stop);
        let name = t.display();
        async move {
            // A hung target is not waited for past its removal from the map (it then aborts its
            // jobs itself when it finds out).
            match while_member(proxy, t, FANOUT_TIMEOUT, request.send()).await {
                Ok(Ok(r)) if r.status().is_success() => {}
                Ok(Ok(r)) => {
                    tracing::warn!(node = %name, status = r.status().as_u16(), "job stop refused")
                }
                Ok(Err(e)) => tracing::warn!(node = %name, "job stop failed: {e}"),
                Err(abandoned) => {
                    tracing::warn!(node = %name, "job stop not delivered: target {abandoned}")
                }
            }
        }
    });
    join_all(calls).await;
}

/// Starts (again) job `id` on some of its participants, e.g. a share that failed.
pub async fn restart_on(
    proxy: &Proxy,
    id: &str,
    spec: JobSpec,
    targets: &[Snode],
) -> Result<(), ApiError> {
    send_start(proxy, id, spec, targets).await.map(|_| ())
}

/// Sends a job start to `targets`; the first failure, if any.
async fn send_start(
    proxy: &Proxy,
    id: &str,
    spec: JobSpec,
    targets: &[Snode],
) -> Result<(), ApiError> {
    let start = JobStart {
        id: id.to_string(),
        spec,
    };
    let body = serde_json::to_vec(&start)
        .map_err(|e| ApiError::internal(format!("encode job start: {e}")))?;
    let calls = targets.iter().map(|t| {
        let request = jobs_call(proxy, reqwest::Method::POST, t, "")
            .header("content-type", "application/json")
            .body(body.clone());
        async move {
            match while_member(proxy, t, FANOUT_TIMEOUT, request.send()).await {
                Ok(Ok(r)) if r.status().is_success() => Ok(()),
                Ok(Ok(r)) => {
                    let status = r.status();
                    let body = r.json::<moss_types::ErrorBody>().await.unwrap_or_default();
                    Err(ApiError::new(
                        status,
                        format!("{}: {}", t.display(), body.message),
                    ))
                }
                Ok(Err(e)) => Err(ApiError::unavailable(format!(
                    "{} could not start the job: {e}",
                    t.display()
                ))),
                Err(abandoned) => Err(ApiError::unavailable(format!(
                    "{} could not start the job: target {abandoned}",
                    t.display()
                ))),
            }
        }
    });
    match join_all(calls).await.into_iter().find_map(Result::err) {
        Some(first) => Err(first),
        None => Ok(()),
    }
}

/// Starts job `id` on `participants` and remembers them. Every participant registers the job
/// before this returns, so the caller may hand out the id at once. If one cannot start it, the
/// others abort it and the caller gets that target's error.
pub async fn launch(
    proxy: &Proxy,
    id: String,
    spec: JobSpec,
    participants: Vec<Snode>,
) -> Result<String, ApiError> {
    if participants.is_empty() {
        return Err(ApiError::unavailable("no targets in the cluster"));
    }
    let kind = kind_info(spec.kind()).ok_or_else(|| ApiError::internal("unknown job kind"))?;
    proxy.jobs.insert(
        &id,
        Launched {
            kind,
            participants: participants.clone(),
            started: SystemTime::now(),
            done: None,
            coordinated: false,
        },
    );
    let failures = send_start(proxy, &id, spec, &participants).await.err();
    if let Some(first) = failures {
        let stop = JobStop {
            id: id.clone(),
            reason: format!("failed to start everywhere: {}", first.message),
            ..Default::default()
        };
        broadcast_stop(proxy, &participants, &stop).await;
        proxy.jobs.set_done(
            &id,
            &JobStatus {
                kind: kind.kind.to_string(),
                uuid: id.clone(),
                err: stop.reason.clone(),
                end_time: now_nanos().max(1),
                aborted: true,
                is_idle: true,
            },
        );
        return Err(first);
    }
    tracing::info!(job = %id, kind = kind.kind, targets = participants.len(), "job launched");
    Ok(id)
}

/// The targets a launched job was started on, if this proxy launched it.
pub fn participants(proxy: &Proxy, id: &str) -> Option<Vec<Snode>> {
    proxy.jobs.get(id).map(|l| l.participants)
}

/// Records a job whose status the proxy itself decides (a rename), before it is announced.
pub fn record_coordinated(proxy: &Proxy, id: &str, kind: &str, participants: Vec<Snode>) {
    if let Some(kind) = kind_info(kind) {
        proxy.jobs.insert(
            id,
            Launched {
                kind,
                participants,
                started: SystemTime::now(),
                done: None,
                coordinated: true,
            },
        );
    }
}

/// Ends a coordinated job with the given outcome.
pub fn finish_coordinated(proxy: &Proxy, id: &str, err: Option<String>) {
    let Some(launched) = proxy.jobs.get(id) else {
        return;
    };
    let status = JobStatus {
        kind: launched.kind.kind.to_string(),
        uuid: id.to_string(),
        err: err.clone().unwrap_or_default(),
        end_time: now_nanos().max(1),
        aborted: err.is_some(),
        is_idle: true,
    };
    proxy.jobs.set_done(id, &status);
}

/// Every report `targets` give for `filter` (unknown and unreachable targets contribute nothing).
pub async fn reports(proxy: &Proxy, targets: &[Snode], filter: &JobFilter) -> Vec<JobReport> {
    fanout(proxy, targets, filter)
        .await
        .into_iter()
        .flat_map(|(_, answer)| match answer {
            Answer::Reports(r) => r,
            Answer::Unknown | Answer::Failed(_) => Vec::new(),
        })
        .collect()
}

/// The snapshot of job `id` on each of `targets`, for coordinators (`None` where a target does
/// not know the job or did not answer).
pub async fn shares(proxy: &Proxy, id: &str, targets: &[Snode]) -> BTreeMap<String, Option<Snap>> {
    let filter = JobFilter {
        id: id.to_string(),
        ..Default::default()
    };
    fanout(proxy, targets, &filter)
        .await
        .into_iter()
        .map(|(t, answer)| {
            let snap = match answer {
                Answer::Reports(r) => r.into_iter().map(|r| r.snap).find(|s| s.id == id),
                Answer::Unknown | Answer::Failed(_) => None,
            };
            (t.daemon_id, snap)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use moss_types::smap::{PROXY, Smap, TARGET};

    fn smap_with(targets: &[Snode]) -> Smap {
        let p = Snode::new("p1", PROXY, "http://p", 0);
        Smap {
            pmap: [("p1".to_string(), p.clone())].into(),
            proxy_si: p,
            tmap: targets
                .iter()
                .map(|t| (t.daemon_id.clone(), t.clone()))
                .collect(),
            uuid: String::new(),
            creation_time: String::new(),
            version: 3,
        }
    }

    fn snap(id: &str, end: &str, aborted: bool, err: &str) -> Snap {
        Snap {
            id: id.into(),
            kind: jobs::DELETE_OBJECTS.into(),
            start_time: "2026-12-01T10:00:00Z".into(),
            end_time: end.into(),
            aborted,
            err: err.into(),
            ..Default::default()
        }
    }

    fn launched(participants: &[Snode]) -> Launched {
        Launched {
            kind: kind_info(jobs::DELETE_OBJECTS).unwrap(),
            participants: participants.to_vec(),
            started: SystemTime::now(),
            done: None,
            coordinated: false,
        }
    }

    #[test]
    fn status_is_final_only_when_every_participant_is_done() {
        let t1 = Snode::new("t1", TARGET, "http://t1", 1);
        let t2 = Snode::new("t2", TARGET, "http://t2", 2);
        let smap = smap_with(&[t1.clone(), t2.clone()]);
        let l = launched(&[t1.clone(), t2.clone()]);
        let mut reports = BTreeMap::new();
        reports.insert(
            "t1".to_string(),
            vec![snap("J1", "2026-12-01T10:00:01Z", false, "")],
        );
        reports.insert("t2".to_string(), vec![snap("J1", ZERO_TIME, false, "")]);
        let s = status_of("J1", Some(&l), &reports, &smap).unwrap();
        assert_eq!(s.end_time, 0);
        assert!(!s.aborted);
        reports.insert(
            "t2".to_string(),
            vec![snap(
                "J1",
                "2026-12-01T10:00:02Z",
                false,
                "ais://b/x does not exist",
            )],
        );
        let s = status_of("J1", Some(&l), &reports, &smap).unwrap();
        assert_eq!(s.end_time, 1_796_119_202_000_000_000);
        assert_eq!(s.err, "ais://b/x does not exist");
        assert_eq!(s.kind, jobs::DELETE_OBJECTS);
    }

    #[test]
    fn a_participant_that_left_aborts_the_job() {
        let t1 = Snode::new("t1", TARGET, "http://t1", 1);
        let t2 = Snode::new("t2", TARGET, "http://t2", 2);
        let smap = smap_with(std::slice::from_ref(&t1));
        let l = launched(&[t1.clone(), t2.clone()]);
        let mut reports = BTreeMap::new();
        reports.insert(
            "t1".to_string(),
            vec![snap("J1", "2026-12-01T10:00:01Z", false, "")],
        );
        let s = status_of("J1", Some(&l), &reports, &smap).unwrap();
        assert!(s.aborted);
        assert_ne!(s.end_time, 0);
        assert!(s.err.contains("t[t2] left the cluster"), "{}", s.err);
    }

    #[test]
    fn unknown_jobs_have_no_status() {
        let smap = smap_with(&[]);
        assert!(status_of("J1", None, &BTreeMap::new(), &smap).is_none());
    }
}
