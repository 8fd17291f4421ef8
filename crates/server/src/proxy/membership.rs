//! Cluster membership on the proxy: registration, keepalives, dropping silent targets, and
//! pushing metadata (metasync) to every target.
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::Response;
use futures::future::join_all;
use moss_cluster::digest;
use moss_types::headers;
use moss_types::smap::{Snode, TARGET};

use super::{CONTROL_BODY_LIMIT, Proxy};
use crate::http::{ApiError, Query, json_response, read_body};
use crate::node::ClusterMeta;

/// How long one metasync push or health probe may take.
const PUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a fan-out waiting on a target checks whether the target is still in the map.
const MEMBERSHIP_POLL: Duration = Duration::from_millis(100);

/// Upper bound for one target's answer to a fan-out call (list objects). Well under the SDK's 20 s
/// read timeout, so the client gets our 503 instead of its own timeout; a target that hangs is
/// normally dropped from the map (and the wait ended) much earlier, after `keepalive.timeout`.
pub const FANOUT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a fan-out stopped waiting for a target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abandoned {
    /// The proxy removed the target from the cluster map (it missed keepalives).
    LeftCluster,
    /// No answer within the limit.
    TimedOut(Duration),
}

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Abandoned::LeftCluster => {
                write!(f, "stopped answering and was removed from the cluster map")
            }
            Abandoned::TimedOut(limit) => write!(f, "did not answer within {limit:?}"),
        }
    }
}

/// Runs `call` to `target` until it completes, the target leaves the cluster map (the same
/// registration: id and URL), or `limit` passes — whichever comes first. A hung target (e.g.
/// SIGSTOPped) still accepts connections, so without this a caller waits for the whole request
/// timeout even after the proxy has given the target up.
pub async fn while_member<F: std::future::Future>(
    proxy: &Proxy,
    target: &Snode,
    limit: Duration,
    call: F,
) -> Result<F::Output, Abandoned> {
    let still_member = || {
        proxy
            .shared
            .smap
            .load()
            .tmap
            .get(&target.daemon_id)
            .is_some_and(|t| t.url() == target.url())
    };
    let left = async {
        loop {
            tokio::time::sleep(MEMBERSHIP_POLL).await;
            if !still_member() {
                return;
            }
        }
    };
    tokio::select! {
        out = call => Ok(out),
        _ = left => Err(Abandoned::LeftCluster),
        _ = tokio::time::sleep(limit) => Err(Abandoned::TimedOut(limit)),
    }
}

/// `POST /v1/cluster/autoreg`: adds (or re-adds) a target and answers with the cluster metadata.
pub async fn register(proxy: &Arc<Proxy>, req: Request) -> Result<Response, ApiError> {
    // Only a holder of the cluster secret joins, and only as itself.
    let caller = proxy.shared.verify_intra(req.headers())?.to_string();
    let body = read_body(req.into_body(), CONTROL_BODY_LIMIT).await?;
    let mut node: Snode = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid node registration: {e}")))?;
    if node.daemon_id != caller {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!(
                "registration of {:?} signed by {caller:?}: a node registers only itself",
                node.daemon_id
            ),
        ));
    }
    let id_ok = !node.daemon_id.is_empty()
        && node.daemon_id.len() <= 64
        && node
            .daemon_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok || node.daemon_type != TARGET || node.url().is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid node registration: id {:?}, type {:?}, url {:?}",
            node.daemon_id,
            node.daemon_type,
            node.url()
        )));
    }
    node.id_digest = digest(&node.daemon_id);
    proxy
        .last_seen
        .lock()
        .map_err(poisoned)?
        .insert(node.daemon_id.clone(), Instant::now());
    let joined = node.display();
    proxy
        .modify(|meta| {
            // A new node on the URL of an old one means the old one is gone.
            meta.smap
                .tmap
                .retain(|id, t| id == &node.daemon_id || t.url() != node.url());
            meta.smap.tmap.insert(node.daemon_id.clone(), node);
            Ok(())
        })
        .await?;
    tracing::info!(node = %joined, "target registered");
    Ok(json_response(&proxy.shared.meta()))
}

/// `POST /v1/cluster/keepalive/<id>`: 404 for unknown targets (they re-register), else the current
/// Smap version so a lagging target can catch up.
pub fn keepalive(
    proxy: &Proxy,
    id: &str,
    headers: &axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let caller = proxy.shared.verify_intra(headers)?;
    if caller != id {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            format!("keepalive for t[{id}] signed by {caller:?}: a node speaks only for itself"),
        ));
    }
    let smap = proxy.shared.smap.load();
    if !smap.tmap.contains_key(id) {
        return Err(ApiError::not_found(format!(
            "node t[{id}] is not in the cluster map"
        )));
    }
    proxy
        .last_seen
        .lock()
        .map_err(poisoned)?
        .insert(id.to_string(), Instant::now());
    let versions = serde_json::json!({
        "smap": smap.version,
        "bmd": proxy.shared.bmd.load().version,
        "config": proxy.shared.config.load().config_version,
    });
    Ok(json_response(&versions))
}

/// `GET /v1/cluster?what=…`
pub async fn cluster_get(proxy: &Proxy, query: &Query, body: &[u8]) -> Result<Response, ApiError> {
    match query.str(headers::QP_WHAT) {
        "qryxstats" => super::jobs::qryxstats(proxy, body).await,
        "status" => super::jobs::status(proxy, body).await,
        "status_all" => super::jobs::status_all(proxy, body).await,
        "running_all" => super::jobs::running_all(proxy, body).await,
        "smap" => Ok(json_response(&**proxy.shared.smap.load())),
        "bmd" => Ok(json_response(&**proxy.shared.bmd.load())),
        "cluster_config" | "config" => Ok(json_response(&**proxy.shared.config.load())),
        "meta" => Ok(json_response(&proxy.shared.meta())),
        "getbatch" => getbatch_stats(proxy).await,
        other => Err(ApiError::bad_request(format!(
            "invalid what={other:?} (expecting smap, bmd, cluster_config, getbatch, qryxstats, status, status_all, running_all)"
        ))),
    }
}

/// Per-target GetBatch statistics, for `moss show job`.
async fn getbatch_stats(proxy: &Proxy) -> Result<Response, ApiError> {
    let smap = proxy.shared.smap.load_full();
    let calls = smap.tmap.values().map(|t| {
        let url = format!("{}/v1/internal/getbatch", t.url());
        let request = proxy
            .shared
            .intra(proxy.shared.client.get(url))
            .timeout(PUSH_TIMEOUT);
        async move {
            let stats = match request.send().await {
                Ok(r) if r.status().is_success() => r.json::<serde_json::Value>().await.ok(),
                _ => None,
            };
            (
                t.daemon_id.clone(),
                stats.unwrap_or(serde_json::Value::Null),
            )
        }
    });
    let rows: serde_json::Map<String, serde_json::Value> =
        join_all(calls).await.into_iter().collect();
    Ok(json_response(&rows))
}

/// Pushes metadata to every target (concurrently, bounded by a timeout each). A target that
/// misses a push catches up on its next keepalive.
pub async fn metasync(proxy: &Proxy, meta: &ClusterMeta) {
    let Ok(body) = serde_json::to_vec(meta) else {
        return;
    };
    let pushes = meta.smap.tmap.values().map(|t| {
        let request = proxy
            .shared
            .intra(proxy.shared.client.put(format!("{}/v1/metasync", t.url())))
            .timeout(PUSH_TIMEOUT)
            .header("content-type", "application/json")
            .body(body.clone());
        let name = t.display();
        async move {
            match request.send().await {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(node = %name, status = r.status().as_u16(), "metasync refused")
                }
                Err(e) => tracing::debug!(node = %name, "metasync failed: {e}"),
            }
        }
    });
    join_all(pushes).await;
}

/// Drops targets that stay silent past `keepalive.timeout` and then fail a health probe.
pub async fn track_keepalives(proxy: Arc<Proxy>) {
    loop {
        let config = proxy.shared.config.load_full();
        let (interval, timeout) = (config.keepalive.interval.0, config.keepalive.timeout.0);
        tokio::select! {
            _ = proxy.shared.cancel.cancelled() => return,
            _ = tokio::time::sleep(interval / 2) => {}
        }
        let silent: Vec<Snode> = {
            let Ok(seen) = proxy.last_seen.lock() else {
                return;
            };
            proxy
                .shared
                .smap
                .load()
                .tmap
                .values()
                .filter(|t| {
                    seen.get(&t.daemon_id)
                        .is_none_or(|at| at.elapsed() > timeout)
                })
                .cloned()
                .collect()
        };
        // A probe may take as long as the silence that prompted it: a target that is only slow
        // (an overloaded machine) must not be dropped, which would move its objects around.
        for target in silent {
            let probe = proxy
                .shared
                .intra(
                    proxy
                        .shared
                        .client
                        .get(format!("{}/v1/health", target.url())),
                )
                .timeout(timeout)
                .send()
                .await;
            let alive = probe.is_ok_and(|r| r.status() == StatusCode::OK);
            if alive {
                if let Ok(mut seen) = proxy.last_seen.lock() {
                    seen.insert(target.daemon_id.clone(), Instant::now());
                }
                continue;
            }
            tracing::warn!(node = %target.display(), "target missed keepalives and failed a health probe; removing it");
            let id = target.daemon_id.clone();
            let removed = proxy
                .modify(|meta| {
                    // Only remove the exact registration we probed (it may have re-registered).
                    if meta
                        .smap
                        .tmap
                        .get(&id)
                        .is_some_and(|t| t.url() == target.url())
                    {
                        meta.smap.tmap.remove(&id);
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = removed {
                tracing::warn!("failed to remove target {id}: {}", e.message);
            }
        }
    }
}

fn poisoned<T>(_: T) -> ApiError {
    ApiError::internal("internal lock poisoned")
}
