//! Objects and shards kept open between requests.
//!
//! Training loaders read the same objects and shards again and again. Keeping a file open saves,
//! on every later request, the path walk, the open, the metadata read and the close: a kept
//! object costs one `fstat` and its `pread`s, a member of a kept TAR shard the same.
//!
//! A kept file is reused only while
//! - the store's change stamp of the object is the one read before it was opened (a PUT, an
//!   append, a DELETE or a destroyed bucket through moss is seen by the next request), and
//! - one `fstat` still finds the file as it was opened: same inode, size, modification and
//!   change times, still linked. A file written, truncated, replaced or removed behind moss's back
//!   is opened afresh (and its metadata read again).
//!
//! Entries are evicted in CLOCK order (recently reused ones get a second chance). Every kept
//! file holds a descriptor of the reader's budget and leaves a reserve of it to the stat phases of
//! requests. Entries made stale by changes are closed by [`KeptOpen::close_stale`], which the
//! target calls every second — not on the request path.
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use moss_storage::{ObjHandle, StoreError};
use moss_types::Bck;

use crate::item::{FdTicket, LocalReader};

/// Shards one reader keeps open.
pub const KEEP_SHARDS: usize = 256;
/// Whole objects one reader keeps open.
pub const KEEP_OBJECTS: usize = 8192;
/// Descriptors of the budget a kept shard must leave to the stat phases of requests.
pub const SHARD_FD_RESERVE: i64 = 128;
/// The same for a kept object: objects come and go faster, so they leave more.
pub const OBJECT_FD_RESERVE: i64 = 1024;

/// Open files, bounded, reused while unchanged.
pub struct KeptOpen {
    capacity: usize,
    reserve: i64,
    inner: Mutex<Inner>,
    /// Opens answered from the kept handles.
    pub hits: AtomicU64,
}

struct Inner {
    /// Object digest → index into `slots`.
    index: HashMap<u64, usize>,
    slots: Vec<Kept>,
    /// The CLOCK hand: the next slot looked at for eviction.
    hand: usize,
    /// The store's change count when stale entries were last dropped.
    swept_at: u64,
}

struct Kept {
    digest: u64,
    bck: Bck,
    objname: String,
    handle: Arc<ObjHandle>,
    ticket: Arc<FdTicket>,
    stamp: u64,
    /// Reused since the hand last passed.
    referenced: bool,
}

impl KeptOpen {
    /// Keeps at most `capacity` files, each only while more than `reserve` descriptors of the
    /// budget are left.
    pub fn new(capacity: usize, reserve: i64) -> KeptOpen {
        KeptOpen {
            capacity,
            reserve,
            inner: Mutex::new(Inner {
                index: HashMap::new(),
                slots: Vec::new(),
                hand: 0,
                swept_at: 0,
            }),
            hits: AtomicU64::new(0),
        }
    }

    /// The object, open (rebuilt first if its bucket keeps redundancy and it is missing or
    /// damaged); with the descriptor's budget ticket when the handle is kept here (the caller may
    /// hold both for its data phase).
    pub fn open(
        &self,
        reader: &LocalReader,
        bck: &Bck,
        objname: &str,
    ) -> Result<(Arc<ObjHandle>, Option<Arc<FdTicket>>), StoreError> {
        let digest = moss_cluster::object_digest(bck, objname);
        // Before opening: a change after this read makes the kept handle stale next time.
        let stamp = reader.store.change_stamp_of(digest);
        if let Some((handle, ticket)) = self.reuse(digest, stamp, bck, objname) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok((handle, Some(ticket)));
        }
        let handle = Arc::new(reader.open_repaired(bck, objname)?);
        let ticket = match reader.take_fd_leaving(self.reserve) {
            Some(ticket) => ticket,
            None => {
                // The budget ran out before the capacity (several readers share it): make room
                // by evicting one entry, whose descriptor is given back once nobody reads it.
                let victim = self.inner.lock().ok().and_then(|mut i| i.evict());
                drop(victim);
                match reader.take_fd_leaving(self.reserve) {
                    Some(ticket) => ticket,
                    None => return Ok((handle, None)),
                }
            }
        };
        let ticket = Arc::new(ticket);
        let kept = Kept {
            digest,
            bck: bck.clone(),
            objname: objname.to_string(),
            handle: handle.clone(),
            ticket: ticket.clone(),
            stamp,
            referenced: false,
        };
        let replaced = match self.inner.lock() {
            Ok(mut inner) => inner.insert(kept, self.capacity),
            Err(_) => None,
        };
        drop(replaced); // closed unlocked
        Ok((handle, Some(ticket)))
    }

    /// The kept handle of the object if it is still what the store holds.
    fn reuse(
        &self,
        digest: u64,
        stamp: u64,
        bck: &Bck,
        objname: &str,
    ) -> Option<(Arc<ObjHandle>, Arc<FdTicket>)> {
        let found = self.inner.lock().ok().and_then(|mut inner| {
            let slot = *inner.index.get(&digest)?;
            let kept = &mut inner.slots[slot];
            if kept.stamp != stamp || kept.bck != *bck || kept.objname != objname {
                return None;
            }
            kept.referenced = true;
            Some((kept.handle.clone(), kept.ticket.clone()))
        })?;
        // Outside the lock: one fstat, for changes made behind moss's back.
        if unchanged(&found.0) {
            return Some(found);
        }
        let removed = self
            .inner
            .lock()
            .ok()
            .and_then(|mut inner| inner.remove_if(digest, &found.0));
        drop(removed); // closed unlocked
        None
    }

    /// Closes the entries made stale by changes (their space is freed, their descriptors given
    /// back); the target calls it every second, so that happens even when no request comes.
    pub fn close_stale(&self, reader: &LocalReader) {
        let stale = match self.inner.lock() {
            Ok(mut inner) => inner.sweep(reader),
            Err(_) => return,
        };
        // The closes (which may free the space of large deleted files) happen here, unlocked.
        drop(stale);
    }

    /// Number of kept files.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.slots.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    /// Takes out the entries made stale by overwrites, deletes or destroyed buckets (only when
    /// the store changed at all); the caller drops them.
    fn sweep(&mut self, reader: &LocalReader) -> Vec<Kept> {
        let changes = reader.store.change_count();
        if self.swept_at == changes {
            return Vec::new();
        }
        self.swept_at = changes;
        let store = &reader.store;
        let mut stale = Vec::new();
        let mut i = 0;
        while i < self.slots.len() {
            if store.change_stamp_of(self.slots[i].digest) == self.slots[i].stamp {
                i += 1;
            } else {
                stale.push(self.remove_at(i));
            }
        }
        stale
    }

    /// Adds `kept`; the entry it replaces or evicts, for the caller to drop unlocked.
    fn insert(&mut self, kept: Kept, capacity: usize) -> Option<Kept> {
        if capacity == 0 {
            return Some(kept);
        }
        if let Some(&slot) = self.index.get(&kept.digest) {
            return Some(std::mem::replace(&mut self.slots[slot], kept));
        }
        let evicted = if self.slots.len() < capacity {
            None
        } else {
            self.evict()
        };
        self.index.insert(kept.digest, self.slots.len());
        self.slots.push(kept);
        evicted
    }

    /// Takes out the CLOCK victim: the first entry not reused since the hand last passed it.
    fn evict(&mut self) -> Option<Kept> {
        if self.slots.is_empty() {
            return None;
        }
        loop {
            self.hand %= self.slots.len();
            let slot = &mut self.slots[self.hand];
            if slot.referenced {
                slot.referenced = false;
                self.hand += 1;
                continue;
            }
            return Some(self.remove_at(self.hand));
        }
    }

    /// Takes out the entry of `digest` if it still holds `handle`.
    fn remove_if(&mut self, digest: u64, handle: &Arc<ObjHandle>) -> Option<Kept> {
        let slot = *self.index.get(&digest)?;
        Arc::ptr_eq(&self.slots[slot].handle, handle).then(|| self.remove_at(slot))
    }

    fn remove_at(&mut self, slot: usize) -> Kept {
        let gone = self.slots.swap_remove(slot);
        self.index.remove(&gone.digest);
        if let Some(moved) = self.slots.get(slot) {
            self.index.insert(moved.digest, slot);
        }
        gone
    }
}

/// Whether the open file is still the one the handle was opened as: same inode, size, times,
/// and still linked under some name.
fn unchanged(handle: &ObjHandle) -> bool {
    let Ok(now) = handle.file.metadata() else {
        return false;
    };
    let then = &handle.stat;
    now.nlink() > 0
        && now.ino() == then.ino()
        && now.size() == then.size()
        && (now.mtime(), now.mtime_nsec()) == (then.mtime(), then.mtime_nsec())
        && (now.ctime(), now.ctime_nsec()) == (then.ctime(), then.ctime_nsec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::tests::put;
    use moss_storage::Store;

    /// At capacity, the entry not reused since the hand passed makes room; a reused one stays.
    #[test]
    fn clock_keeps_what_is_reused_and_evicts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&[dir.path().join("mp")]).unwrap());
        let bck = Bck::ais("b");
        for name in ["a", "b", "c", "d"] {
            put(&store, &bck, name, name.as_bytes());
        }
        let reader = LocalReader::new(store);
        let kept = KeptOpen::new(2, 0);
        let open = |name: &str| {
            let (handle, ticket) = kept.open(&reader, &bck, name).unwrap();
            assert!(ticket.is_some(), "{name} is kept");
            handle
        };
        let a = open("a");
        open("b");
        assert!(Arc::ptr_eq(&a, &open("a")), "a reused");
        assert_eq!(kept.hits.load(Ordering::Relaxed), 1);
        // Full: the hand clears a's mark, then evicts b (not reused).
        open("c");
        assert_eq!(kept.len(), 2);
        assert!(Arc::ptr_eq(&a, &open("a")), "a survived");
        open("b");
        assert_eq!(
            kept.hits.load(Ordering::Relaxed),
            2,
            "b was evicted: opened anew"
        );
        assert_eq!(kept.len(), 2);
        // Now c (not reused) made room for b; a and b are kept.
        assert!(Arc::ptr_eq(&a, &open("a")));
        open("b");
        assert_eq!(kept.hits.load(Ordering::Relaxed), 4);
        open("c");
        assert_eq!(kept.hits.load(Ordering::Relaxed), 4, "c was evicted");
    }

    /// A change through the store makes the kept handle stale at once; an unchanged one is
    /// reused.
    #[test]
    fn a_commit_makes_the_kept_handle_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&[dir.path().join("mp")]).unwrap());
        let bck = Bck::ais("b");
        put(&store, &bck, "o", b"one");
        let reader = LocalReader::new(store.clone());
        let kept = KeptOpen::new(8, 0);
        let first = kept.open(&reader, &bck, "o").unwrap().0;
        put(&store, &bck, "o", b"two");
        let second = kept.open(&reader, &bck, "o").unwrap().0;
        assert!(!Arc::ptr_eq(&first, &second));
        assert_eq!(second.read_all_verified().unwrap(), b"two");
        let third = kept.open(&reader, &bck, "o").unwrap().0;
        assert!(Arc::ptr_eq(&second, &third));
        // Deleted: closed by the next sweep, without waiting for a request.
        drop((second, third));
        store.delete(&bck, "o").unwrap();
        assert_eq!(kept.len(), 1);
        kept.close_stale(&reader);
        assert_eq!(kept.len(), 0);
    }
}
