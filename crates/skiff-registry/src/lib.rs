//! skiff-registry: the OCI distribution protocol, both ends. The only async crate (tokio).
//!
//! - [`client`]: resolve, pull and push against a registry (auth, TLS, retries, resume).
//! - [`server`]: the registry that `skiff registry serve` runs (OCI distribution spec v1.1).

pub mod client;
pub mod server;
