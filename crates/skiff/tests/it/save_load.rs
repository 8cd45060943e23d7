//! save and load: docker-archive with an OCI layout inside, byte-identical saves, load from
//! files, stdin and gzip, and what skopeo, umoci and the OCI schemas make of skiff's archives.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::files::{extract_tar, sha256_file, tar_entry_names};
use crate::harness::{
    busybox_tree, goarch, is_hex, loaded_refs, need_root, need_schema_validator, need_tool,
    require, run_command, tool_ok, workspace_root, Out, Skiff,
};
use crate::tree::{assert_same_tree, Tree};

/// Import busybox:latest and save it to `a.tar` in the scratch dir; returns (ID, archive).
fn saved_busybox(s: &Skiff) -> (String, PathBuf) {
    let id = s.import_busybox("busybox:latest");
    let a = s.path("a.tar");
    s.ok(["save", "-o", a.to_str().expect("utf-8 path"), "busybox"]);
    (id, a)
}

fn read_json(path: &Path) -> Value {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_slice(&data).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// Run tests/schema/validate.py with `args`.
fn validate(args: &[&str]) -> Out {
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("tests/schema/validate.py"))
        .args(args);
    run_command(cmd, None)
}

#[test]
fn save_twice_gives_byte_identical_archives() {
    let s = Skiff::new();
    let (_, a) = saved_busybox(&s);
    let b = s.path("b.tar");
    s.ok(["save", "-o", b.to_str().expect("utf-8"), "busybox"]);
    let (ab, bb) = (
        fs::read(&a).expect("read a.tar"),
        fs::read(&b).expect("read b.tar"),
    );
    assert!(!ab.is_empty(), "save wrote an empty archive");
    assert!(
        ab == bb,
        "two saves of the same image differ ({} vs {} bytes)",
        ab.len(),
        bb.len()
    );

    let out = s.ok(["save", "busybox"]);
    assert!(
        out.raw_stdout == ab,
        "`save` to stdout differs from `save -o` ({} vs {} bytes)",
        out.raw_stdout.len(),
        ab.len()
    );
    let alias = s.ok(["image", "save", "busybox"]);
    assert!(alias.raw_stdout == ab, "`image save` differs from `save`");
}

#[test]
fn save_writes_docker_archive_with_oci_layout() {
    let s = Skiff::new();
    let (id, a) = saved_busybox(&s);

    let names = tar_entry_names(&a);
    for required in ["manifest.json", "index.json", "oci-layout"] {
        assert!(
            names.contains(required),
            "archive lacks {required}; it has {names:?}"
        );
    }
    let blobs: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("blobs/sha256/") && n.len() > 13)
        .collect();
    assert!(
        !blobs.is_empty(),
        "archive has no blobs/sha256/...: {names:?}"
    );
    for b in &blobs {
        assert!(
            is_hex(&b["blobs/sha256/".len()..], 64),
            "{b} is not named by a sha256 digest"
        );
    }

    let dir = s.path("extracted");
    extract_tar(&a, &dir);
    for b in &blobs {
        let hex = &b["blobs/sha256/".len()..];
        assert_eq!(
            sha256_file(&dir.join(b)),
            hex,
            "{b} does not hash to its name"
        );
    }

    let manifest = read_json(&dir.join("manifest.json"));
    let entries = manifest.as_array().expect("manifest.json is a list");
    assert_eq!(entries.len(), 1, "one image saved: {manifest}");
    let m = &entries[0];
    assert_eq!(
        m["RepoTags"],
        serde_json::json!(["busybox:latest"]),
        "{manifest}"
    );
    let config = m["Config"].as_str().expect("manifest.json Config");
    assert_eq!(
        config,
        format!("blobs/sha256/{}", id.trim_start_matches("sha256:")),
        "Config points at the config blob, whose digest is the image ID"
    );
    let layers = m["Layers"].as_array().expect("manifest.json Layers");
    assert_eq!(layers.len(), 1, "{manifest}");
    for l in layers {
        let l = l.as_str().expect("layer path");
        assert!(
            names.contains(l),
            "manifest.json names {l}, which is not in the archive"
        );
    }

    let layout = read_json(&dir.join("oci-layout"));
    assert_eq!(
        layout["imageLayoutVersion"], "1.0.0",
        "oci-layout: {layout}"
    );
    let index = read_json(&dir.join("index.json"));
    assert_eq!(index["schemaVersion"], 2, "{index}");
    let ms = index["manifests"].as_array().expect("index.json manifests");
    assert_eq!(ms.len(), 1, "{index}");
    assert_eq!(
        ms[0]["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{index}"
    );
    let ann = &ms[0]["annotations"];
    assert_eq!(
        ann["io.containerd.image.name"], "docker.io/library/busybox:latest",
        "docker's name annotation: {index}"
    );
    assert_eq!(
        ann["org.opencontainers.image.ref.name"], "latest",
        "OCI ref name annotation: {index}"
    );
    let mdigest = ms[0]["digest"].as_str().expect("manifest digest");
    let mpath = dir
        .join("blobs/sha256")
        .join(mdigest.trim_start_matches("sha256:"));
    let oci_manifest = read_json(&mpath);
    assert_eq!(
        oci_manifest["config"]["digest"],
        id.as_str(),
        "the OCI manifest's config is the image config"
    );
}

#[test]
fn load_into_fresh_root_gives_same_image_and_same_save() {
    let s1 = Skiff::new();
    let (id, a) = saved_busybox(&s1);

    let s2 = Skiff::new();
    let out = s2.ok(["load", "-i", a.to_str().expect("utf-8")]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "Loaded image: busybox:latest"),
        "docker's load message:\n{out}"
    );
    let got = s2.ok(["inspect", "-f", "{{.Id}}", "busybox"]);
    assert_eq!(got.stdout.trim(), id, "load(save(x)) has x's image ID");

    let again = s2.ok(["save", "busybox"]);
    let orig = fs::read(&a).expect("read a.tar");
    assert!(
        again.raw_stdout == orig,
        "save after load differs from the original save"
    );
    crate::files::assert_blobs_verified(s2.root());
}

#[test]
fn load_reads_stdin_and_gzip() {
    let s1 = Skiff::new();
    let (id, a) = saved_busybox(&s1);

    let s2 = Skiff::new();
    let out = s2.run_stdin_file(["load"], &a).assert_ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "Loaded image: busybox:latest"),
        "load from stdin:\n{out}"
    );
    assert_eq!(
        s2.ok(["inspect", "-f", "{{.Id}}", "busybox"]).stdout.trim(),
        id
    );

    let gz = s1.path("a.tar.gz");
    {
        let f = fs::File::create(&gz).expect("create a.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        enc.write_all(&fs::read(&a).expect("read a.tar"))
            .expect("gzip");
        enc.finish().expect("finish gzip");
    }
    let s3 = Skiff::new();
    let out = s3.ok(["load", "-i", gz.to_str().expect("utf-8")]);
    assert!(
        out.stdout
            .lines()
            .any(|l| l == "Loaded image: busybox:latest"),
        "load of a gzipped archive:\n{out}"
    );
    assert_eq!(
        s3.ok(["inspect", "-f", "{{.Id}}", "busybox"]).stdout.trim(),
        id
    );

    let s4 = Skiff::new();
    let out = s4.run_stdin_file(["image", "load"], &gz).assert_ok();
    assert_eq!(
        loaded_refs(&out),
        vec!["busybox:latest".to_string()],
        "gzip on stdin:\n{out}"
    );
}

#[test]
fn skopeo_reads_saved_archive_as_docker_and_oci() {
    require!(need_tool("skopeo"));
    let s = Skiff::new();
    let (_, a) = saved_busybox(&s);

    let out = tool_ok(
        "skopeo",
        [
            "--insecure-policy",
            "inspect",
            &format!("docker-archive:{}", a.display()),
        ],
    );
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("skopeo inspect JSON ({e}):\n{out}"));
    assert_eq!(v["Architecture"], goarch(), "{out}");
    assert_eq!(v["Os"], "linux", "{out}");
    assert_eq!(v["Layers"].as_array().map(Vec::len), Some(1), "{out}");

    tool_ok(
        "skopeo",
        [
            "--insecure-policy",
            "inspect",
            &format!("oci-archive:{}", a.display()),
        ],
    );
}

#[test]
fn saved_archive_converted_by_skopeo_unpacks_with_umoci_to_the_busybox_tree() {
    require!(need_root());
    require!(need_tool("skopeo"));
    require!(need_tool("umoci"));
    let s = Skiff::new();
    let (_, a) = saved_busybox(&s);

    let oci = s.path("oci");
    tool_ok(
        "skopeo",
        [
            "--insecure-policy",
            "copy",
            &format!("docker-archive:{}", a.display()),
            &format!("oci:{}:busybox", oci.display()),
        ],
    );
    let bundle = s.path("bundle");
    tool_ok(
        "umoci",
        [
            "unpack",
            "--image",
            &format!("{}:busybox", oci.display()),
            bundle.to_str().expect("utf-8"),
        ],
    );
    let tree = Tree::from_dir(&bundle.join("rootfs"));
    assert_same_tree(
        &tree,
        busybox_tree(),
        "umoci unpack of skopeo's conversion of skiff save vs the busybox base",
    );
}

#[test]
fn saved_oci_layout_validates_against_image_spec_schemas() {
    require!(need_schema_validator());
    let s = Skiff::new();
    s.import_busybox_with(
        &[
            "-c",
            r#"CMD ["sh"]"#,
            "-c",
            "ENV A=1",
            "-c",
            "EXPOSE 80/tcp",
            "-c",
            "LABEL org.example=yes",
            "-c",
            "VOLUME /data",
            "-c",
            "WORKDIR /w",
            "-c",
            "USER nobody",
            "-c",
            "STOPSIGNAL SIGTERM",
            "-m",
            "schema check",
        ],
        "configured:1",
    );
    s.import_busybox("busybox:latest");
    let a = s.path("a.tar");
    s.ok([
        "save",
        "-o",
        a.to_str().expect("utf-8"),
        "configured:1",
        "busybox:latest",
    ]);

    let dir = s.path("layout");
    extract_tar(&a, &dir);
    let out = validate(&["--layout", dir.to_str().expect("utf-8")]);
    assert!(
        out.success(),
        "skiff's saved OCI layout violates the image-spec schemas:\n{out}"
    );
    assert!(out.stdout.starts_with("ok: "), "{out}");
    let checked: usize = out.stdout["ok: ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // oci-layout, index.json, and per image a manifest and a config.
    assert!(
        checked >= 6,
        "validator checked only {checked} documents:\n{out}"
    );
}

#[test]
fn schema_validator_rejects_violations_and_allows_zero_layers() {
    require!(need_schema_validator());
    let s = Skiff::new();
    let config = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    let zero = s.write(
        "zero.json",
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},"layers":[]}}"#
        )
        .as_bytes(),
    );
    let out = validate(&[zero.to_str().expect("utf-8")]);
    assert!(
        out.success(),
        "a zero-layer manifest is the allowed exception:\n{out}"
    );

    let bad = s.write(
        "bad.json",
        br#"{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:XYZ","size":"2"},"layers":[]}"#,
    );
    let out = validate(&[bad.to_str().expect("utf-8")]);
    assert_eq!(out.code, 1, "an invalid manifest must fail:\n{out}");
    assert!(
        out.stderr.contains("bad.json") && out.stderr.contains("/schemaVersion"),
        "names file and violation:\n{out}"
    );
    assert!(out.stderr.contains("/config/size"), "{out}");
    assert!(out.stderr.contains("/config/digest"), "{out}");

    let cfg = s.write("cfg.json", br#"{"architecture":"amd64","os":"linux","created":"yesterday","rootfs":{"type":"layers","diff_ids":[]},"config":{"Env":["NOEQUALS"]}}"#);
    let out = validate(&[cfg.to_str().expect("utf-8")]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("/created") && out.stderr.contains("/config/Env/0"),
        "{out}"
    );
}
