//! TLS for nodes: the certificate a node serves HTTPS with (rustls with ring, PEM files), the CA
//! its intra-cluster client trusts, and the self-signed certificate `moss local --tls` makes.
//! The handshake itself runs in [`crate::node::serve`], under the accept loop's timeout and cap.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Certificate chain and private key of a node (PEM files).
#[derive(Debug, Clone)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A node's TLS settings.
#[derive(Debug, Clone, Default)]
pub struct NodeTls {
    /// What this node serves with; with it the node speaks HTTPS only, without it plain HTTP.
    pub identity: Option<Identity>,
    /// PEM file of the certificate(s) other nodes' certificates must chain to (for a self-signed
    /// certificate, the certificate itself); `None`: the system's roots.
    pub ca: Option<PathBuf>,
}

impl NodeTls {
    /// The scheme of the URLs this node advertises.
    pub fn scheme(&self) -> &'static str {
        if self.identity.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The rustls server configuration, when this node serves HTTPS.
    pub fn server_config(&self) -> anyhow::Result<Option<Arc<rustls::ServerConfig>>> {
        self.identity.as_ref().map(server_config).transpose()
    }

    /// The client for every call to another node, trusting [`NodeTls::ca`].
    pub fn intra_client(&self) -> anyhow::Result<reqwest::Client> {
        let trust = self.ca.as_deref().map(read_ca).transpose()?;
        crate::node::intra_client(trust)
    }
}

/// Loads a certificate chain and its key into a server configuration (HTTP/1.1 by ALPN).
pub fn server_config(identity: &Identity) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&identity.cert)
        .with_context(|| format!("read certificate {}", identity.cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse certificate {}", identity.cert.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no PEM certificate in {}",
        identity.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&identity.key)
        .with_context(|| format!("read private key {}", identity.key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choose TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "use certificate {} with key {}",
                identity.cert.display(),
                identity.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificates of a CA file, for a client to trust (and only them).
pub fn read_ca(path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path).with_context(|| format!("read CA file {}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("parse CA file {}", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no PEM certificate in {}",
        path.display()
    );
    Ok(certs)
}

/// Files of the self-signed certificate in a `moss local --tls` data directory.
pub const LOCAL_CERT: &str = "cert.pem";
pub const LOCAL_KEY: &str = "key.pem";

/// The certificate `moss local --tls` serves with: `<dir>/cert.pem` and `<dir>/key.pem`, reused
/// when both exist, else new ones for `hosts` (DNS names or IP addresses). `cert.pem` holds the
/// server certificate followed by the throw-away CA that signed it (whose key is not kept), so
/// the one file is both what the nodes serve and what clients trust: OpenSSL (the Python SDK)
/// accepts only a CA as a trust anchor, and rustls refuses a CA as a server certificate. The key
/// file is owner-only (0600).
pub fn ensure_self_signed(dir: &Path, hosts: &[String]) -> anyhow::Result<Identity> {
    let identity = Identity {
        cert: dir.join(LOCAL_CERT),
        key: dir.join(LOCAL_KEY),
    };
    if identity.cert.exists() && identity.key.exists() {
        return Ok(identity);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let ca_key = rcgen::KeyPair::generate().context("generate a CA key")?;
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).context("CA parameters")?;
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "moss local CA");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    let ca_cert = ca.self_signed(&ca_key).context("sign the CA certificate")?;
    let issuer = rcgen::Issuer::new(ca, &ca_key);

    let key = rcgen::KeyPair::generate().context("generate a TLS key")?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())
        .with_context(|| format!("certificate names {hosts:?}"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "moss local");
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .context("sign the TLS certificate")?;
    // The key first: a certificate without its key would be "reused" next time.
    moss_types::fsio::write_atomic(&identity.key, key.serialize_pem().as_bytes(), 0o600)
        .with_context(|| format!("write {}", identity.key.display()))?;
    let chain = format!("{}{}", cert.pem(), ca_cert.pem());
    crate::node::write_atomic(&identity.cert, chain.as_bytes())
        .with_context(|| format!("write {}", identity.cert.display()))?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_certificates_load_and_are_reused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let hosts = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let identity = ensure_self_signed(dir.path(), &hosts).unwrap();
        let mode = std::fs::metadata(&identity.key)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "key mode {mode:o}");
        let pem = std::fs::read_to_string(&identity.cert).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        server_config(&identity).unwrap();
        assert_eq!(read_ca(&identity.cert).unwrap().len(), 2);

        let again = ensure_self_signed(dir.path(), &hosts).unwrap();
        assert_eq!(std::fs::read_to_string(&again.cert).unwrap(), pem);
    }

    #[test]
    fn broken_files_are_reported_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let identity = Identity {
            cert: cert.clone(),
            key: dir.path().join("missing.pem"),
        };
        let err = format!("{:#}", server_config(&identity).unwrap_err());
        assert!(
            err.contains("no PEM certificate in") && err.contains("cert.pem"),
            "{err}"
        );
        let err = format!("{:#}", read_ca(&cert).unwrap_err());
        assert!(err.contains("no PEM certificate in"), "{err}");
    }
}
