//! The object API around PUT and GET on separate processes: multipart uploads that outlive a
//! SIGKILL of their target, AIStore's part-number and id errors, and appends.
use moss_testkit::data;
use serde_json::json;

use crate::cluster::ProcCluster;

pub(crate) async fn create_upload(c: &ProcCluster, obj: &str) -> String {
    let r = c
        .api
        .http
        .post(c.api.object_url("b", obj))
        .json(&json!({"action": "mpt-upload", "name": "", "value": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

pub(crate) async fn put_part(
    c: &ProcCluster,
    obj: &str,
    id: &str,
    n: &str,
    body: Vec<u8>,
) -> (u16, String) {
    let url = format!(
        "{}&uploadId={id}&partNumber={n}",
        c.api.object_url("b", obj)
    );
    let r = c.api.http.put(url).body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

pub(crate) async fn complete(c: &ProcCluster, obj: &str, id: &str, parts: &[u32]) -> (u16, String) {
    let list: Vec<_> = parts
        .iter()
        .map(|n| json!({"part-number": n, "etag": ""}))
        .collect();
    let url = format!("{}&uploadId={id}", c.api.object_url("b", obj));
    let r = c
        .api
        .http
        .post(url)
        .json(&json!({"action": "mpt-complete", "name": "", "value": list}))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_multipart_upload_resumes_after_its_target_is_killed() {
    let mut c = ProcCluster::start(1).await;
    c.api.create_bucket("b").await;
    let parts: Vec<Vec<u8>> = (0..3u64)
        .map(|i| data(40 + i, (3 << 20) + i as usize))
        .collect();
    let id = create_upload(&c, "shard.tar").await;
    assert!(id.len() >= 8, "upload id {id:?}");
    for (n, part) in parts.iter().take(2).enumerate() {
        let (status, text) =
            put_part(&c, "shard.tar", &id, &(n + 1).to_string(), part.clone()).await;
        assert_eq!(status, 200, "{text}");
    }
    c.targets[0].kill();
    c.restart_target(0);
    c.wait_targets(1).await;
    // Not visible before complete, and the acknowledged parts are still there.
    assert_eq!(c.api.get("b", "shard.tar").await.status(), 404);
    let (status, text) = put_part(&c, "shard.tar", &id, "3", parts[2].clone()).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = complete(&c, "shard.tar", &id, &[1, 2, 3]).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(c.api.get_bytes("b", "shard.tar").await, parts.concat());
    let head = c
        .api
        .http
        .head(format!(
            "{}&props=chunked",
            c.api.object_url("b", "shard.tar")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(head.headers()["ais-chunks-count"], "3");
    assert_eq!(
        head.headers()["ais-chunks-max-chunk-size"],
        ((3 << 20) + 2).to_string().as_str()
    );
    assert_eq!(
        head.headers()["content-length"],
        parts
            .iter()
            .map(Vec::len)
            .sum::<usize>()
            .to_string()
            .as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn part_numbers_and_upload_ids_are_checked_as_aistore_does() {
    let c = ProcCluster::start(2).await;
    c.api.create_bucket("b").await;
    let id = create_upload(&c, "o").await;
    for (n, want) in [
        ("0", "invalid chunk number"),
        ("10000", "invalid chunk number"),
        ("x", "invalid part number"),
    ] {
        let (status, text) = put_part(&c, "o", &id, n, b"data".to_vec()).await;
        assert_eq!(status, 400, "part {n}: {text}");
        assert!(text.contains(want), "part {n}: {text}");
    }
    let (status, text) = put_part(&c, "o", "nosuchupload1", "1", b"data".to_vec()).await;
    assert_eq!(status, 404, "{text}");
    assert!(text.contains("does not exist"), "{text}");
    // A part of another object's upload is not this object's.
    let (status, _) = put_part(&c, "other", &id, "1", b"data".to_vec()).await;
    assert_eq!(status, 404);
    let (status, text) = put_part(&c, "o", &id, "2", b"two".to_vec()).await;
    assert_eq!(status, 200, "{text}");
    let (status, text) = complete(&c, "o", &id, &[2]).await;
    assert_eq!(status, 400);
    assert!(
        text.contains("chunk at (0) has invalid number 2 (count=1)"),
        "{text}"
    );
    let abort = |id: String| {
        let url = format!("{}&uploadId={id}", c.api.object_url("b", "o"));
        c.api
            .http
            .delete(url)
            .json(&json!({"action": "mpt-abort", "name": "", "value": null}))
            .send()
    };
    let r = abort("short".into()).await.unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("too short"));
    assert_eq!(abort(id.clone()).await.unwrap().status(), 200);
    assert_eq!(abort(id).await.unwrap().status(), 404);
    assert_eq!(c.api.get("b", "o").await.status(), 404);
}
