//! Rebalance: after the set of targets changes, move every object this target no longer owns to
//! its HRW owner, deleting the local copy only once the owner has it.
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use moss_types::Bck;

use super::Target;
use crate::http::{bucket_query, encode_path};
use crate::metrics::inc;

/// Objects moved concurrently.
const PARALLEL_MOVES: usize = 4;

/// Waits for cluster-map changes and rebalances after each (coalescing bursts of changes).
pub async fn run(target: Arc<Target>) {
    loop {
        tokio::select! {
            _ = target.shared.cancel.cancelled() => return,
            _ = target.rebalance_kick.notified() => {}
        }
        // Let a burst of joins settle before walking the disks.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let version = target.shared.smap.load().version;
        target
            .shared
            .rebalancing
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let outcome = rebalance_once(&target).await;
        target
            .shared
            .rebalancing
            .store(false, std::sync::atomic::Ordering::Relaxed);
        match outcome {
            Ok(0) => {}
            Ok(moved) => {
                tracing::info!(node = %target.shared.name, moved, smap = version, "rebalance done")
            }
            Err(e) => tracing::warn!(node = %target.shared.name, "rebalance incomplete: {e}"),
        }
    }
}

/// One pass over all local objects; returns how many were moved.
async fn rebalance_once(target: &Arc<Target>) -> anyhow::Result<usize> {
    let smap = target.shared.smap.load_full();
    if smap.tmap.len() < 2 || !smap.tmap.contains_key(&target.shared.id) {
        return Ok(0);
    }
    let bmd = target.shared.bmd.load_full();
    let store = target.store.clone();
    let id = target.shared.id.clone();
    let misplaced: Vec<(Bck, String, String)> = tokio::task::spawn_blocking(move || {
        let mut found = Vec::new();
        for bck in store.buckets_on_disk() {
            if bmd.get(&bck).is_none() {
                continue;
            }
            let _ = store.walk_bucket(&bck, |objname, _| {
                if let Some(owner) = moss_cluster::owner_of_object(&smap, &bck, objname)
                    && owner.daemon_id != id
                {
                    found.push((bck.clone(), objname.to_string(), owner.url().to_string()));
                }
            });
        }
        found
    })
    .await?;
    let moves = futures::stream::iter(misplaced)
        .map(|(bck, objname, owner_url)| {
            let target = target.clone();
            async move { move_one(&target, &bck, &objname, &owner_url).await.is_ok() }
        })
        .buffer_unordered(PARALLEL_MOVES);
    let moved = moves.filter(|ok| futures::future::ready(*ok)).count().await;
    Ok(moved)
}

async fn move_one(
    target: &Arc<Target>,
    bck: &Bck,
    objname: &str,
    owner_url: &str,
) -> anyhow::Result<()> {
    if target.shared.cancel.is_cancelled() {
        anyhow::bail!("shutting down");
    }
    let store = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    let data = tokio::task::spawn_blocking(move || {
        store
            .open_object(&b, &name)
            .and_then(|h| h.read_all_verified())
    })
    .await??;
    let url = format!(
        "{owner_url}/v1/internal/objects/{}/{}?{}&rebalance=true",
        bck.name,
        encode_path(objname),
        bucket_query(bck)
    );
    let response = target
        .shared
        .intra(target.shared.client.put(url))
        .body(data)
        .send()
        .await?;
    if !response.status().is_success() {
        anyhow::bail!("owner refused {objname}: {}", response.status());
    }
    let store = target.store.clone();
    let (b, name) = (bck.clone(), objname.to_string());
    tokio::task::spawn_blocking(move || store.delete(&b, &name)).await??;
    inc(&target.metrics.rebalance_moved_count, 1);
    Ok(())
}
