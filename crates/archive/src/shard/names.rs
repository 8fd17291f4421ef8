//! Name → position index shared by the TAR and ZIP indexes. It keys on a 64-bit hash of the
//! match key instead of a copy of the name, so a cached index of millions of members does not
//! hold every name twice; hash collisions fall back to comparing the stored names.
use std::collections::HashMap;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::hash::{Hash, Hasher};

use super::match_key;
use crate::ArchiveError;

/// Positions (into the owner's item list) of the items whose match key has a given hash.
#[derive(Debug, Clone)]
enum Slot {
    One(u32),
    /// Distinct names with equal hashes, in archive order.
    Many(Vec<u32>),
}

impl Slot {
    fn positions(&self) -> &[u32] {
        match self {
            Slot::One(p) => std::slice::from_ref(p),
            Slot::Many(v) => v,
        }
    }
}

/// Lookup table from match key to the first item carrying it.
#[derive(Debug, Clone, Default)]
pub(super) struct NameIndex {
    slots: HashMap<u64, Slot>,
}

impl NameIndex {
    /// Indexes the items for which `name` returns a name; the first item of each key wins.
    pub(super) fn build<T>(
        items: &[T],
        name: impl Fn(&T) -> Option<&str>,
    ) -> Result<NameIndex, ArchiveError> {
        let mut index = NameIndex {
            slots: HashMap::with_capacity(items.len()),
        };
        for (pos, item) in items.iter().enumerate() {
            let Some(item_name) = name(item) else {
                continue;
            };
            let pos = u32::try_from(pos)
                .map_err(|_| ArchiveError::Limit("more than 2^32 members".to_string()))?;
            index.insert(items, pos, match_key(item_name), |t| {
                name(t).unwrap_or_default()
            });
        }
        Ok(index)
    }

    fn insert<T>(&mut self, items: &[T], pos: u32, key: &str, name: impl Fn(&T) -> &str) {
        match self.slots.entry(hash(key)) {
            Entry::Vacant(v) => {
                v.insert(Slot::One(pos));
            }
            Entry::Occupied(mut o) => {
                let same = |p: &u32| match_key(name(&items[*p as usize])) == key;
                if o.get().positions().iter().any(same) {
                    return; // A earlier member with this name wins.
                }
                let slot = o.get_mut();
                match slot {
                    Slot::One(first) => *slot = Slot::Many(vec![*first, pos]),
                    Slot::Many(v) => v.push(pos),
                }
            }
        }
    }

    /// The first indexed item whose match key equals that of `archpath`.
    pub(super) fn find<'a, T>(
        &self,
        items: &'a [T],
        archpath: &str,
        name: impl Fn(&T) -> &str,
    ) -> Option<&'a T> {
        let key = match_key(archpath);
        let slot = self.slots.get(&hash(key))?;
        slot.positions()
            .iter()
            .filter_map(|&p| items.get(p as usize))
            .find(|item| match_key(name(item)) == key)
    }
}

/// Deterministic hash of a match key (SipHash with fixed keys).
fn hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_wins_and_slash_is_ignored() {
        let items = ["a", "/b", "b", "/a", "c/"];
        let idx = NameIndex::build(&items, |s| Some(*s)).unwrap();
        let find = |k: &str| {
            idx.find(&items, k, |s| s)
                .map(|s| items.iter().position(|x| std::ptr::eq(x, s)).unwrap())
        };
        assert_eq!(find("a"), Some(0));
        assert_eq!(find("/a"), Some(0));
        assert_eq!(find("b"), Some(1));
        assert_eq!(find("//b"), None);
        assert_eq!(find("c/"), Some(4));
        assert_eq!(find("c"), None);
        assert_eq!(find("A"), None);
    }

    #[test]
    fn collisions_compare_names() {
        // Force a shared slot by inserting under one hash by hand.
        let items = ["x", "y", "x"];
        let mut idx = NameIndex::default();
        idx.slots.insert(hash("y"), Slot::One(0));
        idx.insert(&items, 1, "y", |s| s);
        idx.insert(&items, 2, "x", |s| s);
        assert!(matches!(idx.slots.get(&hash("y")), Some(Slot::Many(v)) if v == &[0, 1]));
        assert_eq!(idx.find(&items, "y", |s| s), Some(&"y"));
    }

    #[test]
    fn skipped_items_are_not_found() {
        let items = ["d/", "f"];
        let idx = NameIndex::build(&items, |s| (!s.ends_with('/')).then_some(*s)).unwrap();
        assert_eq!(idx.find(&items, "d/", |s| s), None);
        assert_eq!(idx.find(&items, "f", |s| s), Some(&"f"));
    }
}
