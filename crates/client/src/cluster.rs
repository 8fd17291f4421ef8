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
