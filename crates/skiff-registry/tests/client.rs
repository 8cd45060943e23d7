//! The registry client against small in-test servers: the token flow (challenge, token
//! reuse, refresh after a refused token), Basic auth, a download cut mid-blob and resumed with
//! `Range`, a corrupt blob refused and not stored, uploads, and tag listing.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use skiff_image::content::ContentStore;
use skiff_image::spec::Descriptor;
use skiff_image::Digest;
use skiff_registry::client::{ClientOptions, Credentials, Session};

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// What the fake server answers.
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Close the connection after this many body bytes (a cut download).
    cut_after: Option<usize>,
}

impl Resp {
    fn new(status: u16, body: impl Into<Vec<u8>>) -> Resp {
        Resp {
            status,
            headers: Vec::new(),
            body: body.into(),
            cut_after: None,
        }
    }
    fn header(mut self, k: &str, v: &str) -> Resp {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
}

type Handler = dyn Fn(&Req) -> Resp + Send + Sync;

/// A one-request-per-connection HTTP/1.1 server on a loopback port, on its own threads.
struct FakeServer {
    port: u16,
    log: Arc<Mutex<Vec<Req>>>,
}

impl FakeServer {
    fn start(handler: Arc<Handler>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let log = log2.clone();
                std::thread::spawn(move || serve(stream, &*handler, &log));
            }
        });
        FakeServer { port, log }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, handler: &Handler, log: &Mutex<Vec<Req>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let path = parts.next().unwrap_or_default().to_owned();
    if method.is_empty() || !line.contains("HTTP/1") {
        // A TLS hello or garbage: what a plain HTTP server answers.
        let mut s = stream;
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if let Some(n) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(n, 0);
        reader.read_exact(&mut body).unwrap();
    }
    let req = Req {
        method,
        path,
        headers,
        body,
    };
    let resp = handler(&req);
    log.lock().unwrap().push(req);
    let mut out = stream;
    let mut head = format!("HTTP/1.1 {} X\r\nConnection: close\r\n", resp.status);
    if !resp
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    for (k, v) in &resp.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let n = resp
        .cut_after
        .unwrap_or(resp.body.len())
        .min(resp.body.len());
    let _ = out.write_all(&resp.body[..n]);
    let _ = out.flush();
}

fn options() -> ClientOptions {
    ClientOptions {
        retry_delay: Some(Duration::from_millis(10)),
        ..Default::default()
    }
}

fn blob_bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

const MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[]}"#;

#[test]
fn bearer_token_flow_reuses_and_refreshes_tokens() {
    let token_requests = Arc::new(AtomicUsize::new(0));
    // The token that the registry currently accepts; bumping it simulates expiry.
    let generation = Arc::new(AtomicUsize::new(1));
    let port_cell: Arc<Mutex<u16>> = Arc::new(Mutex::new(0));
    let (tr, gen, pc) = (
        token_requests.clone(),
        generation.clone(),
        port_cell.clone(),
    );
    let server = FakeServer::start(Arc::new(move |r: &Req| {
        let port = *pc.lock().unwrap();
        if r.path.starts_with("/token") {
            tr.fetch_add(1, Ordering::SeqCst);
            assert!(r.path.contains("service=fake-registry"), "{}", r.path);
            assert!(
                r.path.contains("scope=repository%3Alib%2Fapp%3Apull"),
                "{}",
                r.path
            );
            if r.header("authorization")
                != Some(&Credentials::new("alice", "s3cret").basic_header())
            {
                return Resp::new(401, r#"{"details":"incorrect username or password"}"#);
            }
            let g = gen.load(Ordering::SeqCst);
            return Resp::new(200, format!(r#"{{"token":"tok-{g}","expires_in":300}}"#));
        }
        let want = format!("Bearer tok-{}", gen.load(Ordering::SeqCst));
        if r.header("authorization") != Some(want.as_str()) {
            return Resp::new(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#)
                .header(
                    "WWW-Authenticate",
                    &format!(
                        r#"Bearer realm="http://127.0.0.1:{port}/token",service="fake-registry",scope="repository:lib/app:pull""#
                    ),
                );
        }
        if r.path == "/v2/" {
            return Resp::new(200, "{}");
        }
        Resp::new(200, MANIFEST).header(
            "Content-Type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
    }));
    *port_cell.lock().unwrap() = server.port;
    let session = Session::new(
        &server.host(),
        Some(Credentials::new("alice", "s3cret")),
        &options(),
    )
    .unwrap();
    let m = session.get_manifest("lib/app", "latest").unwrap();
    assert_eq!(
        m.media_type,
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(m.digest, Digest::of_bytes(MANIFEST.as_bytes()));
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
    // Reused: no new token for the same scope.
    session.get_manifest("lib/app", "latest").unwrap();
    assert_eq!(token_requests.load(Ordering::SeqCst), 1);
    // The registry stops accepting the token: one refresh, then success.
    generation.store(2, Ordering::SeqCst);
    session.get_manifest("lib/app", "latest").unwrap();
    assert_eq!(token_requests.load(Ordering::SeqCst), 2);

    // Wrong password: the token server refuses, and the error says so.
    let bad = Session::new(
        &server.host(),
        Some(Credentials::new("alice", "wrong")),
        &options(),
    )
    .unwrap();
    let e = bad.get_manifest("lib/app", "latest").unwrap_err();
    assert!(
        e.to_string().contains("unauthorized"),
        "unexpected error: {e}"
    );
}

#[test]
fn basic_auth_challenge_is_answered_with_credentials() {
    let expected = Credentials::new("bob", "pw").basic_header();
    let server = FakeServer::start(Arc::new(move |r: &Req| {
        if r.header("authorization") != Some(expected.as_str()) {
            return Resp::new(
                401,
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            )
            .header("WWW-Authenticate", r#"Basic realm="Registry Realm""#);
        }
        Resp::new(200, r#"{"name":"app","tags":["a","b"]}"#)
    }));
    let anon = Session::new(&server.host(), None, &options()).unwrap();
    let e = anon.tags("app").unwrap_err();
    assert_eq!(e.to_string(), "unauthorized: authentication required");
    let s = Session::new(
        &server.host(),
        Some(Credentials::new("bob", "pw")),
        &options(),
    )
    .unwrap();
    assert_eq!(s.tags("app").unwrap(), vec!["a", "b"]);
    s.login().unwrap();
    let wrong = Session::new(
        &server.host(),
        Some(Credentials::new("bob", "no")),
        &options(),
    )
    .unwrap();
    let e = wrong.login().unwrap_err();
    assert!(e.to_string().contains("401"), "{e}");
}

fn blob_server(data: Vec<u8>, cut_first_at: Option<usize>, corrupt: bool) -> FakeServer {
    let gets = Arc::new(AtomicUsize::new(0));
    FakeServer::start(Arc::new(move |r: &Req| {
        if r.path == "/v2/" {
            return Resp::new(200, "{}");
        }
        let n = gets.fetch_add(1, Ordering::SeqCst);
        let mut body = data.clone();
        if corrupt {
            body[10] ^= 0xff;
        }
        if let Some(range) = r.header("range") {
            let start: usize = range
                .trim_start_matches("bytes=")
                .trim_end_matches('-')
                .parse()
                .unwrap();
            let total = body.len();
            return Resp::new(206, body[start..].to_vec()).header(
                "Content-Range",
                &format!("bytes {start}-{}/{total}", total - 1),
            );
        }
        let mut resp = Resp::new(200, body);
        if n == 0 {
            resp.cut_after = cut_first_at;
        }
        resp
    }))
}

#[test]
fn cut_download_resumes_with_range() {
    let data = blob_bytes(300_000);
    let digest = Digest::of_bytes(&data);
    let server = blob_server(data.clone(), Some(100_000), false);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let session = Session::new(&server.host(), None, &options()).unwrap();
    let desc = Descriptor::new(
        "application/vnd.oci.image.layer.v1.tar",
        digest.clone(),
        300_000,
    );
    let mut starts = Vec::new();
    let mut received = 0usize;
    session
        .fetch_blob("app", &desc, &store, &mut |ev| match ev {
            skiff_registry::client::BlobEvent::Start { offset } => starts.push(offset),
            skiff_registry::client::BlobEvent::Data(b) => received += b.len(),
            _ => {}
        })
        .unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    assert_eq!(received, 300_000, "every byte passed exactly once");
    assert_eq!(starts[0], 0);
    let resumed_at = starts[1];
    assert!(
        resumed_at > 0 && resumed_at <= 100_000,
        "starts: {starts:?}"
    );
    let ranges: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, vec![format!("bytes={resumed_at}-")]);
}

#[test]
fn partial_ingest_from_an_earlier_process_is_resumed() {
    let data = blob_bytes(50_000);
    let digest = Digest::of_bytes(&data);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    {
        // What a killed pull leaves: part of the blob in its ingest.
        let mut w = store.writer(&format!("pull-{}", digest.hex())).unwrap();
        w.write_all(&data[..20_000]).unwrap();
    }
    let server = blob_server(data.clone(), None, false);
    let session = Session::new(&server.host(), None, &options()).unwrap();
    let desc = Descriptor::new("application/octet-stream", digest.clone(), 50_000);
    session
        .fetch_blob("app", &desc, &store, &mut |_| {})
        .unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    let ranges: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| r.header("range").map(str::to_owned))
        .collect();
    assert_eq!(ranges, vec!["bytes=20000-".to_owned()]);
}

#[test]
fn corrupt_blob_is_refused_and_not_stored() {
    let data = blob_bytes(10_000);
    let digest = Digest::of_bytes(&data);
    let server = blob_server(data, None, true);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let session = Session::new(&server.host(), None, &options()).unwrap();
    let desc = Descriptor::new("application/octet-stream", digest.clone(), 10_000);
    let e = session
        .fetch_blob("app", &desc, &store, &mut |_| {})
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("filesystem layer verification failed for digest {digest}")
    );
    assert!(!store.exists(&digest));
    assert!(store.list().unwrap().is_empty());
}

#[test]
fn manifest_by_digest_is_verified() {
    let server = FakeServer::start(Arc::new(|r: &Req| {
        if r.path == "/v2/" {
            return Resp::new(200, "{}");
        }
        Resp::new(200, MANIFEST)
    }));
    let session = Session::new(&server.host(), None, &options()).unwrap();
    let good = Digest::of_bytes(MANIFEST.as_bytes());
    assert_eq!(
        session.get_manifest("a", &good.to_string()).unwrap().digest,
        good
    );
    let other = Digest::of_bytes(b"x");
    let e = session.get_manifest("a", &other.to_string()).unwrap_err();
    assert!(e.to_string().contains("verification failed"), "{e}");
}

#[test]
fn registry_errors_and_unreachable_hosts_read_like_docker() {
    let server = FakeServer::start(Arc::new(|r: &Req| {
        if r.path == "/v2/" {
            return Resp::new(200, "{}");
        }
        Resp::new(
            404,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#,
        )
    }));
    let session = Session::new(&server.host(), None, &options()).unwrap();
    let e = session.get_manifest("a", "nope").unwrap_err();
    assert_eq!(e.to_string(), "manifest unknown: manifest unknown");
    assert!(e.is_not_found());

    // A port nobody listens on: retried, then reported with the host.
    let free = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let session = Session::new(&format!("127.0.0.1:{port}"), None, &options()).unwrap();
    let e = session.get_manifest("a", "latest").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "Get \"http://127.0.0.1:{port}/v2/\": dial tcp 127.0.0.1:{port}: connect: connection refused"
        )
    );
}

#[test]
fn monolithic_upload_and_existence_checks() {
    let stored: Arc<Mutex<HashMap<String, Vec<u8>>>> = Arc::new(Mutex::new(HashMap::new()));
    let st = stored.clone();
    let server = FakeServer::start(Arc::new(move |r: &Req| {
        if r.path == "/v2/" {
            return Resp::new(200, "{}");
        }
        if r.method == "HEAD" {
            let d = r.path.rsplit('/').next().unwrap().to_owned();
            return match st.lock().unwrap().get(&d) {
                Some(b) => {
                    Resp::new(200, Vec::new()).header("Content-Length", &b.len().to_string())
                }
                None => Resp::new(404, Vec::new()).header("Content-Length", "0"),
            };
        }
        if r.method == "POST" {
            return Resp::new(202, "").header("Location", "/v2/app/blobs/uploads/u1?_state=x");
        }
        if r.method == "PUT" {
            assert!(r
                .path
                .starts_with("/v2/app/blobs/uploads/u1?_state=x&digest=sha256:"));
            let d = r.path.rsplit("digest=").next().unwrap().to_owned();
            assert_eq!(Digest::of_bytes(&r.body).to_string(), d);
            st.lock().unwrap().insert(d, r.body.clone());
            return Resp::new(201, "");
        }
        Resp::new(405, "")
    }));
    let dir = tempfile::tempdir().unwrap();
    let data = blob_bytes(5000);
    let path = dir.path().join("blob");
    std::fs::write(&path, &data).unwrap();
    let digest = Digest::of_bytes(&data);
    let session = Session::new(&server.host(), None, &options()).unwrap();
    assert_eq!(session.blob_exists("app", &digest).unwrap(), None);
    let mut sent = 0;
    session
        .upload_blob("app", &digest, &path, 5000, None, &mut |n| sent = n)
        .unwrap();
    assert_eq!(sent, 5000);
    assert_eq!(session.blob_exists("app", &digest).unwrap(), Some(5000));
    assert_eq!(stored.lock().unwrap()[&digest.to_string()], data);
}

#[test]
fn big_blobs_go_up_in_patch_chunks() {
    // An upload session that checks each chunk continues where the last one ended, as
    // distribution does, and moves its Location on every answer.
    let received: Arc<Mutex<Vec<u8>>> = Arc::new(Mutex::new(Vec::new()));
    let ranges: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let (rc, rg) = (received.clone(), ranges.clone());
    let server = FakeServer::start(Arc::new(move |r: &Req| {
        if r.path == "/v2/" {
            return Resp::new(200, "{}");
        }
        match r.method.as_str() {
            "POST" => Resp::new(202, "").header("Location", "/v2/app/blobs/uploads/s0"),
            "PATCH" => {
                let range = r.header("content-range").unwrap_or_default().to_owned();
                let (start, end) = range.split_once('-').unwrap();
                let mut got = rc.lock().unwrap();
                assert_eq!(
                    start.parse::<usize>().unwrap(),
                    got.len(),
                    "chunk out of order"
                );
                assert_eq!(end.parse::<usize>().unwrap() + 1 - got.len(), r.body.len());
                got.extend_from_slice(&r.body);
                rg.lock().unwrap().push(range);
                let n = rg.lock().unwrap().len();
                Resp::new(202, "")
                    .header("Location", &format!("/v2/app/blobs/uploads/s{n}"))
                    .header("Range", &format!("0-{}", got.len() - 1))
            }
            "PUT" => {
                let n = rg.lock().unwrap().len();
                assert!(r
                    .path
                    .starts_with(&format!("/v2/app/blobs/uploads/s{n}?digest=")));
                assert!(r.body.is_empty());
                Resp::new(201, "")
            }
            _ => Resp::new(405, ""),
        }
    }));
    let dir = tempfile::tempdir().unwrap();
    let data = blob_bytes(2500);
    let path = dir.path().join("blob");
    std::fs::write(&path, &data).unwrap();
    let digest = Digest::of_bytes(&data);
    let opts = ClientOptions {
        chunk_size: Some(1000),
        ..options()
    };
    let session = Session::new(&server.host(), None, &opts).unwrap();
    let mut progress = Vec::new();
    session
        .upload_blob("app", &digest, &path, 2500, None, &mut |n| progress.push(n))
        .unwrap();
    assert_eq!(
        *ranges.lock().unwrap(),
        vec!["0-999", "1000-1999", "2000-2499"]
    );
    assert_eq!(*received.lock().unwrap(), data);
    assert_eq!(progress, vec![1000, 2000, 2500]);
}

#[test]
fn foreign_layers_come_from_their_urls() {
    let data = blob_bytes(4000);
    let digest = Digest::of_bytes(&data);
    let d2 = data.clone();
    let server = FakeServer::start(Arc::new(move |r: &Req| {
        match r.path.as_str() {
            "/v2/" => Resp::new(200, "{}"),
            "/dead/layer.tar.gz" => Resp::new(404, "gone"),
            "/foreign/layer.tar.gz" => {
                // No registry credentials may travel to a foreign URL.
                assert!(r.header("authorization").is_none());
                Resp::new(200, d2.clone())
            }
            _ => Resp::new(
                404,
                r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}"#,
            ),
        }
    }));
    let mut desc = Descriptor::new(
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        digest.clone(),
        4000,
    );
    desc.urls = Some(vec![
        format!("http://{}/dead/layer.tar.gz", server.host()),
        format!("http://{}/foreign/layer.tar.gz", server.host()),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let session =
        Session::new(&server.host(), Some(Credentials::new("u", "p")), &options()).unwrap();
    session
        .fetch_blob("app", &desc, &store, &mut |_| {})
        .unwrap();
    assert_eq!(store.read_blob(&digest).unwrap(), data);
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&"/dead/layer.tar.gz".to_owned()),
        "{paths:?}"
    );
    assert!(!paths.iter().any(|p| p.contains("/blobs/")), "{paths:?}");
}
