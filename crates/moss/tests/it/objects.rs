//! The object API as a user sees it through the proxy.
use moss_testkit::{ClusterSandbox, data, http_no_redirect};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_round_trip_with_awkward_names_and_ranges() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    let names = [
        "plain",
        "dir/sub/a b.txt",
        "ünï/cödé ✓",
        "x/.hidden",
        "trailing space ",
    ];
    for (i, name) in names.iter().enumerate() {
        api.put("b", name, data(i as u64, 1000 + i)).await;
    }
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            api.get_bytes("b", name).await.as_ref(),
            &data(i as u64, 1000 + i)[..],
            "{name}"
        );
    }
    let url = api.object_url("b", "dir/sub/a b.txt");
    let whole = data(1, 1001);
    for (range, expect) in [
        ("bytes=2-4", &whole[2..5]),
        ("bytes=995-", &whole[995..]),
        ("bytes=-3", &whole[998..]),
    ] {
        let r = api
            .http
            .get(&url)
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206, "{range}");
        let content_range = r.headers()["content-range"].to_str().unwrap().to_string();
        assert!(content_range.ends_with("/1001"), "{content_range}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), expect, "{range}");
    }
    let r = api
        .http
        .get(&url)
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_redirects_objects_to_their_hrw_owner_with_307() {
    let sb = ClusterSandbox::builder().start().await;
    sb.api.create_bucket("b").await;
    sb.api.put("b", "obj-1", b"x".to_vec()).await;
    let raw = http_no_redirect();
    let r = raw
        .get(sb.api.object_url("b", "obj-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        location.contains("pid=") && location.contains("utm="),
        "{location}"
    );
    // The owner per HRW is where the redirect points, and the file is on that target only.
    let smap = sb.api.smap().await;
    let owner = moss_server_owner(&smap, "ais/@#/b/obj-1");
    assert!(location.starts_with(&owner.1), "{location} vs {}", owner.1);
    let holders: Vec<_> = (0..3)
        .filter(|i| {
            let mp = sb.data_dir.join(format!("target{i}/mp/@ais/b/%ob/obj-1"));
            mp.exists()
        })
        .collect();
    assert_eq!(holders.len(), 1, "exactly one copy on disk");
    let put = raw
        .put(sb.api.object_url("b", "obj-2"))
        .body("y")
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.status(),
        307,
        "PUT is redirected with 307 (keeps the body)"
    );
    // The proxy read that small body, so the connection stays reusable.
    assert_eq!(put.headers().get("connection"), None);

    // A client that waits for `100 Continue` gets the redirect without sending its body. The proxy
    // closes that connection and says so; a client pooling it would send its next request into
    // the unread body.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = sb.api.endpoint.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT /v1/objects/b/obj-3 HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the proxy closes the connection")
    .unwrap();
    let text = String::from_utf8_lossy(&response).to_lowercase();
    assert!(text.starts_with("http/1.1 307"), "{text}");
    assert!(text.contains("\r\nconnection: close\r\n"), "{text}");
    sb.shutdown().await;
}

/// (id, url) of the HRW owner of `uname`, computed like the SDK does.
pub fn moss_server_owner(smap: &moss_types::smap::Smap, uname: &str) -> (String, String) {
    // The SDK's placement, computed independently of moss-cluster: xxh64(uname, 1103515245).
    let key = xxhash_rust::xxh64::xxh64(uname.as_bytes(), 1_103_515_245);
    let best = smap
        .tmap
        .values()
        .max_by_key(|t| mix64(t.id_digest ^ key))
        .unwrap();
    (best.daemon_id.clone(), best.public_net.direct_url.clone())
}

fn mix64(x: u64) -> u64 {
    const GR: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut z = x.wrapping_add(GR);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z = (z ^ (z >> 31)).wrapping_add(GR);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z = (z ^ (z >> 31)).wrapping_mul(5);
    z.rotate_left(7).wrapping_mul(9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_4xx_with_sdk_wording_and_the_node_stays_up() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    let r = api
        .http
        .post(format!("{}/v1/buckets/b?provider=ais", api.endpoint))
        .body(r#"{"action":"create-bck"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["message"], "bucket \"ais://b\" already exists");
    assert_eq!(body["status"], 409);
    assert_eq!(body["method"], "POST");
    let r = api.get("nope", "x").await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("bucket \\\"ais://nope\\\" does not exist")
    );
    let r = api.get("b", "missing").await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("ais://b/missing does not exist")
    );
    // Names that could escape the bucket, and bad bucket names.
    let paths = [
        "/v1/objects/b/a/../../etc/passwd",
        "/v1/objects/b/a/%2E%2E/%2e%2e/x",
        "/v1/objects/b/%2Fabs",
        "/v1/objects/b/a%00b",
        "/v1/objects/b/a//b",
        "/v1/objects/b/./x",
    ];
    for path in paths {
        for method in ["PUT", "GET"] {
            let (status, body) = moss_testkit::raw_request(&api.endpoint, method, path, b"x").await;
            assert_eq!(status, 400, "{method} {path}: {body}");
            assert!(body.contains("invalid object name"), "{body}");
        }
    }
    let long = "x".repeat(300);
    let r = api
        .http
        .put(format!("{}/v1/objects/b/{long}", api.endpoint))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    for bad in ["bad%20name", ".hidden", &"n".repeat(65)] {
        let r = api
            .http
            .post(format!("{}/v1/buckets/{bad}", api.endpoint))
            .body(r#"{"action":"create-bck"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    // Malformed and oversized control bodies.
    let r = api
        .http
        .post(format!("{}/v1/buckets/c", api.endpoint))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = api
        .http
        .put(format!("{}/v1/cluster", api.endpoint))
        .body(vec![b' '; 2 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = api
        .http
        .get(format!("{}/v1/nothing/here", api.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Still serving.
    api.put("b", "after", b"ok".to_vec()).await;
    assert_eq!(api.get_bytes("b", "after").await.as_ref(), b"ok");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_pages_through_all_targets_in_json_and_msgpack() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    let mut names: Vec<String> = (0..250).map(|i| format!("d{}/o{i:04}", i % 4)).collect();
    api.put_many(
        "b",
        names
            .iter()
            .map(|n| (n.clone(), n.as_bytes().to_vec()))
            .collect(),
    )
    .await;
    names.sort();
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut uuid = String::new();
    loop {
        let body = json!({"action":"list","value":{"pagesize":40,"continuation_token":token,"uuid":uuid,"props":"name,size"}});
        let r = api
            .http
            .get(format!("{}/v1/buckets/b?provider=ais", api.endpoint))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page: serde_json::Value = r.json().await.unwrap();
        assert!(!page["uuid"].as_str().unwrap().is_empty());
        uuid = page["uuid"].as_str().unwrap().to_string();
        for e in page["entries"].as_array().unwrap() {
            assert_eq!(
                e["size"].as_u64().unwrap() as usize,
                e["name"].as_str().unwrap().len()
            );
            seen.push(e["name"].as_str().unwrap().to_string());
        }
        token = page["continuation_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, names);
    // msgpack, with a prefix.
    let body = json!({"action":"list","value":{"prefix":"d1/","props":"name,size"}});
    let r = api
        .http
        .get(format!("{}/v1/buckets/b?provider=ais", api.endpoint))
        .header("accept", "application/msgpack")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/msgpack");
    let bytes = r.bytes().await.unwrap();
    let page: serde_json::Value = rmp_decode(&bytes);
    assert!(!page["UUID"].as_str().unwrap().is_empty());
    assert_eq!(page["ContinuationToken"], "");
    let listed: Vec<&str> = page["Entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["n"].as_str().unwrap())
        .collect();
    let expect: Vec<&str> = names
        .iter()
        .filter(|n| n.starts_with("d1/"))
        .map(String::as_str)
        .collect();
    assert_eq!(listed, expect);
    sb.shutdown().await;
}

/// Decodes msgpack maps/strings/ints into JSON (enough for list-objects pages).
fn rmp_decode(bytes: &[u8]) -> serde_json::Value {
    fn value(b: &[u8], pos: &mut usize) -> serde_json::Value {
        let tag = b[*pos];
        *pos += 1;
        let mut take = |n: usize| {
            let s = &b[*pos..*pos + n];
            *pos += n;
            s
        };
        let be = |s: &[u8]| s.iter().fold(0u64, |acc, &x| acc << 8 | x as u64);
        match tag {
            0x00..=0x7f => json!(tag),
            0x80..=0x8f => map(b, pos, (tag & 0x0f) as usize),
            0x90..=0x9f => array(b, pos, (tag & 0x0f) as usize),
            0xa0..=0xbf => json!(String::from_utf8(take((tag & 0x1f) as usize).to_vec()).unwrap()),
            0xc0 => serde_json::Value::Null,
            0xc2 => json!(false),
            0xc3 => json!(true),
            0xcc => json!(be(take(1))),
            0xcd => json!(be(take(2))),
            0xce => json!(be(take(4))),
            0xcf => json!(be(take(8))),
            0xd9 => {
                let n = be(take(1)) as usize;
                json!(String::from_utf8(take(n).to_vec()).unwrap())
            }
            0xda => {
                let n = be(take(2)) as usize;
                json!(String::from_utf8(take(n).to_vec()).unwrap())
            }
            0xdc => {
                let n = be(take(2)) as usize;
                array(b, pos, n)
            }
            0xde => {
                let n = be(take(2)) as usize;
                map(b, pos, n)
            }
            other => panic!("unexpected msgpack tag {other:#x}"),
        }
    }
    fn map(b: &[u8], pos: &mut usize, n: usize) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        for _ in 0..n {
            let k = value(b, pos).as_str().unwrap().to_string();
            m.insert(k, value(b, pos));
        }
        serde_json::Value::Object(m)
    }
    fn array(b: &[u8], pos: &mut usize, n: usize) -> serde_json::Value {
        serde_json::Value::Array((0..n).map(|_| value(b, pos)).collect())
    }
    let mut pos = 0;
    value(bytes, &mut pos)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_objects_are_detected_not_served() {
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "small", data(1, 5000)).await;
    api.put("b", "large", data(2, 3 << 20)).await;
    for name in ["small", "large"] {
        let path = sb.data_dir.join(format!("target0/mp/@ais/b/%ob/{name}"));
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() - 10;
        bytes[at] ^= 0xff;
        // Rewrite in place so the stored metadata (with the old checksum) stays attached.
        use std::os::unix::fs::FileExt;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(&bytes[at..at + 1], at as u64)
            .unwrap();
    }
    let r = api.get("b", "small").await;
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("checksum mismatch"));
    // A large object streams, but the body is cut short instead of completing.
    let r = api.get("b", "large").await;
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "a corrupt large object must not be delivered whole"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_config_is_read_set_and_pushed_to_targets() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    let url = format!("{}/v1/cluster?what=cluster_config", api.endpoint);
    let config: serde_json::Value = api
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["get_batch"]["max_soft_errs"], 6);
    assert_eq!(config["get_batch"]["warmup_workers"], 2);
    assert_eq!(config["get_batch"]["max_wait"], "20s");
    api.set_config("get_batch.max_soft_errs", "10").await;
    let config: serde_json::Value = api
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["get_batch"]["max_soft_errs"], 10);
    for t in &sb.local().targets {
        assert_eq!(
            t.target.shared.config.load().get_batch.max_soft_errs,
            10,
            "pushed to {}",
            t.url
        );
    }
    let r = api
        .http
        .put(format!(
            "{}/v1/cluster/set-config?get_batch.max_wait=5m",
            api.endpoint
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("range [1s, 1m]"));
    let r = api
        .http
        .put(format!("{}/v1/cluster", api.endpoint))
        .body(r#"{"action":"set-config","value":{"get_batch":{"max_wait":"30s"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        sb.local().targets[0]
            .target
            .shared
            .config
            .load()
            .get_batch
            .max_wait
            .to_string(),
        "30s"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_serves_all_earlier_data_and_keeps_config() {
    let dir = tempfile::tempdir().unwrap();
    let sb = ClusterSandbox::builder()
        .data_dir(dir.path().to_path_buf())
        .start()
        .await;
    sb.api.create_bucket("keep").await;
    let objects: Vec<(String, Vec<u8>)> = (0..60)
        .map(|i| (format!("o{i}"), data(i, 777 + i as usize)))
        .collect();
    sb.api.put_many("keep", objects.clone()).await;
    sb.api.set_config("get_batch.max_soft_errs", "9").await;
    sb.shutdown().await;
    let sb = ClusterSandbox::builder()
        .data_dir(dir.path().to_path_buf())
        .start()
        .await;
    for (name, bytes) in &objects {
        assert_eq!(
            sb.api.get_bytes("keep", name).await.as_ref(),
            &bytes[..],
            "{name}"
        );
    }
    let config: serde_json::Value = sb
        .api
        .http
        .get(format!("{}/v1/cluster?what=cluster_config", sb.endpoint()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["get_batch"]["max_soft_errs"], 9);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_exposed_on_every_node() {
    let sb = ClusterSandbox::builder().targets(2).start().await;
    sb.api.create_bucket("b").await;
    sb.api.put("b", "o", b"abc".to_vec()).await;
    let _ = sb.api.get_bytes("b", "o").await;
    let proxy = reqwest::get(format!("{}/metrics", sb.endpoint()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(proxy.contains("ais_proxy_req_count{node_id="), "{proxy}");
    let mut gets = 0;
    for t in &sb.local().targets {
        let text = reqwest::get(format!("{}/metrics", t.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("# TYPE ais_target_getbatch_count counter"));
        assert!(text.contains("ais_target_err_soft_getbatch_count{node_id="));
        let line = text
            .lines()
            .find(|l| l.starts_with("ais_target_get_count{"))
            .unwrap();
        gets += line.rsplit(' ').next().unwrap().parse::<u64>().unwrap();
    }
    assert_eq!(gets, 1);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_append_and_refused_put_variants_never_overwrite_the_source() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.create_bucket("c").await;
    let big = data(5, 3 << 20);
    api.put("b", "src", big.clone()).await;
    for (i, dst) in ["ais/@%23/b/dst", "ais/@%23/c/elsewhere/dst2"]
        .iter()
        .enumerate()
    {
        let url = format!(
            "{}&object_to={dst}&latest-ver=false&synchronize=false",
            api.object_url("b", "src")
        );
        let r = api.http.put(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "copy {i}: {}", r.text().await.unwrap());
    }
    assert_eq!(
        api.get_bytes("b", "src").await.as_ref(),
        &big[..],
        "the source is untouched"
    );
    assert_eq!(api.get_bytes("b", "dst").await.as_ref(), &big[..]);
    assert_eq!(
        api.get_bytes("c", "elsewhere/dst2").await.as_ref(),
        &big[..]
    );
    let r = api
        .http
        .put(format!(
            "{}&object_to=ais/@%23/nob/x",
            api.object_url("b", "src")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // An append is accepted but invisible until its flush; a part of an upload that does not
    // exist and an archive append are refused.
    for (param, status) in [
        ("append_type=append&append_handle=", 200),
        ("uploadId=7&partNumber=1", 400),
        ("uploadId=nosuchupload&partNumber=1", 404),
        ("archpath=x.txt", 400),
    ] {
        let r = api
            .http
            .put(format!("{}&{param}", api.object_url("b", "src")))
            .body("junk")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{param}");
        assert_eq!(
            api.get_bytes("b", "src").await.as_ref(),
            &big[..],
            "{param} left the source alone"
        );
    }
    sb.shutdown().await;
}

fn one_file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append_data(&mut header, name, content).unwrap();
    builder.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_details_416_content_range_405_allow_and_bare_bucket_delete() {
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "o", data(1, 1001)).await;
    api.put("b", "shard.tar", one_file_tar("in/x.txt", b"0123456789"))
        .await;

    // 416 says how long the object (or the archived file) is.
    let r = api
        .http
        .get(api.object_url("b", "o"))
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */1001");
    let r = api
        .http
        .get(format!(
            "{}&archpath=in/x.txt",
            api.object_url("b", "shard.tar")
        ))
        .header("range", "bytes=10-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */10");

    // 405 lists what is allowed.
    let r = api
        .http
        .put(format!("{}/v1/ml/moss/b", api.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    let r = api
        .http
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/buckets/b", api.endpoint),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, HEAD, POST, PUT, DELETE, PATCH");

    // A bare DELETE does not destroy a bucket; the SDK's action message does.
    let bucket_url = format!("{}/v1/buckets/b?provider=ais", api.endpoint);
    let r = api.http.delete(&bucket_url).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("destroy-bck"),
        "{body}"
    );
    assert_eq!(api.get_bytes("b", "o").await.len(), 1001);
    let r = api
        .http
        .delete(&bucket_url)
        .body(r#"{"action":"destroy-bck","name":"","value":null}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(api.get("b", "o").await.status(), 404);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_put_leaves_no_work_file() {
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "p/q", b"q".to_vec()).await;
    for body in [b"small".to_vec(), data(3, 3 << 20)] {
        let r = api
            .http
            .put(api.object_url("b", "p"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409);
        assert!(r.text().await.unwrap().contains("conflicts"));
    }
    let work = sb.data_dir.join("target0/mp/.moss-work");
    let left: Vec<String> = std::fs::read_dir(&work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("put."))
        .collect();
    assert!(left.is_empty(), "work files left behind: {left:?}");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_objects_are_410_before_any_byte_without_disk_paths() {
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "small", data(1, 5000)).await;
    api.put("b", "large", data(2, 3 << 20)).await;
    for name in ["small", "large"] {
        let path = sb.data_dir.join(format!("target0/mp/@ais/b/%ob/{name}"));
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        // Truncation keeps the metadata xattr with the original size.
        file.set_len(1000).unwrap();
    }
    let data_dir = sb.data_dir.to_string_lossy().into_owned();
    for name in ["small", "large"] {
        let whole = api.get("b", name).await;
        let ranged = api
            .http
            .get(api.object_url("b", name))
            .header("range", "bytes=0-99")
            .send()
            .await
            .unwrap();
        for r in [whole, ranged] {
            assert_eq!(r.status(), 410, "{name}");
            let text = r.text().await.unwrap();
            assert!(text.contains(&format!("ais://b/{name}")), "{text}");
            assert!(text.contains("size mismatch"), "{text}");
            assert!(!text.contains(&data_dir), "disk path leaked: {text}");
        }
        let r = api
            .http
            .head(api.object_url("b", name))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 410, "HEAD {name}");
        let err = r.headers()["hdr-error"].to_str().unwrap().to_string();
        assert!(!err.contains(&data_dir), "disk path leaked: {err}");
    }
    // GetBatch (strict) refuses it before sending anything.
    let r = api
        .batch(
            Some("b"),
            &json!({"in": [{"objname": "small"}], "strm": true}),
        )
        .await;
    assert_eq!(r.status(), 410);
    assert!(!r.text().await.unwrap().contains(&data_dir));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_with_atime_fills_it_in_aistores_format() {
    let sb = ClusterSandbox::builder().targets(2).start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "a", b"1".to_vec()).await;
    api.put("b", "z/b", b"2".to_vec()).await;
    let r = api
        .http
        .get(format!("{}/v1/buckets/b?provider=ais", api.endpoint))
        .body(json!({"action": "list", "value": {"props": "name,size,atime"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: serde_json::Value = r.json().await.unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        // Go's time.RFC822: "02 Jan 06 15:04 MST".
        let atime = e["atime"].as_str().unwrap();
        let parts: Vec<&str> = atime.split(' ').collect();
        assert_eq!(parts.len(), 5, "{atime:?}");
        assert!(
            parts[0].len() == 2 && parts[2].len() == 2 && parts[3].len() == 5,
            "{atime:?}"
        );
        assert_eq!(parts[4], "UTC", "{atime:?}");
    }
    sb.shutdown().await;
}
