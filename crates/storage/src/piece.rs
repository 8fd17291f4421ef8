//! Redundancy pieces a target keeps for objects other targets own (`ec.*`): full replicas and
//! Reed-Solomon slices, under `<bucket>/%ec/<object>` on the piece's HRW mountpath, with a
//! [`PieceMeta`] in the xattr `user.moss.ec`. Listings, rebalance and GetBatch never see them.
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;

use moss_types::Bck;
use serde::{Deserialize, Serialize};

use crate::store::create_dirs;
use crate::{ObjMeta, Store, StoreError};

/// Content-type directory of pieces inside a bucket directory.
pub(crate) const EC_DIR: &str = "%ec";
/// Name of the piece metadata xattr.
const PIECE_XATTR: &str = "user.moss.ec";

/// What a piece is and of which version of its object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PieceMeta {
    /// The object's metadata when the piece was made (size, checksum, version, write time).
    pub obj: ObjMeta,
    /// `None`: a full replica; `Some(k)`: slice `k` of `data + parity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slice: Option<u32>,
    pub data: u32,
    pub parity: u32,
}

impl PieceMeta {
    /// Whether two pieces belong to the same version of an object.
    pub fn same_version(&self, other: &PieceMeta) -> bool {
        self.obj.version == other.obj.version
            && self.obj.cksum == other.obj.cksum
            && self.obj.size == other.obj.size
    }
}

impl Store {
    fn piece_path(&self, mountpath: usize, bck: &Bck, objname: &str) -> PathBuf {
        self.bucket_dir(mountpath, bck).join(EC_DIR).join(objname)
    }

    /// Starts writing a piece into a work file on the piece's HRW mountpath; nothing replaces
    /// the current piece until [`PieceTxn::commit`].
    pub fn begin_piece(&self, bck: &Bck, objname: &str) -> Result<PieceTxn, StoreError> {
        let mountpath = self.hrw_mountpath(bck, objname);
        let tmp = self.work_path(mountpath, "piece");
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        Ok(PieceTxn {
            file,
            tmp,
            dest: self.piece_path(mountpath, bck, objname),
            // A piece elsewhere (mountpaths added since) is older: dropped on commit.
            stale: (0..self.mountpaths().len())
                .filter(|&i| i != mountpath)
                .map(|i| self.piece_path(i, bck, objname))
                .collect(),
            objname: objname.to_string(),
            size: 0,
            committed: false,
        })
    }

    /// Opens this target's piece of an object.
    pub fn open_piece(&self, bck: &Bck, objname: &str) -> Result<(File, PieceMeta), StoreError> {
        let first = self.hrw_mountpath(bck, objname);
        let order =
            std::iter::once(first).chain((0..self.mountpaths().len()).filter(|&i| i != first));
        for mountpath in order {
            let path = self.piece_path(mountpath, bck, objname);
            let file = match File::open(&path) {
                Ok(file) => file,
                Err(e) => match StoreError::from_lookup(e) {
                    StoreError::NotFound => continue,
                    other => return Err(other),
                },
            };
            let mut buf = vec![0u8; 4096];
            let len = match rustix::fs::fgetxattr(&file, PIECE_XATTR, &mut buf) {
                Ok(len) => len,
                // A directory (a prefix of other pieces' names) is not a piece.
                Err(_) if file.metadata().is_ok_and(|m| m.is_dir()) => continue,
                Err(e) => {
                    return Err(StoreError::Corrupt(format!(
                        "piece metadata is unreadable: {e}"
                    )));
                }
            };
            let meta: PieceMeta = serde_json::from_slice(&buf[..len])
                .map_err(|e| StoreError::Corrupt(format!("piece metadata is unreadable: {e}")))?;
            return Ok((file, meta));
        }
        Err(StoreError::NotFound)
    }

    /// Removes this target's piece of an object; `false` if there was none.
    pub fn delete_piece(&self, bck: &Bck, objname: &str) -> Result<bool, StoreError> {
        let mut found = false;
        for mountpath in 0..self.mountpaths().len() {
            let path = self.piece_path(mountpath, bck, objname);
            match fs::remove_file(&path) {
                Ok(()) => {
                    found = true;
                    let dir = self.bucket_dir(mountpath, bck).join(EC_DIR);
                    crate::store::prune_empty_parents(&path, &dir);
                }
                Err(e) => match StoreError::from_lookup(e) {
                    StoreError::NotFound => {}
                    other => return Err(other),
                },
            }
        }
        Ok(found)
    }

    /// Calls `visit(objname)` for every piece of a bucket on this target.
    pub fn walk_pieces(&self, bck: &Bck, mut visit: impl FnMut(&str)) -> Result<(), StoreError> {
        for i in 0..self.mountpaths().len() {
            let dir = self.bucket_dir(i, bck).join(EC_DIR);
            crate::store::walk_objects(&dir, &dir, &mut |name: String, _| visit(&name))?;
        }
        Ok(())
    }

    /// Writes an object rebuilt from redundancy back into place with the metadata it had (same
    /// version, checksum and write time): `fill` writes its bytes. Fails, storing nothing, if
    /// the bytes do not match the checksum.
    pub fn restore_object(
        &self,
        bck: &Bck,
        objname: &str,
        meta: &ObjMeta,
        fill: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StoreError> {
        let mut txn = self.begin_put(bck, objname)?;
        fill(&mut TxnWriter(&mut txn))?;
        txn.commit_as(meta)
    }
}

/// A piece being written (see [`Store::begin_piece`]); dropped uncommitted, it leaves nothing.
pub struct PieceTxn {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    stale: Vec<PathBuf>,
    objname: String,
    size: u64,
    committed: bool,
}

impl PieceTxn {
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// Makes the piece durable, replacing any older one: metadata set, fsynced, renamed into
    /// place and its directory fsynced before this returns. Returns the bytes stored.
    pub fn commit(mut self, meta: &PieceMeta) -> Result<u64, StoreError> {
        let json = serde_json::to_vec(meta).map_err(io::Error::other)?;
        rustix::fs::fsetxattr(
            &self.file,
            PIECE_XATTR,
            &json,
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(io::Error::from)?;
        self.file.sync_all()?;
        let parent = self
            .dest
            .parent()
            .ok_or_else(|| io::Error::other("piece path has no parent"))?;
        create_dirs(parent).map_err(|e| {
            StoreError::Conflict(format!("piece name {:?} conflicts: {e}", self.objname))
        })?;
        fs::rename(&self.tmp, &self.dest)?;
        self.committed = true;
        File::open(parent)?.sync_all()?;
        for path in &self.stale {
            let _ = fs::remove_file(path);
        }
        Ok(self.size)
    }
}

impl Drop for PieceTxn {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// `io::Write` over a write transaction.
struct TxnWriter<'a>(&'a mut crate::PutTxn);

impl Write for TxnWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(|e| match e {
            StoreError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
