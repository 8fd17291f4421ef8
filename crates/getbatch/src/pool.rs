//! Reusable I/O blocks. Every small item and every 256 KiB output buffer used to be a fresh
//! allocation, freed on another thread after the socket write; at 10 KiB objects the allocator
//! and the page faults of re-touched memory took ~19% of a target's CPU. Blocks are instead
//! filled in place, frozen into `Bytes` (possibly sliced per item), and come back to the pool
//! when the last slice is dropped.
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Size of every pooled block.
pub const BLOCK: usize = 256 << 10;

/// A bounded free list of blocks.
pub struct BufPool {
    free: Mutex<Vec<Vec<u8>>>,
    max_free: usize,
}

impl BufPool {
    /// A pool keeping at most `max_free` idle blocks.
    pub fn new(max_free: usize) -> Arc<BufPool> {
        Arc::new(BufPool {
            free: Mutex::new(Vec::new()),
            max_free,
        })
    }

    /// An empty block (recycled when possible; new blocks are zero-filled once).
    pub fn take(self: &Arc<Self>) -> Block {
        let buf = self
            .free
            .lock()
            .ok()
            .and_then(|mut f| f.pop())
            .unwrap_or_else(|| vec![0u8; BLOCK]);
        Block {
            buf,
            len: 0,
            pool: self.clone(),
        }
    }

    fn give_back(&self, buf: Vec<u8>) {
        if let Ok(mut free) = self.free.lock()
            && free.len() < self.max_free
        {
            free.push(buf);
        }
    }
}

/// A block being filled: `len` bytes are valid, the rest is scratch space.
pub struct Block {
    buf: Vec<u8>,
    len: usize,
    pool: Arc<BufPool>,
}

impl Block {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Appends bytes; the caller checks `remaining()` first.
    pub fn put(&mut self, data: &[u8]) {
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
    }

    /// The next `n` bytes of scratch space, to be filled and then committed with `commit`.
    pub fn tail(&mut self, n: usize) -> &mut [u8] {
        &mut self.buf[self.len..self.len + n]
    }

    /// Marks `n` more bytes (filled through `tail`) as valid.
    pub fn commit(&mut self, n: usize) {
        self.len += n;
    }

    /// Drops everything after the first `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// The valid bytes as `Bytes`; the block returns to the pool when every clone and slice of
    /// them is gone.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Block {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if buf.len() == BLOCK {
            self.pool.give_back(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_back_when_every_slice_is_gone() {
        let pool = BufPool::new(4);
        let mut block = pool.take();
        block.put(b"hello ");
        block.tail(5).copy_from_slice(b"world");
        block.commit(5);
        let bytes = block.freeze();
        let hello = bytes.slice(0..5);
        assert_eq!(&bytes[..], b"hello world");
        drop(bytes);
        assert_eq!(
            pool.free.lock().unwrap().len(),
            0,
            "a slice still holds the block"
        );
        assert_eq!(&hello[..], b"hello");
        drop(hello);
        assert_eq!(pool.free.lock().unwrap().len(), 1);
        let again = pool.take();
        assert!(again.is_empty());
        assert_eq!(pool.free.lock().unwrap().len(), 0);
    }
}
