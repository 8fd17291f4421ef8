//! Every writer format read back by independent readers: the `tar`, `flate2`, `lz4_flex` and
//! `zip` crates, Python's tarfile/zipfile, GNU tar and the `lz4` CLI, and this crate's own
//! shard readers.
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

/// The `zip` crate refuses a second entry of the same name; the writer stays usable.
#[test]
fn zip_rejects_duplicate_names() {
    let sink = SharedSink::default();
    let mut w = moss_archive::writer::new_writer(Format::Zip, sink.clone());
    w.start_entry("same", 1, 0).unwrap();
    w.write_data(b"1").unwrap();
    w.finish_entry().unwrap();
    let err = w.start_entry("same", 1, 0).unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("duplicate"),
        "{err}"
    );
    w.start_entry("other", 1, 0).unwrap();
    w.write_data(b"2").unwrap();
    w.finish_entry().unwrap();
    w.finish().unwrap();
    let zip = sink.0.lock().unwrap().clone();
    let names: Vec<String> = read_with_zip_index(&zip)
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, ["same", "other"]);
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
