//! The registry server driven in-process over loopback with a tiny HTTP/1.1 client: the
//! spec's answers to good and malformed requests, uploads, manifests, listings, auth and GC.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};

use skiff_image::Digest;
use skiff_registry::server::{self, Config, Server};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

struct TestServer {
    addr: SocketAddr,
    root: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    fn start() -> TestServer {
        Self::start_with(|_| {})
    }

    fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_at(dir.path().join("reg"), tweak);
        s._dir = Some(dir);
        s
    }

    fn start_at(root: PathBuf, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            addr: "127.0.0.1:0".into(),
            root: root.clone(),
            htpasswd: None,
            tls: None,
            read_only: false,
        };
        tweak(&mut config);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let server = Server::bind(&config).await.unwrap();
                addr_tx.send(server.local_addr()).unwrap();
                server
                    .run(async move {
                        let _ = stop_rx.await;
                    })
                    .await;
            });
        });
        let addr = addr_rx.recv().unwrap();
        TestServer {
            addr,
            root,
            stop: Some(stop_tx),
            thread: Some(thread),
            _dir: None,
        }
    }

    fn req(&self, method: &str, path: &str) -> Req {
        Req {
            addr: self.addr,
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Stops the server (waiting for it) and hands back its root.
    fn stop(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.shutdown();
        (self.root.clone(), self._dir.take())
    }

    fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn blob_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.root.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Pushes a blob monolithically; returns its digest.
    fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let d = digest(data);
        let r = self
            .req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(data)
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
        d
    }

    /// Pushes config + one layer and a manifest under `tag`; returns the manifest digest.
    fn push_image(&self, repo: &str, tag: &str, seed: &str) -> String {
        let config = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"seed\":\"{seed}\"}}");
        let layer = format!("layer of {seed}");
        let cd = self.push_blob(repo, config.as_bytes());
        let ld = self.push_blob(repo, layer.as_bytes());
        let m = manifest(&cd, config.len(), &[(&ld, layer.len())], None);
        let r = self
            .req("PUT", &format!("/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(m.as_bytes())
            .send();
        assert_eq!(r.status, 201, "{}", r.text());
        digest(m.as_bytes())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn digest(data: &[u8]) -> String {
    Digest::of_bytes(data).to_string()
}

fn manifest(
    config: &str,
    config_size: usize,
    layers: &[(&str, usize)],
    subject: Option<&str>,
) -> String {
    let layers: Vec<String> = layers
        .iter()
        .map(|(d, s)| {
            format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{d}","size":{s}}}"#)
        })
        .collect();
    let subject = subject
        .map(|s| format!(r#","subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{s}","size":1}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{}]{subject}}}"#,
        layers.join(",")
    )
}

struct Req {
    addr: SocketAddr,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
    /// The `code` of the first error in a JSON error body.
    fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

impl Req {
    fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn body(mut self, b: &[u8]) -> Self {
        self.body = b.to_vec();
        self
    }
    /// Sends with `Content-Length` (unless the caller sets `Transfer-Encoding`).
    fn send(self) -> Resp {
        let chunked = self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding"));
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.method, self.path, self.addr
        );
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let mut body = self.body.clone();
        if chunked {
            let mut c = Vec::new();
            // Small pieces, so the server sees many frames (but not millions for big bodies).
            for piece in self.body.chunks((self.body.len() / 64).max(3)) {
                c.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                c.extend_from_slice(piece);
                c.extend_from_slice(b"\r\n");
            }
            c.extend_from_slice(b"0\r\n\r\n");
            body = c;
        } else if !self
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut s = TcpStream::connect(self.addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        // The server may answer (413) and close before taking the whole body.
        let _ = s.write_all(&body);
        let mut raw = Vec::new();
        if let Err(e) = s.read_to_end(&mut raw) {
            assert!(!raw.is_empty(), "reading the response: {e}");
        }
        parse_response(&raw, self.method == "HEAD")
    }
}

fn parse_response(raw: &[u8], head: bool) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let text = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut headers = HashMap::new();
    for l in lines {
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let body = if head {
        Vec::new()
    } else {
        raw[split + 4..].to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

#[test]
fn base_endpoint_answers_with_the_api_version() {
    let s = TestServer::start();
    let r = s.req("GET", "/v2/").send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Docker-Distribution-API-Version"),
        Some("registry/2.0")
    );
}

#[test]
fn monolithic_blob_is_served_whole_and_by_range() {
    let s = TestServer::start();
    let data = b"0123456789";
    let d = s.push_blob("lib/x", data);
    let r = s.req("HEAD", &format!("/v2/lib/x/blobs/{d}")).send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Length"), Some("10"));
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    let r = s.req("GET", &format!("/v2/lib/x/blobs/{d}")).send();
    assert_eq!(r.body, data);
    let r = s
        .req("GET", &format!("/v2/lib/x/blobs/{d}"))
        .header("Range", "bytes=3-5")
        .send();
    assert_eq!(r.status, 206);
    assert_eq!(r.body, b"345");
    assert_eq!(r.header("Content-Range"), Some("bytes 3-5/10"));
    let r = s
        .req("GET", &format!("/v2/lib/x/blobs/{d}"))
        .header("Range", "bytes=7-")
        .send();
    assert_eq!((r.status, r.body.as_slice()), (206, &b"789"[..]));
    let r = s
        .req("GET", &format!("/v2/lib/x/blobs/{d}"))
        .header("Range", "bytes=10-")
        .send();
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Content-Range"), Some("bytes */10"));
    // Another repository does not see it until it is mounted or pushed there.
    let r = s.req("GET", &format!("/v2/other/blobs/{d}")).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UNKNOWN"));
    // DELETE unlinks it from the repository.
    let r = s.req("DELETE", &format!("/v2/lib/x/blobs/{d}")).send();
    assert_eq!(r.status, 202);
    let r = s.req("HEAD", &format!("/v2/lib/x/blobs/{d}")).send();
    assert_eq!(r.status, 404);
}

fn start_upload(s: &TestServer, repo: &str) -> String {
    let r = s.req("POST", &format!("/v2/{repo}/blobs/uploads/")).send();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("Range"), Some("0-0"));
    assert!(r.header("Docker-Upload-UUID").is_some());
    r.header("Location").unwrap().to_owned()
}

#[test]
fn chunked_upload_checks_content_range_and_reports_status() {
    let s = TestServer::start();
    let loc = start_upload(&s, "chunky");
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "0-4")
        .body(b"hello")
        .send();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.header("Range"), Some("0-4"));
    let loc = r.header("Location").unwrap().to_owned();
    let r = s.req("GET", &loc).send();
    assert_eq!(r.status, 204);
    assert_eq!(r.header("Range"), Some("0-4"));
    // Out of order: 416 with the current range, and nothing appended.
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "7-9")
        .body(b"abc")
        .send();
    assert_eq!(r.status, 416);
    assert_eq!(r.header("Range"), Some("0-4"));
    // A range that disagrees with the body length.
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "5-9")
        .body(b"abc")
        .send();
    assert_eq!(r.status, 416);
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "junk")
        .body(b"abc")
        .send();
    assert_eq!(r.status, 416);
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "5-5")
        .body(b" ")
        .send();
    assert_eq!((r.status, r.header("Range")), (202, Some("0-5")));
    // Final chunk in the PUT.
    let d = digest(b"hello world");
    let r = s
        .req("PUT", &format!("{loc}?digest={d}"))
        .header("Content-Range", "6-10")
        .body(b"world")
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/chunky/blobs/{d}").as_str())
    );
    assert_eq!(r.header("Docker-Content-Digest"), Some(d.as_str()));
    let r = s.req("GET", &format!("/v2/chunky/blobs/{d}")).send();
    assert_eq!(r.body, b"hello world");
    // The session is over.
    let r = s.req("GET", &loc).send();
    assert_eq!((r.status, r.code().as_str()), (404, "BLOB_UPLOAD_UNKNOWN"));
}

#[test]
fn streamed_upload_without_content_range_is_appended() {
    let s = TestServer::start();
    let loc = start_upload(&s, "stream");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let r = s
        .req("PATCH", &loc)
        .header("Transfer-Encoding", "chunked")
        .body(&data)
        .send();
    assert_eq!(r.status, 202);
    assert_eq!(r.header("Range"), Some("0-99999"));
    let d = digest(&data);
    let r = s.req("PUT", &format!("{loc}?digest={d}")).send();
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s.req("GET", &format!("/v2/stream/blobs/{d}")).send();
    assert_eq!(r.body, data);
}

#[test]
fn digest_mismatch_is_refused_and_nothing_is_stored() {
    let s = TestServer::start();
    let wrong = digest(b"something else");
    // Monolithic.
    let r = s
        .req("POST", &format!("/v2/x/blobs/uploads/?digest={wrong}"))
        .body(b"payload")
        .send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // Session.
    let loc = start_upload(&s, "x");
    let r = s.req("PATCH", &loc).body(b"payload").send();
    assert_eq!(r.status, 202);
    let r = s.req("PUT", &format!("{loc}?digest={wrong}")).send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    for d in [wrong, digest(b"payload")] {
        let r = s.req("HEAD", &format!("/v2/x/blobs/{d}")).send();
        assert_eq!(r.status, 404);
    }
    assert!(s.blob_files().is_empty(), "{:?}", s.blob_files());
    assert!(
        std::fs::read_dir(s.root.join("ingest"))
            .unwrap()
            .next()
            .is_none(),
        "no partial upload is left behind"
    );
    let r = s.req("GET", &loc).send();
    assert_eq!(r.status, 404);
}

#[test]
fn malformed_requests_get_the_spec_codes() {
    let s = TestServer::start();
    let cases: &[(&str, &str, u16, &str)] = &[
        ("GET", "/v2/x/blobs/sha256:nothex", 400, "DIGEST_INVALID"),
        ("GET", "/v2/x/blobs/md5:abcd", 400, "DIGEST_INVALID"),
        (
            "GET",
            "/v2/x/blobs/uploads/0123456789abcdef0123456789abcdef",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            "PATCH",
            "/v2/x/blobs/uploads/nope",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        (
            "DELETE",
            "/v2/x/blobs/uploads/nope",
            404,
            "BLOB_UPLOAD_UNKNOWN",
        ),
        ("GET", "/v2/Upper/tags/list", 400, "NAME_INVALID"),
        ("GET", "/v2/a..b/manifests/latest", 400, "NAME_INVALID"),
        ("GET", "/v2/x/manifests/latest", 404, "MANIFEST_UNKNOWN"),
        ("GET", "/v2/x/tags/list", 404, "NAME_UNKNOWN"),
        ("GET", "/v2/x/referrers/sha256:zz", 400, "DIGEST_INVALID"),
        ("POST", "/v2/x/manifests/latest", 405, "UNSUPPORTED"),
    ];
    for (method, path, status, code) in cases {
        let r = s.req(method, path).send();
        assert_eq!(
            (r.status, r.code()),
            (*status, code.to_string()),
            "{method} {path}"
        );
    }
    // Finishing an upload needs a digest.
    let loc = start_upload(&s, "x");
    let r = s.req("PUT", &loc).send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
}

#[test]
fn manifests_round_trip_with_negotiation_and_reference_checks() {
    let s = TestServer::start();
    let config = b"{}";
    let cd = s.push_blob("app", config);
    let ld = s.push_blob("app", b"layer");
    let m = manifest(&cd, 2, &[(&ld, 5)], None);
    let md = digest(m.as_bytes());
    let r = s
        .req("PUT", "/v2/app/manifests/v1")
        .header("Content-Type", OCI_MANIFEST)
        .body(m.as_bytes())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("Docker-Content-Digest"), Some(md.as_str()));
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/app/manifests/{md}").as_str())
    );
    for reference in ["v1", md.as_str()] {
        let r = s
            .req("GET", &format!("/v2/app/manifests/{reference}"))
            .header("Accept", &format!("{DOCKER_MANIFEST}, {OCI_MANIFEST}"))
            .send();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, m.as_bytes(), "stored as pushed");
        assert_eq!(r.header("Content-Type"), Some(OCI_MANIFEST));
        assert_eq!(r.header("Docker-Content-Digest"), Some(md.as_str()));
    }
    let r = s.req("HEAD", "/v2/app/manifests/v1").send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Length"),
        Some(m.len().to_string().as_str())
    );
    // A client that does not take OCI manifests is not sent one.
    let r = s
        .req("GET", "/v2/app/manifests/v1")
        .header("Accept", DOCKER_MANIFEST)
        .send();
    assert_eq!((r.status, r.code().as_str()), (404, "MANIFEST_UNKNOWN"));
    // References must exist in the repository.
    let missing = digest(b"missing");
    let bad = manifest(&cd, 2, &[(&missing, 7)], None);
    let r = s
        .req("PUT", "/v2/app/manifests/v2")
        .header("Content-Type", OCI_MANIFEST)
        .body(bad.as_bytes())
        .send();
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    let r = s
        .req("PUT", "/v2/elsewhere/manifests/v1")
        .header("Content-Type", OCI_MANIFEST)
        .body(m.as_bytes())
        .send();
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    // By digest: the digest must be the body's.
    let r = s
        .req("PUT", &format!("/v2/app/manifests/{}", digest(b"x")))
        .header("Content-Type", OCI_MANIFEST)
        .body(m.as_bytes())
        .send();
    assert_eq!((r.status, r.code().as_str()), (400, "DIGEST_INVALID"));
    // Invalid documents.
    for (ct, body) in [
        (OCI_MANIFEST, "{nope"),
        (OCI_MANIFEST, r#"{"schemaVersion":1}"#),
        (OCI_INDEX, m.as_str()),
    ] {
        let r = s
            .req("PUT", "/v2/app/manifests/bad")
            .header("Content-Type", ct)
            .body(body.as_bytes())
            .send();
        assert_eq!(
            (r.status, r.code().as_str()),
            (400, "MANIFEST_INVALID"),
            "{body}"
        );
    }
    // An index whose children exist.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{md}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
        m.len()
    );
    let r = s
        .req("PUT", "/v2/app/manifests/multi")
        .header("Content-Type", OCI_INDEX)
        .body(index.as_bytes())
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    let orphan = index.replace(&md, &missing);
    let r = s
        .req("PUT", "/v2/app/manifests/multi2")
        .header("Content-Type", OCI_INDEX)
        .body(orphan.as_bytes())
        .send();
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN")
    );
    // DELETE a tag, then the manifest by digest.
    assert_eq!(
        s.req("DELETE", "/v2/app/manifests/multi").send().status,
        202
    );
    assert_eq!(s.req("GET", "/v2/app/manifests/multi").send().status, 404);
    assert_eq!(
        s.req("DELETE", &format!("/v2/app/manifests/{md}"))
            .send()
            .status,
        202
    );
    assert_eq!(
        s.req("GET", "/v2/app/manifests/v1").send().status,
        404,
        "tags go with it"
    );
    assert_eq!(
        s.req("DELETE", &format!("/v2/app/manifests/{md}"))
            .send()
            .status,
        404
    );
}

#[test]
fn oversized_manifest_is_refused_with_413() {
    let s = TestServer::start();
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = s
        .req("PUT", "/v2/big/manifests/latest")
        .header("Content-Type", OCI_MANIFEST)
        .body(&big)
        .send();
    assert_eq!(r.status, 413);
    assert_eq!(r.code(), "MANIFEST_INVALID");
    // Without a Content-Length, the limit is enforced while reading.
    let r = s
        .req("PUT", "/v2/big/manifests/latest")
        .header("Content-Type", OCI_MANIFEST)
        .header("Transfer-Encoding", "chunked")
        .body(&big)
        .send();
    assert_eq!(r.status, 413);
}

#[test]
fn tags_and_catalog_paginate_with_link_headers() {
    let s = TestServer::start();
    let md = s.push_image("paged", "a", "1");
    for tag in ["b", "c", "d", "e"] {
        let m = s.req("GET", "/v2/paged/manifests/a").send().body;
        let r = s
            .req("PUT", &format!("/v2/paged/manifests/{tag}"))
            .header("Content-Type", OCI_MANIFEST)
            .body(&m)
            .send();
        assert_eq!(r.status, 201);
        assert_eq!(r.header("Docker-Content-Digest"), Some(md.as_str()));
    }
    let mut seen = Vec::new();
    let mut next = Some("/v2/paged/tags/list?n=2".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let r = s.req("GET", &path).send();
        assert_eq!(r.status, 200);
        let j = r.json();
        assert_eq!(j["name"], "paged");
        let tags: Vec<String> = j["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        assert!(tags.len() <= 2);
        seen.extend(tags);
        pages += 1;
        next = r.header("Link").map(|l| {
            assert!(l.ends_with("rel=\"next\""), "{l}");
            l[1..l.find('>').unwrap()].to_owned()
        });
    }
    assert_eq!(seen, ["a", "b", "c", "d", "e"]);
    assert_eq!(pages, 3);
    let r = s.req("GET", "/v2/paged/tags/list?last=c").send();
    assert_eq!(r.json()["tags"], serde_json::json!(["d", "e"]));
    let r = s.req("GET", "/v2/paged/tags/list?n=0").send();
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    assert!(r.header("Link").is_none());
    for repo in ["r1", "r2", "r3"] {
        s.push_image(repo, "latest", repo);
    }
    let r = s.req("GET", "/v2/_catalog?n=2").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["paged", "r1"]));
    assert_eq!(
        r.header("Link"),
        Some("</v2/_catalog?n=2&last=r1>; rel=\"next\"")
    );
    let r = s.req("GET", "/v2/_catalog?n=2&last=r1").send();
    assert_eq!(r.json()["repositories"], serde_json::json!(["r2", "r3"]));
    assert!(r.header("Link").is_none());
}

#[test]
fn cross_repository_mount_links_without_upload() {
    let s = TestServer::start();
    let d = s.push_blob("src", b"shared layer");
    let r = s
        .req(
            "POST",
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
        )
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.header("Location"),
        Some(format!("/v2/dst/blobs/{d}").as_str())
    );
    assert_eq!(
        s.req("HEAD", &format!("/v2/dst/blobs/{d}")).send().status,
        200
    );
    // Unknown source or blob: an ordinary upload session instead.
    let r = s
        .req(
            "POST",
            &format!("/v2/dst2/blobs/uploads/?mount={d}&from=nowhere"),
        )
        .send();
    assert_eq!(r.status, 202);
    assert!(r
        .header("Location")
        .unwrap()
        .starts_with("/v2/dst2/blobs/uploads/"));
    let r = s
        .req(
            "POST",
            &format!("/v2/dst2/blobs/uploads/?mount={}&from=src", digest(b"x")),
        )
        .send();
    assert_eq!(r.status, 202);
}

#[test]
fn referrers_list_manifests_with_a_subject() {
    let s = TestServer::start();
    let subject = s.push_image("signed", "latest", "base");
    let sig_config = b"{\"sig\":1}";
    let cd = s.push_blob("signed", sig_config);
    let ld = s.push_blob("signed", b"signature bytes");
    let mut referrer: serde_json::Value = serde_json::from_str(&manifest(
        &cd,
        sig_config.len(),
        &[(&ld, 15)],
        Some(&subject),
    ))
    .unwrap();
    referrer["config"]["mediaType"] = "application/vnd.example.signature".into();
    referrer["annotations"] = serde_json::json!({"org.example.k": "v"});
    let bytes = serde_json::to_vec(&referrer).unwrap();
    let rd = digest(&bytes);
    let r = s
        .req("PUT", &format!("/v2/signed/manifests/{rd}"))
        .header("Content-Type", OCI_MANIFEST)
        .body(&bytes)
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("OCI-Subject"), Some(subject.as_str()));
    let r = s
        .req("GET", &format!("/v2/signed/referrers/{subject}"))
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some(OCI_INDEX));
    let j = r.json();
    assert_eq!(j["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(j["manifests"][0]["digest"], rd.as_str());
    assert_eq!(
        j["manifests"][0]["artifactType"],
        "application/vnd.example.signature"
    );
    assert_eq!(j["manifests"][0]["annotations"]["org.example.k"], "v");
    let r = s
        .req(
            "GET",
            &format!("/v2/signed/referrers/{subject}?artifactType=application/other"),
        )
        .send();
    assert_eq!(r.header("OCI-Filters-Applied"), Some("artifactType"));
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    // An unknown subject is an empty list, never a 404.
    let r = s
        .req("GET", &format!("/v2/signed/referrers/{}", digest(b"none")))
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
}

#[test]
fn search_finds_repositories_by_substring() {
    let s = TestServer::start();
    s.push_image("library/busybox", "latest", "a");
    s.push_image("tools/busyloop", "latest", "b");
    s.push_image("other", "latest", "c");
    let r = s.req("GET", "/v1/search?q=busy&n=1").send();
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["num_results"], 2);
    assert_eq!(j["query"], "busy");
    assert_eq!(j["results"].as_array().unwrap().len(), 1);
    assert_eq!(j["results"][0]["name"], "library/busybox");
    assert_eq!(j["results"][0]["star_count"], 0);
    assert_eq!(j["results"][0]["is_official"], false);
}

#[test]
fn basic_auth_from_htpasswd() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(
        &htpasswd,
        format!("# users\nalice:{}\n", bcrypt::hash("s3cret", 4).unwrap()),
    )
    .unwrap();
    let s = TestServer::start_with(|c| c.htpasswd = Some(htpasswd.clone()));
    let r = s.req("GET", "/v2/").send();
    assert_eq!((r.status, r.code().as_str()), (401, "UNAUTHORIZED"));
    assert_eq!(r.header("WWW-Authenticate"), Some("Basic realm=\"skiff\""));
    // alice:wrong, bob:s3cret
    for creds in ["YWxpY2U6d3Jvbmc=", "Ym9iOnMzY3JldA=="] {
        let r = s
            .req("GET", "/v2/")
            .header("Authorization", &format!("Basic {creds}"))
            .send();
        assert_eq!(r.status, 401);
    }
    // alice:s3cret
    let r = s
        .req("GET", "/v2/")
        .header("Authorization", "Basic YWxpY2U6czNjcmV0")
        .send();
    assert_eq!(r.status, 200);
    let r = s.req("GET", "/v2/_catalog").send();
    assert_eq!(r.status, 401, "every endpoint is protected");
}

#[test]
fn read_only_refuses_writes() {
    let s = TestServer::start_with(|c| c.read_only = true);
    let r = s.req("POST", "/v2/x/blobs/uploads/").send();
    assert_eq!((r.status, r.code().as_str()), (405, "UNSUPPORTED"));
    let r = s.req("PUT", "/v2/x/manifests/latest").body(b"{}").send();
    assert_eq!(r.status, 405);
    assert_eq!(s.req("GET", "/v2/").send().status, 200);
}

#[test]
fn concurrent_pushes_of_one_blob_all_succeed() {
    let s = TestServer::start();
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let d = digest(&data);
    std::thread::scope(|scope| {
        for i in 0..4 {
            let (s, data, d) = (&s, &data, &d);
            scope.spawn(move || {
                let repo = format!("c{i}");
                let r = s
                    .req("POST", &format!("/v2/{repo}/blobs/uploads/?digest={d}"))
                    .body(data)
                    .send();
                assert_eq!(r.status, 201, "{}", r.text());
            });
        }
    });
    assert_eq!(
        s.blob_files(),
        vec![d.trim_start_matches("sha256:").to_owned()]
    );
    for i in 0..4 {
        let r = s.req("GET", &format!("/v2/c{i}/blobs/{d}")).send();
        assert_eq!(r.body.len(), data.len());
    }
}

#[test]
fn upload_session_survives_a_server_restart() {
    let s = TestServer::start();
    let loc = start_upload(&s, "resume");
    let r = s
        .req("PATCH", &loc)
        .header("Content-Range", "0-2")
        .body(b"abc")
        .send();
    assert_eq!(r.status, 202);
    let (root, dir) = s.stop();
    let s = TestServer::start_at(root, |_| {});
    let r = s.req("GET", &loc).send();
    assert_eq!((r.status, r.header("Range")), (204, Some("0-2")));
    let d = digest(b"abcdef");
    let r = s
        .req("PUT", &format!("{loc}?digest={d}"))
        .header("Content-Range", "3-5")
        .body(b"def")
        .send();
    assert_eq!(r.status, 201, "{}", r.text());
    drop(s);
    drop(dir);
}

#[test]
fn cancelled_upload_is_gone() {
    let s = TestServer::start();
    let loc = start_upload(&s, "cancel");
    assert_eq!(s.req("PATCH", &loc).body(b"abc").send().status, 202);
    assert_eq!(s.req("DELETE", &loc).send().status, 204);
    assert_eq!(s.req("GET", &loc).send().status, 404);
    assert!(std::fs::read_dir(s.root.join("ingest"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn gc_deletes_only_unreferenced_blobs() {
    let s = TestServer::start();
    let keep = s.push_image("gc", "keep", "kept");
    let drop_md = s.push_image("gc", "drop", "dropped");
    let stray = s.push_blob("gc", b"never referenced");
    let before = s.blob_files();
    assert_eq!(before.len(), 7);
    assert_eq!(
        s.req("DELETE", &format!("/v2/gc/manifests/{drop_md}"))
            .send()
            .status,
        202
    );
    let (root, dir) = s.stop();

    let dry = server::gc(&root, true).unwrap();
    assert_eq!(dry.marked, 3);
    assert_eq!(dry.unreferenced.len(), 4);
    assert!(dry.unreferenced.iter().any(|(d, _)| d.to_string() == stray));
    assert_eq!(list_blobs(&root).len(), 7, "dry run deletes nothing");

    let report = server::gc(&root, false).unwrap();
    assert_eq!(report.unreferenced.len(), 4);
    assert_eq!(list_blobs(&root).len(), 3);

    let s = TestServer::start_at(root, |_| {});
    let r = s.req("GET", "/v2/gc/manifests/keep").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Docker-Content-Digest"), Some(keep.as_str()));
    let r = s.req("HEAD", &format!("/v2/gc/blobs/{stray}")).send();
    assert_eq!(r.status, 404);
    drop(s);
    drop(dir);
}

fn list_blobs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}
