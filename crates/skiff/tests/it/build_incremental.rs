//! Incremental COPY: after an edit of some context files, a COPY that misses is rebuilt from
//! the earlier result of the same step (hard links plus a spliced layer). Its image must be
//! the one a full copy gives: the same ID as `--no-cache` with SOURCE_DATE_EPOCH, the same
//! files, modes and mtimes without it. `touch` still hits the cache; added or removed files
//! take the full copy.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::harness::{need_overlay, need_root, require, Out, Skiff};

const DOCKERFILE: &str = "FROM busybox\nCOPY tree /tree\n";

fn make_context(s: &Skiff) {
    for i in 0..60 {
        let name = format!("ctx/tree/d{}/f{i:02}", i % 6);
        s.write(&name, format!("file {i}\n").repeat(i + 1).as_bytes());
    }
    s.write("ctx/Dockerfile", DOCKERFILE.as_bytes());
}

fn build(s: &Skiff, epoch: Option<&str>, extra: &[&str]) -> Out {
    let mut args = vec!["-D", "build", "-q"];
    args.extend_from_slice(extra);
    args.push("ctx");
    let mut cmd = s.command(args);
    match epoch {
        Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
        None => cmd.env_remove("SOURCE_DATE_EPOCH"),
    };
    crate::harness::run_command(cmd, None).assert_ok()
}

fn id(out: &Out) -> String {
    out.stdout.trim().to_owned()
}

fn incremental(out: &Out) -> bool {
    out.stderr.contains("incremental COPY:")
}

fn set_mtime(p: &Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::empty(),
    )
    .expect("utimensat");
}

#[test]
fn edited_files_rebuild_incrementally_to_the_full_copys_image() {
    require!(need_root());
    require!(need_overlay());
    let s = Skiff::new();
    s.import_busybox("busybox");
    make_context(&s);
    let epoch = Some("1700000000");
    let first = build(&s, epoch, &[]);
    assert!(!incremental(&first), "nothing to start from:\n{first}");

    // touch: the key leaves mtimes out, so the cache hits.
    set_mtime(&s.path("ctx/tree/d1/f01"), 1_000_000_000);
    let touched = build(&s, epoch, &[]);
    assert_eq!(id(&touched), id(&first), "a touch must hit the cache");

    // An edit (and the touched file's older mtime, under the epoch): incremental, and the
    // same image as a full copy.
    fs::write(s.path("ctx/tree/d3/f09"), b"edited\n").expect("edit");
    // A file come and gone changes its directory's mtime only: still incremental.
    s.write("ctx/tree/d3/tmp", b"");
    fs::remove_file(s.path("ctx/tree/d3/tmp")).expect("rm");
    set_mtime(&s.path("ctx/tree/d3"), 1_100_000_000);
    let edited = build(&s, epoch, &[]);
    assert!(
        incremental(&edited),
        "an edit takes the incremental path:\n{edited}"
    );
    assert_ne!(id(&edited), id(&first));
    // The layer's recorded size (docker's count of file bytes): 70 bytes became 7.
    let size = |r: &str| -> i64 {
        let out = s.ok(["image", "inspect", "--format", "{{.Size}}", r]);
        out.stdout.trim().parse().expect("a size")
    };
    assert_eq!(size(&id(&first)) - size(&id(&edited)), 63);
    let full = build(&s, epoch, &["--no-cache"]);
    assert!(!incremental(&full), "--no-cache copies everything:\n{full}");
    assert_eq!(id(&edited), id(&full), "incremental and full copies differ");

    // chmod misses, and is incremental too.
    fs::set_permissions(s.path("ctx/tree/d4/f10"), fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let chmodded = build(&s, epoch, &[]);
    assert!(incremental(&chmodded), "{chmodded}");
    assert_ne!(id(&chmodded), id(&full));
    assert_eq!(
        id(&chmodded),
        id(&build(&s, epoch, &["--no-cache"])),
        "chmod: incremental and full copies differ"
    );

    // A new file changes the file list: the full copy, same image as --no-cache.
    s.write("ctx/tree/d0/new", b"new\n");
    let added = build(&s, epoch, &[]);
    assert!(!incremental(&added), "{added}");
    assert_eq!(id(&added), id(&build(&s, epoch, &["--no-cache"])));
}

#[test]
fn incremental_copy_without_epoch_keeps_every_file_and_mtime() {
    require!(need_root());
    require!(need_overlay());
    let s = Skiff::new();
    s.import_busybox("busybox");
    make_context(&s);
    for i in 0..60 {
        set_mtime(
            &s.path(&format!("ctx/tree/d{}/f{i:02}", i % 6)),
            1_600_000_000 + i as i64,
        );
    }
    let first = build(&s, None, &[]);
    let old_root = s.mount(&id(&first));
    let kept = fs::metadata(old_root.join("tree/d2/f02")).expect("stat");

    fs::write(s.path("ctx/tree/d2/f08"), b"edited\n").expect("edit");
    set_mtime(&s.path("ctx/tree/d2/f08"), 1_650_000_000);
    fs::write(s.path("ctx/tree/d5/f59"), b"edited too\n").expect("edit");
    let edited = build(&s, None, &[]);
    assert!(incremental(&edited), "{edited}");
    let root = s.mount(&id(&edited));
    for i in 0..60 {
        let rel = format!("tree/d{}/f{i:02}", i % 6);
        let want = fs::symlink_metadata(s.path(&format!("ctx/{rel}"))).expect("stat");
        let got = fs::symlink_metadata(root.join(&rel)).expect("stat in image");
        assert_eq!(
            fs::read(root.join(&rel)).expect("read"),
            fs::read(s.path(&format!("ctx/{rel}"))).expect("read"),
            "{rel}"
        );
        assert_eq!(got.mtime(), want.mtime(), "{rel} mtime");
        assert_eq!(got.mode() & 0o7777, want.mode() & 0o7777, "{rel} mode");
        assert_eq!((got.uid(), got.gid()), (0, 0), "{rel} owner");
    }
    // The earlier image is untouched (its files share inodes with the new one's).
    assert_eq!(
        fs::read(old_root.join("tree/d2/f08")).expect("read"),
        "file 8\n".repeat(9).as_bytes()
    );
    let after = fs::metadata(old_root.join("tree/d2/f02")).expect("stat");
    assert_eq!(
        (after.mtime(), after.mode(), after.len()),
        (kept.mtime(), kept.mode(), kept.len())
    );
}
