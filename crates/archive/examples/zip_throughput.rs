//! Rough throughput of the archive writers into `io::sink()`:
//! `cargo run --release -p moss-archive --example zip_throughput [zip|tar|tgz|tar.lz4] [rounds]`.
//!
//! Two workloads: 10,000 entries of 10 KiB and 200 entries of 1 MiB, both of "random-ish"
//! bytes (runs of a repeated pattern mixed with pseudo-random bytes, so deflate has some work
//! to do but cannot squeeze much out). MB/s counts uncompressed payload bytes (10^6 bytes/s).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::{self, Write};
use std::time::Instant;

use moss_archive::Format;
use moss_archive::writer::new_writer;

/// Counts what the writer produced, discarding it.
struct Counter(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        io::sink().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Deterministic bytes: 40 of every 97 are a short repeating pattern, the rest pseudo-random.
fn random_ish(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 97 < 40 {
                b'a' + (i % 7) as u8
            } else {
                (x >> 24) as u8
            }
        })
        .collect()
}

fn run(format: Format, count: usize, size: usize, rounds: usize) {
    // A pool larger than one entry so consecutive entries differ.
    let pool = random_ish(size + 64 * 1024, 42);
    let mut best = f64::MAX;
    let mut out_len = 0;
    for _ in 0..rounds {
        let produced = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let start = Instant::now();
        let mut w = new_writer(format, Counter(produced.clone()));
        for i in 0..count {
            let at = (i * 4099) % (64 * 1024);
            let data = &pool[at..at + size];
            w.start_entry(&format!("dir/entry-{i:06}.bin"), size as u64, 1_700_000_000)
                .unwrap();
            // Chunks as GetBatch hands them over (up to 256 KiB).
            for chunk in data.chunks(256 * 1024) {
                w.write_data(chunk).unwrap();
            }
            w.finish_entry().unwrap();
        }
        w.finish().unwrap();
        best = best.min(start.elapsed().as_secs_f64());
        out_len = produced.load(std::sync::atomic::Ordering::Relaxed);
    }
    let total = (count * size) as f64;
    println!(
        "{format:?} {count} x {} KiB: {:.1} MB/s (best of {rounds}, {:.3} s), output {:.1}% of input",
        size / 1024,
        total / best / 1e6,
        best,
        out_len as f64 / total * 100.0
    );
}

fn main() {
    let format = match std::env::args().nth(1).as_deref() {
        None | Some("zip") => Format::Zip,
        Some("tar") => Format::Tar,
        Some("tgz") => Format::Tgz,
        Some("tar.lz4") => Format::TarLz4,
        Some(other) => panic!("unknown format {other}"),
    };
    let rounds = std::env::args()
        .nth(2)
        .map_or(5, |r| r.parse().expect("rounds: a number"));
    run(format, 10_000, 10 * 1024, rounds);
    run(format, 200, 1024 * 1024, rounds);
}
