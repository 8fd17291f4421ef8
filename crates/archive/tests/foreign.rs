//! Shards produced by other tools — Python's tarfile (PAX, GNU, USTAR; plain and gzip) and
//! zipfile (stored, deflated, streamed with data descriptors), GNU tar, the `lz4` CLI — read
//! by this crate's shard readers and checked against manifests Python lists independently.
// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]
mod common;

use std::collections::HashMap;
use std::fs;
use std::io::{Cursor, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use moss_archive::shard::{self, ScanLimits, Select, TarIndex, ZipIndex};
use moss_archive::{ArchiveError, Format};

/// Writes the Python-made shards into argv[1].
const PY_MAKE: &str = r#"
import gzip, io, sys, tarfile, zipfile
out = sys.argv[1]
def data(n, seed):
    return bytes(((i * 31 + seed * 7) % 251) for i in range(n))
files = [
    ("top.txt", b"hello world\n"),
    ("a/b/c/deep.bin", data(5000, 2)),
    ("zero-size", b""),
    ("a/empty-too", b""),
    ("long/" + "d" * 90 + "/" + "e" * 90 + ".txt", data(100, 3)),
    ("f" * 180 + "/g.txt", data(513, 4)),
    ("ünïcødé/файл.txt", data(42, 5)),
    ("exact/512", data(512, 6)),
    ("big/payload.bin", data(300000, 7)),
]
dirs = ["a", "a/b", "a/b/c"]
def fill(t, fits=lambda name: True):
    for d in dirs:
        ti = tarfile.TarInfo(d); ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
    for name, d in files:
        if not fits(name):
            continue
        ti = tarfile.TarInfo(name); ti.size = len(d); ti.mtime = 1600000000
        t.addfile(ti, io.BytesIO(d))
    ti = tarfile.TarInfo("link"); ti.type = tarfile.SYMTYPE; ti.linkname = "top.txt"; t.addfile(ti)
for label, fmt in [("pax", tarfile.PAX_FORMAT), ("gnu", tarfile.GNU_FORMAT)]:
    with tarfile.open(f"{out}/{label}.tar", "w", format=fmt) as t:
        fill(t)
    with tarfile.open(f"{out}/{label}.tar.gz", "w:gz", format=fmt) as t:
        fill(t)
ustar_ok = lambda name: len(name) <= 100 or (name.rfind("/", 0, 156) > 0 and len(name) - name.rfind("/", 0, 156) - 1 <= 100)
with tarfile.open(f"{out}/ustar.tar", "w", format=tarfile.USTAR_FORMAT) as t:
    fill(t, lambda name: name.isascii() and ustar_ok(name))
# Multi-member gzip: the TAR split in two arbitrary parts.
raw = open(f"{out}/gnu.tar", "rb").read()
with open(f"{out}/gnu-multi.tar.gz", "wb") as f:
    f.write(gzip.compress(raw[:10001]) + gzip.compress(raw[10001:]))
for label, method in [("stored", zipfile.ZIP_STORED), ("deflated", zipfile.ZIP_DEFLATED)]:
    with zipfile.ZipFile(f"{out}/{label}.zip", "w", compression=method) as z:
        for d in dirs:
            z.writestr(d + "/", b"")
        for name, d in files:
            z.writestr(name, d)
class Unseekable:
    def __init__(self, f): self.f = f
    def write(self, b): return self.f.write(b)
    def flush(self): self.f.flush()
with open(f"{out}/streamed.zip", "wb") as f:
    with zipfile.ZipFile(Unseekable(f), "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, d in files:
            with z.open(name, "w") as w:
                w.write(d)
"#;

/// Lists the regular files of any TAR Python can open as `name\tsize\tcrc`, then the total
/// member count (files, directories, links) on a last line.
const PY_LIST_TAR: &str = r##"
import sys, tarfile, zlib
with tarfile.open(sys.argv[1], "r:*") as t:
    members = t.getmembers()
    for m in members:
        if m.isfile():
            data = t.extractfile(m).read()
            print(f"{m.name}\t{m.size}\t{zlib.crc32(data)}")
    print(f"#\t{len(members)}\t0")
"##;

const PY_LIST_ZIP: &str = r##"
import sys, zipfile, zlib
with zipfile.ZipFile(sys.argv[1]) as z:
    infos = z.infolist()
    for i in infos:
        if not i.is_dir():
            print(f"{i.filename}\t{i.file_size}\t{zlib.crc32(z.read(i))}")
    print(f"#\t{len(infos)}\t0")
"##;

/// Regular files plus the total member count.
struct Manifest {
    files: Vec<(String, u64, u32)>,
    members: usize,
}

fn list(script: &str, path: &Path) -> Manifest {
    let mut files = parse_manifest(&python(script, &[path]));
    let (hash, members, _) = files.pop().unwrap();
    assert_eq!(hash, "#");
    assert!(!files.is_empty(), "{}", path.display());
    Manifest {
        files,
        members: members as usize,
    }
}

/// A temp dir holding every foreign shard, or `None` when a tool is missing.
fn make_shards() -> Option<(tempfile::TempDir, PathBuf)> {
    if !(have("python3") && have("tar") && have("lz4")) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_path_buf();
    python(PY_MAKE, &[&out]);

    // GNU tar, from files on disk, with a path longer than 100 bytes.
    let src = out.join("src");
    let long_dir = src.join("h".repeat(60)).join("i".repeat(60));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(long_dir.join("file.txt"), bytes(2000, 9)).unwrap();
    fs::write(src.join("plain.txt"), b"plain\n").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    for format in ["gnu", "posix"] {
        let tar = out.join(format!("{format}-cli.tar"));
        run(Command::new("tar")
            .arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&tar)
            .arg("-C")
            .arg(&src)
            .arg("."));
    }

    // LZ4 CLI: default frame; linked 64 KiB blocks with block checksums; two concatenated frames.
    lz4(&out, "pax.tar", "pax.tar.lz4", &[]);
    lz4(
        &out,
        "gnu-cli.tar",
        "gnu-cli-bd.tar.lz4",
        &["-BD", "-BX", "-B4"],
    );
    let gnu = fs::read(out.join("gnu.tar")).unwrap();
    fs::write(out.join("part1"), &gnu[..7000]).unwrap();
    fs::write(out.join("part2"), &gnu[7000..]).unwrap();
    lz4(&out, "part1", "part1.lz4", &[]);
    lz4(&out, "part2", "part2.lz4", &[]);
    let mut concat = fs::read(out.join("part1.lz4")).unwrap();
    concat.extend(fs::read(out.join("part2.lz4")).unwrap());
    fs::write(out.join("gnu-concat.tar.lz4"), concat).unwrap();
    Some((dir, out))
}

fn lz4(dir: &Path, from: &str, to: &str, opts: &[&str]) {
    run(Command::new("lz4")
        .args(["-q", "-z", "-f"])
        .args(opts)
        .arg(dir.join(from))
        .arg(dir.join(to)));
}

/// Checks a TAR index against a manifest, including `/` matching and misses.
fn check_index(tar: &[u8], want: &Manifest, label: &str) {
    let idx = TarIndex::build(Cursor::new(tar), tar.len() as u64, &ScanLimits::default())
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(idx.members().len(), want.members, "{label}: member count");
    for (name, size, crc32) in &want.files {
        for key in [name.clone(), format!("/{name}")] {
            let m = idx
                .lookup(&key)
                .unwrap_or_else(|| panic!("{label}: {key} not found"));
            assert_eq!(m.size, *size, "{label}: {name}");
            assert_eq!(crc(slice(tar, m)), *crc32, "{label}: {name}");
        }
    }
    assert!(idx.lookup("missing").is_none());
    assert!(idx.lookup("top.tx").is_none());
    assert!(idx.lookup("TOP.TXT").is_none());
}

/// Checks a stream scan against a manifest: every listed file is visited with its bytes.
fn check_scan(format: Format, raw: &[u8], want: &Manifest, label: &str) {
    let limits = ScanLimits::default();
    let mut seen: HashMap<String, (u64, u32)> = HashMap::new();
    let mut count = 0;
    shard::scan_tar(
        shard::decoder(format, raw, &limits),
        &limits,
        |_| {
            count += 1;
            Select::Take(0)
        },
        |_, m, r| {
            let mut data = Vec::new();
            r.read_to_end(&mut data)
                .map_err(shard::into_archive_error)?;
            assert_eq!(data.len() as u64, m.size);
            seen.entry(m.name.clone()).or_insert((m.size, crc(&data)));
            Ok(())
        },
    )
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_eq!(count, want.members, "{label}: member count");
    for (name, size, crc32) in &want.files {
        assert_eq!(seen.get(name), Some(&(*size, *crc32)), "{label}: {name}");
    }
}

/// Decompresses a whole stream through [`shard::decoder`].
fn decode(format: Format, raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    shard::decoder(format, raw, &ScanLimits::default())
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn foreign_tar_shards() {
    let Some((_dir, out)) = make_shards() else {
        return;
    };
    for name in [
        "pax.tar",
        "gnu.tar",
        "ustar.tar",
        "gnu-cli.tar",
        "posix-cli.tar",
    ] {
        let path = out.join(name);
        let want = list(PY_LIST_TAR, &path);
        let tar = fs::read(&path).unwrap();
        check_index(&tar, &want, name);
        check_scan(Format::Tar, &tar, &want, name);
    }
}

#[test]
fn foreign_compressed_tar_shards() {
    let Some((_dir, out)) = make_shards() else {
        return;
    };
    let cases = [
        ("pax.tar.gz", "pax.tar.gz", Format::Tgz),
        ("gnu.tar.gz", "gnu.tar.gz", Format::Tgz),
        ("gnu-multi.tar.gz", "gnu.tar", Format::Tgz),
        ("pax.tar.lz4", "pax.tar", Format::TarLz4),
        ("gnu-cli-bd.tar.lz4", "gnu-cli.tar", Format::TarLz4),
        ("gnu-concat.tar.lz4", "gnu.tar", Format::TarLz4),
    ];
    for (name, listed, format) in cases {
        let want = list(PY_LIST_TAR, &out.join(listed));
        let raw = fs::read(out.join(name)).unwrap();
        assert_eq!(Format::sniff(&raw), Some(format), "{name}");
        assert_eq!(Format::from_name(name), Some(format), "{name}");
        check_scan(format, &raw, &want, name);
        check_index(&decode(format, &raw), &want, name);
    }
}

#[test]
fn gnu_long_names_and_pax_are_resolved() {
    let Some((_dir, out)) = make_shards() else {
        return;
    };
    let long = format!("{}/g.txt", "f".repeat(180));
    for name in ["pax.tar", "gnu.tar"] {
        let tar = fs::read(out.join(name)).unwrap();
        let idx =
            TarIndex::build(Cursor::new(&tar), tar.len() as u64, &ScanLimits::default()).unwrap();
        assert_eq!(idx.lookup(&long).unwrap().size, 513, "{name}");
        assert_eq!(idx.lookup("ünïcødé/файл.txt").unwrap().size, 42, "{name}");
        // Directories and links are members too, without payload.
        assert_eq!(idx.lookup("a/").unwrap().size, 0, "{name}");
        assert_eq!(idx.lookup("link").unwrap().size, 0, "{name}");
        let top = idx.lookup("/top.txt").unwrap();
        assert_eq!(slice(&tar, top), b"hello world\n");
    }
    let cli = fs::read(out.join("gnu-cli.tar")).unwrap();
    let idx = TarIndex::build(Cursor::new(&cli), cli.len() as u64, &ScanLimits::default()).unwrap();
    let long = format!("./{}/{}/file.txt", "h".repeat(60), "i".repeat(60));
    assert_eq!(slice(&cli, idx.lookup(&long).unwrap()), bytes(2000, 9));
    assert_eq!(slice(&cli, idx.lookup("./plain.txt").unwrap()), b"plain\n");
    assert!(
        idx.lookup("plain.txt").is_none(),
        "no normalization beyond one leading slash"
    );
}

#[test]
fn scan_selects_and_stops_early() {
    let Some((_dir, out)) = make_shards() else {
        return;
    };
    let raw = fs::read(out.join("pax.tar.gz")).unwrap();
    let limits = ScanLimits::default();
    let wanted = ["big/payload.bin", "top.txt"];
    let mut found = Vec::new();
    let mut selected = 0;
    shard::scan_tar(
        shard::decoder(Format::Tgz, &raw[..], &limits),
        &limits,
        |name| {
            if selected == wanted.len() {
                return Select::Done;
            }
            match wanted.iter().position(|w| *w == shard::match_key(name)) {
                Some(tag) => {
                    selected += 1;
                    Select::Take(tag)
                }
                None => Select::Skip,
            }
        },
        |tag, m, r| {
            // Read only part of the payload: the scanner must skip the rest.
            let mut head = [0u8; 5];
            let n = r.read(&mut head).map_err(shard::into_archive_error)?;
            found.push((tag, m.name.clone(), head[..n].to_vec()));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0], (1, "top.txt".to_string(), b"hello".to_vec()));
    assert_eq!(found[1].0, 0);
}

#[test]
fn foreign_zip_shards() {
    let Some((_dir, out)) = make_shards() else {
        return;
    };
    for name in ["stored.zip", "deflated.zip", "streamed.zip"] {
        let path = out.join(name);
        let want = list(PY_LIST_ZIP, &path);
        let zip = fs::read(&path).unwrap();
        let f = fs::File::open(&path).unwrap();
        let idx = ZipIndex::build(&f, zip.len() as u64, &ScanLimits::default()).unwrap();
        assert_eq!(idx.entries().len(), want.members, "{name}");
        for (file, size, crc32) in &want.files {
            for key in [file.clone(), format!("/{file}")] {
                let e = idx.lookup(&key).unwrap_or_else(|| panic!("{name}: {key}"));
                assert_eq!(e.size, *size);
                assert_eq!(e.crc32, *crc32);
                let mut data = Vec::new();
                shard::open_zip_member(&f, e)
                    .unwrap()
                    .read_to_end(&mut data)
                    .unwrap();
                assert_eq!(crc(&data), *crc32, "{name}: {file}");
            }
        }
        assert!(
            idx.lookup("a/").is_none() || name == "streamed.zip",
            "directories are skipped"
        );
        assert!(idx.entries().iter().any(|e| e.is_dir) != (name == "streamed.zip"));
        assert!(idx.lookup("missing").is_none());
        let method = if name == "stored.zip" { 0 } else { 8 };
        assert!(
            idx.entries()
                .iter()
                .filter(|e| !e.is_dir)
                .all(|e| e.method == method),
            "{name}"
        );
    }
}

/// Reads a whole decoder stream, as a shard scan that drains to the end does.
fn decode_all(format: Format, raw: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Vec::new();
    shard::decoder(format, raw, &ScanLimits::default())
        .read_to_end(&mut out)
        .map_err(shard::into_archive_error)?;
    Ok(out)
}

/// Python's gzip and the lz4 tool agree on what a damaged or padded stream is; so do we.
#[test]
fn compressed_stream_trailers_are_checked() {
    if !(have("python3") && have("lz4")) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let tar = write_archive(Format::Tar, &sample_entries());
    fs::write(out.join("s.tar"), &tar).unwrap();
    python(
        "import gzip, sys\nd = open(sys.argv[1] + '/s.tar', 'rb').read()\nopen(sys.argv[1] + '/s.tgz', 'wb').write(gzip.compress(d))\n",
        &[out],
    );
    let tgz = fs::read(out.join("s.tgz")).unwrap();
    assert_eq!(decode_all(Format::Tgz, &tgz).unwrap(), tar);
    // Zero padding after the last member is ignored, as gzip(1) and Python do.
    let mut padded = tgz.clone();
    padded.extend_from_slice(&[0u8; 700]);
    assert_eq!(decode_all(Format::Tgz, &padded).unwrap(), tar);
    // Garbage there, a flipped CRC or length in the trailer: corrupt.
    let mut garbage = tgz.clone();
    garbage.extend_from_slice(b"trailing junk");
    let n = tgz.len();
    let mut bad_crc = tgz.clone();
    bad_crc[n - 8] ^= 0xff;
    let mut bad_len = tgz.clone();
    bad_len[n - 2] ^= 0x01;
    for (label, raw) in [
        ("garbage", &garbage),
        ("crc", &bad_crc),
        ("length", &bad_len),
    ] {
        match decode_all(Format::Tgz, raw) {
            Err(ArchiveError::Corrupt(m)) => assert!(m.contains("gzip"), "{label}: {m}"),
            other => panic!("{label}: {other:?}"),
        }
    }
    // The members are all found before the trailer: only reading on to the end notices it.
    let limits = ScanLimits::default();
    let mut stream = shard::decoder(Format::Tgz, bad_crc.as_slice(), &limits);
    shard::scan_tar(&mut stream, &limits, |_| Select::Done, |_, _, _| Ok(())).unwrap();
    assert!(matches!(
        shard::drain(&mut stream),
        Err(ArchiveError::Corrupt(_))
    ));

    // LZ4 made by the tool: a flipped content checksum; a frame cut between two blocks (the
    // tool says "truncated"); skippable frames in front of and between frames (the tool skips them).
    run(Command::new("lz4")
        .args(["-q", "-f", "-B4"])
        .arg(out.join("s.tar"))
        .arg(out.join("s.tar.lz4")));
    let lz = fs::read(out.join("s.tar.lz4")).unwrap();
    assert_eq!(decode_all(Format::TarLz4, &lz).unwrap(), tar);
    let mut bad_sum = lz.clone();
    let n = lz.len();
    bad_sum[n - 1] ^= 0xff;
    assert!(matches!(
        decode_all(Format::TarLz4, &bad_sum),
        Err(ArchiveError::Corrupt(_))
    ));
    let cut = lz4_block_boundary(&lz);
    assert!(matches!(
        decode_all(Format::TarLz4, &lz[..cut]),
        Err(ArchiveError::Corrupt(_))
    ));
    let skippable = |magic: u32, payload: &[u8]| {
        let mut f = magic.to_le_bytes().to_vec();
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(payload);
        f
    };
    let mut with_skips = skippable(0x184D_2A50, b"metadata in front");
    with_skips.extend_from_slice(&lz);
    with_skips.extend(skippable(0x184D_2A5F, &[7u8; 100]));
    with_skips.extend(skippable(0x184D_2A53, b""));
    fs::write(out.join("skips.lz4"), &with_skips).unwrap();
    let tool = run(Command::new("lz4").arg("-dc").arg(out.join("skips.lz4")));
    assert_eq!(tool, tar, "the lz4 tool reads it");
    assert_eq!(decode_all(Format::TarLz4, &with_skips).unwrap(), tar);
    let mut cut_skip = skippable(0x184D_2A50, &[1u8; 100]);
    cut_skip.truncate(50);
    assert!(matches!(
        decode_all(Format::TarLz4, &cut_skip),
        Err(ArchiveError::Corrupt(_))
    ));
}

/// Offset just past the first data block of an LZ4 frame (header without content size or
/// dictionary; block checksums off), so a cut there ends the input between two blocks.
fn lz4_block_boundary(lz: &[u8]) -> usize {
    assert_eq!(lz[4] & 0x09, 0, "no content size or dictionary id");
    let first_block = 7;
    let len = u32::from_le_bytes(lz[first_block..first_block + 4].try_into().unwrap());
    first_block + 4 + (len & 0x7fff_ffff) as usize
}

/// A ZIP written by Python with bytes in front (a self-extractor stub): unzip and Python read
/// it, and so do we.
#[test]
fn zip_with_a_prepended_stub() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    python(
        r##"
import io, sys, zipfile
for label, z64 in [("plain", False), ("zip64", True)]:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(3):
            with z.open(f"m{i}.txt", "w", force_zip64=z64) as f:
                f.write(bytes([65 + i]) * (1000 * (i + 1)))
    raw = b"#!/bin/sh\necho self-extractor stub\n" * 10 + buf.getvalue()
    open(f"{sys.argv[1]}/{label}.zip", "wb").write(raw)
    assert zipfile.ZipFile(f"{sys.argv[1]}/{label}.zip").read("m2.txt") == b"C" * 3000
"##,
        &[dir.path()],
    );
    for label in ["plain", "zip64"] {
        let zip = fs::read(dir.path().join(format!("{label}.zip"))).unwrap();
        let got = read_with_zip_index(&zip);
        let names: Vec<&str> = got.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["m0.txt", "m1.txt", "m2.txt"], "{label}");
        assert_eq!(got[2].data, vec![b'C'; 3000], "{label}");
    }
}

/// GNU tar's sparse members (old GNU `S` headers and the PAX formats 0.1 and 1.0) are found
/// under their real name and flagged, never passed off as the file's bytes.
#[test]
fn gnu_sparse_members_are_flagged() {
    if !have("tar") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    // 4 MiB with data only at both ends and a real hole between (GNU tar looks for holes).
    let file = fs::File::create(src.join("sparse.bin")).unwrap();
    file.write_all_at(&[b'H'; 4096], 0).unwrap();
    file.write_all_at(&[b'T'; 1024], (4 << 20) - 1024).unwrap();
    drop(file);
    fs::write(src.join("plain.txt"), b"plain\n").unwrap();
    for (label, args) in [
        ("gnu", vec!["--format=gnu"]),
        ("pax01", vec!["--format=pax", "--sparse-version=0.1"]),
        ("pax10", vec!["--format=pax", "--sparse-version=1.0"]),
    ] {
        let tar_path = dir.path().join(format!("{label}.tar"));
        run(Command::new("tar")
            .arg("--sparse")
            .args(&args)
            .arg("-cf")
            .arg(&tar_path)
            .arg("-C")
            .arg(&src)
            .args(["sparse.bin", "plain.txt"]));
        let tar = fs::read(&tar_path).unwrap();
        let idx = TarIndex::build(Cursor::new(&tar), tar.len() as u64, &ScanLimits::default())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let m = idx
            .lookup("sparse.bin")
            .unwrap_or_else(|| panic!("{label}: sparse.bin not found"));
        assert!(m.sparse, "{label}");
        let plain = idx.lookup("plain.txt").unwrap();
        assert!(!plain.sparse, "{label}");
        assert_eq!(slice(&tar, plain), b"plain\n", "{label}");
    }
}
