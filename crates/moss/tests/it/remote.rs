//! Remote buckets against real cloud wire servers (moto for S3 and GCS's XML API, Azurite for
//! Azure; started by scripts/test.sh): the backend conformance suite for every provider, then
//! what a user of a cluster in front of a cloud bucket sees.
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use moss_backend::{BackendError, ListReq};
use moss_testkit::clouds::{Cloud, PROVIDERS, Relay};
use moss_testkit::{ClusterSandbox, data, http, read_tar};
use moss_types::Provider;
use serde_json::json;

/// A prefix no other test (or earlier run) uses in the shared emulator bucket.
fn fresh_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{test}-{nanos:x}/")
}

async fn cluster(cloud: &Cloud) -> ClusterSandbox {
    ClusterSandbox::builder()
        .cloud(cloud.env.clone())
        .start()
        .await
}

fn object_url(sb: &ClusterSandbox, cloud: &Cloud, name: &str) -> String {
    format!(
        "{}/v1/objects/{}/{}?provider={}",
        sb.endpoint(),
        cloud.bucket,
        name,
        cloud.provider.as_str()
    )
}

async fn present(sb: &ClusterSandbox, cloud: &Cloud, name: &str) -> Option<String> {
    let r = http()
        .head(object_url(sb, cloud, name))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "HEAD {name}");
    r.headers()
        .get("ais-present")
        .map(|v| v.to_str().unwrap().to_string())
}

async fn list(sb: &ClusterSandbox, cloud: &Cloud, msg: serde_json::Value) -> serde_json::Value {
    let r = http()
        .get(format!(
            "{}/v1/buckets/{}?provider={}",
            sb.endpoint(),
            cloud.bucket,
            cloud.provider.as_str()
        ))
        .json(&json!({"action": "list", "value": msg}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn names_of(page: &serde_json::Value) -> Vec<String> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_conformance_on_every_provider() {
    for provider in PROVIDERS {
        let cloud = Cloud::of(provider);
        let backend = cloud.direct();
        let p = fresh_prefix("conf");
        let tag = moss_backend::error_tag(provider);
        let scheme = provider.scheme();
        // Small objects, one of them deeper, and one large enough for a multipart upload.
        let mut expected = Vec::new();
        for i in 0..5 {
            let name = format!("{p}a{i}");
            cloud.put(&name, &data(i, 100 + i as usize)).await;
            expected.push(name);
        }
        cloud.put(&format!("{p}d/x"), b"deep").await;
        expected.push(format!("{p}d/x"));
        let big = data(99, (12 << 20) + 3);
        cloud.put(&format!("{p}big"), &big).await;
        expected.push(format!("{p}big"));
        expected.sort();

        let (attrs, _) = backend.get(&format!("{p}big")).await.unwrap();
        let got = cloud.get(&format!("{p}big")).await.unwrap();
        assert_eq!(got.len(), big.len(), "{provider:?}");
        assert!(got == big, "{provider:?}: multipart object bytes differ");
        assert_eq!(attrs.size, big.len() as u64);
        assert!(
            !attrs.etag.is_empty() && !attrs.etag.contains('"'),
            "{attrs:?}"
        );
        assert!(attrs.last_modified_ns > 0, "{provider:?}");
        let head = backend.head(&format!("{p}a3")).await.unwrap();
        assert_eq!(head.size, 103);

        // Pages of 2 under the cloud's own tokens reach every object exactly once.
        let mut req = ListReq {
            prefix: p.clone(),
            max: 2,
            ..Default::default()
        };
        let mut listed = Vec::new();
        let mut pages = 0;
        loop {
            let page = backend.list_page(&req).await.unwrap();
            assert!(page.entries.len() <= 2, "{provider:?}");
            listed.extend(page.entries.into_iter().map(|e| e.name));
            pages += 1;
            if page.next_token.is_empty() {
                break;
            }
            req.token = page.next_token;
        }
        listed.sort();
        assert_eq!(listed, expected, "{provider:?}");
        assert!(pages >= 4, "{provider:?}: {pages} pages");
        if provider != Provider::Azure {
            // One level: the deeper name is a directory.
            let page = backend
                .list_page(&ListReq {
                    prefix: p.clone(),
                    no_recursion: true,
                    ..Default::default()
                })
                .await
                .unwrap();
            assert_eq!(page.dirs, vec![format!("{p}d/")], "{provider:?}");
            assert_eq!(page.entries.len(), 6, "{provider:?}");
        }

        let missing = backend.get(&format!("{p}nope")).await.err().unwrap();
        assert_eq!(
            missing,
            BackendError::NotFound(format!(
                "{tag}[NotFound: {scheme}://{}/{p}nope]",
                cloud.bucket
            )),
        );
        let no_bucket = Cloud {
            bucket: "moss-no-such-bucket".into(),
            ..cloud.clone()
        };
        let err = no_bucket.direct().head_bucket().await.err().unwrap();
        assert_eq!(
            err,
            BackendError::BucketNotFound(format!(
                "{} bucket \"{scheme}://moss-no-such-bucket\" does not exist",
                provider.as_str()
            )),
        );
        backend.delete(&format!("{p}a0")).await.unwrap();
        assert!(matches!(
            backend.head(&format!("{p}a0")).await,
            Err(BackendError::NotFound(_))
        ));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_warm_and_latest_gets_on_every_provider() {
    for provider in PROVIDERS {
        let cloud = Cloud::of(provider);
        let sb = cluster(&cloud).await;
        let p = fresh_prefix("cold");
        let name = format!("{p}obj");
        cloud.put(&name, &data(1, 300_000)).await;

        assert_eq!(present(&sb, &cloud, &name).await.as_deref(), Some("false"));
        let r = http()
            .get(object_url(&sb, &cloud, &name))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{provider:?}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), &data(1, 300_000)[..]);
        assert_eq!(present(&sb, &cloud, &name).await.as_deref(), Some("true"));

        // The cloud changes behind the cluster's back: warm reads keep the cached copy until
        // asked for the latest.
        cloud.put(&name, &data(2, 1000)).await;
        let warm = http()
            .get(object_url(&sb, &cloud, &name))
            .send()
            .await
            .unwrap();
        assert_eq!(warm.bytes().await.unwrap().len(), 300_000, "{provider:?}");
        let latest = http()
            .get(format!(
                "{}&latest-ver=true",
                object_url(&sb, &cloud, &name)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(latest.bytes().await.unwrap().as_ref(), &data(2, 1000)[..]);
        let warm = http()
            .get(object_url(&sb, &cloud, &name))
            .send()
            .await
            .unwrap();
        assert_eq!(warm.bytes().await.unwrap().as_ref(), &data(2, 1000)[..]);

        cloud.direct().delete(&name).await.unwrap();
        let warm = http()
            .get(object_url(&sb, &cloud, &name))
            .send()
            .await
            .unwrap();
        assert_eq!(
            warm.status(),
            200,
            "{provider:?}: the cached copy is still served"
        );
        let gone = http()
            .get(format!(
                "{}&latest-ver=true",
                object_url(&sb, &cloud, &name)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404, "{provider:?}");
        sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_follows_the_clouds_pages_and_marks_cached_objects() {
    let cloud = Cloud::of(Provider::Aws);
    let sb = cluster(&cloud).await;
    let p = fresh_prefix("ls");
    let mut expected = Vec::new();
    for i in 0..12 {
        let name = format!("{p}{i:02}");
        cloud.put(&name, &data(i, 10 + i as usize)).await;
        expected.push(name);
    }
    cloud.put(&format!("{p}sub/deep"), b"x").await;
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(
            &sb,
            &cloud,
            json!({"prefix": p, "pagesize": 5, "continuation_token": token}),
        )
        .await;
        all.extend(names_of(&page));
        token = page["continuation_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            break;
        }
    }
    let mut want = expected.clone();
    want.push(format!("{p}sub/deep"));
    assert_eq!(all, want);

    // Cached flags appear when asked for (`props` beyond name and size), after a GET.
    let got = http()
        .get(object_url(&sb, &cloud, &expected[3]))
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let page = list(&sb, &cloud, json!({"prefix": p, "props": "name,cached"})).await;
    let cached: Vec<&str> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["flags"].as_u64().unwrap_or(0) & 64 != 0)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(cached, vec![expected[3].as_str()]);
    let only_cached = list(&sb, &cloud, json!({"prefix": p, "flags": "1"})).await;
    assert_eq!(names_of(&only_cached), vec![expected[3].clone()]);
    let one_level = list(
        &sb,
        &cloud,
        json!({"prefix": p, "flags": (1 << 11).to_string()}),
    )
    .await;
    let first = &one_level["entries"][0];
    assert_eq!(first["name"], format!("{p}sub/"));
    assert_eq!(first["flags"], 256);
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_through_to_the_cloud_and_deletes_remove_both() {
    for provider in PROVIDERS {
        let cloud = Cloud::of(provider);
        let sb = cluster(&cloud).await;
        let p = fresh_prefix("put");
        for (name, len) in [(format!("{p}small"), 1000), (format!("{p}large"), 9 << 20)] {
            let r = http()
                .put(object_url(&sb, &cloud, &name))
                .body(data(7, len))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{provider:?} {name}");
            let in_cloud = cloud.get(&name).await.unwrap();
            assert!(in_cloud == data(7, len), "{provider:?} {name}");
            assert_eq!(present(&sb, &cloud, &name).await.as_deref(), Some("true"));
            let r = http()
                .delete(object_url(&sb, &cloud, &name))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            assert!(matches!(
                cloud.direct().head(&name).await,
                Err(BackendError::NotFound(_))
            ));
            let r = http()
                .get(object_url(&sb, &cloud, &name))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 404);
        }
        sb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cold_gets_fetch_an_object_once_and_ranges_and_shards_work_cold() {
    let cloud = Cloud::of(Provider::Aws);
    let relay = Relay::start(&cloud.upstream()).await;
    let via = cloud.via(&relay.url);
    let sb = cluster(&via).await;
    let p = fresh_prefix("once");
    let name = format!("{p}big");
    let body = data(3, 6 << 20);
    cloud.put(&name, &body).await;
    // Twelve first readers at once: one bucket lookup and one object fetch in the cloud.
    let reads = (0..12).map(|_| {
        let url = object_url(&sb, &via, &name);
        async move { http().get(url).send().await.unwrap().bytes().await.unwrap() }
    });
    for got in futures::future::join_all(reads).await {
        assert!(got.as_ref() == &body[..]);
    }
    assert_eq!(
        relay.gets.load(Ordering::SeqCst),
        2,
        "one listing (the bucket's first use) and one GET for 12 readers"
    );

    // A range of a cold object, and a file inside a cold shard.
    let ranged_name = format!("{p}ranged");
    cloud.put(&ranged_name, &data(4, 5000)).await;
    let r = http()
        .get(object_url(&sb, &via, &ranged_name))
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data(4, 5000)[100..200]);
    let mut shard = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(11);
    header.set_mode(0o644);
    header.set_cksum();
    shard
        .append_data(&mut header, "in/file.txt", &b"hello shard"[..])
        .unwrap();
    let shard_name = format!("{p}s.tar");
    cloud.put(&shard_name, &shard.into_inner().unwrap()).await;
    let r = http()
        .get(format!(
            "{}&archpath=in/file.txt",
            object_url(&sb, &via, &shard_name)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"hello shard");
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_get_cut_mid_object_caches_nothing_and_an_unreachable_cloud_serves_the_cache() {
    let cloud = Cloud::of(Provider::Aws);
    let relay = Relay::start(&cloud.upstream()).await;
    let via = cloud.via(&relay.url);
    let sb = cluster(&via).await;
    let p = fresh_prefix("cut");
    let (cached, cut) = (format!("{p}cached"), format!("{p}cut"));
    cloud.put(&cached, &data(5, 1000)).await;
    cloud.put(&cut, &data(6, 4 << 20)).await;
    let r = http()
        .get(object_url(&sb, &via, &cached))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 1000);

    relay.cut_after.store(1 << 20, Ordering::SeqCst);
    let r = http()
        .get(object_url(&sb, &via, &cut))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "the client must see the transfer cut short"
    );
    // Nothing half-written is visible.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(present(&sb, &via, &cut).await.as_deref(), Some("false"));

    relay.stop();
    let r = http()
        .get(object_url(&sb, &via, &cached))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        200,
        "cached objects are served without the cloud"
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data(5, 1000)[..]);
    let started = Instant::now();
    let r = http()
        .get(object_url(&sb, &via, &cut))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    assert!(text.contains("aws-error"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getbatch_mixes_clouds_and_ais_buckets_in_order() {
    let clouds: Vec<Cloud> = PROVIDERS.iter().map(|p| Cloud::of(*p)).collect();
    let env = clouds
        .iter()
        .fold(moss_backend::CloudEnv::default(), |env, c| {
            env.merged(&c.env)
        });
    let sb = ClusterSandbox::builder().cloud(env).start().await;
    sb.api.create_bucket("local").await;
    sb.api.put("local", "l0", data(100, 700)).await;
    let p = fresh_prefix("batch");
    let mut entries = Vec::new();
    let mut expected = Vec::new();
    for (k, cloud) in clouds.iter().enumerate() {
        for i in 0..6u64 {
            let name = format!("{p}{i}");
            let bytes = data(k as u64 * 10 + i, 2000 + i as usize);
            cloud.put(&name, &bytes).await;
            entries.push(json!({"objname": name, "bucket": cloud.bucket, "provider": cloud.provider.scheme()}));
            expected.push((name, bytes));
        }
        // One of each cloud's objects is cached before the batch, the others are cold.
        let r = http()
            .get(object_url(&sb, cloud, &format!("{p}0")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        entries.push(json!({"objname": "l0", "bucket": "local", "provider": "ais"}));
        expected.push(("l0".into(), data(100, 700)));
    }
    let r = sb
        .api
        .batch(
            Some("local"),
            &json!({"in": entries, "mime": ".tar", "strm": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let members = read_tar(&r.bytes().await.unwrap());
    assert_eq!(members.len(), expected.len());
    for ((got_name, got), (name, bytes)) in members.iter().zip(&expected) {
        assert!(got_name.ends_with(name.as_str()), "{got_name} vs {name}");
        assert!(got == bytes, "{got_name}");
    }

    // A name no cloud has: strict mode fails the whole batch, coer gives a placeholder.
    let missing =
        json!({"objname": format!("{p}nope"), "bucket": clouds[0].bucket, "provider": "aws"});
    let r = sb
        .api
        .batch(
            Some("local"),
            &json!({"in": [missing.clone()], "mime": ".tar", "strm": true}),
        )
        .await;
    assert_eq!(r.status(), 404);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("aws-error[NotFound: s3://")
    );
    let r = sb
        .api
        .batch(Some("local"), &json!({"in": [missing, {"objname": "l0"}], "mime": ".tar", "coer": true, "strm": true}))
        .await;
    assert_eq!(r.status(), 200);
    let members = read_tar(&r.bytes().await.unwrap());
    assert_eq!(members.len(), 2);
    assert!(members[0].0.starts_with("__404__/"), "{}", members[0].0);
    assert_eq!(members[1].1, data(100, 700));
    sb.shutdown().await;
}

async fn job_wait(sb: &ClusterSandbox, id: &str) -> serde_json::Value {
    for _ in 0..200 {
        let r = http()
            .get(format!("{}/v1/cluster?what=status", sb.endpoint()))
            .json(&json!({"ID": id}))
            .send()
            .await
            .unwrap();
        let status: serde_json::Value = r.json().await.unwrap();
        if status["end_time"].as_u64().unwrap_or(0) != 0 {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id} did not finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_evict_and_delete_jobs_on_a_remote_bucket() {
    let cloud = Cloud::of(Provider::Aws);
    let sb = cluster(&cloud).await;
    let p = fresh_prefix("jobs");
    for i in 0..20 {
        cloud.put(&format!("{p}{i:02}"), &data(i, 500)).await;
    }
    let bucket_url = format!("{}/v1/buckets/{}?provider=aws", sb.endpoint(), cloud.bucket);
    let cached = || async {
        let page = list(&sb, &cloud, json!({"prefix": p, "flags": "1"})).await;
        names_of(&page)
    };
    let id = http()
        .post(&bucket_url)
        .json(&json!({"action": "prefetch-listrange", "value": {"template": format!("{p}1")}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status = job_wait(&sb, &id).await;
    assert_eq!(status["err"], "", "{status}");
    let want: Vec<String> = (10..20).map(|i| format!("{p}{i}")).collect();
    assert_eq!(cached().await, want);

    // A listed name the cloud lacks is an error of the job; the others are fetched.
    let id = http()
        .post(&bucket_url)
        .json(&json!({"action": "prefetch-listrange", "value": {"objnames": [format!("{p}00"), format!("{p}zz")]}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let status = job_wait(&sb, &id).await;
    assert!(
        status["err"].as_str().unwrap().contains(&format!("{p}zz")),
        "{status}"
    );
    assert_eq!(cached().await.len(), 11);

    let id = http()
        .delete(&bucket_url)
        .json(
            &json!({"action": "evict-listrange", "value": {"template": format!("{p}{{10..14}}")}}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(job_wait(&sb, &id).await["err"], "");
    assert_eq!(cached().await.len(), 6);
    assert_eq!(
        cloud
            .direct()
            .list_page(&ListReq {
                prefix: p.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .entries
            .len(),
        20,
        "evicting never touches the cloud"
    );

    let r = http()
        .delete(format!("{bucket_url}&keep_bck_md=true"))
        .json(&json!({"action": "evict-remote-bck"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(cached().await.is_empty());

    let id = http()
        .delete(&bucket_url)
        .json(&json!({"action": "delete-listrange", "value": {"template": format!("{p}0")}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(job_wait(&sb, &id).await["err"], "");
    let left = list(&sb, &cloud, json!({"prefix": p})).await;
    assert_eq!(
        names_of(&left),
        want,
        "delete by prefix removed the 0x names from the cloud"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_buckets_credentials_and_refused_keys_say_so() {
    let cloud = Cloud::of(Provider::Aws);
    let sb = cluster(&cloud).await;
    let r = http()
        .head(format!(
            "{}/v1/buckets/moss-no-such-bucket?provider=aws",
            sb.endpoint()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A provider this cluster has no credentials for.
    let r = http()
        .get(format!(
            "{}/v1/objects/some/obj?provider=azure",
            sb.endpoint()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let text = r.text().await.unwrap();
    assert!(text.contains("Azure backend is missing"), "{text}");
    assert!(text.contains("AZURE_STORAGE_ACCOUNT"), "{text}");
    sb.shutdown().await;

    // Azurite refuses a wrong key: the cloud's 403 reaches the client.
    let azure = Cloud::of(Provider::Azure);
    let wrong = Cloud {
        env: azure.env.clone().with("AZURE_STORAGE_KEY", "d3Jvbmcga2V5"),
        ..azure.clone()
    };
    let sb = cluster(&wrong).await;
    let r = http()
        .get(format!(
            "{}/v1/buckets/{}?provider=azure",
            sb.endpoint(),
            wrong.bucket
        ))
        .json(&json!({"action": "list", "value": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("azure-error["));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_validates_warm_gets_follows_the_cloud() {
    let cloud = Cloud::of(Provider::Aws);
    let sb = cluster(&cloud).await;
    let p = fresh_prefix("vwg");
    let name = format!("{p}obj");
    cloud.put(&name, b"first").await;
    let url = object_url(&sb, &cloud, &name);
    assert_eq!(
        http()
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"first"
    );
    let bucket_url = format!("{}/v1/buckets/{}?provider=aws", sb.endpoint(), cloud.bucket);
    let patch = |value: serde_json::Value| {
        http()
            .patch(&bucket_url)
            .json(&json!({"action": "set-bprops", "value": value}))
            .send()
    };
    let r = patch(json!({"versioning": {"validate_warm_get": true}}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http().head(&bucket_url).send().await.unwrap();
    let props: serde_json::Value =
        serde_json::from_str(r.headers()["ais-bucket-props"].to_str().unwrap()).unwrap();
    assert_eq!(props["versioning"]["validate_warm_get"], true);

    cloud.put(&name, b"second").await;
    assert_eq!(
        http()
            .get(&url)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"second"
    );
    let r = patch(json!({"mirror": {"enabled": true}})).await.unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "set-bprops: mirror.enabled: moss keeps mirror copies of ais:// buckets only, not of "
        ),
        "{message}"
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lru_above_the_high_watermark_evicts_only_cached_remote_objects() {
    let cloud = Cloud::of(Provider::Aws);
    let sb = cluster(&cloud).await;
    sb.api.create_bucket("keep").await;
    sb.api.put("keep", "mine", data(1, 4000)).await;
    let p = fresh_prefix("lru");
    for i in 0..6 {
        let name = format!("{p}{i}");
        cloud.put(&name, &data(i, 3000)).await;
        let r = http()
            .get(object_url(&sb, &cloud, &name))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().len(), 3000);
    }
    async fn cached(sb: &ClusterSandbox, cloud: &Cloud, p: &str) -> usize {
        names_of(&list(sb, cloud, json!({"prefix": p, "flags": "1"})).await).len()
    }
    assert_eq!(cached(&sb, &cloud, &p).await, 6);
    // Any real file system is above 1% used: everything evictable must go.
    sb.api.set_config("space.lowwm", "0").await;
    sb.api.set_config("space.highwm", "1").await;
    let r = http()
        .put(format!("{}/v1/cluster", sb.endpoint()))
        .json(&json!({"action": "start", "value": {"ID": "", "Kind": "lru"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.text().await.unwrap();
    assert_eq!(job_wait(&sb, id.trim_matches('"')).await["err"], "");
    assert_eq!(
        cached(&sb, &cloud, &p).await,
        0,
        "cached remote objects evicted"
    );
    assert_eq!(
        sb.api.get_bytes("keep", "mine").await.as_ref(),
        &data(1, 4000)[..]
    );
    // The cloud still has them: the next read fetches again.
    let r = http()
        .get(object_url(&sb, &cloud, &format!("{p}0")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &data(0, 3000)[..]);
    sb.shutdown().await;
}
