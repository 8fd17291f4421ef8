//! Files inside shards (`archpath`): format detection, cached member indexes, extraction.
use std::sync::Arc;

use moss_storage::ObjHandle;

use crate::item::{Item, ItemError, ItemSpec, LocalReader};

/// Cache of shard member indexes, keyed by file identity so an overwritten shard is re-indexed.
#[derive(Default)]
pub struct ShardCache {}

impl ShardCache {
    pub fn new() -> ShardCache {
        ShardCache::default()
    }
}

/// Opens one member of a shard.
pub fn open_member(
    _reader: &LocalReader,
    _handle: Arc<ObjHandle>,
    spec: &ItemSpec,
    what: &str,
) -> Result<Item, ItemError> {
    Err(ItemError::Invalid(format!(
        "{} in {what}: reading archived files is not available yet",
        spec.archpath
    )))
}

/// Stats archived entries (`indices` into `specs`), one pass per shard.
pub fn prepare_members(
    reader: &LocalReader,
    specs: &[ItemSpec],
    indices: &[usize],
) -> Vec<(usize, Result<crate::item::Prepared, ItemError>)> {
    indices
        .iter()
        .map(|&i| {
            let result = reader.open(&specs[i]).map(|item| crate::item::Prepared {
                size: item.size,
                mtime: 0,
                archived: true,
                memory: None,
            });
            (i, result)
        })
        .collect()
}
