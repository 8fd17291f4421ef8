//! `archive`: builds one shard from many objects, in the order given, on the target that owns
//! the shard. Members are gathered through the GetBatch engine (sender streams from every
//! target, 1,024 entries per work item) as plain TAR, and rewritten by `moss-archive`'s writers
//! in the shard's format into one atomic object write: the shard appears whole or not at all.
use std::io::Read;
use std::sync::{Arc, Mutex};

use moss_archive::Format;
use moss_archive::shard::{self, ScanLimits, Select, ZipIndex};
use moss_archive::writer::{ArchiveWriter, new_writer};
use moss_getbatch::BatchJob;
use moss_getbatch::coalesce::BodyItem;
use moss_jobs::{Job, JobDesc, RegisterError, worker_fn};
use moss_storage::{PutTxn, Store, StoreError};
use moss_types::jobs::{ARCHIVE, ArchiveMsg, Selection};
use moss_types::moss::{Entry, MISSING_PREFIX, MossReq};
use moss_types::{Bck, lso};
use tokio::sync::mpsc;

use super::{NAME_BATCH, missing};
use crate::target::Target;
use crate::target::bulk::ChannelReader;

/// Entries gathered per GetBatch work item.
const ENTRIES_PER_ITEM: usize = 1024;
/// Bytes the shard writer buffers before writing to its work file.
const WRITE_BUFFER: usize = 1 << 20;
/// How long a gathering work item waits when the engine is saturated (429) before retrying.
const BUSY_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

pub fn start(
    target: &Arc<Target>,
    id: String,
    src: Bck,
    dst: Bck,
    selection: Selection,
    archive: ArchiveMsg,
) -> Result<Arc<Job>, RegisterError> {
    let target = target.clone();
    target.jobs.clone().start(
        JobDesc::new(id, ARCHIVE).src_dst(&src, &dst).workers(1),
        worker_fn(move |job: Arc<Job>| async move {
            run(&target, &job, &src, &dst, selection, &archive).await
        }),
    )
}

async fn run(
    target: &Arc<Target>,
    job: &Arc<Job>,
    src: &Bck,
    dst: &Bck,
    selection: Selection,
    archive: &ArchiveMsg,
) -> anyhow::Result<()> {
    let format = Format::from_name(&archive.archname)
        .ok_or_else(|| anyhow::anyhow!("{}: not an archive name", archive.archname))?;
    let list_mode = matches!(selection, Selection::List(_));
    // Only listed names must exist; a range or prefix selects what is there.
    let strict = list_mode && !archive.coer;
    // `Some(body)` per work item, then `None`: only a writer that saw the `None` commits.
    let (bodies_tx, bodies_rx) = mpsc::channel::<Option<mpsc::Receiver<BodyItem>>>(1);
    let writer = {
        let store = target.store.clone();
        let (dst, name) = (dst.clone(), archive.archname.clone());
        let append = archive.aate;
        tokio::task::spawn_blocking(move || {
            write_shard(&store, &dst, &name, format, append, bodies_rx)
        })
    };
    let mut names = all_names(target, job, src, selection);
    let mut pending: Vec<String> = Vec::with_capacity(ENTRIES_PER_ITEM);
    let mut gathered = Ok(());
    loop {
        let batch = names.recv().await;
        let done = batch.is_none();
        if let Some(batch) = batch {
            match batch {
                // A prefix may select the shard being appended to; it is not its own member.
                Ok(batch) => pending.extend(
                    batch
                        .into_iter()
                        .filter(|name| !(src == dst && name == &archive.archname)),
                ),
                Err(e) => {
                    gathered = Err(e);
                    break;
                }
            }
        }
        while pending.len() >= ENTRIES_PER_ITEM || (done && !pending.is_empty()) {
            let take = pending.len().min(ENTRIES_PER_ITEM);
            let chunk: Vec<String> = pending.drain(..take).collect();
            match gather(target, job, src, chunk, archive.isbn, strict).await {
                Ok(body) => {
                    if bodies_tx.send(Some(body)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    gathered = Err(e);
                    break;
                }
            }
        }
        if done || gathered.is_err() || job.cancel_token().is_cancelled() {
            break;
        }
    }
    let complete = gathered.is_ok() && !job.cancel_token().is_cancelled();
    if complete {
        let _ = bodies_tx.send(None).await;
    }
    drop(bodies_tx);
    if job.cancel_token().is_cancelled() {
        // The writer sees its input end early and writes nothing.
        let _ = writer.await;
        anyhow::bail!("aborted");
    }
    let written = writer.await?;
    gathered?;
    let outcome = written?;
    // The shard counts as written once its redundancy is durable too.
    crate::target::protect(target, dst, &archive.archname)
        .await
        .map_err(|e| anyhow::anyhow!("{}/{}: {}", dst.cname(), archive.archname, e.message))?;
    if list_mode {
        for name in &outcome.missing {
            job.add_err(missing(src, name));
        }
    }
    job.add_loc(1, outcome.size);
    job.set_note(format!(
        "{} member(s) in {}/{}",
        outcome.members,
        dst.cname(),
        archive.archname
    ));
    Ok(())
}

/// Starts one GetBatch work item for `names` and returns its (TAR) body.
async fn gather(
    target: &Arc<Target>,
    job: &Arc<Job>,
    src: &Bck,
    names: Vec<String>,
    isbn: bool,
    strict: bool,
) -> anyhow::Result<mpsc::Receiver<BodyItem>> {
    let entries: Vec<Entry> = names
        .into_iter()
        .map(|objname| Entry {
            bck: src.clone(),
            objname,
            archpath: String::new(),
            opaque: None,
            range: None,
        })
        .collect();
    let request = MossReq {
        coer: !strict,
        onob: !isbn,
        strm: true,
        ..MossReq::default()
    };
    loop {
        let batch_job = BatchJob {
            item: job.work_item(),
            max_soft: Some(u64::MAX),
            counts_entries: false,
        };
        let started = target
            .engine
            .getbatch(request.clone(), entries.clone(), Format::Tar, batch_job)
            .await;
        match started {
            Ok(started) => return Ok(started.body),
            Err(e) if e.status == 429 && !job.cancel_token().is_cancelled() => {
                tokio::time::sleep(BUSY_RETRY).await;
            }
            Err(e) => anyhow::bail!("{}", e.message),
        }
    }
}

/// Every name of the selection, in order (list and range as given, a prefix in name order across
/// the cluster), in batches.
fn all_names(
    target: &Arc<Target>,
    job: &Arc<Job>,
    bck: &Bck,
    selection: Selection,
) -> mpsc::Receiver<anyhow::Result<Vec<String>>> {
    let (tx, rx) = mpsc::channel(super::BATCHES_AHEAD);
    let (target, job, bck) = (target.clone(), job.clone(), bck.clone());
    tokio::spawn(async move {
        let outcome = match selection {
            Selection::List(names) => send_all(&tx, &job, names.into_iter()).await,
            Selection::Range(text) => match moss_types::template::Template::parse(&text) {
                Ok(Some(template)) => send_all(&tx, &job, template.names()).await,
                Ok(None) => Err(anyhow::anyhow!("{text:?} is not a range")),
                Err(e) => Err(anyhow::anyhow!(e)),
            },
            Selection::Prefix(prefix) => list_cluster(&target, &tx, &job, &bck, &prefix).await,
        };
        if let Err(e) = outcome {
            let _ = tx.send(Err(e)).await;
        }
    });
    rx
}

async fn send_all(
    tx: &mpsc::Sender<anyhow::Result<Vec<String>>>,
    job: &Job,
    names: impl Iterator<Item = String>,
) -> anyhow::Result<()> {
    let mut batch = Vec::with_capacity(NAME_BATCH);
    for name in names {
        batch.push(name);
        if batch.len() == NAME_BATCH {
            let full = std::mem::replace(&mut batch, Vec::with_capacity(NAME_BATCH));
            if job.cancel_token().is_cancelled() || tx.send(Ok(full)).await.is_err() {
                return Ok(());
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Ok(batch)).await;
    }
    Ok(())
}

/// Pages through the cluster's listing of `bck` under `prefix` (the proxy merges every target's).
async fn list_cluster(
    target: &Arc<Target>,
    tx: &mpsc::Sender<anyhow::Result<Vec<String>>>,
    job: &Job,
    bck: &Bck,
    prefix: &str,
) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/buckets/{}?{}",
        target.proxy_url,
        bck.name,
        bck.query()
    );
    let mut token = String::new();
    loop {
        let msg = serde_json::json!({"action": "list", "value": {
            "prefix": prefix, "continuation_token": token, "props": "name"}});
        let response = target
            .shared
            .intra(target.shared.client.get(&url))
            .json(&msg)
            .send()
            .await?;
        if !response.status().is_success() {
            anyhow::bail!("list {}: status {}", bck.cname(), response.status());
        }
        let page: lso::LsoRes = response.json().await?;
        let names: Vec<String> = page.entries.into_iter().map(|e| e.name).collect();
        if !names.is_empty()
            && (job.cancel_token().is_cancelled() || tx.send(Ok(names)).await.is_err())
        {
            return Ok(());
        }
        if page.continuation_token.is_empty() {
            return Ok(());
        }
        token = page.continuation_token;
    }
}

/// What the shard writer produced.
struct Written {
    members: u64,
    size: u64,
    /// Names the engine could not find (placeholders, skipped).
    missing: Vec<String>,
}

/// Writes the shard: the existing shard's members first when appending, then every member of
/// every gathered TAR body, then commits. Nothing is visible unless all of it succeeded.
fn write_shard(
    store: &Store,
    dst: &Bck,
    name: &str,
    format: Format,
    append: bool,
    mut bodies: mpsc::Receiver<Option<mpsc::Receiver<BodyItem>>>,
) -> anyhow::Result<Written> {
    let existing = if append {
        match store.open_object(dst, name) {
            Ok(handle) => Some(handle),
            Err(StoreError::NotFound) => None,
            Err(e) => anyhow::bail!("open {}/{name} to append: {e}", dst.cname()),
        }
    } else {
        None
    };
    let sink = TxnSink::new(store.begin_put(dst, name)?);
    let txn = sink.txn.clone();
    let mut writer = new_writer(format, sink);
    let mut written = Written {
        members: 0,
        size: 0,
        missing: Vec::new(),
    };
    if let Some(handle) = existing {
        written.members += copy_existing(&handle.file, handle.meta.size, format, &mut *writer)
            .map_err(|e| anyhow::anyhow!("read {}/{name} to append: {e}", dst.cname()))?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut completed = false;
    while let Some(feed) = bodies.blocking_recv() {
        let Some(body) = feed else {
            completed = true;
            break;
        };
        let mut reader = ChannelReader::new(body);
        let limits = ScanLimits {
            max_output_bytes: u64::MAX,
            ..ScanLimits::default()
        };
        let scanned = shard::scan_tar(
            &mut reader,
            &limits,
            |_| Select::Take(0),
            |_, member, payload| {
                if let Some(lost) = member.name.strip_prefix(MISSING_PREFIX) {
                    written.missing.push(lost.to_string());
                    return Ok(());
                }
                writer.start_entry(&member.name, member.size, now)?;
                copy_payload(payload, &mut *writer)?;
                writer.finish_entry()?;
                written.members += 1;
                Ok(())
            },
        );
        if let Err(e) = scanned {
            anyhow::bail!("gathering members failed: {e}");
        }
        // Past the TAR trailer: the body must end cleanly too.
        std::io::copy(&mut reader, &mut std::io::sink())
            .map_err(|e| anyhow::anyhow!("gathering members failed: {e}"))?;
        if !reader.ended {
            anyhow::bail!("gathering members ended early");
        }
    }
    if !completed {
        anyhow::bail!("gathering members ended early");
    }
    if written.members == 0 {
        anyhow::bail!("no objects to archive: nothing was written");
    }
    writer.finish()?;
    let txn = txn
        .lock()
        .map_err(|_| anyhow::anyhow!("shard writer lock poisoned"))?
        .take()
        .ok_or_else(|| anyhow::anyhow!("shard writer lost its write"))?;
    let meta = txn.commit(Default::default())?;
    written.size = meta.size;
    Ok(written)
}

/// Copies every member of the existing shard (any of the four formats) into `writer`.
fn copy_existing(
    file: &std::fs::File,
    size: u64,
    format: Format,
    writer: &mut dyn ArchiveWriter,
) -> anyhow::Result<u64> {
    let limits = ScanLimits::default();
    let mut members = 0;
    if format == Format::Zip {
        let index = ZipIndex::build(file, size, &limits)?;
        for entry in index.entries().iter().filter(|e| !e.is_dir) {
            let mut payload = shard::open_zip_member(file, entry)?;
            writer.start_entry(&entry.name, entry.size, 0)?;
            copy_payload(&mut payload, writer)?;
            writer.finish_entry()?;
            members += 1;
        }
        return Ok(members);
    }
    let mut decoded = shard::decoder(format, file, &limits);
    shard::scan_tar(
        &mut decoded,
        &limits,
        |_| Select::Take(0),
        |_, member, payload| {
            writer.start_entry(&member.name, member.size, 0)?;
            copy_payload(payload, writer)?;
            writer.finish_entry()?;
            members += 1;
            Ok(())
        },
    )?;
    shard::drain(&mut decoded)?;
    Ok(members)
}

fn copy_payload(payload: &mut dyn Read, writer: &mut dyn ArchiveWriter) -> std::io::Result<()> {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = payload.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        writer.write_data(&buf[..n])?;
    }
}

/// The write transaction under the archive writer, buffered (writers emit 512-byte headers).
struct TxnSink {
    txn: Arc<Mutex<Option<PutTxn>>>,
    buf: Vec<u8>,
}

impl TxnSink {
    fn new(txn: PutTxn) -> TxnSink {
        TxnSink {
            txn: Arc::new(Mutex::new(Some(txn))),
            buf: Vec::with_capacity(WRITE_BUFFER),
        }
    }

    fn write_out(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut guard = self
            .txn
            .lock()
            .map_err(|_| std::io::Error::other("shard writer lock poisoned"))?;
        let txn = guard
            .as_mut()
            .ok_or_else(|| std::io::Error::other("write after commit"))?;
        txn.write(&self.buf).map_err(std::io::Error::other)?;
        self.buf.clear();
        Ok(())
    }
}

impl std::io::Write for TxnSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= WRITE_BUFFER {
            self.write_out()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.write_out()
    }
}

impl Drop for TxnSink {
    fn drop(&mut self) {
        // The writer is dropped after `finish` flushed; a failed write leaves nothing to keep.
        let _ = self.write_out();
    }
}
