//! Basic authentication against an htpasswd file of bcrypt entries (`user:$2y$...`), as
//! distribution's htpasswd backend does. A failure is answered 401 with
//! `WWW-Authenticate: Basic realm="skiff"`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use hyper::header::{HeaderMap, AUTHORIZATION};
use skiff_image::Digest;

use super::errors::ServerError;

/// Verified credentials remembered so that each request does not pay a bcrypt (tens of
/// milliseconds by design); cleared when it grows past this.
const CACHE_LIMIT: usize = 1024;

pub struct Htpasswd {
    users: HashMap<String, String>,
    /// SHA-256 of `user\0password` pairs that verified (never the passwords themselves).
    verified: Mutex<HashSet<Digest>>,
}

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, ServerError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServerError::Io {
            path: path.to_owned(),
            source,
        })?;
        let users = parse(&text).map_err(|message| ServerError::Config {
            path: path.to_owned(),
            message,
        })?;
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether the request carries credentials of a user in the file.
    pub async fn allows(&self, headers: &HeaderMap) -> bool {
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let Some(hash) = self.users.get(&user) else {
            return false;
        };
        let key = Digest::of_bytes(format!("{user}\0{password}").as_bytes());
        if self.cache().contains(&key) {
            return true;
        }
        let hash = hash.clone();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok {
            let mut cache = self.cache();
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashSet<Digest>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Parses htpasswd lines; blank lines and `#` comments are skipped, entries that are not
/// bcrypt are refused (other schemes are weak or unsalted, and distribution refuses them too).
fn parse(text: &str) -> Result<HashMap<String, String>, String> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!("line {}: expected user:hash", i + 1));
        };
        if !hash.starts_with("$2") {
            return Err(format!(
                "line {}: the entry of {user:?} is not a bcrypt hash (use htpasswd -B)",
                i + 1
            ));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn htpasswd_lines() {
        let users = parse("# c\n\nalice:$2y$05$abc\n").unwrap();
        assert_eq!(users.get("alice").map(String::as_str), Some("$2y$05$abc"));
        assert!(parse("bob:{SHA}xyz").is_err());
        assert!(parse("nocolon").is_err());
    }

    #[test]
    fn basic_header_decodes() {
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_static("Basic YWxpY2U6cDpx"),
        );
        assert_eq!(
            basic_credentials(&h),
            Some(("alice".to_owned(), "p:q".to_owned()))
        );
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(basic_credentials(&h), None);
    }

    #[tokio::test]
    async fn bcrypt_entries_verify() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let auth = Htpasswd {
            users: HashMap::from([("u".to_owned(), hash)]),
            verified: Mutex::new(HashSet::new()),
        };
        let header = |v: &str| {
            let mut h = HeaderMap::new();
            let b = base64::engine::general_purpose::STANDARD.encode(v);
            h.insert(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Basic {b}")).unwrap(),
            );
            h
        };
        assert!(auth.allows(&header("u:secret")).await);
        assert!(auth.allows(&header("u:secret")).await, "cached");
        assert!(!auth.allows(&header("u:wrong")).await);
        assert!(!auth.allows(&header("v:secret")).await);
    }
}
