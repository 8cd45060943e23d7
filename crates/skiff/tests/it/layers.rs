//! Layers applied by skiff, through hand-built docker-archives: whiteouts and opaque
//! directories, owners, modes, devices, hardlinks, symlinks and xattrs, on both storage
//! drivers; hostile entries (`..`, absolute paths, writes through symlinks, hardlinks out)
//! refused with a message naming the entry and nothing written outside the root. skiff
//! applies layers on first use, so a hostile layer may pass `load` (which verifies digests)
//! and must then be refused by the first `image mount`.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::archive::{write_docker_archive, DiffIds, Layer};
use crate::files::{find_names_containing, unique_marker};
use crate::harness::{Driver, Out, Skiff};
use crate::tree::{assert_same_tree, Kind, Node, Tree};

/// Write each layer to the scratch dir and a docker-archive of them; returns the archive.
fn archive_of(s: &Skiff, name: &str, tags: &[&str], layers: Vec<Vec<u8>>) -> PathBuf {
    let paths: Vec<PathBuf> = layers
        .into_iter()
        .enumerate()
        .map(|(i, l)| s.write(&format!("{name}-layer{i}.tar"), &l))
        .collect();
    let out = s.path(&format!("{name}.tar"));
    write_docker_archive(&out, tags, &paths, DiffIds::Computed);
    out
}

/// Whether the filesystem holding `dir` takes `user.*` xattrs (tmpfs before 6.6 does not).
fn user_xattrs_supported(dir: &Path) -> bool {
    let p = dir.join(".xattr-probe");
    let _ = fs::write(&p, b"");
    let ok = xattr::set(&p, "user.probe", b"1").is_ok();
    let _ = fs::remove_file(&p);
    ok
}

fn whiteouts_opaque_dirs_and_metadata(driver: Driver) {
    let s = Skiff::with_driver(driver);
    let with_xattr = user_xattrs_supported(s.root());

    let mut l1 = Layer::new();
    l1.dir("a", 0o755)
        .file("a/keep", 0o644, b"keep v1\n")
        .file("a/gone", 0o644, b"to be whited out\n")
        .dir("opq", 0o755)
        .file("opq/old", 0o644, b"old\n")
        .dir("opq/sub", 0o700)
        .file("opq/sub/older", 0o644, b"older\n")
        .dir("removed_dir", 0o755)
        .file("removed_dir/child", 0o644, b"child\n")
        .file("hl_src", 0o644, b"hardlinked\n")
        .hardlink("hl_dst", "hl_src")
        .symlink("link", "a/keep")
        .symlink("abs", "/etc/passwd")
        .dir("dev", 0o755)
        .char_dev("dev/null", 0o666, 1, 3)
        .fifo("fifo", 0o640)
        .file_owned("owned", 0o600, 65534, 65534, b"nobody's\n")
        .file("suid", 0o4755, b"#!/bin/sh\n")
        .dir_owned("sticky", 0o1777, 0, 0)
        .file("empty", 0o644, b"");
    if with_xattr {
        l1.file_xattrs("xattr", 0o644, b"x\n", &[("user.test", b"value")]);
    }

    let mut l2 = Layer::new();
    l2.dir("a", 0o750)
        .file("a/.wh.gone", 0o644, b"")
        .file("a/keep", 0o644, b"keep v2\n")
        .dir("opq", 0o755)
        .file("opq/.wh..wh..opq", 0o644, b"")
        .file("opq/new", 0o644, b"new\n")
        .file(".wh.removed_dir", 0o644, b"")
        .file("added", 0o644, b"added\n");

    let archive = archive_of(&s, "wh", &["layers:test"], vec![l1.finish(), l2.finish()]);
    let out = s.ok(["load", "-i", archive.to_str().expect("utf-8")]);
    assert!(
        out.stdout.lines().any(|l| l == "Loaded image: layers:test"),
        "{out}"
    );
    let n = s.ok(["inspect", "-f", "{{len .RootFS.Layers}}", "layers:test"]);
    assert_eq!(n.stdout.trim(), "2", "{n}");

    let mut want = Tree::default();
    want.insert("a", Node::dir(0o750, 0, 0))
        .insert("a/keep", Node::file(0o644, 0, 0, b"keep v2\n"))
        .insert("opq", Node::dir(0o755, 0, 0))
        .insert("opq/new", Node::file(0o644, 0, 0, b"new\n"))
        .insert("hl_src", Node::file(0o644, 0, 0, b"hardlinked\n"))
        .insert("hl_dst", Node::file(0o644, 0, 0, b"hardlinked\n"))
        .insert("link", Node::symlink("a/keep", 0, 0))
        .insert("abs", Node::symlink("/etc/passwd", 0, 0))
        .insert("dev", Node::dir(0o755, 0, 0))
        .insert("dev/null", Node::other(Kind::Char(1, 3), 0o666, 0, 0))
        .insert("fifo", Node::other(Kind::Fifo, 0o640, 0, 0))
        .insert("owned", Node::file(0o600, 65534, 65534, b"nobody's\n"))
        .insert("suid", Node::file(0o4755, 0, 0, b"#!/bin/sh\n"))
        .insert("sticky", Node::dir(0o1777, 0, 0))
        .insert("empty", Node::file(0o644, 0, 0, b""))
        .insert("added", Node::file(0o644, 0, 0, b"added\n"));
    if with_xattr {
        want.insert(
            "xattr",
            Node::file(0o644, 0, 0, b"x\n").with_xattr("user.test", b"value"),
        );
    }

    let mp = s.mount("layers:test");
    let got = Tree::from_dir(&mp);
    assert_same_tree(
        &got,
        &want,
        &format!("two-layer image on {}", driver.name()),
    );
    let (a, b) = (
        fs::symlink_metadata(mp.join("hl_src")).expect("stat hl_src"),
        fs::symlink_metadata(mp.join("hl_dst")).expect("stat hl_dst"),
    );
    assert_eq!(
        (a.dev(), a.ino()),
        (b.dev(), b.ino()),
        "hl_dst is a hardlink of hl_src, not a copy"
    );
    s.ok(["image", "unmount", "layers:test"]);
}

fn info_reports_storage_driver_and_root(driver: Driver) {
    let s = Skiff::with_driver(driver);
    let out = s.ok(["info"]);
    let want = format!("Storage Driver: {}", driver.name());
    assert!(
        out.stdout.lines().any(|l| l.trim() == want),
        "info should say `{want}`:\n{out}"
    );
    let root = s.root().display().to_string();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.trim().ends_with(&format!("Root Dir: {root}"))),
        "info should have a `Docker Root Dir: {root}`-style line:\n{out}"
    );
}

driver_tests! {
    whiteouts => whiteouts_opaque_dirs_and_metadata;
    info => info_reports_storage_driver_and_root;
    escape_dotdot => dotdot_entries_are_refused;
    escape_symlink => writes_through_symlinks_are_refused;
    escape_hardlink => hardlinks_out_of_the_layer_are_refused;
    escape_absolute => absolute_paths_stay_inside;
    escape_cross_layer => symlink_from_lower_layer_does_not_lead_out;
}

#[test]
fn load_rejects_layer_whose_diff_id_does_not_match() {
    let s = Skiff::new();
    let mut l = Layer::new();
    l.file("f", 0o644, b"real content\n");
    let layer = s.write("layer.tar", &l.finish());
    let archive = s.path("tampered.tar");
    let wrong = format!("sha256:{}", "0".repeat(64));
    write_docker_archive(
        &archive,
        &["tampered:1"],
        &[layer],
        DiffIds::Given(vec![wrong]),
    );
    let out = s.run(["load", "-i", archive.to_str().expect("utf-8")]);
    assert!(
        !out.success(),
        "a layer that does not match its diff_id must not load:\n{out}"
    );
    let imgs = s.ok(["images", "-q"]);
    assert_eq!(
        imgs.stdout, "",
        "nothing is tagged after a failed load:\n{imgs}"
    );
    crate::files::assert_blobs_verified(s.root());
}

// ---------------------------------------------------------------------------------------------
// Path escapes

/// Places a hostile entry could reach, beside the test's own directory.
fn outside_places(s: &Skiff, marker: &str) -> Vec<PathBuf> {
    vec![
        PathBuf::from("/etc").join(marker),
        PathBuf::from("/tmp").join(marker),
        s.dir().join(marker),
    ]
}

/// After a hostile load: nothing named `marker` outside the root (and, when the load was
/// refused, nowhere at all). Removes strays so a failing test does not leave them behind.
#[track_caller]
fn assert_nothing_escaped(s: &Skiff, marker: &str, refused: bool) {
    let mut strays: Vec<PathBuf> = outside_places(s, marker)
        .into_iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    let everywhere = find_names_containing(s.dir(), marker);
    for p in &everywhere {
        if refused || !p.starts_with(s.root()) {
            strays.push(p.clone());
        }
    }
    for p in &strays {
        if !p.starts_with(s.dir()) {
            let _ = fs::remove_file(p);
        }
    }
    assert!(
        strays.is_empty(),
        "a hostile layer wrote {strays:?} (root is {})",
        s.root().display()
    );
}

/// Load `archive`, then (skiff applies layers on first use) mount `reference`.
/// `Err` carries the command that refused; `Ok` the mountpoint, still mounted.
fn load_then_mount(s: &Skiff, archive: &Path, reference: &str) -> Result<PathBuf, Out> {
    let out = s.run(["load", "-i", archive.to_str().expect("utf-8")]);
    if !out.success() {
        return Err(out);
    }
    let out = s.run(["image", "mount", reference]);
    if !out.success() {
        return Err(out);
    }
    Ok(PathBuf::from(out.stdout.trim()))
}

/// A hostile entry must be refused, by `load` or at the latest by the `image mount` that
/// first applies the layer, with an error naming the entry.
#[track_caller]
fn assert_refused_naming(s: &Skiff, result: Result<PathBuf, Out>, entry: &str) {
    match result {
        Ok(mp) => {
            let tree = Tree::from_dir(&mp);
            panic!(
                "a layer with entry {entry:?} was loaded and mounted; it must be refused. \
                 Mounted tree:\n{tree:?}(root {})",
                s.root().display()
            );
        }
        Err(out) => assert!(
            out.stderr.contains(entry),
            "the error should name the entry {entry:?}:\n{out}"
        ),
    }
}

/// An archive of one layer, `ok/file` plus what `build` adds, tagged hostile:1; loaded and
/// mounted in a fresh root.
fn load_hostile(driver: Driver, build: impl Fn(&mut Layer)) -> (Skiff, Result<PathBuf, Out>) {
    let s = Skiff::with_driver(driver);
    let mut l = Layer::new();
    l.dir("ok", 0o755).file("ok/file", 0o644, b"fine\n");
    build(&mut l);
    let archive = archive_of(&s, "hostile", &["hostile:1"], vec![l.finish()]);
    let result = load_then_mount(&s, &archive, "hostile:1");
    (s, result)
}

fn dotdot_entries_are_refused(driver: Driver) {
    let marker = unique_marker("dotdot");
    let deep = format!("{}etc/{marker}", "../".repeat(12));
    for name in [
        format!("../../etc/{marker}"),
        format!("ok/../../{marker}"),
        deep,
    ] {
        let (s, result) = load_hostile(driver, |l| {
            l.raw(&name, tar::EntryType::Regular, None, b"escaped\n");
        });
        assert_nothing_escaped(&s, &marker, true);
        assert_refused_naming(&s, result, &name);
    }
}

/// A symlink to /etc and a file written through it must be refused. Symlinks whose targets
/// climb out (`../../tmp`, `..`) may instead be resolved inside the layer, as docker's
/// chrooted unpacker does; either way nothing may land outside the root.
fn writes_through_symlinks_are_refused(driver: Driver) {
    let marker = unique_marker("symlink");
    let up = "../".repeat(12);
    let cases = [
        ("/etc".to_string(), true),
        (format!("{up}tmp"), false),
        ("..".to_string(), false),
    ];
    for (target, must_refuse) in cases {
        let entry = format!("evil/{marker}");
        let (s, result) = load_hostile(driver, |l| {
            l.raw("evil", tar::EntryType::Symlink, Some(&target), b"");
            l.raw(&entry, tar::EntryType::Regular, None, b"escaped\n");
        });
        if must_refuse || result.is_err() {
            assert_nothing_escaped(&s, &marker, true);
            assert_refused_naming(&s, result, &entry);
        } else {
            s.ok(["image", "unmount", "hostile:1"]);
            assert_nothing_escaped(&s, &marker, false);
        }
    }
}

fn hardlinks_out_of_the_layer_are_refused(driver: Driver) {
    let up = "../".repeat(12);
    for target in [format!("{up}etc/passwd"), "/etc/passwd".to_string()] {
        let (s, result) = load_hostile(driver, |l| {
            l.raw("evil-hardlink", tar::EntryType::Link, Some(&target), b"");
        });
        let passwd = fs::metadata("/etc/passwd").expect("stat /etc/passwd");
        let linked: Vec<PathBuf> = find_names_containing(s.dir(), "evil-hardlink")
            .into_iter()
            .filter(|p| {
                fs::symlink_metadata(p)
                    .is_ok_and(|m| m.dev() == passwd.dev() && m.ino() == passwd.ino())
            })
            .collect();
        assert!(
            linked.is_empty(),
            "a hardlink to the host's /etc/passwd was made: {linked:?}"
        );
        // A hardlink to "/etc/passwd" is relative to the layer root, where it does not exist.
        assert_refused_naming(&s, result, "evil-hardlink");
    }
}

/// docker strips a leading `/`: an absolute entry may be confined to the layer or refused,
/// but never written to the host path.
fn absolute_paths_stay_inside(driver: Driver) {
    let marker = unique_marker("abs");
    let name = format!("/tmp/{marker}");
    let (s, result) = load_hostile(driver, |l| {
        l.raw(&name, tar::EntryType::Regular, None, b"confined\n");
    });
    match result {
        Err(out) => {
            assert_nothing_escaped(&s, &marker, true);
            assert!(
                out.stderr.contains(&name),
                "the error should name the entry {name:?}:\n{out}"
            );
        }
        Ok(mp) => {
            let inside = mp.join("tmp").join(&marker);
            let content = fs::read(&inside).ok();
            s.ok(["image", "unmount", "hostile:1"]);
            assert_nothing_escaped(&s, &marker, false);
            assert_eq!(
                content.as_deref(),
                Some(&b"confined\n"[..]),
                "an absolute entry that is not refused is confined at {}",
                inside.display()
            );
        }
    }
}

/// Layer 1 makes `evil -> /tmp`; layer 2 writes `evil/MARKER`. Refused, or confined to the
/// image (overlay puts a real `evil/` directory in the upper layer), never written to /tmp.
fn symlink_from_lower_layer_does_not_lead_out(driver: Driver) {
    let s = Skiff::with_driver(driver);
    let marker = unique_marker("cross");
    let up = "../".repeat(12);
    let mut l1 = Layer::new();
    l1.raw("evil", tar::EntryType::Symlink, Some("/tmp"), b"");
    l1.raw(
        "evil2",
        tar::EntryType::Symlink,
        Some(&format!("{up}tmp")),
        b"",
    );
    let mut l2 = Layer::new();
    l2.raw(
        &format!("evil/{marker}"),
        tar::EntryType::Regular,
        None,
        b"x\n",
    );
    l2.raw(
        &format!("evil2/{marker}"),
        tar::EntryType::Regular,
        None,
        b"x\n",
    );
    let archive = archive_of(&s, "cross", &["cross:1"], vec![l1.finish(), l2.finish()]);
    match load_then_mount(&s, &archive, "cross:1") {
        Err(out) => {
            assert_nothing_escaped(&s, &marker, true);
            assert!(
                out.stderr.contains(&marker),
                "the error should name the entry:\n{out}"
            );
        }
        Ok(_) => {
            s.ok(["image", "unmount", "cross:1"]);
            assert_nothing_escaped(&s, &marker, false);
        }
    }
}
