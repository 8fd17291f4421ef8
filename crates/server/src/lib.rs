//! The moss HTTP server: the proxy (gateway) and target (storage) roles, and `local`, which runs a
//! whole cluster of them in one process on loopback ports.
pub mod auth;
pub mod authn;
pub mod batch;
pub mod daemon;
pub mod http;
pub mod intra;
pub mod local;
pub mod metrics;
pub mod node;
pub mod proxy;
pub mod target;
pub mod tls;
