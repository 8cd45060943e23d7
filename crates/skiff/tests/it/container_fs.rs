//! `diff`, `export`, `cp` and `commit`: a container's filesystem read, copied both ways and
//! turned into an image, with symlinks that point out of the container never followed on
//! the host.

use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;

use serde_json::Value;

use crate::containers::{need_containers, Env};
use crate::harness::require;

/// A stopped container `c` that added, changed and deleted files, and planted symlinks that
/// lead out of its root.
fn changed_container(e: &Env) {
    e.ok(&[
        "run",
        "--name",
        "ct",
        "busybox",
        "sh",
        "-c",
        "echo hi > /f; rm /bin/ls; mkdir -p /etc/new; echo x >> /etc/passwd; \
         ln -s ../../../../../../etc/shadow /esc; ln -s /etc/passwd /abs; \
         mkdir /d; echo 1 > /d/one; chown 7:8 /d/one",
    ]);
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .expect("a tar")
        .map(|e| {
            e.expect("tar entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn tar_file(bytes: &[u8], name: &str) -> Option<(String, u64, u64)> {
    let mut ar = tar::Archive::new(bytes);
    for e in ar.entries().expect("a tar") {
        let mut e = e.expect("tar entry");
        if e.path().expect("path").to_string_lossy() == name {
            let (uid, gid) = (e.header().uid().unwrap_or(0), e.header().gid().unwrap_or(0));
            let mut s = String::new();
            e.read_to_string(&mut s).expect("read entry");
            return Some((s, uid, gid));
        }
    }
    None
}

#[test]
fn diff_lists_added_changed_and_deleted_paths() {
    require!(need_containers());
    let e = Env::new();
    changed_container(&e);
    let out = e.ok(&["diff", "ct"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for want in [
        "C /bin",
        "D /bin/ls",
        "A /esc",
        "C /etc",
        "A /etc/new",
        "C /etc/passwd",
        "A /f",
        "A /d",
        "A /d/one",
    ] {
        assert!(lines.contains(&want), "diff should list {want:?}:\n{out}");
    }
    // The runtime's mountpoints are not the container's changes (docker's init layer).
    assert!(!lines.contains(&"A /etc/hosts"), "{out}");
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| &l[2..]);
    assert_eq!(lines, sorted, "sorted by path");
    assert_eq!(e.ok(&["container", "diff", "ct"]).stdout, out.stdout);
    let out = e.run(&["diff", "nosuch"]);
    assert!(out.stderr.contains("No such container: nosuch"), "{out}");
}

#[test]
fn export_writes_the_flattened_tree() {
    require!(need_containers());
    let e = Env::new();
    changed_container(&e);
    let out = e.ok(&["export", "ct"]);
    let names = tar_names(&out.raw_stdout);
    assert!(names.contains(&"f".to_owned()), "export has the added file");
    assert!(
        names.contains(&"bin/busybox".to_owned()),
        "export has the image's files"
    );
    assert!(
        !names.contains(&"bin/ls".to_owned()),
        "export lacks the deleted file"
    );
    assert!(
        !names.iter().any(|n| n.contains(".wh.")),
        "no whiteouts in a flat export"
    );
    let passwd = tar_file(&out.raw_stdout, "etc/passwd")
        .map(|f| f.0)
        .unwrap_or_default();
    assert!(passwd.ends_with("x\n"), "the changed content: {passwd:?}");
    assert_eq!(
        tar_file(&out.raw_stdout, "d/one").map(|f| (f.1, f.2)),
        Some((7, 8)),
        "owners kept"
    );
    let file = e.s.path("c.tar");
    e.ok(&["export", "-o", file.to_str().unwrap_or_default(), "ct"]);
    assert_eq!(fs::read(&file).expect("export -o file"), out.raw_stdout);
}

#[test]
fn cp_out_copies_files_and_directories_and_never_follows_links_to_the_host() {
    require!(need_containers());
    let e = Env::new();
    changed_container(&e);
    let dst = e.s.path("out");
    fs::create_dir_all(&dst).expect("dir");
    let p = |n: &str| dst.join(n).to_string_lossy().into_owned();

    e.ok(&["cp", "ct:/f", &p("file")]);
    assert_eq!(
        fs::read_to_string(dst.join("file")).unwrap_or_default(),
        "hi\n"
    );
    // Into an existing directory: under its own name; to a new name: the directory itself.
    e.ok(&["cp", "ct:/d", &p("")]);
    assert_eq!(
        fs::read_to_string(dst.join("d/one")).unwrap_or_default(),
        "1\n"
    );
    e.ok(&["cp", "ct:/d", &p("renamed")]);
    assert!(dst.join("renamed/one").is_file());
    e.ok(&["cp", "ct:/d/.", &p("renamed")]);
    // -a keeps owners; without it the caller owns the copy.
    assert_eq!(
        fs::metadata(dst.join("d/one"))
            .map(|m| m.uid())
            .unwrap_or(99),
        0
    );
    e.ok(&["cp", "-a", "ct:/d/one", &p("owned")]);
    let m = fs::metadata(dst.join("owned")).expect("copied");
    assert_eq!((m.uid(), m.gid()), (7, 8));

    // A symlink that climbs out is refused on the host, as docker's CLI refuses it.
    let out = e.run(&["cp", "ct:/esc", &p("esc")]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("invalid symlink"), "{out}");
    assert!(fs::symlink_metadata(dst.join("esc")).is_err());
    // -L resolves it inside the container: there is no /etc/shadow in busybox.
    let out = e.run(&["cp", "-L", "ct:/esc", &p("esc2")]);
    assert!(out.stderr.contains("Could not find the file"), "{out}");
    assert!(!dst.join("esc2").exists());
    // An absolute link followed with -L gives the container's /etc/passwd, not the host's.
    e.ok(&["cp", "-L", "ct:/abs", &p("passwd")]);
    let copied = fs::read_to_string(dst.join("passwd")).unwrap_or_default();
    assert!(
        copied.ends_with("x\n"),
        "the container's passwd: {copied:?}"
    );
    // A path through the link resolves in the container too.
    let out = e.run(&["cp", "ct:/esc/../passwd", &p("nope")]);
    assert!(!dst.join("nope").exists(), "{out}");

    let out = e.run(&["cp", "ct:/nope", &p("x")]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("Error response from daemon: Could not find the file /nope in container ct"),
        "{out}"
    );
    let out = e.run(&["cp", "ct:/f", &format!("{}/nodir/x", dst.display())]);
    assert!(out.stderr.contains("does not exist"), "{out}");
    let out = e.run(&["cp", "ct:/d", &p("file")]);
    assert!(out.stderr.contains("cannot copy directory"), "{out}");

    // `-` writes a tar.
    let out = e.ok(&["cp", "ct:/d", "-"]);
    assert_eq!(tar_names(&out.raw_stdout), vec!["d/", "d/one"]);
    assert_eq!(
        tar_file(&out.raw_stdout, "d/one").map(|f| f.1),
        Some(7),
        "a tar stream keeps owners"
    );
}

#[test]
fn cp_in_writes_inside_the_container_only() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "ct",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /tmp && ln -s ../../../../../../../../tmp /out && ln -s /tmp /abs",
    ]);
    let unique = format!("skiff-c2-cp-{}", std::process::id());
    let src = e.s.write(&format!("hostdir/sub/{unique}"), b"from host\n");
    let src_s = src.to_str().unwrap_or_default().to_owned();
    let hostdir = src
        .parent()
        .and_then(|p| p.parent())
        .expect("hostdir")
        .to_owned();
    let read = |path: &str| -> String {
        let out = e.ok(&["cp", &format!("ct:{path}"), "-"]);
        let name = path.rsplit('/').next().unwrap_or_default().to_owned();
        tar_file(&out.raw_stdout, &name)
            .map(|f| f.0)
            .unwrap_or_default()
    };

    e.ok(&["cp", &src_s, "ct:/etc/"]);
    assert_eq!(read(&format!("/etc/{unique}")), "from host\n");
    e.ok(&["cp", &src_s, "ct:/newname"]);
    assert_eq!(read("/newname"), "from host\n");
    e.ok(&["cp", hostdir.to_str().unwrap_or_default(), "ct:/"]);
    assert_eq!(read(&format!("/hostdir/sub/{unique}")), "from host\n");

    // Through links that climb out or are absolute: the container's /tmp, never the host's.
    // Unique names, so that a file on the host's /tmp can only be this test's.
    let second = format!("{unique}-second");
    e.ok(&["cp", &src_s, "ct:/out/"]);
    e.ok(&["cp", &src_s, &format!("ct:/abs/{second}")]);
    for name in [&unique, &second] {
        assert!(
            !std::path::Path::new("/tmp").join(name).exists(),
            "cp wrote through a container symlink onto the host: /tmp/{name}"
        );
    }
    assert_eq!(read(&format!("/tmp/{unique}")), "from host\n");
    assert_eq!(read(&format!("/tmp/{second}")), "from host\n");

    // A tar on stdin, extracted into a directory; owners reset without -a.
    let tar_path = e.s.path("in.tar");
    {
        let mut b = tar::Builder::new(fs::File::create(&tar_path).expect("tar file"));
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o600);
        h.set_uid(5);
        h.set_gid(5);
        b.append_data(&mut h, "fromtar", &b"tar\n"[..])
            .expect("append");
        b.finish().expect("finish");
    }
    let out = e.s.run_stdin_file(["cp", "-", "ct:/etc"], &tar_path);
    assert!(out.success(), "{out}");
    let got = e.ok(&["cp", "ct:/etc/fromtar", "-"]);
    assert_eq!(
        tar_file(&got.raw_stdout, "fromtar"),
        Some(("tar\n".to_owned(), 0, 0))
    );
    let out = e.s.run_stdin_file(["cp", "-a", "-", "ct:/etc"], &tar_path);
    assert!(out.success(), "{out}");
    let got = e.ok(&["cp", "ct:/etc/fromtar", "-"]);
    assert_eq!(
        tar_file(&got.raw_stdout, "fromtar").map(|f| (f.1, f.2)),
        Some((5, 5))
    );

    let out = e.run(&["cp", &src_s, "ct:/nodir/x"]);
    assert!(
        out.stderr
            .contains("Could not find the file /nodir in container ct"),
        "{out}"
    );
    let out = e.run(&["cp", &src_s, "ct:/newname/x"]);
    assert!(
        out.stderr.contains("extraction point is not a directory"),
        "{out}"
    );
    let out = e.run(&["cp", &src_s, "c2:/x"]);
    assert!(out.stderr.contains("No such container: c2"), "{out}");
}

#[test]
fn cp_reaches_a_running_containers_volumes() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run", "-d", "--name", "rn", "-v", "vol:/vol", "busybox", "sleep", "60",
    ]);
    let src = e.s.write("in-volume", b"v\n");
    e.ok(&["cp", src.to_str().unwrap_or_default(), "rn:/vol/"]);
    let out = e.ok(&["exec", "rn", "cat", "/vol/in-volume"]);
    assert_eq!(out.stdout, "v\n");
    let mp = e
        .ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vol"])
        .stdout
        .trim()
        .to_owned();
    assert!(
        std::path::Path::new(&mp).join("in-volume").is_file(),
        "written into the volume"
    );
    e.ok(&["exec", "rn", "sh", "-c", "echo run > /running"]);
    let out = e.ok(&["cp", "rn:/running", "-"]);
    assert_eq!(
        tar_file(&out.raw_stdout, "running").map(|f| f.0),
        Some("run\n".to_owned())
    );
    e.ok(&["rm", "-f", "rn"]);
}

#[test]
fn commit_makes_an_image_with_dockers_history_and_config() {
    require!(need_containers());
    let e = Env::new();
    let cmd = "echo committed > /file; rm /bin/ls";
    e.ok(&[
        "run", "--name", "ct", "-e", "FOO=bar", "busybox", "sh", "-c", cmd,
    ]);
    let out = e.ok(&[
        "commit",
        "-a",
        "me <me@x>",
        "-m",
        "a message",
        "-c",
        "ENV A=1",
        "-c",
        "CMD [\"cat\", \"/file\"]",
        "ct",
        "committed:v1",
    ]);
    let id = out.stdout.trim().to_owned();
    assert!(
        id.starts_with("sha256:") && id.len() == 71,
        "prints the image ID: {out}"
    );

    let out = e.ok(&["run", "--rm", "committed:v1"]);
    assert_eq!(out.stdout, "committed\n");
    let out = e.run(&["run", "--rm", "committed:v1", "ls", "/"]);
    assert_ne!(out.code, 0, "the deleted /bin/ls stays deleted:\n{out}");

    let doc: Value = serde_json::from_str(&e.ok(&["image", "inspect", "committed:v1"]).stdout)
        .unwrap_or_default();
    let img = &doc[0];
    assert_eq!(img["Author"], "me <me@x>");
    assert_eq!(img["Comment"], "a message");
    let env: Vec<&str> = img["Config"]["Env"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(env.contains(&"FOO=bar") && env.contains(&"A=1"), "{env:?}");
    assert_eq!(img["RootFS"]["Layers"].as_array().map(Vec::len), Some(2));

    let out = e.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "committed:v1",
    ]);
    let top = out.stdout.lines().next().unwrap_or_default();
    assert_eq!(top, format!("sh -c {cmd}|a message"), "{out}");

    // Untagged commit, then pause=false on a running container.
    let out = e.ok(&["commit", "ct"]);
    assert!(out.stdout.starts_with("sha256:"));
    e.ok(&[
        "run",
        "-d",
        "--name",
        "rn",
        "busybox",
        "sh",
        "-c",
        "echo live > /live; sleep 60",
    ]);
    e.wait_for("rn", "{{.State.Running}}", "true");
    std::thread::sleep(std::time::Duration::from_millis(300));
    e.ok(&["commit", "rn", "live:1"]);
    assert_eq!(
        e.inspect("rn", "{{.State.Status}}"),
        "running",
        "resumed after the commit"
    );
    let out = e.ok(&["run", "--rm", "live:1", "cat", "/live"]);
    assert_eq!(out.stdout, "live\n");
    e.ok(&["commit", "--pause=false", "rn", "live:2"]);
    let out = e.run(&["commit", "ct", "Bad:Tag"]);
    assert_ne!(out.code, 0, "{out}");
    e.ok(&["rm", "-f", "rn"]);
}

driver_tests! {
    fs_commands_work_on_each_storage_driver => fs_commands_on;
}

/// diff, cp both ways, export and commit on one storage driver (overlay reads the upper
/// directory, vfs compares trees).
fn fs_commands_on(driver: crate::harness::Driver) {
    require!(need_containers());
    let e = Env {
        s: crate::harness::Skiff::with_driver(driver),
    };
    e.s.import_busybox("busybox");
    e.ok(&[
        "run",
        "--name",
        "ct",
        "busybox",
        "sh",
        "-c",
        "echo hi > /f; rm /bin/ls; echo x >> /etc/passwd; mkdir /gone && rmdir /gone",
    ]);
    let out = e.ok(&["diff", "ct"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for want in ["C /bin", "D /bin/ls", "C /etc/passwd", "A /f"] {
        assert!(
            lines.contains(&want),
            "{driver:?}: diff should list {want:?}:\n{out}"
        );
    }
    assert!(!out.stdout.contains("/gone"), "{out}");
    let src = e.s.write("in", b"in\n");
    e.ok(&["cp", src.to_str().unwrap_or_default(), "ct:/in"]);
    assert!(e.ok(&["diff", "ct"]).stdout.contains("A /in\n"));
    let tar = e.ok(&["export", "ct"]).raw_stdout;
    let names = tar_names(&tar);
    assert!(names.contains(&"in".to_owned()) && !names.contains(&"bin/ls".to_owned()));
    e.ok(&["commit", "ct", "img:1"]);
    let out = e.ok(&[
        "run",
        "--rm",
        "img:1",
        "sh",
        "-c",
        "cat /f /in; test -e /bin/ls || echo no-ls",
    ]);
    assert_eq!(out.stdout, "hi\nin\nno-ls\n", "{driver:?}: {out}");
}

#[test]
fn cp_reaches_a_stopped_containers_volumes_and_refuses_read_only_ones() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "ct",
        "-v",
        "vol:/vol",
        "-v",
        "rov:/ro:ro",
        "busybox",
        "sh",
        "-c",
        "echo inside > /vol/x",
    ]);
    let out = e.ok(&["cp", "ct:/vol/x", "-"]);
    assert_eq!(
        tar_file(&out.raw_stdout, "x").map(|f| f.0),
        Some("inside\n".to_owned())
    );
    let out = e.ok(&["cp", "ct:/vol/.", "-"]);
    assert!(
        tar_names(&out.raw_stdout).contains(&"./x".to_owned()),
        "{:?}",
        tar_names(&out.raw_stdout)
    );
    let src = e.s.write("y", b"y\n");
    e.ok(&["cp", src.to_str().unwrap_or_default(), "ct:/vol/"]);
    let mp = e
        .ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "vol"])
        .stdout
        .trim()
        .to_owned();
    assert_eq!(
        fs::read_to_string(std::path::Path::new(&mp).join("y")).unwrap_or_default(),
        "y\n"
    );
    let out = e.run(&["cp", src.to_str().unwrap_or_default(), "ct:/ro/"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("mounted volume is marked read-only"),
        "{out}"
    );
    e.ok(&["create", "--name", "rofs", "--read-only", "busybox", "true"]);
    let out = e.run(&["cp", src.to_str().unwrap_or_default(), "rofs:/"]);
    assert!(
        out.stderr.contains("container rootfs is marked read-only"),
        "{out}"
    );
}

#[test]
fn commit_leaves_out_the_runtimes_mountpoints() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "ct",
        "busybox",
        "sh",
        "-c",
        "echo data > /kept",
    ]);
    e.ok(&["commit", "ct", "clean:1"]);
    let out = e.ok(&["save", "clean:1"]);
    // The top layer is the last blob of the saved image; list every layer's entries.
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&out.raw_stdout[..]);
    for entry in ar.entries().expect("save tar") {
        let mut entry = entry.expect("entry");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        if let Ok(mut inner) = tar::Archive::new(&data[..]).entries() {
            while let Some(Ok(e)) = inner.next() {
                if let Ok(p) = e.path() {
                    names.push(p.to_string_lossy().into_owned());
                }
            }
        }
    }
    assert!(names.contains(&"kept".to_owned()), "{names:?}");
    for n in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        assert!(
            !names.contains(&n.to_owned()),
            "{n} is the runtime's, not the container's"
        );
    }
}
