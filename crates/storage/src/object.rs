//! Reading one stored object: positioned reads and checksum verification.
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use xxhash_rust::xxh64::Xxh64;

use crate::{ObjMeta, StoreError, checksum_hex};

/// An open object: its file (old content stays readable even if it is replaced meanwhile) and
/// metadata.
#[derive(Debug)]
pub struct ObjHandle {
    pub file: File,
    pub meta: ObjMeta,
    pub path: PathBuf,
    /// Index of the mountpath that holds the file.
    pub mountpath: usize,
    /// The file's status when it was opened (identity and version of what is being read).
    pub stat: std::fs::Metadata,
    /// Length of the mountpath prefix of `path`.
    pub(crate) root_len: usize,
    /// What this descriptor knows of its object's checksum: a generation (`>> 1`), bumped
    /// whenever bytes were read through it from the disk unhashed, and a verified bit (`& 1`):
    /// every byte was read and matched within the current generation.
    pub(crate) verified: AtomicU64,
}

impl ObjHandle {
    /// `provider://bucket/object` of this file, for messages (disk paths stay out of them).
    pub fn describe(&self) -> String {
        let text = self.path.to_string_lossy();
        let within = text.get(self.root_len..).unwrap_or_default();
        let within = within.trim_start_matches('/').trim_start_matches('@');
        let Some((provider, rest)) = within.split_once('/') else {
            return "object".to_string();
        };
        // rest: [namespace/]bucket/%ob/object (bucket names have no '/' or '%').
        let split = rest
            .split_once(&format!("/{}/", crate::store::OBJ_DIR))
            .or_else(|| rest.split_once(&format!("/{}/", crate::mirror::MIRROR_DIR)));
        match split {
            Some((bucket, object)) => {
                let bucket = bucket.rsplit('/').next().unwrap_or(bucket);
                format!("{provider}://{bucket}/{object}")
            }
            None => "object".to_string(),
        }
    }

    /// Reads `buf.len()` bytes at `offset`; fewer bytes than asked means the file was truncated.
    pub fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> Result<(), StoreError> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                StoreError::Corrupt(format!(
                    "object is shorter than its recorded size {}",
                    self.meta.size
                ))
            } else {
                StoreError::Io(e)
            }
        })
    }

    /// Whether the whole object was read through this descriptor and matched its checksum, with
    /// nothing read through it from the disk since: while every byte of a read comes from the
    /// page cache, the bytes are the ones that were verified.
    pub fn is_verified(&self) -> bool {
        self.verification() & 1 == 1
    }

    /// The verification state ([`ObjHandle::is_verified`] and its generation): read it before
    /// hashing (pass it to [`ObjHandle::finish`]) or before trusting the page cache (compare it
    /// after each read: a change means someone read from the disk unhashed meanwhile).
    pub fn verification(&self) -> u64 {
        self.verified.load(Ordering::Acquire)
    }

    /// Records that bytes are about to be read from the disk without being hashed: the object
    /// is not known to be verified any more, and whoever trusted it must hash after all.
    pub fn forget_verified(&self) {
        let _ = self
            .verified
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| {
                Some(((s >> 1) + 1) << 1)
            });
    }

    /// Reads into `buf` at `offset` only what the page cache holds (`preadv2(RWF_NOWAIT)`): the
    /// number of bytes read before a read would have had to wait for the disk.
    pub fn read_cached_at(&self, buf: &mut [u8], offset: u64) -> Result<usize, StoreError> {
        let mut filled = 0;
        while filled < buf.len() {
            let mut slices = [std::io::IoSliceMut::new(&mut buf[filled..])];
            match rustix::io::preadv2(
                &self.file,
                &mut slices,
                offset + filled as u64,
                rustix::io::ReadWriteFlags::NOWAIT,
            ) {
                Ok(0) => return Err(self.short()),
                Ok(n) => filled += n,
                // EAGAIN: the disk is needed. Anything else (a file system without
                // RWF_NOWAIT, an error) is for the blocking read that follows to find out.
                Err(_) => break,
            }
        }
        Ok(filled)
    }

    /// Feeds the object's first `len` bytes, read again, to `verifier`.
    pub fn hash_prefix(&self, verifier: &mut Verifier, len: u64) -> Result<(), StoreError> {
        self.for_each_chunk(len, |chunk| {
            verifier.update(chunk);
            Ok(())
        })
    }

    /// Reads the object's first `len` bytes in order, at most 1 MiB at a time, handing each
    /// piece to `each`.
    fn for_each_chunk(
        &self,
        len: u64,
        mut each: impl FnMut(&[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut buf = vec![0u8; len.clamp(1, 1 << 20) as usize];
        let mut offset = 0u64;
        while offset < len {
            let n = (len - offset).min(buf.len() as u64) as usize;
            self.read_exact_at(&mut buf[..n], offset)?;
            each(&buf[..n])?;
            offset += n as u64;
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new buffer of exactly that size, without zero-filling
    /// it first.
    pub fn read_vec_at(&self, len: usize, offset: u64) -> Result<Vec<u8>, StoreError> {
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = offset + buf.len() as u64;
            let n = rustix::io::pread(&self.file, rustix::buffer::spare_capacity(&mut buf), at)
                .map_err(|e| StoreError::Io(e.into()))?;
            if n == 0 {
                return Err(self.short());
            }
        }
        Ok(buf)
    }

    fn short(&self) -> StoreError {
        StoreError::Corrupt(format!(
            "object is shorter than its recorded size {}",
            self.meta.size
        ))
    }

    /// Reads the whole object only if every byte is already in the page cache
    /// (`preadv2(RWF_NOWAIT)`), verifying its checksum; `None` if a read would have to wait for
    /// the disk. Lets an async handler serve hot small objects without a blocking-pool hop.
    pub fn read_cached_verified(&self) -> Option<Result<Vec<u8>, StoreError>> {
        let since = self.verification();
        let size = usize::try_from(self.meta.size).ok()?;
        let mut buf = vec![0u8; size];
        match self.read_cached_at(&mut buf, 0) {
            Ok(got) if got < size => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(e)),
        }
        let mut verifier = self.verifier();
        verifier.update(&buf);
        Some(self.finish(&verifier, since).map(|()| buf))
    }

    /// Reads the whole object and verifies its checksum.
    pub fn read_all_verified(&self) -> Result<Vec<u8>, StoreError> {
        let since = self.verification();
        let size = usize::try_from(self.meta.size)
            .map_err(|_| StoreError::Corrupt("object too large".into()))?;
        let mut buf = vec![0u8; size];
        self.read_exact_at(&mut buf, 0)?;
        let mut verifier = self.verifier();
        verifier.update(&buf);
        self.finish(&verifier, since)?;
        Ok(buf)
    }

    /// Reads the whole object and checks its checksum, keeping at most 1 MiB in memory.
    pub fn verify(&self) -> Result<(), StoreError> {
        self.copy_verified(&mut std::io::sink())
    }

    /// Writes the whole object to `out` (1 MiB at a time) and checks its checksum on the way;
    /// a mismatch is `Corrupt` once every byte was written, so the caller must not keep `out`.
    pub fn copy_verified(&self, out: &mut dyn std::io::Write) -> Result<(), StoreError> {
        let since = self.verification();
        let mut verifier = self.verifier();
        self.for_each_chunk(self.meta.size, |chunk| {
            verifier.update(chunk);
            Ok(out.write_all(chunk)?)
        })?;
        self.finish(&verifier, since)
    }

    /// Checks a verifier fed with the whole object, remembering a match unless bytes were read
    /// from the disk unhashed since `since` (the [`ObjHandle::verification`] read before the
    /// hashing began).
    pub fn finish(&self, verifier: &Verifier, since: u64) -> Result<(), StoreError> {
        verifier.finish()?;
        // Sets the bit only within the generation the hashing began in.
        let _ = self.verified.compare_exchange(
            since & !1,
            since | 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        Ok(())
    }

    /// A streaming checksum verifier for this object's bytes, fed in order.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            hasher: Xxh64::new(0),
            seen: 0,
            expected: u64::from_str_radix(&self.meta.cksum, 16).ok(),
            size: self.meta.size,
        }
    }

    /// Access time (seconds since the epoch), falling back to the modification time.
    pub fn atime_secs(&self) -> u64 {
        let Ok(md) = self.file.metadata() else {
            return 0;
        };
        let time = md
            .accessed()
            .or_else(|_| md.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        time.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// Incremental checksum check over a whole object.
pub struct Verifier {
    hasher: Xxh64,
    seen: u64,
    /// The stored digest (`None` if unreadable: every read then fails verification).
    expected: Option<u64>,
    size: u64,
}

impl Verifier {
    /// Feeds the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
        self.seen += data.len() as u64;
    }

    /// Compares against the stored checksum once every byte was fed.
    pub fn finish(&self) -> Result<(), StoreError> {
        if self.seen != self.size {
            return Err(StoreError::Corrupt(format!(
                "object size mismatch: read {} bytes, recorded {}",
                self.seen, self.size
            )));
        }
        let actual = self.hasher.digest();
        if Some(actual) != self.expected {
            let stored = self
                .expected
                .map(checksum_hex)
                .unwrap_or_else(|| "(unreadable)".into());
            return Err(StoreError::Corrupt(format!(
                "checksum mismatch: stored xxhash2 {stored}, computed {}",
                checksum_hex(actual)
            )));
        }
        Ok(())
    }
}
