//! Talking to registries: `pull`, `push`, `login`/`logout` and `search`, each over the
//! blocking [`skiff_registry::client::Session`] facade (one tokio runtime per command).
//!
//! Shared here: which registries may use plain HTTP, where certificates live, the
//! credentials docker's `config.json` holds for a registry, and the translation of client
//! errors into docker's messages and error kinds.

pub mod login;
pub mod pull;
pub mod push;
pub mod search;

use std::path::PathBuf;

use anyhow::Result;
use skiff_image::store::LayerRecord;
use skiff_image::{Digest, HasKind};
use skiff_registry::client::credentials::Store;
use skiff_registry::client::{ClientError, ClientOptions, Session};

use super::engine::Engine;
use super::error::OpError;

/// Where skiff's own configuration lives (`$SKIFF_CONFIG`, else `/etc/skiff`).
pub fn config_dir() -> PathBuf {
    std::env::var_os("SKIFF_CONFIG")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/skiff"))
}

/// `insecure-registries` from a daemon.json-style file, if it has any.
fn insecure_from_file(path: &std::path::Path) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(v) => v
            .get("insecure-registries")
            .and_then(|l| l.as_array())
            .map(|l| {
                l.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Err(e) => {
            log::warn!("{}: {e}", path.display());
            Vec::new()
        }
    }
}

/// Client settings: insecure registries from the command line (`--insecure-registry`, which
/// also reads `SKIFF_INSECURE_REGISTRIES`), skiff's `daemon.json` and docker's; CA and client
/// certificates from docker's and skiff's `certs.d`.
pub fn client_options(insecure: &[String]) -> ClientOptions {
    let mut list: Vec<String> = insecure
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    list.extend(insecure_from_file(&config_dir().join("daemon.json")));
    list.extend(insecure_from_file(std::path::Path::new(
        "/etc/docker/daemon.json",
    )));
    ClientOptions {
        insecure: list,
        cert_dirs: vec![
            PathBuf::from("/etc/docker/certs.d"),
            config_dir().join("certs.d"),
        ],
        retry_delay: None,
        // Tuning (and the chunked-upload tests): bytes per PATCH of a chunked upload.
        chunk_size: std::env::var("SKIFF_PUSH_CHUNK_SIZE")
            .ok()
            .and_then(|v| v.parse().ok()),
    }
}

/// A session with the registry of `domain`, with the credentials docker's config holds.
pub fn session(domain: &str, options: &ClientOptions) -> Result<Session> {
    let creds = Store::open_default()
        .and_then(|s| s.get(domain))
        .map_err(client_error)?;
    Session::new(domain, creds, options).map_err(client_error)
}

/// A client error as an operation error of the matching kind.
pub fn client_error(e: ClientError) -> anyhow::Error {
    let kind = e.kind();
    OpError::new(kind, e.to_string()).into()
}

/// A client error with docker's wording around it.
pub fn client_error_with(e: ClientError, message: String) -> anyhow::Error {
    OpError::new(e.kind(), message).into()
}

/// Every local image with its layer records, read once per pull or push (to find a layer's
/// known size, the compressed blob of an uncompressed layer, or the images that hold a blob).
pub fn image_layers(engine: &Engine) -> Result<Vec<(Digest, Vec<LayerRecord>)>> {
    let mut out = Vec::new();
    for image in engine.meta.images()? {
        let layers = engine.meta.layers(&image.id)?;
        out.push((image.id, layers));
    }
    Ok(out)
}
