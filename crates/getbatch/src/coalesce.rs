//! Turns many small writes into few large buffers on a bounded channel (the HTTP body), while large
//! payload chunks pass through without a copy. Writing blocks when the consumer is behind — that
//! is the backpressure that bounds memory.
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// Target size of coalesced buffers.
pub const BUF_SIZE: usize = 256 << 10;
/// Payload chunks at least this large are sent as they are.
const PASS_THROUGH: usize = 64 << 10;

/// Items of an HTTP body channel: data, or an error that aborts the response.
pub type BodyItem = Result<Bytes, io::Error>;

/// A blocking writer into a body channel.
pub struct Coalescer {
    buf: BytesMut,
    tx: mpsc::Sender<BodyItem>,
    sent: u64,
}

impl Coalescer {
    pub fn new(tx: mpsc::Sender<BodyItem>) -> Coalescer {
        Coalescer {
            buf: BytesMut::with_capacity(BUF_SIZE),
            tx,
            sent: 0,
        }
    }

    /// Bytes handed to the channel so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Appends bytes (copied).
    pub fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= BUF_SIZE {
            self.flush()?;
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

    /// Direct access to the pending buffer (for building headers in place).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Sends whatever is pending.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = self.buf.split().freeze();
        self.buf.reserve(BUF_SIZE);
        self.send(full)
    }

    fn send(&mut self, data: Bytes) -> io::Result<()> {
        self.sent += data.len() as u64;
        self.tx
            .blocking_send(Ok(data))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }

    /// Aborts the response: the consumer sees an error instead of an end.
    pub fn abort(self, why: &str) {
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
