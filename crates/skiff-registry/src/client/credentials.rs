//! Credentials in docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`), so that `skiff login` and `docker login` share them.
//!
//! `auths` maps a server (`https://index.docker.io/v1/` for docker hub, `host:port`
//! otherwise) to `{"auth": base64("user:password")}`. When `credHelpers` names a helper for
//! the server, or `credsStore` names one for all, the secret lives in that helper instead:
//! `docker-credential-NAME get|store|erase` speaking JSON on stdin/stdout, and `auths` keeps
//! only an empty entry. Every other key of the file is kept as it was.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::auth::Credentials;
use super::error::{ClientError, Result};

/// The key docker uses for docker hub.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The config file docker reads.
pub fn config_path() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// The `auths` key for a registry domain (`docker.io` -> docker hub's URL key).
pub fn server_key(domain: &str) -> String {
    match domain {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_KEY.to_owned(),
        d => d.to_owned(),
    }
}

/// `https://host/v1/` -> `host`, as docker's ConvertToHostname compares keys.
fn hostname_of(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// The credentials store backing one config file.
pub struct Store {
    path: PathBuf,
    doc: Map<String, Value>,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> ClientError {
    move |source| ClientError::Io { context, source }
}

impl Store {
    /// Opens the config at `path` (a missing file is an empty config).
    pub fn open(path: &Path) -> Result<Store> {
        let doc = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(m)) => m,
                Ok(_) | Err(_) => {
                    return Err(ClientError::Config(format!(
                        "loading config file {}: not a JSON object",
                        path.display()
                    )))
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        Ok(Store {
            path: path.to_owned(),
            doc,
        })
    }

    /// Opens docker's default config file.
    pub fn open_default() -> Result<Store> {
        Store::open(&config_path())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The helper that holds the secrets for `key`, if any.
    fn helper_for(&self, key: &str) -> Option<String> {
        let host = hostname_of(key);
        if let Some(Value::Object(h)) = self.doc.get("credHelpers") {
            for (k, v) in h {
                if (k == key || hostname_of(k) == host) && v.as_str().is_some_and(|s| !s.is_empty())
                {
                    return v.as_str().map(str::to_owned);
                }
            }
        }
        self.doc
            .get("credsStore")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    /// The `auths` entry that matches `key` (exactly, or by host name).
    fn auth_entry(&self, key: &str) -> Option<(&String, &Value)> {
        let Some(Value::Object(auths)) = self.doc.get("auths") else {
            return None;
        };
        auths.iter().find(|(k, _)| k.as_str() == key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| hostname_of(k) == hostname_of(key))
        })
    }

    /// Whether a credential helper (rather than the file itself) holds `domain`'s secret.
    pub fn uses_helper(&self, domain: &str) -> bool {
        self.helper_for(&server_key(domain)).is_some()
    }

    /// The credentials saved for a registry domain.
    pub fn get(&self, domain: &str) -> Result<Option<Credentials>> {
        let key = server_key(domain);
        if let Some(helper) = self.helper_for(&key) {
            return helper_get(&helper, &key);
        }
        let Some((_, entry)) = self.auth_entry(&key) else {
            return Ok(None);
        };
        let identity_token = entry
            .get("identitytoken")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned);
        let Some(auth) = entry
            .get("auth")
            .and_then(Value::as_str)
            .filter(|a| !a.is_empty())
        else {
            return Ok(None);
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| {
                ClientError::Config(format!(
                    "{}: invalid auth for {key}: {e}",
                    self.path.display()
                ))
            })?;
        let raw = String::from_utf8_lossy(&raw);
        let (user, pass) = raw.split_once(':').ok_or_else(|| {
            ClientError::Config(format!(
                "{}: invalid auth configuration for {key}",
                self.path.display()
            ))
        })?;
        Ok(Some(Credentials {
            username: user.to_owned(),
            password: pass.trim_end_matches('\n').to_owned(),
            identity_token,
        }))
    }

    /// Saves credentials for a registry domain and writes the file.
    pub fn put(&mut self, domain: &str, creds: &Credentials) -> Result<()> {
        let key = server_key(domain);
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let helper = self.helper_for(&key);
        let entry = match &helper {
            Some(h) => {
                helper_store(h, &key, creds)?;
                json!({})
            }
            None => {
                let raw = format!("{}:{}", creds.username, creds.password);
                json!({ "auth": base64::engine::general_purpose::STANDARD.encode(raw) })
            }
        };
        if let Some(Value::Object(auths)) = self.doc.get_mut("auths") {
            auths.insert(key, entry);
        }
        self.save()
    }

    /// Removes the credentials of a registry domain; false when there were none.
    pub fn remove(&mut self, domain: &str) -> Result<bool> {
        let key = server_key(domain);
        let mut found = false;
        if let Some(helper) = self.helper_for(&key) {
            found |= helper_erase(&helper, &key)?;
        }
        let host = hostname_of(&key).to_owned();
        if let Some(Value::Object(auths)) = self.doc.get_mut("auths") {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| k.as_str() == key || hostname_of(k) == host)
                .cloned()
                .collect();
            for k in keys {
                auths.remove(&k);
                found = true;
            }
        }
        if found {
            self.save()?;
        }
        Ok(found)
    }

    /// Writes the file atomically (temp + fsync + rename), mode 0600 as docker writes it.
    fn save(&self) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let mut bytes = serde_json::to_vec_pretty(&Value::Object(self.doc.clone()))
            .map_err(|e| ClientError::Config(e.to_string()))?;
        bytes.push(b'\n');
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(format!("writing {}", self.path.display()))(e)
        })
    }
}

fn run_helper(helper: &str, action: &str, input: &[u8]) -> Result<(bool, String)> {
    let program = format!("docker-credential-{helper}");
    let mut child = Command::new(&program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            ClientError::Credentials(format!(
                "error getting credentials - err: exec: \"{program}\": {e}"
            ))
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper may answer and exit without reading its input; as with Go's exec (which
        // docker uses), that is no error: its exit status and output tell what happened.
        match stdin.write_all(input) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(io(format!("writing to {program}"))(e));
            }
            _ => {}
        }
    }
    let out = child
        .wait_with_output()
        .map_err(io(format!("running {program}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok((out.status.success(), stdout))
}

fn helper_get(helper: &str, key: &str) -> Result<Option<Credentials>> {
    let (ok, out) = run_helper(helper, "get", key.as_bytes())?;
    if !ok {
        if out.contains("credentials not found") {
            return Ok(None);
        }
        return Err(ClientError::Credentials(format!(
            "error getting credentials - err: exit status 1, out: `{out}`"
        )));
    }
    let v: Value = serde_json::from_str(&out).map_err(|e| {
        ClientError::Credentials(format!("docker-credential-{helper}: bad answer: {e}"))
    })?;
    let user = v
        .get("Username")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or_default();
    if user.is_empty() && secret.is_empty() {
        return Ok(None);
    }
    // docker's convention: user "<token>" means the secret is an identity token.
    if user == "<token>" {
        return Ok(Some(Credentials {
            username: String::new(),
            password: String::new(),
            identity_token: Some(secret.to_owned()),
        }));
    }
    Ok(Some(Credentials::new(user, secret)))
}

fn helper_store(helper: &str, key: &str, creds: &Credentials) -> Result<()> {
    let input = json!({"ServerURL": key, "Username": creds.username, "Secret": creds.password});
    let (ok, out) = run_helper(helper, "store", input.to_string().as_bytes())?;
    if ok {
        Ok(())
    } else {
        Err(ClientError::Credentials(format!(
            "error storing credentials - err: exit status 1, out: `{out}`"
        )))
    }
}

fn helper_erase(helper: &str, key: &str) -> Result<bool> {
    let (ok, out) = run_helper(helper, "erase", key.as_bytes())?;
    if ok {
        Ok(true)
    } else if out.contains("not found") {
        Ok(false)
    } else {
        Err(ClientError::Credentials(format!(
            "error erasing credentials - err: exit status 1, out: `{out}`"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn login_writes_docker_auths_and_keeps_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"psFormat":"table {{.ID}}","auths":{}}"#).unwrap();
        let mut s = Store::open(&path).unwrap();
        s.put("localhost:5000", &Credentials::new("user", "pa:ss"))
            .unwrap();
        s.put("docker.io", &Credentials::new("hub", "x")).unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert_eq!(v["auths"]["localhost:5000"]["auth"], "dXNlcjpwYTpzcw==");
        assert!(v["auths"][DOCKER_HUB_KEY]["auth"].is_string());
        let s = Store::open(&path).unwrap();
        let c = s.get("localhost:5000").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("user", "pa:ss")
        );
        assert_eq!(s.get("docker.io").unwrap().unwrap().username, "hub");
        assert!(s.get("other:1").unwrap().is_none());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn logout_removes_and_reports_absence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let mut s = Store::open(&path).unwrap();
        assert!(!s.remove("localhost:5000").unwrap());
        s.put("localhost:5000", &Credentials::new("u", "p"))
            .unwrap();
        assert!(s.remove("localhost:5000").unwrap());
        assert!(Store::open(&path)
            .unwrap()
            .get("localhost:5000")
            .unwrap()
            .is_none());
    }

    #[test]
    fn keys_with_scheme_match_by_host() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example:5000/v1/":{"auth":"dTpw"}}}"#,
        )
        .unwrap();
        let s = Store::open(&path).unwrap();
        assert_eq!(s.get("reg.example:5000").unwrap().unwrap().username, "u");
    }

    #[test]
    fn credential_helpers_are_run() {
        let dir = tempfile::tempdir().unwrap();
        // A fake helper that keeps one secret in a file next to it.
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let helper = bin.join("docker-credential-skifftest");
        let state = dir.path().join("secret");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\nS={}\ncase \"$1\" in\n get) if [ -f $S ]; then cat $S; else echo 'credentials not found in native keychain'; exit 1; fi;;\n store) cat > $S;;\n erase) rm -f $S;;\nesac\n",
                state.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let old_path = std::env::var("PATH").unwrap_or_default();
        // SAFETY-free: set_var is safe in edition 2021; only this test reads this PATH entry.
        std::env::set_var("PATH", format!("{}:{old_path}", bin.display()));
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg.example":"skifftest"}}"#).unwrap();
        let mut s = Store::open(&path).unwrap();
        assert!(s.get("reg.example").unwrap().is_none());
        s.put("reg.example", &Credentials::new("u", "secret"))
            .unwrap();
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["auths"]["reg.example"], json!({}));
        let c = s.get("reg.example").unwrap().unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "secret"));
        assert!(s.remove("reg.example").unwrap());
        assert!(!state.exists());
    }
}
