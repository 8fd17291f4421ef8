//! One deliverable item on local storage: a whole object, a byte range of it, or a file inside a
//! shard (optionally a range of that file). Read sequentially in chunks; a whole object's checksum
//! is verified before its final chunk is handed out, so a corrupt object is never delivered whole.
use std::io::Read;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use moss_storage::{ObjHandle, Store, StoreError, Verifier};
use moss_types::Bck;
use moss_types::moss::ByteRange;

use crate::shard::ShardCache;

/// Chunk size for sequential reads.
pub const CHUNK: usize = 256 << 10;

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
        }
    }

    /// The stored object behind a whole-object or ranged item (for response headers).
    pub fn object(&self) -> Option<&ObjHandle> {
        match &self.source {
            Source::File { handle, .. } if !self.archived => Some(handle),
            _ => None,
        }
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
            Source::File { handle, offset } => {
                let mut buf = BytesMut::zeroed(len);
                handle
                    .read_exact_at(&mut buf, *offset + self.delivered)
                    .map_err(|e| ItemError::from_store(e, &handle.path.display().to_string()))?;
                buf.freeze()
            }
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
                verifier
                    .finish()
                    .map_err(|e| ItemError::Corrupt(format!("object is corrupted: {e}")))?;
            }
        }
        Ok(Some(chunk))
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

/// What the stat phase learned about an item; the data phase reuses it.
#[derive(Debug, Clone)]
pub struct Prepared {
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
}

impl LocalReader {
    pub fn new(store: Arc<Store>) -> LocalReader {
        LocalReader {
            store,
            shards: ShardCache::new(),
        }
    }

    /// Opens an item: object, range, or archived file.
    pub fn open(&self, spec: &ItemSpec) -> Result<Item, ItemError> {
        let what = format!("{}/{}", spec.bck.cname(), spec.objname);
        let handle = self
            .store
            .open_object(spec.bck, spec.objname)
            .map_err(|e| ItemError::from_store(e, &what))?;
        if spec.archpath.is_empty() {
            return open_object_item(handle, spec.range);
        }
        crate::shard::open_member(self, Arc::new(handle), spec, &what)
    }
}

impl LocalReader {
    /// Stats many items at once (sizes after ranges and extraction, or why not). Members of the same
    /// shard are located with one pass over the shard.
    pub fn prepare(&self, specs: &[ItemSpec]) -> Vec<Result<Prepared, ItemError>> {
        let mut out: Vec<Option<Result<Prepared, ItemError>>> = vec![None; specs.len()];
        let mut archived = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
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
        let what = format!("{}/{}", spec.bck.cname(), spec.objname);
        let (size, atime) = self
            .store
            .stat(spec.bck, spec.objname)
            .map_err(|e| ItemError::from_store(e, &what))?;
        match spec.range {
            None => Ok(Prepared {
                size,
                mtime: atime,
                archived: false,
                memory: None,
                neighbor: None,
            }),
            Some(range) => {
                let (_, len) = range.resolve(size).map_err(ItemError::Range)?;
                Ok(Prepared {
                    size: len,
                    mtime: 0,
                    archived: false,
                    memory: None,
                    neighbor: None,
                })
            }
        }
    }

    /// Opens a prepared item for reading; fails if it changed since it was prepared.
    pub fn open_prepared(&self, spec: &ItemSpec, prepared: &Prepared) -> Result<Item, ItemError> {
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
            return Err(ItemError::Io(format!(
                "{}/{} changed while the batch was being assembled (size {} → {})",
                spec.bck.cname(),
                spec.objname,
                prepared.size,
                item.size
            )));
        }
        item.mtime = prepared.mtime;
        Ok(item)
    }
}

fn open_object_item(handle: ObjHandle, range: Option<ByteRange>) -> Result<Item, ItemError> {
    let size = handle.meta.size;
    match range {
        None => {
            let verifier = Some(handle.verifier());
            let mtime = 0;
            Ok(Item::new(
                size,
                mtime,
                false,
                Source::File {
                    handle: Arc::new(handle),
                    offset: 0,
                },
                verifier,
            ))
        }
        Some(range) => {
            let (offset, len) = range.resolve(size).map_err(ItemError::Range)?;
            Ok(Item::new(
                len,
                0,
                false,
                Source::File {
                    handle: Arc::new(handle),
                    offset,
                },
                None,
            ))
        }
    }
}
