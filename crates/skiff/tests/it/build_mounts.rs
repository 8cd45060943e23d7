//! `RUN --mount` in `skiff build`: cache mounts that outlive builds (and `builder prune`),
//! binds of the context, a stage or an image (read-only, or rw with writes thrown away),
//! tmpfs, and `--secret`s as files or environment variables. What a mount shows must never
//! reach the step's layer, its mount point included, and secrets reach no blob at all.
//! These builds run RUN steps in containers: root and runc or crun.

use std::fs;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::build::{build, config, need_builder, with_busybox};
use crate::harness::{require, run_command, Driver, Skiff};

/// The entries of each layer of `reference` above the busybox base (local layers are
/// stored uncompressed, their blob digest being the diff ID), directories with a `/`.
fn layers_above_base(s: &Skiff, reference: &str) -> Vec<Vec<String>> {
    let cfg = config(s, reference);
    let ids = cfg["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    ids.iter()
        .skip(1)
        .map(|d| {
            let hex = d.as_str().unwrap_or("").trim_start_matches("sha256:");
            let f = fs::File::open(s.root().join("blobs/sha256").join(hex)).expect("layer blob");
            let mut ar = tar::Archive::new(f);
            let mut names: Vec<String> = ar
                .entries()
                .expect("tar entries")
                .map(|e| {
                    let e = e.expect("tar entry");
                    e.path().expect("path").to_string_lossy().into_owned()
                })
                .collect();
            names.sort();
            names
        })
        .collect()
}

/// The mtime of each entry of the `n`th layer of `reference` (0 is the base).
fn entry_mtimes(s: &Skiff, reference: &str, n: usize) -> std::collections::BTreeMap<String, u64> {
    let cfg = config(s, reference);
    let d = cfg["rootfs"]["diff_ids"][n]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let f = fs::File::open(
        s.root()
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:")),
    )
    .expect("layer blob");
    let mut ar = tar::Archive::new(f);
    ar.entries()
        .expect("tar entries")
        .map(|e| {
            let e = e.expect("tar entry");
            (
                e.path().expect("path").to_string_lossy().into_owned(),
                e.header().mtime().unwrap_or(u64::MAX),
            )
        })
        .collect()
}

fn read(mp: &Path, p: &str) -> String {
    fs::read_to_string(mp.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn cache_mount_dirs(s: &Skiff) -> Vec<std::path::PathBuf> {
    fs::read_dir(s.root().join("build-cache-mounts"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[test]
fn a_cache_mount_outlives_builds_stays_out_of_the_image_and_prune_empties_it() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN --mount=type=cache,target=/cache,id=c1 echo hello > /cache/f && echo built > /done\n\
RUN --mount=type=cache,target=/var/lib/c2,uid=1000,mode=0700,sharing=locked stat -c '%u %a' /var/lib/c2 > /perm\n",
    );
    build(&s, &["-t", "c1", "ctx"]).assert_ok();
    let mp = s.mount("c1");
    assert_eq!(read(&mp, "done"), "built\n");
    assert_eq!(read(&mp, "perm"), "1000 700\n");
    assert!(!mp.join("cache").exists(), "the mount point stays out");
    assert!(
        !mp.join("var/lib").exists(),
        "parents made for a mount stay out"
    );
    s.ok(["image", "unmount", "c1"]);
    let layers = layers_above_base(&s, "c1");
    assert_eq!(
        layers[0],
        ["done"],
        "the layer holds only what the command wrote"
    );
    // On overlay, making /var/lib copies /var up; it stays as it was in the base (the
    // differ writes what was copied up, as docker's overlay2 differ does), mtime and all.
    let perm: Vec<&String> = layers[1].iter().filter(|e| *e != "var/").collect();
    assert_eq!(perm, ["perm"], "{layers:?}");
    assert_eq!(layers.len(), 2);
    assert_eq!(
        entry_mtimes(&s, "c1", 2).get("var/").copied().unwrap_or(0),
        0,
        "the parent of a mount point keeps its times"
    );
    assert_eq!(cache_mount_dirs(&s).len(), 2);

    // Another Dockerfile, no cache: the same id sees what the first build left.
    s.write(
        "ctx/Dockerfile.2",
        b"FROM busybox\nRUN --mount=type=cache,id=c1,dst=/elsewhere cat /elsewhere/f > /seen\n",
    );
    build(
        &s,
        &["--no-cache", "-f", "ctx/Dockerfile.2", "-t", "c2", "ctx"],
    )
    .assert_ok();
    let mp = s.mount("c2");
    assert_eq!(read(&mp, "seen"), "hello\n");
    s.ok(["image", "unmount", "c2"]);

    // The mount's spec is in the step's key: another sharing mode is another step.
    s.write(
        "ctx/Dockerfile.3",
        b"FROM busybox\nRUN --mount=type=cache,id=c1,dst=/elsewhere,sharing=private cat /elsewhere/f > /seen\n",
    );
    let out = build(&s, &["-f", "ctx/Dockerfile.3", "-t", "c3", "ctx"]).assert_ok();
    assert!(!out.stdout.contains("Using cache"), "{out}");

    let pruned = s.ok(["builder", "prune", "-f"]);
    assert!(pruned.stdout.contains("Total reclaimed space"), "{pruned}");
    assert!(
        cache_mount_dirs(&s).is_empty(),
        "prune empties cache mounts"
    );
    let out = build(&s, &["--no-cache", "-f", "ctx/Dockerfile.2", "ctx"]).assert_fail();
    assert!(out.stdout.contains("No such file"), "{out}");
}

#[test]
fn bind_mounts_read_the_context_and_stages_and_leave_nothing_behind() {
    require!(need_builder());
    let s = with_busybox();
    s.write("ctx/data/a.txt", b"from the context\n");
    s.write("ctx/data/ignored.txt", b"hidden\n");
    s.write("ctx/.dockerignore", b"data/ignored.txt\n");
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox AS stage\nRUN echo staged > /st\n\
FROM busybox\n\
RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/a.txt > /a && test ! -e /mnt/data/ignored.txt\n\
RUN --mount=target=/ctx cat /ctx/data/a.txt > /b\n\
RUN --mount=type=bind,from=stage,source=/st,target=/x/st cat /x/st > /c\n\
RUN --mount=type=bind,from=busybox,target=/bb test -x /bb/bin/busybox && echo img > /i\n\
RUN --mount=type=bind,source=data,target=/w,rw echo junk > /w/a.txt && echo new > /w/new && cat /w/a.txt > /d\n\
RUN --mount=type=bind,source=data,target=/w cat /w/a.txt > /e && test ! -e /w/new\n\
RUN --mount=source=data,target=/r sh -c 'echo x > /r/new' 2>/dev/null || echo refused > /f\n",
    );
    let out = build(&s, &["-t", "binds", "ctx"]).assert_ok();
    assert!(!out.stdout.contains("Using cache"), "{out}");
    let mp = s.mount("binds");
    assert_eq!(read(&mp, "a"), "from the context\n");
    assert_eq!(read(&mp, "b"), "from the context\n");
    assert_eq!(read(&mp, "c"), "staged\n");
    assert_eq!(read(&mp, "i"), "img\n");
    assert_eq!(
        read(&mp, "d"),
        "junk\n",
        "a rw bind is writable during the step"
    );
    assert_eq!(
        read(&mp, "e"),
        "from the context\n",
        "and its writes are gone after"
    );
    assert_eq!(
        read(&mp, "f"),
        "refused\n",
        "binds are read-only by default"
    );
    for gone in ["mnt", "ctx", "x", "bb", "w", "r", "st"] {
        assert!(!mp.join(gone).exists(), "/{gone} stays out of the image");
    }
    s.ok(["image", "unmount", "binds"]);
    let layers = layers_above_base(&s, "binds");
    let want: Vec<Vec<String>> = ["a", "b", "c", "i", "d", "e", "f"]
        .iter()
        .map(|f| vec![(*f).to_owned()])
        .collect();
    assert_eq!(layers, want);
    assert_eq!(
        fs::read_to_string(s.path("ctx/data/a.txt")).unwrap(),
        "from the context\n",
        "the context is untouched"
    );
    assert!(!s.path("ctx/data/new").exists());

    // The content of a bound context path is in the key: a change misses, the rest hits.
    let again = build(&s, &["-t", "binds", "ctx"]).assert_ok();
    assert_eq!(again.stdout.matches("Using cache").count(), 8, "{again}");
    s.write("ctx/data/a.txt", b"changed\n");
    let changed = build(&s, &["-t", "binds2", "ctx"]).assert_ok();
    assert!(
        changed.stdout.matches("Using cache").count() <= 3,
        "the binds of data/ miss:\n{changed}"
    );
    let mp = s.mount("binds2");
    assert_eq!(read(&mp, "a"), "changed\n");
    assert_eq!(read(&mp, "c"), "staged\n");
    s.ok(["image", "unmount", "binds2"]);

    // Nothing is left mounted or half-made.
    let left: Vec<_> = fs::read_dir(s.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in tmp: {left:?}");
}

#[test]
fn tmpfs_mounts_are_empty_writable_and_gone_after() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN --mount=type=tmpfs,target=/scratch,size=1m test -z \"$(ls -A /scratch)\" && echo hi > /scratch/x && cat /scratch/x > /t && grep ' /scratch tmpfs ' /proc/mounts | grep -q size=1024k\n",
    );
    build(&s, &["-t", "tm", "ctx"]).assert_ok();
    let mp = s.mount("tm");
    assert_eq!(read(&mp, "t"), "hi\n");
    assert!(!mp.join("scratch").exists());
    s.ok(["image", "unmount", "tm"]);
    assert_eq!(layers_above_base(&s, "tm"), [vec!["t".to_owned()]]);
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[test]
fn secrets_are_readable_as_files_and_env_and_reach_no_blob() {
    require!(need_builder());
    let s = with_busybox();
    let file_secret = b"file-secret-8c1f";
    let env_secret = "env-secret-51ab";
    s.write("tok", file_secret);
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\n\
RUN --mount=type=secret,id=tok sha256sum < /run/secrets/tok > /sum1 && stat -c '%a %u' /run/secrets/tok > /mode1\n\
RUN --mount=type=secret,id=tok,target=/etc/tok.conf,mode=0440,uid=1000 stat -c '%a %u' /etc/tok.conf > /mode2\n\
RUN --mount=type=secret,id=envtok,env=TOKEN printf %s \"$TOKEN\" | sha256sum > /sum2\n\
RUN --mount=type=secret,id=nope test ! -e /run/secrets/nope && echo skipped > /opt\n",
    );
    let mut cmd = s.command([
        "build",
        "--secret",
        "id=tok,src=tok",
        "--secret",
        "id=envtok,env=SKIFF_TEST_SECRET",
        "-t",
        "sec",
        "ctx",
    ]);
    cmd.env("SKIFF_TEST_SECRET", env_secret);
    run_command(cmd, None).assert_ok();
    let mp = s.mount("sec");
    assert_eq!(
        read(&mp, "sum1"),
        format!("{}  -\n", sha256_hex(file_secret))
    );
    assert_eq!(
        read(&mp, "sum2"),
        format!("{}  -\n", sha256_hex(env_secret.as_bytes()))
    );
    assert_eq!(read(&mp, "mode1"), "400 0\n");
    assert_eq!(read(&mp, "mode2"), "440 1000\n");
    assert_eq!(
        read(&mp, "opt"),
        "skipped\n",
        "a missing optional secret is left out"
    );
    assert!(
        !mp.join("run").exists(),
        "/run/secrets stays out of the image"
    );
    assert!(!mp.join("etc/tok.conf").exists());
    s.ok(["image", "unmount", "sec"]);
    let history = s.ok(["history", "--no-trunc", "sec"]).stdout;
    assert!(!history.contains(env_secret), "{history}");
    // No blob (layers, configs, manifests) holds either value.
    for e in fs::read_dir(s.root().join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        let mut bytes = Vec::new();
        fs::File::open(e.path())
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        for secret in [&file_secret[..], env_secret.as_bytes()] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret),
                "blob {} holds a secret",
                e.path().display()
            );
        }
    }

    // A required secret that was not given fails the build in BuildKit's words.
    s.write(
        "ctx/Dockerfile.req",
        b"FROM busybox\nRUN --mount=type=secret,id=missing,required true\n",
    );
    let out = build(&s, &["-f", "ctx/Dockerfile.req", "ctx"]).assert_fail();
    assert!(out.stderr.contains("secret missing: not found"), "{out}");
    let out = build(&s, &["--secret", "id=x,src=/no/such/file", "ctx"]).assert_fail();
    assert!(
        out.stderr.contains(
            "failed to stat /no/such/file: stat /no/such/file: no such file or directory"
        ),
        "{out}"
    );
    let left: Vec<_> = fs::read_dir(s.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in tmp: {left:?}");
}

#[test]
fn a_bad_mount_fails_naming_the_line() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN --mount=type=volume,target=/x true\n",
    );
    let out = build(&s, &["ctx"]).assert_fail();
    assert!(
        out.stderr
            .contains("dockerfile parse error on line 2: unsupported mount type \"volume\""),
        "{out}"
    );
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\n\nRUN --mount=type=cache,target=/x,colour=red true\n",
    );
    let out = build(&s, &["ctx"]).assert_fail();
    assert!(
        out.stderr
            .contains("dockerfile parse error on line 3: unexpected key 'colour' in 'colour=red'"),
        "{out}"
    );
}

#[test]
fn mounts_work_the_same_on_the_vfs_driver() {
    require!(need_builder());
    let s = Skiff::with_driver(Driver::Vfs);
    s.import_busybox("busybox");
    s.write("ctx/data/a.txt", b"ctx\n");
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox AS stage\nRUN echo staged > /st\n\
FROM busybox\n\
RUN --mount=type=bind,from=stage,target=/s,rw echo junk > /s/st && cat /s/st > /a\n\
RUN --mount=type=bind,from=stage,target=/s cat /s/st > /b\n\
RUN --mount=type=cache,target=/var/lib/cache echo kept > /var/lib/cache/k && cat /var/lib/cache/k > /c\n\
RUN --mount=type=bind,source=data,target=/d cat /d/a.txt > /d2\n",
    );
    build(&s, &["-t", "v", "ctx"]).assert_ok();
    let mp = s.mount("v");
    assert_eq!(read(&mp, "a"), "junk\n");
    assert_eq!(
        read(&mp, "b"),
        "staged\n",
        "the stage is untouched by the rw bind"
    );
    assert_eq!(read(&mp, "c"), "kept\n");
    assert_eq!(read(&mp, "d2"), "ctx\n");
    s.ok(["image", "unmount", "v"]);
    // vfs compares trees, so not even the parent of a mount point shows.
    let want: Vec<Vec<String>> = ["a", "b", "c", "d2"]
        .iter()
        .map(|f| vec![(*f).to_owned()])
        .collect();
    assert_eq!(layers_above_base(&s, "v"), want);
}

#[test]
fn a_locked_cache_mount_serializes_concurrent_builds() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN --mount=type=cache,target=/c,sharing=locked if [ -e /c/busy ]; then echo overlapped; exit 3; fi; touch /c/busy; sleep 2; rm /c/busy\n",
    );
    // One build first: concurrent first opens of a fresh root's build cache database can
    // fail with "database is locked" (not what this test is about).
    build(&s, &["ctx"]).assert_ok();
    let spawn = || {
        let mut c = s.command(["build", "--no-cache", "ctx"]);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().expect("spawn skiff build")
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().expect("wait for skiff build");
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
