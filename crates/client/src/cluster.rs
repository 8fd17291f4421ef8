//! Cluster-level calls: the cluster map, the cluster configuration, GetBatch statistics.
use std::collections::BTreeMap;

use moss_types::config::ClusterConfig;
use moss_types::smap::Smap;
use reqwest::Method;

use crate::Client;
use crate::error::{Error, Result};
use crate::http::Call;

pub use moss_types::moss::GetBatchStats;

impl Client {
    /// The cluster map (`GET /v1/daemon?what=smap`).
    pub async fn smap(&self) -> Result<Smap> {
        self.json(Call::new(
            Method::GET,
            self.url("daemon", &[("what", "smap")]),
        ))
        .await
    }

    /// The cluster configuration as JSON, exactly as the server reports it.
    pub async fn cluster_config_json(&self) -> Result<serde_json::Value> {
        self.json(Call::new(
            Method::GET,
            self.url("cluster", &[("what", "cluster_config")]),
        ))
        .await
    }

    /// The cluster configuration, typed.
    pub async fn cluster_config(&self) -> Result<ClusterConfig> {
        let value = self.cluster_config_json().await?;
        serde_json::from_value(value).map_err(|e| Error::decode("GET /v1/cluster", e))
    }

    /// Sets dotted keys (`get_batch.max_soft_errs`, `10`) in one call; the server validates all
    /// of them and applies none on error (400 with its message).
    pub async fn set_cluster_config(&self, pairs: &[(String, String)]) -> Result<()> {
        if pairs.is_empty() {
            return Err(Error::InvalidRequest(
                "no configuration keys to set".to_string(),
            ));
        }
        let query: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for (key, _) in &query {
            let well_formed = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
            if !well_formed {
                return Err(Error::InvalidRequest(format!(
                    "invalid configuration key {key:?}"
                )));
            }
        }
        let call = Call::new(Method::PUT, self.url("cluster/set-config", &query));
        self.unit(call).await
    }

    /// A node's `GET /v1/daemon?…` answer through the proxy (`/v1/reverse/daemon` + `Ais-Node-Id`).
    async fn reverse_daemon(
        &self,
        node_id: &str,
        query: &[(&str, &str)],
    ) -> Result<reqwest::Response> {
        let value = reqwest::header::HeaderValue::from_str(node_id)
            .map_err(|_| Error::InvalidRequest(format!("invalid node id {node_id:?}")))?;
        let call = Call::new(Method::GET, self.url("reverse/daemon", query)).header(
            reqwest::header::HeaderName::from_static(moss_types::headers::NODE_ID),
            value,
        );
        self.execute(call).await
    }

    /// The current log of a node: `severity` `info` (everything from info up) or `error`
    /// (warnings and errors).
    pub async fn node_log(&self, node_id: &str, severity: &str) -> Result<String> {
        let what = format!("log of {node_id}");
        let response = self
            .reverse_daemon(node_id, &[("what", "log"), ("severity", severity)])
            .await?;
        response.text().await.map_err(|e| Error::transport(what, e))
    }

    /// A node's status and counters (AIStore's `node_status`, what the SDK's
    /// `get_performance()` returns per target).
    pub async fn node_status(&self, node_id: &str) -> Result<serde_json::Value> {
        let what = format!("status of {node_id}");
        let response = self
            .reverse_daemon(node_id, &[("what", "node_status")])
            .await?;
        let body = response
            .bytes()
            .await
            .map_err(|e| Error::transport(what.clone(), e))?;
        serde_json::from_slice(&body).map_err(|e| Error::decode(what, e))
    }

    /// GetBatch statistics of every target, keyed by target id; `None` for a target that did
    /// not answer.
    pub async fn getbatch_stats(&self) -> Result<BTreeMap<String, Option<GetBatchStats>>> {
        self.json(Call::new(
            Method::GET,
            self.url("cluster", &[("what", "getbatch")]),
        ))
        .await
    }
}
