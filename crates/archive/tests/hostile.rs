//! Damaged and malicious shards: truncation at every offset, flipped header bytes, sizes past
//! the end, bogus ZIP directories, decompression bombs and lying ZIP members. Every failure
//! must be a typed error (`Corrupt` or `Limit`), never a panic or a huge allocation.
// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]
mod common;

use std::io::{Cursor, Read, Write};

use common::*;
use moss_archive::shard::{self, Member, ScanLimits, Select, TarIndex, ZipEntry, ZipIndex};
use moss_archive::tarfmt::{self, BLOCK};
use moss_archive::{ArchiveError, Format};

fn small_entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "a.txt".into(),
            data: b"alpha".to_vec(),
        },
        Entry {
            name: format!("{}/long.bin", "l".repeat(200)),
            data: bytes(600, 1),
        },
        Entry {
            name: "empty".into(),
            data: Vec::new(),
        },
        Entry {
            name: "é/b.bin".into(),
            data: bytes(1024, 2),
        },
    ]
}

fn index(tar: &[u8]) -> Result<TarIndex, ArchiveError> {
    index_with(tar, &ScanLimits::default())
}

fn index_with(tar: &[u8], limits: &ScanLimits) -> Result<TarIndex, ArchiveError> {
    TarIndex::build(Cursor::new(tar), tar.len() as u64, limits)
}

/// Scans a stream, reading every payload fully; returns the members seen.
fn scan(format: Format, raw: &[u8], limits: &ScanLimits) -> Result<Vec<Member>, ArchiveError> {
    let mut seen = Vec::new();
    shard::scan_tar(
        shard::decoder(format, raw, limits),
        limits,
        |_| Select::Take(0),
        |_, m, r| {
            let mut data = Vec::new();
            r.read_to_end(&mut data)
                .map_err(shard::into_archive_error)?;
            seen.push(m.clone());
            Ok(())
        },
    )?;
    Ok(seen)
}

fn assert_corrupt<T: std::fmt::Debug>(r: Result<T, ArchiveError>, ctx: &str) {
    match r {
        Err(ArchiveError::Corrupt(_)) => {}
        other => panic!("{ctx}: expected Corrupt, got {other:?}"),
    }
}

fn assert_limit<T: std::fmt::Debug>(r: Result<T, ArchiveError>, ctx: &str) {
    match r {
        Err(ArchiveError::Limit(_)) => {}
        other => panic!("{ctx}: expected Limit, got {other:?}"),
    }
}

/// Rewrites the checksum of the header block at `off`.
fn fix_checksum(tar: &mut [u8], off: usize) {
    let hdr = &mut tar[off..off + BLOCK];
    hdr[148..156].fill(b' ');
    let sum: u32 = hdr.iter().map(|&b| u32::from(b)).sum();
    hdr[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

/// A header block of type `typeflag` with `size`, checksum fixed.
fn header(name: &str, size: u64, typeflag: u8) -> Vec<u8> {
    let mut h = Vec::new();
    tarfmt::push_file_header(&mut h, name, size, 0);
    assert_eq!(h.len(), BLOCK);
    h[156] = typeflag;
    fix_checksum(&mut h, 0);
    h
}

fn padded(mut data: Vec<u8>) -> Vec<u8> {
    data.resize(data.len() + tarfmt::padding(data.len() as u64), 0);
    data
}

#[test]
fn tar_truncated_at_every_offset() {
    let tar = write_archive(Format::Tar, &small_entries());
    let full = index(&tar).unwrap();
    let full_members = full.members().to_vec();
    assert_eq!(full_members.len(), 4);
    let last = &full_members[3];
    let trailer = (last.data_offset + last.size) as usize + tarfmt::padding(last.size);
    for cut in 0..tar.len() {
        let part = &tar[..cut];
        match index(part) {
            Ok(idx) => {
                // The first zero block ends the archive; the rest of the trailer is not read.
                let complete = cut % BLOCK == 0 || cut >= trailer + BLOCK;
                assert!(complete, "cut {cut} accepted off a block boundary");
                assert_eq!(
                    idx.members(),
                    &full_members[..idx.members().len()],
                    "cut {cut}"
                );
            }
            Err(e) => assert_corrupt(Err::<(), _>(e), &format!("index, cut {cut}")),
        }
        match scan(Format::Tar, part, &ScanLimits::default()) {
            Ok(seen) => assert_eq!(seen, full_members[..seen.len()], "scan, cut {cut}"),
            Err(e) => assert_corrupt(Err::<(), _>(e), &format!("scan, cut {cut}")),
        }
    }
    // Ending right after the last padded payload (no trailer) is a complete archive.
    assert_eq!(index(&tar[..trailer]).unwrap().members().len(), 4);
    // One zero block then EOF is fine too.
    assert_eq!(index(&tar[..trailer + BLOCK]).unwrap().members().len(), 4);
    // Without the padding of the last payload it is not.
    assert_corrupt(index(&tar[..trailer - 1]), "unpadded end");
}

#[test]
fn compressed_streams_truncated() {
    let entries = small_entries();
    let full = index(&write_archive(Format::Tar, &entries))
        .unwrap()
        .members()
        .to_vec();
    for format in [Format::Tgz, Format::TarLz4] {
        let raw = write_archive(format, &entries);
        for cut in 0..raw.len() {
            match scan(format, &raw[..cut], &ScanLimits::default()) {
                Ok(seen) => assert_eq!(seen, full[..seen.len()], "{format:?} cut {cut}"),
                Err(e) => assert_corrupt(Err::<(), _>(e), &format!("{format:?} cut {cut}")),
            }
        }
    }
}

#[test]
fn flipped_header_bytes_fail_the_checksum() {
    let tar = write_archive(
        Format::Tar,
        &[Entry {
            name: "x".into(),
            data: b"data".to_vec(),
        }],
    );
    for pos in 0..BLOCK {
        let mut bad = tar.clone();
        bad[pos] ^= 0xff;
        if pos == 155 {
            // The byte after the checksum's NUL terminator is not part of the number.
            assert!(index(&bad).is_ok());
            continue;
        }
        assert_corrupt(index(&bad), &format!("index, byte {pos}"));
        assert_corrupt(
            scan(Format::Tar, &bad, &ScanLimits::default()),
            &format!("scan, byte {pos}"),
        );
    }
}

#[test]
fn size_fields_past_the_end() {
    let mut tar = write_archive(
        Format::Tar,
        &[Entry {
            name: "x".into(),
            data: b"data".to_vec(),
        }],
    );
    tar[124..136].copy_from_slice(b"77777777777\0");
    fix_checksum(&mut tar, 0);
    assert_corrupt(index(&tar), "octal size");
    assert_corrupt(
        scan(Format::Tar, &tar, &ScanLimits::default()),
        "octal size scan",
    );
    // Base-256 size of 2^62.
    tar[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0]);
    fix_checksum(&mut tar, 0);
    assert_corrupt(index(&tar), "base-256 size");
    // Base-256 that overflows u64, and garbage.
    tar[124..136].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
    fix_checksum(&mut tar, 0);
    assert_corrupt(index(&tar), "overflowing size");
    tar[124..136].copy_from_slice(b"12345678z\0\0\0");
    fix_checksum(&mut tar, 0);
    assert_corrupt(index(&tar), "garbage size");
    // The largest base-256 size: padding it overflows, whether skipped or visited.
    tar[124..136].copy_from_slice(&[
        0x80, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ]);
    fix_checksum(&mut tar, 0);
    assert_corrupt(index(&tar), "u64::MAX size");
    let limits = ScanLimits::default();
    for select in [Select::Skip, Select::Take(0)] {
        let r = shard::scan_tar(&tar[..], &limits, |_| select, |_, _, _| Ok(()));
        assert_corrupt(r, "u64::MAX size scan");
    }
}

#[test]
fn huge_long_name_record_is_a_limit_or_corrupt() {
    // A GNU long-name record claiming 1 GiB in a tiny file: checked against the file first.
    let mut tar = header("././@LongLink", 1 << 30, b'L');
    tar.extend(header("x", 0, b'0'));
    assert_corrupt(index(&tar), "long name past the end");
    // Present but over the name limit.
    let limits = ScanLimits {
        max_name_len: 100,
        ..ScanLimits::default()
    };
    let mut tar = header("././@LongLink", 101, b'L');
    tar.extend(padded(vec![b'n'; 101]));
    tar.extend(header("x", 0, b'0'));
    assert_limit(index_with(&tar, &limits), "long name over limit");
    assert_limit(
        scan(Format::Tar, &tar, &limits),
        "long name over limit (scan)",
    );
    let limits = ScanLimits {
        max_name_len: 101,
        ..ScanLimits::default()
    };
    assert_eq!(
        index_with(&tar, &limits).unwrap().members()[0].name,
        "n".repeat(101)
    );
}

#[test]
fn pax_records_are_checked() {
    let pax = |records: &[u8]| {
        let mut tar = header("PaxHeaders/x", records.len() as u64, b'x');
        tar.extend(padded(records.to_vec()));
        tar.extend(header("x", 3, b'0'));
        tar.extend(padded(b"abc".to_vec()));
        tar
    };
    // Valid: path, unrelated records, and a size that matches the payload.
    let ok = pax(b"30 mtime=1600000000.123456789\n14 path=a/b/c\n9 size=3\n");
    let idx = index(&ok).unwrap();
    assert_eq!(idx.members()[0].name, "a/b/c");
    assert_eq!(idx.members()[0].size, 3);
    assert_eq!(
        scan(Format::Tar, &ok, &ScanLimits::default()).unwrap()[0].name,
        "a/b/c"
    );
    // A long key that is not "path" is skipped.
    let ok = pax(b"37 SCHILY.xattr.user.something=value\n");
    assert_eq!(index(&ok).unwrap().members()[0].name, "x");

    for bad in [
        &b"99 path=a\n"[..],                 // length past the end of the header
        b"5 path=abc\n",                     // length shorter than the record
        b"x path=a\n",                       // no length
        b"12 pathabcd\n",                    // no '='
        b"11 path=ab!",                      // no newline
        b"12 size=1x2\n",                    // bad number
        b"30 size=99999999999999999999\n",   // overflow
        b"99999999999999999999999 path=a\n", // length overflows
    ] {
        let tar = pax(bad);
        assert_corrupt(index(&tar), &String::from_utf8_lossy(bad));
        assert_corrupt(
            scan(Format::Tar, &tar, &ScanLimits::default()),
            &String::from_utf8_lossy(bad),
        );
    }
    // A PAX size pointing past the end of the file.
    assert_corrupt(index(&pax(b"16 size=1000000\n")), "pax size past end");
    // A path over the name limit.
    let limits = ScanLimits {
        max_name_len: 4,
        ..ScanLimits::default()
    };
    assert_limit(
        index_with(&pax(b"14 path=a/b/c\n"), &limits),
        "pax path over limit",
    );
}

#[test]
fn member_limit() {
    let entries: Vec<Entry> = (0..5)
        .map(|i| Entry {
            name: format!("{i}"),
            data: vec![1],
        })
        .collect();
    let limits = ScanLimits {
        max_members: 4,
        ..ScanLimits::default()
    };
    let tar = write_archive(Format::Tar, &entries);
    assert_limit(index_with(&tar, &limits), "tar index");
    assert_limit(scan(Format::Tar, &tar, &limits), "tar scan");
    let zip = write_archive(Format::Zip, &entries);
    assert_limit(
        ZipIndex::build(Cursor::new(&zip), zip.len() as u64, &limits),
        "zip",
    );
    let limits = ScanLimits {
        max_members: 5,
        ..ScanLimits::default()
    };
    assert!(index_with(&tar, &limits).is_ok());
}

#[test]
fn decompression_bombs_are_stopped() {
    let zeros = vec![0u8; 1 << 20];
    for format in [Format::Tgz, Format::TarLz4] {
        let sink = SharedSink::default();
        let mut w = moss_archive::writer::new_writer(format, sink.clone());
        w.start_entry("bomb", 64 << 20, 0).unwrap();
        for _ in 0..64 {
            w.write_data(&zeros).unwrap();
        }
        w.finish_entry().unwrap();
        w.finish().unwrap();
        let raw = sink.0.lock().unwrap().clone();
        assert!(raw.len() < 1 << 20, "{format:?}: {} bytes", raw.len());
        let limits = ScanLimits {
            max_output_bytes: 4 << 20,
            ..ScanLimits::default()
        };
        // Visiting the payload and skipping it both hit the cap.
        assert_limit(scan(format, &raw, &limits), &format!("{format:?} visit"));
        let skipped = shard::scan_tar(
            shard::decoder(format, &raw[..], &limits),
            &limits,
            |_| Select::Skip,
            |_, _, _| Ok(()),
        );
        assert_limit(skipped, &format!("{format:?} skip"));
        // Under a sufficient cap the same stream is fine.
        let limits = ScanLimits {
            max_output_bytes: 65 << 20,
            ..ScanLimits::default()
        };
        assert_eq!(scan(format, &raw, &limits).unwrap().len(), 1);
    }
}

fn zip_index(zip: &[u8]) -> Result<ZipIndex, ArchiveError> {
    ZipIndex::build(Cursor::new(zip), zip.len() as u64, &ScanLimits::default())
}

fn read_member(zip: &[u8], e: &ZipEntry) -> Result<Vec<u8>, ArchiveError> {
    let mut out = Vec::new();
    shard::open_zip_member(Cursor::new(zip), e)?
        .read_to_end(&mut out)
        .map_err(shard::into_archive_error)?;
    Ok(out)
}

/// Offset of the EOCD record.
fn eocd(zip: &[u8]) -> usize {
    zip.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap()
}

/// A named in-place change to an archive.
type Patch = (&'static str, Box<dyn Fn(&mut Vec<u8>)>);

fn put32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put16(buf: &mut [u8], at: usize, v: u16) {
    buf[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn bogus_zip_end_records() {
    let zip = write_archive(Format::Zip, &small_entries());
    let e = eocd(&zip);
    let mutations: Vec<Patch> = vec![
        (
            "cd offset",
            Box::new(move |z| put32(z, e + 16, 0xffff_fff0)),
        ),
        ("cd size", Box::new(move |z| put32(z, e + 12, 0xffff_fff0))),
        (
            "cd offset + size overlap eocd",
            Box::new(move |z| put32(z, e + 16, 4)),
        ),
        ("entry count", Box::new(move |z| put16(z, e + 10, 0xffff))),
        ("disk number", Box::new(move |z| put16(z, e + 4, 1))),
        ("no eocd", Box::new(move |z| z[e] = b'Q')),
        ("comment length", Box::new(move |z| put16(z, e + 20, 5))),
    ];
    for (what, mutate) in mutations {
        let mut bad = zip.clone();
        mutate(&mut bad);
        assert_corrupt(zip_index(&bad), what);
    }
    assert_corrupt(zip_index(b"PK\x05\x06"), "too short");
    assert_corrupt(zip_index(b""), "empty");
    // Fewer entries than present is fine: only those are read.
    let mut fewer = zip.clone();
    put16(&mut fewer, e + 8, 1);
    put16(&mut fewer, e + 10, 1);
    assert_eq!(zip_index(&fewer).unwrap().entries().len(), 1);
}

#[test]
fn bogus_zip64_records() {
    let zip = write_archive(Format::Zip, &small_entries());
    let e = eocd(&zip);
    let (cd_size, cd_off) = (
        u32::from_le_bytes(zip[e + 12..e + 16].try_into().unwrap()) as u64,
        u32::from_le_bytes(zip[e + 16..e + 20].try_into().unwrap()) as u64,
    );
    // Rebuild the tail as: CD, zip64 EOCD, locator, EOCD with saturated fields.
    let build = |entries: u64, size: u64, offset: u64, record_at: Option<u64>| {
        let mut z = zip[..e].to_vec();
        let record_pos = z.len() as u64;
        z.extend_from_slice(b"PK\x06\x06");
        z.extend_from_slice(&44u64.to_le_bytes());
        z.extend_from_slice(&[45, 0, 45, 0]);
        z.extend_from_slice(&[0; 8]); // disk numbers
        z.extend_from_slice(&entries.to_le_bytes());
        z.extend_from_slice(&entries.to_le_bytes());
        z.extend_from_slice(&size.to_le_bytes());
        z.extend_from_slice(&offset.to_le_bytes());
        z.extend_from_slice(b"PK\x06\x07");
        z.extend_from_slice(&0u32.to_le_bytes());
        z.extend_from_slice(&record_at.unwrap_or(record_pos).to_le_bytes());
        z.extend_from_slice(&1u32.to_le_bytes());
        let mut end = zip[e..].to_vec();
        end[8..20].fill(0xff);
        z.extend(end);
        z
    };
    let good = build(4, cd_size, cd_off, None);
    assert_eq!(zip_index(&good).unwrap().entries().len(), 4);
    assert_corrupt(
        zip_index(&build(u64::MAX, cd_size, cd_off, None)),
        "zip64 entries",
    );
    assert_corrupt(zip_index(&build(4, u64::MAX, cd_off, None)), "zip64 size");
    assert_corrupt(
        zip_index(&build(4, cd_size, u64::MAX - 3, None)),
        "zip64 offset",
    );
    assert_corrupt(
        zip_index(&build(4, cd_size, cd_off, Some(u64::MAX - 10))),
        "locator",
    );
    // A locator pointing before the record (as after prepending a self-extractor stub) is
    // corrected to the record right before it, as Python's zipfile reads it.
    let shifted = zip_index(&build(4, cd_size, cd_off, Some(0))).unwrap();
    assert_eq!(shifted.entries().len(), 4);
}

/// Offset of the first central directory entry.
fn first_cd_entry(zip: &[u8]) -> usize {
    zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap()
}

#[test]
fn bogus_zip_directory_entries() {
    let zip = write_archive(Format::Zip, &small_entries());
    let c = first_cd_entry(&zip);
    let mutations: Vec<Patch> = vec![
        ("signature", Box::new(move |z| z[c] = b'Q')),
        (
            "header offset",
            Box::new(move |z| put32(z, c + 42, 0x7fff_ffff)),
        ),
        (
            "compressed size",
            Box::new(move |z| put32(z, c + 20, 0x7fff_ffff)),
        ),
        ("name length", Box::new(move |z| put16(z, c + 28, 0xffff))),
        ("extra length", Box::new(move |z| put16(z, c + 30, 0xffff))),
    ];
    for (what, mutate) in mutations {
        let mut bad = zip.clone();
        mutate(&mut bad);
        assert_corrupt(zip_index(&bad), what);
    }
    let limits = ScanLimits {
        max_name_len: 3,
        ..ScanLimits::default()
    };
    assert_limit(
        ZipIndex::build(Cursor::new(&zip), zip.len() as u64, &limits),
        "name limit",
    );
    // A saturated size without a zip64 extra field is taken literally (as other readers do);
    // the member then fails to read.
    let mut bad = zip.clone();
    put32(&mut bad, c + 24, 0xffff_ffff);
    let idx = zip_index(&bad).unwrap();
    assert_eq!(idx.entries()[0].size, 0xffff_ffff);
    assert_corrupt(read_member(&bad, &idx.entries()[0]), "saturated size");
}

#[test]
fn zip_truncated_at_every_offset() {
    let zip = write_archive(Format::Zip, &small_entries());
    for cut in 0..zip.len() {
        let part = &zip[..cut];
        match zip_index(part) {
            Ok(idx) => {
                for e in idx.entries() {
                    let r = read_member(part, e);
                    assert!(
                        matches!(r, Ok(_) | Err(ArchiveError::Corrupt(_))),
                        "cut {cut}: {r:?}"
                    );
                }
            }
            Err(e) => assert_corrupt(Err::<(), _>(e), &format!("cut {cut}")),
        }
    }
}

#[test]
fn lying_zip_members() {
    let entries = small_entries();
    let zip = write_archive(Format::Zip, &entries);
    let idx = zip_index(&zip).unwrap();
    let e = idx.lookup("é/b.bin").unwrap().clone();
    assert_eq!(read_member(&zip, &e).unwrap(), entries[3].data);

    // Declared smaller than the data decompresses to: caught even by an exact-size read.
    let smaller = ZipEntry {
        size: e.size - 1,
        ..e.clone()
    };
    assert_corrupt(read_member(&zip, &smaller), "more than declared");
    let mut exact = vec![0u8; smaller.size as usize];
    let r = shard::open_zip_member(Cursor::new(&zip), &smaller)
        .unwrap()
        .read_exact(&mut exact);
    assert_corrupt(
        r.map_err(shard::into_archive_error),
        "more than declared, exact read",
    );
    // Declared larger.
    assert_corrupt(
        read_member(
            &zip,
            &ZipEntry {
                size: e.size + 1,
                ..e.clone()
            },
        ),
        "less than declared",
    );
    // Wrong CRC, also caught by an exact-size read.
    let bad_crc = ZipEntry {
        crc32: e.crc32 ^ 1,
        ..e.clone()
    };
    assert_corrupt(read_member(&zip, &bad_crc), "crc");
    let mut exact = vec![0u8; e.size as usize];
    let r = shard::open_zip_member(Cursor::new(&zip), &bad_crc)
        .unwrap()
        .read_exact(&mut exact);
    assert_corrupt(r.map_err(shard::into_archive_error), "crc, exact read");
    // Compressed data cut short.
    assert_corrupt(
        read_member(
            &zip,
            &ZipEntry {
                compressed_size: 10,
                ..e.clone()
            },
        ),
        "short data",
    );
    // Unsupported method and broken local header.
    match read_member(
        &zip,
        &ZipEntry {
            method: 12,
            ..e.clone()
        },
    ) {
        Err(ArchiveError::Corrupt(m)) => assert_eq!(m, "unsupported compression method 12"),
        other => panic!("{other:?}"),
    }
    assert_corrupt(
        read_member(
            &zip,
            &ZipEntry {
                header_offset: e.header_offset + 1,
                ..e.clone()
            },
        ),
        "local sig",
    );
    assert_corrupt(
        read_member(
            &zip,
            &ZipEntry {
                header_offset: zip.len() as u64 + 5,
                ..e.clone()
            },
        ),
        "past end",
    );
    // Stored members whose sizes disagree.
    assert_corrupt(
        read_member(
            &zip,
            &ZipEntry {
                method: 0,
                ..e.clone()
            },
        ),
        "stored sizes",
    );

    // Encrypted flag in the local header.
    let mut enc = zip.clone();
    enc[e.header_offset as usize + 6] |= 1;
    assert_corrupt(read_member(&enc, &e), "encrypted");
    // A flipped byte in the deflate data.
    let mut flipped = zip.clone();
    let data_at = e.header_offset as usize + 30 + "é/b.bin".len() + 40;
    flipped[data_at] ^= 0x55;
    assert_corrupt(read_member(&flipped, &e), "flipped data");
}

#[test]
fn dropped_zip_writer_adds_nothing() {
    let sink = SharedSink::default();
    let mut w = moss_archive::writer::new_writer(Format::Zip, sink.clone());
    w.start_entry("a", 10, 0).unwrap();
    w.write_data(b"12345").unwrap();
    let before = sink.0.lock().unwrap().len();
    drop(w);
    let after = sink.0.lock().unwrap().clone();
    assert_eq!(after.len(), before, "no central directory after a drop");
    assert!(!after.windows(4).any(|w| w == b"PK\x05\x06"));
}

#[test]
fn tar_sink_errors_do_not_panic() {
    struct Broken;
    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("gone"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    for format in [Format::Tar, Format::Tgz, Format::TarLz4, Format::Zip] {
        let mut w = moss_archive::writer::new_writer(format, Broken);
        let r = w
            .start_entry("a", 300_000, 0)
            .and_then(|()| w.write_data(&vec![1u8; 300_000]))
            .and_then(|()| w.finish_entry());
        let finished = r.and_then(|()| w.finish());
        assert!(finished.is_err(), "{format:?}");
    }
}
