//! Property tests: randomly damaged archives of every format (flipped, truncated, inserted and
//! overwritten bytes) fed to every reader. Each must terminate without panicking and return
//! either a result consistent with its input or a typed `Corrupt`/`Limit` error.
// Helpers outside #[test] functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]
mod common;

use std::io::{self, Cursor, Read};
use std::sync::OnceLock;

use common::*;
use moss_archive::shard::{self, ScanLimits, Select, TarIndex, ZipIndex};
use moss_archive::{ArchiveError, Format};
use proptest::prelude::*;

/// Small archives (a few KB) so each case is fast and mutations hit headers often.
fn entries() -> Vec<Entry> {
    vec![
        Entry {
            name: "a.txt".into(),
            data: b"alpha".to_vec(),
        },
        Entry {
            name: format!("{}/long.bin", "l".repeat(150)),
            data: bytes(700, 1),
        },
        Entry {
            name: "empty".into(),
            data: Vec::new(),
        },
        Entry {
            name: "ü/b.bin".into(),
            data: bytes(1500, 2),
        },
    ]
}

/// A GNU-format TAR with a long name (`L` record), made with the `tar` crate.
fn gnu_tar() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries() {
        let mut h = tar::Header::new_gnu();
        h.set_size(e.data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, &e.name, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A ZIP with stored entries, made with the `zip` crate.
fn stored_zip() -> Vec<u8> {
    let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.add_directory("dir/", opts).unwrap();
    for e in entries() {
        z.start_file(e.name.as_str(), opts).unwrap();
        io::Write::write_all(&mut z, &e.data).unwrap();
    }
    z.finish().unwrap().into_inner()
}

struct Bases {
    tar: Vec<u8>,
    gnu: Vec<u8>,
    tgz: Vec<u8>,
    lz4: Vec<u8>,
    zip: Vec<u8>,
    stored_zip: Vec<u8>,
}

fn bases() -> &'static Bases {
    static BASES: OnceLock<Bases> = OnceLock::new();
    BASES.get_or_init(|| Bases {
        tar: write_archive(Format::Tar, &entries()),
        gnu: gnu_tar(),
        tgz: write_archive(Format::Tgz, &entries()),
        lz4: write_archive(Format::TarLz4, &entries()),
        zip: write_archive(Format::Zip, &entries()),
        stored_zip: stored_zip(),
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Overwrite(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        1 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        // Overwrites with 0xff runs make size and count fields huge.
        2 => (any::<usize>(), prop::collection::vec(prop_oneof![Just(0xffu8), Just(0u8), any::<u8>()], 1..12))
            .prop_map(|(i, b)| Mutation::Overwrite(i, b)),
    ]
}

fn apply(base: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut data = base.to_vec();
    for m in mutations {
        if data.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(i, x) => {
                let n = data.len();
                data[i % n] ^= x;
            }
            Mutation::Truncate(i) => data.truncate(i % data.len()),
            Mutation::Insert(i, bytes) => {
                let at = i % (data.len() + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Overwrite(i, bytes) => {
                let at = i % data.len();
                for (d, b) in data[at..].iter_mut().zip(bytes) {
                    *d = *b;
                }
            }
        }
    }
    data
}

fn limits() -> ScanLimits {
    ScanLimits {
        max_output_bytes: 16 << 20,
        max_members: 10_000,
        max_name_len: 4096,
    }
}

/// Fails the case on errors that in-memory input cannot legitimately produce.
fn typed(r: Result<(), ArchiveError>) -> Result<(), TestCaseError> {
    match r {
        Ok(()) | Err(ArchiveError::Corrupt(_) | ArchiveError::Limit(_)) => Ok(()),
        Err(e) => Err(TestCaseError::fail(format!("untyped error: {e:?}"))),
    }
}

fn check_index(data: &[u8]) -> Result<(), TestCaseError> {
    match TarIndex::build(Cursor::new(data), data.len() as u64, &limits()) {
        Ok(idx) => {
            for m in idx.members() {
                // Every payload the index promises lies inside the input.
                let end = m.data_offset.checked_add(m.size);
                prop_assert!(end.is_some_and(|e| e <= data.len() as u64), "{m:?}");
                prop_assert!(idx.lookup(&m.name).is_some());
            }
            Ok(())
        }
        Err(e) => typed(Err(e)),
    }
}

fn check_scan(format: Format, data: &[u8], take_every: usize) -> Result<(), TestCaseError> {
    let limits = limits();
    let mut n = 0;
    let r = shard::scan_tar(
        shard::decoder(format, data, &limits),
        &limits,
        |_| {
            n += 1;
            if n % take_every == 0 {
                Select::Take(n)
            } else {
                Select::Skip
            }
        },
        |_, m, r| {
            // Read part of the payloads, all of others.
            let want = if m.size % 2 == 0 {
                u64::MAX
            } else {
                m.size / 2
            };
            io::copy(&mut r.take(want), &mut io::sink()).map_err(shard::into_archive_error)?;
            Ok(())
        },
    );
    typed(r)
}

fn check_zip(data: &[u8]) -> Result<(), TestCaseError> {
    let idx = match ZipIndex::build(Cursor::new(data), data.len() as u64, &limits()) {
        Ok(idx) => idx,
        Err(e) => return typed(Err(e)),
    };
    for e in idx.entries() {
        let r = shard::open_zip_member(Cursor::new(data), e).and_then(|mut r| {
            // Bounded so a lying size cannot make the test itself slow.
            io::copy(&mut (&mut r).take(32 << 20), &mut io::sink())
                .map_err(shard::into_archive_error)?;
            Ok(())
        });
        typed(r)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn damaged_tar(ms in prop::collection::vec(mutation(), 1..4), take in 1..3usize) {
        for base in [&bases().tar, &bases().gnu] {
            let data = apply(base, &ms);
            check_index(&data)?;
            check_scan(Format::Tar, &data, take)?;
        }
    }

    #[test]
    fn damaged_tgz(ms in prop::collection::vec(mutation(), 1..4), take in 1..3usize) {
        check_scan(Format::Tgz, &apply(&bases().tgz, &ms), take)?;
    }

    #[test]
    fn damaged_tar_lz4(ms in prop::collection::vec(mutation(), 1..4), take in 1..3usize) {
        check_scan(Format::TarLz4, &apply(&bases().lz4, &ms), take)?;
    }

    #[test]
    fn damaged_zip(ms in prop::collection::vec(mutation(), 1..4)) {
        check_zip(&apply(&bases().zip, &ms))?;
        check_zip(&apply(&bases().stored_zip, &ms))?;
    }

    #[test]
    fn random_bytes(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        check_index(&data)?;
        for format in [Format::Tar, Format::Tgz, Format::TarLz4] {
            check_scan(format, &data, 1)?;
        }
        check_zip(&data)?;
        let _ = Format::sniff(&data);
    }
}

#[test]
fn bases_are_valid() {
    let b = bases();
    assert_eq!(read_with_index(&b.tar), entries());
    assert_eq!(read_with_index(&b.gnu), entries());
    assert!(
        b.gnu.windows(13).any(|w| w == b"././@LongLink"),
        "GNU long name record expected"
    );
    assert_eq!(read_with_scan(Format::Tgz, &b.tgz), entries());
    assert_eq!(read_with_scan(Format::TarLz4, &b.lz4), entries());
    assert_eq!(read_with_zip_index(&b.zip), entries());
    assert_eq!(read_with_zip_index(&b.stored_zip), entries());
    let mut data = Vec::new();
    let idx = ZipIndex::build(
        Cursor::new(&b.stored_zip),
        b.stored_zip.len() as u64,
        &limits(),
    )
    .unwrap();
    assert!(idx.entries()[0].is_dir);
    shard::open_zip_member(Cursor::new(&b.stored_zip), &idx.entries()[1])
        .unwrap()
        .read_to_end(&mut data)
        .unwrap();
    assert_eq!(data, b"alpha");
}
