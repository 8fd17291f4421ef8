//! Cell L, the local bound: in this process, sender threads (pinned like the servers) read the
//! same object files, frame them as TAR batches of B members in the same order as GetBatch, and
//! write them to a loopback TCP socket in 256 KiB writes; reader threads (on the client CPU)
//! parse and verify the stream exactly like a GetBatch client does.
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use moss_archive::tarfmt;

use crate::data::{Catalog, SizeSet};
use crate::sys::{self, Pinning};
use crate::tarcheck::{BatchCheck, TarParser};

/// Bytes buffered before one `write()`.
const FLUSH: usize = 256 << 10;

/// Outcome of one L run.
#[derive(Debug, Default)]
pub struct LocalOut {
    pub objects: u64,
    pub bytes: u64,
    pub secs: f64,
    /// CPU of the sender threads (the "server").
    pub srv_ticks: u64,
    /// CPU of the reader threads (the "client").
    pub cli_ticks: u64,
    pub checksums: u64,
}

/// Catalog ids of batch `j` of stream `s`: B consecutive entries of the permutation.
fn batch_ids(set: &SizeSet, streams: usize, s: usize, j: usize, b: usize) -> Vec<u32> {
    let n = set.perm.len();
    let start = (j * streams + s) * b;
    (0..b).map(|k| set.perm[(start + k) % n]).collect()
}

/// Runs `streams` sender/reader pairs for `secs`.
pub fn run(
    cat: &Catalog,
    set: &SizeSet,
    streams: usize,
    b: usize,
    secs: f64,
    pin: &Pinning,
) -> Result<LocalOut> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut out = LocalOut::default();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for s in 0..streams {
            let listener = TcpListener::bind("127.0.0.1:0").context("bind local-bound socket")?;
            let addr = listener.local_addr()?;
            let reader = scope.spawn(move || read_stream(cat, set, listener, streams, s, b));
            let sender = scope.spawn(move || -> Result<u64> {
                pin.pin_server_thread()?;
                let sock = TcpStream::connect(addr)?;
                send_stream(cat, set, sock, streams, s, b, deadline)
            });
            handles.push((sender, reader));
        }
        for (sender, reader) in handles {
            let sent = sender
                .join()
                .map_err(|_| anyhow::anyhow!("sender panicked"))?;
            let read = reader
                .join()
                .map_err(|_| anyhow::anyhow!("reader panicked"))?;
            out.srv_ticks += sent?;
            let r = read?;
            out.objects += r.objects;
            out.bytes += r.bytes;
            out.cli_ticks += r.cli_ticks;
            out.checksums += r.checksums;
        }
        Ok(())
    })?;
    out.secs = start.elapsed().as_secs_f64();
    Ok(out)
}

/// Sends whole batches until the deadline; returns the thread's CPU ticks.
fn send_stream(
    cat: &Catalog,
    set: &SizeSet,
    mut sock: TcpStream,
    streams: usize,
    s: usize,
    b: usize,
    deadline: Instant,
) -> Result<u64> {
    let ticks0 = sys::thread_cpu_ticks();
    let mut buf = vec![0u8; FLUSH + set.size as usize + 8192];
    let mut hdr = Vec::with_capacity(1536);
    let mut len = 0usize;
    let mut j = 0usize;
    while Instant::now() < deadline {
        for id in batch_ids(set, streams, s, j, b) {
            let item = cat.item(id);
            let mut file =
                File::open(&item.file).with_context(|| format!("open {}", item.file.display()))?;
            let meta = file.metadata()?;
            let size = meta.len() as usize;
            hdr.clear();
            tarfmt::push_file_header(&mut hdr, &item.tar_name, size as u64, meta.mtime() as u64);
            let pad = tarfmt::padding(size as u64);
            let need = len + hdr.len() + size + pad;
            if need > buf.len() {
                buf.resize(need, 0);
            }
            buf[len..len + hdr.len()].copy_from_slice(&hdr);
            len += hdr.len();
            file.read_exact(&mut buf[len..len + size])?;
            len += size;
            buf[len..len + pad].fill(0);
            len += pad;
            if len >= FLUSH {
                sock.write_all(&buf[..len])?;
                len = 0;
            }
        }
        if len + tarfmt::TRAILER.len() > buf.len() {
            sock.write_all(&buf[..len])?;
            len = 0;
        }
        buf[len..len + tarfmt::TRAILER.len()].copy_from_slice(&tarfmt::TRAILER);
        len += tarfmt::TRAILER.len();
        // End of a batch: what GetBatch flushes at the end of a response.
        sock.write_all(&buf[..len])?;
        len = 0;
        j += 1;
    }
    sock.shutdown(Shutdown::Write)?;
    Ok(sys::thread_cpu_ticks().saturating_sub(ticks0))
}

struct ReadOut {
    objects: u64,
    bytes: u64,
    checksums: u64,
    cli_ticks: u64,
}

/// Parses and verifies consecutive batch archives until EOF.
fn read_stream(
    cat: &Catalog,
    set: &SizeSet,
    listener: TcpListener,
    streams: usize,
    s: usize,
    b: usize,
) -> Result<ReadOut> {
    let (mut sock, _) = listener.accept()?;
    let ticks0 = sys::thread_cpu_ticks();
    let mut buf = vec![0u8; FLUSH];
    let mut parser = TarParser::new();
    let mut j = 0usize;
    let mut check = BatchCheck::new(cat, batch_ids(set, streams, s, j, b));
    let mut out = ReadOut {
        objects: 0,
        bytes: 0,
        checksums: 0,
        cli_ticks: 0,
    };
    loop {
        let n = sock.read(&mut buf)?;
        if n == 0 {
            break;
        }
        parser.feed(&buf[..n], &mut |ev| {
            check.on(ev)?;
            if check.complete() {
                out.objects += check.members() as u64;
                out.bytes += check.bytes;
                out.checksums += check.checksums;
                j += 1;
                check = BatchCheck::new(cat, batch_ids(set, streams, s, j, b));
            }
            Ok(())
        })?;
    }
    parser.finish()?;
    if check.members() != 0 {
        bail!("local stream ended inside a batch");
    }
    out.cli_ticks = sys::thread_cpu_ticks().saturating_sub(ticks0);
    Ok(out)
}
