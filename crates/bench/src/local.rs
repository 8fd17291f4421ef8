//! Cell L, the local bound: in this process, sender threads (pinned like the servers) read the
//! same object files, frame them as TAR batches of B members in the same order as GetBatch, and
//! write them to a loopback TCP socket in 256 KiB writes; reader threads (on the client CPU)
//! parse and verify the stream exactly like a GetBatch client does. With `zero_copy` the payloads
//! go file -> socket by `sendfile` (headers and padding still by `write`), as nginx serves a GET:
//! the bound when no payload byte enters user space. With `relay` the stream passes one more
//! loopback hop through a relay thread (pinned like the servers), as GetBatch's entries from
//! another target pass through the designated target: copied by `read` + `write`, or moved by
//! `splice` through a pipe with `zero_copy`.
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

/// How a local-bound cell moves the files.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Sender/reader pairs.
    pub streams: usize,
    /// Members per TAR batch.
    pub b: usize,
    /// Payloads by `sendfile` (and `splice` in the relay) instead of copies through user space.
    pub zero_copy: bool,
    /// One more loopback hop through a relay thread.
    pub relay: bool,
}

/// Runs the shape's sender/reader pairs for `secs`.
pub fn run(
    cat: &Catalog,
    set: &SizeSet,
    shape: Shape,
    secs: f64,
    pin: &Pinning,
) -> Result<LocalOut> {
    let Shape {
        streams,
        b,
        zero_copy,
        relay,
    } = shape;
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut out = LocalOut::default();
    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for s in 0..streams {
            let listener = TcpListener::bind("127.0.0.1:0").context("bind local-bound socket")?;
            let mut addr = listener.local_addr()?;
            let reader = scope.spawn(move || read_stream(cat, set, listener, streams, s, b));
            let relayed = if relay {
                let inbound = TcpListener::bind("127.0.0.1:0").context("bind relay socket")?;
                let to = addr;
                addr = inbound.local_addr()?;
                Some(scope.spawn(move || -> Result<u64> {
                    pin.pin_server_thread()?;
                    relay_stream(inbound, to, zero_copy)
                }))
            } else {
                None
            };
            let sender = scope.spawn(move || -> Result<u64> {
                pin.pin_server_thread()?;
                let sock = TcpStream::connect(addr)?;
                let sender = Sender { shape, s, deadline };
                sender.send_stream(cat, set, sock)
            });
            handles.push((sender, relayed, reader));
        }
        for (sender, relayed, reader) in handles {
            let sent = sender
                .join()
                .map_err(|_| anyhow::anyhow!("sender panicked"))?;
            if let Some(relayed) = relayed {
                out.srv_ticks += relayed
                    .join()
                    .map_err(|_| anyhow::anyhow!("relay panicked"))??;
            }
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

/// One sender thread's stream: stream `s` of the shape, until the deadline.
struct Sender {
    shape: Shape,
    s: usize,
    deadline: Instant,
}

impl Sender {
    /// Sends whole batches until the deadline; returns the thread's CPU ticks.
    fn send_stream(&self, cat: &Catalog, set: &SizeSet, mut sock: TcpStream) -> Result<u64> {
        let ticks0 = sys::thread_cpu_ticks();
        let mut buf = vec![0u8; FLUSH + set.size as usize + 8192];
        let mut hdr = Vec::with_capacity(1536);
        let mut len = 0usize;
        let mut j = 0usize;
        while Instant::now() < self.deadline {
            for id in batch_ids(set, self.shape.streams, self.s, j, self.shape.b) {
                let item = cat.item(id);
                let mut file = File::open(&item.file)
                    .with_context(|| format!("open {}", item.file.display()))?;
                let meta = file.metadata()?;
                let size = meta.len() as usize;
                hdr.clear();
                tarfmt::push_file_header(
                    &mut hdr,
                    &item.tar_name,
                    size as u64,
                    meta.mtime() as u64,
                );
                let pad = tarfmt::padding(size as u64);
                let need = len + hdr.len() + size + pad;
                if need > buf.len() {
                    buf.resize(need, 0);
                }
                buf[len..len + hdr.len()].copy_from_slice(&hdr);
                len += hdr.len();
                if self.shape.zero_copy {
                    sock.write_all(&buf[..len])?;
                    len = 0;
                    send_file(&sock, &file, size)
                        .with_context(|| format!("sendfile {}", item.file.display()))?;
                } else {
                    file.read_exact(&mut buf[len..len + size])?;
                    len += size;
                }
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
}

/// All `size` bytes of `file` from its start to `sock`, by `sendfile`.
fn send_file(sock: &TcpStream, file: &File, size: usize) -> Result<()> {
    let mut offset = 0u64;
    while (offset as usize) < size {
        let rest = size - offset as usize;
        let n = rustix::fs::sendfile(sock, file, Some(&mut offset), rest)?;
        if n == 0 {
            bail!("file ended at {offset} of {size} bytes");
        }
    }
    Ok(())
}

/// Accepts one sender, connects to `to` and passes every byte on until the sender is done;
/// returns the thread's CPU ticks.
fn relay_stream(inbound: TcpListener, to: std::net::SocketAddr, zero_copy: bool) -> Result<u64> {
    let (mut from, _) = inbound.accept()?;
    let mut to = TcpStream::connect(to)?;
    let ticks0 = sys::thread_cpu_ticks();
    if zero_copy {
        use rustix::pipe::{SpliceFlags, fcntl_setpipe_size, pipe, splice};
        let (pipe_out, pipe_in) = pipe()?;
        fcntl_setpipe_size(&pipe_in, FLUSH)?;
        let flags = SpliceFlags::MOVE | SpliceFlags::MORE;
        loop {
            let n = splice(&from, None, &pipe_in, None, FLUSH, flags)?;
            if n == 0 {
                break;
            }
            let mut left = n;
            while left > 0 {
                left -= splice(&pipe_out, None, &to, None, left, flags)?;
            }
        }
    } else {
        let mut buf = vec![0u8; FLUSH];
        loop {
            let n = from.read(&mut buf)?;
            if n == 0 {
                break;
            }
            to.write_all(&buf[..n])?;
        }
    }
    to.shutdown(Shutdown::Write)?;
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
