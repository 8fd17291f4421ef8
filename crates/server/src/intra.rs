//! Intra-cluster authentication. The proxy creates a cluster secret at its first start
//! (`<proxy data>/cluster.secret`, 32 random bytes as hex, mode 0600); targets are given the file
//! (`--cluster-secret-file`, `moss local` does it by itself). Every node-to-node call carries
//! `Ais-Intra-Auth: <unix seconds>.<HMAC-SHA256(secret, "<caller id>|<seconds>")>`, and nodes
//! refuse internal calls without a valid one made within the last [`MAX_SKEW`]: knowing a node's
//! id (it is in the public cluster map) is no longer enough to act as that node.
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::hmac;

/// File of the cluster secret in the proxy's data directory.
pub const SECRET_FILE: &str = "cluster.secret";
/// Clock difference (and age) a token may have.
pub const MAX_SKEW: Duration = Duration::from_secs(300);

/// The cluster secret, ready to sign and verify.
pub struct ClusterKey {
    key: hmac::Key,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| text.get(2 * i..2 * i + 2))
        .filter_map(|h| u8::from_str_radix(h, 16).ok())
        .collect()
}

/// Creates `path` holding 256 random bits as 64 hex digits (mode 0600), unless it exists.
pub fn create_secret_file(path: &Path) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let secret: [u8; 32] = rand::random();
    moss_types::fsio::write_atomic(path, hex(&secret).as_bytes(), 0o600)?;
    Ok(())
}

/// SHA-256 of a request body, hex (what a signed GetBatch redirect binds).
pub fn body_digest(body: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, body).as_ref())
}

impl ClusterKey {
    /// From the secret file's text (64 hex digits).
    pub fn parse(text: &str) -> Result<ClusterKey, String> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("a cluster secret is 64 hex digits".into());
        }
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        Ok(ClusterKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, &bytes),
        })
    }

    /// Reads the secret file.
    pub fn load(path: &Path) -> anyhow::Result<ClusterKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read the cluster secret {}: {e}", path.display()))?;
        ClusterKey::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// Reads the secret file, creating it (owner-only) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> anyhow::Result<ClusterKey> {
        create_secret_file(path)?;
        ClusterKey::load(path)
    }

    /// A token for a call from `caller`, now.
    pub fn token(&self, caller: &str) -> String {
        self.token_at(caller, unix_secs())
    }

    fn token_at(&self, caller: &str, secs: u64) -> String {
        let tag = hmac::sign(&self.key, format!("{caller}|{secs}").as_bytes());
        format!("{secs}.{}", hex(tag.as_ref()))
    }

    /// The signature of a redirect: binds the method, path, query (markers included) and the
    /// digest of the body the proxy checked, so a target can tell that the proxy authorized
    /// exactly this request.
    pub fn sign_redirect(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body_digest: &str,
    ) -> String {
        let text = format!("redirect|{method}|{path}|{query}|{body_digest}");
        hex(hmac::sign(&self.key, text.as_bytes()).as_ref())
    }

    pub fn verify_redirect(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body_digest: &str,
        sig: &str,
    ) -> bool {
        let text = format!("redirect|{method}|{path}|{query}|{body_digest}");
        hmac::verify(&self.key, text.as_bytes(), &unhex(sig)).is_ok()
    }

    /// Checks a token presented by `caller`.
    pub fn verify(&self, caller: &str, token: &str) -> Result<(), String> {
        let (secs, tag) = token
            .split_once('.')
            .ok_or_else(|| "malformed intra-cluster token".to_string())?;
        let secs: u64 = secs
            .parse()
            .map_err(|_| "malformed intra-cluster token".to_string())?;
        if unix_secs().abs_diff(secs) > MAX_SKEW.as_secs() {
            return Err(
                "expired intra-cluster token (or clocks apart by more than 5 minutes)".into(),
            );
        }
        hmac::verify(
            &self.key,
            format!("{caller}|{secs}").as_bytes(),
            &unhex(tag),
        )
        .map_err(|_| "invalid intra-cluster token".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_only_for_their_caller_key_and_time() {
        let key = ClusterKey::parse(&"ab".repeat(32)).unwrap();
        let other = ClusterKey::parse(&"cd".repeat(32)).unwrap();
        let token = key.token("t1");
        key.verify("t1", &token).unwrap();
        assert!(key.verify("t2", &token).is_err());
        assert!(other.verify("t1", &token).is_err());
        assert!(key.verify("t1", "garbage").is_err());
        let old = key.token_at("t1", unix_secs() - 3600);
        assert!(key.verify("t1", &old).unwrap_err().contains("expired"));
        assert!(ClusterKey::parse("short").is_err());
    }
}
