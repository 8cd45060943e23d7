//! Round trips (tree -> tar -> tree), determinism, replacement of existing entries, diff_id.

use super::*;

#[test]
fn round_trip_keeps_every_kind_of_entry_and_its_metadata() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    fs::create_dir(&src).unwrap();
    build_tree(&src);
    let tar = diff(DiffSource::Compare {
        lower: None,
        upper: &src,
    });
    assert!(
        !names(&tar).iter().any(|n| n.contains("sock")),
        "sockets are skipped"
    );
    let want = snapshot(&src);
    assert!(
        want["z/orig"].ends_with("inode=a/link"),
        "{}",
        want["z/orig"]
    );
    assert!(want["bin/su"].contains(" 4755 1000:1000"));

    for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let dst = t.path().join(format!("dst-{c}"));
        fs::create_dir(&dst).unwrap();
        let stats = apply(&compress(&tar, c), &dst, WhiteoutMode::Overlay).unwrap();
        assert_eq!(stats.compression, c);
        assert_eq!(stats.diff_id, Digest::of_bytes(&tar));
        assert_eq!(stats.size, tar.len() as u64);
        let got = snapshot(&dst);
        for (k, v) in &want {
            assert_eq!(got.get(k), Some(v), "{c}: {k}");
        }
        assert_eq!(got.len(), want.len(), "{c}: extra entries {got:#?}");
        // The applied tree diffs back to the very same bytes.
        assert!(
            diff(DiffSource::Compare {
                lower: None,
                upper: &dst
            }) == tar,
            "{c}: re-diff differs"
        );
    }
}

#[test]
fn hardlinks_point_to_the_first_path_in_tar_order() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    build_tree(t.path());
    let tar = diff(DiffSource::Compare {
        lower: None,
        upper: t.path(),
    });
    let mut ar = tar::Archive::new(&tar[..]);
    let links: Vec<_> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type() == EntryType::Link)
        .map(|e| {
            (
                e.path().unwrap().into_owned(),
                e.link_name().unwrap().unwrap().into_owned(),
            )
        })
        .collect();
    assert_eq!(
        links,
        vec![(
            Path::new("z/orig").to_owned(),
            Path::new("a/link").to_owned()
        )]
    );
}

#[test]
fn write_layer_is_deterministic_and_clamps_mtimes() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    build_tree(t.path());
    let a = diff(DiffSource::Compare {
        lower: None,
        upper: t.path(),
    });
    let b = diff(DiffSource::Compare {
        lower: None,
        upper: t.path(),
    });
    assert!(a == b);
    let mut out = Vec::new();
    let opts = DiffOptions {
        source_date_epoch: Some(1_000),
    };
    let stats = write_layer(
        DiffSource::Compare {
            lower: None,
            upper: t.path(),
        },
        &mut out,
        &opts,
    )
    .unwrap();
    let mut ar = tar::Archive::new(&out[..]);
    let mut n = 0;
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        assert!(e.header().mtime().unwrap() <= 1_000);
        assert_eq!(e.header().username_bytes(), Some(&b""[..]));
        n += 1;
    }
    assert_eq!(stats.entries, n);
}

#[test]
fn existing_entries_are_replaced_like_docker() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let root = t.path();
    fs::create_dir_all(root.join("d/child")).unwrap();
    fs::create_dir_all(root.join("gone/child")).unwrap();
    fs::write(root.join("f"), "old").unwrap();
    let tar = raw_tar(&[
        ("d/", DIR, b"", ""),       // dir over dir: children stay, metadata updated
        ("gone", REG, b"file", ""), // file over dir: the dir goes
        ("f/", DIR, b"", ""),       // dir over file
    ]);
    apply(&tar, root, WhiteoutMode::Remove).unwrap();
    assert!(root.join("d/child").is_dir());
    assert_eq!(fs::metadata(root.join("d")).unwrap().mtime(), 1_234_567_890);
    assert_eq!(fs::read_to_string(root.join("gone")).unwrap(), "file");
    assert!(root.join("f").is_dir());
}

#[test]
fn diff_id_covers_trailing_bytes_and_truncation_fails() {
    require_root!();
    let t = tempfile::tempdir().unwrap();
    let mut tar = raw_tar(&[("f", REG, b"data", "")]);
    tar.extend_from_slice(&[0; 10_240]);
    let stats = apply(
        &compress(&tar, Compression::Gzip),
        t.path(),
        WhiteoutMode::Overlay,
    )
    .unwrap();
    assert_eq!(stats.size, tar.len() as u64);
    assert_eq!(stats.diff_id, Digest::of_bytes(&tar));
    assert_eq!(stats.entries, 1);

    let big = raw_tar(&[("big", REG, &vec![1u8; 100_000], "")]);
    let err = apply(
        &big[..50_000],
        &t.path().join("big-dir"),
        WhiteoutMode::Overlay,
    );
    assert!(err.is_err());
    fs::create_dir(t.path().join("trunc")).unwrap();
    let err = apply(
        &big[..50_000],
        &t.path().join("trunc"),
        WhiteoutMode::Overlay,
    )
    .unwrap_err();
    assert!(err.to_string().contains("\"big\""), "{err}");
}
