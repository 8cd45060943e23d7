//! One registry host: its base URL (HTTPS, or plain HTTP for loopback and insecure
//! registries when HTTPS does not answer), its HTTP clients, and the authentication state
//! (credentials, the challenge seen on `/v2/`, tokens per scope). Every request goes through
//! [`Registry::send`], which attaches credentials, answers 401 challenges once, and retries
//! network failures with backoff.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response, StatusCode};

use super::auth::{parse_challenges, Challenge, Credentials, TokenResponse};
use super::error::{ClientError, Result};
use super::tls;

/// How many times a request that got no answer is tried.
pub const TRIES: u32 = 3;

/// Settings shared by every registry the client talks to.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// Registries (`host[:port]`, or CIDR ranges like `10.0.0.0/8`) that may use plain HTTP
    /// or unverified TLS, besides loopback which always may.
    pub insecure: Vec<String>,
    /// Directories holding `<host:port>/` certificate folders (docker's `certs.d` layout).
    pub cert_dirs: Vec<PathBuf>,
    /// First delay between retries (doubled each time).
    pub retry_delay: Option<Duration>,
    /// Blobs up to this size are uploaded in one PUT, bigger ones in PATCH chunks of this
    /// size (default [`super::blob::CHUNK`]).
    pub chunk_size: Option<u64>,
}

/// The host name docker talks to for `docker.io` references.
pub const DOCKER_HUB_HOST: &str = "registry-1.docker.io";

/// The host actually contacted for a reference's domain.
pub fn api_host(domain: &str) -> &str {
    if domain == "docker.io" {
        DOCKER_HUB_HOST
    } else {
        domain
    }
}

/// Whether `host` (with optional port) may be reached over plain HTTP: loopback always, as
/// docker allows it, and the registries listed as insecure.
pub fn is_insecure(host: &str, insecure: &[String]) -> bool {
    let name = strip_port(host);
    if name == "localhost" {
        return true;
    }
    let ip: Option<IpAddr> = name.trim_matches(['[', ']']).parse().ok();
    if ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    insecure.iter().any(|entry| {
        let entry = entry
            .trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if entry == host || entry == name {
            return true;
        }
        match (entry.split_once('/'), ip) {
            (Some((net, bits)), Some(ip)) => in_cidr(ip, net, bits),
            _ => false,
        }
    })
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    }
}

fn in_cidr(ip: IpAddr, net: &str, bits: &str) -> bool {
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// A request body that can be produced again for a retry or an authentication round.
#[derive(Debug, Clone)]
pub enum ReqBody {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl ReqBody {
    async fn build(&self) -> Result<Option<reqwest::Body>> {
        Ok(match self {
            ReqBody::Empty => None,
            ReqBody::Bytes(b) => Some(reqwest::Body::from(b.clone())),
            ReqBody::File { path, offset, len } => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut f = tokio::fs::File::open(path)
                    .await
                    .map_err(|e| ClientError::Io {
                        context: format!("opening {}", path.display()),
                        source: e,
                    })?;
                f.seek(std::io::SeekFrom::Start(*offset))
                    .await
                    .map_err(|e| ClientError::Io {
                        context: format!("seeking {}", path.display()),
                        source: e,
                    })?;
                let reader = f.take(*len);
                let stream = futures_util::stream::unfold(reader, |mut r| async move {
                    let mut buf = vec![0u8; 1 << 20];
                    match r.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok::<Bytes, std::io::Error>(Bytes::from(buf)), r))
                        }
                        Err(e) => Some((Err(e), r)),
                    }
                });
                Some(reqwest::Body::wrap_stream(stream))
            }
        })
    }
}

/// A request to send: the pieces [`Registry::send`] needs to send it again.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(HeaderName, String)>,
    pub body: ReqBody,
    /// The token scope this request needs (`repository:x:pull`), or None for `/v2/`.
    pub scope: Option<String>,
}

impl Req {
    pub fn new(method: Method, url: String, scope: Option<String>) -> Self {
        Req {
            method,
            url,
            headers: Vec::new(),
            body: ReqBody::Empty,
            scope,
        }
    }
    pub fn header(mut self, name: HeaderName, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
    pub fn body(mut self, body: ReqBody) -> Self {
        self.body = body;
        self
    }
}

/// One registry host and what the client knows about it.
pub struct Registry {
    host: String,
    insecure: bool,
    creds: Option<Credentials>,
    verified: reqwest::Client,
    unverified: Option<reqwest::Client>,
    retry_delay: Duration,
    pub(crate) chunk_size: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// `https://host` or `http://host`, once a ping decided.
    base: Option<String>,
    challenge: Option<Challenge>,
    tokens: HashMap<String, String>,
}

fn user_agent() -> String {
    format!("skiff/{}", env!("CARGO_PKG_VERSION"))
}

fn build_client(tls: Option<rustls::ClientConfig>) -> Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .user_agent(user_agent())
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(16);
    if let Some(tls) = tls {
        b = b.tls_backend_preconfigured(tls);
    }
    b.build()
        .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))
}

impl Registry {
    /// `domain` is a reference's domain (`docker.io`, `localhost:5000`).
    pub fn new(
        domain: &str,
        creds: Option<Credentials>,
        options: &ClientOptions,
    ) -> Result<Registry> {
        let host = api_host(domain).to_owned();
        let insecure = is_insecure(&host, &options.insecure);
        let verified = build_client(Some(tls::client_config(&options.cert_dirs, &host, true)?))?;
        let unverified = if insecure {
            Some(build_client(Some(tls::client_config(
                &options.cert_dirs,
                &host,
                false,
            )?))?)
        } else {
            None
        };
        Ok(Registry {
            host,
            insecure,
            creds,
            verified,
            unverified,
            retry_delay: options.retry_delay.unwrap_or(Duration::from_millis(500)),
            chunk_size: options.chunk_size.unwrap_or(super::blob::CHUNK).max(1),
            state: Mutex::new(State::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave State half-updated in a way that matters here.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        match &self.unverified {
            Some(c) if self.insecure => c,
            _ => &self.verified,
        }
    }

    /// The base URL (`https://host`), pinging `/v2/` the first time to choose the scheme and
    /// learn the authentication challenge.
    pub async fn base(&self) -> Result<String> {
        if let Some(b) = self.lock().base.clone() {
            return Ok(b);
        }
        self.ping().await?;
        Ok(self.lock().base.clone().unwrap_or_default())
    }

    /// `GET /v2/`: decides the scheme (HTTPS first; plain HTTP for loopback and insecure
    /// registries when HTTPS fails) and records the challenge of a 401. Returns the status.
    pub async fn ping(&self) -> Result<StatusCode> {
        let https = format!("https://{}", self.host);
        // An insecure registry gets one HTTPS attempt before plain HTTP, as docker does;
        // the retries go to the scheme that is left.
        let tries = if self.insecure { 1 } else { TRIES };
        let first = self.raw_ping(&https, tries).await;
        let (base, resp) = match first {
            Ok(r) => (https, r),
            Err(e) if self.insecure => {
                log::debug!("{https}: {e}; trying plain HTTP");
                let http = format!("http://{}", self.host);
                match self.raw_ping(&http, TRIES).await {
                    Ok(r) => (http, r),
                    Err(e2) => return Err(e2),
                }
            }
            Err(e) => return Err(e),
        };
        let status = resp.status();
        {
            let mut st = self.lock();
            st.base = Some(base);
            if status == StatusCode::UNAUTHORIZED {
                st.challenge = challenge_of(resp.headers());
            }
        }
        Ok(status)
    }

    async fn raw_ping(&self, base: &str, tries: u32) -> Result<Response> {
        let url = format!("{base}/v2/");
        let mut last = None;
        for attempt in 0..tries {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay * (1 << (attempt - 1))).await;
            }
            match self.client().get(&url).send().await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    last = Some(network_error("GET", &url, &e));
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Protocol("no attempt made".into())))
    }

    /// Sends `req`, answering a 401 challenge once and retrying network failures. Returns
    /// any answer the server gave (the caller checks the status); only a 401 that survives
    /// authentication is turned into an error here.
    pub async fn send(&self, req: &Req) -> Result<Response> {
        let mut authed_once = false;
        loop {
            let auth = self.auth_header(req.scope.as_deref());
            let resp = self.send_with_retries(req, auth.as_deref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            let challenge = challenge_of(resp.headers());
            if authed_once || challenge.is_none() {
                let status = resp.status().as_u16();
                let body = resp.bytes().await.unwrap_or_default();
                return Err(ClientError::from_response(
                    req.method.as_str(),
                    &req.url,
                    status,
                    &body,
                ));
            }
            authed_once = true;
            let had_token = {
                // One guard: the lock is not reentrant.
                let st = self.lock();
                st.challenge.as_ref().is_some_and(|c| c.scheme == "bearer")
                    && req
                        .scope
                        .as_ref()
                        .is_some_and(|s| st.tokens.contains_key(s))
            };
            self.lock().challenge = challenge.clone();
            if let Some(c) = &challenge {
                if c.scheme == "bearer" {
                    // Refresh: the token we sent (if any) was refused or has expired.
                    let scope = req.scope.clone().unwrap_or_default();
                    if had_token {
                        self.lock().tokens.remove(&scope);
                    }
                    let token = self.fetch_token(c, req.scope.as_deref()).await?;
                    self.lock().tokens.insert(scope, token);
                } else if c.scheme == "basic" && self.creds.is_none() {
                    let body = resp.bytes().await.unwrap_or_default();
                    return Err(ClientError::from_response(
                        req.method.as_str(),
                        &req.url,
                        401,
                        &body,
                    ));
                }
            }
        }
    }

    /// The `Authorization` header a request for `scope` carries now (a token fetched earlier
    /// for that scope, or Basic credentials).
    pub(crate) fn auth_header(&self, scope: Option<&str>) -> Option<String> {
        let st = self.lock();
        match st.challenge.as_ref().map(|c| c.scheme.as_str()) {
            Some("bearer") => st
                .tokens
                .get(scope.unwrap_or_default())
                .map(|t| format!("Bearer {t}")),
            Some("basic") => self.creds.as_ref().map(Credentials::basic_header),
            _ => None,
        }
    }

    async fn send_with_retries(&self, req: &Req, auth: Option<&str>) -> Result<Response> {
        let mut last = None;
        for attempt in 0..TRIES {
            if attempt > 0 {
                let delay = self.retry_delay * (1 << (attempt - 1));
                log::debug!("{} {}: retrying in {delay:?}", req.method, req.url);
                tokio::time::sleep(delay).await;
            }
            let mut headers = HeaderMap::new();
            for (k, v) in &req.headers {
                if let Ok(v) = HeaderValue::from_str(v) {
                    headers.append(k.clone(), v);
                }
            }
            if let Some(a) = auth {
                if let Ok(v) = HeaderValue::from_str(a) {
                    headers.insert(AUTHORIZATION, v);
                }
            }
            let mut rb = self
                .client()
                .request(req.method.clone(), &req.url)
                .headers(headers);
            if let Some(body) = req.body.build().await? {
                rb = rb.body(body);
            }
            match rb.send().await {
                Ok(r) if r.status().is_server_error() && attempt + 1 < TRIES => {
                    // 502/503 from a proxy in front of the registry: worth another try.
                    last = Some(ClientError::Status {
                        method: req.method.to_string(),
                        url: req.url.clone(),
                        status: r.status().as_u16(),
                        body: String::new(),
                    });
                }
                Ok(r) => return Ok(r),
                Err(e) => last = Some(network_error(req.method.as_str(), &req.url, &e)),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Protocol("no attempt made".into())))
    }

    /// Fetches a token for `scope` from a Bearer challenge's realm.
    async fn fetch_token(&self, c: &Challenge, scope: Option<&str>) -> Result<String> {
        let realm = c
            .param("realm")
            .ok_or_else(|| ClientError::Protocol("Bearer challenge without a realm".into()))?;
        let mut url = reqwest::Url::parse(realm)
            .map_err(|e| ClientError::Protocol(format!("token realm {realm:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = c.param("service") {
                q.append_pair("service", s);
            }
            if let Some(s) = scope {
                q.append_pair("scope", s);
            }
            if let Some(cr) = &self.creds {
                q.append_pair("account", &cr.username);
            }
            q.append_pair("client_id", "skiff");
        }
        let url = url.to_string();
        let mut last = None;
        for attempt in 0..TRIES {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay * (1 << (attempt - 1))).await;
            }
            let mut rb = self.client().get(&url);
            if let Some(cr) = &self.creds {
                rb = rb.header(AUTHORIZATION, cr.basic_header());
            }
            match rb.send().await {
                Ok(r) => {
                    let status = r.status();
                    let body = r.bytes().await.unwrap_or_default();
                    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                        let detail =
                            ClientError::from_response("GET", &url, status.as_u16(), &body);
                        return Err(match detail {
                            ClientError::Registry { .. } => detail,
                            _ => ClientError::Unauthorized("incorrect username or password".into()),
                        });
                    }
                    if !status.is_success() {
                        return Err(ClientError::from_response(
                            "GET",
                            &url,
                            status.as_u16(),
                            &body,
                        ));
                    }
                    let t: TokenResponse = serde_json::from_slice(&body)
                        .map_err(|e| ClientError::Protocol(format!("token server {realm}: {e}")))?;
                    return t.into_token().ok_or_else(|| {
                        ClientError::Protocol(format!("token server {realm} returned no token"))
                    });
                }
                Err(e) => last = Some(network_error("GET", &url, &e)),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Protocol("no attempt made".into())))
    }

    /// Checks credentials the way `docker login` does: `/v2/` must answer 200 with them.
    pub async fn login(&self) -> Result<()> {
        let status = self.ping().await?;
        if status.is_success() {
            return Ok(());
        }
        let base = self.base().await?;
        let url = format!("{base}/v2/");
        let challenge = self.lock().challenge.clone();
        let Some(c) = challenge else {
            return Err(ClientError::Status {
                method: "GET".into(),
                url,
                status: status.as_u16(),
                body: String::new(),
            });
        };
        let header = if c.scheme == "bearer" {
            format!("Bearer {}", self.fetch_token(&c, None).await?)
        } else {
            match &self.creds {
                Some(cr) => cr.basic_header(),
                None => return Err(ClientError::Unauthorized("authentication required".into())),
            }
        };
        let resp = self
            .client()
            .get(&url)
            .header(AUTHORIZATION, header)
            .send()
            .await
            .map_err(|e| network_error("GET", &url, &e))?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(ClientError::Unauthorized(format!(
                "login attempt to {url} failed with status: {} {}",
                resp.status().as_u16(),
                resp.status().canonical_reason().unwrap_or("")
            )))
        }
    }

    /// Reads a whole (small) response body, turning a non-success status into an error.
    pub async fn read_ok(&self, req: &Req, resp: Response) -> Result<(HeaderMap, Bytes)> {
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| network_error(req.method.as_str(), &req.url, &e))?;
            body.extend_from_slice(&chunk);
            if body.len() > 64 << 20 {
                return Err(ClientError::Protocol(format!(
                    "{} {}: answer larger than 64 MiB",
                    req.method, req.url
                )));
            }
        }
        if !status.is_success() {
            return Err(ClientError::from_response(
                req.method.as_str(),
                &req.url,
                status.as_u16(),
                &body,
            ));
        }
        Ok((headers, Bytes::from(body)))
    }
}

fn challenge_of(headers: &HeaderMap) -> Option<Challenge> {
    let mut all = Vec::new();
    for v in headers.get_all(WWW_AUTHENTICATE) {
        if let Ok(s) = v.to_str() {
            all.extend(parse_challenges(s));
        }
    }
    // Prefer Bearer, as docker does, when a registry offers both.
    all.iter()
        .find(|c| c.scheme == "bearer")
        .or_else(|| all.iter().find(|c| c.scheme == "basic"))
        .cloned()
}

/// Words a failed request as Go's HTTP client does (`dial tcp HOST: connect: connection
/// refused`), naming the host so the user knows which registry did not answer.
pub(crate) fn network_error(method: &str, url: &str, e: &reqwest::Error) -> ClientError {
    let host = reqwest::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port_or_known_default() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_default();
    let mut io_kind = None;
    let mut innermost = e.to_string();
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        innermost = s.to_string();
        src = s.source();
    }
    let message = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => {
            format!("dial tcp {host}: connect: connection refused")
        }
        _ if e.is_timeout() => format!("dial tcp {host}: i/o timeout"),
        _ if e.is_connect() => format!("dial tcp {host}: {innermost}"),
        _ => innermost,
    };
    let method = match method {
        "GET" => "Get",
        "HEAD" => "Head",
        "PUT" => "Put",
        "POST" => "Post",
        "PATCH" => "Patch",
        "DELETE" => "Delete",
        m => m,
    };
    ClientError::Network {
        method: method.to_owned(),
        url: url.to_owned(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_are_insecure() {
        let none: Vec<String> = vec![];
        assert!(is_insecure("localhost:5000", &none));
        assert!(is_insecure("127.0.0.1:5000", &none));
        assert!(is_insecure("127.1.2.3", &none));
        assert!(is_insecure("[::1]:5000", &none));
        assert!(!is_insecure("registry-1.docker.io", &none));
        let list = vec!["reg.lan:5000".to_owned(), "10.0.0.0/8".to_owned()];
        assert!(is_insecure("reg.lan:5000", &list));
        assert!(!is_insecure("reg.lan:6000", &list));
        assert!(is_insecure("10.1.2.3:5000", &list));
        assert!(!is_insecure("11.1.2.3:5000", &list));
    }

    #[test]
    fn docker_hub_is_reached_at_its_api_host() {
        assert_eq!(api_host("docker.io"), DOCKER_HUB_HOST);
        assert_eq!(api_host("localhost:5000"), "localhost:5000");
    }
}
