//! What one GetBatch item costs its owner, without the network: the stat phase and the read of
//! a batch of 64 warm objects, through the reader the engine uses, on one thread. Three ways:
//!
//! - `open each time`: no kept descriptors (open, metadata xattr, fstat, pread, XXH64, close —
//!   the path before RFC 0009);
//! - `kept, hashed`: kept descriptors, but every read hashed (the descriptor made to forget);
//! - `kept, verified`: the default now (fstat and pread; no hash while the page cache holds it).
//!
//! `cargo run --release -p moss-getbatch --example item_cost [-- <dir>]` prints µs per item, the
//! median of 7 passes over 4,096 × 10 KiB and 128 × 1 MiB objects (the directory defaults to a
//! temporary one; put it on the file system you want to measure).
use std::sync::Arc;
use std::time::Instant;

use moss_getbatch::item::{ItemSpec, LocalReader};
use moss_getbatch::kept::KeptOpen;
use moss_storage::Store;
use moss_types::Bck;

const BATCH: usize = 64;
const PASSES: usize = 7;

fn main() -> anyhow::Result<()> {
    let dir = match std::env::args().nth(1) {
        Some(dir) => tempfile::tempdir_in(dir)?,
        None => tempfile::tempdir()?,
    };
    let store = Arc::new(Store::open(&[dir.path().join("mp")])?);
    let bck = Bck::ais("b");
    println!(
        "item cost on one thread, µs per item (median of {PASSES} passes, batches of {BATCH})"
    );
    println!(
        "{:>8}  {:>16}  {:>14}  {:>15}",
        "size", "open each time", "kept, hashed", "kept, verified"
    );
    for (label, size, count) in [("10 KiB", 10 << 10, 4096), ("1 MiB", 1 << 20, 128)] {
        let names: Vec<String> = (0..count).map(|i| format!("{label}/{i:05}")).collect();
        let payload: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        for name in &names {
            let mut txn = store.begin_put(&bck, name)?;
            txn.write(&payload)?;
            txn.commit(Default::default())?;
        }
        let mut fresh = LocalReader::new(store.clone());
        fresh.open_objects = KeptOpen::new(0, 0);
        let kept = LocalReader::new(store.clone());
        per_item(&fresh, &bck, &names, size, false)?; // a warm-up pass: every page cached
        let once = per_item(&fresh, &bck, &names, size, false)?;
        per_item(&kept, &bck, &names, size, false)?; // fills the cache and verifies
        let hashed = per_item(&kept, &bck, &names, size, true)?;
        let verified = per_item(&kept, &bck, &names, size, false)?;
        println!("{label:>8}  {once:>16.2}  {hashed:>14.2}  {verified:>15.2}");
    }
    Ok(())
}

/// Median over passes of the time per item to prepare and read every object in batches.
fn per_item(
    reader: &LocalReader,
    bck: &Bck,
    names: &[String],
    size: usize,
    forget: bool,
) -> anyhow::Result<f64> {
    let mut out = vec![0u8; size];
    let mut passes = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let started = Instant::now();
        for batch in names.chunks(BATCH) {
            let specs: Vec<ItemSpec> = batch
                .iter()
                .map(|objname| ItemSpec {
                    bck,
                    objname,
                    archpath: "",
                    archmime: "",
                    range: None,
                })
                .collect();
            let prepared = reader.prepare(&specs);
            for (spec, p) in specs.iter().zip(prepared) {
                let p = p?;
                if forget && let Some((handle, _)) = &p.opened {
                    handle.forget_verified();
                }
                reader.open_prepared(spec, &p)?.read_exact_into(&mut out)?;
            }
        }
        passes.push(started.elapsed().as_secs_f64() * 1e6 / names.len() as f64);
    }
    passes.sort_by(f64::total_cmp);
    Ok(passes[PASSES / 2])
}
