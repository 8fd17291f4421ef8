//! The AuthN HTTP API as the SDK's `aistore.sdk.authn` calls it: login (`POST /v1/users/<id>`),
//! users, roles, clusters and token revocation. Everything but login needs an admin token.
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Serialize};

use crate::claims::{Claims, TokenError, TokenKey, bearer, unix_now};
use crate::store::{Cluster, Db, Role, User, hash_password, password_matches};

/// Default lifetime of a token when the login does not ask for one.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Shortest and longest lifetimes a login may ask for (`expires_in`), as AIStore's AuthN.
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Failed logins of one user allowed before logins of that user are refused for a while.
pub const FREE_FAILURES: u32 = 5;
/// Longest lockout after repeated failed logins.
pub const MAX_LOCKOUT: Duration = Duration::from_secs(300);
/// Password hashes computed at once (each takes argon2's 19 MiB): bounds memory under a flood.
const HASHING_SLOTS: usize = 2;
const BODY_LIMIT: usize = 1 << 20;

/// Errors of the AuthN API, and their one mapping to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error("invalid credentials")]
    Credentials,
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Exists(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("too many failed logins for user {0:?}: retry in {1} s")]
    Locked(String, u64),
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for AuthnError {
    fn into_response(self) -> Response {
        let status = match &self {
            AuthnError::Credentials | AuthnError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            AuthnError::Forbidden(_) => StatusCode::FORBIDDEN,
            AuthnError::NotFound(_) => StatusCode::NOT_FOUND,
            AuthnError::Exists(_) => StatusCode::CONFLICT,
            AuthnError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthnError::Locked(..) => StatusCode::TOO_MANY_REQUESTS,
            AuthnError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!(error = %self, "authn request failed");
        }
        let body = serde_json::json!({ "message": self.to_string(), "status": status.as_u16() });
        let mut response = json(&body);
        *response.status_mut() = status;
        if let AuthnError::Locked(_, secs) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        response
    }
}

type Result<T> = std::result::Result<T, AuthnError>;

/// Consecutive failed logins of one user, and until when logins are refused.
#[derive(Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

/// The service's state.
pub struct Authn {
    key: TokenKey,
    db: Mutex<Db>,
    path: PathBuf,
    failures: Mutex<HashMap<String, Failures>>,
    hashing: tokio::sync::Semaphore,
    client: reqwest::Client,
}

impl Authn {
    /// Opens (or creates, with the admin user) the database under `dir`.
    pub fn open(
        dir: &std::path::Path,
        key: TokenKey,
        admin_name: &str,
        admin_pass: &str,
        client: reqwest::Client,
    ) -> anyhow::Result<Arc<Authn>> {
        let (db, path) = Db::open(dir, admin_name, admin_pass)?;
        Ok(Arc::new(Authn {
            key,
            db: Mutex::new(db),
            path,
            failures: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(HASHING_SLOTS),
            client,
        }))
    }

    fn db(&self) -> std::sync::MutexGuard<'_, Db> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a change and persists it; nothing changes in memory if the write fails.
    fn modify<T>(&self, change: impl FnOnce(&mut Db) -> Result<T>) -> Result<T> {
        let mut db = self.db();
        let mut next = db.clone();
        let out = change(&mut next)?;
        next.save(&self.path)
            .map_err(|e| AuthnError::Internal(format!("persist AuthN database: {e}")))?;
        *db = next;
        Ok(out)
    }

    /// The caller must hold a valid, unrevoked admin token.
    fn require_admin(&self, headers: &HeaderMap) -> Result<Claims> {
        let claims = self.caller(headers)?;
        if !claims.admin {
            return Err(AuthnError::Forbidden(format!(
                "user {:?} is not an administrator",
                claims.sub
            )));
        }
        Ok(claims)
    }

    fn caller(&self, headers: &HeaderMap) -> Result<Claims> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .ok_or_else(|| {
                AuthnError::Unauthorized("missing token (Authorization: Bearer)".into())
            })?;
        self.check(token)
    }

    fn check(&self, token: &str) -> Result<Claims> {
        let claims = self
            .key
            .verify(token)
            .map_err(|e| AuthnError::Unauthorized(e.to_string()))?;
        if self.db().revoked.contains_key(token) {
            return Err(AuthnError::Unauthorized(TokenError::Revoked.to_string()));
        }
        Ok(claims)
    }

    fn locked(&self, user: &str) -> Result<()> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = failures.get(user).and_then(|f| f.locked_until) {
            let now = Instant::now();
            if until > now {
                return Err(AuthnError::Locked(
                    user.into(),
                    (until - now).as_secs().max(1),
                ));
            }
        }
        Ok(())
    }

    fn record_login(&self, user: &str, ok: bool) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if ok {
            failures.remove(user);
            return;
        }
        if failures.len() > 100_000 {
            let now = Instant::now();
            failures.retain(|_, f| f.locked_until.is_some_and(|u| u > now));
        }
        let entry = failures.entry(user.to_string()).or_default();
        entry.count += 1;
        if entry.count >= FREE_FAILURES {
            let secs = 1u64 << (entry.count - FREE_FAILURES).min(16);
            let lock = Duration::from_secs(secs).min(MAX_LOCKOUT);
            entry.locked_until = Some(Instant::now() + lock);
            tracing::warn!(
                user,
                failures = entry.count,
                lock_secs = lock.as_secs(),
                "failed logins: user locked"
            );
        }
    }

    /// Checks a password and issues a token.
    async fn login(&self, user: &str, password: &str, ttl: Duration) -> Result<String> {
        self.locked(user)?;
        let stored = self.db().users.get(user).map(|u| u.pass_hash.clone());
        let ok = {
            let _slot = self
                .hashing
                .acquire()
                .await
                .map_err(|e| AuthnError::Internal(e.to_string()))?;
            let password = password.to_string();
            // An unknown user costs a hash too, so timing does not tell which users exist.
            let phc = stored.clone().unwrap_or_else(|| DUMMY_HASH.clone());
            tokio::task::spawn_blocking(move || password_matches(&password, &phc))
                .await
                .map_err(|e| AuthnError::Internal(e.to_string()))?
        };
        let ok = ok && stored.is_some();
        self.record_login(user, ok);
        if !ok {
            return Err(AuthnError::Credentials);
        }
        let claims = {
            let db = self.db();
            let record = db.users.get(user).ok_or(AuthnError::Credentials)?;
            let roles = db.roles_of(record);
            let now = unix_now();
            Claims {
                sub: user.to_string(),
                exp: now + ttl.as_secs().max(1),
                iat: now,
                jti: format!("{:032x}", rand::random::<u128>()),
                admin: roles.iter().any(|r| r.admin),
                clusters: roles.iter().flat_map(|r| r.clusters.clone()).collect(),
                buckets: roles.iter().flat_map(|r| r.buckets.clone()).collect(),
            }
        };
        self.key.issue(&claims).map_err(AuthnError::Internal)
    }

    /// Registers a cluster (what `POST /v1/clusters` does); pushes it the revocations it missed.
    pub fn register(self: &Arc<Self>, cluster: Cluster) -> Result<()> {
        crate::validate_name("cluster", &cluster.id)?;
        self.modify(|db| {
            let taken = db.clusters.contains_key(&cluster.id)
                || (!cluster.alias.is_empty()
                    && db.clusters.values().any(|c| c.alias == cluster.alias));
            if taken {
                return Err(AuthnError::Exists(format!(
                    "cluster {:?} is already registered",
                    cluster.id
                )));
            }
            db.clusters.insert(cluster.id.clone(), cluster.clone());
            Ok(())
        })?;
        let revoked: Vec<String> = self.db().revoked.keys().cloned().collect();
        if !revoked.is_empty() {
            for url in &cluster.urls {
                self.push_revoked(url.clone(), revoked.clone());
            }
        }
        tracing::info!(cluster = %cluster.id, alias = %cluster.alias, "cluster registered");
        Ok(())
    }

    /// Registers the cluster, or points its registration at `urls` (a local cluster restarted
    /// on other ports).
    pub fn register_or_update(self: &Arc<Self>, cluster: Cluster) -> Result<()> {
        let known = self.db().clusters.get(&cluster.id).cloned();
        match known {
            None => self.register(cluster),
            Some(known) if known.urls == cluster.urls => Ok(()),
            Some(_) => self.modify(|db| {
                if let Some(slot) = db.clusters.get_mut(&cluster.id) {
                    slot.urls = cluster.urls;
                }
                Ok(())
            }),
        }
    }

    /// Records a revocation and tells every registered cluster.
    fn revoke(self: &Arc<Self>, token: &str, claims: &Claims) -> Result<()> {
        let now = unix_now();
        self.modify(|db| {
            db.prune_revoked(now);
            db.revoked.insert(token.to_string(), claims.exp);
            Ok(())
        })?;
        let urls: Vec<String> = self
            .db()
            .clusters
            .values()
            .flat_map(|c| c.urls.clone())
            .collect();
        for url in urls {
            self.push_revoked(url, vec![token.to_string()]);
        }
        Ok(())
    }

    /// `DELETE <cluster>/v1/tokens {"tokens":[…]}`, in the background (a cluster that is down
    /// gets the whole list again when it is registered anew; failures are logged).
    fn push_revoked(self: &Arc<Self>, url: String, tokens: Vec<String>) {
        let client = self.client.clone();
        tokio::spawn(async move {
            let sent = client
                .delete(format!("{}/v1/tokens", url.trim_end_matches('/')))
                .json(&serde_json::json!({ "tokens": tokens, "version": "0" }))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => {
                    tracing::warn!(%url, status = %r.status(), "cluster refused token revocations")
                }
                Err(e) => tracing::warn!(%url, error = %e, "could not push token revocations"),
            }
        });
    }
}

static DUMMY_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("moss-no-such-user").unwrap_or_default());

/// The router of the AuthN API.
pub fn router(authn: Arc<Authn>) -> Router {
    Router::new()
        .route("/v1/users", get(list_users).post(add_user))
        .route(
            "/v1/users/{id}",
            post(login)
                .get(get_user)
                .put(update_user)
                .delete(delete_user),
        )
        .route("/v1/roles", get(list_roles).post(add_role))
        .route(
            "/v1/roles/{name}",
            get(get_role).put(update_role).delete(delete_role),
        )
        .route("/v1/clusters", get(list_clusters).post(add_cluster))
        .route(
            "/v1/clusters/{id}",
            get(get_cluster).put(update_cluster).delete(delete_cluster),
        )
        .route("/v1/tokens", delete(revoke_token))
        .route("/v1/health", get(|| async { StatusCode::OK }))
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(authn)
}

/// A 200 with a JSON body.
fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => AuthnError::Internal(format!("encode response: {e}")).into_response(),
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T> {
    serde_json::from_slice(body)
        .map_err(|e| AuthnError::BadRequest(format!("invalid request body: {e}")))
}

#[derive(Deserialize)]
struct LoginMsg {
    password: String,
    /// Nanoseconds, as the SDK sends it.
    #[serde(default)]
    expires_in: Option<u64>,
}

async fn login(
    State(authn): State<Arc<Authn>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response> {
    let msg: LoginMsg = parse(&body)?;
    let ttl = match msg.expires_in {
        None => DEFAULT_TOKEN_TTL,
        Some(0) => MAX_TOKEN_TTL,
        Some(ns) => {
            let ttl = Duration::from_nanos(ns);
            if ttl < MIN_TOKEN_TTL || ttl > MAX_TOKEN_TTL {
                return Err(AuthnError::BadRequest(format!(
                    "invalid expires_in {ttl:?}: expecting 1 minute to 90 days (0: 90 days)"
                )));
            }
            ttl
        }
    };
    let token = authn.login(&id, &msg.password, ttl).await?;
    Ok(json(&serde_json::json!({ "token": token })))
}

/// A user as the API shows it: roles in full, never the password.
#[derive(Serialize)]
struct UserView {
    id: String,
    roles: Vec<Role>,
}

fn view(db: &Db, user: &User) -> UserView {
    UserView {
        id: user.id.clone(),
        roles: db.roles_of(user),
    }
}

/// A user as the SDK sends it: `pass` and roles by (at least) name.
#[derive(Deserialize)]
struct UserMsg {
    #[serde(default)]
    id: String,
    #[serde(default, rename = "pass")]
    password: Option<String>,
    #[serde(default)]
    roles: Option<Vec<RoleRef>>,
}

#[derive(Deserialize)]
struct RoleRef {
    name: String,
}

fn user_not_found(id: &str) -> AuthnError {
    AuthnError::NotFound(format!("user {id:?} does not exist"))
}

fn role_names(db: &Db, roles: &[RoleRef]) -> Result<Vec<String>> {
    roles
        .iter()
        .map(|r| {
            if db.roles.contains_key(&r.name) {
                Ok(r.name.clone())
            } else {
                Err(AuthnError::NotFound(format!(
                    "role {:?} does not exist",
                    r.name
                )))
            }
        })
        .collect()
}

async fn hash(authn: &Authn, password: String) -> Result<String> {
    if password.trim().is_empty() {
        return Err(AuthnError::BadRequest("password must not be empty".into()));
    }
    let _slot = authn
        .hashing
        .acquire()
        .await
        .map_err(|e| AuthnError::Internal(e.to_string()))?;
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| AuthnError::Internal(e.to_string()))?
        .map_err(AuthnError::Internal)
}

async fn list_users(State(authn): State<Arc<Authn>>, headers: HeaderMap) -> Result<Response> {
    authn.require_admin(&headers)?;
    let db = authn.db();
    let map: HashMap<&String, UserView> = db.users.iter().map(|(k, u)| (k, view(&db, u))).collect();
    Ok(json(&map))
}

async fn get_user(
    State(authn): State<Arc<Authn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let db = authn.db();
    let user = db.users.get(&id).ok_or_else(|| user_not_found(&id))?;
    Ok(json(&view(&db, user)))
}

async fn add_user(
    State(authn): State<Arc<Authn>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let msg: UserMsg = parse(&body)?;
    crate::validate_name("user", &msg.id)?;
    let pass_hash = hash(&authn, msg.password.unwrap_or_default()).await?;
    authn.modify(|db| {
        if db.users.contains_key(&msg.id) {
            return Err(AuthnError::Exists(format!(
                "user {:?} already exists",
                msg.id
            )));
        }
        let roles = role_names(db, msg.roles.as_deref().unwrap_or_default())?;
        db.users.insert(
            msg.id.clone(),
            User {
                id: msg.id.clone(),
                pass_hash,
                roles,
            },
        );
        Ok(())
    })?;
    tracing::info!(user = %msg.id, "user added");
    Ok(StatusCode::OK.into_response())
}

async fn update_user(
    State(authn): State<Arc<Authn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let msg: UserMsg = parse(&body)?;
    let pass_hash = match msg.password {
        Some(p) if !p.is_empty() => Some(hash(&authn, p).await?),
        _ => None,
    };
    authn.modify(|db| {
        let roles = match &msg.roles {
            Some(roles) => Some(role_names(db, roles)?),
            None => None,
        };
        let user = db.users.get_mut(&id).ok_or_else(|| user_not_found(&id))?;
        if let Some(hash) = pass_hash {
            user.pass_hash = hash;
        }
        if let Some(roles) = roles {
            user.roles = roles;
        }
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

async fn delete_user(
    State(authn): State<Arc<Authn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let caller = authn.require_admin(&headers)?;
    if caller.sub == id {
        return Err(AuthnError::BadRequest(format!(
            "user {id:?} cannot delete itself"
        )));
    }
    authn.modify(|db| {
        db.users
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| user_not_found(&id))
    })?;
    Ok(StatusCode::OK.into_response())
}

fn role_not_found(name: &str) -> AuthnError {
    AuthnError::NotFound(format!("role {name:?} does not exist"))
}

async fn list_roles(State(authn): State<Arc<Authn>>, headers: HeaderMap) -> Result<Response> {
    authn.require_admin(&headers)?;
    let roles: Vec<Role> = authn.db().roles.values().cloned().collect();
    Ok(json(&roles))
}

async fn get_role(
    State(authn): State<Arc<Authn>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let role = authn
        .db()
        .roles
        .get(&name)
        .cloned()
        .ok_or_else(|| role_not_found(&name))?;
    Ok(json(&role))
}

async fn add_role(
    State(authn): State<Arc<Authn>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let role: Role = parse(&body)?;
    crate::validate_name("role", &role.name)?;
    authn.modify(|db| {
        if db.roles.contains_key(&role.name) {
            return Err(AuthnError::Exists(format!(
                "role {:?} already exists",
                role.name
            )));
        }
        db.roles.insert(role.name.clone(), role.clone());
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

async fn update_role(
    State(authn): State<Arc<Authn>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let mut role: Role = parse(&body)?;
    role.name = name.clone();
    authn.modify(|db| {
        let slot = db
            .roles
            .get_mut(&name)
            .ok_or_else(|| role_not_found(&name))?;
        *slot = role;
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

async fn delete_role(
    State(authn): State<Arc<Authn>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    authn.modify(|db| {
        db.roles
            .remove(&name)
            .ok_or_else(|| role_not_found(&name))?;
        for user in db.users.values_mut() {
            user.roles.retain(|r| *r != name);
        }
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

fn cluster_list<'a>(clusters: impl Iterator<Item = &'a Cluster>) -> Response {
    let map: HashMap<&str, &Cluster> = clusters.map(|c| (c.id.as_str(), c)).collect();
    json(&serde_json::json!({ "clusters": map }))
}

fn find_cluster<'a>(db: &'a Db, id_or_alias: &str) -> Result<&'a Cluster> {
    db.clusters
        .get(id_or_alias)
        .or_else(|| db.clusters.values().find(|c| c.alias == id_or_alias))
        .ok_or_else(|| AuthnError::NotFound(format!("cluster {id_or_alias:?} does not exist")))
}

async fn list_clusters(State(authn): State<Arc<Authn>>, headers: HeaderMap) -> Result<Response> {
    authn.require_admin(&headers)?;
    let db = authn.db();
    Ok(cluster_list(db.clusters.values()))
}

async fn get_cluster(
    State(authn): State<Arc<Authn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let db = authn.db();
    Ok(cluster_list(std::iter::once(find_cluster(&db, &id)?)))
}

async fn add_cluster(
    State(authn): State<Arc<Authn>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let cluster: Cluster = parse(&body)?;
    authn.register(cluster)?;
    Ok(StatusCode::OK.into_response())
}

async fn update_cluster(
    State(authn): State<Arc<Authn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    let update: Cluster = parse(&body)?;
    authn.modify(|db| {
        let key = find_cluster(db, &id)?.id.clone();
        let slot = db
            .clusters
            .get_mut(&key)
            .ok_or_else(|| AuthnError::NotFound(format!("cluster {id:?} does not exist")))?;
        if !update.alias.is_empty() {
            slot.alias = update.alias;
        }
        if !update.urls.is_empty() {
            slot.urls = update.urls;
        }
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

async fn delete_cluster(
    State(authn): State<Arc<Authn>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    authn.require_admin(&headers)?;
    authn.modify(|db| {
        let key = find_cluster(db, &id)?.id.clone();
        db.clusters.remove(&key);
        Ok(())
    })?;
    Ok(StatusCode::OK.into_response())
}

#[derive(Deserialize)]
struct TokenMsg {
    token: String,
}

/// `DELETE /v1/tokens {"token"}`: its holder (logout) or an admin revokes a token.
async fn revoke_token(
    State(authn): State<Arc<Authn>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let msg: TokenMsg = parse(&body)?;
    let caller = authn.caller(&headers)?;
    let target = authn.check(&msg.token)?;
    if !caller.admin && caller.sub != target.sub {
        return Err(AuthnError::Forbidden(
            "only an administrator or the token's holder can revoke it".into(),
        ));
    }
    authn.revoke(&msg.token, &target)?;
    tracing::info!(user = %target.sub, "token revoked");
    Ok(StatusCode::OK.into_response())
}
