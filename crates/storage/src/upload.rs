//! Objects written in more than one request: multipart uploads (parts kept durably until
//! complete) and appends (a work file finished by a flush), plus in-place updates of custom
//! metadata. RFC 0005 has the design.
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use moss_types::bucket::Bck;
use serde::{Deserialize, Serialize};
use xxhash_rust::xxh64::Xxh64;

use crate::{ObjMeta, PutTxn, Store, StoreError};

/// Directory of a mountpath that holds multipart uploads (kept across restarts).
const MPU_DIR: &str = ".moss-mpu";
/// Suffix of an upload claimed by a complete.
const COMPLETING: &str = ".completing";
/// The upload's identity, in its directory.
const RECORD: &str = "record";
/// Most parts an upload may have (AIStore's `MaxChunkCount`).
pub const MAX_PARTS: u32 = 9999;
/// Metadata key (reserved: user keys cannot contain `0x01`) of a completed upload's chunk info:
/// `<part count>,<largest part size>`.
pub const MD_CHUNKS: &str = "\u{1}chunks";
/// Prefix of moss's own metadata keys, hidden from users.
pub const RESERVED_KEY: char = '\u{1}';
/// xattr of an append work file: the object it finishes (`<bucket uname>\0<object name>`).
const APPEND_XATTR: &str = "user.moss.append";
/// Buffer for copying parts and existing objects.
const COPY_BUF: usize = 1 << 20;

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    bck: String,
    obj: String,
    /// Unix nanoseconds of create.
    created: u64,
}

/// A part being written; [`PartTxn::commit`] makes it durable and replaces an earlier upload of
/// the same part number.
pub struct PartTxn {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    dir: PathBuf,
    size: u64,
    committed: bool,
}

impl PartTxn {
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }

    /// fsync, rename over the part, fsync the upload's directory. A complete that claimed the
    /// upload meanwhile makes this fail with `NotFound`.
    pub fn commit(mut self) -> Result<u64, StoreError> {
        self.file.sync_all()?;
        fs::rename(&self.tmp, &self.dest).map_err(StoreError::from_lookup)?;
        self.committed = true;
        File::open(&self.dir)?.sync_all()?;
        Ok(self.size)
    }
}

impl Drop for PartTxn {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Why a complete was refused (each a 400 with AIStore's text).
fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::Invalid(msg.into())
}

/// AIStore's `ValidateManifestID`: 8–128 printable ASCII characters, none of ` `, `/`, `\`.
pub fn validate_upload_id(id: &str) -> Result<(), StoreError> {
    if id.len() < 8 {
        return Err(invalid(format!(
            "chunk-manifest ID {id:?} is too short (expecting 8..128 characters)"
        )));
    }
    if id.len() > 128 {
        return Err(invalid(format!("chunk-manifest ID {id:?} is too long")));
    }
    if id
        .bytes()
        .any(|b| !b.is_ascii_graphic() || b == b'/' || b == b'\\')
    {
        return Err(invalid(format!(
            "chunk-manifest ID {id:?} has an invalid character"
        )));
    }
    Ok(())
}

/// The 404 of an upload id this target does not hold.
fn no_upload(bck: &Bck, objname: &str, id: &str) -> StoreError {
    StoreError::Missing(format!(
        "o[{}/{objname}]: upload {id} does not exist",
        bck.name
    ))
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn part_file(n: u32) -> String {
    format!("part.{n:04}")
}

impl Store {
    fn mpu_root(&self, mountpath: usize) -> PathBuf {
        Path::new(&self.mountpaths()[mountpath].path).join(MPU_DIR)
    }

    /// Starts an upload of `bck/objname`; returns its id.
    pub fn mpu_create(&self, bck: &Bck, objname: &str) -> Result<String, StoreError> {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let id: String = (0..20)
            .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
            .collect();
        let root = self.mpu_root(self.hrw_mountpath(bck, objname));
        fs::create_dir_all(&root)?;
        let tmp = root.join(format!("{id}.new"));
        fs::create_dir(&tmp)?;
        let record = Record {
            bck: bck.uname_prefix(),
            obj: objname.to_string(),
            created: now_nanos(),
        };
        let mut file = File::create(tmp.join(RECORD))?;
        file.write_all(&serde_json::to_vec(&record).map_err(io::Error::other)?)?;
        file.sync_all()?;
        sync_dir(&tmp)?;
        fs::rename(&tmp, root.join(&id))?;
        sync_dir(&root)?;
        Ok(id)
    }

    /// The directory of upload `id` of `bck/objname` (on any mountpath).
    fn mpu_dir(&self, bck: &Bck, objname: &str, id: &str) -> Result<PathBuf, StoreError> {
        validate_upload_id(id)?;
        if !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(no_upload(bck, objname, id));
        }
        for i in 0..self.mountpaths().len() {
            let dir = self.mpu_root(i).join(id);
            let Ok(bytes) = fs::read(dir.join(RECORD)) else {
                continue;
            };
            let record: Record = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("upload record {id}: {e}")))?;
            if record.bck == bck.uname_prefix() && record.obj == objname {
                return Ok(dir);
            }
            return Err(no_upload(bck, objname, id));
        }
        Err(no_upload(bck, objname, id))
    }

    /// Starts writing part `n` of an upload.
    pub fn mpu_part(
        &self,
        bck: &Bck,
        objname: &str,
        id: &str,
        n: u32,
    ) -> Result<PartTxn, StoreError> {
        if n == 0 || n > MAX_PARTS {
            return Err(invalid(format!(
                "{}/{objname}: invalid chunk number {n} (part numbers are 1 to {MAX_PARTS}; it exceeds the maximum allowed ({MAX_PARTS}) or is zero)",
                bck.cname()
            )));
        }
        let dir = self.mpu_dir(bck, objname, id)?;
        let tmp = dir.join(format!(
            "{}.{:016x}.tmp",
            part_file(n),
            rand::random::<u64>()
        ));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(StoreError::from_lookup)?;
        Ok(PartTxn {
            file,
            tmp,
            dest: dir.join(part_file(n)),
            dir,
            size: 0,
            committed: false,
        })
    }

    /// Part numbers and sizes of an upload's directory, in number order.
    fn parts_in(dir: &Path) -> Result<Vec<(u32, u64)>, StoreError> {
        let mut parts = Vec::new();
        for entry in fs::read_dir(dir).map_err(StoreError::from_lookup)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix("part."))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            parts.push((n, entry.metadata()?.len()));
        }
        parts.sort_unstable();
        Ok(parts)
    }

    /// Completes an upload: checks the parts (AIStore's order and texts), then assembles them
    /// into the object atomically. `requested` is the client's part list (`None`: it sent null).
    /// Returns the write transaction, ready to commit (the caller may first write it through to
    /// a cloud); the upload is gone once this returns `Ok`.
    pub fn mpu_complete(
        &self,
        bck: &Bck,
        objname: &str,
        id: &str,
        requested: Option<&[u32]>,
    ) -> Result<(PutTxn, BTreeMap<String, String>), StoreError> {
        let dir = self.mpu_dir(bck, objname, id)?;
        check_parts(&Store::parts_in(&dir)?, requested)?;
        // Claim it: a second complete, an abort or a late part find nothing from here on.
        let claimed = dir.with_file_name(format!("{id}{COMPLETING}"));
        fs::rename(&dir, &claimed).map_err(|e| match StoreError::from_lookup(e) {
            StoreError::NotFound => no_upload(bck, objname, id),
            other => other,
        })?;
        let assembled = (|| {
            let parts = Store::parts_in(&claimed)?;
            check_parts(&parts, requested)?;
            let mut txn = self.begin_put(bck, objname)?;
            let mut buf = vec![0u8; COPY_BUF];
            for &(n, _) in &parts {
                let mut part = File::open(claimed.join(part_file(n)))?;
                loop {
                    let read = part.read(&mut buf)?;
                    if read == 0 {
                        break;
                    }
                    txn.write(&buf[..read])?;
                }
            }
            let largest = parts.iter().map(|p| p.1).max().unwrap_or(0);
            let custom =
                BTreeMap::from([(MD_CHUNKS.to_string(), format!("{},{largest}", parts.len()))]);
            Ok((txn, custom))
        })();
        match &assembled {
            Ok(_) => {
                let _ = fs::remove_dir_all(&claimed);
            }
            // A check that failed after the claim (a part arrived meanwhile) leaves the upload
            // as it was.
            Err(StoreError::Invalid(_)) => {
                let _ = fs::rename(&claimed, &dir);
            }
            Err(_) => {
                let _ = fs::remove_dir_all(&claimed);
            }
        }
        assembled
    }

    /// Aborts an upload: its parts are removed; the object is not touched.
    pub fn mpu_abort(&self, bck: &Bck, objname: &str, id: &str) -> Result<(), StoreError> {
        let dir = self.mpu_dir(bck, objname, id)?;
        let doomed = dir.with_file_name(format!("{id}.aborted"));
        fs::rename(&dir, &doomed).map_err(|e| match StoreError::from_lookup(e) {
            StoreError::NotFound => no_upload(bck, objname, id),
            other => other,
        })?;
        fs::remove_dir_all(&doomed)?;
        Ok(())
    }

    /// At start: uploads a crash interrupted while they were being claimed, completed or
    /// aborted (their clients got no answer) are removed; live ones stay.
    pub(crate) fn mpu_recover(&self, mountpath: usize) {
        let Ok(entries) = fs::read_dir(self.mpu_root(mountpath)) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains('.') {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Removes uploads without a new part for `age`; returns how many.
    pub fn mpu_expire(&self, age: std::time::Duration) -> u64 {
        let mut removed = 0;
        for i in 0..self.mountpaths().len() {
            let Ok(entries) = fs::read_dir(self.mpu_root(i)) else {
                continue;
            };
            for entry in entries.flatten() {
                let idle = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|e| e > age);
                if idle && fs::remove_dir_all(entry.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Upload ids in progress (for tests and the operator).
    pub fn mpu_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        for i in 0..self.mountpaths().len() {
            if let Ok(entries) = fs::read_dir(self.mpu_root(i)) {
                ids.extend(
                    entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.contains('.')),
                );
            }
        }
        ids
    }

    /// Starts an append session: a work file holding the object's current content (verified),
    /// if it has one. Returns the work id and the bytes in the file.
    pub fn append_begin(&self, bck: &Bck, objname: &str) -> Result<(String, u64), StoreError> {
        let mountpath = self.hrw_mountpath(bck, objname);
        let work = format!("{:016x}", rand::random::<u64>());
        let path = self.append_path(mountpath, &work);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let owner = format!("{}\0{objname}", bck.uname_prefix());
        rustix::fs::fsetxattr(
            &file,
            APPEND_XATTR,
            owner.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(io::Error::from)?;
        let mut size = 0;
        match self.open_object(bck, objname) {
            Ok(handle) => {
                let mut verifier = handle.verifier();
                let mut src = &handle.file;
                let mut buf = vec![0u8; COPY_BUF];
                loop {
                    let read = src.read(&mut buf)?;
                    if read == 0 {
                        break;
                    }
                    verifier.update(&buf[..read]);
                    file.write_all(&buf[..read])?;
                    size += read as u64;
                }
                verifier.finish()?;
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        Ok((work, size))
    }

    fn append_path(&self, mountpath: usize, work: &str) -> PathBuf {
        Path::new(&self.mountpaths()[mountpath].path)
            .join(crate::store::WORK_DIR)
            .join(format!("append.{work}"))
    }

    /// The work file of an append session of `bck/objname`, and its mountpath.
    fn append_file(
        &self,
        bck: &Bck,
        objname: &str,
        work: &str,
    ) -> Result<(usize, PathBuf), StoreError> {
        let bad = || invalid(format!("invalid APPEND handle (work id {work:?})"));
        if work.len() != 16 || !work.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let owner = format!("{}\0{objname}", bck.uname_prefix());
        for i in 0..self.mountpaths().len() {
            let path = self.append_path(i, work);
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let mut buf = [0u8; 4096];
            let len = rustix::fs::fgetxattr(&file, APPEND_XATTR, &mut buf).unwrap_or(0);
            if &buf[..len] != owner.as_bytes() {
                return Err(bad());
            }
            return Ok((i, path));
        }
        Err(StoreError::Missing(format!(
            "{}/{objname}: append session {work} does not exist (expired, flushed, or the target restarted)",
            bck.cname()
        )))
    }

    /// Appends to a session's work file; returns its new size.
    pub fn append(&self, bck: &Bck, objname: &str, work: &str) -> Result<AppendTxn, StoreError> {
        let (_, path) = self.append_file(bck, objname, work)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(AppendTxn { file })
    }

    /// Finishes an append session: the work file becomes the object (a new version).
    pub fn append_flush(&self, bck: &Bck, objname: &str, work: &str) -> Result<PutTxn, StoreError> {
        let (mountpath, path) = self.append_file(bck, objname, work)?;
        let mut file = OpenOptions::new().read(true).append(true).open(&path)?;
        let mut hasher = Xxh64::new(0);
        let mut size = 0u64;
        let mut buf = vec![0u8; COPY_BUF];
        loop {
            let read = file.read(&mut buf)?;
            if read == 0 {
                break;
            }
            hasher.update(&buf[..read]);
            size += read as u64;
        }
        let _ = rustix::fs::fremovexattr(&file, APPEND_XATTR);
        Ok(self.put_txn(mountpath, bck, objname, file, path, hasher, size))
    }

    /// Changes an object's custom metadata in place (data, checksum, version and write time stay).
    pub fn update_custom(
        &self,
        bck: &Bck,
        objname: &str,
        change: impl FnOnce(&mut BTreeMap<String, String>),
    ) -> Result<ObjMeta, StoreError> {
        let handle = self.open_object(bck, objname)?;
        let mut meta = handle.meta.clone();
        change(&mut meta.custom);
        meta.store(&handle.file)?;
        handle.file.sync_all()?;
        self.changes
            .changed(moss_cluster::object_digest(bck, objname));
        Ok(meta)
    }
}

/// An append to a session's work file.
pub struct AppendTxn {
    file: File,
}

impl AppendTxn {
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(data)?;
        Ok(())
    }

    /// The session's size after this append.
    pub fn finish(self) -> Result<u64, StoreError> {
        Ok(self.file.metadata()?.len())
    }
}

/// AIStore's complete checks, in its order: parts uploaded at all, uploaded numbers exactly
/// 1..N, the request's list exactly 1..N.
fn check_parts(parts: &[(u32, u64)], requested: Option<&[u32]>) -> Result<(), StoreError> {
    if parts.is_empty() {
        return Err(invalid("no chunks"));
    }
    let count = parts.len();
    for (i, &(n, _)) in parts.iter().enumerate() {
        if n as usize != i + 1 {
            return Err(invalid(format!(
                "chunk at ({i}) has invalid number {n} (count={count})"
            )));
        }
    }
    let Some(requested) = requested else {
        return Err(invalid("nil parts list"));
    };
    if requested.len() != count {
        return Err(invalid(format!(
            "partial completion is not allowed: requested {} parts, have {count}",
            requested.len()
        )));
    }
    let mut sorted = requested.to_vec();
    sorted.sort_unstable();
    for (i, &n) in sorted.iter().enumerate() {
        if n as usize != i + 1 {
            return Err(invalid(format!(
                "parts must be exactly 1..{count}: got {n} at position {i}"
            )));
        }
    }
    Ok(())
}

/// The user-visible part of custom metadata (moss's reserved keys left out).
pub fn user_custom(custom: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    custom.iter().filter(|(k, _)| !k.starts_with(RESERVED_KEY))
}

/// `(count, largest part)` of a completed multipart upload's object.
pub fn chunk_info(custom: &BTreeMap<String, String>) -> Option<(u64, u64)> {
    let (count, max) = custom.get(MD_CHUNKS)?.split_once(',')?;
    Some((count.parse().ok()?, max.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_checks_follow_aistore() {
        let have = |ns: &[u32]| ns.iter().map(|&n| (n, 1)).collect::<Vec<_>>();
        let text = |r: Result<(), StoreError>| r.unwrap_err().to_string();
        assert_eq!(text(check_parts(&[], Some(&[]))), "no chunks");
        assert_eq!(
            text(check_parts(&have(&[1, 3]), Some(&[1, 3]))),
            "chunk at (1) has invalid number 3 (count=2)"
        );
        assert!(text(check_parts(&have(&[1]), Some(&[1, 1]))).contains("partial completion"));
        assert_eq!(text(check_parts(&have(&[1]), None)), "nil parts list");
        assert!(text(check_parts(&have(&[1, 2]), Some(&[2, 2]))).contains("exactly 1..2"));
        check_parts(&have(&[1, 2, 3]), Some(&[3, 1, 2])).unwrap();
        assert!(validate_upload_id("short").is_err());
        assert!(validate_upload_id("has/slash-in-it").is_err());
        validate_upload_id("abcdefgh12").unwrap();
    }
}
