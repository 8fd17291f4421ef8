//! One deliverable item on local storage: a whole object, a byte range of it, or a file inside a
//! shard (optionally a range of that file). Read sequentially in chunks; a whole object's checksum
//! is verified before its final chunk is handed out, so a corrupt object is never delivered whole.
use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::{Bytes, BytesMut};
use moss_storage::{ObjHandle, Store, StoreError, Verifier};
use moss_types::Bck;
use moss_types::moss::ByteRange;

use crate::kept::{self, KeptOpen};
use crate::shard::ShardCache;

/// Chunk size for sequential reads.
pub const CHUNK: usize = 256 << 10;
/// Items up to this size are read whole (and verified) before any of their bytes is sent.
pub const WHOLE_READ: u64 = 64 << 10;

/// What to open.
#[derive(Debug, Clone, Copy)]
pub struct ItemSpec<'a> {
    pub bck: &'a Bck,
    pub objname: &'a str,
    /// File inside the object (a shard); empty for the object itself.
    pub archpath: &'a str,
    /// Forces the shard format (`?archmime=`); empty to detect.
    pub archmime: &'a str,
    pub range: Option<ByteRange>,
}

impl ItemSpec<'_> {
    /// `ais://bucket/object`, for messages (built only when needed).
    pub fn describe_object(&self) -> String {
        format!("{}/{}", self.bck.cname(), self.objname)
    }
}

/// Why an item cannot be delivered. The kind decides placeholder vs. failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ItemError {
    /// Object, shard or member does not exist (404; a soft error with `coer`).
    #[error("{0}")]
    NotFound(String),
    /// The requested range does not fit (416).
    #[error("{0}")]
    Range(String),
    /// Stored bytes fail their checksum, or a shard is damaged (410 / per-item error).
    #[error("{0}")]
    Corrupt(String),
    /// The request itself is wrong for this item (400), e.g. an unknown archive format.
    #[error("{0}")]
    Invalid(String),
    /// Local I/O failure.
    #[error("{0}")]
    Io(String),
}

impl ItemError {
    /// Maps a storage error for the object `what` (`ais://b/o`).
    pub fn from_store(err: StoreError, what: &str) -> ItemError {
        match err {
            StoreError::NotFound => ItemError::NotFound(format!("{what} does not exist")),
            StoreError::Conflict(m) => ItemError::NotFound(format!("{what} does not exist ({m})")),
            StoreError::Corrupt(m) => ItemError::Corrupt(format!("{what} is corrupted: {m}")),
            StoreError::Invalid(m) => ItemError::Invalid(format!("{what}: {m}")),
            StoreError::Missing(m) => ItemError::NotFound(m),
            StoreError::Io(e) => ItemError::Io(format!("{what}: {e}")),
        }
    }

    /// True for the "does not exist" class.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ItemError::NotFound(_))
    }
}

/// Where an item's bytes come from.
pub enum Source {
    /// A section of a stored file (object, range, or member of an uncompressed shard).
    File { handle: Arc<ObjHandle>, offset: u64 },
    /// Bytes already in memory (a member extracted while scanning a compressed shard).
    Memory(Bytes),
    /// A decompressing reader positioned at the item's first byte.
    Stream(Box<dyn Read + Send>),
}

/// An opened item.
pub struct Item {
    /// Bytes this item delivers.
    pub size: u64,
    /// Modification time for archive headers (seconds; 0 when not a whole local object).
    pub mtime: u64,
    /// True for a file inside a shard (counted as "file", not "obj", in metrics).
    pub archived: bool,
    source: Source,
    delivered: u64,
    verifier: Option<Verifier>,
    /// A whole object verified before through its (kept) descriptor: read without hashing while
    /// every byte comes from the page cache (see [`Item::read_file`]).
    trusted: bool,
    /// The descriptor's verification state when this item began (trusting it, or hashing).
    since: u64,
    /// Keeps a budgeted descriptor accounted for while the item is read.
    ticket: Option<Arc<FdTicket>>,
}

impl Item {
    pub fn new(
        size: u64,
        mtime: u64,
        archived: bool,
        source: Source,
        verifier: Option<Verifier>,
    ) -> Item {
        Item {
            size,
            mtime,
            archived,
            source,
            delivered: 0,
            verifier,
            trusted: false,
            since: 0,
            ticket: None,
        }
    }

    /// The stored object behind a whole-object or ranged item (for response headers).
    pub fn object(&self) -> Option<&ObjHandle> {
        match &self.source {
            Source::File { handle, .. } if !self.archived => Some(handle),
            _ => None,
        }
    }

    /// Whether reading the item hashes it to check its checksum (a whole object not verified
    /// before).
    fn verifies(&self) -> bool {
        self.verifier.is_some()
    }

    /// Reads `out.len()` bytes of a file-backed item at `at`. An item that trusts the page cache
    /// reads only from it; if part of the object has to come from the disk after all — or if
    /// any reader of the descriptor read from the disk unhashed since the item began — the item
    /// goes back to hashing every byte (those before `at` read again). A read of an unhashed
    /// section (a range, a shard member) that has to wait for the disk makes the descriptor
    /// forget that its object was verified, before it reads.
    fn read_file(
        handle: &ObjHandle,
        at: u64,
        out: &mut [u8],
        trusted: &mut bool,
        since: &mut u64,
        verifier: &mut Option<Verifier>,
    ) -> Result<(), StoreError> {
        if !*trusted && (verifier.is_some() || !handle.is_verified()) {
            return handle.read_exact_at(out, at);
        }
        let got = handle.read_cached_at(out, at)?;
        let unchanged = !*trusted || handle.verification() == *since;
        if got == out.len() && unchanged {
            return Ok(());
        }
        if got < out.len() {
            handle.forget_verified();
        }
        if *trusted {
            // Hash the whole object after all, in the generation that starts now.
            *trusted = false;
            *since = handle.verification();
            let mut from_start = handle.verifier();
            handle.hash_prefix(&mut from_start, at)?;
            *verifier = Some(from_start);
            if got == out.len() {
                return Ok(());
            }
        }
        handle.read_exact_at(&mut out[got..], at + got as u64)
    }

    /// After the last byte of a hashed whole object: checks the checksum and lets the descriptor
    /// remember the match.
    fn check_whole(&mut self) -> Result<(), ItemError> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        let checked = match &self.source {
            Source::File { handle, offset: 0 } => handle.finish(verifier, self.since),
            _ => verifier.finish(),
        };
        checked.map_err(|e| ItemError::Corrupt(format!("object is corrupted: {e}")))
    }

    /// Reads a whole object through once, now, and checks its checksum; the reads that follow
    /// are not checked again.
    fn verify_now(&mut self) -> Result<(), ItemError> {
        let Source::File { handle, offset: 0 } = &self.source else {
            return Ok(());
        };
        if self.trusted {
            // Not hashed now means not checked before the first byte: hash it now after all.
            self.trusted = false;
            self.verifier = Some(handle.verifier());
        }
        if self.verifier.is_none() {
            return Ok(());
        }
        handle
            .verify()
            .map_err(|e| ItemError::from_store(e, &handle.describe()))?;
        // Read from here on as a verified object: hashed again only if bytes must come from the
        // disk (unless someone read from the disk unhashed during the check: then hash as usual).
        let now = handle.verification();
        if now & 1 == 1 {
            self.verifier = None;
            self.trusted = true;
            self.since = now;
        }
        Ok(())
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> u64 {
        self.size - self.delivered
    }

    /// Reads the next chunk of at most `max` bytes; `None` once all `size` bytes were delivered.
    /// The chunk that completes a whole object is returned only after its checksum matched.
    pub fn read_chunk(&mut self, max: usize) -> Result<Option<Bytes>, ItemError> {
        let remaining = self.remaining();
        if remaining == 0 {
            return Ok(None);
        }
        let len = remaining.min(max as u64) as usize;
        let chunk = match &mut self.source {
            Source::File { handle, .. } if self.trusted || handle.is_verified() => {
                let mut buf = vec![0u8; len];
                self.read_part_into(&mut buf)?;
                return Ok(Some(Bytes::from(buf)));
            }
            Source::File { handle, offset } => handle
                .read_vec_at(len, *offset + self.delivered)
                .map(Bytes::from)
                .map_err(|e| ItemError::from_store(e, &handle.describe()))?,
            Source::Memory(bytes) => {
                bytes.slice(self.delivered as usize..self.delivered as usize + len)
            }
            Source::Stream(reader) => {
                let mut buf = BytesMut::zeroed(len);
                reader.read_exact(&mut buf).map_err(|e| {
                    ItemError::Corrupt(format!("archived file is truncated or damaged: {e}"))
                })?;
                buf.freeze()
            }
        };
        self.delivered += len as u64;
        if let Some(verifier) = &mut self.verifier {
            verifier.update(&chunk);
            if self.delivered == self.size {
                self.check_whole()?;
            }
        }
        Ok(Some(chunk))
    }

    /// Reads the next chunk of at most `max` bytes into a pooled block; `None` once everything
    /// was delivered. Like [`Item::read_chunk`], the chunk completing a whole object is returned
    /// only after its checksum matched.
    pub fn read_chunk_pooled(
        &mut self,
        max: usize,
        pool: &Arc<crate::pool::BufPool>,
    ) -> Result<Option<Bytes>, ItemError> {
        let len = self.remaining().min(max.min(crate::pool::BLOCK) as u64) as usize;
        if len == 0 {
            return Ok(None);
        }
        let mut block = pool.take();
        self.read_part_into(block.tail(len))?;
        block.commit(len);
        Ok(Some(block.freeze()))
    }

    /// Reads the next `out.len()` bytes (at most what remains), verifying a whole object's
    /// checksum when its last byte is read.
    fn read_part_into(&mut self, out: &mut [u8]) -> Result<(), ItemError> {
        match &mut self.source {
            Source::File { handle, offset } => Self::read_file(
                handle,
                *offset + self.delivered,
                out,
                &mut self.trusted,
                &mut self.since,
                &mut self.verifier,
            )
            .map_err(|e| ItemError::from_store(e, &handle.describe()))?,
            Source::Memory(bytes) => {
                let from = self.delivered as usize;
                out.copy_from_slice(&bytes[from..from + out.len()]);
            }
            Source::Stream(reader) => reader.read_exact(out).map_err(|e| {
                ItemError::Corrupt(format!("archived file is truncated or damaged: {e}"))
            })?,
        }
        self.delivered += out.len() as u64;
        if let Some(verifier) = &mut self.verifier {
            verifier.update(out);
            if self.delivered == self.size {
                self.check_whole()?;
            }
        }
        Ok(())
    }

    /// Reads all remaining bytes of the item into `out` (exactly that long), verifying a whole
    /// object's checksum before returning.
    pub fn read_exact_into(&mut self, out: &mut [u8]) -> Result<(), ItemError> {
        if out.len() as u64 != self.remaining() {
            return Err(ItemError::Io(format!(
                "read of {} bytes for an item with {} left",
                out.len(),
                self.remaining()
            )));
        }
        self.read_part_into(out)
    }

    /// Reads the whole item into one buffer (for small items).
    pub fn read_all(&mut self) -> Result<Bytes, ItemError> {
        if let Source::Memory(bytes) = &self.source
            && self.delivered == 0
            && self.verifier.is_none()
        {
            self.delivered = self.size;
            return Ok(bytes.clone());
        }
        let size = usize::try_from(self.remaining())
            .map_err(|_| ItemError::Invalid("item too large".into()))?;
        match self.read_chunk(size)? {
            Some(bytes) => Ok(bytes),
            None => Ok(Bytes::new()),
        }
    }
}

/// One file descriptor of the reader's budget; returned when the last holder drops it.
#[derive(Debug)]
pub struct FdTicket(Arc<AtomicI64>);

/// Bytes counted against [`LocalReader`]'s memory budget while they exist.
struct Held {
    data: Vec<u8>,
    budget: Arc<AtomicI64>,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.budget
            .fetch_add(self.data.len() as i64, Ordering::Relaxed);
    }
}

impl Drop for FdTicket {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What the stat phase learned about an item; the data phase reuses it.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The object as opened by the stat phase (saves a second path lookup), within the reader's
    /// descriptor budget. Callers drop it once the item is delivered.
    pub opened: Option<(Arc<ObjHandle>, Arc<FdTicket>)>,
    /// For a member of a TAR shard held in `opened`: where its bytes (after the range) start in
    /// the shard file, or in its decompressed stream when `compressed` names its format.
    pub member_offset: Option<u64>,
    pub compressed: Option<moss_archive::Format>,
    pub size: u64,
    pub mtime: u64,
    pub archived: bool,
    /// Bytes already extracted while scanning a compressed shard.
    pub memory: Option<Bytes>,
    /// Base URL of another target that holds the item (the object has not moved to its owner
    /// yet); the data phase fetches it from there.
    pub neighbor: Option<String>,
}

/// Local data access of a target: the store plus caches of shard directories.
pub struct LocalReader {
    pub store: Arc<Store>,
    pub shards: ShardCache,
    /// Shards kept open between requests.
    pub open_shards: KeptOpen,
    /// Whole objects kept open between requests.
    pub open_objects: KeptOpen,
    /// File descriptors the stat phase may keep open for the data phase.
    fd_budget: Arc<AtomicI64>,
    /// Bytes of archived files the stat phase may hold in memory for the data phase, node-wide
    /// (extracted from compressed shards, verified ZIP members).
    memory_budget: Arc<AtomicI64>,
    /// Brings missing objects of remote buckets into the store (cold GET); none on a node
    /// without remote buckets and in tests.
    fill: std::sync::OnceLock<Arc<dyn MissingFill>>,
}

/// Fetches objects of remote buckets that the store does not hold yet. Called on blocking
/// threads; an implementation bounds its own concurrency and time.
pub trait MissingFill: Send + Sync {
    /// One result per name, in order: `Ok` once the object is in the store.
    fn fill(&self, wanted: &[(&Bck, &str)]) -> Vec<Result<(), ItemError>>;

    /// Whether objects of `bck` that are missing or damaged here can be rebuilt from redundancy
    /// (mirror copies on other mountpaths, `mirror.*`; pieces on other targets, `ec.*`).
    fn rebuilds(&self, _bck: &Bck) -> bool {
        false
    }

    /// Rebuilds one object into the store from redundancy; `NotFound` if there is none.
    fn rebuild(&self, bck: &Bck, objname: &str) -> Result<(), ItemError> {
        Err(ItemError::NotFound(format!(
            "{}/{objname} does not exist",
            bck.cname()
        )))
    }
}

/// The descriptors stat phases may keep open, shared by every target in the process (the limit
/// is the process's: `moss local` runs several targets in one): half of what is left above a
/// reserve for sockets and everything else, at most 8192.
fn process_fd_budget() -> Arc<AtomicI64> {
    static BUDGET: std::sync::OnceLock<Arc<AtomicI64>> = std::sync::OnceLock::new();
    BUDGET
        .get_or_init(|| {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(1024);
            Arc::new(AtomicI64::new(fd_budget_for(limit) as i64))
        })
        .clone()
}

/// The descriptors GetBatch may hold in a process whose open-files limit is `limit` (objects and
/// shards kept open, stat phases): the node's connection cap leaves them free.
pub fn fd_budget_for(limit: u64) -> u64 {
    (limit.saturating_sub(512) / 2).min(8192)
}

/// Node-wide cap on archived-file bytes held between the stat phase and delivery.
pub const HELD_MEMBER_BYTES: i64 = 256 << 20;

impl LocalReader {
    pub fn new(store: Arc<Store>) -> LocalReader {
        LocalReader {
            store,
            shards: ShardCache::new(),
            open_shards: KeptOpen::new(kept::KEEP_SHARDS, kept::SHARD_FD_RESERVE),
            open_objects: KeptOpen::new(kept::KEEP_OBJECTS, kept::OBJECT_FD_RESERVE),
            fd_budget: process_fd_budget(),
            memory_budget: Arc::new(AtomicI64::new(HELD_MEMBER_BYTES)),
            fill: std::sync::OnceLock::new(),
        }
    }

    /// Closes kept objects and shards that changed since they were opened (see [`KeptOpen`]).
    pub fn close_stale(&self) {
        self.open_objects.close_stale(self);
        self.open_shards.close_stale(self);
    }

    /// Installs the cold-GET hook (once, at node start).
    pub fn set_fill(&self, fill: Arc<dyn MissingFill>) {
        let _ = self.fill.set(fill);
    }

    /// Fetches the objects of remote buckets among `specs` that are not here yet; the failures,
    /// by position.
    fn fill_missing(&self, specs: &[ItemSpec]) -> Vec<(usize, ItemError)> {
        let Some(fill) = self.fill.get() else {
            return Vec::new();
        };
        let missing: Vec<usize> = (0..specs.len())
            .filter(|&i| {
                specs[i].bck.provider != moss_types::Provider::Ais
                    && matches!(
                        self.store.stat_size(specs[i].bck, specs[i].objname),
                        Err(StoreError::NotFound)
                    )
            })
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        let wanted: Vec<(&Bck, &str)> = missing
            .iter()
            .map(|&i| (specs[i].bck, specs[i].objname))
            .collect();
        missing
            .iter()
            .zip(fill.fill(&wanted))
            .filter_map(|(&i, result)| result.err().map(|e| (i, e)))
            .collect()
    }

    /// Opens an object, rebuilding it first from redundancy if it is missing or damaged here
    /// and its bucket keeps redundancy.
    pub fn open_handle(
        &self,
        bck: &Bck,
        objname: &str,
        what: &str,
    ) -> Result<ObjHandle, ItemError> {
        self.open_repaired(bck, objname)
            .map_err(|e| ItemError::from_store(e, what))
    }

    /// [`Self::open_handle`] with the store's error. Where the object cannot be put back in
    /// place (its disk is unusable), a mirror copy is served as it is.
    pub fn open_repaired(&self, bck: &Bck, objname: &str) -> Result<ObjHandle, StoreError> {
        match self.store.open_object(bck, objname) {
            Err(e @ (StoreError::NotFound | StoreError::Corrupt(_) | StoreError::Io(_)))
                if self.redundant(bck) =>
            {
                if self.repair(bck, objname, &e)
                    && let Ok(handle) = self.store.open_object(bck, objname)
                {
                    return Ok(handle);
                }
                self.store.open_copy(bck, objname).map_err(|_| e)
            }
            opened => opened,
        }
    }

    /// Whether the bucket keeps redundancy that can rebuild its objects here.
    fn redundant(&self, bck: &Bck) -> bool {
        self.fill.get().is_some_and(|f| f.rebuilds(bck))
    }

    /// Rebuilds an object that failed here with `why` from redundancy, if its bucket keeps any;
    /// whether it was rebuilt. Logs what it did.
    pub fn repair(&self, bck: &Bck, objname: &str, why: &StoreError) -> bool {
        let Some(fill) = self.fill.get().filter(|f| f.rebuilds(bck)) else {
            return false;
        };
        match fill.rebuild(bck, objname) {
            Ok(()) => {
                if !matches!(why, StoreError::NotFound) {
                    tracing::warn!(bucket = %bck, object = objname, "damaged object rebuilt from redundancy: {why}");
                }
                true
            }
            Err(ItemError::NotFound(_)) => false,
            Err(e) => {
                tracing::warn!(bucket = %bck, object = objname, "rebuild from redundancy failed: {e}");
                false
            }
        }
    }

    /// Wraps `data` (already read) as held bytes if the node-wide budget has room for them; the
    /// budget is given back when the last slice of them is dropped. `None`: no room.
    pub(crate) fn hold(&self, data: Vec<u8>) -> Option<Bytes> {
        let n = data.len() as i64;
        if self.memory_budget.fetch_sub(n, Ordering::Relaxed) < n {
            self.memory_budget.fetch_add(n, Ordering::Relaxed);
            return None;
        }
        Some(Bytes::from_owner(Held {
            data,
            budget: self.memory_budget.clone(),
        }))
    }

    /// Whether `n` more bytes could be held now (checked before reading them).
    pub(crate) fn may_hold(&self, n: u64) -> bool {
        self.memory_budget.load(Ordering::Relaxed) >= n as i64
    }

    pub(crate) fn take_fd(&self) -> Option<FdTicket> {
        self.take_fd_leaving(0)
    }

    /// A descriptor ticket, if more than `reserve` would be left after it.
    pub(crate) fn take_fd_leaving(&self, reserve: i64) -> Option<FdTicket> {
        let left = self.fd_budget.fetch_sub(1, Ordering::Relaxed);
        if left > reserve {
            return Some(FdTicket(self.fd_budget.clone()));
        }
        self.fd_budget.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Opens an item: object, range, or archived file.
    pub fn open(&self, spec: &ItemSpec) -> Result<Item, ItemError> {
        if let Some((_, e)) = self.fill_missing(std::slice::from_ref(spec)).pop() {
            return Err(e);
        }
        let handle = self.open_handle(spec.bck, spec.objname, &spec.describe_object())?;
        if spec.archpath.is_empty() {
            return open_object_item(Arc::new(handle), spec.range);
        }
        crate::shard::open_member(self, Arc::new(handle), spec, &spec.describe_object())
    }
}

impl LocalReader {
    /// Stats many items at once (sizes after ranges and extraction, or why not). Members of the same
    /// shard are located with one pass over the shard.
    pub fn prepare(&self, specs: &[ItemSpec]) -> Vec<Result<Prepared, ItemError>> {
        let mut out: Vec<Option<Result<Prepared, ItemError>>> = vec![None; specs.len()];
        for (i, e) in self.fill_missing(specs) {
            out[i] = Some(Err(e));
        }
        let mut archived = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            if spec.archpath.is_empty() {
                out[i] = Some(self.prepare_object(spec));
            } else {
                archived.push(i);
            }
        }
        if !archived.is_empty() {
            for (i, result) in crate::shard::prepare_members(self, specs, &archived) {
                out[i] = Some(result);
            }
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ItemError::Io("item was not prepared".into()))))
            .collect()
    }

    fn prepare_object(&self, spec: &ItemSpec) -> Result<Prepared, ItemError> {
        let mut opened = None;
        let member_offset = None;
        let (handle, kept) = self
            .open_objects
            .open(self, spec.bck, spec.objname)
            .map_err(|e| ItemError::from_store(e, &spec.describe_object()))?;
        let (size, mtime) = (handle.meta.size, handle.meta.mtime);
        // Not kept between requests: held for the data phase if the budget allows, else closed
        // now and opened again (with the same checks) when its turn comes.
        if let Some(ticket) = kept.or_else(|| self.take_fd().map(Arc::new)) {
            opened = Some((handle, ticket));
        }
        let atime = mtime;
        match spec.range {
            None => Ok(Prepared {
                opened,
                member_offset,
                compressed: None,
                size,
                mtime: atime,
                archived: false,
                memory: None,
                neighbor: None,
            }),
            Some(range) => {
                let (_, len) = range.resolve(size).map_err(ItemError::Range)?;
                Ok(Prepared {
                    opened,
                    member_offset,
                    compressed: None,
                    size: len,
                    mtime: 0,
                    archived: false,
                    memory: None,
                    neighbor: None,
                })
            }
        }
    }

    /// Opens a prepared item for reading; fails if it changed since it was prepared. In a bucket
    /// that keeps redundancy, the checksum of a whole object bigger than [`WHOLE_READ`] is
    /// checked before it is handed out (one more read of it, hashed once): damaged bytes are
    /// rebuilt from the redundancy instead of breaking a response that has already started
    /// sending them. Smaller ones are read whole before any byte goes out, and
    /// [`Self::reread_repaired`] takes care of them.
    pub fn open_prepared(&self, spec: &ItemSpec, prepared: &Prepared) -> Result<Item, ItemError> {
        let mut item = self.open_prepared_as_is(spec, prepared)?;
        if item.size <= WHOLE_READ
            || !(item.verifies() || item.trusted)
            || !self.redundant(spec.bck)
        {
            return Ok(item);
        }
        match item.verify_now() {
            Err(ItemError::Corrupt(why)) => match self.reopen_repaired(spec, &why, prepared.size) {
                Some(reopened) => reopened.map(|mut item| {
                    item.mtime = prepared.mtime;
                    item
                }),
                None => Err(ItemError::Corrupt(why)),
            },
            checked => checked.map(|()| item),
        }
    }

    /// Rebuilds an object whose bytes failed their checksum (`why`) from its bucket's
    /// redundancy and opens the item anew, expecting `size` bytes; `None` if nothing rebuilt it.
    fn reopen_repaired(
        &self,
        spec: &ItemSpec,
        why: &str,
        size: u64,
    ) -> Option<Result<Item, ItemError>> {
        if !self.repair(
            spec.bck,
            spec.objname,
            &StoreError::Corrupt(why.to_string()),
        ) {
            return None;
        }
        Some(self.open(spec).and_then(|item| {
            if item.size == size {
                Ok(item)
            } else {
                Err(changed(spec, size, item.size))
            }
        }))
    }

    /// After reading a whole small item into `out` failed with `err`: if its bytes were damaged
    /// and its bucket keeps redundancy, rebuilds the object and reads it again into `out`.
    pub fn reread_repaired(
        &self,
        spec: &ItemSpec,
        err: ItemError,
        out: &mut [u8],
    ) -> Result<(), ItemError> {
        let ItemError::Corrupt(why) = &err else {
            return Err(err);
        };
        match self.reopen_repaired(spec, why, out.len() as u64) {
            Some(reopened) => reopened?.read_exact_into(out),
            None => Err(err),
        }
    }

    fn open_prepared_as_is(&self, spec: &ItemSpec, prepared: &Prepared) -> Result<Item, ItemError> {
        if let Some((handle, ticket)) = &prepared.opened {
            let mut item = match prepared.member_offset {
                Some(offset) if let Some(format) = prepared.compressed => {
                    crate::shard::open_compressed_at(
                        handle,
                        format,
                        offset,
                        prepared.size,
                        spec.archpath,
                    )?
                }
                Some(offset) => Item::new(
                    prepared.size,
                    0,
                    true,
                    Source::File {
                        handle: handle.clone(),
                        offset,
                    },
                    None,
                ),
                None => open_object_item(handle.clone(), spec.range)?,
            };
            item.mtime = prepared.mtime;
            item.ticket = Some(ticket.clone());
            return Ok(item);
        }
        if let Some(bytes) = &prepared.memory {
            return Ok(Item::new(
                prepared.size,
                prepared.mtime,
                prepared.archived,
                Source::Memory(bytes.clone()),
                None,
            ));
        }
        let mut item = self.open(spec)?;
        if item.size != prepared.size {
            return Err(changed(spec, prepared.size, item.size));
        }
        item.mtime = prepared.mtime;
        Ok(item)
    }
}

/// The error for an item whose size changed between the stat phase and the data phase.
fn changed(spec: &ItemSpec, stated: u64, now: u64) -> ItemError {
    ItemError::Io(format!(
        "{}/{} changed while the batch was being assembled (size {stated} → {now})",
        spec.bck.cname(),
        spec.objname,
    ))
}

fn open_object_item(handle: Arc<ObjHandle>, range: Option<ByteRange>) -> Result<Item, ItemError> {
    let size = handle.meta.size;
    match range {
        None => {
            let since = handle.verification();
            let trusted = since & 1 == 1;
            let verifier = (!trusted).then(|| handle.verifier());
            let mtime = 0;
            let mut item = Item::new(
                size,
                mtime,
                false,
                Source::File { handle, offset: 0 },
                verifier,
            );
            item.trusted = trusted;
            item.since = since;
            Ok(item)
        }
        Some(range) => {
            let (offset, len) = range.resolve(size).map_err(ItemError::Range)?;
            Ok(Item::new(
                len,
                0,
                false,
                Source::File { handle, offset },
                None,
            ))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Stores `data` as `bck/name` (a committed PUT).
    pub(crate) fn put(store: &Store, bck: &Bck, name: &str, data: &[u8]) {
        let mut txn = store.begin_put(bck, name).unwrap();
        txn.write(data).unwrap();
        txn.commit(Default::default()).unwrap();
    }

    /// Drops the file's pages from the page cache (they are clean), as memory pressure would.
    fn evict(handle: &ObjHandle) {
        rustix::fs::fadvise(&handle.file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
    }

    fn read_whole(handle: &Arc<ObjHandle>) -> Result<Vec<u8>, ItemError> {
        let mut item = open_object_item(handle.clone(), None)?;
        let mut out = Vec::new();
        while let Some(chunk) = item.read_chunk(100 << 10)? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// What a descriptor remembers of a verification, and when it hashes again: a whole read
    /// after a verified one is not hashed while the page cache holds every byte; once bytes have
    /// to come from the disk, the whole object is hashed again — also when the miss is found in
    /// the middle of the object — and an unhashed range read from the disk makes it forget.
    /// A directory on the file system the tests are built on (not a tmpfs `/tmp`, where
    /// `fadvise(DONTNEED)` evicts nothing).
    fn disk_dir() -> tempfile::TempDir {
        let exe = std::env::current_exe().unwrap();
        tempfile::tempdir_in(exe.parent().unwrap()).unwrap()
    }

    #[test]
    fn verified_objects_are_hashed_again_whenever_bytes_come_from_the_disk() {
        let dir = disk_dir();
        let store = Store::open(&[dir.path().join("mp")]).unwrap();
        let bck = Bck::ais("b");
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
        put(&store, &bck, "o", &data);
        let handle = Arc::new(store.open_object(&bck, "o").unwrap());
        assert!(!handle.is_verified());
        assert_eq!(read_whole(&handle).unwrap(), data);
        assert!(handle.is_verified(), "a whole hashed read that matched");

        let trusted = open_object_item(handle.clone(), None).unwrap();
        assert!(trusted.trusted && !trusted.verifies());
        assert_eq!(read_whole(&handle).unwrap(), data);
        assert!(handle.is_verified());

        // The second half leaves the page cache: a trusted read finds out in the middle and
        // hashes the whole object after all (the first half read again).
        let mut item = open_object_item(handle.clone(), None).unwrap();
        let first = item.read_chunk(350_000).unwrap().unwrap();
        assert!(item.trusted);
        evict(&handle);
        let rest = item.read_chunk(350_000).unwrap().unwrap();
        assert!(!item.trusted && item.verifies(), "went back to hashing");
        assert_eq!([&first[..], &rest[..]].concat(), data);
        assert!(handle.is_verified(), "the full hash matched");

        // A range read that has to go to the disk is not hashed: the descriptor forgets.
        evict(&handle);
        let mut ranged = open_object_item(
            handle.clone(),
            Some(ByteRange {
                start: 1000,
                length: Some(1000),
            }),
        )
        .unwrap();
        assert_eq!(&ranged.read_all().unwrap()[..], &data[1000..2000]);
        assert!(!handle.is_verified());
        let whole = open_object_item(handle.clone(), None).unwrap();
        assert!(whole.verifies(), "the next whole read hashes");

        // Another reader of the descriptor reads from the disk unhashed while a trusted item is
        // half-way: the trusted item hashes the whole object after all.
        assert_eq!(read_whole(&handle).unwrap(), data);
        let mut item = open_object_item(handle.clone(), None).unwrap();
        assert!(item.trusted);
        let first = item.read_chunk(350_000).unwrap().unwrap();
        handle.forget_verified();
        let rest = item.read_chunk(350_000).unwrap().unwrap();
        assert!(!item.trusted && item.verifies(), "went back to hashing");
        assert_eq!([&first[..], &rest[..]].concat(), data);
    }

    /// Bit rot under a verified descriptor: damaged bytes that come back from the disk after
    /// the page cache let go of them are caught, not served as verified.
    #[test]
    fn damage_on_the_disk_is_caught_through_a_verified_descriptor() {
        use std::os::unix::fs::FileExt;
        let dir = disk_dir();
        let store = Store::open(&[dir.path().join("mp")]).unwrap();
        let bck = Bck::ais("b");
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        put(&store, &bck, "o", &data);
        let handle = Arc::new(store.open_object(&bck, "o").unwrap());
        assert_eq!(read_whole(&handle).unwrap(), data);
        assert!(handle.is_verified());
        // Damage one page of the stored bytes with a direct write: it goes to the disk and the
        // kernel drops that page from the cache, as if the disk had changed under a clean cache.
        use std::os::unix::fs::OpenOptionsExt;
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(&handle.path)
            .unwrap();
        let mut room = vec![0u8; 3 * 4096];
        let skew = (4096 - room.as_ptr() as usize % 4096) % 4096;
        let page = &mut room[skew..skew + 4096];
        let at = 28 * 4096; // the page holding byte 114,688..118,784
        page.copy_from_slice(&data[at..at + 4096]);
        page[100] ^= 0x40;
        direct.write_all_at(page, at as u64).unwrap();
        match read_whole(&handle) {
            Err(ItemError::Corrupt(m)) => assert!(m.contains("checksum mismatch"), "{m}"),
            Err(e) => panic!("expected a checksum mismatch, got {e:?}"),
            Ok(got) => panic!(
                "damaged bytes served as verified: {}",
                if got == data {
                    "old bytes"
                } else {
                    "new bytes"
                }
            ),
        }
    }

    #[test]
    fn held_bytes_count_against_the_node_budget_until_the_last_slice_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&[dir.path().join("mp")]).unwrap());
        let reader = LocalReader::new(store);
        let big = (HELD_MEMBER_BYTES as usize) / 2;
        let first = reader.hold(vec![1u8; big]).expect("half the budget fits");
        let slice = first.slice(10..20);
        drop(first);
        let second = reader.hold(vec![2u8; big]).expect("the other half fits");
        assert!(!reader.may_hold(1), "the budget is used up");
        assert!(reader.hold(vec![3u8; 1]).is_none(), "nothing more is held");
        drop(second);
        assert!(
            !reader.may_hold(big as u64 + 1),
            "a slice keeps its buffer counted"
        );
        assert_eq!(&slice[..], &[1u8; 10]);
        drop(slice);
        assert!(
            reader.may_hold(HELD_MEMBER_BYTES as u64),
            "everything was given back"
        );
    }
}
