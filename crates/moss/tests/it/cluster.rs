//! Separate `moss` processes: membership, keepalives, a killed target, a late joiner, restarts.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use moss_testkit::{Api, ProcessNode, TestTls, data, free_port, read_tar};
use serde_json::json;

pub fn moss_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_moss"))
}

/// A proxy and `n` targets as separate processes, with fast keepalives.
pub struct ProcCluster {
    pub dir: tempfile::TempDir,
    pub proxy: ProcessNode,
    pub targets: Vec<ProcessNode>,
    pub api: Api,
    /// With TLS: the certificate every node serves and trusts.
    pub tls: Option<TestTls>,
}

impl ProcCluster {
    pub async fn start(n: usize) -> ProcCluster {
        Self::start_with(n, false).await
    }

    /// A cluster whose nodes serve HTTPS only, with one self-signed certificate (`tls`).
    pub async fn start_tls(n: usize) -> ProcCluster {
        Self::start_with(n, true).await
    }

    async fn start_with(n: usize, https: bool) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        let tls = https.then(|| TestTls::generate(&dir.path().join("tls")));
        let proxy = ProcessNode::proxy_with(
            &moss_bin(),
            free_port(),
            &dir.path().join("proxy"),
            tls.as_ref(),
        );
        let api = match &tls {
            Some(tls) => Api::with_ca(&proxy.url, &tls.cert),
            None => Api::new(&proxy.url),
        };
        api.set_config("keepalive.interval", "200ms").await;
        api.set_config("keepalive.timeout", "1s").await;
        let mut cluster = ProcCluster {
            dir,
            proxy,
            targets: Vec::new(),
            api,
            tls,
        };
        for _ in 0..n {
            cluster.add_target().await;
        }
        cluster.wait_targets(n).await;
        cluster
    }

    pub fn target_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("t{i}"))
    }

    /// The cluster secret the proxy created, which targets are given.
    pub fn secret(&self) -> PathBuf {
        self.dir.path().join("proxy").join("cluster.secret")
    }

    pub async fn add_target(&mut self) {
        let i = self.targets.len();
        let node = ProcessNode::target_with(
            &moss_bin(),
            free_port(),
            &self.proxy.url,
            &self.target_dir(i),
            Some(&self.secret()),
            self.tls.as_ref(),
        );
        self.targets.push(node);
    }

    /// Restarts target `i` (same port and data).
    pub fn restart_target(&mut self, i: usize) {
        let port: u16 = self.targets[i]
            .url
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        self.targets[i].kill();
        self.targets[i] = ProcessNode::target_with(
            &moss_bin(),
            port,
            &self.proxy.url,
            &self.target_dir(i),
            Some(&self.secret()),
            self.tls.as_ref(),
        );
    }

    /// Waits until the proxy's map has `n` targets and every live node holds that map version.
    pub async fn wait_targets(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let smap = self.api.smap().await;
            if smap.tmap.len() == n && self.all_nodes_at(smap.version).await {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not reach {n} targets: {:?}",
                smap.tmap.keys()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn all_nodes_at(&self, version: u64) -> bool {
        for t in self.targets.iter().filter(|t| t.child.is_some()) {
            let Ok(r) = self
                .api
                .http
                .get(format!("{}/v1/daemon?what=smap", t.url))
                .send()
                .await
            else {
                return false;
            };
            let Ok(smap) = r.json::<moss_types::smap::Smap>().await else {
                return false;
            };
            if smap.version != version {
                return false;
            }
        }
        true
    }
}

fn count_objects(dir: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&dir.join("mp/@ais/b/%ob"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_processes_survive_a_killed_target_and_a_late_joiner() {
    let mut c = ProcCluster::start(3).await;
    c.api.create_bucket("b").await;
    let objects: Vec<(String, Vec<u8>)> = (0..150)
        .map(|i| (format!("obj-{i:03}"), data(i, 2000 + i as usize)))
        .collect();
    c.api.put_many("b", objects.clone()).await;
    let entries: Vec<_> = objects.iter().map(|(n, _)| json!({"objname": n})).collect();
    let r = c
        .api
        .batch(Some("b"), &json!({"in": entries, "strm": true}))
        .await;
    assert_eq!(read_tar(&r.bytes().await.unwrap()).len(), 150);

    // A killed target is dropped from the map, and every node learns the new map.
    c.targets[2].kill();
    c.wait_targets(2).await;
    // Objects of the survivors stay readable (HRW moves only the dead node's keys).
    let smap = c.api.smap().await;
    assert_eq!(smap.tmap.len(), 2);

    // It comes back with the same identity and data.
    c.restart_target(2);
    c.wait_targets(3).await;
    for (name, bytes) in &objects {
        assert_eq!(
            c.api.get_bytes("b", name).await.as_ref(),
            &bytes[..],
            "{name} after restart"
        );
    }

    // A late joiner takes over its share; every object stays readable throughout.
    c.add_target().await;
    c.wait_targets(4).await;
    for (name, bytes) in &objects {
        assert_eq!(
            c.api.get_bytes("b", name).await.as_ref(),
            &bytes[..],
            "{name} right after the join"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let counts: Vec<usize> = (0..4).map(|i| count_objects(&c.target_dir(i))).collect();
        if counts[3] > 0 && counts.iter().sum::<usize>() == objects.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rebalance did not settle: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = c
        .api
        .batch(Some("b"), &json!({"in": entries, "strm": true}))
        .await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await;
    if body.is_err() || read_tar_checked(body.as_ref().unwrap()).is_none() {
        for t in &c.targets {
            eprintln!("--- {} ---\n{}", t.url, t.log_text());
        }
        panic!("final batch broken: {:?}", body.as_ref().map(|b| b.len()));
    }
    let got = read_tar(&body.unwrap());
    assert_eq!(got.len(), 150);
    for ((name, bytes), (got_name, got_bytes)) in objects.iter().zip(&got) {
        assert_eq!(
            (got_name.as_str(), got_bytes),
            (format!("b/{name}").as_str(), bytes)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moss_local_stops_on_ctrl_c_and_restarts_with_its_data() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let start = || {
        let mut child = Command::new(moss_bin())
            .args([
                "local",
                "--listen",
                "127.0.0.1:0",
                "--data",
                &dir.path().display().to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut endpoint = None;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("endpoint: ") {
                endpoint = Some(rest.split_whitespace().next().unwrap().to_string());
                break;
            }
        }
        (child, endpoint.expect("moss local printed no endpoint"))
    };
    let (mut child, endpoint) = start();
    let api = Api::new(&endpoint);
    api.create_bucket("b").await;
    api.put("b", "kept", b"across restarts".to_vec()).await;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "moss local exited with {exit}");
    let (mut child, endpoint) = start();
    let api = Api::new(&endpoint);
    assert_eq!(
        api.get_bytes("b", "kept").await.as_ref(),
        b"across restarts"
    );
    let _ = child.kill();
    let _ = child.wait();
}

fn read_tar_checked(data: &[u8]) -> Option<usize> {
    let mut archive = tar::Archive::new(data);
    let mut n = 0;
    for entry in archive.entries().ok()? {
        let mut entry = entry.ok()?;
        std::io::copy(&mut entry, &mut std::io::sink()).ok()?;
        n += 1;
    }
    Some(n)
}

fn list_body() -> String {
    json!({"action": "list", "value": {"props": "name,size"}}).to_string()
}

/// A hung target (SIGSTOP: its socket still accepts connections) must not hang listing: the proxy
/// stops waiting once it drops the target from the map, and answers 503 so the client retries
/// against the new map. Control-plane calls that push to every target stay bounded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_does_not_hang_on_a_stopped_target() {
    let c = ProcCluster::start(3).await;
    // Slow enough that the listing starts well before the proxy gives the target up. Frequent
    // keepalives, so that a loaded machine does not drop a healthy target by accident.
    c.api.set_config("keepalive.interval", "500ms").await;
    c.api.set_config("keepalive.timeout", "3s").await;
    c.api.create_bucket("b").await;
    let objects: Vec<(String, Vec<u8>)> = (0..30)
        .map(|i| (format!("o-{i:02}"), data(i, 100)))
        .collect();
    c.api.put_many("b", objects).await;
    let list_url = format!("{}/v1/buckets/b?provider=ais", c.api.endpoint);
    let list = || async {
        c.api
            .http
            .get(&list_url)
            .body(list_body())
            .send()
            .await
            .unwrap()
    };

    // The target about to stop must be in the map and serving, or the listing would rightly skip
    // it. (On a loaded machine a target can miss keepalives and rejoin.)
    let stopped_url = c.targets[1].url.clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let smap = c.api.smap().await;
        let member = smap.tmap.values().any(|t| t.url() == stopped_url);
        let r = list().await;
        if member && r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "target 1 never (re)joined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.targets[1].signal("STOP");
    let started = Instant::now();
    let r = list().await;
    let waited = started.elapsed();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(waited < Duration::from_secs(15), "listing took {waited:?}");
    let smap = c.api.smap().await;
    let members: Vec<&str> = smap.tmap.values().map(|t| t.url()).collect();
    assert_eq!(
        status, 503,
        "{text}; stopped {stopped_url}; map now {members:?}"
    );
    assert!(
        text.contains("removed from the cluster map"),
        "message should say why: {text}"
    );

    // Once the map has changed, listing answers from the remaining targets. (Not `wait_targets`:
    // it asks every process, and the stopped one would never answer.)
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.api.smap().await.tmap.len() != 2 {
        assert!(Instant::now() < deadline, "stopped target never dropped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = list().await;
    assert_eq!(r.status(), 200);

    // Creating a bucket (a push to every target in the map) stays quick.
    let started = Instant::now();
    c.api.create_bucket("c").await;
    assert!(started.elapsed() < Duration::from_secs(10));
    c.targets[1].signal("CONT");
    c.wait_targets(3).await;
}

#[test]
fn local_refuses_a_cluster_without_targets() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(moss_bin())
        .args([
            "local",
            "--targets",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("at least one target"), "{stderr}");
}

/// Runs the `moss` CLI against `endpoint` (off the async threads that serve the cluster).
pub async fn moss_cli(endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(moss_bin());
    command.arg("--endpoint").arg(endpoint).args(args);
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_prints_one_config_key_and_names_a_missing_download_directory() {
    let sb = moss_testkit::ClusterSandbox::builder()
        .targets(1)
        .config("get_batch.max_soft_errs", "17")
        .start()
        .await;
    let endpoint = sb.endpoint().to_string();
    let out = moss_cli(&endpoint, &["config", "cluster", "get_batch.max_soft_errs"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "get_batch.max_soft_errs = 17"
    );
    let out = moss_cli(&endpoint, &["config", "cluster", "get_batch.nope"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown configuration key"));

    sb.api.create_bucket("b1").await;
    sb.api.put("b1", "x", b"payload".to_vec()).await;
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("{}/newdir/", dir.path().display());
    let out = moss_cli(&endpoint, &["get", "b1/x", &missing]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("directory {missing} does not exist")),
        "{stderr}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Into an existing directory it lands under the object's name.
    let out = moss_cli(
        &endpoint,
        &["get", "b1/x", &format!("{}/", dir.path().display())],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"payload");
    sb.shutdown().await;
}
