//! The AuthN database: users (argon2 password hashes), roles, registered clusters and revoked
//! tokens, kept in one JSON file that every change rewrites atomically (small by nature: people
//! and roles, not objects).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use serde::{Deserialize, Serialize};

use crate::claims::{BucketAcl, ClusterAcl};

/// A role: a named set of permissions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    #[serde(default)]
    pub desc: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub clusters: Vec<ClusterAcl>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub buckets: Vec<BucketAcl>,
    #[serde(default)]
    pub admin: bool,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// A stored user: the password only as an argon2id PHC string.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub pass_hash: String,
    /// Role names.
    pub roles: Vec<String>,
}

/// A cluster known to AuthN: tokens name it by `id` (its cluster map uuid); revocations are
/// pushed to its `urls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    pub id: String,
    #[serde(default)]
    pub alias: String,
    #[serde(default)]
    pub urls: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Db {
    pub users: BTreeMap<String, User>,
    pub roles: BTreeMap<String, Role>,
    pub clusters: BTreeMap<String, Cluster>,
    /// Revoked tokens and their expiry (Unix seconds): kept until they would have expired.
    pub revoked: BTreeMap<String, u64>,
}

/// The name of the database file in the AuthN data directory.
pub const DB_FILE: &str = "authn.json";
/// The role every first start creates and gives the admin user.
pub const ADMIN_ROLE: &str = "Admin";

pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("hash password: {e}"))
}

pub fn password_matches(password: &str, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), phc)
        .is_ok()
}

impl Db {
    /// Loads the database, or creates one holding the admin user `admin_name`/`admin_pass`.
    pub fn open(dir: &Path, admin_name: &str, admin_pass: &str) -> anyhow::Result<(Db, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(DB_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let db = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("parse {}: {e}", path.display()))?;
                Ok((db, path))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                anyhow::ensure!(
                    !admin_pass.is_empty(),
                    "first start of AuthN: set the admin password (AIS_AUTHN_SU_PASS)"
                );
                let mut db = Db::default();
                db.roles.insert(
                    ADMIN_ROLE.into(),
                    Role {
                        name: ADMIN_ROLE.into(),
                        desc: "AuthN administrator".into(),
                        clusters: Vec::new(),
                        buckets: Vec::new(),
                        admin: true,
                    },
                );
                db.users.insert(
                    admin_name.into(),
                    User {
                        id: admin_name.into(),
                        pass_hash: hash_password(admin_pass).map_err(anyhow::Error::msg)?,
                        roles: vec![ADMIN_ROLE.into()],
                    },
                );
                db.save(&path)?;
                Ok((db, path))
            }
            Err(e) => Err(anyhow::anyhow!("read {}: {e}", path.display())),
        }
    }

    /// Writes the whole database: temporary file, fsync, rename, fsync of the directory.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self)?;
        moss_types::fsio::write_atomic(path, &bytes, 0o600)
    }

    /// The roles of a user, as stored (unknown names are skipped).
    pub fn roles_of(&self, user: &User) -> Vec<Role> {
        user.roles
            .iter()
            .filter_map(|name| self.roles.get(name).cloned())
            .collect()
    }

    /// Forgets revocations of tokens that have expired anyway.
    pub fn prune_revoked(&mut self, now: u64) {
        self.revoked.retain(|_, exp| *exp >= now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_creates_the_admin_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let (db, path) = Db::open(dir.path(), "admin", "s3cret").unwrap();
        let admin = &db.users["admin"];
        assert!(admin.pass_hash.starts_with("$argon2id$"));
        assert!(password_matches("s3cret", &admin.pass_hash));
        assert!(!password_matches("wrong", &admin.pass_hash));
        assert!(db.roles_of(admin)[0].admin);
        let (again, _) = Db::open(dir.path(), "admin", "other").unwrap();
        assert!(password_matches("s3cret", &again.users["admin"].pass_hash));
        assert!(path.exists());
        assert!(Db::open(tempfile::tempdir().unwrap().path(), "admin", "").is_err());
    }
}
