//! Jobs on real clusters: multi-object and bucket operations across targets, a million-name
//! template in bounded memory, aborts that stop the work, targets that die or were down during a
//! job, rebalance as a job, and bad input.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use moss_testkit::{Api, ClusterSandbox, data, read_tar};
use moss_types::jobs::{JobStatus, Snap};
use serde_json::{Value, json};

use crate::cluster::ProcCluster;

/// The job API as a test drives it.
struct Jobs {
    api: Api,
}

impl Jobs {
    /// A bucket action; (status, body text).
    async fn action(
        &self,
        method: reqwest::Method,
        bucket: &str,
        act: &str,
        value: Value,
        query: &str,
    ) -> (u16, String) {
        let url = format!(
            "{}/v1/buckets/{bucket}?provider=ais{query}",
            self.api.endpoint
        );
        let r = self
            .api
            .http
            .request(method, url)
            .json(&json!({"action": act, "name": "", "value": value}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// A bucket action that must start a job; its id.
    async fn start(
        &self,
        method: reqwest::Method,
        bucket: &str,
        act: &str,
        value: Value,
        query: &str,
    ) -> String {
        let (status, text) = self.action(method, bucket, act, value, query).await;
        assert_eq!(status, 200, "{act} on {bucket}: {text}");
        text
    }

    async fn cluster_get(&self, what: &str, body: Value) -> (u16, String) {
        let r = self
            .api
            .http
            .get(format!("{}/v1/cluster?what={what}", self.api.endpoint))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn cluster_put(&self, act: &str, value: Value) -> (u16, String) {
        let r = self
            .api
            .http
            .put(format!("{}/v1/cluster", self.api.endpoint))
            .json(&json!({"action": act, "name": "", "value": value}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn snaps(&self, id: &str) -> BTreeMap<String, Vec<Snap>> {
        let (status, text) = self
            .cluster_get("qryxstats", json!({"ID": id, "Kind": ""}))
            .await;
        assert_eq!(status, 200, "qryxstats {id}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn status(&self, id: &str) -> JobStatus {
        let (code, text) = self
            .cluster_get("status", json!({"ID": id, "Kind": ""}))
            .await;
        assert_eq!(code, 200, "status {id}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Polls until every target's snapshot of `id` is finished, aborted or idle.
    async fn wait(&self, id: &str, limit: Duration) -> Vec<Snap> {
        let deadline = Instant::now() + limit;
        loop {
            let snaps: Vec<Snap> = self.snaps(id).await.into_values().flatten().collect();
            if !snaps.is_empty() && snaps.iter().all(|s| s.finished() || s.aborted || s.is_idle) {
                return snaps;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} still running: {snaps:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the proxy's status until the job has ended.
    async fn wait_status(&self, id: &str, limit: Duration) -> JobStatus {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(id).await;
            if status.end_time != 0 {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not end: {status:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn sum(snaps: &[Snap], f: impl Fn(&Snap) -> u64) -> u64 {
    snaps.iter().map(f).sum()
}

async fn names(api: &Api, bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let r = api
            .http
            .get(format!("{}/v1/buckets/{bucket}?provider=ais", api.endpoint))
            .json(&json!({"action":"list","value":{"props":"name","continuation_token": token}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "list {bucket}");
        let page: Value = r.json().await.unwrap();
        for e in page["entries"].as_array().unwrap() {
            out.push(e["name"].as_str().unwrap().to_string());
        }
        token = page["continuation_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            return out;
        }
    }
}

/// Every object's bytes through one GetBatch (order as given).
async fn fetch_all(api: &Api, bucket: &str, objects: &[String]) -> Vec<(String, Vec<u8>)> {
    let entries: Vec<Value> = objects.iter().map(|n| json!({"objname": n})).collect();
    let r = api
        .batch(
            Some(bucket),
            &json!({"in": entries, "strm": true, "onob": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    read_tar(&r.bytes().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_archive_and_delete_across_three_targets() {
    let c = ClusterSandbox::builder().targets(3).start().await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("src").await;
    let mut objects: Vec<(String, Vec<u8>)> = (0..1200)
        .map(|i| {
            (
                format!("img/{i:05}.jpg"),
                data(i, 1 + (i as usize * 37) % 9000),
            )
        })
        .collect();
    objects.push(("big/one.bin".into(), data(7, 3 << 20)));
    c.api.put_many("src", objects.clone()).await;
    let all: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();

    // Bucket copy: every target copies its own share, streamed to the destination's owners.
    let id = jobs
        .start(
            reqwest::Method::POST,
            "src",
            "copy-bck",
            json!({"prefix": "", "prepend": "", "dry_run": false}),
            "&bck_to=ais%2F%40%23%2Fdst%2F",
        )
        .await;
    let snaps = jobs.wait(&id, Duration::from_secs(120)).await;
    assert_eq!(snaps.len(), 3, "one share per target: {snaps:?}");
    assert!(
        snaps
            .iter()
            .all(|s| s.finished() && !s.aborted && s.err.is_empty()),
        "{snaps:?}"
    );
    assert!(
        snaps.iter().all(|s| s.stats.loc_objs > 0),
        "every target worked: {snaps:?}"
    );
    assert_eq!(sum(&snaps, |s| s.stats.loc_objs), objects.len() as u64);
    let total_bytes: u64 = objects.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(sum(&snaps, |s| s.stats.loc_bytes), total_bytes);
    assert_eq!(
        sum(&snaps, |s| s.stats.out_objs),
        sum(&snaps, |s| s.stats.in_objs)
    );
    assert_eq!(jobs.status(&id).await.err, "");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(names(&c.api, "dst").await, sorted);
    assert_eq!(fetch_all(&c.api, "dst", &all).await, objects);

    // Archive 1,000 of them, in template order, as .tgz in the source bucket.
    let (status, text) = jobs
        .action(
            reqwest::Method::PUT,
            "src",
            "archive",
            json!({"template": "img/{00999..00000}", "archname": "x.tgz"}),
            "",
        )
        .await;
    assert_eq!(status, 400, "a reversed range is refused: {text}");
    let id = jobs
        .start(
            reqwest::Method::PUT,
            "src",
            "archive",
            json!({"template": "img/{00000..00999}.jpg", "archname": "shards/x.tgz"}),
            "",
        )
        .await;
    let snaps = jobs.wait(&id, Duration::from_secs(120)).await;
    let owner = snaps
        .iter()
        .find(|s| s.stats.loc_objs == 1)
        .unwrap_or_else(|| panic!("the shard's owner wrote it: {snaps:?}"));
    assert!(!owner.aborted && owner.err.is_empty(), "{owner:?}");
    let shard = c.api.get_bytes("src", "shards/x.tgz").await;
    assert_eq!(owner.stats.loc_bytes, shard.len() as u64);
    let mut gz = flate2::read::MultiGzDecoder::new(&shard[..]);
    let mut tar = Vec::new();
    std::io::Read::read_to_end(&mut gz, &mut tar).unwrap();
    let members = read_tar(&tar);
    assert_eq!(members.len(), 1000);
    assert_eq!(members[..], objects[..1000]);

    // Delete by list; one name that is missing makes the job report it.
    let mut listed: Vec<String> = all[..600].to_vec();
    listed.push("img/none.jpg".into());
    let id = jobs
        .start(
            reqwest::Method::DELETE,
            "src",
            "delete-listrange",
            json!({"objnames": listed}),
            "",
        )
        .await;
    let status = jobs.wait_status(&id, Duration::from_secs(60)).await;
    assert!(!status.aborted, "{status:?}");
    assert_eq!(status.err, "ais://src/img/none.jpg does not exist");
    let left = names(&c.api, "src").await;
    assert_eq!(left.len(), objects.len() - 600 + 1, "the shard stays");
    assert!(left.iter().all(|n| !all[..600].contains(n)));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_stay_correct_while_a_rename_moves_objects() {
    let c = ClusterSandbox::builder().targets(3).start().await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("old").await;
    let objects: Vec<(String, Vec<u8>)> = (0..1500)
        .map(|i| (format!("r/{i:04}"), data(i, 200 + (i as usize % 700))))
        .collect();
    c.api.put_many("old", objects.clone()).await;
    let all: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    let id = jobs
        .start(
            reqwest::Method::POST,
            "old",
            "move-bck",
            Value::Null,
            "&bck_to=ais%2F%40%23%2Fnew%2F",
        )
        .await;
    // Right away, while about two thirds of the objects sit on the wrong target: a strict
    // GetBatch of everything, single GETs, and a listing all see every object.
    assert_eq!(fetch_all(&c.api, "new", &all).await, objects);
    for (name, bytes) in objects.iter().step_by(50) {
        assert_eq!(&c.api.get_bytes("new", name).await[..], &bytes[..]);
    }
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(names(&c.api, "new").await, sorted);
    let status = jobs.wait_status(&id, Duration::from_secs(60)).await;
    assert!(!status.aborted && status.err.is_empty(), "{status:?}");
    assert_eq!(fetch_all(&c.api, "new", &all).await, objects);
    assert_eq!(c.api.get("old", "r/0000").await.status(), 404);
    c.shutdown().await;
}

/// VmHWM (peak resident memory) of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib << 10
}

/// Resets a process's VmHWM to its current RSS (writing 5 to clear_refs).
fn reset_peak_rss(pid: u32) {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_name_template_is_walked_in_bounded_memory() {
    let c = ProcCluster::start(3).await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("b").await;
    // 600 objects spread over the million names of the template.
    let objects: Vec<(String, Vec<u8>)> = (0..600u64)
        .map(|i| (format!("obj-{:06}", i * 1667), data(i, 100)))
        .collect();
    c.api.put_many("b", objects.clone()).await;
    let pids: Vec<u32> = c
        .targets
        .iter()
        .map(|t| t.child.as_ref().unwrap().id())
        .collect();
    for &pid in &pids {
        reset_peak_rss(pid);
    }
    let before: Vec<u64> = pids.iter().map(|&pid| peak_rss(pid)).collect();

    let template = "obj-{000000..999999}";
    let id = jobs
        .start(
            reqwest::Method::POST,
            "b",
            "copy-listrange",
            json!({"template": template, "tobck": {"name": "copy", "provider": "ais"}}),
            "",
        )
        .await;
    let snaps = jobs.wait(&id, Duration::from_secs(300)).await;
    assert!(snaps.iter().all(|s| !s.aborted), "{snaps:?}");
    assert_eq!(sum(&snaps, |s| s.stats.loc_objs), 600);
    let id = jobs
        .start(
            reqwest::Method::DELETE,
            "b",
            "delete-listrange",
            json!({"template": template}),
            "",
        )
        .await;
    let status = jobs.wait_status(&id, Duration::from_secs(300)).await;
    assert!(!status.aborted && status.err.is_empty(), "{status:?}");
    assert!(names(&c.api, "b").await.is_empty());
    assert_eq!(names(&c.api, "copy").await.len(), 600);
    // A million names held in memory would be tens of MiB per target; streamed, the peak does
    // not move much.
    for (i, &pid) in pids.iter().enumerate() {
        let grew = peak_rss(pid).saturating_sub(before[i]);
        eprintln!("target {i}: peak RSS grew by {} KiB", grew >> 10);
        assert!(
            grew < 32 << 20,
            "target {i} peak RSS grew by {} MiB walking the template",
            grew >> 20
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_abort_stops_a_copy_in_flight() {
    let c = ProcCluster::start(3).await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("b").await;
    c.api.create_bucket("dst").await;
    let objects: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("o-{i:03}"), data(i, 20_000)))
        .collect();
    c.api.put_many("b", objects).await;
    let id = jobs
        .start(
            reqwest::Method::POST,
            "b",
            "copy-listrange",
            json!({"template": "o-{000..299}", "tobck": {"name": "dst", "provider": "ais"},
                   "num-workers": -1}),
            "",
        )
        .await;
    // A hung destination owner holds every copy that goes to it: the job is surely running.
    c.targets[2].signal("STOP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, text) = jobs
        .cluster_put("stop", json!({"ID": id, "Kind": "copy-listrange"}))
        .await;
    assert_eq!(code, 200, "{text}");
    let snaps: Vec<Snap> = jobs.snaps(&id).await.into_values().flatten().collect();
    let reached = snaps.iter().filter(|s| s.abort_err == "user abort").count();
    assert!(
        reached >= 2,
        "the stop reached the live targets at once: {snaps:?}"
    );
    c.targets[2].signal("CONT");
    // The hung target finds out (the stop, or being dropped from the map) and aborts its share
    // too; from then on nothing more is copied.
    c.wait_targets(3).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let snaps: Vec<Snap> = jobs.snaps(&id).await.into_values().flatten().collect();
        if snaps.len() == 3 && snaps.iter().all(|s| s.aborted) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not aborted everywhere: {snaps:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A bulk write that was already being committed when its target learnt of the abort ends
    // at its next object.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copied = names(&c.api, "dst").await.len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(names(&c.api, "dst").await.len(), copied);
    assert!(copied < 300, "the whole copy ran despite the abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_target_dies_reports_it_instead_of_succeeding() {
    let mut c = ProcCluster::start(3).await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("b").await;
    let objects: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("o-{i:03}"), data(i, 30_000)))
        .collect();
    c.api.put_many("b", objects).await;
    let smap = c.api.smap().await;
    let victim = smap
        .tmap
        .values()
        .find(|t| t.url() == c.targets[1].url)
        .unwrap()
        .daemon_id
        .clone();
    let id = jobs
        .start(
            reqwest::Method::POST,
            "b",
            "copy-bck",
            json!({"num-workers": -1}),
            "&bck_to=ais%2F%40%23%2Fdst%2F",
        )
        .await;
    c.targets[1].kill();
    let status = jobs.wait_status(&id, Duration::from_secs(60)).await;
    assert!(status.aborted, "{status:?}");
    assert!(
        status
            .err
            .contains(&format!("t[{victim}] left the cluster")),
        "{status:?}"
    );
    let snaps = jobs.snaps(&id).await;
    let lost = &snaps[&victim][0];
    assert!(
        lost.aborted && lost.abort_err.contains("left the cluster"),
        "{lost:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_resumes_on_a_target_that_was_down() {
    let mut c = ProcCluster::start(3).await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("old").await;
    let objects: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| (format!("d/{i:03}"), data(i, 500 + i as usize)))
        .collect();
    c.api.put_many("old", objects.clone()).await;
    let all: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    // Target 2 hangs and misses the rename; it is killed and only later restarted.
    c.targets[2].signal("STOP");
    let id = jobs
        .start(
            reqwest::Method::POST,
            "old",
            "move-bck",
            Value::Null,
            "&bck_to=ais%2F%40%23%2Fnew%2F",
        )
        .await;
    c.targets[2].kill();
    c.wait_targets(2).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let status = jobs.status(&id).await;
    assert_eq!(
        status.end_time, 0,
        "the rename waits for the missing target: {status:?}"
    );
    let r = c.api.get("old", "d/000").await;
    assert_eq!(r.status(), 404, "the old name is gone at once");
    c.restart_target(2);
    c.wait_targets(3).await;
    let status = jobs.wait_status(&id, Duration::from_secs(60)).await;
    assert!(!status.aborted && status.err.is_empty(), "{status:?}");
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(names(&c.api, "new").await, sorted);
    assert_eq!(fetch_all(&c.api, "new", &all).await, objects);
    for i in 0..3 {
        let old_dir = c.target_dir(i).join("mp/@ais/old");
        assert!(
            !old_dir.exists(),
            "target {i} still has {}",
            old_dir.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_runs_as_a_job() {
    let mut c = ProcCluster::start(2).await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("b").await;
    let objects: Vec<(String, Vec<u8>)> = (0..200)
        .map(|i| (format!("r-{i:03}"), data(i, 1000)))
        .collect();
    c.api.put_many("b", objects.clone()).await;
    c.add_target().await;
    c.wait_targets(3).await;
    let version = c.api.smap().await.version;
    let id = format!("g{version}");
    let snaps = jobs.wait(&id, Duration::from_secs(60)).await;
    assert!(
        snaps.iter().all(|s| s.kind == "rebalance" && !s.aborted),
        "{snaps:?}"
    );
    let moved = sum(&snaps, |s| s.stats.out_objs);
    assert!(
        moved > 0,
        "a third target takes over some objects: {snaps:?}"
    );
    assert_eq!(moved, sum(&snaps, |s| s.stats.in_objs));
    // Started by hand, it gets the next map version's id.
    let (code, started) = jobs
        .cluster_put("start", json!({"ID": "", "Kind": "rebalance"}))
        .await;
    assert_eq!(code, 200, "{started}");
    assert_eq!(started, format!("g{}", version + 1));
    let status = jobs.wait_status(&started, Duration::from_secs(60)).await;
    assert!(!status.aborted, "{status:?}");
    let all: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(fetch_all(&c.api, "b", &all).await, objects);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_job_requests_are_4xx_and_change_nothing() {
    let c = ClusterSandbox::builder().targets(2).start().await;
    let jobs = Jobs { api: c.api.clone() };
    c.api.create_bucket("b").await;
    c.api.create_bucket("taken").await;
    c.api.put("b", "a", "x").await;
    let post = reqwest::Method::POST;
    let delete = reqwest::Method::DELETE;
    let put = reqwest::Method::PUT;
    let cases: Vec<(reqwest::Method, &str, &str, Value, &str, u16, &str)> = vec![
        (
            delete.clone(),
            "b",
            "delete-listrange",
            json!({"template": "a{1..1000000000}"}),
            "",
            400,
            "more than the limit",
        ),
        (
            delete.clone(),
            "b",
            "delete-listrange",
            json!({"template": "a{a..z}"}),
            "",
            400,
            "invalid template",
        ),
        (
            delete.clone(),
            "b",
            "delete-listrange",
            json!({"template": "a{0..1"}),
            "",
            400,
            "unbalanced braces",
        ),
        (
            delete.clone(),
            "b",
            "delete-listrange",
            json!({"objnames": ["../x"]}),
            "",
            400,
            "",
        ),
        (
            delete.clone(),
            "nope",
            "delete-listrange",
            json!({"objnames": ["a"]}),
            "",
            404,
            "ais://nope",
        ),
        (
            delete.clone(),
            "b",
            "evict-listrange",
            json!({"objnames": ["a"]}),
            "",
            400,
            "evict-listrange: expecting remote bucket (have ais://b)",
        ),
        (
            post.clone(),
            "b",
            "copy-listrange",
            json!({"objnames": ["a"]}),
            "",
            400,
            "tobck",
        ),
        (
            post.clone(),
            "b",
            "copy-listrange",
            json!({"objnames": ["a"], "synchronize": true, "prepend": "p",
            "tobck": {"name": "x", "provider": "ais"}}),
            "",
            400,
            "synchronize",
        ),
        (post.clone(), "b", "copy-bck", json!({}), "", 400, "bck_to"),
        (
            post.clone(),
            "b",
            "copy-bck",
            json!({}),
            "&bck_to=ais%2F%40%23%2Fb%2F",
            400,
            "onto itself",
        ),
        (
            post.clone(),
            "b",
            "copy-bck",
            json!({}),
            "&bck_to=nonsense",
            400,
            "",
        ),
        (
            post.clone(),
            "b",
            "move-bck",
            Value::Null,
            "&bck_to=ais%2F%40%23%2Ftaken%2F",
            409,
            "already exists",
        ),
        (
            post.clone(),
            "b",
            "etl-bck",
            json!({}),
            "",
            400,
            "not supported",
        ),
        (
            put.clone(),
            "b",
            "archive",
            json!({"objnames": ["a"], "archname": "a.rar"}),
            "",
            400,
            "must end in",
        ),
        (
            put.clone(),
            "b",
            "archive",
            json!({"objnames": ["a"], "archname": "/abs.tar"}),
            "",
            400,
            "",
        ),
        (
            put.clone(),
            "b",
            "archive",
            json!({"objnames": ["a"], "archname": "a.tar", "mime": "tgz"}),
            "",
            400,
            "mime mismatch",
        ),
        (
            put.clone(),
            "b",
            "archive",
            json!({"objnames": ["a"], "archname": "a.tar",
            "tobck": {"name": "nope", "provider": "ais"}}),
            "",
            404,
            "does not exist",
        ),
        (
            put.clone(),
            "b",
            "nonsense",
            json!({}),
            "",
            400,
            "unsupported bucket action",
        ),
        (
            reqwest::Method::GET,
            "nope",
            "summary-bck",
            json!({}),
            "",
            404,
            "does not exist",
        ),
    ];
    for (method, bucket, act, value, query, want, text) in cases {
        let (status, body) = jobs.action(method, bucket, act, value.clone(), query).await;
        assert_eq!(status, want, "{act} {value}: {body}");
        assert!(body.contains(text), "{act} {value}: {body}");
    }
    for (what, body, want) in [
        ("qryxstats", json!("not an object"), 400),
        ("qryxstats", json!({"ID": "NoSuchJob42"}), 404),
        ("status", json!({}), 400),
        ("status", json!({"ID": "NoSuchJob42"}), 404),
        ("status_all", json!({"kind": "lru"}), 200),
        (
            "running_all",
            json!({"kind": "lru", "show_active": true}),
            200,
        ),
    ] {
        let (status, text) = jobs.cluster_get(what, body.clone()).await;
        assert_eq!(status, want, "{what} {body}: {text}");
    }
    let (status, text) = jobs
        .cluster_get("running_all", json!({"kind": "lru"}))
        .await;
    assert_eq!((status, text.as_str()), (200, "[]"));
    for (value, want, text) in [
        (json!({"Kind": "nope"}), 400, "invalid xaction (job) kind"),
        (json!({"Kind": ""}), 400, "invalid xaction (job) kind"),
        (json!({"Kind": "get-batch"}), 400, "cannot be started"),
        (json!({"Kind": "resilver"}), 400, "not supported by moss"),
        (
            json!({"Kind": "lru", "Bck": {"name": "nope", "provider": "ais"}}),
            404,
            "does not exist",
        ),
    ] {
        let (status, body) = jobs.cluster_put("start", value.clone()).await;
        assert_eq!(status, want, "start {value}: {body}");
        assert!(body.contains(text), "start {value}: {body}");
    }
    for (value, want) in [
        (json!({"ID": "", "Kind": ""}), 400),
        (json!({"ID": "bad id!"}), 400),
        (json!({"ID": "NoSuchJob42"}), 200),
    ] {
        let (status, body) = jobs.cluster_put("stop", value.clone()).await;
        assert_eq!(status, want, "stop {value}: {body}");
    }
    // Nothing was created or deleted by any of it.
    assert_eq!(names(&c.api, "b").await, ["a"]);
    let r = c
        .api
        .http
        .head(format!("{}/v1/buckets/x?provider=ais", c.api.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    c.shutdown().await;
}
