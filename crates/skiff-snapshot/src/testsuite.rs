//! One conformance suite run against every driver, like containerd's snapshot testsuite.
//! Checks that mount need root and say so when they skip.

use std::fs;
use std::path::Path;

use crate::mount::{mount_all, unmount_all};
use crate::snapshotter::{Kind, SnapshotError, Snapshotter};

fn drivers(root: &Path) -> Vec<Box<dyn Snapshotter>> {
    let mut out: Vec<Box<dyn Snapshotter>> = vec![Box::new(
        crate::vfs::VfsSnapshotter::open(&root.join("vfs")).unwrap(),
    )];
    match crate::open(root, Some("overlay")) {
        Ok(s) => out.push(s),
        Err(e) => eprintln!("skipping overlay driver checks: {e}"),
    }
    out
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Mounts a snapshot, runs `f` on the mountpoint, and unmounts even if `f` panics.
fn with_mounted(s: &dyn Snapshotter, key: &str, f: impl FnOnce(&Path)) {
    let target = tempfile::tempdir().unwrap();
    mount_all(&s.mounts(key).unwrap(), target.path()).unwrap();
    struct Guard<'a>(&'a Path);
    impl Drop for Guard<'_> {
        fn drop(&mut self) {
            unmount_all(self.0).unwrap();
        }
    }
    let _g = Guard(target.path());
    f(target.path());
}

#[test]
fn lifecycle_prepare_commit_view_remove() {
    let dir = tempfile::tempdir().unwrap();
    for s in drivers(dir.path()) {
        let name = s.driver();
        s.prepare("a-active", None).unwrap();
        let target = s.layer_target("a-active").unwrap();
        fs::write(target.dir.join("hello"), "a").unwrap();
        s.commit("a", "a-active").unwrap();
        assert_eq!(
            s.stat("a").unwrap().unwrap().kind,
            Kind::Committed,
            "{name}"
        );
        assert!(s.stat("a-active").unwrap().is_none(), "{name}");
        // A committed snapshot cannot be committed again or prepared under the same key.
        assert!(
            matches!(s.commit("x", "a"), Err(SnapshotError::WrongKind { .. })),
            "{name}"
        );
        assert!(
            matches!(s.prepare("a", None), Err(SnapshotError::AlreadyExists(_))),
            "{name}"
        );
        // Children pin their parent.
        s.prepare("b-active", Some("a")).unwrap();
        assert!(
            matches!(s.remove("a"), Err(SnapshotError::HasChildren { .. })),
            "{name}"
        );
        assert!(
            matches!(
                s.prepare("c", Some("b-active")),
                Err(SnapshotError::WrongKind { .. })
            ),
            "{name}"
        );
        assert!(
            matches!(
                s.prepare("d", Some("missing")),
                Err(SnapshotError::NotFound(_))
            ),
            "{name}"
        );
        s.remove("b-active").unwrap();
        s.remove("a").unwrap();
        assert!(s.walk().unwrap().is_empty(), "{name}");
    }
}

#[test]
fn child_sees_parent_files_and_its_own() {
    if !is_root() {
        eprintln!("skipping: mounting snapshots needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for s in drivers(dir.path()) {
        let name = s.driver();
        s.prepare("l1", None).unwrap();
        fs::write(s.layer_target("l1").unwrap().dir.join("base"), "1").unwrap();
        s.commit("c1", "l1").unwrap();
        s.prepare("l2", Some("c1")).unwrap();
        fs::write(s.layer_target("l2").unwrap().dir.join("top"), "2").unwrap();
        s.commit("c2", "l2").unwrap();
        s.prepare("ctr", Some("c2")).unwrap();
        with_mounted(s.as_ref(), "ctr", |root| {
            assert_eq!(
                fs::read_to_string(root.join("base")).unwrap(),
                "1",
                "{name}"
            );
            assert_eq!(fs::read_to_string(root.join("top")).unwrap(), "2", "{name}");
            fs::write(root.join("new"), "3").unwrap();
            fs::remove_file(root.join("base")).unwrap();
        });
        // The container's writes stay in its own snapshot: the parents are unchanged.
        s.view("v", "c2").unwrap();
        with_mounted(s.as_ref(), "v", |root| {
            assert!(root.join("base").exists(), "{name}");
            assert!(!root.join("new").exists(), "{name}");
            assert!(
                fs::write(root.join("x"), "").is_err(),
                "{name}: a view must be read-only"
            );
        });
        assert!(s.usage("ctr").unwrap() >= 1, "{name}");
        for key in ["v", "ctr", "c2", "c1"] {
            s.remove(key).unwrap();
        }
    }
}

#[test]
fn orphan_directories_are_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    for s in drivers(dir.path()) {
        s.prepare("k", None).unwrap();
        let info = s.stat("k").unwrap().unwrap();
        let root = s.layer_target("k").unwrap().dir;
        let base = root.parent().unwrap().parent().unwrap().to_owned();
        fs::create_dir_all(base.join((info.id + 100).to_string()).join("fs")).unwrap();
        assert_eq!(s.cleanup().unwrap(), 1, "{}", s.driver());
        assert!(s.stat("k").unwrap().is_some());
        s.remove("k").unwrap();
    }
}
