//! TLS on separate `moss` processes: every node serves HTTPS with one self-signed certificate and
//! trusts it in its peers; clients with the certificate as CA read and write (also through the
//! CLI), clients without it and plain-HTTP clients are refused and told why.
use std::path::Path;
use std::time::{Duration, Instant};

use moss_testkit::{data, raw_request, read_tar};
use serde_json::json;

use crate::cluster::{ProcCluster, moss_bin};

/// Runs the `moss` CLI against `endpoint` with exactly these TLS variables (none inherited).
async fn cli(endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(moss_bin());
    command
        .arg("--endpoint")
        .arg(endpoint)
        .args(args)
        .env_remove("AIS_CLIENT_CA")
        .env_remove("AIS_SKIP_VERIFY_CRT")
        .envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// An error with all its causes, as one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// A connection that starts a TLS record and never finishes its ClientHello (a slowloris of
/// handshakes). Returns how long the node kept it open.
async fn half_open_handshake(addr: String) -> Duration {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let started = Instant::now();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(40), tcp.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "half-open handshake: {closed:?}"
    );
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn https_cluster_serves_put_get_and_getbatch_and_refuses_untrusted_clients() {
    let c = ProcCluster::start_tls(3).await;
    let tls = c.tls.clone().unwrap();
    let ca = tls.cert.display().to_string();
    let proxy_addr = c.proxy.addr();
    // Opened first, checked last: it must be closed by the handshake timeout meanwhile.
    let slowloris = tokio::spawn(half_open_handshake(proxy_addr.clone()));

    // Every node advertises https, so redirects and intra-cluster calls use it.
    assert!(c.proxy.url.starts_with("https://"), "{}", c.proxy.url);
    let smap = c.api.smap().await;
    assert_eq!(smap.tmap.len(), 3);
    for t in smap.tmap.values() {
        assert!(t.url().starts_with("https://"), "{}", t.url());
    }

    // PUT and GET through the proxy's redirect to the owning targets.
    c.api.create_bucket("tls").await;
    let objects: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| (format!("obj-{i:02}"), data(i, 1000 + 997 * i as usize)))
        .collect();
    c.api.put_many("tls", objects.clone()).await;
    for (name, bytes) in &objects {
        assert_eq!(
            &c.api.get_bytes("tls", name).await[..],
            &bytes[..],
            "{name}"
        );
    }

    // GetBatch: the designated target pulls the other targets' items over TLS sender streams.
    let entries: Vec<_> = objects.iter().map(|(n, _)| json!({"objname": n})).collect();
    let r = c
        .api
        .batch(Some("tls"), &json!({"in": entries, "strm": true}))
        .await;
    assert_eq!(r.status(), 200);
    let members = read_tar(&r.bytes().await.unwrap());
    let expected: Vec<(String, Vec<u8>)> = objects
        .iter()
        .map(|(n, b)| (format!("tls/{n}"), b.clone()))
        .collect();
    assert_eq!(members, expected);

    // The CLI with the SDK's variables: put, ls, get and batch.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hello.bin");
    std::fs::write(&file, data(99, 70_000)).unwrap();
    let with_ca = [("AIS_CLIENT_CA", ca.as_str())];
    let out = cli(
        &c.proxy.url,
        &with_ca,
        &["put", &file.display().to_string(), "tls/cli/hello.bin"],
    )
    .await;
    assert!(out.status.success(), "put: {}", text(&out.stderr));
    let out = cli(&c.proxy.url, &with_ca, &["ls", "tls/cli/"]).await;
    assert!(out.status.success(), "ls: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("cli/hello.bin"),
        "{}",
        text(&out.stdout)
    );
    let got = dir.path().join("got.bin");
    let out = cli(
        &c.proxy.url,
        &with_ca,
        &["get", "tls/cli/hello.bin", &got.display().to_string()],
    )
    .await;
    assert!(out.status.success(), "get: {}", text(&out.stderr));
    assert_eq!(std::fs::read(&got).unwrap(), data(99, 70_000));
    let archive = dir.path().join("batch.tar");
    let out = cli(
        &c.proxy.url,
        &with_ca,
        &[
            "batch",
            "tls/cli/hello.bin",
            "tls/obj-03",
            "-o",
            &archive.display().to_string(),
        ],
    )
    .await;
    assert!(out.status.success(), "batch: {}", text(&out.stderr));
    assert_eq!(
        read_tar(&std::fs::read(&archive).unwrap()),
        vec![
            ("tls/cli/hello.bin".to_string(), data(99, 70_000)),
            ("tls/obj-03".to_string(), objects[3].1.clone()),
        ]
    );

    // Without the CA the certificate is unknown: refused, and the error says so.
    let out = cli(&c.proxy.url, &[], &["ls", "tls"]).await;
    assert!(!out.status.success(), "ls without CA succeeded");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("invalid peer certificate") && stderr.contains("UnknownIssuer"),
        "{stderr}"
    );
    let err = moss_testkit::http()
        .get(format!("{}/v1/daemon?what=smap", c.proxy.url))
        .send()
        .await
        .unwrap_err();
    let err = chain(&err);
    assert!(err.contains("invalid peer certificate"), "{err}");
    // ... unless verification is skipped on purpose.
    let skip = [("AIS_SKIP_VERIFY_CRT", "true")];
    let out = cli(&c.proxy.url, &skip, &["ls", "tls/cli/"]).await;
    assert!(
        out.status.success(),
        "ls skip-verify: {}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("cli/hello.bin"));

    // Plain HTTP to an https port (proxy and target): a 400 that says what is wrong.
    for addr in [proxy_addr.clone(), c.targets[0].addr()] {
        let (status, body) = raw_request(
            &format!("http://{addr}"),
            "GET",
            "/v1/daemon?what=smap",
            b"",
        )
        .await;
        assert_eq!(status, 400, "{addr}: {body}");
        assert!(
            body.contains("client sent an HTTP request to an HTTPS server"),
            "{body}"
        );
    }

    // The half-open handshake was closed by the header-read timeout (20 s), not before.
    let held = slowloris.await.unwrap();
    assert!(
        held >= Duration::from_secs(19) && held <= Duration::from_secs(30),
        "half-open handshake held for {held:?}"
    );
    // And the node still serves.
    assert_eq!(c.api.smap().await.tmap.len(), 3);
    check_key_mode(&tls.key);
}

fn check_key_mode(key: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{} has mode {mode:o}", key.display());
}

#[test]
fn local_tls_prints_an_https_endpoint_and_how_to_connect() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(moss_bin())
        .args([
            "local",
            "--tls",
            "--targets",
            "1",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let done = line.contains("press Ctrl-C");
            lines.push(line);
            if done {
                break;
            }
        }
        let _ = tx.send(lines);
    });
    let lines = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let printed = lines.join("\n");
    let cert = std::fs::canonicalize(dir.path().join("tls/cert.pem")).unwrap();
    assert!(
        printed.contains("endpoint: https://127.0.0.1:"),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("ca_cert=\"{}\"", cert.display())),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("AIS_CLIENT_CA={}", cert.display())),
        "{printed}"
    );
    check_key_mode(&dir.path().join("tls/key.pem"));
}
