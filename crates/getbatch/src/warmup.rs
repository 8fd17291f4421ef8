//! Page-cache look-ahead (`get_batch.warmup_workers`): while the DT reads one local item, the next
//! few large ones are announced to the kernel (`posix_fadvise(WILLNEED)`), so disk reads overlap
//! with sending. Small items are skipped: the hint costs about as much as reading them.
use crate::item::{ItemError, ItemSpec, LocalReader, Prepared};
use crate::stats::{self, Stats};

/// Items smaller than this are not worth a hint.
const MIN_HINT_SIZE: u64 = 64 << 10;
/// Items hinted ahead per configured worker.
const AHEAD_PER_WORKER: usize = 4;

pub struct Warmup<'a> {
    lookahead: usize,
    next: usize,
    stats: &'a Stats,
}

impl<'a> Warmup<'a> {
    /// `workers` ≤ 0 disables look-ahead.
    pub fn new(workers: i64, stats: &'a Stats) -> Warmup<'a> {
        let lookahead = if workers > 0 {
            workers as usize * AHEAD_PER_WORKER
        } else {
            0
        };
        Warmup {
            lookahead,
            next: 0,
            stats,
        }
    }

    /// Called before reading item `k`: hints items `k+1 ..= k+lookahead` not hinted yet.
    pub fn ahead(
        &mut self,
        reader: &LocalReader,
        specs: &[ItemSpec],
        prepared: &[Result<Prepared, ItemError>],
        k: usize,
    ) {
        if self.lookahead == 0 {
            return;
        }
        let end = (k + 1 + self.lookahead).min(specs.len());
        self.next = self.next.max(k + 1);
        while self.next < end {
            let j = self.next;
            self.next += 1;
            let worth = prepared[j]
                .as_ref()
                .is_ok_and(|p| p.size >= MIN_HINT_SIZE && p.memory.is_none());
            if !worth {
                continue;
            }
            // Reuse the descriptor the stat phase kept, if any.
            let advice = rustix::fs::Advice::WillNeed;
            let advised = match prepared[j].as_ref().ok().and_then(|p| p.opened.as_ref()) {
                // A verified object is read from the page cache unhashed; pages the hint
                // brought in from the disk would not be hashed. Its read finds out itself.
                Some((handle, _)) if handle.is_verified() => continue,
                Some((handle, _)) => rustix::fs::fadvise(&handle.file, 0, None, advice),
                None => match reader.store.open_file(specs[j].bck, specs[j].objname) {
                    Some(file) => rustix::fs::fadvise(&file, 0, None, advice),
                    None => continue,
                },
            };
            if advised.is_ok() {
                stats::add(&self.stats.bewarm_done, 1);
            }
        }
    }
}
