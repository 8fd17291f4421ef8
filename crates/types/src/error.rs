use serde::{Deserialize, Serialize};

/// The JSON body of every error response (AIStore's `ErrHTTP`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: String,
    #[serde(default)]
    pub method: String,
    #[serde(default)]
    pub url_path: String,
    #[serde(default)]
    pub remote_addr: String,
    #[serde(default)]
    pub caller: String,
    #[serde(default)]
    pub node: String,
    #[serde(default)]
    pub status: u16,
}
