//! Whiteouts in both modes, and diffs back to whiteout entries.

use super::*;

/// A lower tree: a/f, a/keep, dir1/x, dir2/old, b/old, b/sub/old2.
fn lower_layer() -> Vec<u8> {
    raw_tar(&[
        ("a/", DIR, b"", ""),
        ("a/f", REG, b"f", ""),
        ("a/keep", REG, b"k", ""),
        ("b/", DIR, b"", ""),
        ("b/old", REG, b"o", ""),
        ("b/sub/", DIR, b"", ""),
        ("b/sub/old2", REG, b"o", ""),
        ("dir1/", DIR, b"", ""),
        ("dir1/x", REG, b"x", ""),
        ("dir2/", DIR, b"", ""),
        ("dir2/old", REG, b"o", ""),
    ])
}

/// Deletes a/f and dir1, makes b opaque (marker last: it applies first all the same), adds
/// b/new and b/sub/n2, whites out c/x that it also creates (a no-op: same layer), and
/// replaces dir2 by a new directory (whiteout, then the directory: the old content is gone).
fn upper_layer() -> Vec<u8> {
    raw_tar(&[
        (".wh.dir1", REG, b"", ""),
        ("a/.wh.f", REG, b"", ""),
        ("b/new", REG, b"n", ""),
        ("b/sub/n2", REG, b"n", ""),
        ("c/x", REG, b"x", ""),
        ("c/.wh.x", REG, b"", ""),
        ("b/.wh..wh..opq", REG, b"", ""),
        (".wh.dir2", REG, b"", ""),
        ("dir2/", DIR, b"", ""),
        ("dir2/new", REG, b"n", ""),
    ])
}

#[test]
fn whiteouts_in_remove_mode_delete_and_diff_back_to_whiteouts() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let (lower, target) = (t.path().join("lower"), t.path().join("target"));
    for d in [&lower, &target] {
        fs::create_dir(d).unwrap();
        apply(&lower_layer(), d, WhiteoutMode::Remove).unwrap();
    }
    apply(&upper_layer(), &target, WhiteoutMode::Remove).unwrap();
    assert_eq!(
        listing(&target),
        ["a", "a/keep", "b", "b/new", "b/sub", "b/sub/n2", "c", "c/x", "dir2", "dir2/new"]
    );

    let tar = diff(DiffSource::Compare {
        lower: Some(&lower),
        upper: &target,
    });
    let n = names(&tar);
    for w in [
        ".wh.dir1",
        "a/.wh.f",
        "b/.wh.old",
        "b/sub/.wh.old2",
        "dir2/.wh.old",
    ] {
        assert!(n.contains(&w.to_owned()), "{w} missing from {n:?}");
    }
    assert!(
        !n.contains(&"a/keep".to_owned()),
        "unchanged files stay out: {n:?}"
    );
    // Applying that diff to another copy of the lower tree gives the same tree.
    let again = t.path().join("again");
    fs::create_dir(&again).unwrap();
    apply(&lower_layer(), &again, WhiteoutMode::Remove).unwrap();
    apply(&tar, &again, WhiteoutMode::Remove).unwrap();
    assert_eq!(snapshot(&again), snapshot(&target));
}

#[test]
fn whiteouts_in_overlay_mode_make_devices_and_opaque_dirs_and_diff_back() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
    fs::create_dir(&lower).unwrap();
    fs::create_dir(&upper).unwrap();
    apply(&lower_layer(), &lower, WhiteoutMode::Overlay).unwrap();
    apply(&upper_layer(), &upper, WhiteoutMode::Overlay).unwrap();
    for w in ["dir1", "a/f"] {
        let m = fs::symlink_metadata(upper.join(w)).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0, "{w}");
    }
    assert!(
        upper.join("c/x").is_file(),
        "a same-layer whiteout does not hide"
    );
    assert_eq!(
        xattr::get(upper.join("b"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );

    let tar = diff(DiffSource::OverlayUpper { upper: &upper });
    assert_eq!(
        names(&tar),
        [
            ".wh.dir1",
            "a/",
            "a/.wh.f",
            "b/",
            "b/.wh..wh..opq",
            "b/new",
            "b/sub/",
            "b/sub/n2",
            "c/",
            "c/x",
            "dir2/",
            "dir2/.wh..wh..opq",
            "dir2/new"
        ]
    );
    // Applied again in overlay mode, the diff gives an upper that diffs to the same bytes.
    let upper2 = t.path().join("upper2");
    fs::create_dir(&upper2).unwrap();
    apply(&tar, &upper2, WhiteoutMode::Overlay).unwrap();
    assert!(diff(DiffSource::OverlayUpper { upper: &upper2 }) == tar);

    // And the kernel agrees: mounted over the lower tree, the whiteouts hide.
    let (work, merged) = (t.path().join("work"), t.path().join("merged"));
    fs::create_dir(&work).unwrap();
    fs::create_dir(&merged).unwrap();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let data = std::ffi::CString::new(data).unwrap();
    let flags = rustix::mount::MountFlags::empty();
    let mounted = rustix::mount::mount("overlay", &merged, "overlay", flags, data.as_c_str());
    if let Err(e) = mounted {
        eprintln!("overlay mount check skipped: {e}");
        return;
    }
    let seen = listing(&merged);
    rustix::mount::unmount(&merged, rustix::mount::UnmountFlags::DETACH).unwrap();
    assert_eq!(
        seen,
        ["a", "a/keep", "b", "b/new", "b/sub", "b/sub/n2", "c", "c/x", "dir2", "dir2/new"]
    );
}
