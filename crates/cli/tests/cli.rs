//! End-to-end tests of the client commands: a real `moss local` cluster (3 targets) in a child
//! process, and the `moss` binary run once per command, as a user would.
//!
//! The binary is `$MOSS_BIN`, else `<target dir>/debug/moss` next to this test executable
//! (build it first: `cargo build -p moss`; `scripts/test.sh` does). Without it the tests fail.
#![allow(clippy::unwrap_used)]
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn moss_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("MOSS_BIN") {
        return Some(PathBuf::from(path));
    }
    // <target>/debug/deps/cli-<hash> → <target>/debug/moss
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("moss");
    candidate.is_file().then_some(candidate)
}

/// A source file of the client crates changed after `bin` was built, if any.
fn newer_source(bin: &Path) -> Option<PathBuf> {
    let built = std::fs::metadata(bin).and_then(|m| m.modified()).ok()?;
    let cli = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut pending = vec![cli.join("src"), cli.join("../client/src")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
            {
                return Some(path);
            }
        }
    }
    None
}

/// One `moss local` process with its data in a temporary directory.
struct Cluster {
    bin: PathBuf,
    child: Child,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(bin: &Path) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("cluster.log")).unwrap();
        let mut child = Command::new(bin)
            .args([
                "local",
                "--targets",
                "3",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.strip_prefix("endpoint: ") {
                    let endpoint = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(endpoint);
                }
            }
        });
        let endpoint = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(endpoint) => endpoint,
            Err(_) => {
                let _ = child.kill();
                let log =
                    std::fs::read_to_string(dir.path().join("cluster.log")).unwrap_or_default();
                panic!("cluster did not print its endpoint within 60s; log:\n{log}");
            }
        };
        assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");
        Cluster {
            bin: bin.to_path_buf(),
            child,
            endpoint,
            dir,
        }
    }

    /// Runs `moss --endpoint E <args>`.
    fn moss(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .arg("--endpoint")
            .arg(&self.endpoint)
            .args(args)
            .env("RUST_BACKTRACE", "0")
            .env_remove("AIS_ENDPOINT")
            .current_dir(self.dir.path())
            .output()
            .unwrap()
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.moss(args);
        assert!(
            out.status.success(),
            "moss {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.moss(args);
        assert!(
            !out.status.success(),
            "moss {args:?} succeeded unexpectedly:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Ctrl-C, then wait for a clean exit.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    assert!(status.success(), "cluster exited with {status}");
                    return;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("cluster did not stop within 20s of SIGINT");
                }
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Only reached when a test panicked before `stop`: never leave the cluster running.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Deterministic pseudo-random bytes.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

fn tar_members(data: impl Read) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(data);
    archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            entry.read_to_end(&mut body).unwrap();
            (name, body)
        })
        .collect()
}

fn make_shard(path: &Path, members: &[(&str, &[u8])]) {
    let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, data) in members {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, name, *data).unwrap();
    }
    builder.finish().unwrap();
}

/// `moss-client` calls beyond what the commands exercise: HEAD, ranges, archived files,
/// DELETE, the cluster map, typed config, and GetBatch as a stream of entries.
fn client_calls(endpoint: &str, small: &[u8]) {
    use futures::TryStreamExt;
    use moss_client::{Client, Error};
    use moss_types::moss::{MossIn, MossReq};

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::new(endpoint).unwrap();
        let props = client.head_object("b", "pre/sub/b.bin").await.unwrap();
        assert_eq!(props.size, small.len() as u64);
        assert!(props.checksum_type.is_some() && props.checksum_value.is_some());
        let range = client
            .get_range("b", "pre/sub/b.bin", 10, Some(5))
            .await
            .unwrap();
        assert_eq!(&range[..], &small[10..15]);
        let tail = client
            .get_range("b", "pre/sub/b.bin", 299_990, None)
            .await
            .unwrap();
        assert_eq!(&tail[..], &small[299_990..]);
        let member = client
            .get_archived("b", "shards/shard-0.tar", "x/2.jpg")
            .await
            .unwrap();
        assert_eq!(&member[..], b"two!");

        client.put_bytes("b", "tmp/del me", "x").await.unwrap();
        assert_eq!(&client.get("b", "tmp/del me").await.unwrap()[..], b"x");
        client.delete_object("b", "tmp/del me").await.unwrap();
        let gone = client.get("b", "tmp/del me").await.unwrap_err();
        assert!(gone.is_not_found(), "{gone}");
        let listed = client.list_all_objects("b", "pre/sub/").await.unwrap();
        assert_eq!(listed.len(), 2);

        let smap = client.smap().await.unwrap();
        assert_eq!(smap.tmap.len(), 3);
        let config = client.cluster_config().await.unwrap();
        assert_eq!(config.get_batch.max_soft_errs, 10);
        let stats = client.getbatch_stats().await.unwrap();
        assert_eq!(stats.len(), 3);
        assert!(stats.values().all(Option::is_some));

        for strm in [true, false] {
            let req = MossReq {
                entries: vec![
                    MossIn {
                        objname: "pre/sub/b.bin".into(),
                        start: 100,
                        length: 50,
                        opaque: "b3AtMQ==".into(),
                        ..Default::default()
                    },
                    MossIn {
                        objname: "shards/shard-0.tar".into(),
                        archpath: "x/1.jpg".into(),
                        ..Default::default()
                    },
                    MossIn {
                        objname: "nope".into(),
                        ..Default::default()
                    },
                ],
                mime: ".zip".into(),
                coer: true,
                strm,
                ..Default::default()
            };
            let items: Vec<_> = client.batch(req, Some("b")).try_collect().await.unwrap();
            assert_eq!(items.len(), 3);
            assert_eq!(&items[0].data[..], &small[100..150]);
            assert_eq!(items[0].out.size, 50);
            assert_eq!(items[0].out.opaque.as_deref(), Some(&b"op-1"[..]));
            assert_eq!(&items[1].data[..], b"one");
            assert_eq!(items[1].out.archpath, "x/1.jpg");
            assert!(items[2].is_missing(), "{:?}", items[2]);
        }
        let strict = MossReq {
            entries: vec![MossIn {
                objname: "nope".into(),
                ..Default::default()
            }],
            strm: true,
            ..Default::default()
        };
        let err: Error = client
            .batch(strict, Some("b"))
            .try_collect::<Vec<_>>()
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    });
}

/// The moss binary under test; a missing one fails the test (it must not pass untested).
fn binary() -> PathBuf {
    let bin =
        moss_bin().expect("no moss binary: build it first (`cargo build -p moss`) or set MOSS_BIN");
    if let Some(source) = newer_source(&bin) {
        eprintln!(
            "note: {} is older than {}: rebuild it (`cargo build -p moss`) to test the current code",
            bin.display(),
            source.display()
        );
    }
    bin
}

#[test]
fn cli_end_to_end() {
    let bin = binary();
    let started = Instant::now();
    let cluster = Cluster::start(&bin);
    eprintln!(
        "cluster up at {} in {:?}",
        cluster.endpoint,
        started.elapsed()
    );

    // Buckets.
    assert_eq!(cluster.ok(&["bucket", "create", "b"]), "created ais://b\n");
    let err = cluster.fails(&["bucket", "create", "ais://b"]);
    assert!(
        err.contains("bucket \"ais://b\" already exists (status 409)"),
        "{err}"
    );
    assert!(
        cluster
            .ok(&["bucket", "ls"])
            .lines()
            .any(|l| l == "ais://b")
    );

    // A directory upload: small files from memory, a 9 MiB one streamed.
    let src = cluster.path("src");
    std::fs::create_dir_all(src.join("sub/deep")).unwrap();
    let small = bytes(300_000, 1);
    let big = bytes(9 << 20, 2);
    std::fs::write(src.join("a.txt"), b"hello").unwrap();
    std::fs::write(src.join("space name.txt"), b"spaces ok").unwrap();
    std::fs::write(src.join("sub/b.bin"), &small).unwrap();
    std::fs::write(src.join("sub/deep/empty"), b"").unwrap();
    std::fs::write(src.join("big.bin"), &big).unwrap();
    let put = cluster.ok(&["put", src.to_str().unwrap(), "b/pre"]);
    assert!(put.starts_with("uploaded 5 of 5 files"), "{put}");

    let err = cluster.fails(&["put", src.join("a.txt").to_str().unwrap(), "nob/x"]);
    assert!(
        err.contains("bucket \"ais://nob\" does not exist (status 404)"),
        "{err}"
    );

    // Listing, with exact sizes.
    let listing = cluster.ok(&["ls", "b", "--bytes"]);
    let mut rows: Vec<(String, String)> = listing
        .lines()
        .skip(1)
        .map(|l| {
            let (name, size) = l.rsplit_once("  ").unwrap();
            (name.trim().to_string(), size.trim().to_string())
        })
        .collect();
    rows.sort();
    let want: Vec<(String, String)> = [
        ("pre/a.txt", "5"),
        ("pre/big.bin", "9437184"),
        ("pre/space name.txt", "9"),
        ("pre/sub/b.bin", "300000"),
        ("pre/sub/deep/empty", "0"),
    ]
    .iter()
    .map(|(n, s)| (n.to_string(), s.to_string()))
    .collect();
    assert_eq!(rows, want, "{listing}");
    assert!(listing.starts_with("NAME"), "{listing}");
    // A file bigger than a part goes up in parts, in parallel, and comes back byte for byte.
    let large = bytes((7 << 19) + 7, 3);
    std::fs::write(cluster.path("large.bin"), &large).unwrap();
    let put = cluster.ok(&[
        "put",
        cluster.path("large.bin").to_str().unwrap(),
        "b/mpu/",
        "--part-size",
        "1",
        "--parts-parallel",
        "3",
    ]);
    assert!(
        put.contains("as ais://b/mpu/large.bin") && put.contains("(4 parts)"),
        "{put}"
    );
    cluster.ok(&[
        "get",
        "b/mpu/large.bin",
        cluster.path("large.back").to_str().unwrap(),
    ]);
    assert!(std::fs::read(cluster.path("large.back")).unwrap() == large);
    cluster.ok(&["rm", "b", "mpu/large.bin"]);

    // Small pages: the same listing, assembled from 3 requests.
    let paged = cluster.ok(&["ls", "b", "--bytes", "--page-size", "2"]);
    let mut paged_names: Vec<&str> = paged.lines().skip(1).collect();
    let mut all_names: Vec<&str> = listing.lines().skip(1).collect();
    paged_names.sort();
    all_names.sort();
    assert_eq!(paged_names.len(), 5, "{paged}");
    assert_eq!(
        paged_names
            .iter()
            .map(|l| l.split_whitespace().last())
            .collect::<Vec<_>>(),
        all_names
            .iter()
            .map(|l| l.split_whitespace().last())
            .collect::<Vec<_>>()
    );
    let sub = cluster.ok(&["ls", "b/pre/sub/"]);
    assert_eq!(sub.lines().count(), 3, "{sub}");
    assert!(sub.contains("292.97KiB"), "{sub}");

    // Downloads: to a file, to a directory, to stdout; a missing object.
    let dest = cluster.path("b.out");
    cluster.ok(&["get", "b/pre/sub/b.bin", dest.to_str().unwrap()]);
    assert_eq!(std::fs::read(&dest).unwrap(), small);
    let downloads = cluster.path("downloads");
    std::fs::create_dir_all(&downloads).unwrap();
    cluster.ok(&["get", "b/pre/big.bin", downloads.to_str().unwrap()]);
    assert_eq!(std::fs::read(downloads.join("big.bin")).unwrap(), big);
    assert_eq!(
        cluster.ok(&["get", "b/pre/space name.txt", "-"]),
        "spaces ok"
    );
    let err = cluster.fails(&["get", "b/pre/nope", cluster.path("nope").to_str().unwrap()]);
    assert!(
        err.contains("ais://b/pre/nope does not exist (status 404)"),
        "{err}"
    );
    assert!(!cluster.path("nope").exists());
    assert!(!cluster.path(".nope.part").exists());

    // A shard, uploaded as a single file under a "directory" prefix.
    let shard = cluster.path("shard-0.tar");
    make_shard(&shard, &[("x/1.jpg", b"one"), ("x/2.jpg", b"two!")]);
    let put = cluster.ok(&["put", shard.to_str().unwrap(), "b/shards/"]);
    assert!(put.contains("as ais://b/shards/shard-0.tar"), "{put}");

    // GetBatch from a list file into a TAR: names, order and bytes as requested.
    let list = cluster.path("list.txt");
    std::fs::write(
        &list,
        "# objects and archived files\nb/pre/sub/b.bin\nb/shards/shard-0.tar/x/2.jpg\n\nb/pre/a.txt\nb/pre/big.bin\nb/shards/shard-0.tar/x/1.jpg\n",
    )
    .unwrap();
    let out_tar = cluster.path("out.tar");
    let wrote = cluster.ok(&[
        "batch",
        "--list",
        list.to_str().unwrap(),
        "-o",
        out_tar.to_str().unwrap(),
    ]);
    assert!(wrote.starts_with("wrote 5 entries"), "{wrote}");
    let members = tar_members(std::fs::File::open(&out_tar).unwrap());
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "b/pre/sub/b.bin",
            "b/shards/shard-0.tar/x/2.jpg",
            "b/pre/a.txt",
            "b/pre/big.bin",
            "b/shards/shard-0.tar/x/1.jpg"
        ]
    );
    assert_eq!(members[0].1, small);
    assert_eq!(members[1].1, b"two!");
    assert_eq!(members[2].1, b"hello");
    assert_eq!(members[3].1, big);
    assert_eq!(members[4].1, b"one");

    // Positional entries, default bucket, buffered mode, TGZ, object-name-only naming.
    let out_tgz = cluster.path("out.tgz");
    cluster.ok(&[
        "batch",
        "--default-bucket",
        "b",
        "--buffered",
        "--onob",
        "pre/a.txt",
        "shards/shard-0.tar/x/1.jpg",
        "-o",
        out_tgz.to_str().unwrap(),
    ]);
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&out_tgz).unwrap());
    let members = tar_members(gz);
    assert_eq!(
        members,
        [
            ("pre/a.txt".to_string(), b"hello".to_vec()),
            ("shards/shard-0.tar/x/1.jpg".to_string(), b"one".to_vec())
        ]
    );
    for (name, format) in [("out.zip", "zip"), ("out.tar.lz4", "lz4")] {
        let path = cluster.path(name);
        let wrote = cluster.ok(&[
            "batch",
            "b/pre/a.txt",
            "b/pre/sub/b.bin",
            "-o",
            path.to_str().unwrap(),
        ]);
        assert!(wrote.starts_with("wrote 2 entries"), "{format}: {wrote}");
    }

    // Extraction with missing items (continue on error): files written, placeholders reported.
    let extract = cluster.path("extracted");
    let out = cluster.moss(&[
        "batch",
        "b/pre/a.txt",
        "b/pre/missing.bin",
        "b/shards/shard-0.tar/x/2.jpg",
        "b/shards/shard-0.tar/x/404.jpg",
        "--coer",
        "--extract",
        extract.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.starts_with("extracted 2 entries"), "{stdout}");
    assert!(stderr.contains("2 missing"), "{stderr}");
    assert!(stderr.contains("b/pre/missing.bin"), "{stderr}");
    assert!(
        stderr.contains("b/shards/shard-0.tar/x/404.jpg"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read(extract.join("b/pre/a.txt")).unwrap(),
        b"hello"
    );
    assert_eq!(
        std::fs::read(extract.join("b/shards/shard-0.tar/x/2.jpg")).unwrap(),
        b"two!"
    );
    assert!(!extract.join("__404__").exists());

    // Buffered mode carries the server's error text for placeholders.
    let out = cluster.moss(&[
        "batch",
        "b/pre/a.txt",
        "b/pre/missing.bin",
        "--coer",
        "--buffered",
        "-o",
        cluster.path("buffered.tar").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ais://b/pre/missing.bin does not exist"),
        "{stderr}"
    );
    let names: Vec<String> =
        tar_members(std::fs::File::open(cluster.path("buffered.tar")).unwrap())
            .into_iter()
            .map(|(n, _)| n)
            .collect();
    assert_eq!(names, ["b/pre/a.txt", "__404__/b/pre/missing.bin"]);

    // Strict mode: a missing item fails the whole request, and no output file remains.
    let strict = cluster.path("strict.tar");
    let err = cluster.fails(&[
        "batch",
        "b/pre/a.txt",
        "b/pre/missing.bin",
        "-o",
        strict.to_str().unwrap(),
    ]);
    assert!(err.contains("does not exist (status 404)"), "{err}");
    assert!(!strict.exists() && !cluster.path(".strict.tar.part").exists());
    let strict_dir = cluster.path("strict-extract");
    let err = cluster.fails(&[
        "batch",
        "b/pre/missing.bin",
        "--extract",
        strict_dir.to_str().unwrap(),
    ]);
    assert!(err.contains("does not exist (status 404)"), "{err}");
    assert!(
        !strict_dir.exists(),
        "a failed extraction leaves no directory"
    );
    let err = cluster.fails(&[
        "batch",
        "b/a",
        "-o",
        cluster.path("x.rar").to_str().unwrap(),
    ]);
    assert!(err.contains("unknown filename extension"), "{err}");
    let err = cluster.fails(&[
        "batch",
        "nobucket/a",
        "-o",
        cluster.path("x.tar").to_str().unwrap(),
    ]);
    assert!(
        err.contains("bucket \"ais://nobucket\" does not exist (status 404)"),
        "{err}"
    );

    // Cluster configuration: set, then read back.
    let set = cluster.ok(&["config", "cluster", "get_batch.max_soft_errs=10"]);
    assert_eq!(set, "get_batch.max_soft_errs = 10\n");
    let config: serde_json::Value =
        serde_json::from_str(&cluster.ok(&["config", "cluster"])).unwrap();
    assert_eq!(config["get_batch"]["max_soft_errs"], 10);
    let err = cluster.fails(&["config", "cluster", "get_batch.nope=1"]);
    assert!(err.contains("(status 400)"), "{err}");
    let err = cluster.fails(&["config", "cluster", "noequals"]);
    assert!(err.contains("expected KEY=VALUE"), "{err}");

    // The batches above ran in get-batch jobs: `show job` prints each job's control lines and
    // its table, in the layout of `ais show job`.
    let jobs = cluster.ok(&["show", "job", "get-batch"]);
    assert!(jobs.starts_with("get-batch[gbt-"), "{jobs}");
    assert!(jobs.contains("pending:("), "{jobs}");
    assert!(jobs.contains("bewarm:on"), "{jobs}");
    for column in [
        "NODE", "ID", "KIND", "BUCKET", "OBJECTS", "BYTES", "START", "END", "STATE",
    ] {
        assert!(jobs.contains(column), "{jobs}");
    }
    assert!(jobs.contains("Running") || jobs.contains("Idle"), "{jobs}");

    // GetBatch statistics: one row per target, and the batches above were counted.
    let table = cluster.ok(&["show", "getbatch"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    for column in [
        "NODE",
        "REQS",
        "OBJS",
        "FILES",
        "PENDING",
        "SENDING",
        "AVG-WAIT",
        "SOFT-ERRS",
        "ERRS",
        "BEWARM",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    let reqs: u64 = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(reqs >= 6, "{table}");

    // Per-target counters from node_status: one row per target, the uploads above counted.
    let perf = cluster.ok(&["show", "performance"]);
    let lines: Vec<&str> = perf.lines().collect();
    assert_eq!(lines.len(), 4, "{perf}");
    assert!(
        lines[0].contains("PUT-BYTES") && lines[0].contains("DISK-USED"),
        "{perf}"
    );
    let puts: u64 = lines[1..]
        .iter()
        .map(|l| l.split_whitespace().nth(3).unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(puts >= 3, "{perf}");
    // A node's log, named as the table names it.
    let node = lines[1].split_whitespace().next().unwrap();
    let log = cluster.ok(&["log", "show", node]);
    assert!(log.contains("target started"), "{log}");
    let refused = cluster.moss(&["log", "show", node, "--severity", "bogus"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unknown log severity"),
        "{refused:?}"
    );

    // The library calls the commands do not use, against the same cluster.
    client_calls(&cluster.endpoint, &small);

    // Cleanup.
    assert_eq!(cluster.ok(&["bucket", "rm", "b"]), "destroyed ais://b\n");
    let err = cluster.fails(&["ls", "b"]);
    assert!(err.contains("does not exist (status 404)"), "{err}");
    cluster.stop();
    eprintln!("end-to-end run took {:?}", started.elapsed());
}

/// The job commands as a user runs them: copy, archive, delete by list, template and prefix,
/// rename, summary; jobs started, listed and stopped.
#[test]
fn cli_jobs_end_to_end() {
    let bin = binary();
    let cluster = Cluster::start(&bin);
    cluster.ok(&["bucket", "create", "src"]);
    let dir = cluster.path("upload");
    std::fs::create_dir_all(dir.join("train")).unwrap();
    for i in 0..40 {
        std::fs::write(
            dir.join(format!("train/{i:03}.bin")),
            bytes(100 + i, i as u64),
        )
        .unwrap();
    }
    cluster.ok(&["put", dir.to_str().unwrap(), "src"]);

    // A bucket copy (copy-bck) and a copy of a template (copy-listrange) with a prefix.
    let out = cluster.ok(&["cp", "src", "dst"]);
    assert!(
        out.starts_with("copied ais://src to ais://dst: 40 object(s)"),
        "{out}"
    );
    let out = cluster.ok(&[
        "cp",
        "src",
        "dst",
        "--template",
        "train/{000..009}.bin",
        "--prepend",
        "p/",
    ]);
    assert!(out.contains(": 10 object(s)"), "{out}");
    let listed = cluster.ok(&["ls", "dst", "--bytes"]);
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("p/train/")).count(),
        10,
        "{listed}"
    );
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("train/")).count(),
        40,
        "{listed}"
    );
    let dry = cluster.ok(&["cp", "src", "nowhere", "--dry-run"]);
    assert!(
        dry.starts_with("dry run: would copy ais://src to ais://nowhere: 40 object(s)"),
        "{dry}"
    );
    let err = cluster.fails(&["ls", "nowhere"]);
    assert!(err.contains("does not exist"), "{err}");

    // Archive in the order given, then read the shard back with the tar crate.
    let out = cluster.ok(&[
        "archive",
        "src",
        "src/shards/a.tar",
        "train/005.bin",
        "train/001.bin",
        "train/003.bin",
    ]);
    assert!(
        out.starts_with("archived: 3 member(s) in ais://src/shards/a.tar"),
        "{out}"
    );
    let shard = cluster.path("a.tar");
    cluster.ok(&["get", "src/shards/a.tar", shard.to_str().unwrap()]);
    let members = tar_members(std::fs::File::open(&shard).unwrap());
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["train/005.bin", "train/001.bin", "train/003.bin"]);
    assert_eq!(members[0].1, bytes(105, 5));
    let err = cluster.fails(&[
        "archive",
        "src",
        "src/x.tar",
        "train/001.bin",
        "missing.bin",
    ]);
    assert!(err.contains("missing.bin does not exist"), "{err}");

    // Deletes by list file, template and prefix, each reporting what it removed.
    let list = cluster.path("names.txt");
    std::fs::write(&list, "# two of them\ntrain/000.bin\n\ntrain/001.bin\n").unwrap();
    let out = cluster.ok(&["rm", "dst", "--list", list.to_str().unwrap()]);
    assert!(
        out.starts_with("deleted from ais://dst: 2 object(s)"),
        "{out}"
    );
    let out = cluster.ok(&["rm", "dst", "--template", "train/{010..019}.bin"]);
    assert!(
        out.starts_with("deleted from ais://dst: 10 object(s)"),
        "{out}"
    );
    let out = cluster.ok(&["rm", "dst", "--prefix", "p/"]);
    assert!(
        out.starts_with("deleted from ais://dst: 10 object(s)"),
        "{out}"
    );
    let err = cluster.fails(&["rm", "dst", "train/000.bin"]);
    assert!(
        err.contains("finished with errors") && err.contains("does not exist"),
        "{err}"
    );
    let err = cluster.fails(&["rm", "dst", "--template", "x{9..0}"]);
    assert!(err.contains("invalid 'bash' template"), "{err}");
    let err = cluster.fails(&["rm", "dst"]);
    assert!(err.contains("say what to delete"), "{err}");

    // Summary and rename.
    let summary = cluster.ok(&["bucket", "summary", "dst"]);
    assert!(
        summary
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("ais://dst  28 "),
        "{summary}"
    );
    let out = cluster.ok(&["bucket", "mv", "dst", "moved"]);
    assert!(out.starts_with("renamed ais://dst to ais://moved"), "{out}");
    let listed = cluster.ok(&["ls", "moved"]);
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("train/")).count(),
        28,
        "{listed}"
    );
    let err = cluster.fails(&["ls", "dst"]);
    assert!(err.contains("does not exist"), "{err}");

    // Jobs by hand: start one, list it, stop a running kind, refuse unknown kinds.
    let id = cluster.ok(&["job", "start", "lru"]);
    let id = id.trim();
    assert!(id.len() >= 9, "{id}");
    let out = cluster.ok(&["job", "wait", id]);
    assert!(out.contains(&format!("job {id} done")), "{out}");
    let shown = cluster.ok(&["show", "job", "lru"]);
    assert!(shown.contains(id) && shown.contains("Finished"), "{shown}");
    let all = cluster.ok(&["show", "job"]);
    for kind in [
        "copy-bck",
        "copy-listrange",
        "archive",
        "delete-listrange",
        "move-bck",
        "summary-bck",
    ] {
        assert!(all.contains(kind), "{kind} missing from:\n{all}");
    }
    cluster.ok(&["job", "stop", "copy-objects"]);
    let stopped = cluster.ok(&["show", "job", "copy-listrange"]);
    assert!(stopped.contains("Aborted by user"), "{stopped}");
    let err = cluster.fails(&["job", "start", "nonsense"]);
    assert!(
        err.contains("invalid xaction (job) kind") && err.contains("(status 400)"),
        "{err}"
    );
    let err = cluster.fails(&["job", "start", "copy-bck"]);
    assert!(err.contains("cannot be started"), "{err}");
    cluster.stop();
}
