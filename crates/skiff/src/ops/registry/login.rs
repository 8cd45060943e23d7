//! `skiff login` / `skiff logout`: check credentials against the registry's `/v2/` and keep
//! them in docker's `config.json` (or its credential helper), shared with docker.

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_registry::client::credentials::{server_key, Store};
use skiff_registry::client::{ClientError, Credentials, Session};

use super::{client_error, client_options};
use crate::ops::error::OpError;

/// The registry domain a `login`/`logout` argument names (`docker.io` when none).
pub fn server_domain(server: Option<&str>) -> String {
    let Some(s) = server.map(str::trim).filter(|s| !s.is_empty()) else {
        return "docker.io".to_owned();
    };
    let host = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

/// The name docker prints for a server (`https://index.docker.io/v1/` for docker hub).
pub fn display_name(domain: &str) -> String {
    server_key(domain)
}

/// Saved credentials for a server, if any (for `login` without a password).
pub fn saved(domain: &str) -> Result<Option<Credentials>> {
    Store::open_default()
        .and_then(|s| s.get(domain))
        .map_err(client_error)
}

/// Where `login` saved the credentials.
pub struct Saved {
    /// The config file.
    pub path: std::path::PathBuf,
    /// Whether a credential helper holds the secret (else it sits in the file, base64).
    pub helper: bool,
}

/// Verifies `creds` against the registry and saves them.
pub fn login(domain: &str, creds: &Credentials, insecure: &[String]) -> Result<Saved> {
    // Reference parsing accepts exactly the hosts docker accepts for a registry.
    if domain != "docker.io" {
        Reference::parse_normalized(&format!("{domain}/x"))
            .map_err(|e| OpError::invalid(format!("invalid registry {domain:?}: {e}")))?;
    }
    let options = client_options(insecure);
    let session = Session::new(domain, Some(creds.clone()), &options).map_err(client_error)?;
    session.login().map_err(|e| match e {
        ClientError::Unauthorized(m) => OpError::invalid(m).into(),
        ClientError::Registry { .. } => OpError::invalid(format!(
            "Get \"{}/v2/\": {e}",
            session.base().unwrap_or_default()
        ))
        .into(),
        other => client_error(other),
    })?;
    let mut store = Store::open_default().map_err(client_error)?;
    store.put(domain, creds).map_err(client_error)?;
    Ok(Saved {
        path: store.path().to_owned(),
        helper: store.uses_helper(domain),
    })
}

/// Removes saved credentials; false when there were none.
pub fn logout(domain: &str) -> Result<bool> {
    let mut store = Store::open_default().map_err(client_error)?;
    store.remove(domain).map_err(client_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_server_names_as_docker_reads_them() {
        assert_eq!(server_domain(None), "docker.io");
        assert_eq!(
            server_domain(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(server_domain(Some("localhost:5000")), "localhost:5000");
        assert_eq!(
            server_domain(Some("http://reg.lan:5000/v2/")),
            "reg.lan:5000"
        );
        assert_eq!(display_name("docker.io"), "https://index.docker.io/v1/");
        assert_eq!(display_name("localhost:5000"), "localhost:5000");
    }
}
