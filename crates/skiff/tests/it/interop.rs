//! Images written by other tools load into skiff, and their flattened tree is identical, file
//! by file, to what umoci unpacks: an umoci-built OCI image (several layers, a whiteout and an
//! opaque directory written by umoci itself) through skopeo's oci-archive and docker-archive,
//! and skiff's own save through skopeo and back.

use std::fs;
use std::path::{Path, PathBuf};

use crate::files::extract_tar;
use crate::harness::{
    busybox_tar, busybox_tree, is_mount_point, loaded_refs, need_tool, require, tool_ok, Driver,
    Skiff,
};
use crate::tree::{assert_same_tree, Tree};

/// Tools every test here needs besides root (checked by `Driver::usable`).
fn need_tools() -> Result<(), String> {
    need_tool("skopeo")?;
    need_tool("umoci")?;
    need_tool("tar")?;
    Ok(())
}

/// Build an OCI image with umoci in `<scratch>/oci`, tag `base`:
/// layer 1 the busybox rootfs, then `/etc/motd` and a directory with owners and modes,
/// then a whiteout of `/etc/group`, then an opaque replacement of `/usr/sbin`.
/// Returns the layout path and the tree umoci itself unpacks from it.
fn umoci_image(s: &Skiff) -> (PathBuf, Tree) {
    let oci = s.path("oci");
    let image = format!("{}:base", oci.display());
    tool_ok("umoci", ["init", "--layout", oci.to_str().expect("utf-8")]);
    tool_ok("umoci", ["new", "--image", &image]);

    let bundle = s.path("build-bundle");
    tool_ok(
        "umoci",
        ["unpack", "--image", &image, bundle.to_str().expect("utf-8")],
    );
    let rootfs = bundle.join("rootfs");
    tool_ok(
        "tar",
        [
            "-C",
            rootfs.to_str().expect("utf-8"),
            "--numeric-owner",
            "-xpf",
            busybox_tar().to_str().expect("utf-8"),
        ],
    );
    tool_ok(
        "umoci",
        ["repack", "--image", &image, bundle.to_str().expect("utf-8")],
    );

    let motd = s.write("insert/motd", b"built by umoci\n");
    tool_ok(
        "umoci",
        [
            "insert",
            "--image",
            &image,
            motd.to_str().expect("utf-8"),
            "/etc/motd",
        ],
    );

    let extra = s.path("insert/opt-app");
    fs::create_dir_all(extra.join("bin")).expect("mkdir");
    fs::write(extra.join("bin/tool"), b"#!/bin/sh\necho tool\n").expect("write");
    fs::write(extra.join("secret"), b"s3cret\n").expect("write");
    std::os::unix::fs::symlink("bin/tool", extra.join("tool-link")).expect("symlink");
    set_mode(&extra.join("bin/tool"), 0o4755);
    set_mode(&extra.join("secret"), 0o600);
    std::os::unix::fs::chown(extra.join("secret"), Some(1000), Some(1000)).expect("chown");
    tool_ok(
        "umoci",
        [
            "insert",
            "--image",
            &image,
            extra.to_str().expect("utf-8"),
            "/opt/app",
        ],
    );

    tool_ok(
        "umoci",
        ["insert", "--image", &image, "--whiteout", "/etc/group"],
    );

    let sbin = s.path("insert/sbin");
    fs::create_dir_all(&sbin).expect("mkdir");
    fs::write(sbin.join("only-this"), b"opaque\n").expect("write");
    tool_ok(
        "umoci",
        [
            "insert",
            "--image",
            &image,
            "--opaque",
            sbin.to_str().expect("utf-8"),
            "/usr/sbin",
        ],
    );

    tool_ok("umoci", ["config", "--image", &image, "--config.cmd", "sh"]);

    let check = s.path("check-bundle");
    tool_ok(
        "umoci",
        ["unpack", "--image", &image, check.to_str().expect("utf-8")],
    );
    let expected = Tree::from_dir(&check.join("rootfs"));
    assert!(
        expected.get("etc/motd").is_some() && expected.get("etc/group").is_none(),
        "umoci built the layers"
    );
    assert!(
        expected.get("usr/sbin/only-this").is_some() && expected.get("usr/sbin/chroot").is_none(),
        "opaque dir"
    );
    (oci, expected)
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// `image mount` REF, compare with `expected`, `image unmount`, and check the mount is gone.
fn mount_and_compare(s: &Skiff, reference: &str, expected: &Tree, what: &str) {
    let mp = s.mount(reference);
    let tree = Tree::from_dir(&mp);
    assert_same_tree(&tree, expected, what);
    s.ok(["image", "unmount", reference]);
    assert!(
        !is_mount_point(&mp),
        "{} is still mounted after `image unmount`",
        mp.display()
    );
}

/// The single reference a `load` reported.
#[track_caller]
fn single_loaded(out: &crate::harness::Out) -> String {
    let refs = loaded_refs(out);
    assert_eq!(
        refs.len(),
        1,
        "load should report one image (\"Loaded image: ...\"):\n{out}"
    );
    refs[0].clone()
}

fn umoci_oci_archive_loads_and_mounts_like_umoci_unpacks(driver: Driver) {
    require!(need_tools());
    let s = Skiff::with_driver(driver);
    let (oci, expected) = umoci_image(&s);
    let archive = s.path("umoci.oci.tar");
    tool_ok(
        "skopeo",
        [
            "--insecure-policy",
            "copy",
            &format!("oci:{}:base", oci.display()),
            &format!("oci-archive:{}:base", archive.display()),
        ],
    );
    let out = s.ok(["load", "-i", archive.to_str().expect("utf-8")]);
    let reference = single_loaded(&out);
    let layers = s.ok(["inspect", "-f", "{{len .RootFS.Layers}}", &reference]);
    assert_eq!(
        layers.stdout.trim(),
        "5",
        "umoci's five layers are kept:\n{layers}"
    );
    mount_and_compare(
        &s,
        &reference,
        &expected,
        "skiff's mount of an umoci image (oci-archive) vs umoci unpack",
    );
}

fn skopeo_docker_archive_loads_and_mounts_like_umoci_unpacks(driver: Driver) {
    require!(need_tools());
    let s = Skiff::with_driver(driver);
    let (oci, expected) = umoci_image(&s);
    let archive = s.path("umoci.docker.tar");
    tool_ok(
        "skopeo",
        [
            "--insecure-policy",
            "copy",
            &format!("oci:{}:base", oci.display()),
            &format!("docker-archive:{}:interop/base:v1", archive.display()),
        ],
    );
    let out = s.ok(["load", "-i", archive.to_str().expect("utf-8")]);
    assert_eq!(single_loaded(&out), "interop/base:v1", "{out}");
    let cmd = s.ok(["inspect", "-f", "{{json .Config.Cmd}}", "interop/base:v1"]);
    assert_eq!(cmd.stdout.trim(), r#"["sh"]"#, "the config survives: {cmd}");
    mount_and_compare(
        &s,
        "interop/base:v1",
        &expected,
        "skiff's mount of a skopeo docker-archive vs umoci unpack",
    );
}

fn save_through_skopeo_oci_archive_and_back(driver: Driver) {
    require!(need_tools());
    let s = Skiff::with_driver(driver);
    let id = s.import_busybox("busybox:latest");
    let a = s.path("a.tar");
    s.ok(["save", "-o", a.to_str().expect("utf-8"), "busybox"]);
    let converted = s.path("converted.oci.tar");
    tool_ok(
        "skopeo",
        [
            "--insecure-policy",
            "copy",
            &format!("docker-archive:{}", a.display()),
            &format!("oci-archive:{}:busybox", converted.display()),
        ],
    );

    // skopeo rewrites the config when it converts to OCI (key order, docker-only fields), so
    // the image ID becomes that config's digest; the layers must stay the same.
    let unpacked = s.path("converted");
    extract_tar(&converted, &unpacked);
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&fs::read(&p).expect("read OCI layout file")).expect("JSON")
    };
    let blob = |d: &serde_json::Value| {
        let d = d.as_str().expect("digest");
        unpacked
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let index = json(unpacked.join("index.json"));
    let manifest = json(blob(&index["manifests"][0]["digest"]));
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest");

    let s2 = Skiff::with_driver(driver);
    let out = s2.ok(["load", "-i", converted.to_str().expect("utf-8")]);
    let reference = single_loaded(&out);
    let got = s2.ok(["inspect", "-f", "{{.Id}}", &reference]);
    assert_eq!(
        got.stdout.trim(),
        config_digest,
        "the image ID is the digest of the archive's config"
    );
    let layers = |sk: &Skiff, r: &str| {
        sk.ok(["inspect", "-f", "{{json .RootFS.Layers}}", r])
            .stdout
    };
    assert_eq!(
        layers(&s2, &reference),
        layers(&s, &id),
        "the layers survive save -> skopeo -> load"
    );
    mount_and_compare(
        &s2,
        &reference,
        busybox_tree(),
        "busybox after save -> skopeo oci-archive -> load",
    );
}

fn mount_of_imported_image_is_the_busybox_tree(driver: Driver) {
    let s = Skiff::with_driver(driver);
    s.import_busybox("busybox:latest");
    mount_and_compare(
        &s,
        "busybox",
        busybox_tree(),
        "skiff's mount of the imported busybox base",
    );
}

driver_tests! {
    umoci_oci_archive => umoci_oci_archive_loads_and_mounts_like_umoci_unpacks;
    skopeo_docker_archive => skopeo_docker_archive_loads_and_mounts_like_umoci_unpacks;
    save_skopeo_roundtrip => save_through_skopeo_oci_archive_and_back;
    mount_imported => mount_of_imported_image_is_the_busybox_tree;
}
