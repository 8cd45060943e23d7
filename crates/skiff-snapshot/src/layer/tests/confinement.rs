//! Hostile paths: `..`, absolute names, symlinks and hardlinks leading out of the root.

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
        (
            raw_tar(&[
                ("a", EntryType::Symlink, b"", out.to_str().unwrap()),
                ("a/passwd", REG, b"x", ""),
            ]),
            "layer entry \"a/passwd\": parent \"a\" is a symlink",
        ),
        (
            raw_tar(&[
                ("r", EntryType::Symlink, b"", "../out"),
                ("r/sub/f", REG, b"x", ""),
            ]),
            "parent \"r\" is a symlink",
        ),
        (
            raw_tar(&[("l", EntryType::Link, b"", "../x")]),
            "hardlink target \"../x\": escapes the root",
        ),
        (
            raw_tar(&[
                ("q", EntryType::Symlink, b"", out.to_str().unwrap()),
                ("h", EntryType::Link, b"", "q/secret"),
            ]),
            "hardlink target \"q/secret\": parent \"q\" is a symlink",
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
