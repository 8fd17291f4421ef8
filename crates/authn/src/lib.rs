//! moss's AuthN: users, roles and clusters, and the JWTs that carry their permissions to the
//! cluster. The service speaks AIStore's AuthN API (what the SDK's `AuthNClient` calls); the
//! claims and their verification are shared with the cluster nodes that enforce them.
pub mod claims;
pub mod service;
pub mod store;

pub use claims::{Access, Claims, TokenError, TokenKey};
pub use service::{Authn, AuthnError, router};

/// Names of users, roles and clusters: 1–128 characters, no `/` or control characters.
fn validate_name(kind: &str, name: &str) -> Result<(), AuthnError> {
    let ok =
        !name.is_empty() && name.len() <= 128 && !name.chars().any(|c| c == '/' || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(AuthnError::BadRequest(format!(
            "invalid {kind} name {name:?} (1 to 128 characters, no '/')"
        )))
    }
}
