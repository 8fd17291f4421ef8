//! Mirror copies across mountpaths (`mirror.*`): targets with three mountpaths each; a disk lost
//! or made unusable under a running target, objects damaged on disk, a disk lost during a PUT
//! storm.
use std::path::PathBuf;

use moss_testkit::{ClusterSandbox, data, http, read_tar};
use serde_json::{Value, json};

use crate::redundancy::{
    assert_all_read, assert_clean, files_under, run_job, set_bprops, tar_of, wait_job,
};

const TARGETS: usize = 3;
const MOUNTPATHS: usize = 3;

async fn mirrored(copies: u32) -> ClusterSandbox {
    let sb = ClusterSandbox::builder()
        .targets(TARGETS)
        .mountpaths(MOUNTPATHS)
        .start()
        .await;
    sb.api.create_bucket("b").await;
    let (status, body) = set_bprops(
        sb.endpoint(),
        "b",
        json!({"mirror": {"enabled": true, "copies": copies}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // The bucket was empty: the job it started has nothing to do, but it runs.
    assert_clean(&wait_job(sb.endpoint(), body.as_str().unwrap()).await);
    sb
}

/// Mountpath `k` of target `i`.
fn mountpath(sb: &ClusterSandbox, i: usize, k: usize) -> PathBuf {
    let dir = sb.data_dir.join(format!("target{i}"));
    match k {
        0 => dir.join("mp"),
        k => dir.join(format!("mp{k}")),
    }
}

/// Every mountpath of the cluster.
fn all_mountpaths(sb: &ClusterSandbox) -> impl Iterator<Item = PathBuf> + '_ {
    (0..TARGETS)
        .flat_map(|i| (0..MOUNTPATHS).map(move |k| (i, k)))
        .map(move |(i, k)| mountpath(sb, i, k))
}

/// Object files (`%ob`) and copies (`%mi`) of bucket `b` on the whole cluster.
fn on_disk(sb: &ClusterSandbox) -> (usize, usize) {
    let count = |dir: &str| {
        all_mountpaths(sb)
            .map(|mp| files_under(&mp.join("@ais/b").join(dir)).len())
            .sum::<usize>()
    };
    (count("%ob"), count("%mi"))
}

/// Starts `make-n-copies` on `b` (with the bucket's own setting) and waits for it.
async fn run_make_n_copies(sb: &ClusterSandbox) -> Vec<moss_types::jobs::Snap> {
    let bck = json!({"name": "b", "provider": "ais"});
    run_job(sb.endpoint(), json!({"kind": "make-n-copies", "bck": bck})).await
}

/// AIStore's bucket action `make-n-copies` with `value`.
async fn make_n_copies(sb: &ClusterSandbox, value: u32) -> reqwest::Response {
    http()
        .post(format!("{}/v1/buckets/b", sb.endpoint()))
        .json(&json!({"action": "make-n-copies", "value": value}))
        .send()
        .await
        .unwrap()
}

async fn bucket_mirror(sb: &ClusterSandbox) -> Value {
    let r = http()
        .head(format!("{}/v1/buckets/b?provider=ais", sb.endpoint()))
        .send()
        .await
        .unwrap();
    let props: Value =
        serde_json::from_str(r.headers()["ais-bucket-props"].to_str().unwrap()).unwrap();
    props["mirror"].clone()
}

fn objects(n: u64) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| (format!("o-{i:03}"), data(i, 1000 + i as usize * 700)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_settings_are_validated_shown_and_applied_by_a_job() {
    let sb = ClusterSandbox::builder()
        .targets(TARGETS)
        .mountpaths(MOUNTPATHS)
        .start()
        .await;
    sb.api.create_bucket("b").await;
    for (value, message) in [
        (
            json!({"mirror": {"enabled": true, "copies": 1}}),
            "set-bprops: invalid mirror.copies: 1 (expected value in range [2, 32])",
        ),
        (
            json!({"mirror": {"enabled": true, "copies": 33}}),
            "set-bprops: invalid mirror.copies: 33 (expected value in range [2, 32])",
        ),
        (
            json!({"mirror": {"copies": "two"}}),
            "set-bprops: invalid \"mirror.copies\": expecting a whole number",
        ),
        (
            json!({"mirror": {"util_thresh": 20}}),
            "set-bprops: invalid \"mirror.util_thresh\": not supported by moss",
        ),
    ] {
        let (status, body) = set_bprops(sb.endpoint(), "b", value.clone()).await;
        assert_eq!(status, 400, "{value}");
        assert_eq!(body["message"], message, "{value}");
    }
    assert_eq!(
        bucket_mirror(&sb).await,
        json!({"enabled": false, "copies": 2, "burst_buffer": 512})
    );
    let objects = objects(30);
    sb.api.put_many("b", objects.clone()).await;
    assert_eq!(on_disk(&sb), (30, 0));

    // Turning mirroring on copies what is there, by a job whose id is the answer.
    let (status, id) = set_bprops(
        sb.endpoint(),
        "b",
        json!({"mirror": {"enabled": true, "copies": 2}}),
    )
    .await;
    assert_eq!(status, 200, "{id}");
    let snaps = wait_job(sb.endpoint(), id.as_str().unwrap()).await;
    assert_clean(&snaps);
    assert!(snaps.iter().all(|s| s.kind == "make-n-copies"), "{snaps:?}");
    let copied: u64 = snaps.iter().map(|s| s.stats.loc_objs).sum();
    assert_eq!(copied, 30, "{snaps:?}");
    assert_eq!(on_disk(&sb), (30, 30));
    assert_eq!(
        bucket_mirror(&sb).await,
        json!({"enabled": true, "copies": 2, "burst_buffer": 512})
    );

    // AIStore's bucket action sets the number and runs the job too; HEAD shows the copies.
    let r = make_n_copies(&sb, 3).await;
    assert_eq!(r.status(), 200);
    assert_clean(&wait_job(sb.endpoint(), &r.text().await.unwrap()).await);
    assert_eq!(on_disk(&sb), (30, 60));
    assert_eq!(bucket_mirror(&sb).await["copies"], 3);
    let r = http()
        .head(format!("{}&props=copies", sb.api.object_url("b", "o-007")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["ais-mirror-copies"], "3");
    let paths: Vec<&str> = r.headers()["ais-mirror-paths"]
        .to_str()
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(paths.len(), 3, "{paths:?}");
    assert!(
        paths
            .iter()
            .all(|p| paths.iter().filter(|q| q == &p).count() == 1),
        "{paths:?}"
    );
    // Written now: acknowledged with its copies already on disk.
    sb.api.put("b", "late", data(99, 5000)).await;
    assert_eq!(on_disk(&sb), (31, 62));
    let r = http()
        .delete(sb.api.object_url("b", "late"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(on_disk(&sb), (30, 60), "a delete removes the copies too");

    // Back to one copy: mirroring is off and the copies are gone.
    let r = make_n_copies(&sb, 1).await;
    assert_eq!(r.status(), 200);
    assert_clean(&wait_job(sb.endpoint(), &r.text().await.unwrap()).await);
    assert_eq!(on_disk(&sb), (30, 0));
    assert_eq!(bucket_mirror(&sb).await["enabled"], false);
    let r = make_n_copies(&sb, 0).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["message"],
        "make-n-copies: invalid number of copies 0 (expected value in range [1, 32])"
    );
    assert_all_read(&sb.api, &objects, "after the copies were removed").await;
    sb.shutdown().await;
}

/// The same mountpath of every target is made unusable under the running cluster (its bucket
/// directory replaced by a file, so every open there fails and nothing can be written there):
/// plain, range and archived reads and GetBatch in every mode get the right bytes from the
/// copies. When the disk is replaced by an empty one, `make-n-copies` restores what it held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_disk_costs_nothing_and_make_n_copies_restores_it() {
    let sb = mirrored(2).await;
    let mut objects = objects(60);
    let members: Vec<(String, Vec<u8>)> = (0..5)
        .map(|i| (format!("m/{i}.wav"), data(500 + i, 3000 + i as usize)))
        .collect();
    let refs: Vec<(&str, Vec<u8>)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    objects.push(("shard.tar".to_string(), tar_of(&refs)));
    sb.api.put_many("b", objects.clone()).await;
    assert_eq!(on_disk(&sb), (61, 61));
    let lost: usize = (0..TARGETS)
        .map(|i| files_under(&mountpath(&sb, i, 1).join("@ais/b/%ob")).len())
        .sum();
    assert!(lost > 0, "nothing on the disk to lose");
    for i in 0..TARGETS {
        let dir = mountpath(&sb, i, 1).join("@ais/b");
        std::fs::rename(&dir, mountpath(&sb, i, 1).join("lost")).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
    }
    assert_all_read(&sb.api, &objects, "with a disk unusable").await;
    let (name, whole) = &objects[17];
    let r = http()
        .get(sb.api.object_url("b", name))
        .header("range", "bytes=100-299")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &whole[100..300]);
    let r = http()
        .get(format!(
            "{}&archpath=m/3.wav",
            sb.api.object_url("b", "shard.tar")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &members[3].1[..]);
    let mut entries: Vec<Value> = objects.iter().map(|(n, _)| json!({"objname": n})).collect();
    entries.push(json!({"objname": "shard.tar", "archpath": "m/1.wav"}));
    let mut want: Vec<(String, Vec<u8>)> = objects.clone();
    want.push(("shard.tar/m/1.wav".to_string(), members[1].1.clone()));
    for (streaming, coer) in [(true, false), (true, true), (false, false), (false, true)] {
        let mode = format!("streaming={streaming} coer={coer}");
        let body = json!({"in": entries, "strm": streaming, "coer": coer, "onob": true});
        let r = sb.api.batch(Some("b"), &body).await;
        assert_eq!(r.status(), 200, "{mode}");
        let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
        let got = r.bytes().await.unwrap();
        let archive = if streaming {
            got.to_vec()
        } else {
            let (meta, archive) = moss_testkit::split_multipart(&content_type, &got);
            assert!(meta.out.iter().all(|o| o.err_msg.is_none()), "{mode}");
            archive
        };
        let files = read_tar(&archive);
        assert_eq!(files.len(), want.len(), "{mode}");
        for ((name, bytes), (want_name, want_bytes)) in files.iter().zip(&want) {
            assert_eq!(name, want_name, "{mode}");
            assert!(bytes == want_bytes, "{mode}: {name} has the wrong bytes");
        }
    }
    // The disk is swapped for an empty one: the job puts back every object it held, and
    // every object has its two copies again.
    for i in 0..TARGETS {
        std::fs::remove_file(mountpath(&sb, i, 1).join("@ais/b")).unwrap();
    }
    let snaps = run_make_n_copies(&sb).await;
    assert_clean(&snaps);
    assert_eq!(on_disk(&sb), (61, 61));
    let back: usize = (0..TARGETS)
        .map(|i| files_under(&mountpath(&sb, i, 1).join("@ais/b/%ob")).len())
        .sum();
    assert_eq!(back, lost, "the objects the lost disk held are back on it");
    assert_all_read(&sb.api, &objects, "after make-n-copies").await;
    sb.shutdown().await;
}

/// Bytes damaged on disk (same length, so only the checksum can tell) are never served: GET
/// and GetBatch (small objects and one bigger than a chunk) get the copy's bytes, and the object
/// is repaired in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_is_served_right_and_repaired_from_its_copy() {
    let sb = mirrored(2).await;
    let mut objects = objects(12);
    // Bigger than what is read whole before sending: checked before its first byte goes out.
    objects[7].1 = data(7, 700_000);
    sb.api.put_many("b", objects.clone()).await;
    let main_file = |name: &str| {
        all_mountpaths(&sb)
            .map(|mp| mp.join("@ais/b/%ob").join(name))
            .find(|p| p.exists())
            .unwrap()
    };
    let damage = |name: &str, bytes: &[u8]| {
        let mut damaged = bytes.to_vec();
        damaged[bytes.len() / 3] ^= 0x5a;
        std::fs::write(main_file(name), &damaged).unwrap();
    };
    let (name, bytes) = &objects[4];
    damage(name, bytes);
    let r = sb.api.get("b", name).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.unwrap().as_ref() == &bytes[..],
        "served damaged"
    );
    assert!(
        std::fs::read(main_file(name)).unwrap() == *bytes,
        "not repaired"
    );

    for (name, bytes) in &objects[6..9] {
        damage(name, bytes);
    }
    let entries: Vec<Value> = objects[5..10]
        .iter()
        .map(|(n, _)| json!({"objname": n}))
        .collect();
    let r = sb
        .api
        .batch(
            Some("b"),
            &json!({"in": entries, "strm": true, "onob": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let files = read_tar(&r.bytes().await.unwrap());
    assert_eq!(files.len(), 5);
    for ((name, got), (want_name, want)) in files.iter().zip(&objects[5..10]) {
        assert_eq!(name, want_name);
        assert!(got == want, "{name} served damaged in a batch");
    }
    for (name, bytes) in &objects[6..9] {
        assert!(
            std::fs::read(main_file(name)).unwrap() == *bytes,
            "{name} not repaired"
        );
    }
    sb.shutdown().await;
}

/// A disk of one target vanishes (swapped for an empty one) while 16 writers store objects:
/// every acknowledged write is read back with its bytes, and the next rebalance pass brings
/// every object back to two copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_put_survives_a_disk_lost_during_a_storm() {
    let sb = mirrored(2).await;
    let total = 400u64;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writers: Vec<_> = (0..16)
        .map(|_| {
            let (api, acked, next) = (sb.api.clone(), acked.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= total {
                        return;
                    }
                    let (name, bytes) = (format!("s-{i:04}"), data(i, 2000 + i as usize * 37));
                    let r = api
                        .http
                        .put(api.object_url("b", &name))
                        .body(bytes.clone())
                        .send()
                        .await;
                    if r.is_ok_and(|r| r.status() == 200) {
                        acked.lock().unwrap().push((name, bytes));
                    }
                }
            })
        })
        .collect();
    while next.load(std::sync::atomic::Ordering::Relaxed) < total / 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let dir = mountpath(&sb, 0, 0).join("@ais/b");
    std::fs::rename(&dir, mountpath(&sb, 0, 0).join("lost")).unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() as u64 > total * 9 / 10,
        "only {} of {total} writes were acknowledged",
        acked.len()
    );
    assert_all_read(&sb.api, &acked, "after a disk was lost during the storm").await;
    assert_clean(&run_job(sb.endpoint(), json!({"kind": "rebalance"})).await);
    // (A write that failed may still have stored its object: at least the acknowledged ones.)
    let (stored, copies) = on_disk(&sb);
    assert_eq!(stored, copies, "every object has its copy again");
    assert!(
        stored >= acked.len(),
        "{stored} objects, {} acknowledged",
        acked.len()
    );
    assert_all_read(&sb.api, &acked, "after make-n-copies").await;
    sb.shutdown().await;
}
