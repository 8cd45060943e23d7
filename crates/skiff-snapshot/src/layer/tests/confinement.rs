//! Hostile paths: `..`, absolute names, symlinks and hardlinks leading out of the root.
//! Symlinks among an entry's parents are followed as in a chroot of the root: whatever they
//! point at, what is written lands inside it.

use super::*;

/// Everything in `t` except the target `root`: nothing may appear there.
fn outside(t: &Path) -> Vec<String> {
    listing(t)
        .into_iter()
        .filter(|p| p != "root" && !p.starts_with("root/"))
        .collect()
}

#[test]
fn escaping_paths_are_refused_and_nothing_is_written_outside() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir_all(root.join("x/y")).unwrap();
    fs::create_dir(t.path().join("out")).unwrap();
    let out = t.path().join("out");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            raw_tar(&[("../../etc/x", REG, b"x", "")]),
            "layer entry \"../../etc/x\": path escapes the root",
        ),
        (
            raw_tar(&[("x/y/../../../x", REG, b"x", "")]),
            "path escapes the root",
        ),
        // Symlinks are followed inside the root, where these targets do not exist.
        (
            raw_tar(&[
                ("a", EntryType::Symlink, b"", out.to_str().unwrap()),
                ("a/passwd", REG, b"x", ""),
            ]),
            "layer entry \"a/passwd\": parent \"a\" is a dangling symlink",
        ),
        (
            raw_tar(&[
                ("r", EntryType::Symlink, b"", "../out"),
                ("r/sub/f", REG, b"x", ""),
            ]),
            "layer entry \"r/sub/f\": parent \"r\" is a dangling symlink",
        ),
        (
            raw_tar(&[
                ("q", EntryType::Symlink, b"", out.to_str().unwrap()),
                ("h", EntryType::Link, b"", "q/secret"),
            ]),
            "hardlink target \"q/secret\": does not exist",
        ),
        (
            raw_tar(&[("l", EntryType::Link, b"", "../x")]),
            "hardlink target \"../x\": escapes the root",
        ),
        (
            raw_tar(&[
                ("loop1", EntryType::Symlink, b"", "loop2/x"),
                ("loop2", EntryType::Symlink, b"", "/loop1"),
                ("h", EntryType::Link, b"", "loop2/secret"),
            ]),
            "hardlink target \"loop2/secret\": parent \"loop2\": too many levels of symbolic links",
        ),
        (
            raw_tar(&[("../.wh.out", REG, b"", "")]),
            "path escapes the root",
        ),
        (
            raw_tar(&[("x/.wh..", REG, b"", "")]),
            "invalid whiteout name",
        ),
    ];
    fs::write(out.join("secret"), "s").unwrap();
    for (i, (tar, want)) in cases.iter().enumerate() {
        for mode in [WhiteoutMode::Overlay, WhiteoutMode::Remove] {
            let err = apply(tar, &root, mode).unwrap_err().to_string();
            assert!(err.contains(want), "case {i}: {err}");
            assert_eq!(outside(t.path()), ["out", "out/secret"], "case {i}");
        }
    }
    assert!(
        root.join("x/y").is_dir(),
        "a refused whiteout removed nothing"
    );
}

#[test]
fn absolute_paths_and_symlink_targets_stay_inside() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::create_dir(t.path().join("out")).unwrap();
    fs::write(t.path().join("out/file"), "keep").unwrap();
    let target = t.path().join("out/file");
    let tar = raw_tar(&[
        ("/etc/x", REG, b"confined", ""),
        ("s", EntryType::Symlink, b"", target.to_str().unwrap()),
        // A file over a symlink replaces the symlink; it never writes through it.
        ("s", REG, b"replaced", ""),
        ("/etc/hl", EntryType::Link, b"", "/etc/x"),
    ]);
    apply(&tar, &root, WhiteoutMode::Overlay).unwrap();
    assert_eq!(fs::read_to_string(root.join("etc/x")).unwrap(), "confined");
    assert_eq!(fs::read_to_string(root.join("s")).unwrap(), "replaced");
    assert!(!fs::symlink_metadata(root.join("s"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
    let (a, b) = (
        fs::metadata(root.join("etc/x")).unwrap(),
        fs::metadata(root.join("etc/hl")).unwrap(),
    );
    assert_eq!(a.ino(), b.ino());
}

/// `dir` seen from inside `root`: `<root>/<dir without its leading />`, where a symlink to the
/// absolute `dir` leads when followed inside the root.
fn rerooted(root: &Path, dir: &Path) -> std::path::PathBuf {
    root.join(dir.strip_prefix("/").unwrap())
}

#[test]
fn writes_through_symlinks_land_inside_the_root() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    // Stands for /etc: a directory outside the root, which a symlink in the layer names.
    let out = t.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("passwd"), "host").unwrap();
    fs::write(out.join("shadow"), "host").unwrap();
    let up = format!("{}{}", "../".repeat(8), out.to_str().unwrap());
    let tar = raw_tar(&[
        ("a", EntryType::Symlink, b"", out.to_str().unwrap()),
        ("a/passwd", REG, b"layer", ""),
        ("a/new/f", REG, b"new", ""),
        // `..` stops at the root.
        ("d/r", EntryType::Symlink, b"", &up),
        ("d/r/sub/g", REG, b"g", ""),
        ("h", EntryType::Link, b"", "a/shadow"),
        ("a/.wh.shadow", REG, b"", ""),
        ("a/new/.wh.f", REG, b"", ""),
    ]);
    for mode in [WhiteoutMode::Overlay, WhiteoutMode::Remove] {
        let root = t.path().join(format!("root-{mode:?}"));
        let inside = rerooted(&root, &out);
        fs::create_dir_all(&inside).unwrap();
        fs::write(inside.join("shadow"), "inside").unwrap();
        apply(&tar, &root, mode).unwrap();
        let read = |p: &str| fs::read_to_string(inside.join(p)).unwrap();
        assert_eq!(read("passwd"), "layer", "{mode:?}");
        assert_eq!(read("sub/g"), "g", "{mode:?}");
        assert_eq!(fs::read_to_string(root.join("h")).unwrap(), "inside");
        // The whiteout went through the symlink too; the one of a file of this same layer is
        // a no-op, as always.
        assert_eq!(read("new/f"), "new", "{mode:?}");
        let shadow = fs::symlink_metadata(inside.join("shadow"));
        match mode {
            WhiteoutMode::Overlay => assert!(shadow.unwrap().file_type().is_char_device()),
            WhiteoutMode::Remove => assert!(shadow.is_err()),
        }
        assert!(fs::symlink_metadata(root.join("a"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            outside(t.path())
                .into_iter()
                .filter(|p| !p.starts_with("root-"))
                .collect::<Vec<_>>(),
            ["out", "out/passwd", "out/shadow"]
        );
        assert_eq!(fs::read_to_string(out.join("passwd")).unwrap(), "host");
        assert_eq!(fs::read_to_string(out.join("shadow")).unwrap(), "host");
    }
}

#[test]
fn usrmerge_parents_are_followed_in_remove_mode() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    fs::create_dir(&root).unwrap();
    let base = raw_tar(&[
        ("usr/", DIR, b"", ""),
        ("usr/bin/", DIR, b"", ""),
        ("usr/lib/", DIR, b"", ""),
        ("usr/lib/x86_64-linux-gnu/", DIR, b"", ""),
        ("usr/lib/x86_64-linux-gnu/old.so", REG, b"old", ""),
        ("usr/lib32/", DIR, b"", ""),
        ("bin", EntryType::Symlink, b"", "usr/bin"),
        ("lib", EntryType::Symlink, b"", "usr/lib"),
        ("lib32", EntryType::Symlink, b"", "/usr/lib32"),
    ]);
    apply(&base, &root, WhiteoutMode::Remove).unwrap();
    let layer = raw_tar(&[
        ("lib/foo", REG, b"foo", ""),
        ("lib/x86_64-linux-gnu/libfoo.so.1", REG, b"libfoo", ""),
        ("lib/x86_64-linux-gnu/.wh.old.so", REG, b"", ""),
        ("lib/newdir/", DIR, b"", ""),
        ("lib/newdir/f", REG, b"f", ""),
        ("bin/tool", REG, b"tool", ""),
        ("usr/bin/hl", EntryType::Link, b"", "lib/foo"),
        // The last component is never followed: a symlink replaces a symlink.
        ("lib32", EntryType::Symlink, b"", "usr/lib"),
    ]);
    apply(&layer, &root, WhiteoutMode::Remove).unwrap();
    let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("usr/lib/foo"), "foo");
    assert_eq!(read("usr/lib/x86_64-linux-gnu/libfoo.so.1"), "libfoo");
    assert_eq!(read("usr/lib/newdir/f"), "f");
    assert_eq!(read("usr/bin/tool"), "tool");
    assert_eq!(
        fs::metadata(root.join("usr/bin/hl")).unwrap().ino(),
        fs::metadata(root.join("usr/lib/foo")).unwrap().ino()
    );
    assert_eq!(
        fs::metadata(root.join("usr/lib/newdir")).unwrap().mtime(),
        1_234_567_890,
        "directory times are set through the symlink too"
    );
    for (link, target) in [("bin", "usr/bin"), ("lib", "usr/lib"), ("lib32", "usr/lib")] {
        assert_eq!(
            fs::read_link(root.join(link)).unwrap(),
            Path::new(target),
            "{link}"
        );
    }
    assert_eq!(
        listing(&root),
        [
            "bin",
            "lib",
            "lib32",
            "usr",
            "usr/bin",
            "usr/bin/hl",
            "usr/bin/tool",
            "usr/lib",
            "usr/lib/foo",
            "usr/lib/newdir",
            "usr/lib/newdir/f",
            "usr/lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu/libfoo.so.1",
            "usr/lib32",
        ]
    );
}

#[test]
fn symlink_loops_are_refused_naming_the_entry() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    for mode in [WhiteoutMode::Overlay, WhiteoutMode::Remove] {
        let root = t.path().join(format!("root-{mode:?}"));
        fs::create_dir(&root).unwrap();
        for (i, (tar, want)) in [
            (
                raw_tar(&[
                    ("a", EntryType::Symlink, b"", "b"),
                    ("b", EntryType::Symlink, b"", "/a"),
                    ("a/f", REG, b"x", ""),
                ]),
                "layer entry \"a/f\": parent \"a\": too many levels of symbolic links",
            ),
            (
                raw_tar(&[
                    ("d/self", EntryType::Symlink, b"", "../d/self/x"),
                    ("d/self/sub/.wh.x", REG, b"", ""),
                ]),
                "layer entry \"d/self/sub/.wh.x\": parent \"d/self\": too many levels of \
                 symbolic links",
            ),
        ]
        .iter()
        .enumerate()
        {
            let err = apply(tar, &root, mode).unwrap_err();
            assert_eq!(err.to_string(), *want, "{mode:?} case {i}");
            use skiff_image::error::{ErrorKind, HasKind};
            assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        }
    }
}
