//! AuthN on an in-process cluster (`moss local --auth`): tokens are required, revocations reach
//! the proxy, and users, roles and revocations survive a restart.
use std::time::{Duration, Instant};

use moss_testkit::ClusterSandbox;
use reqwest::StatusCode;

async fn login(http: &reqwest::Client, authn: &str, user: &str, pass: &str) -> reqwest::Response {
    http.post(format!("{authn}/v1/users/{user}"))
        .json(&serde_json::json!({ "password": pass }))
        .send()
        .await
        .unwrap()
}

async fn token(http: &reqwest::Client, authn: &str) -> String {
    let r = login(http, authn, "admin", "admin").await;
    assert_eq!(r.status(), StatusCode::OK);
    let body: serde_json::Value = r.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

async fn list_buckets(api: &moss_testkit::Api, token: Option<&str>) -> StatusCode {
    let mut req = api.http.get(format!("{}/v1/buckets", api.endpoint));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_required_revocations_and_users_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    let sandbox = ClusterSandbox::builder()
        .targets(2)
        .auth()
        .data_dir(data.clone())
        .start()
        .await;
    let authn = sandbox.local().authn.as_ref().unwrap().url.clone();
    let http = sandbox.api.http.clone();
    assert_eq!(
        list_buckets(&sandbox.api, None).await,
        StatusCode::UNAUTHORIZED
    );
    let revoked = token(&http, &authn).await;
    assert_eq!(
        list_buckets(&sandbox.api, Some(&revoked)).await,
        StatusCode::OK
    );
    // A second login in the same second: a distinct token that outlives the first one's logout.
    let kept = token(&http, &authn).await;
    assert_ne!(kept, revoked);
    let wrong = login(&http, &authn, "admin", "nope").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.text().await.unwrap().contains("invalid credentials"));

    let r = http
        .delete(format!("{authn}/v1/tokens"))
        .bearer_auth(&revoked)
        .json(&serde_json::json!({ "token": revoked }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(10);
    while list_buckets(&sandbox.api, Some(&revoked)).await != StatusCode::UNAUTHORIZED {
        assert!(
            Instant::now() < deadline,
            "revocation never reached the proxy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        list_buckets(&sandbox.api, Some(&kept)).await,
        StatusCode::OK
    );
    sandbox.shutdown().await;

    let sandbox = ClusterSandbox::builder()
        .targets(2)
        .auth()
        .data_dir(data)
        .start()
        .await;
    let authn = sandbox.local().authn.as_ref().unwrap().url.clone();
    assert_eq!(
        list_buckets(&sandbox.api, Some(&revoked)).await,
        StatusCode::UNAUTHORIZED,
        "a revoked token must stay revoked after a restart"
    );
    let fresh = token(&sandbox.api.http, &authn).await;
    assert_eq!(
        list_buckets(&sandbox.api, Some(&fresh)).await,
        StatusCode::OK
    );
    sandbox.shutdown().await;
}
