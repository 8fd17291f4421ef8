//! Files inside shards made by other tools (Python tarfile/zipfile, GNU tar, the lz4 CLI), read
//! through GetBatch and through `GET ?archpath=`.
use std::path::Path;
use std::process::Command;

use moss_testkit::{Api, ClusterSandbox, data};
use serde_json::{Value, json};

use crate::batch::read_archive;

/// Members of every generated shard: nested paths, a zero-size file, a long name.
fn members(shard: usize) -> Vec<(String, Vec<u8>)> {
    let long = format!("deep/{}/file.bin", "d".repeat(120));
    vec![
        ("a.txt".to_string(), data(shard as u64, 1500)),
        ("x/y/z.jpg".to_string(), data(1000 + shard as u64, 20_000)),
        ("empty.bin".to_string(), Vec::new()),
        (long, data(2000 + shard as u64, 700)),
        ("ünï/cödé.wav".to_string(), data(3000 + shard as u64, 3333)),
    ]
}

/// Writes a shard with an external tool; returns its bytes.
fn make_shard(dir: &Path, kind: &str, shard: usize) -> Vec<u8> {
    let src = dir.join(format!("src-{kind}-{shard}"));
    for (name, bytes) in members(shard) {
        let path = src.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let out = dir.join(format!("out-{kind}-{shard}"));
    let names: Vec<String> = members(shard).into_iter().map(|(n, _)| n).collect();
    let python = |mode: &str, module: &str| {
        let script = format!(
            "import sys, {module}\nnames = sys.argv[3:]\n{body}",
            body = match module {
                "tarfile" => format!(
                    "with tarfile.open(sys.argv[1], '{mode}', format=tarfile.PAX_FORMAT) as t:\n    for n in names: t.add(sys.argv[2] + '/' + n, arcname=n)\n"
                ),
                _ => format!(
                    "with zipfile.ZipFile(sys.argv[1], 'w', compression=zipfile.{mode}) as z:\n    for n in names: z.write(sys.argv[2] + '/' + n, arcname=n)\n"
                ),
            }
        );
        let status = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&out)
            .arg(&src)
            .args(&names)
            .status()
            .unwrap();
        assert!(status.success(), "python {module} {mode}");
    };
    match kind {
        "tar" => python("w", "tarfile"),
        "tgz" => python("w:gz", "tarfile"),
        "zip-stored" => python("ZIP_STORED", "zipfile"),
        "zip-deflated" => python("ZIP_DEFLATED", "zipfile"),
        "gnutar" => {
            let status = Command::new("tar")
                .arg("--format=gnu")
                .arg("-cf")
                .arg(&out)
                .arg("-C")
                .arg(&src)
                .args(&names)
                .status()
                .unwrap();
            assert!(status.success());
        }
        "lz4" => {
            let tar = dir.join(format!("plain-{shard}.tar"));
            let status = Command::new("tar")
                .arg("-cf")
                .arg(&tar)
                .arg("-C")
                .arg(&src)
                .args(&names)
                .status()
                .unwrap();
            assert!(status.success());
            let status = Command::new("lz4")
                .arg("-q")
                .arg("-f")
                .arg(&tar)
                .arg(&out)
                .status()
                .expect("the lz4 tool is needed (scripts/test.sh installs it)");
            assert!(status.success());
        }
        other => panic!("unknown shard kind {other}"),
    }
    std::fs::read(out).unwrap()
}

const KINDS: [(&str, &str); 6] = [
    ("tar", ".tar"),
    ("gnutar", ".tar"),
    ("tgz", ".tgz"),
    ("zip-stored", ".zip"),
    ("zip-deflated", ".zip"),
    ("lz4", ".tar.lz4"),
];

/// Puts 4 shards of every kind into bucket `s`; returns (object name, shard index) pairs.
async fn load_shards(api: &Api, dir: &Path) -> Vec<(String, usize)> {
    api.create_bucket("s").await;
    let mut shards = Vec::new();
    for (k, (kind, ext)) in KINDS.iter().enumerate() {
        for j in 0..4 {
            let shard = k * 10 + j;
            let name = format!("shard-{kind}-{j}{ext}");
            api.put("s", &name, make_shard(dir, kind, shard)).await;
            shards.push((name, shard));
        }
    }
    shards
}

async fn fetch(api: &Api, body: Value) -> Vec<(String, Vec<u8>)> {
    let mime = body["mime"].as_str().unwrap_or(".tar").to_string();
    let r = api.batch(Some("s"), &body).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let bytes = r.bytes().await.unwrap();
    if body["strm"] == true {
        read_archive(&mime, &bytes)
    } else {
        let ct = "multipart/mixed; boundary=";
        let boundary_end = bytes.iter().position(|&b| b == b'\r').unwrap();
        let boundary = String::from_utf8(bytes[2..boundary_end].to_vec()).unwrap();
        let (_, archive) = moss_testkit::split_multipart(&format!("{ct}{boundary}"), &bytes);
        read_archive(&mime, &archive)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_foreign_shards_come_back_in_every_output_format() {
    let dir = tempfile::tempdir().unwrap();
    let sb = ClusterSandbox::builder()
        .config("get_batch.max_soft_errs", "1000")
        .start()
        .await;
    let shards = load_shards(&sb.api, dir.path()).await;
    // Every member of every shard, interleaved across shards, with a missing member every third.
    let mut entries = Vec::new();
    let mut expect = Vec::new();
    for m in 0..5 {
        for (name, shard) in &shards {
            let (member, bytes) = members(*shard)[m].clone();
            entries.push(json!({"objname": name, "archpath": member}));
            expect.push((format!("s/{name}/{member}"), bytes));
            if entries.len() % 3 == 0 {
                entries.push(json!({"objname": name, "archpath": "nope.nonexistent"}));
                expect.push((format!("__404__/s/{name}/nope.nonexistent"), Vec::new()));
            }
        }
    }
    for mime in [".tar", ".tgz", ".zip", ".tar.lz4"] {
        for strm in [true, false] {
            let got = fetch(
                &sb.api,
                json!({"in": entries, "mime": mime, "strm": strm, "coer": true}),
            )
            .await;
            assert_eq!(got.len(), expect.len(), "{mime} strm={strm}");
            for (k, (g, e)) in got.iter().zip(&expect).enumerate() {
                assert_eq!(g, e, "{mime} strm={strm} entry {k}");
            }
        }
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archpath_get_ranges_and_strict_misses() {
    let dir = tempfile::tempdir().unwrap();
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    let shards = load_shards(api, dir.path()).await;
    for (name, shard) in &shards {
        let (member, bytes) = members(*shard)[1].clone();
        // GET ?archpath= (what Lhotse's fallback and the SDK's ArchiveConfig send), leading '/' ignored.
        for path in [member.clone(), format!("/{member}")] {
            let url = format!(
                "{}&archpath={}&archregx=",
                api.object_url("s", name),
                path.replace('/', "%2F")
            );
            let r = api.http.get(&url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{name} {path}");
            assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[..], "{name}");
        }
        let url = format!(
            "{}&archpath={}",
            api.object_url("s", name),
            member.replace('/', "%2F")
        );
        let r = api
            .http
            .get(&url)
            .header("range", "bytes=100-199")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 206);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &bytes[100..200]);
        let r = api
            .http
            .get(format!(
                "{}&archpath=missing.txt",
                api.object_url("s", name)
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains(&format!("missing.txt in ais://s/{name} does not exist"))
        );
    }
    // Ranges on archived files inside GetBatch.
    let (name, shard) = &shards[0];
    let (member, bytes) = members(*shard)[1].clone();
    let body = json!({"in":[{"objname": name, "archpath": member, "start": 10, "length": 90},
                            {"objname": name, "archpath": member, "start": 19_000, "length": -1}], "strm": true});
    let got = fetch(api, body).await;
    assert_eq!(got[0].1, bytes[10..100]);
    assert_eq!(got[1].1, bytes[19_000..]);
    // Strict mode: a missing member or shard is a 404 and no archive.
    for entry in [
        json!({"objname": name, "archpath": "nope"}),
        json!({"objname": "no-shard.tar", "archpath": "a.txt"}),
    ] {
        let r = api
            .batch(Some("s"), &json!({"in":[entry], "strm": true}))
            .await;
        assert_eq!(r.status(), 404);
        assert!(r.text().await.unwrap().contains("does not exist"));
    }
    // With coer, a missing shard's placeholder keeps the archpath in its name.
    let got = fetch(
        api,
        json!({"in":[{"objname":"no-shard.tar","archpath":"a.txt"}], "strm": true, "coer": true}),
    )
    .await;
    assert_eq!(
        got,
        vec![("__404__/s/no-shard.tar/a.txt".to_string(), Vec::new())]
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_comes_from_archmime_then_extension_then_magic() {
    let dir = tempfile::tempdir().unwrap();
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("s").await;
    let tgz = make_shard(dir.path(), "tgz", 1);
    let zip = make_shard(dir.path(), "zip-deflated", 2);
    api.put("s", "noext-gz", tgz.clone()).await;
    api.put("s", "noext-zip", zip).await;
    api.put("s", "misnamed.bin", tgz).await;
    let body = json!({"in":[{"objname":"noext-gz","archpath":"a.txt"},{"objname":"noext-zip","archpath":"a.txt"}], "strm": true});
    let got = fetch(api, body).await;
    assert_eq!(got[0].1, members(1)[0].1);
    assert_eq!(got[1].1, members(2)[0].1);
    let url = format!(
        "{}&archpath=a.txt&archmime=application%2Fgzip",
        api.object_url("s", "misnamed.bin")
    );
    let r = api.http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &members(1)[0].1[..]);
    api.put("s", "plain.txt", b"not an archive".to_vec()).await;
    let r = api
        .http
        .get(format!(
            "{}&archpath=a.txt",
            api.object_url("s", "plain.txt")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("unrecognized or unsupported file format")
    );
    sb.shutdown().await;
}

/// Reads a counter summed over all targets.
async fn counter(sb: &ClusterSandbox, name: &str) -> u64 {
    crate::batch::gauge(sb, name).await as u64
}

/// Shards stay open between requests, and a kept shard never outlives a change: after an
/// overwrite, a delete, or a destroyed and re-created bucket, the next request sees the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_open_shards_see_overwrites_deletes_and_destroyed_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("s").await;
    let kinds = [("k.tar", "tar"), ("k.tgz", "tgz"), ("k.zip", "zip-stored")];
    let put_all = |seed: usize| {
        let dir = dir.path().to_path_buf();
        async move {
            for (name, kind) in kinds {
                api.put("s", name, make_shard(&dir, kind, seed)).await;
            }
        }
    };
    let request = json!({"in": kinds.iter().flat_map(|(name, _)| [
        json!({"objname": name, "archpath": "a.txt"}),
        json!({"objname": name, "archpath": "x/y/z.jpg"}),
    ]).collect::<Vec<_>>(), "strm": true});
    let expect = |seed: usize| -> Vec<Vec<u8>> {
        let m = members(seed);
        kinds
            .iter()
            .flat_map(|_| [m[0].1.clone(), m[1].1.clone()])
            .collect()
    };
    let bytes_of =
        |got: Vec<(String, Vec<u8>)>| -> Vec<Vec<u8>> { got.into_iter().map(|(_, b)| b).collect() };

    put_all(1).await;
    assert_eq!(bytes_of(fetch(api, request.clone()).await), expect(1));
    let reused = counter(&sb, "moss_target_shard_open_reused_count").await;
    assert_eq!(bytes_of(fetch(api, request.clone()).await), expect(1));
    assert_eq!(
        counter(&sb, "moss_target_shard_open_reused_count").await,
        reused + 3,
        "the second request reuses all three open shards"
    );
    assert_eq!(
        crate::batch::gauge(&sb, "moss_target_shards_kept_open").await,
        3
    );

    // Overwritten: the new bytes, and the old versions are closed.
    put_all(2).await;
    assert_eq!(bytes_of(fetch(api, request.clone()).await), expect(2));
    assert_eq!(
        crate::batch::gauge(&sb, "moss_target_shards_kept_open").await,
        3
    );

    // Deleted: gone.
    let r = api
        .http
        .delete(api.object_url("s", "k.tgz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = api.batch(Some("s"), &request).await;
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());

    // Destroyed and re-created with other shards under the same names.
    let r = api
        .http
        .delete(format!("{}/v1/buckets/s?provider=ais", api.endpoint))
        .body(r#"{"action":"destroy-bck"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    api.create_bucket("s").await;
    put_all(3).await;
    assert_eq!(bytes_of(fetch(api, request.clone()).await), expect(3));
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scan_per_compressed_shard_and_a_cached_tar_index() {
    let dir = tempfile::tempdir().unwrap();
    let sb = ClusterSandbox::builder().targets(1).start().await;
    let api = &sb.api;
    api.create_bucket("s").await;
    api.put("s", "one.tgz", make_shard(dir.path(), "tgz", 1))
        .await;
    api.put("s", "one.tar", make_shard(dir.path(), "tar", 1))
        .await;
    let all: Vec<Value> = members(1)
        .iter()
        .map(|(m, _)| json!({"objname":"one.tgz","archpath": m}))
        .collect();
    let got = fetch(api, json!({"in": all, "strm": true})).await;
    assert_eq!(got.len(), 5);
    assert_eq!(
        counter(&sb, "moss_target_shard_scans_count").await,
        1,
        "five members, one pass"
    );
    let tar_entries: Vec<Value> = members(1)
        .iter()
        .map(|(m, _)| json!({"objname":"one.tar","archpath": m}))
        .collect();
    fetch(api, json!({"in": tar_entries, "strm": true})).await;
    fetch(api, json!({"in": tar_entries, "strm": true})).await;
    assert_eq!(
        counter(&sb, "moss_target_shard_index_builds_count").await,
        1
    );
    // The second request finds the index cached (the data phase reads members at their offsets).
    assert!(counter(&sb, "moss_target_shard_index_hits_count").await >= 1);
    // Overwriting the shard invalidates its index: the new bytes are served.
    api.put("s", "one.tar", make_shard(dir.path(), "tar", 7))
        .await;
    let got = fetch(
        api,
        json!({"in": [{"objname":"one.tar","archpath":"a.txt"}], "strm": true}),
    )
    .await;
    assert_eq!(got[0].1, members(7)[0].1);
    assert_eq!(
        counter(&sb, "moss_target_shard_index_builds_count").await,
        2
    );
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zero_size_archived_files_are_real_entries() {
    // Reference: TestMossZeroSizeArchivedFiles.
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    api.create_bucket("s").await;
    let mut entries = Vec::new();
    for j in 0..40usize {
        let (prefix, file) = if j % 2 == 0 {
            (data(j as u64, 1024), Vec::new())
        } else {
            (Vec::new(), data(j as u64, 1024))
        };
        let mut tar = Vec::new();
        for (name, bytes) in [
            ("data/prefix.bin", &prefix),
            ("data/archived-file.bin", &file),
        ] {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            let mut builder = tar::Builder::new(Vec::new());
            builder
                .append_data(&mut header, name, bytes.as_slice())
                .unwrap();
            let chunk = builder.into_inner().unwrap();
            tar.extend_from_slice(&chunk[..chunk.len() - 1024]);
        }
        tar.extend_from_slice(&[0u8; 1024]);
        let name = format!("zerosize-arch-{j:05}.tar");
        api.put("s", &name, tar).await;
        entries.push((name, file));
    }
    let body: Vec<Value> = entries
        .iter()
        .map(|(n, _)| json!({"objname": n, "archpath": "data/archived-file.bin"}))
        .collect();
    for strm in [true, false] {
        let got = fetch(api, json!({"in": body, "strm": strm})).await;
        for ((name, bytes), (got_name, got_bytes)) in entries.iter().zip(&got) {
            assert_eq!(got_name, &format!("s/{name}/data/archived-file.bin"));
            assert_eq!(got_bytes, bytes);
        }
    }
    sb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_shards_fail_per_item_and_the_node_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let sb = ClusterSandbox::builder()
        .targets(1)
        .config("get_batch.max_soft_errs", "100")
        .start()
        .await;
    let api = &sb.api;
    api.create_bucket("s").await;
    let good = make_shard(dir.path(), "tar", 1);
    let mut corrupt_header = good.clone();
    corrupt_header[100] ^= 0x55; // inside the first header: checksum mismatch
    let truncated = good[..good.len() / 2].to_vec();
    let tgz = make_shard(dir.path(), "tgz", 1);
    let mut bad_gzip = tgz.clone();
    let mid = bad_gzip.len() / 2;
    bad_gzip[mid..mid + 8].copy_from_slice(&[0xff; 8]);
    // A gzip "bomb": 200 MiB of zeros in a ~200 KiB shard, declared as one tar member.
    let bomb = {
        let mut tar = Vec::new();
        moss_archive_header(&mut tar, "zeros.bin", 200 << 20);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        use std::io::Write;
        gz.write_all(&tar).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..200 {
            gz.write_all(&zeros).unwrap();
        }
        gz.finish().unwrap()
    };
    let mut bogus_zip = make_shard(dir.path(), "zip-stored", 1);
    let n = bogus_zip.len();
    bogus_zip[n - 6..n - 2].copy_from_slice(&0xffff_fff0u32.to_le_bytes()); // central directory offset
    let shards: Vec<(&str, Vec<u8>)> = vec![
        ("corrupt-header.tar", corrupt_header),
        ("truncated.tar", truncated),
        ("bad.tgz", bad_gzip),
        ("bomb.tgz", bomb),
        ("bogus.zip", bogus_zip),
    ];
    for (name, bytes) in &shards {
        api.put("s", name, bytes.clone()).await;
    }
    api.put("s", "good.tar", good).await;
    let mut entries: Vec<Value> = shards
        .iter()
        .map(|(n, _)| json!({"objname": n, "archpath": "x/y/z.jpg"}))
        .collect();
    entries.push(json!({"objname":"bomb.tgz","archpath":"nothing-here"}));
    entries.push(json!({"objname":"good.tar","archpath":"a.txt"}));
    let got = fetch(api, json!({"in": entries, "strm": true, "coer": true})).await;
    assert_eq!(got.len(), entries.len());
    // The truncated tar still holds a.txt and x/y/z.jpg in its first half; the rest fail per item.
    let placeholders = got
        .iter()
        .filter(|(n, _)| n.starts_with("__404__/"))
        .count();
    assert!(
        placeholders >= 5,
        "{:?}",
        got.iter().map(|(n, b)| (n, b.len())).collect::<Vec<_>>()
    );
    assert_eq!(got.last().unwrap().1, members(1)[0].1);
    // Without coer: a 4xx, never a 5xx.
    for (name, _) in &shards {
        let r = api
            .batch(
                Some("s"),
                &json!({"in":[{"objname": name, "archpath":"nothing-here"}], "strm": true}),
            )
            .await;
        assert!(r.status().is_client_error(), "{name}: {}", r.status());
    }
    assert_eq!(
        api.get_bytes("s", "good.tar").await.len() % 512,
        0,
        "node still serving"
    );
    sb.shutdown().await;
}

/// One ustar header for a regular file of `size` bytes.
fn moss_archive_header(out: &mut Vec<u8>, name: &str, size: u64) {
    let mut header = tar::Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
}

/// Writes hostile and odd shards made with Python, GNU tar and the lz4 tool into `dir`.
const PY_DAMAGED: &str = r##"
import gzip, io, struct, subprocess, sys, tarfile, zipfile
out = sys.argv[1]
def data(n, seed):
    return bytes(((i * 31 + seed * 7) % 251) for i in range(n))
files = [("a.txt", data(1500, 1)), ("b.bin", data(20000, 2))]
def tar_bytes():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, d in files:
            ti = tarfile.TarInfo(name); ti.size = len(d); t.addfile(ti, io.BytesIO(d))
    return buf.getvalue()
def zip_bytes(method):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, d in files:
            z.writestr(name, d)
    return bytearray(buf.getvalue())
def w(name, b):
    open(f"{out}/{name}", "wb").write(bytes(b))
# A flipped byte inside a.txt's stored data: its CRC no longer matches.
z = zip_bytes(zipfile.ZIP_STORED)
at = z.find(files[0][1][:64]); z[at + 10] ^= 0xff; w("badcrc.zip", z)
# a.txt's deflate data damaged.
z = zip_bytes(zipfile.ZIP_DEFLATED)
info = zipfile.ZipFile(io.BytesIO(bytes(z))).getinfo("a.txt")
start = info.header_offset + 30 + len("a.txt")
for k in range(start + 5, start + 25): z[k] ^= 0x5a
w("baddeflate.zip", z)
# a.txt's compression method set to 99 in the central directory.
z = zip_bytes(zipfile.ZIP_DEFLATED)
cd = z.find(b"PK\x01\x02"); z[cd + 10:cd + 12] = struct.pack("<H", 99); w("method99.zip", z)
# A self-extractor style stub in front of a valid zip.
w("stub.zip", b"#!/bin/sh\nexit 0\n" * 20 + zip_bytes(zipfile.ZIP_DEFLATED))
# gzip CRC trailer flipped: every member reads fine, the end does not.
g = bytearray(gzip.compress(tar_bytes())); g[-8] ^= 0xff; w("badcrc.tgz", g)
# lz4 tool frames with skippable frames in front and between.
lz = subprocess.run(["lz4", "-c"], input=tar_bytes(), capture_output=True, check=True).stdout
skip = lambda m, p: struct.pack("<II", m, len(p)) + p
w("skippable.tar.lz4", skip(0x184D2A50, b"index data") + lz + skip(0x184D2A5A, b"x" * 99))
lzc = bytearray(lz); lzc[-1] ^= 0xff; w("badsum.tar.lz4", lzc)
w("empty.tar.lz4", b"")
w("plain.tar", tar_bytes())
"##;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_members_fail_per_item_before_the_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let status = Command::new("python3")
        .arg("-c")
        .arg(PY_DAMAGED)
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success());
    // GNU tar: a sparse member (a real hole on disk).
    let src = out.join("sparse-src");
    std::fs::create_dir_all(&src).unwrap();
    let f = std::fs::File::create(src.join("sparse.bin")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[b'H'; 4096], 0).unwrap();
    f.set_len(4 << 20).unwrap();
    drop(f);
    let ok = Command::new("tar")
        .args(["--sparse", "--format=gnu", "-cf"])
        .arg(out.join("sparse.tar"))
        .arg("-C")
        .arg(&src)
        .arg("sparse.bin")
        .status()
        .unwrap();
    assert!(ok.success());

    let sb = ClusterSandbox::builder()
        .config("get_batch.max_soft_errs", "100")
        .start()
        .await;
    let api = &sb.api;
    api.create_bucket("s").await;
    for name in [
        "badcrc.zip",
        "baddeflate.zip",
        "method99.zip",
        "stub.zip",
        "badcrc.tgz",
        "skippable.tar.lz4",
        "badsum.tar.lz4",
        "empty.tar.lz4",
        "plain.tar",
        "sparse.tar",
    ] {
        api.put("s", name, std::fs::read(out.join(name)).unwrap())
            .await;
    }
    let a = data_of(1, 1500);
    // (shard, member, status, error text) of every damaged item.
    let damaged = [
        ("badcrc.zip", "a.txt", 410, "crc32 mismatch"),
        (
            "baddeflate.zip",
            "a.txt",
            410,
            "archived file is truncated or damaged",
        ),
        (
            "method99.zip",
            "a.txt",
            400,
            "unsupported compression method 99",
        ),
        ("badcrc.tgz", "a.txt", 400, "corrupt gzip stream"),
        ("badsum.tar.lz4", "a.txt", 400, "corrupt lz4 stream"),
        (
            "empty.tar.lz4",
            "a.txt",
            400,
            "an empty object is not a valid shard",
        ),
        (
            "sparse.tar",
            "sparse.bin",
            400,
            "sparse tar members are not supported",
        ),
    ];
    for (shard, member, want_status, text) in damaged {
        // Strict: a 4xx JSON error and no archive bytes, streaming or buffered.
        for strm in [true, false] {
            let body = json!({"in": [{"objname": "plain.tar", "archpath": "a.txt"},
                                     {"objname": shard, "archpath": member}], "strm": strm});
            let r = api.batch(Some("s"), &body).await;
            assert_eq!(r.status(), want_status, "{shard} strm={strm}");
            let msg = r.text().await.unwrap();
            assert!(msg.contains(text), "{shard} strm={strm}: {msg}");
        }
        // coer: a placeholder in its place, the neighbours intact.
        for strm in [true, false] {
            let body = json!({"in": [{"objname": "plain.tar", "archpath": "a.txt"},
                                     {"objname": shard, "archpath": member},
                                     {"objname": "plain.tar", "archpath": "a.txt"}],
                              "strm": strm, "coer": true});
            let got = fetch(api, body).await;
            let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
            let placeholder = format!("__404__/s/{shard}/{member}");
            assert_eq!(
                names,
                [
                    "s/plain.tar/a.txt",
                    placeholder.as_str(),
                    "s/plain.tar/a.txt"
                ],
                "strm={strm}"
            );
            assert_eq!(got[2].1, a);
        }
        let url = format!("{}&archpath={member}", api.object_url("s", shard));
        let r = api.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), want_status, "GET {shard}");
        assert!(r.text().await.unwrap().contains(text), "GET {shard}");
    }
    // Undamaged members of the same shards still come back.
    for (shard, member) in [("badcrc.zip", "b.bin"), ("method99.zip", "b.bin")] {
        let got = fetch(
            api,
            json!({"in": [{"objname": shard, "archpath": member}], "strm": true}),
        )
        .await;
        assert_eq!(got[0].1, data_of(2, 20000), "{shard}");
    }
    // Foreign-made oddities that are valid: a stubbed zip, skippable lz4 frames, and an
    // archpath that repeats the object name (AIStore makes it relative to the object).
    for (shard, member) in [
        ("stub.zip", "a.txt"),
        ("skippable.tar.lz4", "a.txt"),
        ("plain.tar", "plain.tar/a.txt"),
        ("skippable.tar.lz4", "skippable.tar.lz4/a.txt"),
    ] {
        let got = fetch(
            api,
            json!({"in": [{"objname": shard, "archpath": member}], "strm": true}),
        )
        .await;
        assert_eq!(got[0].1, a, "{shard} {member}");
        let url = format!(
            "{}&archpath={}",
            api.object_url("s", shard),
            member.replace('/', "%2F")
        );
        let r = api.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), 200, "GET {shard} {member}");
        assert_eq!(r.bytes().await.unwrap().as_ref(), &a[..]);
    }
    // The format rule applies to every request, whatever a cached index was built as: a TAR
    // named .zip reads with archmime=tar, and fails as a zip without it.
    api.put(
        "s",
        "tar-named.zip",
        std::fs::read(out.join("plain.tar")).unwrap(),
    )
    .await;
    for (archmime, want) in [("&archmime=tar", 200), ("", 400), ("&archmime=tar", 200)] {
        let url = format!(
            "{}&archpath=a.txt{archmime}",
            api.object_url("s", "tar-named.zip")
        );
        let r = api.http.get(url).send().await.unwrap();
        assert_eq!(r.status(), want, "archmime={archmime:?}");
    }
    sb.shutdown().await;
}

/// The bytes `data(n, seed)` of the Python script above.
fn data_of(seed: usize, n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 31 + seed * 7) % 251) as u8).collect()
}

/// One page of a JSON listing with the given list flags: (entries, continuation token).
async fn list_page(api: &Api, prefix: &str, flags: &str, page: u64, token: &str) -> Value {
    let r = list_request(api, prefix, flags, page, token).await;
    let status = r.status();
    let page: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{page}");
    page
}

async fn list_request(
    api: &Api,
    prefix: &str,
    flags: &str,
    page: u64,
    token: &str,
) -> reqwest::Response {
    let body = json!({"action": "list", "value": {
        "prefix": prefix, "flags": flags, "pagesize": page,
        "continuation_token": token, "props": "name,size",
    }});
    api.http
        .get(format!("{}/v1/buckets/s?provider=ais", api.endpoint))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// (name, size, flags) of every entry, paging with `page` names per page.
async fn list_all(api: &Api, prefix: &str, flags: &str, page: u64) -> Vec<(String, u64, u64)> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let got = list_page(api, prefix, flags, page, &token).await;
        for e in got["entries"].as_array().unwrap() {
            all.push((
                e["name"].as_str().unwrap().to_string(),
                e["size"].as_u64().unwrap(),
                e["flags"].as_u64().unwrap_or(0),
            ));
        }
        token = got["continuation_token"].as_str().unwrap().to_string();
        if token.is_empty() {
            return all;
        }
    }
}

/// List flag `arch_dir` (the SDK's `list_archive`): each shard is followed by its files as
/// `<shard>/<file>`, in every input format, across pages that end inside a shard; directories
/// are left out; a damaged shard is a 400 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_files_are_listed_with_arch_dir() {
    let sb = ClusterSandbox::builder().start().await;
    let api = &sb.api;
    let dir = tempfile::tempdir().unwrap();
    let shards = load_shards(api, dir.path()).await;
    api.put("s", "plain.txt", b"not a shard".to_vec()).await;
    // GNU tar given a directory stores entries for it and its subdirectory too.
    let src = dir.path().join("tree");
    std::fs::create_dir_all(src.join("x/y")).unwrap();
    std::fs::write(src.join("x/y/z.jpg"), data(7, 900)).unwrap();
    let tar = dir.path().join("dirs.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&src)
        .arg("x")
        .status()
        .unwrap();
    assert!(status.success());
    api.put("s", "dirs.tar", std::fs::read(&tar).unwrap()).await;

    let mut expect: Vec<(String, u64, u64)> = Vec::new();
    for (name, shard) in &shards {
        let size = api.get_bytes("s", name).await.len() as u64;
        expect.push((name.clone(), size, 1 << 9));
        for (member, bytes) in members(*shard) {
            expect.push((format!("{name}/{member}"), bytes.len() as u64, 1 << 7));
        }
    }
    let dirs_size = std::fs::metadata(&tar).unwrap().len();
    expect.push(("dirs.tar".into(), dirs_size, 1 << 9));
    expect.push(("dirs.tar/x/y/z.jpg".into(), 900, 1 << 7));
    expect.push(("plain.txt".into(), 11, 0));
    expect.sort();

    // One shard, as `list_archive` asks for it.
    for (name, _) in &shards {
        let got = list_all(api, name, "8", 0).await;
        let want: Vec<_> = expect
            .iter()
            .filter(|e| e.0.starts_with(name.as_str()))
            .cloned()
            .collect();
        assert_eq!(got, want, "{name}");
    }
    // A prefix that reaches into a shard.
    let inside = "shard-tgz-2.tgz/x/";
    let want: Vec<_> = expect
        .iter()
        .filter(|e| e.0.starts_with(inside))
        .cloned()
        .collect();
    assert_eq!(want.len(), 1);
    assert_eq!(list_all(api, inside, "8", 0).await, want);
    // The whole bucket in pages of 7 names, most of which end inside a shard.
    assert_eq!(list_all(api, "", "8", 7).await, expect);
    // Without the flag, only the objects.
    let objects: Vec<_> = expect
        .iter()
        .filter(|e| e.2 != 1 << 7)
        .map(|e| (e.0.clone(), e.1, 0))
        .collect();
    assert_eq!(list_all(api, "", "0", 5).await, objects);
    // The CLI: `moss ls BUCKET/PREFIX --archive`.
    let out = crate::cluster::moss_cli(
        sb.endpoint(),
        &["ls", "s/shard-zip-stored-2.zip", "--archive", "--bytes"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let printed: Vec<(String, u64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let (name, size) = line.rsplit_once(' ').unwrap();
            (name.trim().to_string(), size.parse().unwrap())
        })
        .collect();
    let want: Vec<(String, u64)> = expect
        .iter()
        .filter(|e| e.0.starts_with("shard-zip-stored-2.zip"))
        .map(|e| (e.0.clone(), e.1))
        .collect();
    assert_eq!(printed, want);

    // A damaged shard fails the listing that asks for its files, and only that listing.
    api.put("s", "bad.tgz", b"\x1f\x8b\x08\x00 not really gzip".to_vec())
        .await;
    let r = list_request(api, "bad", "8", 0, "").await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("ais://s/bad.tgz"), "{text}");
    assert_eq!(list_all(api, "bad", "0", 0).await.len(), 1);
    sb.shutdown().await;
}
