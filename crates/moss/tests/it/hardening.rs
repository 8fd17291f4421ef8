//! A node under a slowloris: thousands of connections that never finish their headers must not
//! lock out a normal client, and are closed by the node within its header-read timeout.
use std::time::Duration;

use moss_server::node::{HEADER_READ_TIMEOUT, connection_cap, open_files_limit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::ProcCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_connections_neither_lock_out_clients_nor_stay_open() {
    moss_server::node::raise_open_files_limit();
    let c = ProcCluster::start(1).await;
    c.api.create_bucket("b").await;
    let addr = c.api.endpoint.trim_start_matches("http://").to_string();
    // More than the node's connection cap (so its eviction is exercised too), as far as this
    // process's own open-files limit allows (the node has the same limit).
    let wanted = (connection_cap() + 1000).min(open_files_limit().saturating_sub(256));
    let mut attackers = Vec::with_capacity(wanted);
    for chunk in 0..wanted.div_ceil(500) {
        let opened = futures::future::join_all((0..500.min(wanted - chunk * 500)).map(|_| {
            let addr = addr.clone();
            async move {
                let mut s = TcpStream::connect(&addr).await.ok()?;
                s.write_all(b"GET /v1/health HTTP/1.1\r\nHost: moss\r\nX-Slow: ")
                    .await
                    .ok()?;
                Some(s)
            }
        }))
        .await;
        attackers.extend(opened.into_iter().flatten());
    }
    assert!(
        attackers.len() > connection_cap(),
        "opened only {} half-open connections",
        attackers.len()
    );
    // A normal client is served while they hang: an object goes in and comes back.
    let client = moss_testkit::http();
    let put = client
        .put(c.api.object_url("b", "during-attack"))
        .body("still served")
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("a normal PUT is served during the attack");
    assert_eq!(put.status(), 200);
    let got = client
        .get(c.api.object_url("b", "during-attack"))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("a normal GET is served during the attack");
    assert_eq!(got.text().await.unwrap(), "still served");
    // After the header-read timeout the node closes every half-open connection: a read sees the
    // end of the stream (or a reset). A node under this load may accept the last of them some
    // seconds late (their timer starts at accept), hence the grace before giving up.
    let attack_ended = std::time::Instant::now();
    tokio::time::sleep(HEADER_READ_TIMEOUT).await;
    let mut open = attackers;
    loop {
        let checked = futures::future::join_all(open.into_iter().map(|mut s| async move {
            let mut buf = [0u8; 512];
            let waiting = tokio::time::timeout(Duration::from_millis(500), s.read(&mut buf))
                .await
                .is_err();
            waiting.then_some(s)
        }))
        .await;
        open = checked.into_iter().flatten().collect();
        if open.is_empty() || attack_ended.elapsed() > HEADER_READ_TIMEOUT + Duration::from_secs(30)
        {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!(
        "half-open connections all closed {:?} after the attack ended",
        attack_ended.elapsed()
    );
    assert_eq!(open.len(), 0, "half-open connections the node left open");
    assert_eq!(
        c.api.get_bytes("b", "during-attack").await.as_ref(),
        b"still served"
    );
}

/// Knowing a node id (it is in the public cluster map) is not enough to act as a cluster member:
/// internal writes, metasync and keepalives need a token under the cluster secret, and a target
/// without the secret cannot join.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_holders_of_the_cluster_secret_act_as_cluster_members() {
    let mut c = ProcCluster::start(1).await;
    c.api.create_bucket("b").await;
    let smap = c.api.smap().await;
    let proxy_id = smap.proxy_si.daemon_id.clone();
    let (tid, target) = smap.tmap.iter().next().unwrap();
    let target_url = target.url().to_string();
    let http = moss_testkit::http();
    for token in [None, Some("1700000000.deadbeef"), Some("garbage")] {
        let mut put = http
            .put(format!(
                "{target_url}/v1/internal/objects/b/planted?provider=ais"
            ))
            .header("ais-caller-id", &proxy_id)
            .body("not from the cluster");
        if let Some(token) = token {
            put = put.header("ais-intra-auth", token);
        }
        let r = put.send().await.unwrap();
        assert_eq!(r.status(), 403, "internal PUT with token {token:?}");
        let forged = http
            .put(format!("{target_url}/v1/metasync"))
            .header("ais-caller-id", &proxy_id)
            .header("ais-intra-auth", token.unwrap_or(""))
            .body(r#"{"smap":{},"bmd":{},"config":{}}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), 403, "metasync with token {token:?}");
    }
    assert_eq!(c.api.get("b", "planted").await.status(), 404);
    assert_eq!(c.api.smap().await.version, smap.version);
    let keepalive = http
        .post(format!("{}/v1/cluster/keepalive/{tid}", c.api.endpoint))
        .header("ais-caller-id", tid.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(keepalive.status(), 403);
    // A target started without the secret is refused, and says why in its log.
    let dir = c.dir.path().join("intruder");
    c.targets.push(moss_testkit::ProcessNode::target(
        &crate::cluster::moss_bin(),
        moss_testkit::free_port(),
        &c.proxy.url,
        &dir,
        None,
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(c.api.smap().await.tmap.len(), 1, "the intruder joined");
    let log = c.targets[1].log_text();
    assert!(log.contains("registration refused"), "{log}");
    // The cluster works as before.
    c.api.put("b", "legit", "ok").await;
    assert_eq!(c.api.get_bytes("b", "legit").await.as_ref(), b"ok");
}
