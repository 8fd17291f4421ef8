//! Redundancy across targets (`ec.*`): replicas and Reed-Solomon slices on real 5-target clusters,
//! targets SIGKILLed, objects corrupted on disk.
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use moss_testkit::{Api, data, http, read_tar};
use moss_types::jobs::Snap;
use serde_json::{Value, json};

use crate::cluster::ProcCluster;
use crate::faults::open_batch;

/// Objects under this size are replicated, larger ones sliced (2 data + 2 parity).
const LIMIT: usize = 64 << 10;

/// `set-bprops`: the status and the body (a JSON error, or the id of a job it started).
pub(crate) async fn set_bprops(endpoint: &str, bucket: &str, value: Value) -> (u16, Value) {
    let r = http()
        .patch(format!("{endpoint}/v1/buckets/{bucket}"))
        .json(&json!({"action": "set-bprops", "value": value}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Every target's snapshot of job `id`, once all of them have ended (an archive job, which idles
/// between work items, once it is idle).
pub(crate) async fn wait_job(endpoint: &str, id: &str) -> Vec<Snap> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let r = http()
            .get(format!("{endpoint}/v1/cluster?what=qryxstats"))
            .json(&json!({"ID": id, "Kind": ""}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let snaps: BTreeMap<String, Vec<Snap>> = r.json().await.unwrap();
        let snaps: Vec<Snap> = snaps.into_values().flatten().collect();
        if !snaps.is_empty()
            && snaps
                .iter()
                .all(|s| s.finished() || s.aborted || (s.kind == "archive" && s.is_idle))
        {
            return snaps;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {id} still running: {snaps:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts a job by hand (`value`: the `start` action's value) and returns its snapshots once
/// it has ended.
pub(crate) async fn run_job(endpoint: &str, value: Value) -> Vec<Snap> {
    let r = http()
        .put(format!("{endpoint}/v1/cluster"))
        .json(&json!({"action": "start", "value": value}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    wait_job(endpoint, &r.text().await.unwrap()).await
}

/// Starts `ec-encode` on bucket `b` by hand and returns its snapshots once it has ended.
async fn run_ec_encode(c: &ProcCluster) -> Vec<Snap> {
    let bck = json!({"name": "b", "provider": "ais"});
    run_job(&c.api.endpoint, json!({"kind": "ec-encode", "bck": bck})).await
}

/// No target's share of the job aborted or recorded an error.
pub(crate) fn assert_clean(snaps: &[Snap]) {
    assert!(
        snaps.iter().all(|s| !s.aborted && s.err.is_empty()),
        "{snaps:?}"
    );
}

/// Targets holding a piece of `name`.
fn piece_holders(c: &ProcCluster, name: &str) -> Vec<usize> {
    (0..c.targets.len())
        .filter(|&i| c.target_dir(i).join("mp/@ais/b/%ec").join(name).exists())
        .collect()
}

async fn ec_cluster(targets: usize) -> ProcCluster {
    let c = ProcCluster::start(targets).await;
    c.api.create_bucket("b").await;
    let ec = json!({"ec": {"enabled": true, "data_slices": 2, "parity_slices": 2, "objsize_limit": LIMIT}});
    let (status, body) = set_bprops(&c.api.endpoint, "b", ec).await;
    assert_eq!(status, 200, "{body}");
    c
}

pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.flatten()
        .flat_map(|e| {
            if e.path().is_dir() {
                files_under(&e.path())
            } else {
                vec![e.path()]
            }
        })
        .collect()
}

/// The stored file of an object on target `i`, if it has one.
fn object_file(c: &ProcCluster, i: usize, name: &str) -> Option<PathBuf> {
    let path = c.target_dir(i).join("mp/@ais/b/%ob").join(name);
    path.exists().then_some(path)
}

fn pieces_on(c: &ProcCluster, i: usize) -> usize {
    files_under(&c.target_dir(i).join("mp/@ais/b/%ec")).len()
}

/// Index of the target holding the most objects of `names`.
fn busiest(c: &ProcCluster, names: &[String]) -> usize {
    (0..c.targets.len())
        .filter(|&i| c.targets[i].child.is_some())
        .max_by_key(|&i| {
            names
                .iter()
                .filter(|n| object_file(c, i, n).is_some())
                .count()
        })
        .unwrap()
}

pub(crate) fn tar_of(members: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, bytes) in members {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, name, &bytes[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Every object of bucket `b` reads back with its bytes.
pub(crate) async fn assert_all_read(api: &Api, objects: &[(String, Vec<u8>)], when: &str) {
    for (name, bytes) in objects {
        let r = api.get("b", name).await;
        assert_eq!(r.status(), 200, "{name} {when}");
        assert!(
            r.bytes().await.unwrap().as_ref() == &bytes[..],
            "{name} has the wrong bytes {when}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ec_settings_are_validated_and_shown() {
    let c = ProcCluster::start(5).await;
    c.api.create_bucket("b").await;
    let cases = [
        (
            json!({"ec": {"data_slices": 0}}),
            "set-bprops: invalid \"ec.data_slices\": at least 1",
        ),
        (
            json!({"ec": {"parity_slices": 33}}),
            "set-bprops: invalid \"ec.parity_slices\": at most 32",
        ),
        (
            json!({"ec": {"enabled": true, "data_slices": 4, "parity_slices": 2}}),
            "set-bprops: EC with 4 data and 2 parity slices needs at least 7 targets, the cluster has 5",
        ),
        (
            json!({"ec": {"objsize_limit": "big"}}),
            "set-bprops: invalid \"ec.objsize_limit\": expecting a whole number",
        ),
    ];
    for (value, message) in cases {
        let (status, body) = set_bprops(&c.api.endpoint, "b", value.clone()).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (400, Some(message)),
            "{value}"
        );
    }
    let (status, _) = set_bprops(&c.api.endpoint, "b", json!({"ec": {"enabled": true}})).await;
    assert_eq!(status, 200);
    let r = http()
        .head(format!("{}/v1/buckets/b", c.api.endpoint))
        .send()
        .await
        .unwrap();
    let props: Value =
        serde_json::from_str(r.headers()["ais-bucket-props"].to_str().unwrap()).unwrap();
    assert_eq!(
        props["ec"],
        json!({"enabled": true, "data_slices": 2, "parity_slices": 2, "objsize_limit": 262144})
    );
    let (status, body) =
        set_bprops(&c.api.endpoint, "b", json!({"ec": {"parity_slices": 1}})).await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "set-bprops: EC is enabled: data_slices, parity_slices and objsize_limit cannot change (disable EC first)"
    );
    // HEAD `?props=ec` (the SDK's `ObjectAttributes.ec`): how each object is protected.
    c.api.put("b", "small", data(1, 1000)).await;
    c.api.put("b", "large", data(2, 300_000)).await;
    for (name, replicated) in [("small", "true"), ("large", "false")] {
        let r = http()
            .head(format!("{}&props=ec,copies", c.api.object_url("b", name)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        let h = r.headers();
        assert_eq!(h["ais-ec-data"], "2", "{name}");
        assert_eq!(h["ais-ec-parity"], "2", "{name}");
        assert_eq!(h["ais-ec-replicated"], replicated, "{name}");
        assert!(
            h["ais-ec-generation"]
                .to_str()
                .unwrap()
                .parse::<u128>()
                .unwrap()
                > 0
        );
        assert_eq!(h["ais-mirror-copies"], "1", "{name}: no mirror");
        let r = http()
            .head(format!("{}&props=checksum", c.api.object_url("b", name)))
            .send()
            .await
            .unwrap();
        assert!(r.headers().get("ais-ec-data").is_none(), "only when asked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_and_sliced_objects_survive_two_killed_targets() {
    let mut c = ec_cluster(5).await;
    let mut objects: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("small-{i:02}"), data(i, 1 + i as usize * 1500)))
        .chain((0..16).map(|i| {
            (
                format!("large-{i:02}"),
                data(100 + i, LIMIT + i as usize * 97_003),
            )
        }))
        .collect();
    let members: Vec<(&str, Vec<u8>)> = (0..8)
        .map(|k| {
            (
                ["a.wav", "b.txt", "c.json", "d.bin", "e", "f", "g", "h"][k],
                data(500 + k as u64, 30_000 + k),
            )
        })
        .collect();
    objects.push(("shard.tar".to_string(), tar_of(&members)));
    c.api.put_many("b", objects.clone()).await;

    // Each small object has 2 replicas, each large one 4 slices, on targets other than its owner.
    let small = 40;
    let pieces: usize = (0..5).map(|i| pieces_on(&c, i)).sum();
    assert_eq!(pieces, small * 2 + (objects.len() - small) * 4);
    for (name, _) in &objects {
        let owners: Vec<usize> = (0..5)
            .filter(|&i| object_file(&c, i, name).is_some())
            .collect();
        assert_eq!(owners.len(), 1, "{name} is stored whole once");
    }

    let names: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    let first = busiest(&c, &names);
    c.targets[first].kill();
    c.wait_targets(4).await;
    assert_all_read(&c.api, &objects, "with one target down").await;

    // Range reads and archive members of a rebuilt object.
    let (name, whole) = &objects[45];
    let r = http()
        .get(c.api.object_url("b", name))
        .header("range", "bytes=70000-70099")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &whole[70000..70100]);
    let r = http()
        .get(format!(
            "{}&archpath=c.json",
            c.api.object_url("b", "shard.tar")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &members[2].1[..]);

    let second = busiest(&c, &names);
    c.targets[second].kill();
    c.wait_targets(3).await;
    assert_all_read(&c.api, &objects, "with two targets down").await;

    // A batch over everything, after both losses: complete, in order.
    let entries: Vec<Value> = names.iter().map(|n| json!({"objname": n})).collect();
    let r = c
        .api
        .batch(Some("b"), &json!({"in": entries, "strm": true}))
        .await;
    let got = read_tar(&r.bytes().await.unwrap());
    assert_eq!(got.len(), objects.len());
    for ((name, bytes), (got_name, got_bytes)) in objects.iter().zip(&got) {
        assert!(
            got_name.ends_with(name.as_str()),
            "{got_name} in place of {name}"
        );
        assert!(
            got_bytes == bytes,
            "{name} has the wrong bytes in the batch"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_object_is_served_right_and_repaired_on_disk() {
    let c = ec_cluster(5).await;
    let objects = vec![
        ("rep".to_string(), data(1, 20_000)),
        ("sliced".to_string(), data(2, 300_000)),
    ];
    c.api.put_many("b", objects.clone()).await;
    for (name, bytes) in &objects {
        let file = (0..5).find_map(|i| object_file(&c, i, name)).unwrap();
        // Same length, one flipped byte in the middle: only the checksum can tell.
        let mut damaged = bytes.clone();
        damaged[bytes.len() / 2] ^= 0xff;
        std::fs::write(&file, &damaged).unwrap();
        let r = c.api.get("b", name).await;
        assert_eq!(r.status(), 200, "{name}");
        assert!(
            r.bytes().await.unwrap().as_ref() == &bytes[..],
            "{name} served damaged"
        );
        assert!(
            std::fs::read(&file).unwrap() == *bytes,
            "{name} not repaired on disk"
        );
    }
}

/// A target is SIGKILLed in the middle of a 10,000-entry batch over replicated and sliced
/// objects: in every mode the archive is complete, in order, with the right bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_killed_mid_batch_costs_nothing_in_any_mode() {
    let mut c = ec_cluster(5).await;
    c.api.set_config("get_batch.max_wait", "3s").await;
    let objects: Vec<(String, Vec<u8>)> = (0..180)
        .map(|i| (format!("s-{i:03}"), data(i, 512 + i as usize * 20)))
        .chain((0..20).map(|i| {
            (
                format!("l-{i:02}"),
                data(1000 + i, LIMIT + 1 + i as usize * 300),
            )
        }))
        .collect();
    c.api.put_many("b", objects.clone()).await;
    let total = 10_000;
    let pick = |k: usize| &objects[(k * 7) % objects.len()];
    let entries: Vec<Value> = (0..total).map(|k| json!({"objname": pick(k).0})).collect();
    for (streaming, coer) in [(true, false), (true, true), (false, false), (false, true)] {
        let mode = format!("streaming={streaming} coer={coer}");
        let body = json!({"in": entries, "strm": streaming, "coer": coer, "onob": true});
        let (dt, mut r) = open_batch(&c, &body).await;
        let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
        let victim = c.targets.iter().position(|t| t.url != dt).unwrap();
        let mut got = Vec::new();
        let mut killed = false;
        loop {
            match r.chunk().await {
                Ok(Some(chunk)) => {
                    got.extend_from_slice(&chunk);
                    if !killed && got.len() >= 4 << 20 {
                        c.targets[victim].kill();
                        killed = true;
                    }
                }
                Ok(None) => break,
                Err(e) => panic!("{mode}: the response broke after {} bytes: {e}", got.len()),
            }
        }
        assert!(
            killed,
            "{mode}: the batch ended before the kill ({} bytes)",
            got.len()
        );
        let archive = if streaming {
            got
        } else {
            let (meta, archive) = moss_testkit::split_multipart(&content_type, &got);
            assert_eq!(meta.out.len(), total, "{mode}");
            for (k, out) in meta.out.iter().enumerate() {
                assert_eq!(out.err_msg, None, "{mode}: entry {k} reported failed");
                assert_eq!(
                    out.size as usize,
                    pick(k).1.len(),
                    "{mode}: size of entry {k}"
                );
            }
            archive
        };
        let files = read_tar(&archive);
        assert_eq!(files.len(), total, "{mode}: entries in the archive");
        for (k, (name, bytes)) in files.iter().enumerate() {
            let (want_name, want) = pick(k);
            assert_eq!(name, want_name, "{mode}: entry {k}");
            assert!(
                bytes == want,
                "{mode}: entry {k} ({name}) has the wrong bytes"
            );
        }
        c.restart_target(victim);
        c.wait_targets(5).await;
    }
}

/// Before the proxy drops a dead target from the map, reads of its objects already go to the
/// next target in HRW order once it has missed two keepalives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_skip_a_silent_owner_that_is_still_in_the_map() {
    let mut c = ec_cluster(5).await;
    c.api.set_config("keepalive.timeout", "60s").await;
    let objects: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| (format!("o-{i:02}"), data(i, 3000 + i as usize * 9000)))
        .collect();
    c.api.put_many("b", objects.clone()).await;
    let names: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    let victim = busiest(&c, &names);
    let owned: Vec<&(String, Vec<u8>)> = objects
        .iter()
        .filter(|(n, _)| object_file(&c, victim, n).is_some())
        .collect();
    assert!(!owned.is_empty());
    c.targets[victim].kill();
    tokio::time::sleep(Duration::from_millis(800)).await;
    for (name, bytes) in owned {
        let r = c.api.get("b", name).await;
        assert_eq!(r.status(), 200, "{name}");
        assert!(r.bytes().await.unwrap().as_ref() == &bytes[..], "{name}");
        let r = http()
            .head(c.api.object_url("b", name))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "HEAD {name}");
    }
    // Batches are not sent to it as their designated target either, and read around it.
    let entries: Vec<Value> = names.iter().map(|n| json!({"objname": n})).collect();
    for round in 0..10 {
        let r = c
            .api
            .batch(Some("b"), &json!({"in": entries, "strm": true}))
            .await;
        assert_eq!(r.status(), 200, "batch {round}");
        let got = read_tar(&r.bytes().await.unwrap());
        assert_eq!(got.len(), objects.len(), "batch {round}");
        for ((name, bytes), (got_name, got_bytes)) in objects.iter().zip(&got) {
            assert!(
                got_name.ends_with(name.as_str()) && got_bytes == bytes,
                "batch {round}: {name}"
            );
        }
    }
    assert_eq!(
        c.api.smap().await.tmap.len(),
        5,
        "the dead target is still in the map"
    );
}

fn mixed_objects(n_small: u64, n_large: u64) -> Vec<(String, Vec<u8>)> {
    (0..n_small)
        .map(|i| (format!("small-{i:02}"), data(i, 100 + i as usize * 1300)))
        .chain((0..n_large).map(|i| {
            (
                format!("large-{i:02}"),
                data(100 + i, LIMIT + i as usize * 50_021),
            )
        }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enabling_ec_on_a_bucket_with_data_protects_it_by_a_job() {
    let mut c = ProcCluster::start(5).await;
    c.api.create_bucket("b").await;
    let objects = mixed_objects(30, 10);
    c.api.put_many("b", objects.clone()).await;
    assert_eq!((0..5).map(|i| pieces_on(&c, i)).sum::<usize>(), 0);
    let ec = json!({"ec": {"enabled": true, "objsize_limit": LIMIT}});
    let (status, id) = set_bprops(&c.api.endpoint, "b", ec).await;
    assert_eq!(status, 200, "{id}");
    let id = id
        .as_str()
        .expect("set-bprops answers the job id")
        .to_string();
    let snaps = wait_job(&c.api.endpoint, &id).await;
    assert!(
        snaps
            .iter()
            .all(|s| s.kind == "ec-encode" && !s.aborted && s.err.is_empty()),
        "{snaps:?}"
    );
    let encoded: u64 = snaps.iter().map(|s| s.stats.loc_objs).sum();
    assert_eq!(
        encoded, 40,
        "every object encoded once, by its owner: {snaps:?}"
    );
    let pieces: usize = (0..5).map(|i| pieces_on(&c, i)).sum();
    assert_eq!(pieces, 30 * 2 + 10 * 4);
    // Run again, it finds nothing to do.
    let snaps = run_ec_encode(&c).await;
    assert_eq!(
        snaps.iter().map(|s| s.stats.loc_objs).sum::<u64>(),
        0,
        "{snaps:?}"
    );

    let names: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    let victim = busiest(&c, &names);
    c.targets[victim].kill();
    c.wait_targets(4).await;
    assert_all_read(&c.api, &objects, "after the owner died").await;
}

/// A target lost for good: the rebalance that follows rebuilds its objects and the pieces it
/// held on the others, so two more targets can then fail without losing anything — even the
/// two that held the surviving copies of an object the first one owned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_target_is_repaired_so_two_more_can_fail() {
    let mut c = ec_cluster(6).await;
    let objects = mixed_objects(40, 12);
    c.api.put_many("b", objects.clone()).await;
    let names: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    let first = busiest(&c, &names);
    let (name, _) = objects
        .iter()
        .find(|(n, b)| b.len() < LIMIT && object_file(&c, first, n).is_some())
        .expect("the busiest target owns a replicated object");
    let holders = piece_holders(&c, name);
    assert_eq!(holders.len(), 2, "{name} has two replicas");
    c.targets[first].kill();
    c.wait_targets(5).await;
    let version = c.api.smap().await.version;
    let snaps = wait_job(&c.api.endpoint, &format!("g{version}")).await;
    assert_clean(&snaps);
    let repaired: u64 = snaps.iter().map(|s| s.stats.loc_objs).sum();
    assert!(repaired > 0, "the rebalance repaired nothing: {snaps:?}");
    for &h in &holders {
        c.targets[h].kill();
    }
    c.wait_targets(3).await;
    assert_all_read(
        &c.api,
        &objects,
        "after three targets were lost one, then two at a time",
    )
    .await;
}

/// Writers keep PUTting replicated and sliced objects while a target is SIGKILLed and stays
/// dead: every acknowledged object reads back whole from the four that are left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_put_survives_a_target_killed_during_a_storm() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let mut c = ec_cluster(5).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..6u64 {
        let (api, acked, stop) = (c.api.clone(), acked.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("w{w}-{k}");
                let seed = w * 1_000_000 + k;
                let size = 1 + ((w * 7919 + k * 104_729) % (200 << 10)) as usize;
                let sent = api
                    .http
                    .put(api.object_url("b", &name))
                    .body(data(seed, size))
                    .send()
                    .await;
                if sent.is_ok_and(|r| r.status() == 200) {
                    acked.lock().unwrap().push((name, seed, size));
                }
                k += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.targets[2].kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    c.wait_targets(4).await;
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 50,
        "the storm acknowledged only {} writes",
        acked.len()
    );
    for (name, seed, size) in &acked {
        let r = c.api.get("b", name).await;
        assert_eq!(r.status(), 200, "acknowledged {name} is gone");
        assert!(
            r.bytes().await.unwrap().as_ref() == &data(*seed, *size)[..],
            "acknowledged {name} is torn"
        );
    }
}

/// Objects assembled on a target — a completed multipart upload, a shard built by an archive
/// job — get their pieces before they are acknowledged, like a PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_uploads_and_archive_shards_are_protected_too() {
    use crate::object_api::{complete, create_upload, put_part};
    let mut c = ec_cluster(5).await;
    let (a, b) = (data(1, 200_000), data(2, 100_000));
    let id = create_upload(&c, "mpu").await;
    assert_eq!(put_part(&c, "mpu", &id, "1", a.clone()).await.0, 200);
    assert_eq!(put_part(&c, "mpu", &id, "2", b.clone()).await.0, 200);
    let (status, text) = complete(&c, "mpu", &id, &[1, 2]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        piece_holders(&c, "mpu").len(),
        4,
        "2+2 slices of the completed upload"
    );

    c.api
        .put_many(
            "b",
            vec![("m1".into(), data(3, 9000)), ("m2".into(), data(4, 7000))],
        )
        .await;
    let r = http()
        .put(format!("{}/v1/buckets/b?provider=ais", c.api.endpoint))
        .json(&json!({"action": "archive", "name": "", "value": {"objnames": ["m1", "m2"], "archname": "s.tar"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let snaps = wait_job(&c.api.endpoint, &r.text().await.unwrap()).await;
    assert_clean(&snaps);
    assert_eq!(
        piece_holders(&c, "s.tar").len(),
        2,
        "2 replicas of the small shard"
    );

    let whole: Vec<u8> = [a, b].concat();
    let owners: Vec<usize> = (0..5)
        .filter(|&i| object_file(&c, i, "mpu").is_some() || object_file(&c, i, "s.tar").is_some())
        .collect();
    for i in owners {
        c.targets[i].kill();
    }
    c.wait_targets(5 - (0..5).filter(|&i| c.targets[i].child.is_none()).count())
        .await;
    assert!(c.api.get_bytes("b", "mpu").await.as_ref() == &whole[..]);
    let r = http()
        .get(format!("{}&archpath=m2", c.api.object_url("b", "s.tar")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data(4, 7000)[..]);
}

/// A target's disk is lost under it (its bucket directory vanishes while it runs, as when a
/// failed disk is swapped for an empty one): reads rebuild every object it owned, back onto
/// that disk, and an `ec-encode` pass restores the pieces it held for the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_disk_is_rebuilt_by_reads_and_ec_encode() {
    let c = ec_cluster(5).await;
    let objects = mixed_objects(24, 8);
    c.api.put_many("b", objects.clone()).await;
    let names: Vec<String> = objects.iter().map(|(n, _)| n.clone()).collect();
    let victim = busiest(&c, &names);
    let owned: Vec<String> = names
        .iter()
        .filter(|n| object_file(&c, victim, n).is_some())
        .cloned()
        .collect();
    let pieces_before: usize = (0..5).map(|i| pieces_on(&c, i)).sum();
    let held = pieces_on(&c, victim);
    assert!(held > 0 && !owned.is_empty());
    std::fs::rename(
        c.target_dir(victim).join("mp/@ais/b"),
        c.dir.path().join("lost-disk"),
    )
    .unwrap();
    assert_all_read(&c.api, &objects, "after a disk was lost").await;
    for name in &owned {
        assert!(
            object_file(&c, victim, name).is_some(),
            "{name} not rebuilt in place"
        );
    }
    // (Its pieces are not checked for absence here: on a loaded machine a missed keepalive
    // changes the map, and the rebalance that follows may already have restored some.)
    assert_clean(&run_ec_encode(&c).await);
    assert_eq!(pieces_on(&c, victim), held, "the pieces it held are back");
    assert_eq!(
        (0..5).map(|i| pieces_on(&c, i)).sum::<usize>(),
        pieces_before
    );
}

/// The owner is down while its object is overwritten (the write goes to the next target in HRW
/// order, with its own replicas); when it comes back with its old copy, the rebalance that
/// follows replaces that stale copy with the newer version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_owner_gets_the_version_written_while_it_was_away() {
    let mut c = ec_cluster(5).await;
    let (old, new) = (data(1, 20_000), data(2, 30_000));
    c.api.put("b", "x", old.clone()).await;
    let owner = (0..5).find(|&i| object_file(&c, i, "x").is_some()).unwrap();
    c.targets[owner].kill();
    c.wait_targets(4).await;
    // Write times are kept in seconds: the overwrite must be a later one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.api.put("b", "x", new.clone()).await;
    assert!(c.api.get_bytes("b", "x").await.as_ref() == &new[..]);
    c.restart_target(owner);
    c.wait_targets(5).await;
    let version = c.api.smap().await.version;
    let snaps = wait_job(&c.api.endpoint, &format!("g{version}")).await;
    assert!(snaps.iter().all(|s| !s.aborted), "{snaps:?}");
    assert!(
        c.api.get_bytes("b", "x").await.as_ref() == &new[..],
        "the returning owner serves its stale copy"
    );
    let stored =
        std::fs::read(object_file(&c, owner, "x").expect("x is back on its owner")).unwrap();
    assert!(stored == new, "the owner's copy on disk is the new version");
}

/// A DELETE that lands while the PUT before it is still storing its pieces leaves no piece
/// behind: a leftover piece would bring the deleted object back the next time its owner missed
/// it. Each round sends the DELETE a little later into the PUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_racing_with_a_protected_put_leaves_no_piece() {
    let c = ec_cluster(5).await;
    for round in 0..24u64 {
        let name = format!("race-{round}");
        let put = {
            let (api, name) = (c.api.clone(), name.clone());
            tokio::spawn(async move {
                let url = api.object_url("b", &name);
                api.http.put(url).body(data(round, 600_000)).send().await
            })
        };
        tokio::time::sleep(Duration::from_millis(round)).await;
        let r = http()
            .delete(c.api.object_url("b", &name))
            .send()
            .await
            .unwrap();
        assert!(
            r.status() == 200 || r.status() == 404,
            "{name}: {}",
            r.status()
        );
        let put = put.await.unwrap().unwrap();
        assert_eq!(put.status(), 200, "{name}");
        // Whichever took effect last, the object and its pieces are there together or not at all.
        let stored = (0..5).any(|i| object_file(&c, i, &name).is_some());
        if !stored {
            assert_eq!(
                piece_holders(&c, &name),
                Vec::<usize>::new(),
                "{name}: pieces outlived it"
            );
        } else {
            assert_eq!(piece_holders(&c, &name).len(), 4, "{name}");
        }
    }
}
