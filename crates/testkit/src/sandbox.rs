//! An in-process cluster: one proxy and N targets, each a real HTTP server on its own loopback
//! port, with data in a temporary directory.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use moss_server::local::{LocalCluster, LocalOptions};

use crate::Api;

/// Configures a sandbox.
pub struct SandboxBuilder {
    targets: usize,
    mountpaths: usize,
    dir: Option<PathBuf>,
    config: Vec<(String, String)>,
    cloud: moss_backend::CloudEnv,
    auth: bool,
}

impl SandboxBuilder {
    /// Runs AuthN too and requires tokens (admin `admin`/`admin`; `config` values are then
    /// not applicable: they would need a token).
    pub fn auth(mut self) -> SandboxBuilder {
        self.auth = true;
        self
    }

    pub fn targets(mut self, n: usize) -> SandboxBuilder {
        self.targets = n;
        self
    }

    /// Mountpaths per target (`target<i>/mp`, `mp1`, …; one by default).
    pub fn mountpaths(mut self, n: usize) -> SandboxBuilder {
        self.mountpaths = n;
        self
    }

    /// Reuses a data directory (to test restarts).
    pub fn data_dir(mut self, dir: PathBuf) -> SandboxBuilder {
        self.dir = Some(dir);
        self
    }

    /// A cluster config value set right after start.
    pub fn config(mut self, key: &str, value: &str) -> SandboxBuilder {
        self.config.push((key.to_string(), value.to_string()));
        self
    }

    /// The cloud credentials and endpoints every node uses (none by default: the test process's
    /// own environment is never read).
    pub fn cloud(mut self, env: moss_backend::CloudEnv) -> SandboxBuilder {
        self.cloud = env;
        self
    }

    pub async fn start(self) -> ClusterSandbox {
        crate::init_logs();
        let tempdir = tempfile::tempdir().unwrap();
        let data = self
            .dir
            .clone()
            .unwrap_or_else(|| tempdir.path().to_path_buf());
        let options = LocalOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            targets: self.targets,
            mountpaths: self.mountpaths,
            data,
            cloud: self.cloud.clone(),
            auth: self.auth,
            tls: false,
        };
        let cluster = LocalCluster::start(&options).await.unwrap();
        cluster.wait_ready(Duration::from_secs(20)).await.unwrap();
        let api = Api::new(&cluster.proxy.url);
        for (k, v) in &self.config {
            api.set_config(k, v).await;
        }
        ClusterSandbox {
            cluster: Some(cluster),
            api,
            _tempdir: tempdir,
            data_dir: options.data,
        }
    }
}

/// A running in-process cluster.
pub struct ClusterSandbox {
    pub cluster: Option<LocalCluster>,
    pub api: Api,
    pub data_dir: PathBuf,
    _tempdir: tempfile::TempDir,
}

impl ClusterSandbox {
    pub fn builder() -> SandboxBuilder {
        SandboxBuilder {
            targets: 3,
            mountpaths: 1,
            dir: None,
            config: Vec::new(),
            cloud: Default::default(),
            auth: false,
        }
    }

    pub fn endpoint(&self) -> &str {
        &self.api.endpoint
    }

    pub fn local(&self) -> &LocalCluster {
        self.cluster.as_ref().unwrap()
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        if let Some(cluster) = self.cluster.take() {
            cluster.shutdown(Duration::from_secs(5)).await;
        }
    }
}
