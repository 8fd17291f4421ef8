//! AuthN tokens: the JWT claims AIStore's AuthN issues (`sub`, `exp`, `admin`, `clusters`,
//! `buckets`), signed HS256 with a secret the AuthN service and the cluster share, and the
//! permission bits they grant.
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use moss_types::Bck;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// AIStore's access bits (`apc.AccessAttrs`), as the SDK's `AccessAttr` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access(pub u64);

impl Access {
    pub const GET: Access = Access(1 << 0);
    pub const OBJ_HEAD: Access = Access(1 << 1);
    pub const PUT: Access = Access(1 << 2);
    pub const APPEND: Access = Access(1 << 3);
    pub const OBJ_DELETE: Access = Access(1 << 4);
    pub const OBJ_MOVE: Access = Access(1 << 5);
    pub const PROMOTE: Access = Access(1 << 6);
    pub const OBJ_UPDATE: Access = Access(1 << 7);
    pub const BCK_HEAD: Access = Access(1 << 8);
    pub const OBJ_LIST: Access = Access(1 << 9);
    pub const PATCH: Access = Access(1 << 10);
    pub const BCK_SET_ACL: Access = Access(1 << 11);
    pub const LIST_BUCKETS: Access = Access(1 << 12);
    pub const SHOW_CLUSTER: Access = Access(1 << 13);
    pub const CREATE_BUCKET: Access = Access(1 << 14);
    pub const DESTROY_BUCKET: Access = Access(1 << 15);
    pub const MOVE_BUCKET: Access = Access(1 << 16);
    pub const ADMIN: Access = Access(1 << 17);

    pub const RO: Access =
        Access(Self::GET.0 | Self::OBJ_HEAD.0 | Self::BCK_HEAD.0 | Self::OBJ_LIST.0);
    pub const RW: Access =
        Access(Self::RO.0 | Self::PUT.0 | Self::APPEND.0 | Self::OBJ_DELETE.0 | Self::OBJ_MOVE.0);
    pub const CLUSTER_RO: Access = Access(Self::LIST_BUCKETS.0 | Self::SHOW_CLUSTER.0);
    pub const CLUSTER_RW: Access = Access(
        Self::CLUSTER_RO.0 | Self::CREATE_BUCKET.0 | Self::DESTROY_BUCKET.0 | Self::MOVE_BUCKET.0,
    );
    pub const BUCKET_ADMIN: Access =
        Access(Self::PATCH.0 | Self::BCK_SET_ACL.0 | Self::OBJ_UPDATE.0);
    pub const SU: Access = Access(
        Self::RW.0 | Self::PROMOTE.0 | Self::BUCKET_ADMIN.0 | Self::CLUSTER_RW.0 | Self::ADMIN.0,
    );

    /// True when every bit of `need` is granted.
    pub fn has(self, need: Access) -> bool {
        self.0 & need.0 == need.0
    }

    /// The names of the granted bits (`GET,PUT`), for error messages.
    pub fn describe(self) -> String {
        const NAMES: [&str; 18] = [
            "GET",
            "HEAD-OBJECT",
            "PUT",
            "APPEND",
            "DELETE-OBJECT",
            "MOVE-OBJECT",
            "PROMOTE",
            "UPDATE-OBJECT",
            "HEAD-BUCKET",
            "LIST-OBJECTS",
            "PATCH",
            "SET-BUCKET-ACL",
            "LIST-BUCKETS",
            "SHOW-CLUSTER",
            "CREATE-BUCKET",
            "DESTROY-BUCKET",
            "MOVE-BUCKET",
            "ADMIN",
        ];
        let names: Vec<&str> = NAMES
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.0 & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect();
        names.join(",")
    }
}

/// On the wire a permission is a decimal string (`"perm": "1023"`); a number is accepted too.
impl Serialize for Access {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.to_string())
    }
}

impl<'de> Deserialize<'de> for Access {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Access, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Num(u64),
            Text(String),
        }
        match Wire::deserialize(d)? {
            Wire::Num(n) => Ok(Access(n)),
            Wire::Text(t) if t.is_empty() => Ok(Access(0)),
            Wire::Text(t) => t
                .parse()
                .map(Access)
                .map_err(|_| serde::de::Error::custom(format!("invalid permission {t:?}"))),
        }
    }
}

/// Permissions on one cluster (its id is the cluster map's uuid).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterAcl {
    pub id: String,
    pub perm: Access,
}

/// Permissions on one bucket; its namespace's uuid names the cluster (empty: any cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAcl {
    pub bck: Bck,
    pub perm: Access,
}

/// What a token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// Expiry, Unix seconds.
    pub exp: u64,
    #[serde(default)]
    pub iat: u64,
    /// A random id, so that two logins in the same second get distinct tokens (revoking one
    /// must not revoke the other).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub jti: String,
    #[serde(default)]
    pub admin: bool,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub clusters: Vec<ClusterAcl>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub buckets: Vec<BucketAcl>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

impl Claims {
    /// The bits this token grants on the cluster `cluster` as a whole.
    pub fn cluster_access(&self, cluster: &str) -> Access {
        if self.admin {
            return Access::SU;
        }
        Access(
            self.clusters
                .iter()
                .filter(|acl| acl.id == cluster)
                .fold(0, |bits, acl| bits | acl.perm.0),
        )
    }

    /// The bits this token grants on bucket `bck` of cluster `cluster`: a bucket's own entry
    /// wins; without one, the cluster-wide bits apply.
    pub fn bucket_access(&self, cluster: &str, bck: &Bck) -> Access {
        if self.admin {
            return Access::SU;
        }
        let own: Vec<&BucketAcl> = self
            .buckets
            .iter()
            .filter(|acl| {
                acl.bck.name == bck.name
                    && acl.bck.provider == bck.provider
                    && acl.bck.namespace.name == bck.namespace.name
                    && (acl.bck.namespace.uuid.is_empty() || acl.bck.namespace.uuid == cluster)
            })
            .collect();
        if own.is_empty() {
            return self.cluster_access(cluster);
        }
        Access(own.iter().fold(0, |bits, acl| bits | acl.perm.0))
    }
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token expired")]
    Expired,
    #[error("invalid token: {0}")]
    Invalid(String),
    #[error("token revoked")]
    Revoked,
}

/// The shared HS256 secret: signs tokens (AuthN) and verifies them (cluster nodes).
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Shortest secret accepted: HS256 wants at least as many bytes as its hash.
pub const MIN_SECRET_LEN: usize = 32;

impl TokenKey {
    pub fn new(secret: &[u8]) -> Result<TokenKey, String> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(format!(
                "the AuthN secret must be at least {MIN_SECRET_LEN} bytes (got {})",
                secret.len()
            ));
        }
        let encoding = EncodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        let decoding = DecodingKey::from_secret(secret).map_err(|e| e.to_string())?;
        // Only HS256: a token naming any other algorithm (`none` included) is refused before
        // its signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(TokenKey {
            encoding,
            decoding,
            validation,
        })
    }

    /// Reads the secret from a file (its bytes, surrounding whitespace trimmed).
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<TokenKey> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("read the AuthN secret {}: {e}", path.display()))?;
        TokenKey::new(text.trim().as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// Checks the signature, the algorithm and the expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        match jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(e) => Err(match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::InvalidSignature => TokenError::Invalid("signature mismatch".into()),
                ErrorKind::InvalidAlgorithm => {
                    TokenError::Invalid("signing algorithm is not HS256".into())
                }
                _ => TokenError::Invalid(e.to_string()),
            }),
        }
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Extracts the token of an `Authorization: Bearer <token>` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(&[7u8; 32]).unwrap()
    }

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "alice".into(),
            exp,
            iat: 0,
            jti: String::new(),
            admin: false,
            clusters: vec![ClusterAcl {
                id: "C1".into(),
                perm: Access::CLUSTER_RO,
            }],
            buckets: vec![BucketAcl {
                bck: Bck::ais("a"),
                perm: Access::RO,
            }],
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let token = key().issue(&claims(unix_now() + 60)).unwrap();
        assert_eq!(key().verify(&token).unwrap().sub, "alice");
        let other = TokenKey::new(&[8u8; 32]).unwrap();
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid(_))));
        // Flip a payload byte: the signature no longer matches.
        let mut parts: Vec<String> = token.split('.').map(String::from).collect();
        parts[1] = parts[1].replacen('e', "f", 1);
        assert!(matches!(
            key().verify(&parts.join(".")),
            Err(TokenError::Invalid(_))
        ));
        let expired = key().issue(&claims(unix_now() - 1)).unwrap();
        assert_eq!(key().verify(&expired), Err(TokenError::Expired));
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let encode = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let header = encode(br#"{"alg":"none","typ":"JWT"}"#);
        let body = encode(
            serde_json::to_string(&Claims {
                admin: true,
                ..claims(unix_now() + 60)
            })
            .unwrap()
            .as_bytes(),
        );
        let forged = format!("{header}.{body}.");
        assert!(matches!(key().verify(&forged), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn bucket_entries_override_cluster_bits() {
        let c = claims(0);
        assert!(c.bucket_access("C1", &Bck::ais("a")).has(Access::GET));
        assert!(!c.bucket_access("C1", &Bck::ais("a")).has(Access::PUT));
        // No entry for b: the cluster bits (no GET) apply.
        assert!(!c.bucket_access("C1", &Bck::ais("b")).has(Access::GET));
        assert!(c.cluster_access("C1").has(Access::LIST_BUCKETS));
        assert!(!c.cluster_access("C2").has(Access::LIST_BUCKETS));
        let admin = Claims { admin: true, ..c };
        assert!(admin.bucket_access("C9", &Bck::ais("z")).has(Access::ADMIN));
        let wire: Access = serde_json::from_str("\"1023\"").unwrap();
        assert_eq!(wire, Access(1023));
        assert_eq!(serde_json::to_string(&Access(5)).unwrap(), "\"5\"");
    }
}
