//! Turns many small writes into few large buffers on a bounded channel (the HTTP body), while large
//! payload chunks pass through without a copy. Writing blocks when the consumer is behind — that
//! is the backpressure that bounds memory. Buffers are pooled blocks (see `pool`).
use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::pool::{BLOCK, Block, BufPool};

/// Target size of coalesced buffers.
pub const BUF_SIZE: usize = BLOCK;
/// Payload chunks at least this large are sent as they are.
const PASS_THROUGH: usize = 64 << 10;

/// Items of an HTTP body channel: data, or an error that aborts the response.
pub type BodyItem = Result<Bytes, io::Error>;

/// A blocking writer into a body channel.
pub struct Coalescer {
    block: Block,
    pool: Arc<BufPool>,
    tx: mpsc::Sender<BodyItem>,
    /// When set, bytes go to this (spool) file instead; `tx` is only watched for a client that
    /// went away.
    spool: Option<File>,
    sent: u64,
}

impl Coalescer {
    pub fn new(tx: mpsc::Sender<BodyItem>, pool: Arc<BufPool>) -> Coalescer {
        Coalescer {
            block: pool.take(),
            pool,
            tx,
            spool: None,
            sent: 0,
        }
    }

    /// A writer into `spool` that stops with `BrokenPipe` once the body's consumer is gone.
    pub fn spooling(spool: File, body: mpsc::Sender<BodyItem>, pool: Arc<BufPool>) -> Coalescer {
        Coalescer {
            spool: Some(spool),
            ..Coalescer::new(body, pool)
        }
    }

    /// Bytes handed to the channel so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Bytes buffered and not yet sent.
    pub fn len(&self) -> usize {
        self.block.len()
    }

    pub fn is_empty(&self) -> bool {
        self.block.is_empty()
    }

    /// Appends bytes (copied), sending full blocks as they fill.
    pub fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.block.remaining() == 0 {
                self.flush()?;
            }
            let n = self.block.remaining().min(data.len());
            self.block.put(&data[..n]);
            data = &data[n..];
        }
        Ok(())
    }

    /// Appends a payload chunk; large chunks are sent without copying.
    pub fn put_bytes(&mut self, data: Bytes) -> io::Result<()> {
        if data.len() < PASS_THROUGH {
            return self.put(&data);
        }
        self.flush()?;
        self.send(data)
    }

    /// Makes sure `n` contiguous bytes (at most a block) fit in the current buffer.
    pub fn make_room(&mut self, n: usize) -> io::Result<()> {
        if n > BLOCK {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "reservation larger than a block",
            ));
        }
        if self.block.remaining() < n {
            self.flush()?;
        }
        Ok(())
    }

    /// The next `n` bytes of the buffer to fill in place (after `make_room(n)`); `commit` them.
    pub fn tail(&mut self, n: usize) -> &mut [u8] {
        self.block.tail(n)
    }

    pub fn commit(&mut self, n: usize) {
        self.block.commit(n);
    }

    /// Forgets buffered bytes after `len` (undo of a partly written frame).
    pub fn truncate(&mut self, len: usize) {
        self.block.truncate(len);
    }

    /// Sends whatever is pending.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.block, self.pool.take());
        self.send(full.freeze())
    }

    fn send(&mut self, data: Bytes) -> io::Result<()> {
        self.sent += data.len() as u64;
        if let Some(file) = &mut self.spool {
            if self.tx.is_closed() {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "client went away",
                ));
            }
            return file.write_all(&data);
        }
        self.tx
            .blocking_send(Ok(data))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// Aborts the response: the consumer sees an error instead of an end. Nothing may be written
    /// afterwards.
    pub fn abort(&mut self, why: &str) {
        let _ = self
            .tx
            .blocking_send(Err(io::Error::other(why.to_string())));
    }
}

impl io::Write for Coalescer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.put(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Coalescer::flush(self)
    }
}
