//! The object store of one target: mountpath selection, atomic writes, reads, listing, removal.
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use moss_cluster::{Mountpath, mountpath_for};
use moss_types::bucket::{Bck, Namespace, Provider};
use xxhash_rust::xxh64::Xxh64;

use crate::{CKSUM_TYPE, ObjHandle, ObjMeta, StoreError, checksum_hex};

/// Directory of in-flight writes inside each mountpath.
pub(crate) const WORK_DIR: &str = ".moss-work";
/// Content-type directory of objects inside a bucket directory.
pub(crate) const OBJ_DIR: &str = "%ob";

/// The object store of a target.
#[derive(Debug)]
pub struct Store {
    mountpaths: Vec<Mountpath>,
    pub(crate) changes: Arc<Changes>,
}

/// Change stamps, for caches of open objects: a counter per hash slot of (bucket, object) that
/// every commit and delete bumps right before and once it has taken effect, plus an epoch that
/// destroying a bucket bumps. Both only grow, so their sum changes whenever either does. A cache that reads the stamp
/// *before* it opens an object, and reuses the open object only while the stamp is unchanged,
/// never serves a version older than the last change it could have seen.
#[derive(Debug)]
pub(crate) struct Changes {
    slots: Box<[AtomicU64]>,
    epoch: AtomicU64,
    /// Every change of any kind.
    total: AtomicU64,
}

const CHANGE_SLOTS: usize = 4096;

impl Changes {
    fn new() -> Changes {
        Changes {
            slots: (0..CHANGE_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn slot(&self, digest: u64) -> &AtomicU64 {
        &self.slots[(digest % CHANGE_SLOTS as u64) as usize]
    }

    fn stamp(&self, digest: u64) -> u64 {
        let epoch = self.epoch.load(Ordering::Acquire);
        epoch.wrapping_add(self.slot(digest).load(Ordering::Acquire))
    }

    pub(crate) fn changed(&self, digest: u64) {
        self.slot(digest).fetch_add(1, Ordering::AcqRel);
        self.total.fetch_add(1, Ordering::AcqRel);
    }

    fn new_epoch(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.total.fetch_add(1, Ordering::AcqRel);
    }
}

/// One object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    pub name: String,
    pub size: u64,
    /// Metadata, when the listing asked for it and it could be read.
    pub meta: Option<ObjMeta>,
    /// Access time (unix ns; the modification time where atime is unavailable), with metadata.
    pub atime_ns: Option<u64>,
    pub mountpath: usize,
    /// A virtual directory of a non-recursive listing (`name` ends with `/`).
    pub is_dir: bool,
}

impl Store {
    /// Opens (creating if needed) the given mountpaths, removes leftovers of interrupted writes and
    /// checks that the file system supports user xattrs.
    pub fn open(paths: &[PathBuf]) -> Result<Store, StoreError> {
        if paths.is_empty() {
            return Err(StoreError::Io(io::Error::other(
                "a target needs at least one mountpath",
            )));
        }
        let mut mountpaths = Vec::with_capacity(paths.len());
        for path in paths {
            fs::create_dir_all(path)?;
            let canonical = fs::canonicalize(path)?;
            let work = canonical.join(WORK_DIR);
            if work.exists() {
                fs::remove_dir_all(&work)?;
            }
            fs::create_dir_all(&work)?;
            probe_xattrs(&work)?;
            let text = canonical
                .to_str()
                .ok_or_else(|| io::Error::other("mountpath is not UTF-8"))?;
            let mountpath = Mountpath::new(text);
            if mountpaths
                .iter()
                .any(|m: &Mountpath| m.path == mountpath.path)
            {
                return Err(StoreError::Io(io::Error::other(format!(
                    "duplicate mountpath {text}"
                ))));
            }
            mountpaths.push(mountpath);
        }
        let store = Store {
            mountpaths,
            changes: Arc::new(Changes::new()),
        };
        for i in 0..store.mountpaths.len() {
            store.mpu_recover(i);
        }
        Ok(store)
    }

    /// The object's change stamp (see `Changes`): read it before opening the object; a later
    /// stamp that differs means the object may have been overwritten or removed since.
    pub fn change_stamp(&self, bck: &Bck, objname: &str) -> u64 {
        self.change_stamp_of(moss_cluster::object_digest(bck, objname))
    }

    /// [`Self::change_stamp`] of the object whose `moss_cluster::object_digest` is `digest`.
    pub fn change_stamp_of(&self, digest: u64) -> u64 {
        self.changes.stamp(digest)
    }

    /// How many changes (commits, deletes, destroyed buckets) this store has seen: a cache need
    /// not look for stale entries while this stays the same.
    pub fn change_count(&self) -> u64 {
        self.changes.total.load(Ordering::Acquire)
    }

    /// The mountpaths, in the order given.
    pub fn mountpaths(&self) -> &[Mountpath] {
        &self.mountpaths
    }

    pub(crate) fn bucket_dir(&self, mountpath: usize, bck: &Bck) -> PathBuf {
        let mut dir = PathBuf::from(&self.mountpaths[mountpath].path);
        dir.push(format!("@{}", bck.provider.as_str()));
        if !bck.namespace.is_global() {
            if bck.namespace.uuid.is_empty() {
                dir.push(format!("#{}", bck.namespace.name));
            } else {
                dir.push(bck.namespace.uname());
            }
        }
        dir.push(&bck.name);
        dir
    }

    /// Index of the mountpath HRW assigns to an object.
    pub fn hrw_mountpath(&self, bck: &Bck, objname: &str) -> usize {
        let key = moss_cluster::object_digest(bck, objname);
        let chosen = mountpath_for(&self.mountpaths, key).map(|m| m.path.as_str());
        self.mountpaths
            .iter()
            .position(|m| Some(m.path.as_str()) == chosen)
            .unwrap_or(0)
    }

    fn path_on(&self, mountpath: usize, bck: &Bck, objname: &str) -> PathBuf {
        // One allocation: this runs for every object access.
        let root = &self.mountpaths[mountpath].path;
        let provider = bck.provider.as_str();
        let mut path = String::with_capacity(root.len() + bck.name.len() + objname.len() + 24);
        path.push_str(root);
        path.push_str("/@");
        path.push_str(provider);
        if !bck.namespace.is_global() {
            path.push('/');
            if bck.namespace.uuid.is_empty() {
                path.push('#');
                path.push_str(&bck.namespace.name);
            } else {
                path.push_str(&bck.namespace.uname());
            }
        }
        path.push('/');
        path.push_str(&bck.name);
        path.push('/');
        path.push_str(OBJ_DIR);
        path.push('/');
        path.push_str(objname);
        PathBuf::from(path)
    }

    /// Candidate locations of an object: its HRW mountpath first, then the others (objects stay
    /// readable when mountpaths are added).
    fn candidates(&self, bck: &Bck, objname: &str) -> Vec<(usize, PathBuf)> {
        let first = self.hrw_mountpath(bck, objname);
        let rest = (0..self.mountpaths.len()).filter(|&i| i != first);
        std::iter::once(first)
            .chain(rest)
            .map(|i| (i, self.path_on(i, bck, objname)))
            .collect()
    }

    /// Opens an object for reading.
    pub fn open_object(&self, bck: &Bck, objname: &str) -> Result<ObjHandle, StoreError> {
        for (mountpath, path) in self.candidates(bck, objname) {
            if let Some(handle) = self.open_at(mountpath, path)? {
                return Ok(handle);
            }
        }
        Err(StoreError::NotFound)
    }

    /// Opens the object file at `path` on `mountpath`: `None` if there is none (or a directory).
    pub(crate) fn open_at(
        &self,
        mountpath: usize,
        path: PathBuf,
    ) -> Result<Option<ObjHandle>, StoreError> {
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(e) => match StoreError::from_lookup(e) {
                StoreError::NotFound => return Ok(None),
                other => return Err(other),
            },
        };
        let meta = match ObjMeta::load(&file) {
            Ok(meta) => meta,
            // A directory (a prefix of other objects' names) is not an object; checked only here,
            // off the common path.
            Err(_) if file.metadata().is_ok_and(|m| m.is_dir()) => return Ok(None),
            Err(e) => return Err(e),
        };
        // A truncated (or extended) file is caught here, before any byte is served — also for
        // range reads, which are not checksummed. One fstat on an open descriptor.
        let stat = file.metadata()?;
        let on_disk = stat.len();
        if on_disk != meta.size {
            return Err(StoreError::Corrupt(format!(
                "object size mismatch: {on_disk} bytes stored, {} recorded",
                meta.size
            )));
        }
        Ok(Some(ObjHandle {
            file,
            meta,
            path,
            mountpath,
            stat,
            root_len: self.mountpaths[mountpath].path.len(),
            verified: Default::default(),
        }))
    }

    /// Opens an object's file without loading its metadata (for read-ahead hints).
    pub fn open_file(&self, bck: &Bck, objname: &str) -> Option<File> {
        self.candidates(bck, objname)
            .into_iter()
            .find_map(|(_, path)| File::open(path).ok())
    }

    /// Size of an object from its file alone (cheap existence check; metadata is read on open).
    pub fn stat_size(&self, bck: &Bck, objname: &str) -> Result<u64, StoreError> {
        self.stat(bck, objname).map(|(size, _)| size)
    }

    /// Size and last-write time (seconds) of an object from one `stat` of its file.
    pub fn stat(&self, bck: &Bck, objname: &str) -> Result<(u64, u64), StoreError> {
        use std::os::unix::fs::MetadataExt;
        for (_, path) in self.candidates(bck, objname) {
            match fs::metadata(&path) {
                Ok(md) if md.is_file() => return Ok((md.len(), md.mtime().max(0) as u64)),
                Ok(_) => continue,
                Err(e) => match StoreError::from_lookup(e) {
                    StoreError::NotFound => continue,
                    other => return Err(other),
                },
            }
        }
        Err(StoreError::NotFound)
    }

    /// A fresh, randomly named path in a mountpath's work directory (emptied at every start).
    pub(crate) fn work_path(&self, mountpath: usize, kind: &str) -> PathBuf {
        PathBuf::from(&self.mountpaths[mountpath].path)
            .join(WORK_DIR)
            .join(format!("{kind}.{:016x}", rand::random::<u64>()))
    }

    /// An anonymous scratch file on a random mountpath (unlinked at once, so it never outlives
    /// its handle).
    pub fn scratch_file(&self) -> Result<File, StoreError> {
        let k = rand::random::<u64>() as usize % self.mountpaths.len();
        let path = self.work_path(k, "scratch");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        fs::remove_file(&path)?;
        Ok(file)
    }

    /// Starts an atomic write of an object; nothing is visible until [`PutTxn::commit`].
    pub fn begin_put(&self, bck: &Bck, objname: &str) -> Result<PutTxn, StoreError> {
        let mountpath = self.hrw_mountpath(bck, objname);
        let tmp = self.work_path(mountpath, "put");
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(self.put_txn(mountpath, bck, objname, file, tmp, Xxh64::new(0), 0))
    }

    /// A write transaction over a work file that already holds `size` bytes hashed into
    /// `hasher`, on mountpath `mountpath` (where the object will be renamed to).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn put_txn(
        &self,
        mountpath: usize,
        bck: &Bck,
        objname: &str,
        file: File,
        tmp: PathBuf,
        hasher: Xxh64,
        size: u64,
    ) -> PutTxn {
        PutTxn {
            file: Some(file),
            committed: false,
            tmp,
            dest: self.path_on(mountpath, bck, objname),
            objname: objname.to_string(),
            hasher,
            size,
            stale: self
                .candidates(bck, objname)
                .into_iter()
                .filter(|(i, _)| *i != mountpath)
                .map(|(i, p)| (p, self.bucket_dir(i, bck).join(OBJ_DIR)))
                .collect(),
            copies: self.copy_paths(bck, objname),
            changes: self.changes.clone(),
            digest: moss_cluster::object_digest(bck, objname),
        }
    }

    /// Removes an object from every mountpath; returns its size (that of the first copy found),
    /// `NotFound` if it was nowhere.
    pub fn delete(&self, bck: &Bck, objname: &str) -> Result<u64, StoreError> {
        let digest = moss_cluster::object_digest(bck, objname);
        // Before and after, as a commit (see `PutTxn::install`).
        self.changes.changed(digest);
        let mut found: Option<u64> = None;
        for (mountpath, path) in self.candidates(bck, objname) {
            match fs::symlink_metadata(&path) {
                Ok(md) if md.is_file() => {
                    fs::remove_file(&path)?;
                    found.get_or_insert(md.len());
                    let objdir = self.bucket_dir(mountpath, bck).join(OBJ_DIR);
                    prune_empty_parents(&path, &objdir);
                }
                Ok(_) => {}
                Err(e) => match StoreError::from_lookup(e) {
                    StoreError::NotFound => {}
                    other => return Err(other),
                },
            }
        }
        // Copies go too, also when the object itself was already lost.
        let (_, copy_size) = self.remove_copies(bck, objname, &[]);
        self.changes.changed(digest);
        found.or(copy_size).ok_or(StoreError::NotFound)
    }

    /// Removes a bucket's data from every mountpath (moved aside first, so it vanishes at once).
    pub fn destroy_bucket(&self, bck: &Bck) -> Result<(), StoreError> {
        for i in 0..self.mountpaths.len() {
            let dir = self.bucket_dir(i, bck);
            let trash = self.work_path(i, "trash");
            match fs::rename(&dir, &trash) {
                Ok(()) => {
                    self.changes.new_epoch();
                    fs::remove_dir_all(&trash)?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Lists up to `limit` objects of a bucket with names starting with `prefix` and greater than
    /// `start_after`, in name order, across all mountpaths. With `no_recursion`, names one level
    /// or more below the prefix's level become one directory entry each (`dir/`, AIStore's
    /// virtual directories), listed in name order among the objects.
    pub fn list(
        &self,
        bck: &Bck,
        prefix: &str,
        start_after: &str,
        limit: usize,
        with_meta: bool,
        no_recursion: bool,
    ) -> Result<Vec<ListedObject>, StoreError> {
        // The `limit` smallest names seen so far (a directory entry once, whatever it holds).
        let mut best: BTreeMap<String, (u64, usize, bool)> = BTreeMap::new();
        for i in 0..self.mountpaths.len() {
            let objdir = self.bucket_dir(i, bck).join(OBJ_DIR);
            // Start the walk at the deepest directory the prefix pins down.
            let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
            let start = if dir_part.is_empty() {
                objdir.clone()
            } else {
                objdir.join(dir_part)
            };
            let mut visit = |name: String, md: &fs::Metadata| {
                if !name.starts_with(prefix) {
                    return;
                }
                let (name, size, is_dir) = match no_recursion.then(|| dir_entry(&name, prefix)) {
                    Some(Some(dir)) => (dir.to_string(), 0, true),
                    _ => (name, md.len(), false),
                };
                if name.as_str() <= start_after || best.contains_key(&name) {
                    return;
                }
                if best.len() < limit {
                    best.insert(name, (size, i, is_dir));
                } else if best.last_key_value().is_some_and(|(top, _)| name < *top) {
                    best.pop_last();
                    best.insert(name, (size, i, is_dir));
                }
            };
            walk_objects(&objdir, &start, &mut visit)?;
        }
        let mut out: Vec<ListedObject> = best
            .into_iter()
            .map(|(name, (size, mountpath, is_dir))| ListedObject {
                name,
                size,
                meta: None,
                atime_ns: None,
                mountpath,
                is_dir,
            })
            .collect();
        if with_meta {
            for obj in out.iter_mut().filter(|o| !o.is_dir) {
                let path = self.path_on(obj.mountpath, bck, &obj.name);
                let Ok(file) = File::open(&path) else {
                    continue;
                };
                obj.meta = ObjMeta::load(&file).ok();
                obj.atime_ns = file.metadata().ok().and_then(|md| {
                    let time = md.accessed().or_else(|_| md.modified()).ok()?;
                    let since = time.duration_since(std::time::UNIX_EPOCH).ok()?;
                    u64::try_from(since.as_nanos()).ok()
                });
            }
        }
        Ok(out)
    }

    /// Every bucket that has data on this target.
    pub fn buckets_on_disk(&self) -> Vec<Bck> {
        let mut found = Vec::new();
        for mountpath in &self.mountpaths {
            let Ok(providers) = fs::read_dir(&mountpath.path) else {
                continue;
            };
            for p in providers.flatten() {
                let pname = p.file_name().to_string_lossy().into_owned();
                let Some(provider) = pname
                    .strip_prefix('@')
                    .and_then(|s| Provider::parse(s).ok())
                else {
                    continue;
                };
                let Ok(children) = fs::read_dir(p.path()) else {
                    continue;
                };
                for child in children.flatten() {
                    let cname = child.file_name().to_string_lossy().into_owned();
                    let bucket_dirs: Vec<(Namespace, String, PathBuf)> =
                        if cname.starts_with('#') || cname.starts_with('@') {
                            let ns = if let Some(name) = cname.strip_prefix('#') {
                                Namespace {
                                    uuid: String::new(),
                                    name: name.to_string(),
                                }
                            } else {
                                match Namespace::parse(&cname) {
                                    Ok(ns) => ns,
                                    Err(_) => continue,
                                }
                            };
                            fs::read_dir(child.path())
                                .into_iter()
                                .flatten()
                                .flatten()
                                .map(|b| {
                                    (
                                        ns.clone(),
                                        b.file_name().to_string_lossy().into_owned(),
                                        b.path(),
                                    )
                                })
                                .collect()
                        } else {
                            vec![(Namespace::default(), cname, child.path())]
                        };
                    for (namespace, name, _) in bucket_dirs {
                        let bck = Bck {
                            name,
                            provider,
                            namespace,
                        };
                        if !found.contains(&bck) {
                            found.push(bck);
                        }
                    }
                }
            }
        }
        found
    }

    /// Calls `visit(objname, mountpath)` for every object of a bucket on this target.
    pub fn walk_bucket(
        &self,
        bck: &Bck,
        mut visit: impl FnMut(&str, usize),
    ) -> Result<(), StoreError> {
        for i in 0..self.mountpaths.len() {
            let objdir = self.bucket_dir(i, bck).join(OBJ_DIR);
            walk_objects(&objdir, &objdir, &mut |name: String, _| visit(&name, i))?;
        }
        Ok(())
    }

    /// Calls `visit` for every object of a bucket on this target whose name starts with
    /// `prefix` (mountpath by mountpath, not sorted); the walk starts at the deepest directory
    /// the prefix pins down. Returning `false` from `visit` stops the walk.
    pub fn walk_prefix(
        &self,
        bck: &Bck,
        prefix: &str,
        mut visit: impl FnMut(WalkedObject<'_>) -> bool,
    ) -> Result<(), StoreError> {
        use std::os::unix::fs::MetadataExt;
        let (dir_part, _) = prefix.rsplit_once('/').unwrap_or(("", prefix));
        let mut go_on = true;
        for i in 0..self.mountpaths.len() {
            let objdir = self.bucket_dir(i, bck).join(OBJ_DIR);
            let start = if dir_part.is_empty() {
                objdir.clone()
            } else {
                objdir.join(dir_part)
            };
            walk_objects(&objdir, &start, &mut |name: String, md: &fs::Metadata| {
                if !go_on || !name.starts_with(prefix) {
                    return;
                }
                go_on = visit(WalkedObject {
                    name: &name,
                    size: md.len(),
                    on_disk: md.blocks() * 512,
                    mountpath: i,
                });
            })?;
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// Moves every object of bucket `from` to bucket `to` on this target, mountpath by
    /// mountpath: one atomic directory rename where `to` has nothing yet there, else object by
    /// object (an object already in `to` wins: it was written after the rename). Idempotent: a
    /// rename interrupted anywhere is finished by running it again. Returns objects moved one by
    /// one (directory renames count as 0).
    pub fn rename_bucket(&self, from: &Bck, to: &Bck) -> Result<u64, StoreError> {
        let mut moved = 0;
        for i in 0..self.mountpaths.len() {
            let src = self.bucket_dir(i, from);
            let dst = self.bucket_dir(i, to);
            if !src.exists() {
                continue;
            }
            if !dst.exists() {
                if let Some(parent) = dst.parent() {
                    fs::create_dir_all(parent)?;
                }
                match fs::rename(&src, &dst) {
                    Ok(()) => {
                        self.changes.new_epoch();
                        if let Some(parent) = dst.parent() {
                            File::open(parent)?.sync_all()?;
                        }
                        continue;
                    }
                    // Someone created `to` meanwhile (a PUT into the new bucket): merge.
                    Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let src_objs = src.join(OBJ_DIR);
            let dst_objs = dst.join(OBJ_DIR);
            let mut names = Vec::new();
            walk_objects(&src_objs, &src_objs, &mut |name: String, _| {
                names.push(name)
            })?;
            for name in names {
                let from_path = src_objs.join(&name);
                let to_path = dst_objs.join(&name);
                if to_path.exists() {
                    fs::remove_file(&from_path)?;
                } else {
                    if let Some(parent) = to_path.parent() {
                        create_dirs(parent)?;
                    }
                    fs::rename(&from_path, &to_path)?;
                    moved += 1;
                }
                prune_empty_parents(&from_path, &src_objs);
            }
            self.changes.new_epoch();
            fs::remove_dir_all(&src)?;
        }
        Ok(moved)
    }

    /// Fsyncs each directory once (after [`PutTxn::commit_but_dir`]).
    pub fn sync_dirs<'a>(
        &self,
        dirs: impl IntoIterator<Item = &'a Path>,
    ) -> Result<(), StoreError> {
        let mut done: Vec<&Path> = Vec::new();
        for dir in dirs {
            if !done.contains(&dir) {
                File::open(dir)?.sync_all()?;
                done.push(dir);
            }
        }
        Ok(())
    }

    /// True when any mountpath has a directory for the bucket.
    pub fn has_bucket_data(&self, bck: &Bck) -> bool {
        (0..self.mountpaths.len()).any(|i| self.bucket_dir(i, bck).exists())
    }

    /// Total capacity of the file systems holding the mountpaths (each file system once).
    pub fn capacity(&self) -> u64 {
        use std::os::unix::fs::MetadataExt;
        let mut seen = Vec::new();
        let mut total = 0u64;
        for m in &self.mountpaths {
            let Ok(md) = fs::metadata(&m.path) else {
                continue;
            };
            if seen.contains(&md.dev()) {
                continue;
            }
            seen.push(md.dev());
            if let Ok(st) = rustix::fs::statvfs(m.path.as_str()) {
                total = total.saturating_add(st.f_blocks.saturating_mul(st.f_frsize));
            }
        }
        total
    }

    /// Per mountpath: (path, bytes used, capacity) of its file system.
    pub fn usage(&self) -> Vec<(String, u64, u64)> {
        self.mountpaths
            .iter()
            .filter_map(|m| {
                let st = rustix::fs::statvfs(m.path.as_str()).ok()?;
                let capacity = st.f_blocks.saturating_mul(st.f_frsize);
                let free = st.f_bfree.saturating_mul(st.f_frsize);
                Some((m.path.clone(), capacity.saturating_sub(free), capacity))
            })
            .collect()
    }

    /// Removes work files older than `age` (left by writes that were never finished, e.g. a
    /// client that vanished while its upload was being committed) and empty directories inside
    /// bucket directories. Returns (files, bytes, directories) removed.
    pub fn clean_up(&self, age: std::time::Duration) -> Result<(u64, u64, u64), StoreError> {
        let (mut files, mut bytes, mut dirs) = (0, 0, 0);
        for m in &self.mountpaths {
            let work = Path::new(&m.path).join(WORK_DIR);
            for entry in fs::read_dir(&work)?.flatten() {
                let Ok(md) = entry.metadata() else { continue };
                let old = md
                    .modified()
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|elapsed| elapsed > age);
                if old && md.is_file() && fs::remove_file(entry.path()).is_ok() {
                    files += 1;
                    bytes += md.len();
                }
            }
        }
        for bck in self.buckets_on_disk() {
            for i in 0..self.mountpaths.len() {
                let objdir = self.bucket_dir(i, &bck).join(OBJ_DIR);
                dirs += remove_empty_dirs(&objdir, &objdir);
            }
        }
        Ok((files, bytes, dirs))
    }
}

/// One object met by [`Store::walk_prefix`].
#[derive(Debug, Clone, Copy)]
pub struct WalkedObject<'a> {
    pub name: &'a str,
    pub size: u64,
    /// Bytes the file takes on disk (allocated blocks).
    pub on_disk: u64,
    pub mountpath: usize,
}

/// The directory entry a non-recursive listing under `prefix` shows for object `name` (which
/// starts with `prefix`), or `None` if the object is at the prefix's level. AIStore's rule: with
/// `p` the prefix without one trailing `/`, the rest of the name after `p` and one `/`; if that
/// still holds a `/`, the entry is the name up to and including it.
pub fn dir_entry<'n>(name: &'n str, prefix: &str) -> Option<&'n str> {
    let p = prefix.strip_suffix('/').unwrap_or(prefix);
    let rest = name.get(p.len()..)?;
    let skip = usize::from(rest.starts_with('/'));
    let slash = rest[skip..].find('/')?;
    Some(&name[..p.len() + skip + slash + 1])
}

/// Removes empty directories below `dir` (never `root` itself); returns how many.
fn remove_empty_dirs(dir: &Path, root: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            removed += remove_empty_dirs(&entry.path(), root);
        }
    }
    if dir != root && fs::remove_dir(dir).is_ok() {
        removed += 1;
    }
    removed
}

/// An object write in progress: data goes to a work file and is hashed on the way.
pub struct PutTxn {
    file: Option<File>,
    /// Set once the work file has been renamed into place; until then dropping removes it.
    committed: bool,
    tmp: PathBuf,
    dest: PathBuf,
    objname: String,
    hasher: Xxh64,
    size: u64,
    /// Copies of the object on other mountpaths, removed on commit (with the directory each
    /// is pruned up to).
    stale: Vec<(PathBuf, PathBuf)>,
    /// Its mirror copies (`mirror.*`): removed by a commit of new content, kept by a restore of
    /// the same version.
    copies: Vec<(PathBuf, PathBuf)>,
    changes: Arc<Changes>,
    digest: u64,
}

impl PutTxn {
    /// Appends data.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("write after commit"))?;
        file.write_all(data)?;
        self.hasher.update(data);
        self.size += data.len() as u64;
        Ok(())
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The work file, opened anew for reading from its start (an upload of what was written).
    pub fn reader(&self) -> Result<File, StoreError> {
        Ok(File::open(&self.tmp)?)
    }

    /// Makes the object durable and visible: metadata, fsync, rename, directory fsync.
    pub fn commit(
        self,
        custom: std::collections::BTreeMap<String, String>,
    ) -> Result<ObjMeta, StoreError> {
        let (meta, dir) = self.commit_but_dir(custom)?;
        File::open(&dir)?.sync_all()?;
        Ok(meta)
    }

    /// [`PutTxn::commit`] without the directory fsync: the object is written durably and renamed
    /// into place, and the caller fsyncs the returned directory ([`Store::sync_dirs`]) before it
    /// calls the object durable. A writer of many objects into a few directories syncs each
    /// directory once instead of once per object.
    pub fn commit_but_dir(
        self,
        custom: std::collections::BTreeMap<String, String>,
    ) -> Result<(ObjMeta, PathBuf), StoreError> {
        let previous = File::open(&self.dest)
            .ok()
            .and_then(|f| ObjMeta::load(&f).ok());
        let meta = ObjMeta {
            size: self.size,
            cksum_type: CKSUM_TYPE.to_string(),
            cksum: checksum_hex(self.hasher.digest()),
            version: previous.map_or(1, |p| p.version + 1),
            mtime: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            custom,
        };
        self.install(meta)
    }

    /// Commits (durably, directory included) with the given metadata — an object restored from
    /// redundancy keeps its version — after checking that the bytes match its size and checksum.
    pub fn commit_as(mut self, meta: &ObjMeta) -> Result<(), StoreError> {
        let digest = checksum_hex(self.hasher.digest());
        if self.size != meta.size || digest != meta.cksum {
            return Err(StoreError::Corrupt(format!(
                "rebuilt object does not match: {} bytes with xxhash2 {digest}, expected {} bytes with {}",
                self.size, meta.size, meta.cksum
            )));
        }
        // Copies of another version (a stale copy being replaced by a newer one) must go.
        self.copies.retain(|(path, _)| {
            File::open(path)
                .ok()
                .and_then(|f| ObjMeta::load(&f).ok())
                .is_none_or(|c| c.version != meta.version || c.cksum != meta.cksum)
        });
        let (_, dir) = self.install(meta.clone())?;
        File::open(&dir)?.sync_all()?;
        Ok(())
    }

    fn install(mut self, meta: ObjMeta) -> Result<(ObjMeta, PathBuf), StoreError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| io::Error::other("double commit"))?;
        meta.store(&file)?;
        file.sync_all()?;
        drop(file);
        let conflict = |_| {
            StoreError::Conflict(format!(
                "object name {:?} conflicts with an existing object or directory",
                self.objname
            ))
        };
        let parent = self
            .dest
            .parent()
            .ok_or_else(|| io::Error::other("object path has no parent"))?;
        create_dirs(parent).map_err(conflict)?;
        // Stamped before and after the change (a seqlock): a writer of copies that checks the
        // stamp after renaming its copy into place sees any change that may have removed it.
        self.changes.changed(self.digest);
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            return Err(match e.kind() {
                io::ErrorKind::IsADirectory
                | io::ErrorKind::DirectoryNotEmpty
                | io::ErrorKind::NotADirectory => conflict(e),
                _ => StoreError::Io(e),
            });
        }
        self.committed = true;
        self.changes.changed(self.digest);
        let dir = parent.to_path_buf();
        for (stale, root) in self.stale.iter().chain(&self.copies) {
            if fs::remove_file(stale).is_ok() {
                prune_empty_parents(stale, root);
            }
        }
        Ok((meta, dir))
    }
}

impl Drop for PutTxn {
    /// An abandoned or failed write (early end of body, name conflict, I/O error) leaves no work
    /// file behind.
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `create_dir_all` that reports a file in the way as an error instead of racing.
pub(crate) fn create_dirs(dir: &Path) -> io::Result<()> {
    match fs::create_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Err(io::Error::new(io::ErrorKind::NotADirectory, e))
        }
        Err(e) => Err(e),
    }
}

/// Removes now-empty directories between an object path and its bucket's object directory.
pub(crate) fn prune_empty_parents(path: &Path, objdir: &Path) {
    let mut dir = path.parent();
    while let Some(d) = dir {
        if d == objdir || !d.starts_with(objdir) || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}

/// Recursively visits regular files under `start`, naming them relative to `objdir`.
pub(crate) fn walk_objects(
    objdir: &Path,
    start: &Path,
    visit: &mut dyn FnMut(String, &fs::Metadata),
) -> Result<(), StoreError> {
    let entries = match fs::read_dir(start) {
        Ok(entries) => entries,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let file_type = entry.file_type()?;
        let path = entry.path();
        if file_type.is_dir() {
            walk_objects(objdir, &path, visit)?;
        } else if file_type.is_file() {
            let Some(name) = path.strip_prefix(objdir).ok().and_then(|p| p.to_str()) else {
                continue;
            };
            let Ok(md) = entry.metadata() else {
                // Removed while we walked.
                continue;
            };
            visit(name.to_string(), &md);
        }
    }
    Ok(())
}

/// Fails early, with a clear message, on file systems without user xattrs.
fn probe_xattrs(work: &Path) -> Result<(), StoreError> {
    let probe = work.join("xattr-probe");
    let file = File::create(&probe)?;
    let meta = ObjMeta::default();
    let result = meta.store(&file).and_then(|_| ObjMeta::load(&file));
    let _ = fs::remove_file(&probe);
    result.map(|_| ()).map_err(|e| {
        StoreError::Io(io::Error::other(format!(
            "mountpath {} does not support user xattrs ({e}); use ext4, xfs or btrfs",
            work.display()
        )))
    })
}
