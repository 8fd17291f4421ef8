//! Shards kept open between requests.
//!
//! Training loaders read the same shards again and again, a few files at a time. Keeping a shard
//! open saves, on every later request, the path walk, the open, the metadata read, the `fstat`
//! and the close: a member of a kept TAR shard costs one `pread`. An entry is reused only while
//! the store's change stamp of the object is the one read before it was opened, so a PUT or a
//! DELETE of the shard is seen by the next request.
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use moss_storage::{ObjHandle, StoreError};
use moss_types::Bck;

use crate::item::{FdTicket, LocalReader};

/// Shards one reader keeps open (each holds a descriptor from the reader's budget).
pub const KEEP_OPEN: usize = 256;
/// Descriptors of the budget a kept shard must leave to the stat phases of requests.
const FD_RESERVE: i64 = 128;

/// Open shards, least recently used evicted first.
#[derive(Default)]
pub struct OpenShards {
    inner: Mutex<Inner>,
    /// Shard opens answered from the kept handles.
    pub hits: AtomicU64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<u64, Kept>,
    clock: u64,
    /// The store's change count when stale entries were last dropped.
    swept_at: u64,
}

struct Kept {
    bck: Bck,
    objname: String,
    handle: Arc<ObjHandle>,
    ticket: Arc<FdTicket>,
    stamp: u64,
    used: u64,
}

impl OpenShards {
    /// The shard, open; with the descriptor's budget ticket when the handle is kept here (the
    /// caller may hold both for its data phase).
    pub fn open(
        &self,
        reader: &LocalReader,
        bck: &Bck,
        objname: &str,
    ) -> Result<(Arc<ObjHandle>, Option<Arc<FdTicket>>), StoreError> {
        let key = moss_cluster::object_digest(bck, objname);
        // Before opening: a change after this read makes the kept handle stale next time.
        let stamp = reader.store.change_stamp(bck, objname);
        if let Ok(mut inner) = self.inner.lock() {
            // Overwritten, deleted or destroyed shards: close them now, so their space is freed
            // and their descriptors are returned (only when the store changed at all).
            let changes = reader.store.change_count();
            if inner.swept_at != changes {
                inner.swept_at = changes;
                let store = &reader.store;
                inner
                    .map
                    .retain(|_, k| store.change_stamp(&k.bck, &k.objname) == k.stamp);
            }
            inner.clock += 1;
            let now = inner.clock;
            if let Some(kept) = inner.map.get_mut(&key)
                && kept.stamp == stamp
                && kept.bck == *bck
                && kept.objname == objname
            {
                kept.used = now;
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok((kept.handle.clone(), Some(kept.ticket.clone())));
            }
        }
        let handle = Arc::new(reader.open_repaired(bck, objname)?);
        let Some(ticket) = reader.take_fd_leaving(FD_RESERVE) else {
            return Ok((handle, None));
        };
        let ticket = Arc::new(ticket);
        if let Ok(mut inner) = self.inner.lock() {
            if inner.map.len() >= KEEP_OPEN && !inner.map.contains_key(&key) {
                let oldest = inner
                    .map
                    .iter()
                    .min_by_key(|(_, k)| k.used)
                    .map(|(k, _)| *k);
                if let Some(oldest) = oldest {
                    inner.map.remove(&oldest);
                }
            }
            inner.clock += 1;
            let used = inner.clock;
            inner.map.insert(
                key,
                Kept {
                    bck: bck.clone(),
                    objname: objname.to_string(),
                    handle: handle.clone(),
                    ticket: ticket.clone(),
                    stamp,
                    used,
                },
            );
        }
        Ok((handle, Some(ticket)))
    }

    /// Number of kept shards.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
