//! Running the AuthN service (`moss authn`, and `moss local --auth` in-process) on the same
//! hardened accept loop (and TLS settings) as the cluster nodes.
use std::path::{Path, PathBuf};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The secret file AuthN and the proxy share, in the AuthN data directory.
pub const SECRET_FILE: &str = "authn.secret";

/// Options of an AuthN service.
#[derive(Debug, Clone)]
pub struct AuthnOptions {
    pub data_dir: PathBuf,
    /// The HS256 secret shared with the cluster; created when missing.
    pub secret_file: PathBuf,
    pub admin_name: String,
    /// Needed at the first start only (it becomes the admin's password).
    pub admin_pass: String,
}

impl AuthnOptions {
    /// Admin credentials from AIStore's variables (`AIS_AUTHN_SU_NAME`, default `admin`;
    /// `AIS_AUTHN_SU_PASS`), with `default_pass` when the password is not set.
    pub fn from_env(data_dir: &Path, default_pass: &str) -> AuthnOptions {
        AuthnOptions {
            data_dir: data_dir.to_path_buf(),
            secret_file: data_dir.join(SECRET_FILE),
            admin_name: std::env::var("AIS_AUTHN_SU_NAME").unwrap_or_else(|_| "admin".into()),
            admin_pass: std::env::var("AIS_AUTHN_SU_PASS").unwrap_or_else(|_| default_pass.into()),
        }
    }
}

/// A running AuthN service.
pub struct AuthnHandle {
    pub url: String,
    pub authn: std::sync::Arc<moss_authn::Authn>,
    pub task: JoinHandle<std::io::Result<()>>,
}

pub async fn start_authn(
    listener: TcpListener,
    opts: &AuthnOptions,
    tls: &crate::tls::NodeTls,
    cancel: CancellationToken,
) -> anyhow::Result<AuthnHandle> {
    std::fs::create_dir_all(&opts.data_dir)?;
    crate::intra::create_secret_file(&opts.secret_file)?;
    let key = moss_authn::TokenKey::from_file(&opts.secret_file)?;
    // Revocations go to the cluster's proxies: over TLS, trust what the nodes trust.
    let client = tls.intra_client()?;
    let authn = moss_authn::Authn::open(
        &opts.data_dir,
        key,
        &opts.admin_name,
        &opts.admin_pass,
        client,
    )?;
    let url = crate::node::advertised_url(&listener, None, tls.scheme())?;
    let router = moss_authn::router(authn.clone());
    tracing::info!(%url, "authn started");
    let task = tokio::spawn(crate::node::serve(
        listener,
        router,
        tls.server_config()?,
        cancel,
    ));
    Ok(AuthnHandle { url, authn, task })
}
