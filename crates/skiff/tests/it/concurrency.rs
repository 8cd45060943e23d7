//! Several skiff processes on one root at once, and a load killed with SIGKILL half-way:
//! the store stays consistent (every tag kept, `images` works, no partial blob visible) and
//! the next load succeeds.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::archive::{write_docker_archive, write_noise_layer, DiffIds};
use crate::files::assert_blobs_verified;
use crate::harness::{busybox_tar, describe, wait_with_timeout, Skiff};

fn spawn(s: &Skiff, args: &[&str]) -> (Child, String) {
    let mut cmd = s.command(args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let line = describe(&cmd);
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn `{line}`: {e}"));
    (child, line)
}

#[test]
fn concurrent_imports_into_one_root_all_succeed() {
    let s = Skiff::new();
    let tar = busybox_tar().to_str().expect("utf-8").to_string();
    let names: Vec<String> = (1..=4).map(|i| format!("c{i}:latest")).collect();

    // Two rounds: the first races schema creation on an empty root, the second races writers
    // on an existing store (same layer blob, new configs and tags).
    for round in 0..2 {
        let mut children = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let msg = format!("round {round} import {i}");
            children.push(spawn(&s, &["import", "-m", &msg, &tar, n]));
        }
        children.push(spawn(&s, &["images"]));
        for (mut child, line) in children {
            let (code, stdout, stderr) =
                wait_with_timeout(&mut child, Duration::from_secs(300), &line);
            assert_eq!(
                code,
                0,
                "concurrent `{line}` failed:\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        let listed = s.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        let got: BTreeSet<String> = listed
            .stdout
            .lines()
            .filter(|l| !l.starts_with("<none>"))
            .map(str::to_string)
            .collect();
        let want: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(
            got, want,
            "every concurrent import's tag must be kept (round {round}):\n{listed}"
        );
    }
    assert!(
        assert_blobs_verified(s.root()) > 0,
        "blobs/sha256 should hold the imported content"
    );
}

/// A ~100 MB docker-archive, four 25 MiB layers of noise, tagged big:latest.
fn big_archive(s: &Skiff) -> PathBuf {
    let layers: Vec<PathBuf> = (0..4u64)
        .map(|i| {
            let p = s.path(&format!("big-layer{i}.tar"));
            write_noise_layer(&p, &format!("data{i}"), i + 1, 25 << 20);
            p
        })
        .collect();
    let out = s.path("big.tar");
    write_docker_archive(&out, &["big:latest"], &layers, DiffIds::Computed);
    for l in layers {
        let _ = fs::remove_file(l);
    }
    out
}

/// Total bytes in regular files below `dir` (0 when it does not exist).
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else {
                continue;
            };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// Start `load -i big.tar`, wait until it has written `progress` bytes into the store (or a
/// deadline passes), SIGKILL that one process, and reap it. Returns whether it was killed
/// before finishing on its own.
fn kill_load_midway(s: &Skiff, archive: &Path, progress: u64) -> bool {
    let (mut child, line) = spawn(s, &["load", "-i", archive.to_str().expect("utf-8")]);
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            let _ = wait_with_timeout(&mut child, Duration::from_secs(10), &line);
            return false;
        }
        let written = bytes_under(&s.root().join("ingest")) + bytes_under(&s.root().join("blobs"));
        if written >= progress || start.elapsed() > Duration::from_secs(20) {
            break;
        }
        thread::sleep(Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL the load we spawned");
    let (code, _, _) = wait_with_timeout(&mut child, Duration::from_secs(30), &line);
    code == 128 + 9
}

#[test]
fn load_killed_midway_leaves_consistent_store() {
    let s = Skiff::new();
    s.import_busybox("busybox:latest");
    let archive = big_archive(&s);

    // Kill early (first bytes ingested), in the middle, and late (most layers committed).
    let mut killed = 0;
    for progress in [1u64 << 20, 40 << 20, 90 << 20] {
        if kill_load_midway(&s, &archive, progress) {
            killed += 1;
        }
        let imgs = s.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert!(
            imgs.stdout.lines().any(|l| l == "busybox:latest"),
            "an earlier image survives a killed load:\n{imgs}"
        );
        assert_blobs_verified(s.root());
        s.ok(["inspect", "busybox"]);
    }
    if killed == 0 {
        crate::harness::report_note(
            "every load finished before it could be killed; only the final checks ran",
        );
    }

    let out = s.ok(["load", "-i", archive.to_str().expect("utf-8")]);
    assert!(
        out.stdout.lines().any(|l| l == "Loaded image: big:latest"),
        "load after the kills:\n{out}"
    );
    let n = s.ok(["inspect", "-f", "{{len .RootFS.Layers}}", "big:latest"]);
    assert_eq!(n.stdout.trim(), "4", "{n}");
    let tags = s.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let got: BTreeSet<&str> = tags.stdout.lines().collect();
    assert!(
        got.contains("big:latest") && got.contains("busybox:latest"),
        "{tags}"
    );
    assert!(
        assert_blobs_verified(s.root()) >= 6,
        "4 layers, a config and busybox's blobs expected"
    );
}
