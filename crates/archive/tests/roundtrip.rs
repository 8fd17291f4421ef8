//! Every writer format read back by independent readers: the `tar`, `flate2`, `lz4_flex` and
//! `zip` crates, Python's tarfile/zipfile, GNU tar, the `lz4` CLI and Info-ZIP `unzip`, and this
//! crate's own shard readers.
// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]
mod common;

use std::fs;
use std::io::{Cursor, Read};
use std::process::Command;

use common::*;
use moss_archive::Format;
use moss_archive::shard::{self, ScanLimits, TarIndex, ZipIndex};

/// Reads a TAR stream with the `tar` crate.
fn read_tar_crate(r: impl Read) -> Vec<Entry> {
    let mut archive = tar::Archive::new(r);
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        assert_eq!(entry.header().entry_type(), tar::EntryType::Regular);
        assert_eq!(entry.header().mode().unwrap(), 0o644);
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        assert_eq!(data.len() as u64, entry.size());
        out.push(Entry { name, data });
    }
    out
}

#[test]
fn tar_read_by_tar_crate() {
    let entries = sample_entries();
    let tar = write_archive(Format::Tar, &entries);
    assert_eq!(tar.len() % 512, 0);
    assert!(tar.ends_with(&[0u8; 1024]));
    assert_eq!(read_tar_crate(&tar[..]), entries);
}

#[test]
fn tgz_read_by_flate2_and_tar_crate() {
    let entries = sample_entries();
    let tgz = write_archive(Format::Tgz, &entries);
    assert_eq!(Format::sniff(&tgz), Some(Format::Tgz));
    assert_eq!(
        read_tar_crate(flate2::read::GzDecoder::new(&tgz[..])),
        entries
    );
}

#[test]
fn tar_lz4_read_by_lz4_flex_and_tar_crate() {
    let entries = sample_entries();
    let lz = write_archive(Format::TarLz4, &entries);
    assert_eq!(Format::sniff(&lz), Some(Format::TarLz4));
    // FLG: version 01, independent blocks, no block/content checksum; BD: 256 KiB blocks.
    assert_eq!(lz[4] & 0b1111_0100, 0b0110_0000, "flags {:08b}", lz[4]);
    assert_eq!(lz[5], 0x50, "block size code");
    assert_eq!(
        read_tar_crate(lz4_flex::frame::FrameDecoder::new(&lz[..])),
        entries
    );
}

#[test]
fn zip_read_by_zip_crate() {
    let entries = sample_entries();
    let zip = write_archive(Format::Zip, &entries);
    let mut archive = zip::ZipArchive::new(Cursor::new(&zip)).unwrap();
    assert_eq!(archive.len(), entries.len());
    for (i, want) in entries.iter().enumerate() {
        let mut file = archive.by_index(i).unwrap();
        assert_eq!(file.name().unwrap(), want.name);
        assert_eq!(file.size(), want.data.len() as u64);
        assert_eq!(file.compression(), zip::CompressionMethod::Deflated);
        assert_eq!(file.unix_mode().map(|m| m & 0o777), Some(0o644));
        assert!(file.is_file());
        let t = file.last_modified().unwrap();
        assert_eq!((t.year(), t.month(), t.day()), (2023, 11, 14));
        let mut data = Vec::new();
        file.read_to_end(&mut data).unwrap();
        assert_eq!(data, want.data, "{}", want.name);
    }
}

#[test]
fn own_readers_read_own_writers() {
    let entries = sample_entries();
    let tar = write_archive(Format::Tar, &entries);
    assert_eq!(read_with_index(&tar), entries);
    for format in [Format::Tar, Format::Tgz, Format::TarLz4] {
        let raw = write_archive(format, &entries);
        assert_eq!(read_with_scan(format, &raw), entries, "{format:?}");
    }
    let zip = write_archive(Format::Zip, &entries);
    assert_eq!(read_with_zip_index(&zip), entries);
}

#[test]
fn empty_archives_read_back() {
    for format in [Format::Tar, Format::Tgz, Format::TarLz4] {
        let raw = write_archive(format, &[]);
        assert_eq!(read_with_scan(format, &raw), vec![], "{format:?}");
    }
    let tar = write_archive(Format::Tar, &[]);
    assert!(read_with_index(&tar).is_empty());
    let zip = write_archive(Format::Zip, &[]);
    assert!(read_with_zip_index(&zip).is_empty());
    assert_eq!(zip::ZipArchive::new(Cursor::new(zip)).unwrap().len(), 0);
}

#[test]
fn names_pass_through_verbatim() {
    let entries: Vec<Entry> = ["/abs/x", "./rel", "a//b", "sp ace ", "x/../y"]
        .iter()
        .map(|n| Entry {
            name: n.to_string(),
            data: n.as_bytes().to_vec(),
        })
        .collect();
    let tar = write_archive(Format::Tar, &entries);
    assert_eq!(read_with_index(&tar), entries);
    for format in [Format::Tgz, Format::TarLz4] {
        assert_eq!(
            read_with_scan(format, &write_archive(format, &entries)),
            entries
        );
    }
    let zip = write_archive(Format::Zip, &entries);
    assert_eq!(read_with_zip_index(&zip), entries);
}

#[test]
fn duplicate_names_in_tar_first_wins() {
    let entries = vec![
        Entry {
            name: "same".into(),
            data: b"first".to_vec(),
        },
        Entry {
            name: "/same".into(),
            data: b"second".to_vec(),
        },
        Entry {
            name: "same".into(),
            data: b"third".to_vec(),
        },
    ];
    let tar = write_archive(Format::Tar, &entries);
    let idx = TarIndex::build(Cursor::new(&tar), tar.len() as u64, &ScanLimits::default()).unwrap();
    assert_eq!(idx.members().len(), 3);
    for key in ["same", "/same"] {
        assert_eq!(slice(&tar, idx.lookup(key).unwrap()), b"first");
    }
}

/// GetBatch may ask for one object twice in a batch (say, whole and a byte range): the ZIP keeps
/// every entry, in request order, each with its own bytes, as the TAR formats do.
#[test]
fn zip_keeps_duplicate_names() {
    let whole = bytes(20_000, 7);
    let entries = vec![
        Entry {
            name: "obj".into(),
            data: whole.clone(),
        },
        Entry {
            name: "other".into(),
            data: b"x".to_vec(),
        },
        Entry {
            name: "obj".into(),
            data: whole[1000..3000].to_vec(),
        },
        Entry {
            name: "obj".into(),
            data: Vec::new(),
        },
        Entry {
            name: "other".into(),
            data: b"y".to_vec(),
        },
    ];
    let zip = write_archive(Format::Zip, &entries);
    assert_eq!(read_zip_crate(&zip), entries);
    // `ZipArchive` notices the repetition (it keys entries by name, so it cannot list them all).
    assert!(
        zip::ZipArchive::new(Cursor::new(&zip))
            .unwrap()
            .has_duplicate_names()
    );
    assert_eq!(read_with_zip_index(&zip), entries);
    let idx = ZipIndex::build(Cursor::new(&zip), zip.len() as u64, &ScanLimits::default()).unwrap();
    assert_eq!(idx.lookup("obj").unwrap().size, 20_000, "first one wins");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dup.zip");
    fs::write(&path, &zip).unwrap();
    if have("python3") {
        assert_eq!(
            parse_manifest(&python(PY_ZIP, &[&path])),
            manifest(&entries)
        );
    }
    if have_unzip() {
        unzip_test(&path, &[]);
    }
}

/// Empty entries still get a (two-byte) deflate stream, CRC 0 and sizes 0, and do not disturb
/// the offsets of what follows.
#[test]
fn zip_zero_byte_entries() {
    let mut entries: Vec<Entry> = ["a", "dir/b", "a", "c"]
        .iter()
        .map(|n| Entry {
            name: n.to_string(),
            data: Vec::new(),
        })
        .collect();
    entries.push(Entry {
        name: "last".into(),
        data: bytes(3000, 3),
    });
    let zip = write_archive(Format::Zip, &entries);
    assert_eq!(read_zip_crate(&zip), entries);
    assert_eq!(read_with_zip_index(&zip), entries);
    let idx = ZipIndex::build(Cursor::new(&zip), zip.len() as u64, &ScanLimits::default()).unwrap();
    for e in &idx.entries()[..4] {
        assert_eq!((e.size, e.compressed_size, e.crc32, e.method), (0, 2, 0, 8));
    }

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty-entries.zip");
    fs::write(&path, &zip).unwrap();
    if have("python3") {
        assert_eq!(
            parse_manifest(&python(PY_ZIP, &[&path])),
            manifest(&entries)
        );
    }
    if have_unzip() {
        unzip_test(&path, &[]);
    }
}

/// Info-ZIP checks every member (data, CRC, local header against the central directory).
#[test]
fn unzip_tests_zip_output() {
    if !have_unzip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sample.zip");
    fs::write(&path, write_archive(Format::Zip, &sample_entries())).unwrap();
    unzip_test(&path, &[]);
    let empty = dir.path().join("empty.zip");
    fs::write(&empty, write_archive(Format::Zip, &[])).unwrap();
    // An archive without members is a warning (exit status 1) to unzip, so only list it.
    let out = Command::new("unzip")
        .arg("-l")
        .arg(&empty)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 files")
            || String::from_utf8_lossy(&out.stderr).contains("zipfile is empty"),
        "{out:?}"
    );
}

#[test]
fn zip_with_many_entries_uses_zip64_end_records() {
    let entries: Vec<Entry> = (0..70_000)
        .map(|i| Entry {
            name: format!("f/{i}"),
            data: Vec::new(),
        })
        .collect();
    let zip = write_archive(Format::Zip, &entries);
    let idx = ZipIndex::build(Cursor::new(&zip), zip.len() as u64, &ScanLimits::default()).unwrap();
    assert_eq!(idx.entries().len(), 70_000);
    assert_eq!(idx.lookup("f/69999").unwrap().size, 0);
    assert_eq!(
        zip::ZipArchive::new(Cursor::new(&zip)).unwrap().len(),
        70_000
    );
    // EOCD (22 bytes) preceded by the zip64 locator (20) and the zip64 end record (56).
    let n = zip.len();
    assert_eq!(&zip[n - 22..n - 18], b"PK\x05\x06");
    assert_eq!(&zip[n - 42..n - 38], b"PK\x06\x07");
    assert_eq!(&zip[n - 98..n - 94], b"PK\x06\x06");
    assert_eq!(read_zip_crate(&zip).len(), 70_000);
    if have("python3") {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.zip");
        fs::write(&path, &zip).unwrap();
        let out = python(
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); \
             assert z.testzip() is None; print(len(z.infolist()))",
            &[&path],
        );
        assert_eq!(String::from_utf8(out).unwrap().trim(), "70000");
    }
    if have_unzip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("many.zip");
        fs::write(&path, &zip).unwrap();
        unzip_test(&path, &[]);
    }
}

/// Lists a TAR with Python's tarfile (any compression it knows) as a manifest.
const PY_TAR: &str = r#"
import sys, tarfile, zlib
with tarfile.open(sys.argv[1], "r:*") as t:
    for m in t.getmembers():
        assert m.isfile(), m.name
        assert m.mode == 0o644 and m.uid == 0 and m.gid == 0, m.name
        assert m.uname == "" and m.gname == "", m.name
        data = t.extractfile(m).read()
        assert len(data) == m.size
        print(f"{m.name}\t{m.size}\t{zlib.crc32(data)}")
"#;

const PY_ZIP: &str = r#"
import sys, zipfile, zlib
with zipfile.ZipFile(sys.argv[1]) as z:
    assert z.testzip() is None
    for i in z.infolist():
        assert i.compress_type == zipfile.ZIP_DEFLATED, i.filename
        assert (i.external_attr >> 16) & 0o777 == 0o644, i.filename
        assert i.flag_bits & 0x08, "data descriptor expected"
        data = z.read(i)
        print(f"{i.filename}\t{i.file_size}\t{zlib.crc32(data)}")
"#;

#[test]
fn python_reads_every_format() {
    if !have("python3") {
        return;
    }
    let entries = sample_entries();
    let want = manifest(&entries);
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Tar, Format::Tgz] {
        let path = dir.path().join(format!("out{}", format.ext()));
        fs::write(&path, write_archive(format, &entries)).unwrap();
        assert_eq!(
            parse_manifest(&python(PY_TAR, &[&path])),
            want,
            "{format:?}"
        );
    }
    let path = dir.path().join("out.zip");
    fs::write(&path, write_archive(Format::Zip, &entries)).unwrap();
    assert_eq!(parse_manifest(&python(PY_ZIP, &[&path])), want);
}

#[test]
fn lz4_cli_decodes_tar_lz4() {
    if !have("lz4") {
        return;
    }
    let entries = sample_entries();
    let dir = tempfile::tempdir().unwrap();
    let lz = dir.path().join("out.tar.lz4");
    let tar = dir.path().join("out.tar");
    fs::write(&lz, write_archive(Format::TarLz4, &entries)).unwrap();
    run(Command::new("lz4")
        .args(["-q", "-d", "-f"])
        .arg(&lz)
        .arg(&tar));
    let decoded = fs::read(&tar).unwrap();
    assert_eq!(
        decoded,
        write_archive(Format::Tar, &entries),
        "same TAR inside"
    );
    if have("python3") {
        assert_eq!(parse_manifest(&python(PY_TAR, &[&tar])), manifest(&entries));
    }
}

#[test]
fn gnu_tar_lists_tar_and_tgz() {
    if !have("tar") {
        return;
    }
    let entries = sample_entries();
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Tar, Format::Tgz] {
        let path = dir.path().join(format!("out{}", format.ext()));
        fs::write(&path, write_archive(format, &entries)).unwrap();
        let out = run(Command::new("tar").arg("-tf").arg(&path));
        let names: Vec<String> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        let want: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, want, "{format:?}");
        // Full extraction verifies sizes and framing end to end.
        let x = dir.path().join(format!("x{}", format.ext()));
        fs::create_dir(&x).unwrap();
        run(Command::new("tar").arg("-xf").arg(&path).arg("-C").arg(&x));
        for e in &entries {
            assert_eq!(fs::read(x.join(&e.name)).unwrap(), e.data, "{}", e.name);
        }
    }
}

/// An 8+ GiB member needs a PAX `size` record. The payload is a hole in a sparse file, so
/// readers that seek over it (ours, Python, GNU tar) handle it without writing gigabytes.
#[test]
fn huge_member_header_readable() {
    let size = (8u64 << 30) + 5;
    let mut head = Vec::new();
    moss_archive::tarfmt::push_file_header(&mut head, "huge.bin", size, 0);
    let data_offset = head.len() as u64;
    let end = data_offset + size + moss_archive::tarfmt::padding(size) as u64;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.tar");
    {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&head).unwrap();
        f.seek(SeekFrom::Start(end)).unwrap();
        f.write_all(&moss_archive::tarfmt::TRAILER).unwrap();
    }
    let f = fs::File::open(&path).unwrap();
    let total = f.metadata().unwrap().len();
    let idx = TarIndex::build(f, total, &ScanLimits::default()).unwrap();
    let m = idx.lookup("huge.bin").unwrap();
    assert_eq!((m.size, m.data_offset), (size, data_offset));

    if have("python3") {
        let out = python(
            "import sys, tarfile\nfor m in tarfile.open(sys.argv[1]): print(m.name, m.size)",
            &[&path],
        );
        assert_eq!(
            String::from_utf8(out).unwrap().trim(),
            format!("huge.bin {size}")
        );
    }
    if have("tar") {
        let out = run(Command::new("tar").arg("-tvf").arg(&path));
        assert!(String::from_utf8(out).unwrap().contains(&size.to_string()));
    }
}

/// Writes a > 4 GiB entry to check zip64 sizes end to end (zeros deflate to ~4 MiB in a few
/// seconds).
#[test]
fn zip_entry_over_4gib() {
    let size = (4u64 << 30) + 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.zip");
    let file = std::io::BufWriter::new(fs::File::create(&path).unwrap());
    let mut w = moss_archive::writer::new_writer(Format::Zip, file);
    w.start_entry("small", 3, 0).unwrap();
    w.write_data(b"abc").unwrap();
    w.finish_entry().unwrap();
    w.start_entry("big", size, 0).unwrap();
    let chunk = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        w.write_data(&chunk[..n]).unwrap();
        left -= n as u64;
    }
    w.finish_entry().unwrap();
    w.start_entry("after", 2, 0).unwrap();
    w.write_data(b"xy").unwrap();
    w.finish_entry().unwrap();
    w.finish().unwrap();

    let f = fs::File::open(&path).unwrap();
    let total = f.metadata().unwrap().len();
    let idx = ZipIndex::build(&f, total, &ScanLimits::default()).unwrap();
    assert_eq!(idx.lookup("big").unwrap().size, size);
    let mut data = Vec::new();
    shard::open_zip_member(&f, idx.lookup("after").unwrap())
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(data, b"xy");
    let n = std::io::copy(
        &mut shard::open_zip_member(&f, idx.lookup("big").unwrap()).unwrap(),
        &mut std::io::sink(),
    )
    .unwrap();
    assert_eq!(n, size);
    if have("python3") {
        let out = python(
            "import sys, zipfile\nfor i in zipfile.ZipFile(sys.argv[1]).infolist(): print(i.filename, i.file_size)",
            &[&path],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("small 3\nbig {size}\nafter 2\n")
        );
    }
}

/// Local headers past 4 GiB need zip64 offsets, and a central directory there the zip64 end
/// records; an entry just under the writer's zip64 threshold (3.5 GiB) must stay a 32-bit entry
/// even when deflate expands it by the worst-case 12.5%. About 4 GiB go through deflate, so
/// this runs on request:
/// `cargo test -p moss-archive --release --test roundtrip -- --ignored zip_offsets_past_4gib`.
/// The big entries' compressed bytes are skipped in the file (holes), not stored: the readers
/// here only read the small entries and the directory.
#[test]
#[ignore = "deflates about 4 GiB (a minute or so)"]
fn zip_offsets_past_4gib() {
    use std::io::{Seek, SeekFrom, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A file that seeks over writes while `skip` is set.
    struct Holes {
        file: fs::File,
        skip: Arc<AtomicBool>,
    }
    impl Write for Holes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.skip.load(Ordering::Relaxed) {
                self.file.seek(SeekFrom::Current(buf.len() as i64))?;
                return Ok(buf.len());
            }
            self.file.write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.file.flush()
        }
    }

    const JUST_UNDER_ZIP64: u64 = (7 << 29) - 1;
    // Pseudo-random, so deflate finds no matches within its 32 KiB window.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..16 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect();
    // Bytes 144..=255 all have 9-bit literal codes: the worst case for level 1.
    let worst: Vec<u8> = noise.iter().map(|b| 144 + b % 112).collect();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("offsets.zip");
    let skip = Arc::new(AtomicBool::new(false));
    let sink = Holes {
        file: fs::File::create(&path).unwrap(),
        skip: Arc::clone(&skip),
    };
    let mut w = moss_archive::writer::new_writer(Format::Zip, sink);
    let mut put = |name: &str, size: u64, fill: &[u8], holes: bool| {
        w.start_entry(name, size, 1_700_000_000).unwrap();
        skip.store(holes, Ordering::Relaxed);
        let mut left = size;
        while left > 0 {
            let n = left.min(fill.len() as u64) as usize;
            w.write_data(&fill[..n]).unwrap();
            left -= n as u64;
        }
        skip.store(false, Ordering::Relaxed);
        w.finish_entry().unwrap();
    };
    put("small", 3, b"abc", false);
    put("worst", JUST_UNDER_ZIP64, &worst, true);
    put("mid", 5, b"12345", false);
    put("noise", 600 << 20, &noise, true);
    put("after", 2, b"xy", false);
    put("after", 2, b"zz", false);
    w.finish().unwrap();

    let f = fs::File::open(&path).unwrap();
    let total = f.metadata().unwrap().len();
    assert!(total > 1 << 32);
    let idx = ZipIndex::build(&f, total, &ScanLimits::default()).unwrap();
    let e = idx.entries();
    let names: Vec<&str> = e.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["small", "worst", "mid", "noise", "after", "after"]);
    assert_eq!(e[1].size, JUST_UNDER_ZIP64);
    assert!(e[1].compressed_size > JUST_UNDER_ZIP64 + JUST_UNDER_ZIP64 / 10);
    assert!(e[1].compressed_size < u64::from(u32::MAX));
    assert!(e[3].header_offset < 1 << 32 && e[4].header_offset > 1 << 32);
    for (i, want) in [(0, &b"abc"[..]), (2, b"12345"), (4, b"xy"), (5, b"zz")] {
        let mut data = Vec::new();
        shard::open_zip_member(&f, &e[i])
            .unwrap()
            .read_to_end(&mut data)
            .unwrap();
        assert_eq!(data, want, "{}", e[i].name);
    }
    let mut iterable =
        zip::unstable::read::ZipIterable::try_new(&f, zip::read::Config::default()).unwrap();
    let mut body = &f;
    let mut seen = Vec::new();
    for entry in iterable.files().unwrap() {
        let entry = entry.unwrap();
        let (name, size) = (entry.name().unwrap().into_owned(), entry.size());
        let mut data = Vec::new();
        if size < 100 {
            entry
                .with_reader(&mut body, zip::ZipReadOptions::default())
                .unwrap()
                .read_to_end(&mut data)
                .unwrap();
        }
        seen.push((name, size, data));
    }
    let want: Vec<(String, u64, Vec<u8>)> = [
        ("small", 3, &b"abc"[..]),
        ("worst", JUST_UNDER_ZIP64, b""),
        ("mid", 5, b"12345"),
        ("noise", 600 << 20, b""),
        ("after", 2, b"xy"),
        ("after", 2, b"zz"),
    ]
    .iter()
    .map(|(n, s, d)| (n.to_string(), *s, d.to_vec()))
    .collect();
    assert_eq!(seen, want);
    // The directory starts past 4 GiB, so the zip64 end records are there.
    let mut tail = vec![0u8; 98];
    (&f).seek(SeekFrom::Start(total - 98)).unwrap();
    (&f).read_exact(&mut tail).unwrap();
    assert_eq!(&tail[..4], b"PK\x06\x06");
    assert_eq!(&tail[56..60], b"PK\x06\x07");

    if have("python3") {
        let out = python(
            "import sys, zipfile\n\
             z = zipfile.ZipFile(sys.argv[1])\n\
             for i in z.infolist():\n\
             \x20   data = z.read(i) if i.file_size < 100 else b''\n\
             \x20   print(i.filename, i.file_size, i.header_offset > 2**32, data.decode())",
            &[&path],
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "small 3 False abc\nworst {JUST_UNDER_ZIP64} False \nmid 5 False 12345\n\
                 noise {} False \nafter 2 True xy\nafter 2 True zz\n",
                600 << 20
            )
        );
    }
    if have_unzip() {
        unzip_test(&path, &["small", "mid", "after"]);
    }
}
