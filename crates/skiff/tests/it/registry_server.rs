//! `skiff registry serve` against real clients: skopeo pushes into it and pulls back out with
//! every digest kept, through htpasswd auth, TLS and `--read-only`, and images travel between
//! it and Debian's docker-registry (distribution) unchanged. `skiff registry gc` on the result.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::harness::{need_tool, require, run_command, tool_ok, Out, Skiff};

/// A `skiff registry serve` child, killed by its pid when dropped (also when a test fails).
struct Served {
    child: Child,
    addr: String,
    root: PathBuf,
}

impl Served {
    fn start(s: &Skiff, name: &str, extra: &[&str]) -> Served {
        let root = s.path(name);
        let mut cmd = s.command(["registry", "serve", "--addr", "127.0.0.1:0", "--root"]);
        cmd.arg(&root).args(extra);
        cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn skiff registry serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skiff registry serve did not print its address: {line:?}");
        };
        Served {
            addr: addr.to_owned(),
            child,
            root,
        }
    }

    fn image(&self, repo_tag: &str) -> String {
        format!("docker://{}/{repo_tag}", self.addr)
    }

    /// Stops the server with SIGTERM (its graceful path) and checks it exits cleanly.
    fn stop(mut self) {
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "registry serve exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "registry serve ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> Out {
    let mut cmd = Command::new("skopeo");
    cmd.args(args).stdin(Stdio::null());
    run_command(cmd, None)
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest of the manifest a registry serves for `image` (hash of the raw bytes), checked
/// against the digest skopeo reports from the registry's headers.
fn served_digest(image: &str, extra: &[&str]) -> String {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    args.extend_from_slice(extra);
    args.push(image);
    let raw = skopeo(&args).assert_ok();
    let digest = format!("sha256:{}", sha256_hex(&raw.raw_stdout));
    let mut args = vec!["inspect", "--tls-verify=false", "--format", "{{.Digest}}"];
    args.extend_from_slice(extra);
    args.push(image);
    let reported = skopeo(&args).assert_ok();
    assert_eq!(
        reported.stdout.trim(),
        digest,
        "Docker-Content-Digest vs body"
    );
    digest
}

/// Every blob of a `dir:` copy has the digest its file name says; returns the manifest digest.
fn check_dir_copy(dir: &Path) -> String {
    for entry in fs::read_dir(dir).expect("read dir copy") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        if name.len() == 64 {
            let bytes = fs::read(&path).expect("read blob");
            assert_eq!(sha256_hex(&bytes), name, "blob {name} arrived intact");
        }
    }
    let manifest = fs::read(dir.join("manifest.json")).expect("manifest.json");
    format!("sha256:{}", sha256_hex(&manifest))
}

/// `skiff save` of the busybox base image, as a docker-archive for skopeo.
fn busybox_archive(s: &Skiff) -> String {
    s.import_busybox("busybox:latest");
    let tar = s.path("busybox.tar");
    s.ok(["save", "-o", tar.to_str().expect("utf-8"), "busybox:latest"]);
    format!("docker-archive:{}", tar.display())
}

#[test]
fn skopeo_push_and_pull_keep_every_digest() {
    require!(need_tool("skopeo"));
    let s = Skiff::new();
    let archive = busybox_archive(&s);
    let reg = Served::start(&s, "registry", &[]);

    tool_ok(
        "skopeo",
        [
            "copy",
            "--dest-tls-verify=false",
            &archive,
            &reg.image("lib/busybox:v1"),
        ],
    );
    let pushed = served_digest(&reg.image("lib/busybox:v1"), &[]);

    // Pull it back as it is stored (dir: keeps the manifest bytes) and check every blob.
    let out = s.path("pulled");
    tool_ok(
        "skopeo",
        [
            "copy",
            "--src-tls-verify=false",
            &reg.image("lib/busybox:v1"),
            &format!("dir:{}", out.display()),
        ],
    );
    assert_eq!(
        check_dir_copy(&out),
        pushed,
        "the manifest comes back byte for byte"
    );

    // Push the pulled copy under another name: same bytes, same digest (blobs are mounted or
    // found present).
    tool_ok(
        "skopeo",
        [
            "copy",
            "--dest-tls-verify=false",
            &format!("dir:{}", out.display()),
            &reg.image("copies/busybox:again"),
        ],
    );
    assert_eq!(
        served_digest(&reg.image("copies/busybox:again"), &[]),
        pushed
    );

    // An OCI manifest, converted by skopeo on the way in, is served as pushed too.
    tool_ok(
        "skopeo",
        [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--format",
            "oci",
            &reg.image("lib/busybox:v1"),
            &reg.image("lib/busybox-oci:v1"),
        ],
    );
    let oci = served_digest(&reg.image("lib/busybox-oci:v1"), &[]);
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &reg.image("lib/busybox-oci:v1"),
    ])
    .assert_ok();
    assert!(
        raw.stdout
            .contains("application/vnd.oci.image.manifest.v1+json")
            || !raw.stdout.contains("mediaType\":\"application/vnd.docker"),
        "an OCI manifest: {}",
        raw.stdout
    );
    let out2 = s.path("pulled-oci");
    tool_ok(
        "skopeo",
        [
            "copy",
            "--src-tls-verify=false",
            &reg.image("lib/busybox-oci:v1"),
            &format!("dir:{}", out2.display()),
        ],
    );
    assert_eq!(check_dir_copy(&out2), oci);

    let tags = skopeo(&["list-tags", "--tls-verify=false", &reg.image("lib/busybox")]).assert_ok();
    assert!(tags.stdout.contains("\"v1\""), "{}", tags.stdout);

    // Nothing is unreferenced after these pushes; gc (with the server stopped) keeps it all.
    let root = reg.root.clone();
    reg.stop();
    let gc = s.ok([
        "registry",
        "gc",
        "--dry-run",
        "--root",
        root.to_str().expect("utf-8"),
    ]);
    assert!(
        gc.stdout.contains(" 0 blobs eligible for deletion"),
        "{}",
        gc.stdout
    );
}

#[test]
fn htpasswd_auth_gates_skopeo() {
    require!(need_tool("skopeo"));
    require!(need_tool("htpasswd"));
    let s = Skiff::new();
    let archive = busybox_archive(&s);
    let line = tool_ok("htpasswd", ["-nbB", "alice", "s3cret"]);
    let file = s.write("htpasswd", line.stdout.trim().as_bytes());
    let reg = Served::start(
        &s,
        "registry",
        &["--htpasswd", file.to_str().expect("utf-8")],
    );
    let target = reg.image("private/busybox:latest");

    let denied = skopeo(&["copy", "--dest-tls-verify=false", &archive, &target]).assert_fail();
    assert!(
        denied.stderr.contains("authentication required") || denied.stderr.contains("unauthorized"),
        "{denied}"
    );
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:wrong",
        &archive,
        &target,
    ])
    .assert_fail();
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:s3cret",
        &archive,
        &target,
    ])
    .assert_ok();
    served_digest(&target, &["--creds", "alice:s3cret"]);
    skopeo(&["inspect", "--raw", "--tls-verify=false", &target]).assert_fail();
}

#[test]
fn read_only_registry_refuses_pushes_but_serves() {
    require!(need_tool("skopeo"));
    let s = Skiff::new();
    let archive = busybox_archive(&s);
    let reg = Served::start(&s, "registry", &[]);
    tool_ok(
        "skopeo",
        [
            "copy",
            "--dest-tls-verify=false",
            &archive,
            &reg.image("ro/busybox:1"),
        ],
    );
    let digest = served_digest(&reg.image("ro/busybox:1"), &[]);
    reg.stop();
    let reg = Served::start(&s, "registry", &["--read-only"]);
    assert_eq!(served_digest(&reg.image("ro/busybox:1"), &[]), digest);
    let out = skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &archive,
        &reg.image("ro/busybox:2"),
    ])
    .assert_fail();
    assert!(
        out.stderr.contains("unsupported") || out.stderr.contains("405"),
        "{out}"
    );
}

#[test]
fn tls_serving_with_a_self_signed_certificate() {
    require!(need_tool("skopeo"));
    require!(need_tool("openssl"));
    let s = Skiff::new();
    let archive = busybox_archive(&s);
    let (cert, key) = (s.path("cert.pem"), s.path("key.pem"));
    tool_ok(
        "openssl",
        [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            key.to_str().expect("utf-8"),
            "-out",
            cert.to_str().expect("utf-8"),
        ],
    );
    let reg = Served::start(
        &s,
        "registry",
        &[
            "--tls-cert",
            cert.to_str().expect("utf-8"),
            "--tls-key",
            key.to_str().expect("utf-8"),
        ],
    );
    // Trust the certificate through a certs.d-style directory: skopeo then speaks TLS.
    let certs = s.path("certs.d");
    fs::create_dir_all(&certs).expect("certs dir");
    fs::copy(&cert, certs.join("ca.crt")).expect("copy cert");
    let certs = certs.to_str().expect("utf-8");
    tool_ok(
        "skopeo",
        [
            "copy",
            "--dest-cert-dir",
            certs,
            &archive,
            &reg.image("tls/busybox:1"),
        ],
    );
    let raw = skopeo(&[
        "inspect",
        "--raw",
        "--cert-dir",
        certs,
        &reg.image("tls/busybox:1"),
    ])
    .assert_ok();
    assert!(raw.stdout.contains("schemaVersion"), "{raw}");
}

/// A free loopback port (bound then released: the small race is acceptable for a test).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Debian's docker-registry on a loopback port, killed by its pid when dropped.
struct Distribution {
    child: Child,
    addr: String,
}

impl Distribution {
    fn start(s: &Skiff) -> Distribution {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            s.path("distribution").display()
        );
        let config = s.write("distribution.yml", config.as_bytes());
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let d = Distribution { child, addr };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(&d.addr).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        d
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn images_travel_between_docker_registry_and_skiff_unchanged() {
    require!(need_tool("skopeo"));
    require!(need_tool("docker-registry"));
    let s = Skiff::new();
    let archive = busybox_archive(&s);
    let dist = Distribution::start(&s);
    let reg = Served::start(&s, "registry", &[]);
    let in_dist = format!("docker://{}/lib/busybox:1", dist.addr);
    tool_ok(
        "skopeo",
        ["copy", "--dest-tls-verify=false", &archive, &in_dist],
    );
    let digest = served_digest(&in_dist, &[]);
    tool_ok(
        "skopeo",
        [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &in_dist,
            &reg.image("mirror/busybox:1"),
        ],
    );
    assert_eq!(served_digest(&reg.image("mirror/busybox:1"), &[]), digest);
    let back = format!("docker://{}/back/busybox:1", dist.addr);
    tool_ok(
        "skopeo",
        [
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            &reg.image("mirror/busybox:1"),
            &back,
        ],
    );
    assert_eq!(served_digest(&back, &[]), digest);
}
