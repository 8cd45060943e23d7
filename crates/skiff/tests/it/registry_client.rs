//! skiff's registry client against Debian's `docker-registry` (distribution 2.8) on a
//! loopback port: push, skopeo reading what skiff pushed, pull back, up-to-date pulls,
//! missing tags, cross-repository mounts, pull by digest, and htpasswd (Basic) login/logout
//! with docker's config.json.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{need_tool, require, run_command, Out, Skiff};

/// A `docker-registry serve` process with filesystem storage under a temp dir; killed (by
/// its pid) and reaped when dropped, also when the test fails.
struct DockerRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl DockerRegistry {
    fn start(htpasswd: Option<&Path>) -> DockerRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let storage = dir.path().join("storage");
        fs::create_dir_all(&storage).expect("storage dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n  secret: skiff-test\n",
            storage.display()
        );
        if let Some(h) = htpasswd {
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: skiff-test\n    path: {}\n",
                h.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("log file");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = DockerRegistry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for DockerRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// skiff with its docker config directory (credentials) set.
fn run_cfg(sk: &Skiff, docker_config: &Path, args: &[&str], stdin: Option<&Path>) -> Out {
    let mut cmd = sk.command(args);
    cmd.env("DOCKER_CONFIG", docker_config);
    if let Some(f) = stdin {
        cmd.stdin(Stdio::from(fs::File::open(f).expect("stdin file")));
    }
    run_command(cmd, None)
}

fn digest_line(out: &Out, tag: &str) -> String {
    let prefix = format!("{tag}: digest: ");
    let line = out
        .lines()
        .into_iter()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no digest line in:\n{out}"))
        .to_owned();
    line[prefix.len()..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn image_id(sk: &Skiff, name: &str) -> String {
    sk.ok(["image", "inspect", "--format", "{{.Id}}", name])
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn push_pull_round_trip_through_docker_registry() {
    require!(need_tool("docker-registry"));
    require!(need_tool("skopeo"));
    let reg = DockerRegistry::start(None);
    let host = reg.host();
    let name = format!("{host}/test/busybox:v1");
    let sk = Skiff::new();
    let cfg = sk.path("docker-config");
    let id = sk.import_busybox(&name);

    let out = run_cfg(&sk, &cfg, &["push", &name], None).assert_ok();
    assert!(
        out.stdout.contains(&format!(
            "The push refers to repository [{host}/test/busybox]"
        )),
        "{out}"
    );
    assert!(out.stdout.contains(": Pushed"), "{out}");
    let digest = digest_line(&out, "v1");

    // skopeo reads exactly what skiff pushed.
    let sk_out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &format!("docker://{name}")])
        .output()
        .expect("skopeo");
    assert!(
        sk_out.status.success(),
        "{}",
        String::from_utf8_lossy(&sk_out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&sk_out.stdout).expect("skopeo json");
    assert_eq!(v["Digest"], digest.as_str());
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ])
        .output()
        .expect("skopeo");
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).expect("manifest json");
    assert_eq!(
        m["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(m["config"]["digest"], id.as_str());
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    );
    {
        use sha2::Digest as _;
        let d = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw.stdout)));
        assert_eq!(d, digest);
    }

    // A second push finds everything there and gives the same digest.
    let again = run_cfg(&sk, &cfg, &["push", &name], None).assert_ok();
    assert!(again.stdout.contains(": Layer already exists"), "{again}");
    assert_eq!(digest_line(&again, "v1"), digest);

    // rmi, then pull back: same image ID.
    sk.ok(["rmi", &name]);
    let pulled = run_cfg(&sk, &cfg, &["pull", &name], None).assert_ok();
    let lines = pulled.lines();
    assert_eq!(lines[0], "v1: Pulling from test/busybox", "{pulled}");
    assert!(
        lines.contains(&format!("Digest: {digest}").as_str()),
        "{pulled}"
    );
    assert!(
        lines.contains(&format!("Status: Downloaded newer image for {name}").as_str()),
        "{pulled}"
    );
    assert_eq!(lines.last().copied(), Some(name.as_str()));
    assert_eq!(image_id(&sk, &name), id);

    let up = run_cfg(&sk, &cfg, &["pull", &name], None).assert_ok();
    assert!(
        up.stdout
            .contains(&format!("Status: Image is up to date for {name}")),
        "{up}"
    );

    // Into an empty store: every layer downloaded, verified, same ID and digest.
    let fresh = Skiff::new();
    let out = run_cfg(&fresh, &cfg, &["pull", &name], None).assert_ok();
    assert!(out.stdout.contains(": Pulling fs layer"), "{out}");
    assert!(out.stdout.contains(": Download complete"), "{out}");
    assert!(out.stdout.contains(": Pull complete"), "{out}");
    assert_eq!(image_id(&fresh, &name), id);
    let digests = fresh
        .ok([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &name,
        ])
        .stdout;
    assert!(
        digests.contains(&format!("{host}/test/busybox@{digest}")),
        "{digests}"
    );
    // The pulled (gzip) layer unpacks, its diff ID checked against the config.
    if crate::harness::need_root().is_ok() {
        let mp = fresh.mount(&name);
        assert!(mp.join("bin/busybox").is_file(), "{}", mp.display());
        fresh.ok(["image", "unmount", &name]);
    }
    // -q prints only the reference.
    let q = run_cfg(&fresh, &cfg, &["pull", "-q", &name], None).assert_ok();
    assert_eq!(q.stdout.trim(), name);

    // By digest.
    let by_digest = format!("{host}/test/busybox@{digest}");
    let out = run_cfg(&Skiff::new(), &cfg, &["pull", &by_digest], None).assert_ok();
    assert_eq!(out.lines().last().copied(), Some(by_digest.as_str()));

    // A missing tag, in docker's words.
    let missing = run_cfg(
        &sk,
        &cfg,
        &["pull", &format!("{host}/test/busybox:nope")],
        None,
    );
    assert_eq!(missing.code, 1, "{missing}");
    assert_eq!(
        missing.stderr.trim(),
        format!(
            "Error response from daemon: manifest for {host}/test/busybox:nope not found: manifest unknown: manifest unknown"
        )
    );

    // Chunked uploads (PATCH with Content-Range) as distribution takes them: the pulled
    // image (its compressed blobs stored) to a second registry, in small chunks.
    let reg2 = DockerRegistry::start(None);
    let chunked = format!("{}/chunked/busybox:v1", reg2.host());
    fresh.ok(["tag", &name, &chunked]);
    let mut cmd = fresh.command(["push", &chunked]);
    cmd.env("DOCKER_CONFIG", &cfg)
        .env("SKIFF_PUSH_CHUNK_SIZE", "65536");
    let out = run_command(cmd, None).assert_ok();
    assert!(out.stdout.contains(": Pushed"), "{out}");
    // The manifest goes as it was received: the same digest on both registries.
    assert_eq!(digest_line(&out, "v1"), digest);
    let back = Skiff::new();
    run_cfg(&back, &cfg, &["pull", &chunked], None).assert_ok();
    assert_eq!(image_id(&back, &chunked), id);

    // The same layers into another repository of the same registry: mounted, not uploaded.
    let other = format!("{host}/other/copy:v1");
    sk.ok(["tag", &name, &other]);
    let out = run_cfg(&sk, &cfg, &["push", &other], None).assert_ok();
    assert!(out.stdout.contains(": Mounted from test/busybox"), "{out}");
    assert_eq!(digest_line(&out, "v1"), digest);
}

fn htpasswd_file(dir: &Path, user: &str, password: &str) -> PathBuf {
    let out = Command::new("htpasswd")
        .args(["-Bbn", user, password])
        .output()
        .expect("htpasswd");
    assert!(out.status.success());
    let p = dir.join("htpasswd");
    fs::write(&p, &out.stdout).expect("write htpasswd");
    p
}

#[test]
fn htpasswd_login_push_and_logout() {
    require!(need_tool("docker-registry"));
    require!(need_tool("htpasswd"));
    let sk = Skiff::new();
    let htpasswd = htpasswd_file(sk.dir(), "skiffer", "s3cret!");
    let reg = DockerRegistry::start(Some(&htpasswd));
    let host = reg.host();
    let name = format!("{host}/private/busybox:latest");
    let cfg = sk.path("docker-config");
    sk.import_busybox(&name);

    let denied = run_cfg(&sk, &cfg, &["push", &name], None);
    assert_eq!(denied.code, 1, "{denied}");
    assert!(
        denied
            .stderr
            .contains("unauthorized: authentication required"),
        "{denied}"
    );

    let bad = sk.write("bad-password", b"nope\n");
    let out = run_cfg(
        &sk,
        &cfg,
        &["login", "-u", "skiffer", "--password-stdin", &host],
        Some(&bad),
    );
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("401 Unauthorized"), "{out}");
    assert!(!cfg.join("config.json").exists());

    let good = sk.write("password", b"s3cret!\n");
    let out = run_cfg(
        &sk,
        &cfg,
        &["login", "-u", "skiffer", "--password-stdin", &host],
        Some(&good),
    )
    .assert_ok();
    assert_eq!(out.stdout.trim(), "Login Succeeded");
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(cfg.join("config.json")).expect("config.json"))
            .expect("json");
    // base64("skiffer:s3cret!")
    assert_eq!(
        config["auths"][host.as_str()]["auth"],
        "c2tpZmZlcjpzM2NyZXQh"
    );

    let out = run_cfg(&sk, &cfg, &["push", &name], None).assert_ok();
    assert!(out.stdout.contains("latest: digest: sha256:"), "{out}");
    let fresh = Skiff::new();
    run_cfg(&fresh, &cfg, &["pull", &name], None).assert_ok();

    let out = run_cfg(&sk, &cfg, &["logout", &host], None).assert_ok();
    assert_eq!(
        out.stdout.trim(),
        format!("Removing login credentials for {host}")
    );
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(cfg.join("config.json")).expect("config.json"))
            .expect("json");
    assert!(config["auths"].get(host.as_str()).is_none(), "{config}");
    let denied = run_cfg(&Skiff::new(), &cfg, &["pull", &name], None);
    assert_eq!(denied.code, 1, "{denied}");
}

#[test]
fn search_falls_back_to_the_catalog() {
    require!(need_tool("docker-registry"));
    let reg = DockerRegistry::start(None);
    let host = reg.host();
    let sk = Skiff::new();
    let cfg = sk.path("docker-config");
    for repo in ["team/alpha", "team/beta", "other/gamma"] {
        let name = format!("{host}/{repo}:latest");
        sk.import_busybox(&name);
        run_cfg(&sk, &cfg, &["push", &name], None).assert_ok();
    }
    let out = run_cfg(&sk, &cfg, &["search", &format!("{host}/team")], None).assert_ok();
    let lines = out.lines();
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(lines[0].contains("DESCRIPTION"), "{out}");
    let names: Vec<&str> = lines[1..]
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, vec!["team/alpha", "team/beta"], "{out}");
    let out = run_cfg(
        &sk,
        &cfg,
        &[
            "search",
            "--limit",
            "1",
            "--format",
            "{{.Name}}",
            &format!("{host}/team"),
        ],
        None,
    )
    .assert_ok();
    assert_eq!(out.stdout.trim(), "team/alpha");
}

/// The host's architecture in OCI's words.
fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn image_index_resolves_to_the_requested_platform() {
    require!(need_tool("docker-registry"));
    require!(need_tool("skopeo"));
    let reg = DockerRegistry::start(None);
    let host = reg.host();
    let sk = Skiff::new();
    let cfg = sk.path("docker-config");
    // Two different images (import stamps its own creation time, so the configs differ).
    let id_host = sk.import_busybox("multi-src:host");
    std::thread::sleep(Duration::from_millis(1100));
    let id_other = sk.import_busybox("multi-src:other");
    assert_ne!(id_host, id_other);
    let archive = sk.path("both.tar");
    sk.ok([
        "save",
        "-o",
        archive.to_str().expect("utf-8 path"),
        "multi-src:host",
        "multi-src:other",
    ]);
    let layout = sk.path("layout");
    fs::create_dir_all(&layout).expect("layout dir");
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&layout)
        .status()
        .expect("tar");
    assert!(st.success());
    // An index with one manifest per platform, each found by its config in the saved index.
    let saved: serde_json::Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json"))
            .expect("json");
    let manifest_for = |id: &str| -> serde_json::Value {
        for m in saved["manifests"].as_array().expect("manifests") {
            let hex = m["digest"]
                .as_str()
                .expect("digest")
                .trim_start_matches("sha256:");
            let body: serde_json::Value = serde_json::from_slice(
                &fs::read(layout.join("blobs/sha256").join(hex)).expect("manifest blob"),
            )
            .expect("manifest json");
            if body["config"]["digest"] == id {
                return serde_json::json!({
                    "mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
                });
            }
        }
        panic!("no manifest for {id} in {saved}");
    };
    let mut host_entry = manifest_for(&id_host);
    host_entry["platform"] = serde_json::json!({"architecture": host_arch(), "os": "linux"});
    let mut other_entry = manifest_for(&id_other);
    other_entry["platform"] = serde_json::json!({"architecture": "s390x", "os": "linux"});
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [other_entry, host_entry],
    }))
    .expect("index json");
    let index_digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&index))
    };
    fs::write(layout.join("blobs/sha256").join(&index_digest), &index).expect("index blob");
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{index_digest}"),
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    fs::write(layout.join("index.json"), top.to_string()).expect("index.json");
    let name = format!("{host}/multi/busybox:latest");
    let out = Command::new("skopeo")
        .args([
            "--insecure-policy",
            "copy",
            "--all",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{name}"))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // skopeo may rewrite the manifests on the way (compressing layers): the digest to expect
    // is that of the index the registry now serves.
    let raw = Command::new("skopeo")
        .args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{name}"),
        ])
        .output()
        .expect("skopeo");
    let served: serde_json::Value = serde_json::from_slice(&raw.stdout).expect("index json");
    assert_eq!(
        served["manifests"].as_array().map(Vec::len),
        Some(2),
        "{served}"
    );
    let served_digest = {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(&raw.stdout)))
    };
    let a = Skiff::new();
    let out = run_cfg(&a, &cfg, &["pull", &name], None).assert_ok();
    assert!(
        out.stdout.contains(&format!("Digest: {served_digest}")),
        "{out}"
    );
    assert_eq!(image_id(&a, &name), id_host);
    let b = Skiff::new();
    run_cfg(
        &b,
        &cfg,
        &["pull", "--platform", "linux/s390x", &name],
        None,
    )
    .assert_ok();
    assert_eq!(image_id(&b, &name), id_other);
    let none = run_cfg(
        &Skiff::new(),
        &cfg,
        &["pull", "--platform", "linux/riscv64", &name],
        None,
    );
    assert_eq!(none.code, 1, "{none}");
    assert_eq!(
        none.stderr.trim(),
        "Error response from daemon: no matching manifest for linux/riscv64 in the manifest list entries"
    );
}
