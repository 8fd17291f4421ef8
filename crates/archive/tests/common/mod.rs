//! Helpers shared by the integration tests: sample entries, writing archives with the crate's
//! writers, CRCs, and running external tools (skipped with a note when missing).
#![allow(dead_code)]
// Test helpers: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use moss_archive::Format;
use moss_archive::shard::{self, Member, ScanLimits, Select, TarIndex, ZipIndex};
use moss_archive::writer::new_writer;

/// One file to put into an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
}

/// Deterministic, mildly compressible bytes.
pub fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|i| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            // Runs of repeated bytes every so often keep it compressible.
            if i % 97 < 40 {
                b'a' + (i % 7) as u8
            } else {
                (x >> 16) as u8
            }
        })
        .collect()
}

/// Entries exercising the interesting header cases: long (splittable and not), non-ASCII,
/// empty, block-boundary sizes and a payload spanning several LZ4 blocks.
pub fn sample_entries() -> Vec<Entry> {
    let names_sizes: Vec<(String, usize)> = vec![
        ("hello.txt".into(), 12),
        ("dir/sub/data.bin".into(), 1000),
        ("empty".into(), 0),
        (format!("long/{}/file.dat", "x".repeat(120)), 700),
        (format!("{}.bin", "y".repeat(150)), 33),
        ("données/ünïcødé-文件.txt".into(), 77),
        ("block/exact512".into(), 512),
        ("block/over513".into(), 513),
        ("big/multi-block.bin".into(), 700 * 1024),
        ("zero/also-empty".into(), 0),
        (format!("{}/{}", "p".repeat(155), "n".repeat(100)), 5),
    ];
    names_sizes
        .into_iter()
        .enumerate()
        .map(|(i, (name, len))| Entry {
            name,
            data: bytes(len, i as u32),
        })
        .collect()
}

/// A `Write + Send + 'static` sink the test can read back.
#[derive(Clone, Default)]
pub struct SharedSink(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `entries` with the crate's writer, payloads in uneven chunks.
pub fn write_archive(format: Format, entries: &[Entry]) -> Vec<u8> {
    let sink = SharedSink::default();
    let mut w = new_writer(format, sink.clone());
    for (i, e) in entries.iter().enumerate() {
        w.start_entry(&e.name, e.data.len() as u64, 1_700_000_000 + i as u64)
            .unwrap();
        for chunk in e.data.chunks(1 + 4099 * (i % 3)) {
            w.write_data(chunk).unwrap();
        }
        w.finish_entry().unwrap();
    }
    w.finish().unwrap();
    sink.0.lock().unwrap().clone()
}

pub fn crc(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

/// `(name, size, crc32)` of each entry, the form external tools report.
pub fn manifest(entries: &[Entry]) -> Vec<(String, u64, u32)> {
    entries
        .iter()
        .map(|e| (e.name.clone(), e.data.len() as u64, crc(&e.data)))
        .collect()
}

/// Whether `cmd` runs; prints a note when it does not so skipped checks are visible.
pub fn have(cmd: &str) -> bool {
    have_with(cmd, "--version")
}

/// Whether Info-ZIP `unzip` runs (it knows `-v`, not `--version`).
pub fn have_unzip() -> bool {
    have_with("unzip", "-v")
}

/// Whether `cmd version_arg` succeeds. A tool the checks need must be there (scripts/test.sh
/// installs them): a missing one fails the test instead of skipping its checks.
pub fn have_with(cmd: &str, version_arg: &str) -> bool {
    let ok = Command::new(cmd)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{cmd}` is needed by this test and was not found (scripts/test.sh installs it)"
    );
    ok
}

/// Runs a command, failing the test with its stderr when it fails; returns stdout.
pub fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs a Python script with `args`.
pub fn python(script: &str, args: &[&Path]) -> Vec<u8> {
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .args(args)
        .env("PYTHONIOENCODING", "utf-8");
    run(&mut cmd)
}

/// Parses `name\tsize\tcrc` lines.
pub fn parse_manifest(out: &[u8]) -> Vec<(String, u64, u32)> {
    String::from_utf8(out.to_vec())
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut f = l.split('\t');
            let name = f.next().unwrap().to_string();
            let size = f.next().unwrap().parse().unwrap();
            let crc = f.next().unwrap().parse().unwrap();
            (name, size, crc)
        })
        .collect()
}

/// All file members of a TAR shard via [`TarIndex`], read with positioned reads.
pub fn read_with_index(tar: &[u8]) -> Vec<Entry> {
    let idx = TarIndex::build(Cursor::new(tar), tar.len() as u64, &ScanLimits::default()).unwrap();
    idx.members()
        .iter()
        .map(|m| Entry {
            name: m.name.clone(),
            data: slice(tar, m).to_vec(),
        })
        .collect()
}

pub fn slice<'a>(tar: &'a [u8], m: &Member) -> &'a [u8] {
    &tar[m.data_offset as usize..(m.data_offset + m.size) as usize]
}

/// All members of a (compressed) TAR stream via [`shard::decoder`] + [`shard::scan_tar`].
pub fn read_with_scan(format: Format, raw: &[u8]) -> Vec<Entry> {
    let limits = ScanLimits::default();
    let mut out = Vec::new();
    shard::scan_tar(
        shard::decoder(format, raw, &limits),
        &limits,
        |_| Select::Take(0),
        |_, m, r| {
            let mut data = Vec::new();
            r.read_to_end(&mut data)
                .map_err(shard::into_archive_error)?;
            out.push(Entry {
                name: m.name.clone(),
                data,
            });
            Ok(())
        },
    )
    .unwrap();
    out
}

/// All file entries of a ZIP via [`ZipIndex`] and [`shard::open_zip_member`].
pub fn read_with_zip_index(zip: &[u8]) -> Vec<Entry> {
    let idx = ZipIndex::build(Cursor::new(zip), zip.len() as u64, &ScanLimits::default()).unwrap();
    idx.entries()
        .iter()
        .filter(|e| !e.is_dir)
        .map(|e| {
            let mut data = Vec::new();
            shard::open_zip_member(Cursor::new(zip), e)
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
            Entry {
                name: e.name.clone(),
                data,
            }
        })
        .collect()
}

/// `unzip -t` over the archive at `path` (optionally only `members`): every member's data and
/// CRC checked by Info-ZIP. Fails the test on any complaint.
pub fn unzip_test(path: &Path, members: &[&str]) {
    let out = run(Command::new("unzip").arg("-t").arg(path).args(members));
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("No errors detected"), "unzip -t: {text}");
}

/// All entries of a ZIP with the `zip` crate, in central directory order. `ZipArchive` keys its
/// entries by name and so shows one entry per name; the iterable reader keeps every entry, and
/// here also checks each local header against its central record.
pub fn read_zip_crate(zip: &[u8]) -> Vec<Entry> {
    let mut iterable =
        zip::unstable::read::ZipIterable::try_new(Cursor::new(zip), zip::read::Config::default())
            .unwrap()
            .enforce_header_consistency(true);
    let mut body = Cursor::new(zip);
    let mut out = Vec::new();
    for entry in iterable.files().unwrap() {
        let entry = entry.unwrap();
        let name = entry.name().unwrap().into_owned();
        let size = entry.size();
        let mut file = entry
            .with_reader(&mut body, zip::ZipReadOptions::default())
            .unwrap();
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, size, "{name}");
        out.push(Entry { name, data });
    }
    out
}
