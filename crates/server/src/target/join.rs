//! Keeping a target in the cluster: registration with the proxy, then periodic keepalives; a
//! target the proxy forgot registers again, and a target that missed a push pulls the metadata.
use std::sync::Arc;
use std::time::Duration;

use moss_cluster::digest;
use moss_types::smap::{Snode, TARGET};

use super::Target;
use crate::node::{ClusterMeta, keepalive_says_stale};

/// Registers, then sends keepalives until shutdown.
pub async fn stay_registered(target: Arc<Target>) {
    let cancel = target.shared.cancel.clone();
    loop {
        if !register_until_done(&target).await {
            return;
        }
        loop {
            let interval = target.shared.config.load().keepalive.interval.0;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            match keepalive(&target).await {
                Keepalive::Ok => {}
                Keepalive::Forgotten => break,
                Keepalive::Unreachable(e) => tracing::debug!("keepalive failed: {e}"),
            }
        }
        tracing::info!(node = %target.shared.name, "proxy does not know this target; registering again");
        // The proxy has written this target's shares of running jobs off as lost; going on with
        // them after rejoining would do work that nobody accounts for.
        target.abort_jobs_of_a_dropped_member();
    }
}

enum Keepalive {
    Ok,
    Forgotten,
    Unreachable(String),
}

async fn keepalive(target: &Arc<Target>) -> Keepalive {
    let shared = &target.shared;
    let url = format!("{}/v1/cluster/keepalive/{}", target.proxy_url, shared.id);
    let response = match shared
        .intra(shared.client.post(url))
        .timeout(Duration::from_secs(3))
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Keepalive::Unreachable(e.to_string()),
    };
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Keepalive::Forgotten;
    }
    let Ok(reply) = response.json::<serde_json::Value>().await else {
        return Keepalive::Unreachable("unreadable keepalive reply".into());
    };
    if keepalive_says_stale(&reply, shared) {
        let url = format!("{}/v1/cluster?what=meta", target.proxy_url);
        match shared.intra(shared.client.get(url)).send().await {
            Ok(r) => match r.json::<ClusterMeta>().await {
                Ok(meta) => target.on_meta(&meta),
                Err(e) => return Keepalive::Unreachable(e.to_string()),
            },
            Err(e) => return Keepalive::Unreachable(e.to_string()),
        }
    }
    Keepalive::Ok
}

/// Retries registration until it succeeds (true) or the node shuts down (false).
async fn register_until_done(target: &Arc<Target>) -> bool {
    let shared = &target.shared;
    let me = Snode::new(&shared.id, TARGET, &shared.url, digest(&shared.id));
    let mut delay = Duration::from_millis(50);
    loop {
        let url = format!("{}/v1/cluster/autoreg", target.proxy_url);
        let attempt = shared
            .intra(shared.client.post(url))
            .json(&me)
            .timeout(Duration::from_secs(10))
            .send()
            .await;
        match attempt {
            Ok(r) if r.status().is_success() => match r.json::<ClusterMeta>().await {
                Ok(meta) => {
                    target.on_meta(&meta);
                    tracing::info!(node = %shared.name, smap = meta.smap.version, "joined the cluster");
                    return true;
                }
                Err(e) => tracing::warn!("unreadable registration reply: {e}"),
            },
            Ok(r) => {
                let status = r.status().as_u16();
                let why = r.json::<moss_types::ErrorBody>().await.unwrap_or_default();
                tracing::warn!(status, "registration refused: {}", why.message);
            }
            Err(e) => tracing::debug!("proxy unreachable: {e}"),
        }
        tokio::select! {
            _ = shared.cancel.cancelled() => return false,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
