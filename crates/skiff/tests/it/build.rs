//! `skiff build`: every instruction's effect on the image config, history and tree; docker's
//! failure messages; the persistent cache (hits, misses, explanations); multi-stage builds;
//! context and output flags; reproducible digests. Each build runs RUN steps in real
//! containers, so these tests need root and runc or crun; several checks share one build to
//! keep the suite fast.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::Stdio;

use serde_json::Value;

use crate::harness::{mounts_under, need_root, need_tool, require, run_command, Out, Skiff};

/// Root and an OCI runtime.
pub(crate) fn need_builder() -> Result<(), String> {
    need_root()?;
    need_tool("runc").or_else(|_| need_tool("crun")).map(|_| ())
}

/// A skiff with the busybox base imported as `busybox`.
pub(crate) fn with_busybox() -> Skiff {
    let s = Skiff::new();
    s.import_busybox("busybox");
    s
}

/// The image config of `reference`, as stored (its digest is the image ID).
pub(crate) fn config(s: &Skiff, reference: &str) -> Value {
    let id = s
        .ok(["inspect", "--format", "{{.Id}}", reference])
        .stdout
        .trim()
        .to_owned();
    let hex = id.trim_start_matches("sha256:");
    let bytes = fs::read(s.root().join("blobs/sha256").join(hex)).expect("config blob");
    serde_json::from_slice(&bytes).expect("config JSON")
}

/// The `created_by` of each history entry after the base's, with `(empty)` marks.
pub(crate) fn history(cfg: &Value) -> Vec<String> {
    cfg["history"]
        .as_array()
        .expect("history")
        .iter()
        .skip(1)
        .map(|h| {
            format!(
                "{}{}",
                h["created_by"].as_str().unwrap_or(""),
                if h["empty_layer"].as_bool() == Some(true) {
                    " (empty)"
                } else {
                    ""
                }
            )
        })
        .collect()
}

pub(crate) fn build(s: &Skiff, args: &[&str]) -> Out {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    s.run(all)
}

pub(crate) fn build_ok(s: &Skiff, args: &[&str]) -> Out {
    build(s, args).assert_ok()
}

const EVERY_INSTRUCTION: &str = r#"ARG BASE=busybox
FROM $BASE
MAINTAINER me@x
ARG A=1
ARG B
ENV E=e1 F="f 2"
LABEL l1=v1 "l 2"="v 2"
RUN echo run1 > /r1
RUN echo $A$B > /r2
WORKDIR /app
WORKDIR sub
COPY a.txt .
COPY d /dd/
ADD a.txt /added
ADD arch.tar /unpacked/
COPY --chown=nobody --chmod=600 a.txt /owned
COPY . /ctx/
USER nobody
RUN id -u > /tmp/uid
EXPOSE 80 443/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD true
SHELL ["/bin/sh", "-xc"]
RUN echo shell
ONBUILD RUN echo onbuild > /tmp/triggered
ENTRYPOINT ["/bin/echo"]
CMD ["hi"]
"#;

fn write_every_instruction_context(s: &Skiff) {
    s.write("ctx/Dockerfile", EVERY_INSTRUCTION.as_bytes());
    s.write("ctx/a.txt", b"hello\n");
    s.write("ctx/d/x", b"x\n");
    s.write("ctx/ignored.log", b"no\n");
    s.write("ctx/.dockerignore", b"*.log\narch.tar\n!arch.tar\n");
    // A small tar for ADD to extract.
    let src = s.write("tarsrc/inside.txt", b"in\n");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(src.parent().expect("tarsrc dir"))
        .arg("-cf")
        .arg(s.path("ctx/arch.tar"))
        .arg("inside.txt")
        .status()
        .expect("tar");
    assert!(status.success());
}

#[test]
fn every_instruction_gives_dockers_config_history_and_tree() {
    require!(need_builder());
    let s = with_busybox();
    write_every_instruction_context(&s);
    let out = build_ok(
        &s,
        &[
            "--build-arg",
            "B=2",
            "-t",
            "every",
            "-t",
            "every:two",
            "--label",
            "from.flag=yes",
            "--iidfile",
            "iid",
            "ctx",
        ],
    );
    let text = &out.stdout;
    assert!(
        text.contains("Step 1/29 : ARG BASE=busybox\nStep 2/29 : FROM $BASE\n ---> "),
        "{out}"
    );
    assert!(text.contains("Step 29/29 : LABEL from.flag=yes\n"), "{out}");
    assert!(
        text.contains("+ echo shell\nshell\n"),
        "RUN output is shown:\n{out}"
    );
    assert!(
        text.contains("Successfully tagged every:latest\nSuccessfully tagged every:two\n"),
        "{out}"
    );
    let iid = fs::read_to_string(s.path("iid")).unwrap();
    let built = text
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .unwrap();
    assert!(
        iid.starts_with(&format!("sha256:{built}")),
        "{iid} vs {built}"
    );

    let cfg = config(&s, "every:two");
    let h = history(&cfg);
    let file_hash = |line: &str| {
        line.split_whitespace()
            .find(|w| w.starts_with("file:"))
            .map(str::to_owned)
    };
    let a_hash = file_hash(&h[9]).expect("COPY file hash");
    assert_eq!(
        h,
        [
            "/bin/sh -c #(nop)  MAINTAINER me@x (empty)".to_owned(),
            "/bin/sh -c #(nop)  ARG A=1 (empty)".into(),
            "/bin/sh -c #(nop)  ARG B (empty)".into(),
            "/bin/sh -c #(nop)  ENV E=e1 F=f 2 (empty)".into(),
            "/bin/sh -c #(nop)  LABEL l1=v1 l 2=v 2 (empty)".into(),
            "|2 A=1 B=2 /bin/sh -c echo run1 > /r1".into(),
            "|2 A=1 B=2 /bin/sh -c echo $A$B > /r2".into(),
            "/bin/sh -c #(nop) WORKDIR /app".into(),
            "/bin/sh -c #(nop) WORKDIR /app/sub".into(),
            format!("/bin/sh -c #(nop) COPY {a_hash} in . "),
            h[10].clone(),
            format!("/bin/sh -c #(nop) ADD {a_hash} in /added "),
            h[12].clone(),
            h[13].clone(),
            h[14].clone(),
            "/bin/sh -c #(nop)  USER nobody (empty)".into(),
            "|2 A=1 B=2 /bin/sh -c id -u > /tmp/uid".into(),
            "/bin/sh -c #(nop)  EXPOSE 443/udp 80 (empty)".into(),
            "/bin/sh -c #(nop)  VOLUME [/data] (empty)".into(),
            "/bin/sh -c #(nop)  STOPSIGNAL SIGINT (empty)".into(),
            "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" '\\x02'} (empty)".into(),
            "/bin/sh -xc #(nop)  SHELL [/bin/sh -xc] (empty)".into(),
            "|2 A=1 B=2 /bin/sh -xc echo shell".into(),
            "/bin/sh -xc #(nop)  ONBUILD RUN echo onbuild > /tmp/triggered (empty)".into(),
            "/bin/sh -xc #(nop)  ENTRYPOINT [\"/bin/echo\"] (empty)".into(),
            "/bin/sh -xc #(nop)  CMD [\"hi\"] (empty)".into(),
            "/bin/sh -xc #(nop)  LABEL from.flag=yes (empty)".into(),
        ]
    );
    assert!(
        h[10].starts_with("/bin/sh -c #(nop) COPY dir:") && h[10].ends_with(" in /dd/ "),
        "{}",
        h[10]
    );
    assert!(
        h[14].starts_with("/bin/sh -c #(nop) COPY dir:") && h[14].ends_with(" in /ctx/ "),
        "{}",
        h[14]
    );
    assert_eq!(cfg["author"], "me@x");
    assert_eq!(cfg["history"][1]["author"], "me@x");
    let rc = &cfg["config"];
    assert_eq!(rc["User"], "nobody");
    assert_eq!(
        rc["Env"],
        serde_json::json!([
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "E=e1",
            "F=f 2"
        ])
    );
    assert_eq!(
        rc["ExposedPorts"],
        serde_json::json!({"443/udp": {}, "80/tcp": {}})
    );
    assert_eq!(rc["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(rc["WorkingDir"], "/app/sub");
    assert_eq!(rc["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert_eq!(rc["Cmd"], serde_json::json!(["hi"]));
    assert_eq!(rc["StopSignal"], "SIGINT");
    assert_eq!(rc["Shell"], serde_json::json!(["/bin/sh", "-xc"]));
    assert_eq!(
        rc["OnBuild"],
        serde_json::json!(["RUN echo onbuild > /tmp/triggered"])
    );
    assert_eq!(
        rc["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "true"], "Interval": 5000000000u64, "Retries": 2})
    );
    assert_eq!(
        rc["Labels"],
        serde_json::json!({"l 2": "v 2", "l1": "v1", "from.flag": "yes"})
    );
    // One layer per RUN, COPY, ADD and WORKDIR, on top of the base's.
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 1 + 12);

    let mp = s.mount("every");
    let read = |p: &str| fs::read_to_string(mp.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(read("r1"), "run1\n");
    assert_eq!(read("r2"), "12\n");
    assert_eq!(read("app/sub/a.txt"), "hello\n");
    assert_eq!(read("dd/x"), "x\n");
    assert_eq!(read("added"), "hello\n");
    assert_eq!(
        read("unpacked/inside.txt"),
        "in\n",
        "ADD extracts local tars"
    );
    assert_eq!(read("tmp/uid"), "65534\n", "RUN runs as USER");
    let owned = fs::metadata(mp.join("owned")).unwrap();
    assert_eq!(
        (
            owned.uid(),
            owned.gid(),
            owned.permissions().mode() & 0o7777
        ),
        (65534, 65534, 0o600)
    );
    let copied = fs::metadata(mp.join("app/sub/a.txt")).unwrap();
    assert_eq!(
        (copied.uid(), copied.gid()),
        (0, 0),
        "COPY writes root-owned files"
    );
    assert!(mp.join("ctx/a.txt").exists() && mp.join("ctx/arch.tar").exists());
    assert!(
        !mp.join("ctx/ignored.log").exists(),
        ".dockerignore excludes *.log"
    );
    assert!(
        !mp.join("etc/hosts").exists() && !mp.join("etc/resolv.conf").exists(),
        "RUN leaves no mount points behind"
    );
    s.ok(["image", "unmount", "every"]);

    // ONBUILD triggers run in a child build, once.
    s.write("child/Dockerfile", b"FROM every\nRUN cat /tmp/triggered\n");
    let out = build_ok(&s, &["-t", "child", "child"]);
    assert!(out.stdout.contains("# Executing 1 build trigger"), "{out}");
    let cfg = config(&s, "child");
    assert!(
        cfg["config"].get("OnBuild").is_none_or(Value::is_null),
        "{cfg}"
    );
    assert!(history(&cfg)
        .iter()
        .any(|l| l.ends_with("echo onbuild > /tmp/triggered")));
}

#[test]
fn failures_name_the_step_and_use_dockers_words() {
    require!(need_builder());
    let s = with_busybox();
    s.write("ctx/a.txt", b"a");
    let cases: [(&str, &str); 5] = [
        (
            "FROM busybox\nRUN echo out; echo err >&2; false\n",
            "The command '/bin/sh -c echo out; echo err >&2; false' returned a non-zero code: 1",
        ),
        ("FROM busybox\nRUNCMD x\n", "dockerfile parse error on line 2: unknown instruction: RUNCMD"),
        (
            "FROM busybox\nCOPY x /x\n",
            "COPY failed: file not found in build context or excluded by .dockerignore: stat x: file does not exist",
        ),
        (
            "FROM busybox\nCOPY --chown=bob a.txt /x\n",
            "unable to convert uid/gid chown string to host mapping: can't find uid for user bob: no such user: bob",
        ),
        ("FROM busybox\nRUN [\"/no/such\"]\n", "no/such"),
    ];
    for (i, (dockerfile, message)) in cases.iter().enumerate() {
        let name = format!("Dockerfile.{i}");
        s.write(&format!("ctx/{name}"), dockerfile.as_bytes());
        let out = build(&s, &["-f", &format!("ctx/{name}"), "ctx"]).assert_fail();
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stderr.contains(message), "expected {message:?}:\n{out}");
        if i == 0 {
            assert!(out.stdout.contains("Step 2/2 : RUN echo out"), "{out}");
            assert!(
                out.stdout.contains("out\n") && out.stdout.contains("err\n"),
                "{out}"
            );
        }
    }
    // -q keeps the output and shows it on stderr when the build fails, as docker does.
    let q = build(&s, &["-q", "-f", "ctx/Dockerfile.0", "ctx"]).assert_fail();
    assert!(q.stdout.is_empty(), "{q}");
    assert!(
        q.stderr.contains("Step 2/2 : RUN echo out") && q.stderr.contains("out\n"),
        "{q}"
    );
    // Nothing is left mounted or half-made.
    let tmp = s.root().join("tmp");
    let left: Vec<_> = fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", tmp.display());
}

/// Steps that came from the cache in `out` (their numbers).
pub(crate) fn cached_steps(out: &Out) -> Vec<usize> {
    let mut step = 0;
    let mut cached = Vec::new();
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            step = rest
                .split('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if line == " ---> Using cache" {
            cached.push(step);
        }
    }
    cached
}

#[test]
fn cache_hits_on_no_change_and_touch_misses_on_content_mode_and_args() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nLABEL first=1\nARG V=1\nRUN echo one > /one\nCOPY f /f\nARG W=1\nRUN echo $W > /w\nLABEL last=$W\n",
    );
    let f = s.write("ctx/f", b"content\n");
    let first = build_ok(&s, &["-t", "c", "ctx"]);
    assert!(cached_steps(&first).is_empty(), "{first}");
    let id1 = config(&s, "c");

    // No change: every step is cached and the image is the same.
    let again = build_ok(&s, &["-t", "c", "ctx"]);
    assert_eq!(cached_steps(&again), [2, 3, 4, 5, 6, 7, 8], "{again}");
    assert_eq!(config(&s, "c"), id1);

    // A new mtime alone keeps the cache.
    let t = rustix::fs::Timespec {
        tv_sec: 1_000_000,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        &f,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
    let touched = build_ok(&s, &["ctx"]);
    assert_eq!(cached_steps(&touched), [2, 3, 4, 5, 6, 7, 8], "{touched}");

    // One mode bit: the COPY and everything after it miss, and --explain-cache says why.
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let chmodded = build_ok(&s, &["--explain-cache", "ctx"]);
    assert_eq!(cached_steps(&chmodded), [2, 3, 4], "{chmodded}");
    assert!(
        chmodded.stdout.contains(" ---> Cache miss: file f changed"),
        "{chmodded}"
    );
    assert!(
        chmodded
            .stdout
            .contains(" ---> Cache miss: the previous step changed"),
        "{chmodded}"
    );

    // One byte of content: the same.
    s.write("ctx/f", b"content!\n");
    fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
    let edited = build_ok(&s, &["ctx"]);
    assert_eq!(cached_steps(&edited), [2, 3, 4], "{edited}");

    // A build arg misses only the steps that see it: W is declared after the COPY.
    let arg = build_ok(
        &s,
        &["--build-arg", "W=2", "--explain-cache", "-t", "c2", "ctx"],
    );
    assert_eq!(cached_steps(&arg), [2, 3, 4, 5, 6], "{arg}");
    assert!(
        arg.stdout.contains(" ---> Cache miss: build arg W changed"),
        "{arg}"
    );
    let mp = s.mount("c2");
    assert_eq!(fs::read_to_string(mp.join("w")).unwrap(), "2\n");
    s.ok(["image", "unmount", "c2"]);

    // --no-cache rebuilds everything; builder prune empties the cache.
    let nocache = build_ok(&s, &["--no-cache", "ctx"]);
    assert!(cached_steps(&nocache).is_empty(), "{nocache}");
    let pruned = s.ok(["builder", "prune", "-f"]);
    assert!(
        pruned.stdout.starts_with("Total reclaimed space: "),
        "{pruned}"
    );
    let after = build_ok(&s, &["ctx"]);
    assert!(cached_steps(&after).is_empty(), "{after}");
}

#[test]
fn multi_stage_skips_unneeded_stages_and_copies_from_stages_and_images() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox AS base\nRUN echo base > /base\nFROM busybox AS unused\nRUN false\nFROM base AS build\nCOPY f /f\nRUN cat /base /f > /out\nFROM scratch\nCOPY --from=build /out /out\nCOPY --from=0 /base /from-index\nCOPY --from=busybox /bin/busybox /bin/\n",
    );
    s.write("ctx/f", b"f\n");
    let out = build_ok(&s, &["-t", "ms", "ctx"]);
    assert!(
        !out.stdout.contains("RUN false"),
        "the unused stage is skipped:\n{out}"
    );
    let mp = s.mount("ms");
    assert_eq!(fs::read_to_string(mp.join("out")).unwrap(), "base\nf\n");
    assert_eq!(fs::read_to_string(mp.join("from-index")).unwrap(), "base\n");
    assert!(mp.join("bin/busybox").is_file());
    assert!(
        !mp.join("base").exists(),
        "scratch stage holds only what was copied"
    );
    s.ok(["image", "unmount", "ms"]);

    // --target stops at a stage; plain progress shows CACHED steps.
    let target = s
        .run([
            "build",
            "--target",
            "build",
            "--progress=plain",
            "-t",
            "mid",
            "ctx",
        ])
        .assert_ok();
    assert!(target.stderr.contains("#2 CACHED"), "{target}");
    assert!(!target.stderr.contains("FROM scratch"), "{target}");
    let mp = s.mount("mid");
    assert_eq!(fs::read_to_string(mp.join("out")).unwrap(), "base\nf\n");
    s.ok(["image", "unmount", "mid"]);

    // -q prints only the ID; -o exports the tree; -f from outside the context.
    s.write("elsewhere/Dockerfile.x", b"FROM busybox\nCOPY f /g\n");
    let q = build_ok(
        &s,
        &[
            "-q",
            "-f",
            "elsewhere/Dockerfile.x",
            "-o",
            "type=local,dest=exported",
            "ctx",
        ],
    );
    let id = q.stdout.trim();
    assert!(
        id.starts_with("sha256:") && id.len() == 71 && q.stdout.lines().count() == 1,
        "{q}"
    );
    assert_eq!(fs::read_to_string(s.path("exported/g")).unwrap(), "f\n");
    assert!(s.path("exported/bin/busybox").is_file());
    let t = build_ok(
        &s,
        &[
            "-q",
            "-f",
            "elsewhere/Dockerfile.x",
            "-o",
            "type=tar,dest=out.tar",
            "ctx",
        ],
    );
    assert!(t.success());
    let listing = std::process::Command::new("tar")
        .arg("tf")
        .arg(s.path("out.tar"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listing.stdout)
        .lines()
        .any(|l| l == "g"));
}

#[test]
fn stdin_and_url_contexts_heredocs_excludes_urls_and_platform_args() {
    require!(need_builder());
    let s = with_busybox();
    // `-f -`: the Dockerfile on stdin, the context a directory.
    s.write("ctx/f", b"f\n");
    let df = s.write("df", b"FROM busybox\nCOPY f /f\nRUN cat /f\n");
    let mut cmd = s.command(["build", "-f", "-", "ctx"]);
    cmd.stdin(Stdio::from(fs::File::open(&df).unwrap()));
    let out = run_command(cmd, None).assert_ok();
    assert!(out.stdout.contains("\nf\n"), "{out}");
    // `build - < ctx.tar`: the context as a tar on stdin.
    s.write("tarctx/Dockerfile", b"FROM busybox\nCOPY f /f\n");
    s.write("tarctx/f", b"from tar\n");
    let status = std::process::Command::new("tar")
        .arg("-C")
        .arg(s.path("tarctx"))
        .arg("-cf")
        .arg(s.path("ctx.tar"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    s.run_stdin_file(["build", "-t", "fromtar", "-"], &s.path("ctx.tar"))
        .assert_ok();
    let mp = s.mount("fromtar");
    assert_eq!(fs::read_to_string(mp.join("f")).unwrap(), "from tar\n");
    s.ok(["image", "unmount", "fromtar"]);

    // A tarball URL as the context.
    let url = serve_once_per_request(fs::read(s.path("ctx.tar")).unwrap(), 1);
    let remote = build_ok(&s, &["-t", "fromurl", &format!("{url}/ctx.tar")]);
    assert!(remote.stdout.contains("Step 2/2 : COPY f /f"), "{remote}");
    let mp = s.mount("fromurl");
    assert_eq!(fs::read_to_string(mp.join("f")).unwrap(), "from tar\n");
    s.ok(["image", "unmount", "fromurl"]);

    // Heredocs (COPY and RUN), --exclude, the predefined platform args, FROM --platform.
    s.write("hd/sub/a.md", b"1\n");
    s.write("hd/sub/b.txt", b"2\n");
    s.write(
        "hd/Dockerfile",
        b"FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nENV WHO=world\nCOPY <<EOF /hello.txt\nhello ${WHO} \"q\"\nEOF\nCOPY --exclude=*.md sub /sub/\nRUN <<EOT\necho arch=$TARGETARCH > /arch\nEOT\n",
    );
    build_ok(&s, &["-t", "hd", "hd"]);
    let mp = s.mount("hd");
    assert_eq!(
        fs::read_to_string(mp.join("hello.txt")).unwrap(),
        "hello world \"q\"\n"
    );
    assert!(mp.join("sub/b.txt").exists() && !mp.join("sub/a.md").exists());
    let arch = fs::read_to_string(mp.join("arch")).unwrap();
    assert!(
        arch.starts_with("arch=") && arch.len() > "arch=\n".len(),
        "{arch:?}"
    );
    s.ok(["image", "unmount", "hd"]);
    // ADD of a URL (a loopback server): mode 0600, mtime from Last-Modified, --checksum.
    let url = serve_once_per_request(b"remote\n".to_vec(), 3);
    s.write(
        "hd/Dockerfile.url",
        format!("FROM busybox\nADD {url}/dir/r.txt /dl/\n").as_bytes(),
    );
    build_ok(&s, &["-f", "hd/Dockerfile.url", "-t", "url", "hd"]);
    let mp = s.mount("url");
    let meta = fs::metadata(mp.join("dl/r.txt")).unwrap();
    assert_eq!(fs::read_to_string(mp.join("dl/r.txt")).unwrap(), "remote\n");
    assert_eq!(
        (meta.permissions().mode() & 0o7777, meta.mtime()),
        (0o600, 1445412480)
    );
    s.ok(["image", "unmount", "url"]);
    s.write(
        "hd/Dockerfile.bad",
        format!(
            "FROM busybox\nADD --checksum=sha256:{} {url}/r.txt /dl/\n",
            "0".repeat(64)
        )
        .as_bytes(),
    );
    let bad = build(&s, &["-f", "hd/Dockerfile.bad", "hd"]).assert_fail();
    assert!(bad.stderr.contains("ADD failed: digest mismatch"), "{bad}");

    s.write(
        "hd/Dockerfile.other",
        b"FROM --platform=linux/s390x busybox\n",
    );
    let other = build(&s, &["-f", "hd/Dockerfile.other", "hd"]).assert_fail();
    assert!(
        other.stderr.contains("only for the host platform"),
        "{other}"
    );
}

#[test]
fn reproducible_builds_give_the_same_digest_on_fresh_roots() {
    require!(need_builder());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let s = Skiff::new();
        // The base comes from the context, so nothing depends on when it was imported.
        let rootfs = s.path("ctx/rootfs");
        fs::create_dir_all(&rootfs).unwrap();
        let status = std::process::Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-xf")
            .arg(crate::harness::busybox_tar())
            .status()
            .unwrap();
        assert!(status.success());
        s.write(
            "ctx/Dockerfile",
            b"FROM scratch\nCOPY rootfs/ /\nENV A=1\nRUN echo hi > /hi && mkdir -p /var/x && touch /var/x/y\nWORKDIR /w\nCMD [\"sh\"]\n",
        );
        let mut cmd = s.command(["build", "-q", "ctx"]);
        cmd.env("SOURCE_DATE_EPOCH", "1700000000");
        let out = run_command(cmd, None).assert_ok();
        ids.push(out.stdout.trim().to_owned());
        let cfg = config(&s, out.stdout.trim());
        assert_eq!(cfg["created"], "2023-11-14T22:13:20Z", "{cfg}");
    }
    assert_eq!(ids[0], ids[1]);
}

/// Serves `body` to the next `count` HTTP requests on a loopback port; returns the base URL.
fn serve_once_per_request(body: Vec<u8>, count: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_build_killed_mid_run_is_cleaned_up_by_the_next() {
    require!(need_builder());
    let s = with_busybox();
    s.write("ctx/Dockerfile", b"FROM busybox\nRUN sleep 60\n");
    s.write("ctx/Dockerfile.next", b"FROM busybox\nRUN true\n");
    let mut child = s
        .command(["build", "ctx"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn skiff build");
    // Wait for the RUN's container to exist, then kill the build (only the process we made).
    let runtime_dirs = || runtime_containers(&s);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while runtime_dirs().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the RUN never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    child.kill().expect("kill the build");
    child.wait().expect("reap the build");
    assert!(
        !mounts_under(&s.root().join("tmp")).is_empty(),
        "the killed build left its mount"
    );

    build_ok(&s, &["-f", "ctx/Dockerfile.next", "ctx"]);
    assert!(
        mounts_under(&s.root().join("tmp")).is_empty(),
        "stale mounts remain"
    );
    assert!(
        runtime_dirs().is_empty(),
        "stale containers remain: {:?}",
        runtime_dirs()
    );
    let left: Vec<_> = fs::read_dir(s.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "stale scratch directories remain: {left:?}"
    );
}

/// A `skiff registry serve` on a loopback port, killed (by its pid) when dropped.
pub(crate) struct Registry {
    child: std::process::Child,
    pub(crate) addr: String,
}

impl Registry {
    pub(crate) fn start(s: &Skiff) -> Registry {
        use std::io::BufRead;
        let mut cmd = s.command(["registry", "serve", "--addr", "127.0.0.1:0", "--root"]);
        cmd.arg(s.path("registry"));
        cmd.stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().expect("spawn skiff registry serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
        let Some(addr) = line.trim().strip_prefix("listening on ").map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("skiff registry serve did not print its address: {line:?}");
        };
        Registry { child, addr }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_base_that_is_not_here_is_pulled() {
    require!(need_builder());
    let source = with_busybox();
    let registry = Registry::start(&source);
    let name = format!("{}/bb:1", registry.addr);
    source.ok(["tag", "busybox", &name]);
    source.ok(["push", &name]);

    let s = Skiff::new();
    s.write(
        "ctx/Dockerfile",
        format!("FROM {name}\nRUN echo pulled > /p\n").as_bytes(),
    );
    let out = build_ok(&s, &["-t", "pulled", "ctx"]);
    assert!(out.stdout.contains("1: Pulling from bb"), "{out}");
    assert!(
        out.stdout.contains("Status: Downloaded newer image for"),
        "{out}"
    );
    let mp = s.mount("pulled");
    assert_eq!(fs::read_to_string(mp.join("p")).unwrap(), "pulled\n");
    assert!(mp.join("bin/busybox").is_file());
    s.ok(["image", "unmount", "pulled"]);
}

/// The containers of the OCI runtimes under the root (none may outlive a build).
pub(crate) fn runtime_containers(s: &Skiff) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for rt in fs::read_dir(s.root().join("runtime"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for c in fs::read_dir(rt.path()).into_iter().flatten().flatten() {
            out.push(c.path());
        }
    }
    out
}
