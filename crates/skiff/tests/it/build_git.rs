//! Git sources in builds: a git URL as the build context and `ADD` of a repository, served
//! over git's "dumb" HTTP protocol by a loopback file server the test owns.

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{need_root, need_tool, require, Skiff};

fn need_git_builder() -> Result<(), String> {
    need_root()?;
    need_tool("git")?;
    need_tool("runc").or_else(|_| need_tool("crun")).map(|_| ())
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository with a Dockerfile, `a.txt` and `sub/b.txt`, tagged `v1`, then changed on
/// `main`; returned as a bare repository ready for dumb HTTP (`update-server-info`).
fn make_repo(s: &Skiff) -> PathBuf {
    let work = s.path("work");
    fs::create_dir_all(work.join("sub")).expect("mkdir");
    fs::write(
        work.join("Dockerfile"),
        "FROM busybox\nCOPY a.txt /from-git-context\n",
    )
    .expect("write");
    fs::write(work.join("a.txt"), "v1\n").expect("write");
    fs::write(work.join("sub/b.txt"), "bee\n").expect("write");
    git(&work, &["init", "-q"]);
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "one"]);
    git(&work, &["tag", "v1"]);
    fs::write(work.join("a.txt"), "v2\n").expect("write");
    git(&work, &["commit", "-q", "-am", "two"]);
    let srv = s.path("srv");
    fs::create_dir_all(&srv).expect("mkdir");
    git(
        &srv,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().expect("utf-8"),
            "repo.git",
        ],
    );
    git(&srv.join("repo.git"), &["update-server-info"]);
    srv
}

/// Serves files under `dir` over HTTP/1.0 on loopback until the test process ends (the
/// thread blocks in accept; it owns nothing else).
fn serve_dir(dir: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req);
            let path = line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .split('?')
                .next()
                .unwrap_or("/")
                .to_owned();
            let file = dir.join(path.trim_start_matches('/'));
            let ok = !path.contains("..");
            match fs::read(&file) {
                Ok(body) if ok && file.is_file() => {
                    let head = format!(
                        "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes());
                    let _ = conn.write_all(&body);
                }
                _ => {
                    let _ = conn.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                }
            }
        }
    });
    format!("http://{addr}")
}

#[test]
fn add_of_a_git_repository_and_a_git_context() {
    require!(need_git_builder());
    let s = Skiff::new();
    s.import_busybox("busybox");
    let base = serve_dir(make_repo(&s));

    // ADD of a repository: the tree at the ref, without .git unless --keep-git-dir, and a
    // `:dir` below it.
    s.write(
        "ctx/Dockerfile",
        format!(
            "FROM busybox\nADD {base}/repo.git#v1 /src\nADD {base}/repo.git#v1:sub /sub\nADD --keep-git-dir {base}/repo.git /full\n"
        )
        .as_bytes(),
    );
    let ctx = s.path("ctx");
    s.ok(["build", "-q", "-t", "gitadd", ctx.to_str().expect("utf-8")]);
    let cat = |args: &str| {
        s.ok(["run", "--rm", "gitadd", "sh", "-c", args])
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(cat("cat /src/a.txt /src/sub/b.txt"), "v1\nbee");
    assert_eq!(
        cat("test -e /src/.git && echo has-git || echo no-git"),
        "no-git"
    );
    assert_eq!(cat("cat /sub/b.txt; ls /sub | wc -l"), "bee\n1");
    assert_eq!(
        cat("cat /full/a.txt; test -d /full/.git && echo has-git"),
        "v2\nhas-git"
    );

    // COPY does not fetch URLs.
    s.write(
        "bad/Dockerfile",
        format!("FROM busybox\nCOPY {base}/repo.git /x\n").as_bytes(),
    );
    let bad = s.path("bad");
    let out = s.run(["build", bad.to_str().expect("utf-8")]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("source can't be a URL for COPY"),
        "{}",
        out.stderr
    );

    // The repository as the build context, at a tag.
    let out = s.ok([
        "build",
        "-q",
        "-t",
        "gitctx",
        &format!("{base}/repo.git#v1"),
    ]);
    assert!(out.stdout.trim().starts_with("sha256:"), "{}", out.stdout);
    let got = s.ok(["run", "--rm", "gitctx", "cat", "/from-git-context"]);
    assert_eq!(got.stdout, "v1\n");

    // A ref that does not exist fails with git's reason, as a context error.
    let out = s.run(["build", &format!("{base}/repo.git#nosuchref")]);
    assert_ne!(out.code, 0);
    assert!(
        out.stderr
            .contains("unable to prepare context: failed to fetch"),
        "{}",
        out.stderr
    );
}
