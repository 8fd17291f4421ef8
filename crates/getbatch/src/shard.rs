//! Files inside shards (`archpath`): format detection, cached member indexes, extraction.
//!
//! - `.tar`: a member index (name → payload offset) is built on first use and cached per file
//!   version; a member is then one positioned read, no scan.
//! - `.zip`: the central directory is cached the same way. Members up to [`VERIFY_ZIP_MEMBER`]
//!   are inflated and checked against their CRC when the item is stat'ed/opened, so a damaged
//!   member is a per-item error known before the first byte; larger ones are inflated on the fly
//!   (and a CRC mismatch then aborts the response).
//! - `.tgz` / `.tar.lz4`: no random access exists, so a request's members of one shard are found in
//!   a single decompressing pass; small members are kept from that pass, large ones are streamed
//!   by a second pass when their turn comes. The pass always runs to the end of the compressed
//!   data, so the gzip CRC / LZ4 content checksum is verified before any member is delivered.
//!
//! Indexes are cached per (file version, format), so forcing another format with `archmime`
//! never reuses an index built for the other one.
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use moss_archive::shard::{
    ScanLimits, Select, TarIndex, ZipEntry, ZipIndex, decoder, drain, into_archive_error,
    match_key, open_zip_member, scan_tar,
};
use moss_archive::{ArchiveError, Format};
use moss_storage::ObjHandle;

use crate::item::{FdTicket, Item, ItemError, ItemSpec, LocalReader, Prepared, Source};

/// Members up to this size are kept in memory from a compressed-shard scan.
const KEEP_MEMBER: u64 = 4 << 20;
/// ZIP members up to this size are inflated and CRC-checked in the stat phase.
pub const VERIFY_ZIP_MEMBER: u64 = 8 << 20;
/// Total bytes of members (from compressed shards and verified ZIP members) one prepare call may
/// keep in memory; the node as a whole keeps at most [`crate::item::HELD_MEMBER_BYTES`].
const KEEP_TOTAL: u64 = 64 << 20;
/// Approximate memory the index cache may hold.
const CACHE_BUDGET: usize = 64 << 20;
/// Decompressed bytes per compressed byte before a scan is treated as a decompression bomb.
const MAX_RATIO: u64 = 1024;

/// Identity of one version of a shard file (an overwrite renames a new inode into place).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

enum ShardIndex {
    Tar(TarIndex),
    Zip(ZipIndex),
}

struct Cached {
    index: Arc<ShardIndex>,
    cost: usize,
    used: u64,
}

/// Cache of shard member indexes (bounded, least-recently-used eviction).
#[derive(Default)]
pub struct ShardCache {
    inner: Mutex<CacheInner>,
    /// Indexes built (cache misses of TAR/ZIP shards).
    pub index_builds: AtomicU64,
    /// Lookups answered from a cached index.
    pub index_hits: AtomicU64,
    /// Decompressing passes over compressed shards.
    pub scans: AtomicU64,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<(FileKey, Format), Cached>,
    total: usize,
    clock: u64,
}

impl ShardCache {
    pub fn new() -> ShardCache {
        ShardCache::default()
    }

    /// Number of cached indexes (for tests and metrics).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|c| c.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, key: &(FileKey, Format)) -> Option<Arc<ShardIndex>> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let cached = inner.map.get_mut(key)?;
        cached.used = now;
        Some(cached.index.clone())
    }

    fn put(&self, key: (FileKey, Format), index: Arc<ShardIndex>) {
        let cost = match &*index {
            ShardIndex::Tar(t) => t.members().iter().map(|m| m.name.len() + 64).sum::<usize>(),
            ShardIndex::Zip(z) => z.entries().iter().map(|e| e.name.len() + 96).sum::<usize>(),
        };
        if cost > CACHE_BUDGET / 4 {
            return;
        }
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let used = inner.clock;
        if let Some(old) = inner.map.insert(key, Cached { index, cost, used }) {
            inner.total -= old.cost;
        }
        inner.total += cost;
        while inner.total > CACHE_BUDGET {
            let Some(oldest) = inner
                .map
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(evicted) = inner.map.remove(&oldest) {
                inner.total -= evicted.cost;
            }
        }
    }
}

/// The shard's identity and version, from the status taken when it was opened.
fn file_key(handle: &ObjHandle) -> FileKey {
    let md = &handle.stat;
    FileKey {
        dev: md.dev(),
        ino: md.ino(),
        size: md.len(),
        mtime_ns: md.mtime() * 1_000_000_000 + md.mtime_nsec(),
    }
}

/// Scan limits for a shard of `shard_size` bytes (decompression capped at a ratio of it).
pub fn limits_for(shard_size: u64) -> ScanLimits {
    ScanLimits {
        max_output_bytes: shard_size.saturating_mul(MAX_RATIO).max(64 << 20),
        ..ScanLimits::default()
    }
}

/// Decides the container format: `?archmime`, then the object name, then magic bytes.
pub fn detect(handle: &ObjHandle, spec: &ItemSpec, what: &str) -> Result<Format, ItemError> {
    if !spec.archmime.is_empty() {
        return Format::from_mime(spec.archmime)
            .map_err(|e| ItemError::Invalid(format!("archmime: {e}")));
    }
    if let Some(format) = Format::from_name(spec.objname) {
        return Ok(format);
    }
    let mut head = [0u8; 512];
    let len =
        read_head(&handle.file, &mut head).map_err(|e| ItemError::Io(format!("{what}: {e}")))?;
    Format::sniff(&head[..len]).ok_or_else(|| {
        ItemError::Invalid(format!("{what}: unrecognized or unsupported file format"))
    })
}

fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64)? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

fn archive_error(e: ArchiveError, archpath: &str, what: &str) -> ItemError {
    match e {
        ArchiveError::Io(io) => ItemError::Io(format!("{archpath} in {what}: {io}")),
        other => ItemError::Invalid(format!("{archpath} in {what}: {other}")),
    }
}

fn missing(archpath: &str, what: &str) -> ItemError {
    ItemError::NotFound(format!("{archpath} in {what} does not exist"))
}

fn sparse_member(archpath: &str, what: &str) -> ItemError {
    ItemError::Invalid(format!(
        "{archpath} in {what}: sparse tar members are not supported"
    ))
}

/// A zero-byte object is no archive of any format (gzip and zip need headers; a TAR needs at
/// least its end blocks), so every format reports it the same way.
fn check_not_empty(handle: &ObjHandle, archpath: &str, what: &str) -> Result<(), ItemError> {
    if handle.meta.size > 0 {
        return Ok(());
    }
    Err(empty_shard(archpath, what))
}

fn empty_shard(archpath: &str, what: &str) -> ItemError {
    ItemError::Invalid(format!(
        "{archpath} in {what}: corrupt archive: an empty object is not a valid shard"
    ))
}

/// The archpath made relative to the object (`shard.tar/a.jpg` → `a.jpg`), as AIStore does for
/// `GET ?archpath=`; used only when the archpath as given names no member.
fn relative_to_object<'a>(archpath: &'a str, objname: &str) -> Option<&'a str> {
    match_key(archpath)
        .strip_prefix(match_key(objname))?
        .strip_prefix('/')
        .filter(|rest| !rest.is_empty())
}

/// A reader of `file` from its start, with a position of its own.
fn rewound(file: &File, what: &str) -> Result<PosFile, ItemError> {
    PosFile::new(file).map_err(|e| ItemError::Io(format!("{what}: {e}")))
}

/// A file read with `pread` at a position of its own. Readers made from one open file (the
/// members of a shard, requests sharing a kept-open shard) never move each other's offset, as
/// readers of `dup`ed descriptors would.
pub struct PosFile {
    file: File,
    pos: u64,
}

impl PosFile {
    pub fn new(file: &File) -> io::Result<PosFile> {
        Ok(PosFile {
            file: file.try_clone()?,
            pos: 0,
        })
    }
}

impl Read for PosFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for PosFile {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = match to {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            io::SeekFrom::End(d) => self.file.metadata()?.len().checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        Ok(self.pos)
    }
}

/// The files inside a shard (`list_archive`, list flag `arch_dir`) as (name, size), sorted by
/// name; directories are left out and a repeated name is listed once. TAR and ZIP shards use
/// (and fill) the index cache; a compressed shard costs one decompressing pass, verified to its
/// end like every other read of it.
pub fn list_members(
    reader: &LocalReader,
    handle: &ObjHandle,
    format: Format,
) -> Result<Vec<(String, u64)>, ItemError> {
    let what = handle.describe();
    if handle.meta.size == 0 {
        return Err(empty_shard("files", &what));
    }
    let mut files: Vec<(String, u64)> = match format {
        Format::Tar | Format::Zip => match &*index_of(reader, handle, format, &what)? {
            ShardIndex::Tar(index) => index
                .members()
                .iter()
                .map(|m| (m.name.clone(), m.size))
                .collect(),
            ShardIndex::Zip(index) => index
                .entries()
                .iter()
                .filter(|e| !e.is_dir)
                .map(|e| (e.name.clone(), e.size))
                .collect(),
        },
        Format::Tgz | Format::TarLz4 => {
            reader.shards.scans.fetch_add(1, Ordering::Relaxed);
            let limits = limits_for(handle.meta.size);
            let mut stream = decoder(format, rewound(&handle.file, &what)?, &limits);
            let mut files = Vec::new();
            scan_tar(
                &mut stream,
                &limits,
                |_| Select::Take(0),
                |_, member, _| {
                    files.push((member.name.clone(), member.size));
                    Ok(())
                },
            )
            .and_then(|()| drain(&mut stream).map(drop))
            .map_err(|e| archive_error(e, "files", &what))?;
            files
        }
    };
    files.retain(|(name, _)| !name.ends_with('/') && !match_key(name).is_empty());
    // Names as they are matched (`match_key`): one leading `/` dropped, in place.
    for (name, _) in &mut files {
        if name.starts_with('/') {
            name.remove(0);
        }
    }
    // Stable sort: the first occurrence of a name is the one kept, as lookups see it.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    files.dedup_by(|later, first| later.0 == first.0);
    Ok(files)
}

/// The cached index of a TAR or ZIP shard, building it on a miss.
fn index_of(
    reader: &LocalReader,
    handle: &ObjHandle,
    format: Format,
    what: &str,
) -> Result<Arc<ShardIndex>, ItemError> {
    let key = (file_key(handle), format);
    if let Some(index) = reader.shards.get(&key) {
        reader.shards.index_hits.fetch_add(1, Ordering::Relaxed);
        return Ok(index);
    }
    reader.shards.index_builds.fetch_add(1, Ordering::Relaxed);
    let limits = limits_for(key.0.size);
    let reader_file = rewound(&handle.file, what)?;
    let built = match format {
        Format::Tar => TarIndex::build(io::BufReader::new(reader_file), key.0.size, &limits)
            .map(ShardIndex::Tar),
        Format::Zip => ZipIndex::build(reader_file, key.0.size, &limits).map(ShardIndex::Zip),
        Format::Tgz | Format::TarLz4 => {
            return Err(ItemError::Io("compressed shards have no index".into()));
        }
    };
    let index = Arc::new(built.map_err(|e| archive_error(e, "index", what))?);
    reader.shards.put(key, index.clone());
    Ok(index)
}

/// Opens one member of a shard.
pub fn open_member(
    reader: &LocalReader,
    handle: Arc<ObjHandle>,
    spec: &ItemSpec,
    what: &str,
) -> Result<Item, ItemError> {
    let format = detect(&handle, spec, what)?;
    let archpath = spec.archpath;
    check_not_empty(&handle, archpath, what)?;
    match format {
        Format::Tar | Format::Zip => {
            let index = index_of(reader, &handle, format, what)?;
            open_indexed(reader, &index, handle, spec, what)
        }
        Format::Tgz | Format::TarLz4 => {
            let mut wanted = vec![match_key(archpath)];
            wanted.extend(relative_to_object(archpath, spec.objname));
            let mut budget = KEEP_MEMBER;
            let mut found = scan_compressed(reader, &handle, format, &wanted, &mut budget, what)?;
            let exact = found.first_mut().and_then(Option::take);
            let relative = found.get_mut(1).and_then(Option::take);
            let member = exact.or(relative).ok_or_else(|| missing(archpath, what))?;
            member.into_item(&handle, format, spec, what)
        }
    }
}

/// The TAR member an archpath names (see [`relative_to_object`]).
fn tar_lookup<'i>(tar: &'i TarIndex, spec: &ItemSpec) -> Option<&'i moss_archive::shard::Member> {
    tar.lookup(spec.archpath)
        .or_else(|| relative_to_object(spec.archpath, spec.objname).and_then(|rel| tar.lookup(rel)))
}

/// The ZIP entry an archpath names (see [`relative_to_object`]).
fn zip_lookup<'i>(zip: &'i ZipIndex, spec: &ItemSpec) -> Option<&'i ZipEntry> {
    zip.lookup(spec.archpath)
        .or_else(|| relative_to_object(spec.archpath, spec.objname).and_then(|rel| zip.lookup(rel)))
}

/// Inflates a whole ZIP member (at most [`VERIFY_ZIP_MEMBER`] bytes) and checks its size and
/// CRC. A damaged member is `Corrupt` (410), as when the damage shows while streaming.
fn read_zip_member(
    handle: &ObjHandle,
    entry: &ZipEntry,
    archpath: &str,
    what: &str,
) -> Result<Vec<u8>, ItemError> {
    let file = rewound(&handle.file, what)?;
    let member = open_zip_member(file, entry).map_err(|e| archive_error(e, archpath, what))?;
    let capacity = usize::try_from(entry.size.min(VERIFY_ZIP_MEMBER)).unwrap_or(0);
    let mut buf = Vec::with_capacity(capacity);
    member
        .take(VERIFY_ZIP_MEMBER + 1)
        .read_to_end(&mut buf)
        .map_err(|e| match into_archive_error(e) {
            ArchiveError::Io(io) => ItemError::Io(format!("{archpath} in {what}: {io}")),
            other => ItemError::Corrupt(format!(
                "{archpath} in {what}: archived file is truncated or damaged: {other}"
            )),
        })?;
    if buf.len() as u64 != entry.size {
        return Err(ItemError::Corrupt(format!(
            "{archpath} in {what}: archived file is truncated or damaged"
        )));
    }
    Ok(buf)
}

fn open_indexed(
    reader: &LocalReader,
    index: &ShardIndex,
    handle: Arc<ObjHandle>,
    spec: &ItemSpec,
    what: &str,
) -> Result<Item, ItemError> {
    let archpath = spec.archpath;
    match index {
        ShardIndex::Tar(tar) => {
            let member = tar_lookup(tar, spec).ok_or_else(|| missing(archpath, what))?;
            if member.sparse {
                return Err(sparse_member(archpath, what));
            }
            let (offset, len) = resolve(spec, member.size)?;
            Ok(Item::new(
                len,
                0,
                true,
                Source::File {
                    handle,
                    offset: member.data_offset + offset,
                },
                None,
            ))
        }
        ShardIndex::Zip(zip) => {
            let entry = zip_lookup(zip, spec)
                .ok_or_else(|| missing(archpath, what))?
                .clone();
            entry
                .check_supported()
                .map_err(|e| archive_error(e, archpath, what))?;
            let (offset, len) = resolve(spec, entry.size)?;
            if entry.size <= VERIFY_ZIP_MEMBER && reader.may_hold(entry.size) {
                let data = read_zip_member(&handle, &entry, archpath, what)?;
                if let Some(bytes) = reader.hold(data) {
                    let section = bytes.slice(offset as usize..(offset + len) as usize);
                    return Ok(Item::new(len, 0, true, Source::Memory(section), None));
                }
            }
            let file = rewound(&handle.file, what)?;
            let mut member =
                open_zip_member(file, &entry).map_err(|e| archive_error(e, archpath, what))?;
            skip(&mut member, offset, archpath, what)?;
            Ok(Item::new(
                len,
                0,
                true,
                Source::Stream(Box::new(member.take(len))),
                None,
            ))
        }
    }
}

/// Applies the entry's range to a member of `size` bytes.
fn resolve(spec: &ItemSpec, size: u64) -> Result<(u64, u64), ItemError> {
    match spec.range {
        None => Ok((0, size)),
        Some(range) => range.resolve(size).map_err(ItemError::Range),
    }
}

fn skip(reader: &mut dyn Read, n: u64, archpath: &str, what: &str) -> Result<(), ItemError> {
    let copied = io::copy(&mut reader.take(n), &mut io::sink())
        .map_err(|e| archive_error(into_archive_error(e), archpath, what))?;
    if copied != n {
        return Err(ItemError::Invalid(format!(
            "{archpath} in {what}: archived file is truncated"
        )));
    }
    Ok(())
}

/// A member found by a compressed scan: its size and stream offset, and its bytes if kept.
struct Found {
    size: u64,
    data_offset: u64,
    bytes: Option<Bytes>,
    sparse: bool,
}

impl Found {
    fn into_item(
        self,
        handle: &ObjHandle,
        format: Format,
        spec: &ItemSpec,
        what: &str,
    ) -> Result<Item, ItemError> {
        if self.sparse {
            return Err(sparse_member(spec.archpath, what));
        }
        let (offset, len) = resolve(spec, self.size)?;
        if let Some(bytes) = self.bytes {
            let start = offset as usize;
            return Ok(Item::new(
                len,
                0,
                true,
                Source::Memory(bytes.slice(start..start + len as usize)),
                None,
            ));
        }
        let stream = reopen(
            handle,
            format,
            self.data_offset + offset,
            what,
            spec.archpath,
        )?;
        Ok(Item::new(
            len,
            0,
            true,
            Source::Stream(Box::new(stream.take(len))),
            None,
        ))
    }
}

/// A member of a compressed shard found by an earlier scan: `len` bytes from `at` in the
/// decompressed stream.
pub(crate) fn open_compressed_at(
    handle: &ObjHandle,
    format: Format,
    at: u64,
    len: u64,
    archpath: &str,
) -> Result<Item, ItemError> {
    let what = handle.describe();
    let stream = reopen(handle, format, at, &what, archpath)?;
    Ok(Item::new(
        len,
        0,
        true,
        Source::Stream(Box::new(stream.take(len))),
        None,
    ))
}

/// A fresh decompressing reader positioned `at` bytes into the uncompressed stream.
fn reopen(
    handle: &ObjHandle,
    format: Format,
    at: u64,
    what: &str,
    archpath: &str,
) -> Result<Box<dyn Read + Send>, ItemError> {
    let limits = limits_for(handle.meta.size);
    let mut stream = decoder(format, rewound(&handle.file, what)?, &limits);
    skip(&mut stream, at, archpath, what)?;
    Ok(stream)
}

/// One decompressing pass over a shard looking for `wanted` names (match keys). Members no larger
/// than `keep` bytes are kept in memory. Returns one slot per wanted name.
fn scan_compressed(
    reader: &LocalReader,
    handle: &ObjHandle,
    format: Format,
    wanted: &[&str],
    budget: &mut u64,
    what: &str,
) -> Result<Vec<Option<Found>>, ItemError> {
    reader.shards.scans.fetch_add(1, Ordering::Relaxed);
    let mut slots: Vec<Option<Found>> = wanted.iter().map(|_| None).collect();
    let mut by_name: HashMap<&str, usize> = HashMap::new();
    for (i, name) in wanted.iter().enumerate() {
        by_name.entry(name).or_insert(i);
    }
    let remaining = std::cell::Cell::new(by_name.len());
    let limits = limits_for(handle.meta.size);
    let mut stream = decoder(format, rewound(&handle.file, what)?, &limits);
    let result = scan_tar(
        &mut stream,
        &limits,
        |name| {
            if remaining.get() == 0 {
                return Select::Done;
            }
            match by_name.get(match_key(name)) {
                Some(&slot) => Select::Take(slot),
                None => Select::Skip,
            }
        },
        |slot, member, payload| {
            if slots[slot].is_some() {
                return Ok(());
            }
            let fits = member.size <= KEEP_MEMBER.min(*budget) && reader.may_hold(member.size);
            let bytes = if fits && !member.sparse {
                let mut buf = Vec::with_capacity(member.size as usize);
                payload.read_to_end(&mut buf).map_err(into_archive_error)?;
                if buf.len() as u64 != member.size {
                    return Err(ArchiveError::Corrupt(format!(
                        "member {} is truncated",
                        member.name
                    )));
                }
                // Not held (the node's budget ran out meanwhile): read again when delivered.
                let held = reader.hold(buf);
                if held.is_some() {
                    *budget -= member.size;
                }
                held
            } else {
                None
            };
            slots[slot] = Some(Found {
                size: member.size,
                data_offset: member.data_offset,
                bytes,
                sparse: member.sparse,
            });
            remaining.set(remaining.get() - 1);
            Ok(())
        },
    );
    // Verify the end of the compressed data too (gzip CRC, LZ4 content checksum): a member
    // found early must not be delivered from a shard that turns out to be damaged.
    let result = result.and_then(|()| drain(&mut stream).map(drop));
    result.map_err(|e| archive_error(e, wanted.first().copied().unwrap_or(""), what))?;
    // Duplicate requests of one name share the first slot's result.
    for (i, name) in wanted.iter().enumerate() {
        if slots[i].is_none()
            && let Some(&first) = by_name.get(name)
            && first != i
        {
            slots[i] = slots[first].as_ref().map(|f| Found {
                size: f.size,
                data_offset: f.data_offset,
                bytes: f.bytes.clone(),
                sparse: f.sparse,
            });
        }
    }
    Ok(slots)
}

/// Stats archived entries (`indices` into `specs`), opening and scanning each shard once.
pub fn prepare_members(
    reader: &LocalReader,
    specs: &[ItemSpec],
    indices: &[usize],
) -> Vec<(usize, Result<Prepared, ItemError>)> {
    let mut by_shard: Vec<((&moss_types::Bck, &str), Vec<usize>)> = Vec::new();
    let mut position: HashMap<(&moss_types::Bck, &str), usize> = HashMap::new();
    for &i in indices {
        let key = (specs[i].bck, specs[i].objname);
        let slot = *position.entry(key).or_insert_with(|| {
            by_shard.push((key, Vec::new()));
            by_shard.len() - 1
        });
        by_shard[slot].1.push(i);
    }
    let mut out = Vec::with_capacity(indices.len());
    let mut budget = KEEP_TOTAL;
    for ((bck, objname), members) in by_shard {
        let what = format!("{}/{}", bck.cname(), objname);
        let opened = match reader.open_shards.open(reader, bck, objname) {
            Ok(opened) => opened,
            Err(e) => {
                let err = ItemError::from_store(e, &what);
                out.extend(members.iter().map(|&i| (i, Err(err.clone()))));
                continue;
            }
        };
        let (handle, kept) = opened;
        out.extend(prepare_shard(
            reader,
            &handle,
            kept,
            specs,
            &members,
            &what,
            &mut budget,
        ));
    }
    out
}

fn prepare_shard(
    reader: &LocalReader,
    handle: &Arc<ObjHandle>,
    kept: Option<Arc<FdTicket>>,
    specs: &[ItemSpec],
    members: &[usize],
    what: &str,
    budget: &mut u64,
) -> Vec<(usize, Result<Prepared, ItemError>)> {
    // The descriptor a member's data phase may use: the kept shard's, or one more from the budget.
    let ticket = || kept.clone().or_else(|| reader.take_fd().map(Arc::new));
    let format = match detect(handle, &specs[members[0]], what) {
        Ok(f) => f,
        Err(e) => return members.iter().map(|&i| (i, Err(e.clone()))).collect(),
    };
    if handle.meta.size == 0 {
        return members
            .iter()
            .map(|&i| (i, Err(empty_shard(specs[i].archpath, what))))
            .collect();
    }
    match format {
        Format::Tar | Format::Zip => {
            let index = match index_of(reader, handle, format, what) {
                Ok(index) => index,
                Err(e) => return members.iter().map(|&i| (i, Err(e.clone()))).collect(),
            };
            // TAR members are sections of the shard file: keep the shard open (one budgeted
            // descriptor for all its members) so the data phase reads them directly.
            let held = match &*index {
                ShardIndex::Tar(_) => ticket().map(|ticket| (handle.clone(), ticket)),
                ShardIndex::Zip(_) => None,
            };
            members
                .iter()
                .map(|&i| {
                    let spec = &specs[i];
                    let result = match &*index {
                        ShardIndex::Tar(tar) => prepare_tar_member(tar, spec, held.as_ref(), what),
                        ShardIndex::Zip(zip) => {
                            prepare_zip_member(reader, zip, handle, spec, budget, what)
                        }
                    };
                    (i, result)
                })
                .collect()
        }
        Format::Tgz | Format::TarLz4 => {
            // Each member's archpath as given, then (when it has one) its object-relative form.
            let mut wanted: Vec<&str> = members
                .iter()
                .map(|&i| match_key(specs[i].archpath))
                .collect();
            let relative_at: Vec<Option<usize>> = members
                .iter()
                .map(|&i| {
                    let rel = relative_to_object(specs[i].archpath, specs[i].objname)?;
                    wanted.push(rel);
                    Some(wanted.len() - 1)
                })
                .collect();
            let mut found = match scan_compressed(reader, handle, format, &wanted, budget, what) {
                Ok(found) => found,
                Err(e) => return members.iter().map(|&i| (i, Err(e.clone()))).collect(),
            };
            let relative: Vec<Option<Found>> = relative_at
                .iter()
                .map(|at| at.and_then(|k| found.get_mut(k).and_then(Option::take)))
                .collect();
            found.truncate(members.len());
            members
                .iter()
                .zip(found.into_iter().zip(relative))
                .map(|(&i, (exact, relative))| {
                    let spec = &specs[i];
                    let result = exact
                        .or(relative)
                        .ok_or_else(|| missing(spec.archpath, what))
                        .and_then(|f| {
                            if f.sparse {
                                return Err(sparse_member(spec.archpath, what));
                            }
                            let (offset, len) = resolve(spec, f.size)?;
                            if let Some(b) = f.bytes {
                                let section = b.slice(offset as usize..(offset + len) as usize);
                                return Ok(archived_prepared(len, Some(section)));
                            }
                            // Too large to hold: the data phase decompresses up to it again
                            // (the scan above already verified the whole stream), no rescan.
                            let mut p = archived_prepared(len, None);
                            if let Some(ticket) = ticket() {
                                p.opened = Some((handle.clone(), ticket));
                                p.member_offset = Some(f.data_offset + offset);
                                p.compressed = Some(format);
                            }
                            Ok(p)
                        });
                    (i, result)
                })
                .collect()
        }
    }
}

/// Stats one member of an indexed TAR shard; `held` is the shard kept open for the data phase.
fn prepare_tar_member(
    tar: &TarIndex,
    spec: &ItemSpec,
    held: Option<&(Arc<ObjHandle>, Arc<crate::item::FdTicket>)>,
    what: &str,
) -> Result<Prepared, ItemError> {
    let member = tar_lookup(tar, spec).ok_or_else(|| missing(spec.archpath, what))?;
    if member.sparse {
        return Err(sparse_member(spec.archpath, what));
    }
    let (offset, len) = resolve(spec, member.size)?;
    let mut p = archived_prepared(len, None);
    if let Some(held) = held {
        p.opened = Some(held.clone());
        p.member_offset = Some(member.data_offset + offset);
    }
    Ok(p)
}

/// Stats one member of a ZIP shard. What the central directory rules out (method, encryption)
/// fails here; members within the budget are inflated and CRC-checked now, so their damage is a
/// per-item error before the first byte and the data phase sends the verified bytes.
fn prepare_zip_member(
    reader: &LocalReader,
    zip: &ZipIndex,
    handle: &ObjHandle,
    spec: &ItemSpec,
    budget: &mut u64,
    what: &str,
) -> Result<Prepared, ItemError> {
    let entry = zip_lookup(zip, spec).ok_or_else(|| missing(spec.archpath, what))?;
    entry
        .check_supported()
        .map_err(|e| archive_error(e, spec.archpath, what))?;
    let (offset, len) = resolve(spec, entry.size)?;
    if entry.size > VERIFY_ZIP_MEMBER || entry.size > *budget || !reader.may_hold(entry.size) {
        return Ok(archived_prepared(len, None));
    }
    let data = read_zip_member(handle, entry, spec.archpath, what)?;
    let Some(bytes) = reader.hold(data) else {
        return Ok(archived_prepared(len, None));
    };
    *budget -= entry.size;
    let section = bytes.slice(offset as usize..(offset + len) as usize);
    Ok(archived_prepared(len, Some(section)))
}

fn archived_prepared(size: u64, memory: Option<Bytes>) -> Prepared {
    Prepared {
        opened: None,
        member_offset: None,
        compressed: None,
        neighbor: None,
        size,
        mtime: 0,
        archived: true,
        memory,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Members of a compressed shard too large to hold are read at the offsets the stat phase's
    /// single scan found: one decompressing pass to find and verify, none to locate them again.
    #[test]
    fn large_members_of_a_compressed_shard_are_not_searched_for_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(moss_storage::Store::open(&[dir.path().join("mp")]).unwrap());
        let reader = LocalReader::new(store.clone());
        let big = (KEEP_MEMBER + 1) as usize;
        let members: Vec<(String, Vec<u8>)> = (0..3u8)
            .map(|k| (format!("m{k}.bin"), vec![k + 1; big]))
            .collect();
        let path = dir.path().join("s.tgz");
        let mut w = moss_archive::writer::new_writer(Format::Tgz, File::create(&path).unwrap());
        for (name, data) in &members {
            w.start_entry(name, data.len() as u64, 0).unwrap();
            w.write_data(data).unwrap();
            w.finish_entry().unwrap();
        }
        w.finish().unwrap();
        let bck = moss_types::Bck::ais("b");
        let mut txn = store.begin_put(&bck, "s.tgz").unwrap();
        txn.write(&std::fs::read(&path).unwrap()).unwrap();
        txn.commit(Default::default()).unwrap();
        let specs: Vec<ItemSpec> = [2usize, 0]
            .iter()
            .map(|&k| ItemSpec {
                bck: &bck,
                objname: "s.tgz",
                archpath: &members[k].0,
                archmime: "",
                range: None,
            })
            .collect();
        let prepared = reader.prepare(&specs);
        assert_eq!(reader.shards.scans.load(Ordering::Relaxed), 1);
        for (spec, (p, k)) in specs.iter().zip(prepared.iter().zip([2usize, 0])) {
            let p = p.as_ref().unwrap();
            assert!(p.memory.is_none(), "too large to hold");
            let mut item = reader.open_prepared(spec, p).unwrap();
            assert_eq!(item.read_all().unwrap(), members[k].1.as_slice());
        }
        assert_eq!(
            reader.shards.scans.load(Ordering::Relaxed),
            1,
            "no second scan for members found by the first"
        );
    }

    #[test]
    fn archpath_relative_to_the_object() {
        assert_eq!(
            relative_to_object("s.tar/a/b.jpg", "s.tar"),
            Some("a/b.jpg")
        );
        assert_eq!(relative_to_object("/s.tar/a", "s.tar"), Some("a"));
        assert_eq!(relative_to_object("d/s.tar/a", "d/s.tar"), Some("a"));
        assert_eq!(relative_to_object("s.tar/", "s.tar"), None);
        assert_eq!(relative_to_object("s.tarx/a", "s.tar"), None);
        assert_eq!(relative_to_object("a/s.tar/b", "s.tar"), None);
    }
}
