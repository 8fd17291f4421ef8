//! Mirror copies (`mirror.*`, RFC 0008): full copies of an object on other mountpaths of its
//! target, under `<bucket>/%mi/<object>` with the object's own metadata xattr. A copy is always
//! of the object's current version: a commit of new content removes the copies before it
//! returns, and the writer makes new ones ([`Store::make_copies`]) before it acknowledges. A
//! restore of the same version keeps them. Listings, walks of the bucket and GetBatch never see
//! copies; reads fall back to them when the object itself is lost, unreadable or damaged.
use std::fs::{self, File, OpenOptions};
use std::path::PathBuf;

use moss_cluster::mix64;
use moss_types::Bck;

use crate::store::{create_dirs, prune_empty_parents, walk_objects};
use crate::{ObjHandle, ObjMeta, Store, StoreError};

/// Content-type directory of mirror copies inside a bucket directory.
pub(crate) const MIRROR_DIR: &str = "%mi";
/// Times [`Store::make_copies`] starts over when the object changes under it.
const COPY_ATTEMPTS: usize = 8;

/// What bringing one object's copies up to date did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CopiesMade {
    /// Copies written (missing, of another version, or damaged).
    pub written: usize,
    /// Copies removed (beyond the number asked for).
    pub removed: usize,
    /// Copies there are now, the object itself included.
    pub copies: usize,
    /// The object's size.
    pub size: u64,
}

impl Store {
    fn copy_path(&self, mountpath: usize, bck: &Bck, objname: &str) -> PathBuf {
        self.bucket_dir(mountpath, bck)
            .join(MIRROR_DIR)
            .join(objname)
    }

    /// Where copies of the object may be, on every mountpath, each with the directory it is
    /// pruned up to.
    pub(crate) fn copy_paths(&self, bck: &Bck, objname: &str) -> Vec<(PathBuf, PathBuf)> {
        (0..self.mountpaths().len())
            .map(|i| {
                (
                    self.copy_path(i, bck, objname),
                    self.bucket_dir(i, bck).join(MIRROR_DIR),
                )
            })
            .collect()
    }

    /// Mountpaths by descending HRW weight for the object (the object's own first).
    pub fn ranked_mountpaths(&self, bck: &Bck, objname: &str) -> Vec<usize> {
        let key = moss_cluster::object_digest(bck, objname);
        let mut ranked: Vec<(u64, usize)> = self
            .mountpaths()
            .iter()
            .enumerate()
            .map(|(i, m)| (mix64(m.digest ^ key), i))
            .collect();
        ranked.sort_by_key(|w| std::cmp::Reverse(w.0));
        ranked.into_iter().map(|(_, i)| i).collect()
    }

    /// Brings the object's mirror copies to `copies` in all, the object itself included: the
    /// next mountpaths in HRW order after the object's own get a copy of its current version
    /// (verified against its checksum on the way, so a damaged object is never copied), each
    /// durable (fsynced, renamed, directory fsynced) before this returns; copies elsewhere are
    /// removed. With fewer mountpaths than `copies`, each mountpath holds one. Starts over if
    /// the object is overwritten or deleted meanwhile (commits and deletes stamp the object
    /// before and after they change it), so no copy of an older or deleted version is left
    /// behind.
    pub fn make_copies(
        &self,
        bck: &Bck,
        objname: &str,
        copies: usize,
    ) -> Result<CopiesMade, StoreError> {
        for _ in 0..COPY_ATTEMPTS {
            let stamp = self.change_stamp(bck, objname);
            let main = match self.open_object(bck, objname) {
                Ok(main) => main,
                // Deleted meanwhile: a copy this pass already put in place must not outlive it
                // (a later read would restore the deleted object from it).
                Err(StoreError::NotFound) => {
                    self.remove_copies(bck, objname, &[]);
                    return Err(StoreError::NotFound);
                }
                Err(e) => return Err(e),
            };
            let want: Vec<usize> = self
                .ranked_mountpaths(bck, objname)
                .into_iter()
                .filter(|&i| i != main.mountpath)
                .take(copies.saturating_sub(1))
                .collect();
            let mut made = CopiesMade {
                copies: 1,
                size: main.meta.size,
                ..CopiesMade::default()
            };
            for &k in &want {
                if !self.has_copy_of(k, bck, objname, &main.meta) {
                    self.write_copy(k, bck, objname, &main)?;
                    made.written += 1;
                }
                made.copies += 1;
            }
            made.removed = self.remove_copies(bck, objname, &want).0;
            if self.change_stamp(bck, objname) == stamp {
                return Ok(made);
            }
        }
        Err(StoreError::Conflict(format!(
            "{objname:?} kept changing while its mirror copies were made; try again"
        )))
    }

    /// Whether mountpath `k` holds an intact-looking copy of exactly this version.
    fn has_copy_of(&self, k: usize, bck: &Bck, objname: &str, meta: &ObjMeta) -> bool {
        let Ok(file) = File::open(self.copy_path(k, bck, objname)) else {
            return false;
        };
        let same_len = file.metadata().is_ok_and(|m| m.len() == meta.size);
        same_len
            && ObjMeta::load(&file).is_ok_and(|c| {
                c.version == meta.version && c.cksum == meta.cksum && c.size == meta.size
            })
    }

    fn write_copy(
        &self,
        k: usize,
        bck: &Bck,
        objname: &str,
        main: &ObjHandle,
    ) -> Result<(), StoreError> {
        let tmp = WorkFile(self.work_path(k, "copy"));
        let mut out = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp.0)?;
        main.copy_verified(&mut out)?;
        main.meta.store(&out)?;
        out.sync_all()?;
        drop(out);
        let dest = self.copy_path(k, bck, objname);
        let parent = dest
            .parent()
            .ok_or_else(|| std::io::Error::other("copy path has no parent"))?;
        create_dirs(parent).map_err(|e| {
            StoreError::Conflict(format!("copy of {objname:?} conflicts on disk: {e}"))
        })?;
        fs::rename(&tmp.0, &dest)?;
        File::open(parent)?.sync_all()?;
        Ok(())
    }

    /// Removes the object's copies except those on `keep`; (how many, size of the first).
    pub(crate) fn remove_copies(
        &self,
        bck: &Bck,
        objname: &str,
        keep: &[usize],
    ) -> (usize, Option<u64>) {
        let mut removed = (0, None);
        for (i, (path, root)) in self.copy_paths(bck, objname).into_iter().enumerate() {
            if keep.contains(&i) {
                continue;
            }
            let Ok(md) = fs::symlink_metadata(&path) else {
                continue;
            };
            if md.is_file() && fs::remove_file(&path).is_ok() {
                removed.0 += 1;
                removed.1.get_or_insert(md.len());
                prune_empty_parents(&path, &root);
            }
        }
        removed
    }

    /// Opens the first readable copy of the object, in HRW order; `NotFound` if none is.
    pub fn open_copy(&self, bck: &Bck, objname: &str) -> Result<ObjHandle, StoreError> {
        let mut last = StoreError::NotFound;
        for k in self.ranked_mountpaths(bck, objname) {
            match self.open_at(k, self.copy_path(k, bck, objname)) {
                Ok(Some(handle)) => return Ok(handle),
                Ok(None) => {}
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Writes the object back into place from its first intact copy (same version, checksum
    /// and write time; the copies stay). `NotFound` if there is no copy; the last copy's error
    /// if none could be used (damaged copies fail the checksum and the next one is tried).
    pub fn restore_from_copy(&self, bck: &Bck, objname: &str) -> Result<ObjMeta, StoreError> {
        let mut last = StoreError::NotFound;
        for k in self.ranked_mountpaths(bck, objname) {
            let copy = match self.open_at(k, self.copy_path(k, bck, objname)) {
                Ok(Some(copy)) => copy,
                Ok(None) => continue,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
            let restored = self.restore_object(bck, objname, &copy.meta, &mut |w| {
                std::io::copy(&mut &copy.file, w).map(|_| ())
            });
            match restored {
                Ok(()) => return Ok(copy.meta),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Mountpaths holding a copy of the object (a file in the copy's place).
    pub fn copies_of(&self, bck: &Bck, objname: &str) -> Vec<usize> {
        (0..self.mountpaths().len())
            .filter(|&i| fs::metadata(self.copy_path(i, bck, objname)).is_ok_and(|m| m.is_file()))
            .collect()
    }

    /// Calls `visit(objname)` for every mirror copy of a bucket on this target.
    pub fn walk_copies(&self, bck: &Bck, mut visit: impl FnMut(&str)) -> Result<(), StoreError> {
        for i in 0..self.mountpaths().len() {
            let dir = self.bucket_dir(i, bck).join(MIRROR_DIR);
            walk_objects(&dir, &dir, &mut |name: String, _| visit(&name))?;
        }
        Ok(())
    }
}

/// A work file removed when dropped (renamed into place, it is no longer there to remove).
struct WorkFile(PathBuf);

impl Drop for WorkFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
