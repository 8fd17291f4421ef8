//! Client authentication on the proxy: AuthN bearer tokens, revocations pushed by AuthN, and
//! the permission each API call needs. The proxy is the only enforcement point: it signs every
//! redirect it authorizes (method, path, query, and for GetBatch the body's digest) and targets
//! refuse, while auth is on, client requests without such a signature.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::{HeaderMap, Method, StatusCode, header};
use moss_authn::{Access, Claims, TokenError, TokenKey};
use moss_types::Bck;
use serde::Deserialize;

use crate::http::{ApiError, Query, url_bucket};
use crate::proxy::ProxyEndpoint;

const REVOKED_FILE: &str = "revoked.tokens.json";
/// Revocations held at most (each is a genuine, unexpired token, so this is only a backstop).
const MAX_REVOKED: usize = 1_000_000;

/// The token verifier of a proxy started with an AuthN secret.
pub struct ClusterAuth {
    key: TokenKey,
    /// Revoked tokens and their expiry (Unix seconds), persisted beside the cluster metadata.
    revoked: Mutex<HashMap<String, u64>>,
    path: PathBuf,
}

/// The verified caller of a request, left in its extensions for handlers that check more
/// (GetBatch checks every entry's bucket).
#[derive(Debug, Clone)]
pub struct Caller(pub Claims);

/// One permission a call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    Cluster(Access),
    Bucket(Bck, Access),
}

fn unauthorized(why: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, format!("unauthorized: {why}"))
        .with_header(header::WWW_AUTHENTICATE, "Bearer")
}

impl ClusterAuth {
    /// The verifier for `secret_file`, with revocations kept under `data_dir`.
    pub fn open(secret_file: &Path, data_dir: &Path) -> anyhow::Result<ClusterAuth> {
        let key = TokenKey::from_file(secret_file)?;
        let path = data_dir.join(REVOKED_FILE);
        let revoked = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("parse {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => return Err(anyhow::anyhow!("read {}: {e}", path.display())),
        };
        Ok(ClusterAuth {
            key,
            revoked: Mutex::new(revoked),
            path,
        })
    }

    fn revoked(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller's verified claims: 401 without a token, or with an expired, revoked, tampered
    /// or foreign one.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Claims, ApiError> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(moss_authn::claims::bearer)
            .ok_or_else(|| unauthorized("missing token (Authorization: Bearer <token>)"))?;
        let claims = self.key.verify(token).map_err(unauthorized)?;
        if self.revoked().contains_key(token) {
            return Err(unauthorized(TokenError::Revoked));
        }
        Ok(claims)
    }

    /// `DELETE /v1/tokens`: AuthN's revocations. Only tokens signed with the secret are kept
    /// (until they would have expired), so nobody can fill the list with made-up strings.
    pub fn revoke(&self, body: &[u8]) -> Result<usize, ApiError> {
        #[derive(Deserialize)]
        struct Revoked {
            #[serde(default)]
            tokens: Vec<String>,
            #[serde(default)]
            token: Option<String>,
        }
        let msg: Revoked = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid token revocation: {e}")))?;
        let now = moss_authn::claims::unix_now();
        let mut kept = 0;
        let snapshot = {
            let mut revoked = self.revoked();
            revoked.retain(|_, exp| *exp >= now);
            for token in msg.tokens.into_iter().chain(msg.token) {
                match self.key.verify(&token) {
                    Ok(claims) if revoked.len() < MAX_REVOKED => {
                        revoked.insert(token, claims.exp);
                        kept += 1;
                    }
                    Ok(_) => tracing::warn!("revocation list full; token not recorded"),
                    // Expired already, or not ours: nothing to remember.
                    Err(_) => {}
                }
            }
            serde_json::to_vec(&*revoked)
                .map_err(|e| ApiError::internal(format!("encode revocations: {e}")))?
        };
        crate::node::write_atomic(&self.path, &snapshot)
            .map_err(|e| ApiError::internal(format!("persist revocations: {e}")))?;
        tracing::info!(kept, "tokens revoked");
        Ok(kept)
    }
}

/// 403 unless `claims` grant every need on cluster `cluster`.
pub fn check(claims: &Claims, cluster: &str, needs: &[Need]) -> Result<(), ApiError> {
    for need in needs {
        let (granted, wanted, what) = match need {
            Need::Cluster(a) => (
                claims.cluster_access(cluster),
                *a,
                "the cluster".to_string(),
            ),
            Need::Bucket(bck, a) => (
                claims.bucket_access(cluster, bck),
                *a,
                format!("bucket \"{}\"", bck.cname()),
            ),
        };
        if !granted.has(wanted) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "access denied: user {:?} lacks {} on {what}",
                    claims.sub,
                    Access(wanted.0 & !granted.0).describe()
                ),
            ));
        }
    }
    Ok(())
}

/// The part of an action message that decides permissions.
#[derive(Debug, Default, Deserialize)]
pub struct ActionPeek {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub value: serde_json::Value,
}

/// True for endpoints whose permission depends on the action message in their body.
pub fn needs_action(endpoint: &ProxyEndpoint) -> bool {
    matches!(
        endpoint,
        ProxyEndpoint::BucketGet { .. }
            | ProxyEndpoint::BucketPost { .. }
            | ProxyEndpoint::BucketPut { .. }
            | ProxyEndpoint::BucketDelete { .. }
            | ProxyEndpoint::ClusterAction
    )
}

/// `None` for calls that take no client token: health, metrics, node-to-node calls (they
/// carry the cluster's own proof) and AuthN's revocations.
pub fn required(
    endpoint: &ProxyEndpoint,
    method: &Method,
    query: &Query,
    action: &ActionPeek,
) -> Result<Option<Vec<Need>>, ApiError> {
    use ProxyEndpoint as E;
    let bck_of = |name: &str| url_bucket(name, query);
    let on = |name: &str, access: Access| Ok::<_, ApiError>(Need::Bucket(bck_of(name)?, access));
    let cluster = |access: Access| Ok(Some(vec![Need::Cluster(access)]));
    match endpoint {
        E::Health | E::Metrics | E::Register | E::Keepalive { .. } | E::Tokens => Ok(None),
        E::Daemon | E::ReverseDaemon | E::ClusterGet => cluster(Access::SHOW_CLUSTER),
        E::SetConfig => cluster(Access::ADMIN),
        E::ClusterAction => cluster(Access::ADMIN),
        E::ListBuckets => cluster(Access::LIST_BUCKETS),
        E::BucketHead { bucket, .. } => Ok(Some(vec![on(bucket, Access::BCK_HEAD)?])),
        E::BucketPatch { bucket } => Ok(Some(vec![on(bucket, Access::PATCH)?])),
        E::Promote { bucket } => Ok(Some(vec![on(bucket, Access::PROMOTE)?])),
        E::BucketGet { bucket } => match action.action.as_str() {
            moss_types::jobs::SUMMARY => Ok(Some(vec![on(bucket, Access::BCK_HEAD)?])),
            _ => Ok(Some(vec![on(bucket, Access::OBJ_LIST)?])),
        },
        E::BucketPut { bucket } => {
            // archive: read the sources, write the shard (into `tobck` when named).
            let dst = destination(&action.value)?.map_or_else(|| bck_of(bucket), Ok)?;
            Ok(Some(vec![
                on(bucket, Access::GET)?,
                Need::Bucket(dst, Access::PUT),
            ]))
        }
        E::BucketPost { bucket } => {
            use moss_types::jobs as J;
            let needs = match action.action.as_str() {
                "create-bck" => vec![Need::Cluster(Access::CREATE_BUCKET)],
                J::COPY_BCK => {
                    let dst =
                        Bck::parse_uname(query.str("bck_to")).map_err(ApiError::bad_request)?;
                    vec![on(bucket, Access::GET)?, Need::Bucket(dst, Access::PUT)]
                }
                J::COPY_OBJECTS => {
                    let mut needs = vec![on(bucket, Access::GET)?];
                    if let Some(dst) = destination(&action.value)? {
                        needs.push(Need::Bucket(dst, Access::PUT));
                    }
                    needs
                }
                J::MOVE_BCK => vec![on(bucket, Access::MOVE_BUCKET)?],
                J::PREFETCH_OBJECTS => vec![on(bucket, Access::GET)?],
                _ => vec![Need::Cluster(Access::ADMIN)],
            };
            Ok(Some(needs))
        }
        E::BucketDelete { bucket } => {
            use moss_types::jobs as J;
            let needs = match action.action.as_str() {
                "destroy-bck" => vec![on(bucket, Access::DESTROY_BUCKET)?],
                J::DELETE_OBJECTS | J::EVICT_OBJECTS | J::EVICT_REMOTE_BCK => {
                    vec![on(bucket, Access::OBJ_DELETE)?]
                }
                _ => vec![on(bucket, Access::DESTROY_BUCKET)?],
            };
            Ok(Some(needs))
        }
        E::Object { bucket, .. } => {
            let access = match *method {
                Method::GET => Access::GET,
                Method::HEAD => Access::OBJ_HEAD,
                Method::PUT if query.has("appendty") => Access::APPEND,
                Method::PUT | Method::POST => Access::PUT,
                Method::DELETE => Access::OBJ_DELETE,
                Method::PATCH => Access::OBJ_UPDATE,
                _ => Access::ADMIN,
            };
            Ok(Some(vec![on(bucket, access)?]))
        }
        // Every entry's bucket is checked once the body is parsed (proxy/moss.rs).
        E::Moss { bucket } => match bucket {
            Some(name) => Ok(Some(vec![on(name, Access::GET)?])),
            None => Ok(Some(Vec::new())),
        },
    }
}

/// `value.tobck` of an archive or copy message, when named.
fn destination(value: &serde_json::Value) -> Result<Option<Bck>, ApiError> {
    match value.get("tobck") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => {
            let bck: moss_types::jobs::BckJson = serde_json::from_value(v.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid \"tobck\": {e}")))?;
            bck.to_bck().map_err(ApiError::bad_request)
        }
    }
}
