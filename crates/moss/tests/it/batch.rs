//! GetBatch as a user sees it: the seed document's examples, every request option, the
//! properties SPEC §4 promises, and ports of the reference's integration scenarios.
use std::io::Read;
use std::time::Duration;

use moss_testkit::{Api, ClusterSandbox, data, http_no_redirect, read_tar, split_multipart};
use serde_json::{Value, json};

/// Entries (name, bytes) of an archive in any output format.
pub fn read_archive(mime: &str, bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    match mime {
        ".tar" | "" => read_tar(bytes),
        ".tgz" | ".tar.gz" => {
            let mut tar = Vec::new();
            flate2::read::MultiGzDecoder::new(bytes)
                .read_to_end(&mut tar)
                .unwrap();
            read_tar(&tar)
        }
        ".tar.lz4" => {
            let mut tar = Vec::new();
            lz4_flex::frame::FrameDecoder::new(bytes)
                .read_to_end(&mut tar)
                .unwrap();
            read_tar(&tar)
        }
        ".zip" => read_zip_with_python(bytes),
        other => panic!("unknown format {other}"),
    }
}

/// Reads a ZIP with Python's `zipfile` (an independent reader that keeps duplicate names).
fn read_zip_with_python(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    use std::io::Write;
    let script = "import sys, zipfile, io, json, base64\n\
                  z = zipfile.ZipFile(io.BytesIO(sys.stdin.buffer.read()))\n\
                  assert z.testzip() is None\n\
                  print(json.dumps([[i.filename, base64.b64encode(z.open(i).read()).decode()] for i in z.infolist()]))";
    let mut child = std::process::Command::new("python3")
        .args(["-W", "ignore", "-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python zipfile rejected the archive");
    let entries: Vec<(String, String)> = serde_json::from_slice(&out.stdout).unwrap();
    entries
        .into_iter()
        .map(|(name, b64)| (name, base64_decode(&b64)))
        .collect()
}

fn base64_decode(text: &str) -> Vec<u8> {
    moss_types::moss::decode_opaque(text).unwrap()
}

async fn streamed(api: &Api, bucket: Option<&str>, body: Value) -> Vec<(String, Vec<u8>)> {
    let mime = body["mime"].as_str().unwrap_or(".tar").to_string();
    let r = api.batch(bucket, &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    read_archive(&mime, &r.bytes().await.unwrap())
}

async fn buffered(
    api: &Api,
    bucket: Option<&str>,
    body: Value,
) -> (moss_types::moss::MossResp, Vec<(String, Vec<u8>)>) {
    let mime = body["mime"].as_str().unwrap_or(".tar").to_string();
    let r = api.batch(bucket, &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("multipart/mixed; boundary="), "{ct}");
    let (meta, archive) = split_multipart(&ct, &r.bytes().await.unwrap());
    (meta, read_archive(&mime, &archive))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_examples_give_the_documented_archives() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    for b in [
        "my-bucket",
        "configs",
        "models",
        "datasets",
        "default-bucket",
        "training",
    ] {
        api.create_bucket(b).await;
    }
    for i in 1..=3 {
        api.put("my-bucket", &format!("file-000{i}.bin"), data(i, 3000))
            .await;
    }
    api.put("configs", "config.json", b"{}".to_vec()).await;
    api.put("models", "model.pt", data(7, 5000)).await;
    api.put("datasets", "data.csv", b"a,b\n1,2\n".to_vec())
        .await;
    api.put("training", "exists-1.bin", data(8, 1 << 20)).await;
    api.put("training", "exists-2.bin", data(9, 2 << 20)).await;

    // Example 1: plain objects, envelope, streaming.
    let body = json!({"action":"getbatch","value":{"mime":".tar","in":[
        {"objname":"file-0001.bin"},{"objname":"file-0002.bin"},{"objname":"file-0003.bin"}],"strm":true}});
    let got = streamed(api, Some("my-bucket"), body).await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "my-bucket/file-0001.bin",
            "my-bucket/file-0002.bin",
            "my-bucket/file-0003.bin"
        ]
    );
    assert_eq!(got[1].1, data(2, 3000));

    // Example 3: cross-bucket.
    let body = json!({"action":"getbatch","value":{"in":[
        {"objname":"config.json","bucket":"configs"},{"objname":"model.pt","bucket":"models"},
        {"objname":"data.csv","bucket":"datasets"}],"strm":true}});
    let got = streamed(api, Some("default-bucket"), body).await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "configs/config.json",
            "models/model.pt",
            "datasets/data.csv"
        ]
    );
    assert_eq!(got[2].1, b"a,b\n1,2\n");

    // Example 4: missing data with coer, buffered.
    let body = json!({"action":"getbatch","value":{"in":[
        {"objname":"exists-1.bin"},{"objname":"missing.bin"},{"objname":"exists-2.bin"}],"coer":true,"strm":false}});
    let (meta, got) = buffered(api, Some("training"), body).await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "training/exists-1.bin",
            "__404__/training/missing.bin",
            "training/exists-2.bin"
        ]
    );
    assert_eq!(
        (got[0].1.len(), got[1].1.len(), got[2].1.len()),
        (1 << 20, 0, 2 << 20)
    );
    let sizes: Vec<u64> = meta.out.iter().map(|o| o.size).collect();
    assert_eq!(sizes, [1 << 20, 0, 2 << 20]);
    assert_eq!(meta.out[0].err_msg, None);
    assert!(
        meta.out[1]
            .err_msg
            .as_deref()
            .unwrap()
            .contains("ais://training/missing.bin does not exist")
    );
    assert_eq!(meta.out[1].objname, "missing.bin");
    assert_eq!(meta.out[1].bucket, "training");
    assert_eq!(meta.out[1].provider, "ais");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_redirects_to_a_target_and_post_works_too() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "o", b"payload".to_vec()).await;
    let body = json!({"in":[{"objname":"o"}],"strm":true});
    let r = http_no_redirect()
        .get(format!("{}/v1/ml/moss/b?provider=ais", api.endpoint))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 307);
    let location = r.headers()["location"].to_str().unwrap();
    let target_urls: Vec<String> = sb.local().targets.iter().map(|t| t.url.clone()).collect();
    assert!(
        target_urls
            .iter()
            .any(|u| location.starts_with(&format!("{u}/v1/ml/moss/b?"))),
        "{location}"
    );
    assert!(
        location.contains("provider=ais") && location.contains("pid="),
        "{location}"
    );
    // The designated target refuses requests that did not come through the proxy.
    let direct = location.split("?").next().unwrap();
    let r = moss_testkit::http()
        .get(direct)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = api
        .http
        .post(format!("{}/v1/ml/moss/b?provider=ais", api.endpoint))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-tar");
    assert_eq!(
        read_tar(&r.bytes().await.unwrap()),
        vec![("b/o".to_string(), b"payload".to_vec())]
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_over_ten_thousand_entries_from_every_target() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    let objects: Vec<(String, Vec<u8>)> = (0..400)
        .map(|i| (format!("o-{i:04}"), data(i, 100 + (i as usize % 50))))
        .collect();
    api.put_many("b", objects.clone()).await;
    // 10,000 entries: a shuffled walk over the objects, with repeats.
    let order: Vec<usize> = (0..10_000usize)
        .map(|k| (k * 7919 + k / 400) % 400)
        .collect();
    let entries: Vec<Value> = order
        .iter()
        .map(|&i| json!({"objname": objects[i].0}))
        .collect();
    for strm in [true, false] {
        let body = json!({"in": entries, "strm": strm});
        let got = if strm {
            streamed(api, Some("b"), body).await
        } else {
            buffered(api, Some("b"), body).await.1
        };
        assert_eq!(got.len(), 10_000);
        for (k, &i) in order.iter().enumerate() {
            assert_eq!(got[k].0, format!("b/{}", objects[i].0), "entry {k}");
            assert_eq!(got[k].1, objects[i].1, "entry {k}");
        }
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_byte_objects_are_real_entries() {
    // Reference: TestMossZeroSizeObjects (even index → 0 bytes, odd → 4 KiB).
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("z").await;
    let objects: Vec<(String, Vec<u8>)> = (0..100)
        .map(|i| {
            (
                format!("zerosize-{i:05}.bin"),
                if i % 2 == 0 { vec![] } else { data(i, 4096) },
            )
        })
        .collect();
    api.put_many("z", objects.clone()).await;
    let entries: Vec<Value> = objects.iter().map(|(n, _)| json!({"objname": n})).collect();
    let got = streamed(api, Some("z"), json!({"in": entries, "strm": true})).await;
    let (meta, got_buffered) = buffered(api, Some("z"), json!({"in": entries})).await;
    for (i, (name, bytes)) in objects.iter().enumerate() {
        assert_eq!(got[i], (format!("z/{name}"), bytes.clone()));
        assert_eq!(got_buffered[i], (format!("z/{name}"), bytes.clone()));
        assert_eq!(meta.out[i].size as usize, bytes.len());
        assert_eq!(meta.out[i].err_msg, None);
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_mode_fails_with_404_and_no_archive_bytes() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    for i in 0..20 {
        api.put("b", &format!("o{i}"), data(i, 1000)).await;
    }
    let mut entries: Vec<Value> = (0..20)
        .map(|i| json!({"objname": format!("o{i}")}))
        .collect();
    entries.insert(13, json!({"objname": "nope"}));
    for strm in [true, false] {
        let r = api
            .batch(Some("b"), &json!({"in": entries, "strm": strm}))
            .await;
        assert_eq!(r.status(), 404, "strm={strm}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("ais://b/nope does not exist"),
            "{body}"
        );
    }
    // A missing bucket in one entry is caught by the proxy.
    let r = api
        .batch(
            Some("b"),
            &json!({"in":[{"objname":"o1"},{"objname":"x","bucket":"nob"}]}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("bucket \\\"ais://nob\\\" does not exist")
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_errors_beyond_the_limit_fail_the_request() {
    let sb = ClusterSandbox::builder()
        .config("get_batch.max_soft_errs", "2")
        .start()
        .await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "here", b"x".to_vec()).await;
    let two_missing = json!({"in":[{"objname":"here"},{"objname":"m1"},{"objname":"m2"}],"coer":true,"strm":true});
    let got = streamed(api, Some("b"), two_missing).await;
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["b/here", "__404__/b/m1", "__404__/b/m2"]);
    let three_missing = json!({"in":[{"objname":"m1"},{"objname":"here"},{"objname":"m2"},{"objname":"m3"}],"coer":true,"strm":true});
    let r = api.batch(Some("b"), &three_missing).await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("max_soft_errs=2"));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_is_echoed_from_either_base64_alphabet() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "o", b"x".to_vec()).await;
    // 0xfb 0xff encodes as "+/8=" (standard) and "-_8=" (URL-safe).
    let body = json!({"in":[{"objname":"o","opaque":"+/8="},{"objname":"o","opaque":"-_8"},{"objname":"o"}]});
    let (meta, _) = buffered(api, Some("b"), body).await;
    assert_eq!(meta.out[0].opaque.as_deref(), Some(&[0xfb, 0xff][..]));
    assert_eq!(meta.out[1].opaque.as_deref(), Some(&[0xfb, 0xff][..]));
    assert_eq!(meta.out[2].opaque, None);
    let r = api
        .batch(Some("b"), &json!({"in":[{"objname":"o","opaque":"!!"}]}))
        .await;
    assert_eq!(r.status(), 400);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_read_exact_slices_and_unsatisfiable_ones_are_416() {
    // Reference: TestMossRangeReadSmoke — per entry j the range rotates j % 4.
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("r").await;
    let sizes: Vec<usize> = (0..40)
        .map(|j| if j < 36 { 4096 } else { (2 << 20) + 17 })
        .collect();
    let objects: Vec<(String, Vec<u8>)> = sizes
        .iter()
        .enumerate()
        .map(|(j, &sz)| (format!("robj-{j:05}.bin"), data(j as u64, sz)))
        .collect();
    api.put_many("r", objects.clone()).await;
    let mut entries = Vec::new();
    let mut expect = Vec::new();
    for (j, (name, bytes)) in objects.iter().enumerate() {
        let sz = bytes.len();
        let (entry, slice) = match j % 4 {
            0 => (
                json!({"objname": name, "start": sz / 3, "length": sz / 4}),
                &bytes[sz / 3..sz / 3 + sz / 4],
            ),
            1 => (
                json!({"objname": name, "start": 0, "length": sz / 2}),
                &bytes[..sz / 2],
            ),
            2 => (
                json!({"objname": name, "start": sz / 3, "length": -1}),
                &bytes[sz / 3..],
            ),
            _ => (json!({"objname": name}), &bytes[..]),
        };
        entries.push(entry);
        expect.push((format!("r/{name}"), slice.to_vec()));
    }
    for mime in [".tar", ".tgz", ".zip"] {
        let (meta, got) = buffered(api, Some("r"), json!({"in": entries, "mime": mime})).await;
        assert_eq!(got, expect, "{mime}");
        for (out, (_, slice)) in meta.out.iter().zip(&expect) {
            assert_eq!(out.size as usize, slice.len());
        }
    }
    assert_eq!(
        streamed(api, Some("r"), json!({"in": entries, "strm": true})).await,
        expect
    );
    let r = api
        .batch(
            Some("r"),
            &json!({"in":[{"objname":"robj-00000.bin","start":4000,"length":200}]}),
        )
        .await;
    assert_eq!(r.status(), 416);
    assert!(r.text().await.unwrap().contains("not satisfiable range"));
    let r = api
        .batch(
            Some("r"),
            &json!({"in":[{"objname":"robj-00000.bin","start":-1,"length":2}]}),
        )
        .await;
    assert_eq!(r.status(), 416);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_tar_with_mixed_sizes() {
    // Reference: TestGetBatchStream_DrainTar.
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("d").await;
    let objects = [
        ("s1", 8 * 1024 + 123),
        ("s2", 12 * 1024 + 456),
        ("sbig", 3 * 1024 * 1024 + 789),
        ("s3", 4 * 1024 + 0xabc),
    ];
    for (i, (name, size)) in objects.iter().enumerate() {
        api.put("d", name, data(i as u64, *size)).await;
    }
    let entries: Vec<Value> = objects.iter().map(|(n, _)| json!({"objname": n})).collect();
    let got = streamed(api, Some("d"), json!({"in": entries, "strm": true})).await;
    for (i, (name, size)) in objects.iter().enumerate() {
        assert_eq!(got[i].0, format!("d/{name}"));
        assert_eq!(got[i].1, data(i as u64, *size));
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_output_format_with_onob_coer_and_missing() {
    // Reference: TestMoss plain-object rows (buffered and streaming; coer, onob, withMissing).
    let sb = ClusterSandbox::builder()
        .config("get_batch.max_soft_errs", "30")
        .start()
        .await;
    let api = &sb.api;
    api.create_bucket("m").await;
    let objects: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("moss/obj-{i:03}"), data(i, 512 + 37 * i as usize)))
        .collect();
    api.put_many("m", objects.clone()).await;
    let mut entries = Vec::new();
    let mut expect = Vec::new();
    for (i, (name, bytes)) in objects.iter().enumerate() {
        entries.push(json!({"objname": name, "opaque": "YWJj"}));
        expect.push((name.clone(), Some(bytes.clone())));
        if i % 3 == 0 {
            let missing = format!("missing-{i:08}");
            entries.push(json!({"objname": missing}));
            expect.push((missing, None));
        }
    }
    for mime in [".tar", ".tgz", ".tar.gz", ".zip", ".tar.lz4"] {
        for onob in [false, true] {
            for strm in [false, true] {
                let body =
                    json!({"in": entries, "mime": mime, "coer": true, "onob": onob, "strm": strm});
                let got = if strm {
                    streamed(api, Some("m"), body).await
                } else {
                    buffered(api, Some("m"), body).await.1
                };
                assert_eq!(got.len(), expect.len(), "{mime} onob={onob} strm={strm}");
                for ((name, bytes), (got_name, got_bytes)) in expect.iter().zip(&got) {
                    let base = if onob {
                        name.clone()
                    } else {
                        format!("m/{name}")
                    };
                    match bytes {
                        Some(b) => assert_eq!((got_name, got_bytes), (&base, b), "{mime}"),
                        None => assert_eq!(
                            (got_name.as_str(), got_bytes.len()),
                            (format!("__404__/{base}").as_str(), 0),
                            "{mime}"
                        ),
                    }
                }
            }
        }
        let r = api
            .batch(
                Some("m"),
                &json!({"in": entries, "mime": mime, "coer": true, "strm": true}),
            )
            .await;
        let expected_type = match mime {
            ".tar" => "application/x-tar",
            ".tgz" | ".tar.gz" => "application/gzip",
            ".zip" => "application/zip",
            _ => "application/x-lz4",
        };
        assert_eq!(r.headers()["content-type"], expected_type);
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_rejected_before_any_work() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    let cases: Vec<(Option<&str>, Value, &str)> = vec![
        (Some("b"), json!({"in":[]}), "moss: empty input"),
        (
            Some("b"),
            json!({"in":[{"objname":"o"}],"mime":".rar"}),
            "unknown mime type \".rar\"",
        ),
        (
            None,
            json!({"in":[{"objname":"o"}]}),
            "missing bucket specification for object \"o\"",
        ),
        (
            Some("b"),
            json!({"in":[{"objname":"../x"}]}),
            "invalid object name",
        ),
        (
            Some("b"),
            json!({"in":[{"objname":"s.tar","archpath":"a/../b"}]}),
            "invalid archpath",
        ),
        (
            Some("b"),
            json!({"in":[{"objname":"o","uname":"ais/@#/b/o"}]}),
            "not expecting object name",
        ),
        (Some("b"), json!({"in":"nope"}), "invalid GetBatch request"),
    ];
    for (bucket, body, message) in cases {
        let r = api.batch(bucket, &body).await;
        assert_eq!(r.status(), 400, "{body}");
        let err: Value = r.json().await.unwrap();
        assert!(
            err["message"].as_str().unwrap().contains(message),
            "{err} should say {message}"
        );
    }
    let r = api
        .http
        .get(format!("{}/v1/ml/moss/b", api.endpoint))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = api
        .http
        .get(format!("{}/v1/ml/moss/b?coloc=7", api.endpoint))
        .json(&json!({"in":[{"objname":"o"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("invalid 'coloc=7'"));
    let r = api
        .batch(Some("nob"), &json!({"in":[{"objname":"o"}]}))
        .await;
    assert_eq!(r.status(), 404);
    // A body beyond the 64 MiB limit is refused, and the node keeps serving.
    let r = api
        .http
        .get(format!("{}/v1/ml/moss/b", api.endpoint))
        .body(vec![b' '; 65 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let r = api
        .batch(Some("b"), &json!({"in":[{"objname":"o"}], "coer": true}))
        .await;
    assert_eq!(r.status(), 200);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coloc_picks_the_target_owning_most_entries() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("c").await;
    let names: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    api.put_many(
        "c",
        names.iter().map(|n| (n.clone(), b"x".to_vec())).collect(),
    )
    .await;
    // Find the owner of each object from the redirect of a plain GET.
    let raw = http_no_redirect();
    let mut owners = std::collections::HashMap::<String, Vec<String>>::new();
    for n in &names {
        let r = raw.get(api.object_url("c", n)).send().await.unwrap();
        let loc = r.headers()["location"].to_str().unwrap();
        let host = loc.split("/v1/").next().unwrap().to_string();
        owners.entry(host).or_default().push(n.clone());
    }
    let (winner, mine) = owners.iter().max_by_key(|(_, v)| v.len()).unwrap();
    // A batch made mostly of the winner's objects, plus one from elsewhere.
    let other = owners.iter().find(|(h, _)| *h != winner).unwrap().1[0].clone();
    let mut entries: Vec<Value> = mine.iter().map(|n| json!({"objname": n})).collect();
    entries.push(json!({"objname": other}));
    for _ in 0..5 {
        let r = raw
            .get(format!("{}/v1/ml/moss/c?coloc=1", api.endpoint))
            .json(&json!({"in": entries}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 307);
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with(winner.as_str())
        );
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_429_with_retry_after() {
    let sb = ClusterSandbox::builder()
        .targets(1)
        .config("get_batch.max_active", "1")
        .start()
        .await;
    let api = &sb.api;
    api.create_bucket("b").await;
    api.put("b", "big", data(1, 8 << 20)).await;
    let entries: Vec<Value> = (0..40).map(|_| json!({"objname":"big"})).collect();
    // The first batch stays active while its client does not read.
    let slow = api
        .batch(Some("b"), &json!({"in": entries, "strm": true}))
        .await;
    assert_eq!(slow.status(), 200);
    let r = api
        .batch(Some("b"), &json!({"in":[{"objname":"big"}]}))
        .await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "1");
    let body: Value = r.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("rejected"));
    drop(slow);
    // Once the first client is gone, work is admitted again.
    let mut admitted = false;
    for _ in 0..100 {
        let r = api
            .batch(Some("b"), &json!({"in":[{"objname":"big","length":10}]}))
            .await;
        if r.status() == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted);
    sb.shutdown().await;
}

/// Sum of a gauge over every target of the sandbox.
pub async fn gauge(sb: &ClusterSandbox, name: &str) -> i64 {
    let mut total = 0;
    for t in &sb.local().targets {
        let text = reqwest::get(format!("{}/metrics", t.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .unwrap();
        total += line.rsplit(' ').next().unwrap().parse::<i64>().unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_stops_work_on_dt_and_senders() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    let objects: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| (format!("o{i}"), data(i, 1 << 20)))
        .collect();
    api.put_many("b", objects).await;
    let entries: Vec<Value> = (0..3000)
        .map(|k| json!({"objname": format!("o{}", k % 30)}))
        .collect();
    let mut r = api
        .batch(Some("b"), &json!({"in": entries, "strm": true}))
        .await;
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    assert!(gauge(&sb, "moss_getbatch_active_work_items").await >= 1);
    assert!(gauge(&sb, "moss_getbatch_active_send_streams").await >= 1);
    drop(r);
    let mut stopped = false;
    for _ in 0..200 {
        if gauge(&sb, "moss_getbatch_active_work_items").await == 0
            && gauge(&sb, "moss_getbatch_active_send_streams").await == 0
        {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(stopped, "work continued after the client left");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_entry_requests_are_accepted() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("big").await;
    let names: Vec<String> = (0..30).map(|i| format!("o{i}")).collect();
    api.put_many(
        "big",
        names
            .iter()
            .map(|n| (n.clone(), b"0123456789".to_vec()))
            .collect(),
    )
    .await;
    // ~4.5 MB of JSON; every target stats its share, then strict mode reports the one missing item.
    let mut entries: Vec<Value> = (0..100_000)
        .map(|k| json!({"objname": names[k % 30], "start": 1, "length": 1}))
        .collect();
    entries.push(json!({"objname": "not-there"}));
    let r = api
        .batch(Some("big"), &json!({"in": entries, "strm": true}))
        .await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("ais://big/not-there does not exist")
    );
    // The same request with coer streams all 100,001 entries.
    let r = api
        .batch(
            Some("big"),
            &json!({"in": entries, "strm": true, "coer": true}),
        )
        .await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let got = read_tar(&r.bytes().await.unwrap());
    assert_eq!(got.len(), 100_001);
    assert_eq!(got[99_999], ("big/o9".to_string(), b"1".to_vec()));
    assert_eq!(got[100_000].0, "__404__/big/not-there");
    sb.shutdown().await;
}

/// GetBatch keeps objects open between requests (and does not hash them again while the page
/// cache holds their verified bytes); a kept object never outlives a change. Through moss: an
/// overwrite, a delete. Behind moss's back, on the disk: bytes flipped in place, a truncation, an
/// unlink. Every one is seen by the very next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_open_objects_see_every_change_and_damage_is_still_caught() {
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    // One read whole into the output, one read in chunks.
    let (small, big) = (data(1, 5000), data(2, 300 << 10));
    api.put("b", "small", small.clone()).await;
    api.put("b", "big", big.clone()).await;
    api.put("b", "other", data(3, 100)).await;
    let file = |name: &str| sb.data_dir.join(format!("target0/mp/@ais/b/%ob/{name}"));
    let request = json!({"in": [{"objname": "small"}, {"objname": "big"}, {"objname": "other"}],
        "strm": true});
    let bytes_of =
        |got: Vec<(String, Vec<u8>)>| -> Vec<Vec<u8>> { got.into_iter().map(|(_, b)| b).collect() };
    let expect = vec![small.clone(), big.clone(), data(3, 100)];

    assert_eq!(
        bytes_of(streamed(api, Some("b"), request.clone()).await),
        expect
    );
    let reused = gauge(&sb, "moss_target_object_open_reused_count").await;
    assert_eq!(
        bytes_of(streamed(api, Some("b"), request.clone()).await),
        expect
    );
    assert_eq!(
        gauge(&sb, "moss_target_object_open_reused_count").await,
        reused + 3,
        "the second request reuses all three open objects"
    );
    assert_eq!(gauge(&sb, "moss_target_objects_kept_open").await, 3);

    // Overwritten through moss with other bytes of the same size.
    let small2 = data(11, 5000);
    api.put("b", "small", small2.clone()).await;
    let got = bytes_of(streamed(api, Some("b"), request.clone()).await);
    assert_eq!(got[0], small2);

    // A byte flipped on the disk, in place (the stored checksum stays attached), in each of the
    // two objects that were just served from kept descriptors. (After more than a timer tick:
    // kernels without multigrain timestamps would give a write within the same tick as the last
    // check the same mtime.)
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    use std::os::unix::fs::FileExt;
    for name in ["small", "big"] {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(file(name))
            .unwrap();
        let at = 4000;
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at).unwrap();
        f.write_all_at(&[b[0] ^ 0xff], at).unwrap();
    }
    for name in ["small", "big"] {
        // The response is cut before it completes (the connection closes).
        let sent = api
            .http
            .get(format!("{}/v1/ml/moss/b?provider=ais", api.endpoint))
            .json(&json!({"in": [{"objname": name}], "strm": true}))
            .send()
            .await;
        let delivered = match sent {
            Ok(r) => r.bytes().await.map(|b| read_archive(".tar", &b)),
            Err(e) => Err(e),
        };
        assert!(
            delivered.is_err(),
            "{name}: a damaged object must not be delivered: {:?}",
            delivered.map(|m| m.len())
        );
    }

    // Truncated on the disk.
    std::fs::OpenOptions::new()
        .write(true)
        .open(file("other"))
        .unwrap()
        .set_len(50)
        .unwrap();
    let r = api
        .batch(
            Some("b"),
            &json!({"in": [{"objname": "other"}], "strm": true}),
        )
        .await;
    assert_ne!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("object size mismatch: 50 bytes stored, 100 recorded"),
        "{text}"
    );

    // Put back through moss, read (kept again), then unlinked on the disk.
    api.put("b", "other", data(3, 100)).await;
    let one = json!({"in": [{"objname": "other"}], "strm": true});
    assert_eq!(
        bytes_of(streamed(api, Some("b"), one.clone()).await),
        vec![data(3, 100)]
    );
    std::fs::remove_file(file("other")).unwrap();
    let r = api.batch(Some("b"), &one).await;
    assert_eq!(r.status(), 404, "an unlinked object is gone");

    // Deleted through moss.
    api.put("b", "other", data(3, 100)).await;
    assert_eq!(
        bytes_of(streamed(api, Some("b"), one.clone()).await),
        vec![data(3, 100)]
    );
    let r = api
        .http
        .delete(api.object_url("b", "other"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api.batch(Some("b"), &one).await;
    assert_eq!(r.status(), 404);
    sb.shutdown().await;
}

/// A sender whose object turns out damaged half-way through breaks its stream; the DT then reads
/// the object again from its owner to finish the entry. That read is of the whole object, so
/// its checksum covers the bytes already sent: the damaged object is not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_object_is_not_completed_by_the_dts_recovery_read() {
    let sb = ClusterSandbox::builder().targets(3).start().await;
    let api = &sb.api;
    api.create_bucket("b").await;
    let file = |t: usize, name: &str| sb.data_dir.join(format!("target{t}/mp/@ais/b/%ob/{name}"));
    let owner_of = |name: &str| (0..3).find(|&t| file(t, name).exists()).unwrap();
    api.put("b", "big", data(2, 600 << 10)).await;
    let owner = owner_of("big");
    // Two small objects of another target make that target the DT (`coloc=1`): it receives
    // the big one from its owner's send stream.
    let mut others = Vec::new();
    for i in 0..30 {
        let name = format!("s{i}");
        api.put("b", &name, data(100 + i, 100)).await;
        if owner_of(&name) == (owner + 1) % 3 && others.len() < 2 {
            others.push(name);
        }
    }
    assert_eq!(others.len(), 2);
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(file(owner, "big"))
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, 1000).unwrap();
    f.write_all_at(&[b[0] ^ 0xff], 1000).unwrap();
    for coer in [false, true] {
        let entries = [&others[0], "big", &others[1]].map(|n| json!({"objname": n}));
        let sent = api
            .http
            .get(format!(
                "{}/v1/ml/moss/b?provider=ais&coloc=1",
                api.endpoint
            ))
            .json(&json!({"in": entries, "strm": true, "coer": coer}))
            .send()
            .await;
        let delivered = match sent {
            Ok(r) => {
                assert_eq!(r.status(), 200);
                r.bytes().await.map(|b| read_archive(".tar", &b))
            }
            Err(e) => Err(e),
        };
        // The response is cut (the client sees an error), or with coer the entry is a
        // placeholder: never the damaged bytes.
        if let Ok(got) = delivered {
            assert!(coer, "strict mode must fail");
            let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names[1], "__404__/b/big", "{names:?}");
        }
    }
    sb.shutdown().await;
}
