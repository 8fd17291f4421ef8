//! `--jobs`: how fast the multi-object jobs run on a real cluster (proxy + targets as separate
//! processes): bucket copy, template copy, archive into one shard, delete by template and by
//! prefix, over N small objects. Prints objects/s and the servers' CPU per object.
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::data::{content, create_bucket, put_object};
use crate::http::{Peer, Req, read_json, read_text};
use crate::sys::{self, Pinning};

/// What one job cell measured.
struct JobCell {
    id: &'static str,
    what: String,
    objects: u64,
    secs: f64,
    server_cpu_s: f64,
}

/// Runs the job cells with `n` objects of `size` bytes; returns the table (also printed).
pub async fn run(
    pin: &Pinning,
    moss_bin: &std::path::Path,
    work: &std::path::Path,
    targets: usize,
    n: usize,
    size: usize,
) -> Result<String> {
    eprintln!("jobs: starting moss (proxy + {targets} targets)");
    let mut cluster = Cluster::start(
        pin,
        moss_bin,
        &work.join("jobs-data"),
        &work.join("logs"),
        targets,
    )
    .await?;
    let proxy = cluster.proxy.addr;
    let pids = cluster.pids();
    let mut peers: Vec<Peer> = (0..48).map(|_| Peer::new()).collect();
    create_bucket(&mut peers[0], proxy, "jsrc").await?;
    create_bucket(&mut peers[0], proxy, "jdst").await?;
    eprintln!("jobs: uploading {n} objects of {size} B (48 PUTs in flight, fsynced)");
    let started = Instant::now();
    let cpu0 = sys::total_cpu_ticks(&pids);
    upload(&mut peers, proxy, n, size).await?;
    let upload_secs = started.elapsed().as_secs_f64();
    let upload_cpu = sys::ticks_to_us(sys::total_cpu_ticks(&pids).saturating_sub(cpu0));
    let width = digits(n);
    let template = format!("obj-{{{}..{}}}", pad(0, width), pad(n - 1, width));
    let peer = &mut peers[0];
    let mut cells = Vec::new();
    let steps = vec![
        Step {
            id: "J1",
            what: "copy bucket (copy-bck)".into(),
            method: Method::POST,
            bucket: "jsrc",
            action: "copy-bck",
            value: json!({"prefix": "", "prepend": ""}),
            query: "&bck_to=ais%2F%40%23%2Fjcopy%2F".into(),
            objects: n as u64,
        },
        Step {
            id: "J2",
            what: "copy a template (copy-listrange)".into(),
            method: Method::POST,
            bucket: "jsrc",
            action: "copy-listrange",
            value: json!({"template": template, "tobck": {"name": "jdst", "provider": "ais"}}),
            query: String::new(),
            objects: n as u64,
        },
        Step {
            id: "J3",
            what: format!("archive a template into one .tar ({n} members)"),
            method: Method::PUT,
            bucket: "jsrc",
            action: "archive",
            value: json!({"template": template, "archname": "all.tar"}),
            query: String::new(),
            objects: n as u64,
        },
        Step {
            id: "J4",
            what: "delete a template (delete-listrange)".into(),
            method: Method::DELETE,
            bucket: "jdst",
            action: "delete-listrange",
            value: json!({"template": template}),
            query: String::new(),
            objects: n as u64,
        },
        Step {
            id: "J5",
            what: "delete by prefix (delete-listrange)".into(),
            method: Method::DELETE,
            bucket: "jcopy",
            action: "delete-listrange",
            value: json!({"template": "obj-"}),
            query: String::new(),
            objects: n as u64,
        },
    ];
    for Step {
        id,
        what,
        method,
        bucket,
        action,
        value,
        query,
        objects,
    } in steps
    {
        eprintln!("jobs: {id} {what}");
        let cpu0 = sys::total_cpu_ticks(&pids);
        let t0 = Instant::now();
        let job = start(peer, proxy, method, bucket, action, value, &query).await?;
        let snaps = wait(peer, proxy, &job)
            .await
            .with_context(|| format!("{id} {what}"))?;
        let secs = t0.elapsed().as_secs_f64();
        let cpu = sys::total_cpu_ticks(&pids).saturating_sub(cpu0);
        verify(id, &snaps, objects).with_context(|| format!("{id} {what}"))?;
        cells.push(JobCell {
            id,
            what,
            objects,
            secs,
            server_cpu_s: sys::ticks_to_us(cpu) / 1e6,
        });
    }
    cluster.stop();
    let mut table = format!(
        "jobs: {n} objects of {size} B, {targets} targets; for scale, the upload (48 PUTs in flight): {:.0} objects/s, {:.1} µs server CPU/obj\n",
        n as f64 / upload_secs,
        upload_cpu / n as f64
    );
    table.push_str(&format!(
        "{:<4} {:<48} {:>9} {:>8} {:>11} {:>16}\n",
        "cell", "job", "objects", "seconds", "objects/s", "server CPU/obj"
    ));
    for c in &cells {
        table.push_str(&format!(
            "{:<4} {:<48} {:>9} {:>8.2} {:>11.0} {:>13.1} µs\n",
            c.id,
            c.what,
            c.objects,
            c.secs,
            c.objects as f64 / c.secs,
            c.server_cpu_s * 1e6 / c.objects as f64
        ));
    }
    Ok(table)
}

fn digits(n: usize) -> usize {
    (n.saturating_sub(1)).to_string().len()
}

fn pad(i: usize, width: usize) -> String {
    format!("{i:0width$}")
}

async fn upload(peers: &mut [Peer], proxy: SocketAddr, n: usize, size: usize) -> Result<()> {
    let width = digits(n);
    let next = Cell::new(0usize);
    let next = &next;
    let workers = peers.iter_mut().map(|peer| async move {
        loop {
            let i = next.get();
            if i >= n {
                return Ok::<(), anyhow::Error>(());
            }
            next.set(i + 1);
            let path = format!("/v1/objects/jsrc/obj-{}?provider=ais", pad(i, width));
            put_object(peer, proxy, &path, Bytes::from(content(i as u64, size))).await?;
        }
    });
    for r in futures::future::join_all(workers).await {
        r?;
    }
    Ok(())
}

async fn start(
    peer: &mut Peer,
    proxy: SocketAddr,
    method: Method,
    bucket: &str,
    action: &str,
    value: Value,
    query: &str,
) -> Result<String> {
    let path = format!("/v1/buckets/{bucket}?provider=ais{query}");
    let body = json!({"action": action, "name": "", "value": value}).to_string();
    let req = Req {
        method,
        path: &path,
        body: Bytes::from(body),
        json: true,
        range: None,
    };
    let resp = peer.send_follow(proxy, &req, None).await?;
    let status = resp.status();
    let text = read_text(resp).await;
    ensure!(status.is_success(), "{action} on {bucket}: {status} {text}");
    Ok(text)
}

/// The job did all of its work: every object counted (an archive: one shard with every member).
fn verify(cell: &str, snaps: &[Value], objects: u64) -> Result<()> {
    let count = |key: &str| -> u64 {
        snaps
            .iter()
            .filter_map(|s| s["stats"][key].as_str()?.parse::<u64>().ok())
            .sum()
    };
    if cell == "J3" {
        let note = format!("{objects} member(s)");
        ensure!(
            count("loc-objs") == 1
                && snaps
                    .iter()
                    .any(|s| s["ctlmsg"].as_str().is_some_and(|m| m.starts_with(&note))),
            "the archive does not hold {objects} members: {snaps:?}"
        );
        return Ok(());
    }
    ensure!(
        count("loc-objs") == objects,
        "{} objects processed, expected {objects}",
        count("loc-objs")
    );
    if let Some(err) = snaps
        .iter()
        .find_map(|s| s["err"].as_str().filter(|e| !e.is_empty()))
    {
        bail!("job reported errors: {err}");
    }
    Ok(())
}

/// Polls the job until every target's share is finished (or idle, for idle kinds); its snapshots.
async fn wait(peer: &mut Peer, proxy: SocketAddr, id: &str) -> Result<Vec<Value>> {
    let path = "/v1/cluster?what=qryxstats";
    let body = Bytes::from(json!({"ID": id, "Kind": ""}).to_string());
    let deadline = Instant::now() + Duration::from_secs(1800);
    loop {
        let req = Req::get_json(path, body.clone());
        let resp = peer.send_follow(proxy, &req, None).await?;
        let snaps = read_json(resp).await?;
        let all: Vec<&Value> = snaps
            .as_object()
            .map(|m| m.values().filter_map(Value::as_array).flatten().collect())
            .unwrap_or_default();
        let done = |s: &&Value| {
            s["aborted"] == true || s["is_idle"] == true || s["end-time"] != "0001-01-01T00:00:00Z"
        };
        if !all.is_empty() && all.iter().all(done) {
            if let Some(failed) = all.iter().find(|s| s["aborted"] == true) {
                bail!("job {id} aborted: {}", failed["abort-err"]);
            }
            return Ok(all.into_iter().cloned().collect());
        }
        if Instant::now() > deadline {
            bail!("job {id} did not finish");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One job cell: the call that starts the job and how many objects it must report done.
struct Step {
    id: &'static str,
    what: String,
    method: Method,
    bucket: &'static str,
    action: &'static str,
    value: Value,
    query: String,
    objects: u64,
}
