//! A disk walk on a blocking thread feeding async workers: what the walk picks goes through a
//! small channel in batches, so the walk waits while the workers are behind and memory stays
//! bounded by a few batches, whatever the bucket holds.
use futures::{Stream, StreamExt};
use moss_storage::StoreError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Batches in the channel at most.
const QUEUED_BATCHES: usize = 4;

/// Where a walk puts what it picks.
pub(crate) struct Batches<T> {
    batch: Vec<T>,
    size: usize,
    tx: mpsc::Sender<Vec<T>>,
    cancel: CancellationToken,
    open: bool,
}

impl<T> Batches<T> {
    /// Adds one item; `false` once the walk should stop (the job was cancelled, or its workers
    /// are gone).
    pub(crate) fn push(&mut self, item: T) -> bool {
        if !self.open {
            return false;
        }
        self.batch.push(item);
        if self.batch.len() >= self.size {
            let full = std::mem::replace(&mut self.batch, Vec::with_capacity(self.size));
            self.open = !self.cancel.is_cancelled() && self.tx.blocking_send(full).is_ok();
        }
        self.open
    }

    /// Whether the walk should go on.
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }
}

/// Runs `walk` on a blocking thread, `size` items to a batch; the items as a stream (it ends
/// when the walk does), and the walk's own outcome.
pub(crate) fn batched<T: Send + 'static>(
    cancel: CancellationToken,
    size: usize,
    walk: impl FnOnce(&mut Batches<T>) -> Result<(), StoreError> + Send + 'static,
) -> (
    impl Stream<Item = T> + Send + 'static,
    JoinHandle<Result<(), StoreError>>,
) {
    let (tx, rx) = mpsc::channel::<Vec<T>>(QUEUED_BATCHES);
    let walker = tokio::task::spawn_blocking(move || {
        let mut out = Batches {
            batch: Vec::with_capacity(size),
            size,
            tx,
            cancel,
            open: true,
        };
        walk(&mut out)?;
        if out.open && !out.batch.is_empty() {
            let _ = out.tx.blocking_send(out.batch);
        }
        Ok(())
    });
    let items = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|batch| (batch, rx))
    })
    .flat_map(futures::stream::iter);
    (items, walker)
}
