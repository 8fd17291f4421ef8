//! A node under a slowloris: thousands of connections that never finish their headers must not
//! lock out a normal client, and are closed by the node within its header-read timeout.
use std::time::Duration;

use moss_server::node::{HEADER_READ_TIMEOUT, connection_cap};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cluster::ProcCluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_connections_neither_lock_out_clients_nor_stay_open() {
    moss_server::node::raise_open_files_limit();
    let c = ProcCluster::start(1).await;
    c.api.create_bucket("b").await;
    let addr = c.api.endpoint.trim_start_matches("http://").to_string();
    // As many as this process may open (the node has the same limit): more than the node's
    // connection cap, so the cap's eviction is exercised too.
    let wanted = connection_cap() + 1000;
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
