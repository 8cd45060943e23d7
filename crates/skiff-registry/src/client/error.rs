//! Client errors, worded as docker words them.
//!
//! A registry answers failures with the distribution spec's JSON body
//! (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`); docker prints
//! such an error as the code in lower case with spaces, a colon and the message
//! (`manifest unknown: manifest unknown`). Network failures name the request and the host
//! (`Get "https://host/v2/": dial tcp host:443: connect: connection refused`).

use serde::Deserialize;
use skiff_image::content::ContentError;
use skiff_image::{ErrorKind, HasKind};

/// One entry of a registry's `errors` array.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegistryErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl std::fmt::Display for RegistryErrorEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // distribution's errcode.Error.Error(): "<code lower, '_' as ' '>: <message>".
        let code = self.code.to_lowercase().replace('_', " ");
        if self.message.is_empty() {
            f.write_str(&code)
        } else {
            write!(f, "{code}: {}", self.message)
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The registry answered with one or more spec error codes.
    #[error("{}", join_entries(.errors))]
    Registry {
        status: u16,
        errors: Vec<RegistryErrorEntry>,
    },
    /// The registry answered with a status and no spec error body.
    #[error("{method} {url}: unexpected status {status}{}", body_suffix(.body))]
    Status {
        method: String,
        url: String,
        status: u16,
        body: String,
    },
    /// The request never got an answer (after the retries).
    #[error("{method} \"{url}\": {message}")]
    Network {
        method: String,
        url: String,
        message: String,
    },
    /// A 401 with credentials that the registry or its token server refused.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The registry's answer was not what the spec says it should be.
    #[error("{0}")]
    Protocol(String),
    /// A downloaded blob did not match its descriptor.
    #[error("{0}")]
    Verify(String),
    /// Writing into the content store failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
    /// A `docker-credential-*` helper failed.
    #[error("{0}")]
    Credentials(String),
}

fn join_entries(errors: &[RegistryErrorEntry]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn body_suffix(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() {
        String::new()
    } else {
        format!(": {}", body.chars().take(200).collect::<String>())
    }
}

impl ClientError {
    /// The first spec error code (`MANIFEST_UNKNOWN`, `NAME_UNKNOWN`, ...), if any.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Registry { errors, .. } => errors.first().map(|e| e.code.as_str()),
            ClientError::Unauthorized(_) => Some("UNAUTHORIZED"),
            _ => None,
        }
    }

    /// The HTTP status the registry answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Registry { status, .. } | ClientError::Status { status, .. } => {
                Some(*status)
            }
            ClientError::Unauthorized(_) => Some(401),
            _ => None,
        }
    }

    /// Whether the registry says the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code(),
            Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN")
        ) || self.status() == Some(404)
    }

    /// Whether docker would read this as "access denied or no such repository".
    pub fn is_access_denied(&self) -> bool {
        matches!(
            self.code(),
            Some("UNAUTHORIZED" | "DENIED" | "NAME_UNKNOWN")
        ) || matches!(self.status(), Some(401 | 403))
    }

    /// Builds the error for a non-success answer from its status and body.
    pub(crate) fn from_response(method: &str, url: &str, status: u16, body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<RegistryErrorEntry>,
        }
        if let Ok(b) = serde_json::from_slice::<Body>(body) {
            if !b.errors.is_empty() {
                return ClientError::Registry {
                    status,
                    errors: b.errors,
                };
            }
        }
        if status == 401 {
            return ClientError::Registry {
                status,
                errors: vec![RegistryErrorEntry {
                    code: "UNAUTHORIZED".into(),
                    message: "authentication required".into(),
                }],
            };
        }
        ClientError::Status {
            method: method.to_owned(),
            url: url.to_owned(),
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }
}

impl HasKind for ClientError {
    fn kind(&self) -> ErrorKind {
        if self.is_not_found() {
            return ErrorKind::NotFound;
        }
        match self {
            ClientError::Network { .. } => ErrorKind::Unavailable,
            ClientError::Verify(_) | ClientError::Config(_) => ErrorKind::InvalidArgument,
            ClientError::Content(e) => e.kind(),
            ClientError::Unauthorized(_) | ClientError::Registry { .. } => {
                ErrorKind::InvalidArgument
            }
            _ => ErrorKind::Internal,
        }
    }
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_as_docker_prints_them() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        let e = ClientError::from_response("GET", "http://r/v2/a/manifests/x", 404, body);
        assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
        assert!(e.is_not_found());
        let body = br#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#;
        let e = ClientError::from_response("GET", "u", 404, body);
        assert_eq!(
            e.to_string(),
            "name unknown: repository name not known to registry"
        );
        assert!(e.is_access_denied());
    }

    #[test]
    fn bare_401_is_authentication_required() {
        let e = ClientError::from_response("GET", "u", 401, b"");
        assert_eq!(e.to_string(), "unauthorized: authentication required");
    }
}
