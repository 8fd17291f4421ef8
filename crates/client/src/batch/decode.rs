//! Incremental decoding of a GetBatch archive: the response bytes flow through a blocking
//! thread that runs the archive reader and hands out one entry at a time through a bounded
//! channel. Memory is bounded by the channel depth times the entry size, never the archive.
use std::io::{self, Read, Seek, Write};
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use moss_archive::shard::{self, ScanLimits, Select};
use moss_archive::{ArchiveError, Format};
use moss_types::moss::MossOut;
use tokio::sync::mpsc;
use tokio_util::io::{StreamReader, SyncIoBridge};

use super::plan::BatchPlan;
use super::{BatchItem, BatchStream, ByteStream};
use crate::error::{Error, Result};

/// Decoded entries that may wait for the consumer.
const ITEM_QUEUE: usize = 4;
/// Largest up-front allocation for one payload (bigger payloads grow as they arrive).
const MAX_PREALLOC: u64 = 16 << 20;

enum Msg {
    Item(Box<Result<BatchItem>>),
    /// The archive ended well: every entry was delivered and checked.
    Done,
}

/// Why a decode stopped early.
enum Stop {
    /// The consumer dropped the stream; nobody to report to.
    Consumer,
    Failed(Error),
}

impl From<Error> for Stop {
    fn from(err: Error) -> Stop {
        Stop::Failed(err)
    }
}

/// Decodes `body` (archive bytes in `plan.format()`) into entries paired with the request.
/// `metadata` is the buffered response's `out` list; `keep_payload = false` checks everything
/// but hands out empty `data` (for verifying an archive being written elsewhere).
pub(crate) fn decode(
    plan: Arc<BatchPlan>,
    metadata: Option<Arc<Vec<MossOut>>>,
    body: ByteStream,
    keep_payload: bool,
) -> BatchStream {
    let setup = async move {
        let handle = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle,
            Err(e) => {
                let err =
                    Error::InvalidRequest(format!("batch decoding needs a tokio runtime: {e}"));
                return stream::iter([Err(err)]).boxed();
            }
        };
        let reader =
            SyncIoBridge::new_with_handle(StreamReader::new(body.map_err(into_io)), handle.clone());
        let (tx, rx) = mpsc::channel(ITEM_QUEUE);
        handle.spawn_blocking(move || {
            let job = Job {
                plan: &plan,
                metadata: metadata.as_deref().map(Vec::as_slice),
                keep_payload,
                tx: &tx,
                delivered: 0,
            };
            let outcome = job.run(reader);
            let last = match outcome {
                Ok(()) => Msg::Done,
                Err(Stop::Failed(err)) => Msg::Item(Box::new(Err(err))),
                Err(Stop::Consumer) => return,
            };
            // The consumer may be gone by now; then there is nobody to tell.
            let _ = tx.blocking_send(last);
        });
        receive(rx).boxed()
    };
    BatchStream::new(stream::once(setup).flatten().boxed())
}

/// Items until `Done` or the first error; a channel that closes without either means the
/// decoding thread died, which must not look like a complete batch.
fn receive(rx: mpsc::Receiver<Msg>) -> impl futures::Stream<Item = Result<BatchItem>> {
    stream::unfold(Some(rx), |state| async move {
        let mut rx = state?;
        match rx.recv().await {
            Some(Msg::Item(item)) => match *item {
                Ok(item) => Some((Ok(item), Some(rx))),
                Err(err) => Some((Err(err), None)),
            },
            Some(Msg::Done) => None,
            None => Some((
                Err(Error::Archive(
                    "archive decoder stopped unexpectedly".to_string(),
                )),
                None,
            )),
        }
    })
}

fn into_io(err: Error) -> io::Error {
    match err {
        Error::Body { error, .. } => error,
        other => io::Error::other(other.to_string()),
    }
}

/// Turns a reader failure into the client error: I/O errors of the body are transport
/// failures (an aborted response), everything else means bad archive bytes.
fn archive_error(err: ArchiveError) -> Error {
    match err {
        ArchiveError::Io(error) => Error::Body {
            context: "batch response broke off".to_string(),
            error,
        },
        other => Error::Archive(other.to_string()),
    }
}

struct Job<'a> {
    plan: &'a BatchPlan,
    metadata: Option<&'a [MossOut]>,
    keep_payload: bool,
    tx: &'a mpsc::Sender<Msg>,
    delivered: usize,
}

impl Job<'_> {
    fn run<R: Read + Send>(mut self, reader: R) -> Result<(), Stop> {
        match self.plan.format() {
            Format::Zip => self.read_zip(reader)?,
            format => self.read_tar(format, reader)?,
        }
        if self.delivered != self.plan.len() {
            return Err(Stop::Failed(Error::Archive(format!(
                "archive ended after {} of {} entries",
                self.delivered,
                self.plan.len()
            ))));
        }
        Ok(())
    }

    /// Pairs, reads and hands out one entry.
    fn deliver(
        &mut self,
        name: &str,
        size: u64,
        payload: &mut dyn Read,
        read_error: fn(io::Error) -> Error,
    ) -> Result<(), Stop> {
        let index = self.delivered;
        let meta = self.metadata.and_then(|m| m.get(index));
        let out = self
            .plan
            .pair(index, name, size, meta)
            .map_err(|msg| Stop::Failed(Error::Archive(msg)))?;
        let data = if self.keep_payload {
            let mut buf = Vec::with_capacity(size.min(MAX_PREALLOC) as usize);
            payload
                .take(size.saturating_add(1))
                .read_to_end(&mut buf)
                .map_err(read_error)?;
            Bytes::from(buf)
        } else {
            let copied = io::copy(&mut payload.take(size.saturating_add(1)), &mut io::sink())
                .map_err(read_error)?;
            if copied != size {
                return Err(Stop::Failed(short_entry(name, size, copied)));
            }
            Bytes::new()
        };
        if self.keep_payload && data.len() as u64 != size {
            return Err(Stop::Failed(short_entry(name, size, data.len() as u64)));
        }
        let item = BatchItem {
            name: name.to_string(),
            out,
            data,
        };
        self.tx
            .blocking_send(Msg::Item(Box::new(Ok(item))))
            .map_err(|_| Stop::Consumer)?;
        self.delivered += 1;
        Ok(())
    }

    fn read_tar<R: Read + Send>(&mut self, format: Format, reader: R) -> Result<(), Stop> {
        let limits = unlimited();
        let mut decoded = shard::decoder(format, reader, &limits);
        // `scan_tar` speaks `ArchiveError`; the real reason for stopping is kept here.
        let mut stop: Option<Stop> = None;
        let scanned = shard::scan_tar(
            &mut decoded,
            &limits,
            |_| Select::Take(0),
            |_, member, payload| match self.deliver(
                &member.name,
                member.size,
                payload,
                tar_read_error,
            ) {
                Ok(()) => Ok(()),
                Err(reason) => {
                    stop = Some(reason);
                    Err(ArchiveError::Corrupt("decoding stopped".to_string()))
                }
            },
        );
        if let Some(reason) = stop {
            return Err(reason);
        }
        scanned.map_err(|e| Stop::Failed(archive_error(e)))?;
        // Read past the end-of-archive marker to the end of the body: this verifies a
        // compressed stream's trailer and surfaces a response that broke off late.
        io::copy(&mut decoded, &mut io::sink())
            .map_err(|e| Stop::Failed(archive_error(shard::into_archive_error(e))))?;
        Ok(())
    }

    /// ZIP keeps its directory at the end: spill the archive to an unnamed temporary file,
    /// then read it entry by entry in directory order.
    fn read_zip<R: Read>(&mut self, mut reader: R) -> Result<(), Stop> {
        let mut spill = tempfile::tempfile()
            .map_err(|e| Error::io("create temporary file for the zip archive", e))?;
        let mut chunk = vec![0u8; 256 << 10];
        loop {
            let n = match reader.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(archive_error(ArchiveError::Io(e)).into()),
            };
            spill
                .write_all(&chunk[..n])
                .map_err(|e| Error::io("spill zip archive to a temporary file", e))?;
        }
        spill
            .rewind()
            .map_err(|e| Error::io("rewind temporary zip file", e))?;
        // Our own directory reader keeps every entry, duplicate names included (GetBatch repeats a
        // name whenever an object is requested twice); the zip crate keys entries by name.
        let total = spill
            .metadata()
            .map_err(|e| Error::io("stat temporary zip file", e))?
            .len();
        let index = shard::ZipIndex::build(&mut spill, total, &unlimited())
            .map_err(|e| Error::Archive(format!("corrupt zip archive: {e}")))?;
        for entry in index.entries().iter().filter(|e| !e.is_dir) {
            let mut member = shard::open_zip_member(&mut spill, entry)
                .map_err(|e| Error::Archive(format!("corrupt zip entry {:?}: {e}", entry.name)))?;
            self.deliver(&entry.name, entry.size, &mut member, zip_read_error)?;
        }
        Ok(())
    }
}

fn tar_read_error(err: io::Error) -> Error {
    archive_error(shard::into_archive_error(err))
}

/// The zip is read from a local file: a failing read means bad data (CRC, truncation).
fn zip_read_error(err: io::Error) -> Error {
    Error::Archive(format!("corrupt zip entry: {err}"))
}

fn short_entry(name: &str, size: u64, got: u64) -> Error {
    Error::Archive(format!("entry {name:?}: declared {size} bytes, got {got}"))
}

/// GetBatch output is trusted to be as large as the request makes it; the archive reader's
/// bomb guards are meant for shards.
fn unlimited() -> ScanLimits {
    ScanLimits {
        max_output_bytes: u64::MAX,
        max_members: u64::MAX,
        ..ScanLimits::default()
    }
}
