//! What the real docker printed, asserted against skiff.
//!
//! Every expected string here was printed by docker (client 28.2.2 talking to Debian's
//! engine 20.10.24+dfsg1, with its own `--data-root`), for the same commands on the same
//! inputs. Dynamic parts (IDs of images made in the test, "N seconds ago") are matched
//! loosely; everything else is compared exactly, exit codes included. Where docker's answer
//! depends on being a daemon it is kept anyway (`Error response from daemon: ...`, exit 1).
//!
//! Where engine 20.10 and current docker differ, skiff follows current docker and the test
//! says so: `save` writes the OCI layout (index.json, oci-layout, blobs/sha256) that docker
//! 25+ writes, where 20.10 still wrote `<id>/layer.tar` directories; `image inspect` of a
//! missing image says `No such image: NAME:latest` (20.10's daemon wrapped that as
//! `no such image: NAME: No such image: NAME:latest`); `import --change STOPSIGNAL` is
//! accepted (20.10: `stopsignal is not a valid change command`).
//!
//! `tests/fixtures/docker-save-tiny.tar` (25 kB) is a real `docker save` of a two-layer image:
//! a 3-file tar (`hello.txt`, a symlink `link -> hello.txt`, `etc/passwd`) imported with
//! `-m "tiny base"`, then `COPY f.txt /f.txt`, `ENV X=1`, `LABEL k=v`, `CMD ["/hello.txt"]`
//! built on it with the legacy builder. docker's output for it is in the tests below, IDs
//! and all, since loading keeps them. The reverse direction (docker loading skiff's save,
//! keeping the image ID) was checked by hand with that docker: `docker load -i` of a
//! `skiff save` printed `Loaded image: full:1` and listed the same ID skiff had.

use std::path::PathBuf;

use serde_json::Value;

use crate::archive::Layer;
use crate::harness::{is_image_id, short_id, workspace_root, Out, Skiff};
use crate::table::docker_table;

const DAEMON: &str = "Error response from daemon: ";

/// The `docker save` fixture and what docker says about it.
const TINY: &str = "tests/fixtures/docker-save-tiny.tar";
const TINY_ID: &str = "sha256:5bc9db0db26a85ac64e2dca744d1fc30ffca83051bc41faacc8c23b22a54966f";

fn tiny_archive() -> PathBuf {
    workspace_root().join(TINY)
}

/// Asserts exit code, stdout and stderr at once, showing the whole run on failure.
#[track_caller]
fn expect(out: &Out, code: i32, stdout: &str, stderr: &str) {
    assert_eq!(
        (out.code, out.stdout.as_str(), out.stderr.as_str()),
        (code, stdout, stderr),
        "docker printed otherwise:\n{out}"
    );
}

/// A daemon error as docker's CLI prints it: prefixed, exit 1, nothing on stdout.
#[track_caller]
fn expect_daemon_error(out: &Out, msg: &str) {
    expect(out, 1, "", &format!("{DAEMON}{msg}\n"));
}

/// A client-side error: printed as is, exit 1, nothing on stdout.
#[track_caller]
fn expect_client_error(out: &Out, msg: &str) {
    expect(out, 1, "", &format!("{msg}\n"));
}

/// A small root filesystem tar, for imports.
fn small_tar(s: &Skiff, name: &str) -> PathBuf {
    let mut l = Layer::new();
    l.dir("etc", 0o755)
        .file("etc/hostname", 0o644, b"skiff\n")
        .symlink("hostname", "etc/hostname");
    s.write(name, &l.finish())
}

/// `skiff import FILE NAME ...` that must succeed; returns the ID.
#[track_caller]
fn import(s: &Skiff, args: &[&str]) -> String {
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    let out = s.ok(&all);
    let id = out.stdout.trim().to_owned();
    assert!(is_image_id(&id), "import prints the ID:\n{out}");
    id
}

fn is_ago(s: &str) -> bool {
    s == "Less than a second ago" || s == "About a minute ago" || s.ends_with(" ago")
}

// ---------------------------------------------------------------------------------------------
// import

#[test]
fn import_with_changes_builds_dockers_config() {
    let s = Skiff::new();
    let tar = small_tar(&s, "root.tar");
    let tar = tar.to_str().expect("utf-8");
    import(
        &s,
        &[
            "-c",
            r#"CMD ["sh"]"#,
            "-c",
            "ENV A=1",
            "-c",
            "EXPOSE 80",
            "-c",
            "LABEL a=b",
            "-c",
            "WORKDIR /x",
            "-c",
            "USER nobody",
            "-c",
            "HEALTHCHECK --interval=5s CMD true",
            "-m",
            "msg",
            tar,
            "full:1",
        ],
    );
    // docker 20.10's client over API 1.41 (the API skiff speaks): every field, in Go's order.
    let out = s.ok(["inspect", "-f", "{{json .Config}}", "full:1"]);
    assert_eq!(
        out.stdout,
        concat!(
            r#"{"Hostname":"","Domainname":"","User":"nobody","AttachStdin":false,"AttachStdout":false,"#,
            r#""AttachStderr":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"#,
            r#""StdinOnce":false,"Env":["A=1"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD-SHELL","true"],"#,
            r#""Interval":5000000000},"Image":"","Volumes":null,"WorkingDir":"/x","Entrypoint":null,"#,
            r#""OnBuild":null,"Labels":{"a":"b"}}"#,
            "\n"
        ),
        "{out}"
    );
    let out = s.ok(["inspect", "-f", "{{json .Comment}}", "full:1"]);
    assert_eq!(out.stdout, "\"msg\"\n", "{out}");
    let hist = s.ok(["history", "--format", "{{.Comment}}", "full:1"]);
    assert_eq!(hist.stdout, "msg\n", "{hist}");

    // Without -m, a file is recorded as docker's CLI sends it: the request body, `-`.
    import(&s, &[tar, "plain"]);
    let out = s.ok([
        "inspect",
        "-f",
        "{{json .Comment}} {{json .Config}}",
        "plain",
    ]);
    assert_eq!(
        out.stdout,
        concat!(
            r#""Imported from -" {"Hostname":"","Domainname":"","User":"","AttachStdin":false,"#,
            r#""AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"#,
            r#""StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","#,
            r#""Entrypoint":null,"OnBuild":null,"Labels":null}"#,
            "\n"
        ),
        "{out}"
    );
}

#[test]
fn import_change_semantics_follow_docker() {
    let s = Skiff::new();
    let empty = s.write("empty.tar", b"");
    let empty = empty.to_str().expect("utf-8");
    import(
        &s,
        &[
            "-c",
            r#"ENTRYPOINT ["/bin/sh"]"#,
            "-c",
            "CMD a",
            empty,
            "ss3",
        ],
    );
    // A CMD given in the same changes survives a later ENTRYPOINT.
    import(
        &s,
        &[
            "-c",
            "CMD a",
            "-c",
            r#"ENTRYPOINT ["/bin/sh"]"#,
            empty,
            "ss4",
        ],
    );
    let out = s.ok([
        "inspect",
        "-f",
        "{{json .Config.Entrypoint}} {{json .Config.Cmd}}",
        "ss3",
        "ss4",
    ]);
    assert_eq!(
        out.stdout,
        "[\"/bin/sh\"] [\"/bin/sh\",\"-c\",\"a\"]\n[\"/bin/sh\"] [\"/bin/sh\",\"-c\",\"a\"]\n",
        "{out}"
    );

    import(
        &s,
        &[
            "-c",
            "HEALTHCHECK NONE",
            "-c",
            "ENV A B C",
            "-c",
            r#"LABEL "x y"=z"#,
            "-c",
            "EXPOSE 53/udp 80",
            "-c",
            "WORKDIR rel",
            "-c",
            "WORKDIR sub",
            empty,
            "ss5",
        ],
    );
    // docker: {"ExposedPorts":{"53/udp":{},"80/tcp":{}},"Env":["A=B C"],"WorkingDir":"/rel/sub",
    //          "Labels":{"x y":"z"},"Healthcheck":{"Test":["NONE"]}}
    let out = s.ok([
        "inspect",
        "-f",
        "{{json .Config.ExposedPorts}} {{json .Config.Env}} {{.Config.WorkingDir}} {{json .Config.Labels}} {{json .Config.Healthcheck}}",
        "ss5",
    ]);
    assert_eq!(
        out.stdout,
        "{\"53/udp\":{},\"80/tcp\":{}} [\"A=B C\"] /rel/sub {\"x y\":\"z\"} {\"Test\":[\"NONE\"]}\n",
        "{out}"
    );

    // docker: {"Volumes":{"/v":{}},"Entrypoint":["/bin/sh"],"OnBuild":["RUN x"],...}
    import(
        &s,
        &["-c", "VOLUME /v", "-c", "ONBUILD RUN x", empty, "ss2"],
    );
    let out = s.ok([
        "inspect",
        "-f",
        "{{json .Config.Volumes}} {{json .Config.OnBuild}}",
        "ss2",
    ]);
    assert_eq!(out.stdout, "{\"/v\":{}} [\"RUN x\"]\n", "{out}");

    // Current docker accepts STOPSIGNAL (20.10 refused it: "stopsignal is not a valid change
    // command"); skiff follows current docker.
    import(&s, &["-c", "STOPSIGNAL SIGTERM", empty, "ss1"]);
    let out = s.ok(["inspect", "-f", "{{.Config.StopSignal}}", "ss1"]);
    assert_eq!(out.stdout, "SIGTERM\n", "{out}");
}

#[test]
fn import_change_errors_are_dockers() {
    let s = Skiff::new();
    let empty = s.write("empty.tar", b"");
    let empty = empty.to_str().expect("utf-8");
    let cases: &[(&str, &str)] = &[
        ("RUN x", "run is not a valid change command"),
        ("FROM x", "from is not a valid change command"),
        ("", "file with no instructions"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV A", "ENV must have two arguments"),
        ("ENV =x", "ENV names can not be blank"),
        (
            "ENV a=1 b",
            "Syntax error - can't find = in \"b\". Must be of the form: name=value",
        ),
        ("LABEL", "LABEL requires at least one argument"),
        ("LABEL a", "LABEL must have two arguments"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("EXPOSE abc", "Invalid containerPort: abc"),
        ("EXPOSE 70000", "Invalid containerPort: 70000"),
        ("EXPOSE 80/xyz", "Invalid proto: xyz"),
        ("USER", "USER requires exactly one argument"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
        (
            "HEALTHCHECK --interval=abc CMD x",
            "time: invalid duration \"abc\"",
        ),
        (
            "HEALTHCHECK --retries=x CMD a",
            "strconv.ParseInt: parsing \"x\": invalid syntax",
        ),
        (
            "HEALTHCHECK FOO",
            "Unknown type \"FOO\" in HEALTHCHECK (try CMD)",
        ),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        (
            "ONBUILD ONBUILD x",
            "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
    ];
    for (change, msg) in cases {
        let out = s.run(["import", "-c", change, empty, "chk"]);
        expect_daemon_error(&out, msg);
    }
    // Changes that are fine in docker.
    for change in [
        "CMD",
        "ENTRYPOINT",
        "cmd",
        "HEALTHCHECK --interval=1ms CMD a",
    ] {
        s.ok(["import", "-c", change, empty, "ok"]);
    }
}

#[test]
fn import_input_and_name_errors_are_dockers() {
    let s = Skiff::new();
    let tar = small_tar(&s, "root.tar");
    let tar = tar.to_str().expect("utf-8");

    // The client opens the file: no daemon prefix.
    let out = s.run(["import", "/nonexistent-skiff-parity.tar", "nf"]);
    expect_client_error(
        &out,
        "open /nonexistent-skiff-parity.tar: no such file or directory",
    );
    // ... before it checks the changes.
    let out = s.run(["import", "-c", "RUN x", "/nonexistent-skiff-parity.tar"]);
    expect_client_error(
        &out,
        "open /nonexistent-skiff-parity.tar: no such file or directory",
    );

    // Not a tar: ends inside the first block, a whole block that is no header, gzip of text.
    let text = s.write("notatar.txt", b"hello\n");
    let out = s.run(["import", text.to_str().expect("utf-8"), "nt"]);
    expect_daemon_error(
        &out,
        "Error processing tar file(exit status 1): unexpected EOF",
    );
    let xs = s.write("xs.bin", &[b'x'; 4000]);
    let out = s.run(["import", xs.to_str().expect("utf-8"), "nt"]);
    expect_daemon_error(
        &out,
        "Error processing tar file(exit status 1): archive/tar: invalid tar header",
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, b"hello\n").expect("gzip");
    let gz = s.write("nt.gz", &gz.finish().expect("gzip"));
    let out = s.run(["import", gz.to_str().expect("utf-8"), "nt"]);
    expect_daemon_error(
        &out,
        "Error processing tar file(exit status 1): unexpected EOF",
    );
    // An empty file is an empty layer, as in docker.
    let empty = s.write("empty.tar", b"");
    import(&s, &[empty.to_str().expect("utf-8"), "empty"]);

    // Names: checked by the client, except the digest, which the daemon refuses.
    let out = s.run(["import", tar, "Upper"]);
    expect_client_error(
        &out,
        "invalid reference format: repository name (library/Upper) must be lowercase",
    );
    let out = s.run(["import", tar, "a:b:c"]);
    expect_client_error(&out, "invalid reference format");
    let hex = "0000000000000000000000000000000000000000000000000000000000000000";
    let out = s.run(["import", tar, hex]);
    expect_client_error(
        &out,
        &format!("invalid repository name ({hex}), cannot specify 64-byte hexadecimal strings"),
    );
    let out = s.run(["import", tar, &format!("a@sha256:{hex}")]);
    expect_daemon_error(&out, "cannot import digest reference");
}

// ---------------------------------------------------------------------------------------------
// images

/// busybox:latest, an untagged image and full:1 (labelled a=b), imported in that order.
fn three_images(s: &Skiff) -> (String, String, String) {
    let tar = small_tar(s, "root.tar");
    let tar = tar.to_str().expect("utf-8");
    let bb = import(s, &[tar, "busybox"]);
    let dangling = import(s, &[tar]);
    let full = import(s, &["-c", "LABEL a=b", tar, "full:1"]);
    (bb, dangling, full)
}

#[test]
fn images_filters_and_errors_are_dockers() {
    let s = Skiff::new();
    let (bb, dangling, full) = three_images(&s);
    let ids = |out: &Out| -> Vec<String> { out.stdout.lines().map(str::to_owned).collect() };
    let q = |args: &[&str]| {
        let mut all = vec!["images", "-q", "--no-trunc"];
        all.extend_from_slice(args);
        ids(&s.ok(&all))
    };

    assert_eq!(q(&["-f", "dangling=true"]), [dangling.as_str()]);
    let mut tagged = q(&["-f", "dangling=false"]);
    tagged.sort();
    let mut want = vec![bb.clone(), full.clone()];
    want.sort();
    assert_eq!(tagged, want);
    // docker: any `true` among the values wins.
    assert_eq!(
        q(&["-f", "dangling=true", "-f", "dangling=false"]),
        [dangling.as_str()]
    );
    assert_eq!(q(&["-f", "label=a=b"]), [full.as_str()]);
    assert_eq!(q(&["-f", "label=a"]), [full.as_str()]);
    assert_eq!(q(&["-f", "reference=full"]), [full.as_str()]);
    assert_eq!(q(&["-f", "reference=bu*"]), [bb.as_str()]);
    assert_eq!(q(&["busy*"]), [bb.as_str()]);
    // Created in the same second: docker compares to the nanosecond.
    let mut before = q(&["-f", "before=full:1"]);
    before.sort();
    let mut want = vec![bb.clone(), dangling.clone()];
    want.sort();
    assert_eq!(before, want);
    let mut since = q(&["-f", "since=busybox"]);
    since.sort();
    let mut want = vec![dangling.clone(), full.clone()];
    want.sort();
    assert_eq!(since, want);

    // Only the words true and false, reported as Go prints the value list.
    for v in ["maybe", "1", "TRUE"] {
        let out = s.run(["images", "-f", &format!("dangling={v}")]);
        expect_daemon_error(&out, &format!("Invalid filter 'dangling=[{v}]'"));
    }
    let out = s.run(["images", "-f", "bogus=1"]);
    expect_daemon_error(&out, "Invalid filter 'bogus'");
    let out = s.run(["images", "-f", "before=nosuch"]);
    expect_daemon_error(&out, "No such image: nosuch:latest");
    let out = s.run(["images", "-f", "since=nosuch:2"]);
    expect_daemon_error(&out, "No such image: nosuch:2");
    // A filter without `=` is a flag error (docker: `invalid argument "noequals" for "-f,
    // --filter" flag: bad format of filter (expected name=value)`, exit 125).
    let out = s.run(["images", "-f", "noequals"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr
            .contains("bad format of filter (expected name=value)"),
        "{out}"
    );
    // Names that match nothing (or are not names) list nothing, without error.
    for name in ["nonexist", "UPPER"] {
        let out = s.run(["images", name]);
        expect(
            &out,
            0,
            "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n",
            "",
        );
    }
}

#[test]
fn images_formats_are_dockers() {
    let s = Skiff::new();
    let (_, dangling, _) = three_images(&s);

    // Rows printed as JSON are HTML-escaped (docker marshals its row contexts with
    // json.Marshal), `--format json` and `{{json .}}` alike, keys sorted.
    for format in ["json", "{{json .}}"] {
        let out = s.ok(["images", "-f", "dangling=true", "--format", format]);
        let line = out.stdout.trim_end();
        let v: Value = serde_json::from_str(line).expect("a JSON object per line");
        let keys: Vec<&str> = v
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "Containers",
                "CreatedAt",
                "CreatedSince",
                "Digest",
                "ID",
                "Repository",
                "SharedSize",
                "Size",
                "Tag",
                "UniqueSize",
                "VirtualSize"
            ],
            "{out}"
        );
        assert!(
            line.contains(r#""Digest":"\u003cnone\u003e""#)
                && line.contains(r#""Repository":"\u003cnone\u003e""#)
                && line.contains(r#""Containers":"N/A""#)
                && line.contains(&format!(r#""ID":"{}""#, short_id(&dangling))),
            "docker prints <none> as \\u003cnone\\u003e here:\n{out}"
        );
        assert!(is_ago(v["CreatedSince"].as_str().unwrap_or("")), "{out}");
    }
    // A single field is not escaped.
    let out = s.ok([
        "images",
        "-f",
        "dangling=true",
        "--format",
        "{{json .Repository}}",
    ]);
    assert_eq!(out.stdout, "\"<none>\"\n", "{out}");

    // A field docker's row type does not have is an error, not `<no value>`.
    let out = s.run(["images", "--format", "{{.Bogus}}"]);
    expect_client_error(
        &out,
        "template parsing error: template: :1:2: executing \"\" at <.Bogus>: can't evaluate field Bogus in type *formatter.imageContext",
    );
    let out = s.run(["images", "--format", "{{"]);
    expect_client_error(
        &out,
        "template parsing error: template: :1: unclosed action",
    );
}

#[test]
fn image_sizes_are_counted_as_docker_counts_them() {
    let s = Skiff::new();
    // docker counts what the layer puts on disk: file sizes plus symlink target lengths.
    // 1985573 bytes is docker's size of the busybox base here (1.99MB / 1.986MB).
    let mut l = Layer::new();
    l.file("blob", 0o644, &vec![0u8; 1985573 - 9])
        .symlink("link", "blob/long"); // 9 bytes of target
    let tar = s.write("sized.tar", &l.finish());
    import(&s, &[tar.to_str().expect("utf-8"), "sized"]);
    let out = s.ok(["inspect", "-f", "{{.Size}} {{.VirtualSize}}", "sized"]);
    assert_eq!(out.stdout, "1985573 1985573\n", "{out}");
    // SIZE has 3 significant digits, VirtualSize 4 (docker's HumanSize).
    let out = s.ok(["images", "--format", "{{.Size}} {{.VirtualSize}}", "sized"]);
    assert_eq!(out.stdout, "1.99MB 1.986MB\n", "{out}");
    let out = s.ok(["history", "--format", "{{.Size}}", "-H=false", "sized"]);
    assert_eq!(out.stdout, "1985573\n", "{out}");
    let out = s.ok(["system", "df"]);
    assert_eq!(
        out.stdout,
        concat!(
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n",
            "Images          1         0         1.986MB   1.986MB (100%)\n",
            "Containers      0         0         0B        0B\n",
            "Local Volumes   0         0         0B        0B\n",
            "Build Cache     0         0         0B        0B\n"
        ),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// tag and rmi

#[test]
fn tag_errors_are_dockers() {
    let s = Skiff::new();
    let tar = small_tar(&s, "root.tar");
    import(&s, &[tar.to_str().expect("utf-8"), "busybox"]);
    let hex = "0000000000000000000000000000000000000000000000000000000000000000";
    let cases: &[(&[&str], &str)] = &[
        (
            &["busybox", "Upper:1"],
            "Error parsing reference: \"Upper:1\" is not a valid repository/tag: invalid reference format: repository name (library/Upper) must be lowercase",
        ),
        (
            &["busybox", hex],
            "Error parsing reference: \"0000000000000000000000000000000000000000000000000000000000000000\" is not a valid repository/tag: invalid repository name (0000000000000000000000000000000000000000000000000000000000000000), cannot specify 64-byte hexadecimal strings",
        ),
        (
            &["busybox", "a:b:c"],
            "Error parsing reference: \"a:b:c\" is not a valid repository/tag: invalid reference format",
        ),
        (
            &["UP", "x"],
            "Error parsing reference: \"UP\" is not a valid repository/tag: invalid reference format: repository name (library/UP) must be lowercase",
        ),
        (
            &["busybox", "x@sha256:0000000000000000000000000000000000000000000000000000000000000000"],
            "refusing to create a tag with a digest reference",
        ),
    ];
    for (args, msg) in cases {
        let mut all = vec!["tag"];
        all.extend_from_slice(args);
        expect_client_error(&s.run(&all), msg);
    }
    expect_daemon_error(
        &s.run(["tag", "nosuch", "x:1"]),
        "No such image: nosuch:latest",
    );
    expect_daemon_error(
        &s.run(["tag", "nosuch:2", "x:1"]),
        "No such image: nosuch:2",
    );
    expect(
        &s.run(["tag", "busybox", "localhost:5000/team/app:v1"]),
        0,
        "",
        "",
    );
}

#[test]
fn rmi_output_is_dockers() {
    let s = Skiff::new();
    let mut l = Layer::new();
    l.file("one", 0o644, b"one\n");
    let one = s.write("one.tar", &l.finish());
    let one = one.to_str().expect("utf-8");
    let id = import(&s, &[one, "busybox"]);
    s.ok(["tag", "busybox", "busybox:2"]);
    s.ok(["tag", "busybox", "localhost:5000/team/app:v1"]);

    expect(&s.run(["rmi", "busybox:2"]), 0, "Untagged: busybox:2\n", "");
    s.ok(["tag", "busybox", "busybox:2"]);
    let out = s.run(["rmi", &id]);
    expect_daemon_error(
        &out,
        &format!(
            "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
            short_id(&id)
        ),
    );
    // Forced: every name in docker's order (sorted by full name: docker.io/... before
    // localhost:5000/...), the image, then its layer (by chain ID) now that nothing uses it.
    let layer = s.ok(["inspect", "-f", "{{index .RootFS.Layers 0}}", &id]);
    let out = s.run(["rmi", "-f", &id]);
    expect(
        &out,
        0,
        &format!(
            "Untagged: busybox:2\nUntagged: busybox:latest\nUntagged: localhost:5000/team/app:v1\nDeleted: {id}\nDeleted: {}\n",
            layer.stdout.trim()
        ),
        "",
    );

    // A layer another image still uses is not deleted.
    let a = import(&s, &[one, "a:1"]);
    import(&s, &[one, "b:1"]);
    expect(
        &s.run(["rmi", "a:1"]),
        0,
        &format!("Untagged: a:1\nDeleted: {a}\n"),
        "",
    );

    expect_daemon_error(&s.run(["rmi", "nosuch"]), "No such image: nosuch:latest");
    expect(
        &s.run(["rmi", "-f", "nosuch"]),
        0,
        "",
        &format!("{DAEMON}No such image: nosuch:latest\n"),
    );
    // A short hex string is also a name; a full ID is shown as such.
    expect_daemon_error(
        &s.run(["rmi", "0123456789ab"]),
        "No such image: 0123456789ab:latest",
    );
    expect_daemon_error(
        &s.run(["rmi", "sha256:0123456789ab"]),
        "No such image: sha256:0123456789ab",
    );
    let hex = "0000000000000000000000000000000000000000000000000000000000000000";
    expect_daemon_error(
        &s.run(["rmi", hex]),
        &format!("No such image: sha256:{hex}"),
    );
    // docker removes what it can and reports the rest.
    let b = s
        .ok(["inspect", "-f", "{{.Id}}", "b:1"])
        .stdout
        .trim()
        .to_owned();
    let out = s.run(["rmi", "nosuch", "b:1"]);
    expect(
        &out,
        1,
        &format!(
            "Untagged: b:1\nDeleted: {b}\nDeleted: {}\n",
            layer.stdout.trim()
        ),
        &format!("{DAEMON}No such image: nosuch:latest\n"),
    );
}

// ---------------------------------------------------------------------------------------------
// inspect

#[test]
fn inspect_shape_and_errors_are_dockers() {
    let s = Skiff::new();
    let (_, _, full) = three_images(&s);
    s.ok(["tag", "full:1", "full:2"]);
    s.ok(["tag", "full:1", "afull:1"]);

    let out = s.ok(["inspect", "full:1"]);
    let v: Value = serde_json::from_str(&out.stdout).expect("JSON");
    let obj = &v[0];
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    // API 1.41's ImageInspect, in docker's order.
    assert_eq!(
        keys(obj),
        [
            "Id",
            "RepoTags",
            "RepoDigests",
            "Parent",
            "Comment",
            "Created",
            "Container",
            "ContainerConfig",
            "DockerVersion",
            "Author",
            "Config",
            "Architecture",
            "Os",
            "Size",
            "VirtualSize",
            "GraphDriver",
            "RootFS",
            "Metadata"
        ],
        "{out}"
    );
    let config_keys = [
        "Hostname",
        "Domainname",
        "User",
        "AttachStdin",
        "AttachStdout",
        "AttachStderr",
        "Tty",
        "OpenStdin",
        "StdinOnce",
        "Env",
        "Cmd",
        "Image",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "OnBuild",
        "Labels",
    ];
    assert_eq!(keys(&obj["ContainerConfig"]), config_keys, "{out}");
    assert_eq!(keys(&obj["Config"]), config_keys, "{out}");
    assert_eq!(keys(&obj["GraphDriver"]), ["Data", "Name"], "{out}");
    assert_eq!(keys(&obj["RootFS"]), ["Type", "Layers"], "{out}");
    assert_eq!(keys(&obj["Metadata"]), ["LastTagTime"], "{out}");
    // RepoTags sorted by full name.
    let out = s.ok(["inspect", "-f", "{{.RepoTags}}", "full:1"]);
    assert_eq!(out.stdout, "[afull:1 full:1 full:2]\n", "{out}");

    // Templates: the typed object first, then the raw JSON with missingkey=error, whose error
    // is reported; docker prints an empty line when nothing was printed.
    let out = s.run(["inspect", "-f", "{{.Bogus}}", "full:1"]);
    expect(
        &out,
        1,
        "\n",
        "template parsing error: template: :1:2: executing \"\" at <.Bogus>: map has no entry for key \"Bogus\"\n",
    );
    let out = s.run(["image", "inspect", "-f", "{{.Bogus}}", "full:1", "full:2"]);
    let one = "template parsing error: template: :1:2: executing \"\" at <.Bogus>: map has no entry for key \"Bogus\"\n";
    expect(&out, 1, "\n", &format!("{one}{one}"));
    let out = s.run(["inspect", "-f", "{{.Config.Bogus}}", "full:1"]);
    expect(
        &out,
        1,
        "\n",
        "template parsing error: template: :1:9: executing \"\" at <.Config.Bogus>: map has no entry for key \"Bogus\"\n",
    );
    // A missing label is a missing map key: `<no value>`, no error.
    expect(
        &s.run(["inspect", "-f", "{{.Config.Labels.nokey}}", "full:1"]),
        0,
        "<no value>\n",
        "",
    );

    // Missing objects: all found ones are printed, then one error line per missing name.
    let out = s.run(["inspect", "-f", "{{.Id}}", "nosuch", "full:1", "nosuch2"]);
    expect(
        &out,
        1,
        &format!("{full}\n"),
        "Error: No such object: nosuch\nError: No such object: nosuch2\n",
    );
    expect(
        &s.run(["inspect", "nosuch"]),
        1,
        "[]\n",
        "Error: No such object: nosuch\n",
    );
    expect(
        &s.run(["inspect", "-f", "{{.Id}}", "UP"]),
        1,
        "\n",
        "Error: No such object: UP\n",
    );
    // `image inspect`: current docker's daemon message.
    for args in [
        &["image", "inspect", "nosuch"][..],
        &["inspect", "--type", "image", "nosuch"][..],
    ] {
        expect(
            &s.run(args),
            1,
            "[]\n",
            &format!("{DAEMON}No such image: nosuch:latest\n"),
        );
    }
    expect(
        &s.run(["image", "inspect", "UP"]),
        1,
        "[]\n",
        &format!(
            "{DAEMON}invalid reference format: repository name (library/UP) must be lowercase\n"
        ),
    );
    expect(
        &s.run(["inspect", "--type", "container", "full:1"]),
        1,
        "[]\n",
        &format!("{DAEMON}No such container: full:1\n"),
    );
    expect(
        &s.run(["inspect", "--type", "volume", "x"]),
        1,
        "[]\n",
        &format!("{DAEMON}get x: no such volume\n"),
    );
    expect(
        &s.run(["inspect", "--type", "network", "x"]),
        1,
        "[]\n",
        &format!("{DAEMON}network x not found\n"),
    );
    expect_client_error(
        &s.run(["inspect", "--type", "bogus", "full:1"]),
        "unknown type: \"bogus\": must be one of \"config\", \"container\", \"image\", \"network\", \"node\", \"plugin\", \"secret\", \"service\", \"task\", \"volume\"",
    );
}

// ---------------------------------------------------------------------------------------------
// A real `docker save` archive

/// `docker inspect tiny:built` after `docker load -i tests/fixtures/docker-save-tiny.tar`.
const TINY_INSPECT: &str = r##"[
    {
        "Id": "sha256:5bc9db0db26a85ac64e2dca744d1fc30ffca83051bc41faacc8c23b22a54966f",
        "RepoTags": [
            "tiny:built"
        ],
        "RepoDigests": [],
        "Parent": "",
        "Comment": "",
        "Created": "2026-11-24T15:34:17.699000476Z",
        "Container": "5b8ce6bc030b2488d7686b586db42eaa8a664629f10b3c496e3c5b10b27737c0",
        "ContainerConfig": {
            "Hostname": "5b8ce6bc030b",
            "Domainname": "",
            "User": "",
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "X=1"
            ],
            "Cmd": [
                "/bin/sh",
                "-c",
                "#(nop) ",
                "CMD [\"/hello.txt\"]"
            ],
            "Image": "sha256:1b48ac4a85ebb09ceabb98c13b1395ce542df641551c975e704698c6dc777826",
            "Volumes": null,
            "WorkingDir": "",
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": {
                "k": "v"
            }
        },
        "DockerVersion": "20.10.24+dfsg1",
        "Author": "",
        "Config": {
            "Hostname": "",
            "Domainname": "",
            "User": "",
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": false,
            "OpenStdin": false,
            "StdinOnce": false,
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "X=1"
            ],
            "Cmd": [
                "/hello.txt"
            ],
            "Image": "sha256:1b48ac4a85ebb09ceabb98c13b1395ce542df641551c975e704698c6dc777826",
            "Volumes": null,
            "WorkingDir": "",
            "Entrypoint": null,
            "OnBuild": null,
            "Labels": {
                "k": "v"
            }
        },
        "Architecture": "amd64",
        "Os": "linux",
        "Size": 58,
        "VirtualSize": 58,
        "GraphDriver": {
            "Data": {
                "LowerDir": "/tmp/parity-docker/data/overlay2/6d992d85de5f0523bd8faaa4ba982521c56e0ab970b5cca7d42e6f8e16f3f213/diff",
                "MergedDir": "/tmp/parity-docker/data/overlay2/0af4af7a38ec920232237b5ba6472629ebfa8221f831886490383a546393daa5/merged",
                "UpperDir": "/tmp/parity-docker/data/overlay2/0af4af7a38ec920232237b5ba6472629ebfa8221f831886490383a546393daa5/diff",
                "WorkDir": "/tmp/parity-docker/data/overlay2/0af4af7a38ec920232237b5ba6472629ebfa8221f831886490383a546393daa5/work"
            },
            "Name": "overlay2"
        },
        "RootFS": {
            "Type": "layers",
            "Layers": [
                "sha256:3d5d9c1b410ab28d77854f65ac730ff7d93b6e96aa16f6ebc832c58af3f005b3",
                "sha256:4e006b43e227086cc645b4bed01386f2a0e685a5269f5d9e7595d312bb5b9705"
            ]
        },
        "Metadata": {
            "LastTagTime": "0001-01-01T00:00:00Z"
        }
    }
]"##;

/// docker's history rows for tiny:built, without the CREATED column.
const TINY_HISTORY: &[[&str; 4]] = &[
    [
        "5bc9db0db26a",
        "/bin/sh -c #(nop)  CMD [\"/hello.txt\"]",
        "0B",
        "",
    ],
    ["<missing>", "/bin/sh -c #(nop)  LABEL k=v", "0B", ""],
    ["<missing>", "/bin/sh -c #(nop)  ENV X=1", "0B", ""],
    [
        "<missing>",
        "/bin/sh -c #(nop) COPY file:ce7fd9a0dfd00d77…",
        "13B",
        "",
    ],
    ["<missing>", "", "45B", "tiny base"],
];

/// docker's table for `rows` with the CREATED column (values from skiff) put back in.
fn with_created(header: [&str; 5], rows: &[[&str; 4]], created: &[String]) -> String {
    let mut table = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for (r, c) in rows.iter().zip(created) {
        table.push(vec![
            r[0].to_owned(),
            c.clone(),
            r[1].to_owned(),
            r[2].to_owned(),
            r[3].to_owned(),
        ]);
    }
    docker_table(&table)
}

#[test]
fn docker_save_archive_loads_and_reads_as_docker_reads_it() {
    let s = Skiff::new();
    let archive = tiny_archive();
    let archive = archive.to_str().expect("utf-8");
    // Loading twice prints the same line; the ID is docker's.
    for _ in 0..2 {
        expect(
            &s.run(["load", "-i", archive]),
            0,
            "Loaded image: tiny:built\n",
            "",
        );
    }
    expect(
        &s.run(["images", "-q", "--no-trunc"]),
        0,
        &format!("{TINY_ID}\n"),
        "",
    );

    // inspect: docker's document, but for the storage driver's data and the tag time.
    let out = s.ok(["inspect", "tiny:built"]);
    let strip = |text: &str| -> Value {
        let mut v: Value = serde_json::from_str(text).expect("JSON");
        let obj = v[0].as_object_mut().expect("object");
        let keys: Vec<String> = obj.keys().cloned().collect();
        obj.remove("GraphDriver");
        obj.remove("Metadata");
        serde_json::json!({ "keys": keys, "doc": v })
    };
    let (got, want) = (strip(&out.stdout), strip(TINY_INSPECT));
    assert_eq!(
        serde_json::to_string_pretty(&got).expect("json"),
        serde_json::to_string_pretty(&want).expect("json"),
        "{out}"
    );

    // images: docker's row, 58 bytes (45 + 13: files and the symlink's target length).
    let out = s.ok(["images"]);
    let created = s.ok(["images", "--format", "{{.CreatedSince}}"]);
    let created = created.stdout.trim();
    assert!(is_ago(created), "{out}");
    assert_eq!(
        out.stdout,
        docker_table(&[
            vec![
                "REPOSITORY".into(),
                "TAG".into(),
                "IMAGE ID".into(),
                "CREATED".into(),
                "SIZE".into()
            ],
            vec![
                "tiny".into(),
                "built".into(),
                "5bc9db0db26a".into(),
                created.into(),
                "58B".into()
            ],
        ]),
        "{out}"
    );

    // history: docker's rows, truncated CREATED BY included.
    let out = s.ok(["history", "tiny:built"]);
    let created: Vec<String> = s
        .ok(["history", "--format", "{{.CreatedSince}}", "tiny:built"])
        .stdout
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        out.stdout,
        with_created(
            ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            TINY_HISTORY,
            &created
        ),
        "{out}"
    );
    // -H=false: dates and byte counts, under CREATED AT; all of it fixed.
    expect(
        &s.run(["history", "-H=false", "tiny:built"]),
        0,
        concat!(
            "IMAGE          CREATED AT             CREATED BY                                      SIZE      COMMENT\n",
            "5bc9db0db26a   2026-11-24T15:34:17Z   /bin/sh -c #(nop)  CMD [\"/hello.txt\"]           0         \n",
            "<missing>      2026-11-24T15:34:17Z   /bin/sh -c #(nop)  LABEL k=v                    0         \n",
            "<missing>      2026-11-24T15:34:17Z   /bin/sh -c #(nop)  ENV X=1                      0         \n",
            "<missing>      2026-11-24T15:34:17Z   /bin/sh -c #(nop) COPY file:ce7fd9a0dfd00d77…   13        \n",
            "<missing>      2026-11-24T15:34:17Z                                                   45        tiny base\n",
        ),
        "",
    );
    let out = s.ok([
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}",
        "tiny:built",
    ]);
    assert_eq!(
        out.stdout,
        concat!(
            "sha256:5bc9db0db26a85ac64e2dca744d1fc30ffca83051bc41faacc8c23b22a54966f|/bin/sh -c #(nop)  CMD [\"/hello.txt\"]\n",
            "<missing>|/bin/sh -c #(nop)  LABEL k=v\n",
            "<missing>|/bin/sh -c #(nop)  ENV X=1\n",
            "<missing>|/bin/sh -c #(nop) COPY file:ce7fd9a0dfd00d77c5848c2d8b7624f6fab6c9c863a170f6fc0ecc94f7be71d2 in /f.txt \n",
            "<missing>|\n",
        ),
        "{out}"
    );
    expect(
        &s.run(["history", "-q", "tiny:built"]),
        0,
        "5bc9db0db26a\n<missing>\n<missing>\n<missing>\n<missing>\n",
        "",
    );
    // --format json: keys sorted, <missing> HTML-escaped as docker's json.Marshal does.
    let out = s.ok(["history", "--format", "json", "tiny:built"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].starts_with(r#"{"Comment":"","CreatedAt":"2026-11-24T15:34:17Z","CreatedBy":"/bin/sh -c #(nop)  CMD [\"/hello.txt\"]","CreatedSince":""#)
            && lines[0].ends_with(r#"","ID":"5bc9db0db26a","Size":"0B"}"#),
        "{out}"
    );
    assert!(
        lines[4].starts_with(r#"{"Comment":"tiny base","CreatedAt":"2026-11-24T15:34:17Z","CreatedBy":"","CreatedSince":""#)
            && lines[4].ends_with(r#"","ID":"\u003cmissing\u003e","Size":"45B"}"#),
        "{out}"
    );
    expect_client_error(
        &s.run(["history", "--format", "{{.Bogus}}", "tiny:built"]),
        "template parsing error: template: :1:2: executing \"\" at <.Bogus>: can't evaluate field Bogus in type *image.historyContext",
    );
    expect_daemon_error(
        &s.run(["history", "nosuch"]),
        "No such image: nosuch:latest",
    );

    expect(
        &s.run(["system", "df"]),
        0,
        concat!(
            "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n",
            "Images          1         0         58B       58B (100%)\n",
            "Containers      0         0         0B        0B\n",
            "Local Volumes   0         0         0B        0B\n",
            "Build Cache     0         0         0B        0B\n",
        ),
        "",
    );

    // rmi: untag, then the image and both layers by chain ID, top first.
    expect(&s.run(["tag", "tiny:built", "tiny:other"]), 0, "", "");
    expect(
        &s.run(["rmi", "tiny:built"]),
        0,
        "Untagged: tiny:built\n",
        "",
    );
    expect(
        &s.run(["rmi", "tiny:other"]),
        0,
        concat!(
            "Untagged: tiny:other\n",
            "Deleted: sha256:5bc9db0db26a85ac64e2dca744d1fc30ffca83051bc41faacc8c23b22a54966f\n",
            "Deleted: sha256:4417f2f7fd1bb8a07bc880c1b9f94c972769904f05140f9e60d06eb18cbfc5c6\n",
            "Deleted: sha256:3d5d9c1b410ab28d77854f65ac730ff7d93b6e96aa16f6ebc832c58af3f005b3\n",
        ),
        "",
    );
}

#[test]
fn skiff_save_of_a_docker_image_keeps_it_loadable_with_its_id() {
    let s = Skiff::new();
    let archive = tiny_archive();
    s.ok(["load", "-i", archive.to_str().expect("utf-8")]);
    let saved = s.path("resaved.tar");
    s.ok(["save", "-o", saved.to_str().expect("utf-8"), "tiny:built"]);
    let t = Skiff::new();
    expect(
        &t.run(["load", "-i", saved.to_str().expect("utf-8")]),
        0,
        "Loaded image: tiny:built\n",
        "",
    );
    expect(
        &t.run(["images", "-q", "--no-trunc"]),
        0,
        &format!("{TINY_ID}\n"),
        "",
    );
    let out = t.ok(["inspect", "-f", "{{.Size}} {{.Container}}", "tiny:built"]);
    assert_eq!(
        out.stdout, "58 5b8ce6bc030b2488d7686b586db42eaa8a664629f10b3c496e3c5b10b27737c0\n",
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// save and load

fn tar_text(archive: &std::path::Path, member: &str) -> String {
    let f = std::fs::File::open(archive).expect("open archive");
    let mut a = tar::Archive::new(f);
    for e in a.entries().expect("entries") {
        let mut e = e.expect("entry");
        if e.path().expect("path").to_str() == Some(member) {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).expect("read member");
            return s;
        }
    }
    panic!("{member} not in {}", archive.display());
}

#[test]
fn save_writes_current_dockers_layout() {
    let s = Skiff::new();
    let tar = small_tar(&s, "root.tar");
    let id = import(&s, &[tar.to_str().expect("utf-8"), "full:1"]);
    s.ok(["tag", "full:1", "full:2"]);
    let layer = s
        .ok(["inspect", "-f", "{{index .RootFS.Layers 0}}", "full:1"])
        .stdout
        .trim()
        .trim_start_matches("sha256:")
        .to_owned();
    let out = s.path("s.tar");
    s.ok([
        "save",
        "-o",
        out.to_str().expect("utf-8"),
        "full:1",
        "full:2",
    ]);

    // Names in the order docker's archive.Tar walks its directory.
    let names: Vec<String> = {
        let mut a = tar::Archive::new(std::fs::File::open(&out).expect("open"));
        a.entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect()
    };
    let blobs: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with("blobs/sha256/") && n.len() > "blobs/sha256/".len())
        .collect();
    let sorted = {
        let mut b = blobs.clone();
        b.sort();
        b
    };
    assert_eq!(blobs, sorted, "blobs in digest order: {names:?}");
    assert_eq!(&names[..2], ["blobs/", "blobs/sha256/"], "{names:?}");
    assert_eq!(
        &names[names.len() - 4..],
        ["index.json", "manifest.json", "oci-layout", "repositories"],
        "{names:?}"
    );

    // manifest.json and repositories are written by json.Encoder: one line each.
    let hex = id.trim_start_matches("sha256:");
    assert_eq!(
        tar_text(&out, "manifest.json"),
        format!(
            "[{{\"Config\":\"blobs/sha256/{hex}\",\"RepoTags\":[\"full:1\",\"full:2\"],\"Layers\":[\"blobs/sha256/{layer}\"]}}]\n"
        )
    );
    assert_eq!(
        tar_text(&out, "repositories"),
        format!("{{\"full\":{{\"1\":\"{layer}\",\"2\":\"{layer}\"}}}}\n")
    );
    assert_eq!(
        tar_text(&out, "oci-layout"),
        r#"{"imageLayoutVersion": "1.0.0"}"#
    );
    let index: Value = serde_json::from_str(&tar_text(&out, "index.json")).expect("index");
    let names: Vec<(&str, &str)> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["annotations"]["io.containerd.image.name"]
                    .as_str()
                    .unwrap_or(""),
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("docker.io/library/full:1", "1"),
            ("docker.io/library/full:2", "2")
        ]
    );

    // Errors: the output path is checked by the client; missing images by the daemon, a
    // missing tag as a missing reference.
    let x = s.path("x.tar");
    let x = x.to_str().expect("utf-8");
    expect_daemon_error(&s.run(["save", "-o", x, "nosuch"]), "No such image: nosuch");
    expect_daemon_error(
        &s.run(["save", "-o", x, "full:1", "nosuch"]),
        "No such image: nosuch",
    );
    expect_daemon_error(
        &s.run(["save", "-o", x, "nosuch:2"]),
        "reference does not exist",
    );
    expect_client_error(
        &s.run(["save", "-o", "/nonexistent-skiff-parity/dir/x.tar", "full:1"]),
        "failed to save image: invalid output path: stat /nonexistent-skiff-parity/dir: no such file or directory",
    );
    assert!(!s.path("x.tar").exists(), "no archive is left behind");
}

#[test]
fn load_output_is_dockers() {
    let s = Skiff::new();
    let tar = small_tar(&s, "root.tar");
    let tar = tar.to_str().expect("utf-8");
    let id = import(&s, &[tar, "full:1"]);
    s.ok(["tag", "full:1", "full:2"]);
    let saved = s.path("s.tar");
    let saved = saved.to_str().expect("utf-8");
    s.ok(["save", "-o", saved, "full:1", "full:2"]);

    let both = "Loaded image: full:1\nLoaded image: full:2\n";
    expect(&s.run(["load", "-i", saved]), 0, both, "");
    expect(&s.run(["load", "-i", saved]), 0, both, "");
    expect(&s.run(["load", "-q", "-i", saved]), 0, both, "");

    // A tag that now names another image moves back, with docker's notice right before its
    // line.
    s.ok(["rmi", "full:2"]);
    let other = import(&s, &["-m", "other", tar, "full:2"]);
    expect(
        &s.run(["load", "-i", saved]),
        0,
        &format!(
            "Loaded image: full:1\nThe image full:2 already exists, renaming the old one with ID {other} to empty string\nLoaded image: full:2\n"
        ),
        "",
    );
    // An archive of an untagged image.
    let by_id = s.path("id.tar");
    s.ok(["save", "-o", by_id.to_str().expect("utf-8"), &id]);
    expect(
        &s.run(["load", "-i", by_id.to_str().expect("utf-8")]),
        0,
        &format!("Loaded image ID: {id}\n"),
        "",
    );

    // Errors are streamed by docker's daemon and printed without a prefix.
    expect_client_error(
        &s.run(["load", "-i", "/nonexistent-skiff-parity"]),
        "open /nonexistent-skiff-parity: no such file or directory",
    );
    let text = s.write("notatar.txt", b"hello\n");
    expect_client_error(
        &s.run(["load", "-i", text.to_str().expect("utf-8")]),
        "Error processing tar file(exit status 1): unexpected EOF",
    );
    let xs = s.write("xs.bin", &[b'x'; 4000]);
    expect_client_error(
        &s.run(["load", "-i", xs.to_str().expect("utf-8")]),
        "Error processing tar file(exit status 1): archive/tar: invalid tar header",
    );
    // An empty archive fails too (docker: `open <tmp>/repositories: no such file or
    // directory`, naming its temporary directory); skiff says what is wrong in its own words.
    let empty = s.write("empty.tar", b"");
    let out = s.run(["load", "-i", empty.to_str().expect("utf-8")]);
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out}");
    assert!(!out.stderr.starts_with(DAEMON), "{out}");
}

// ---------------------------------------------------------------------------------------------
// prune, df, info

#[test]
fn image_prune_output_is_dockers() {
    let s = Skiff::new();
    expect(
        &s.run(["image", "prune", "-f"]),
        0,
        "Total reclaimed space: 0B\n",
        "",
    );
    let (bb, dangling, full) = three_images(&s);
    let layer = s
        .ok(["inspect", "-f", "{{index .RootFS.Layers 0}}", "full:1"])
        .stdout
        .trim()
        .to_owned();
    // The layer is shared, so nothing is reclaimed yet.
    expect(
        &s.run(["image", "prune", "-f"]),
        0,
        &format!("Deleted Images:\ndeleted: {dangling}\n\nTotal reclaimed space: 0B\n"),
        "",
    );
    expect_daemon_error(
        &s.run(["image", "prune", "--filter", "until=abc", "-f"]),
        "failed to parse value as time or duration: \"abc\"",
    );
    expect_daemon_error(
        &s.run(["image", "prune", "--filter", "bogus=1", "-f"]),
        "Invalid filter 'bogus'",
    );
    let out = s.run(["image", "prune", "--filter", "noeq", "-f"]);
    assert_eq!(out.code, 125, "a flag error, as in docker:\n{out}");
    // Filters docker accepts.
    expect(
        &s.run(["image", "prune", "--filter", "until=1h", "-f"]),
        0,
        "Total reclaimed space: 0B\n",
        "",
    );
    expect(
        &s.run(["image", "prune", "-a", "--filter", "label=zz", "-f"]),
        0,
        "Total reclaimed space: 0B\n",
        "",
    );
    // dangling=false means all unused images, as -a; the last image releases the layer.
    let out = s.ok(["image", "prune", "--filter", "dangling=false", "-f"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let bb_lines = [
        "untagged: busybox:latest".to_owned(),
        format!("deleted: {bb}"),
    ];
    let full_lines = ["untagged: full:1".to_owned(), format!("deleted: {full}")];
    assert_eq!(lines.first(), Some(&"Deleted Images:"), "{out}");
    assert!(
        lines
            .windows(2)
            .any(|w| w == [bb_lines[0].as_str(), bb_lines[1].as_str()])
            && lines
                .windows(2)
                .any(|w| w == [full_lines[0].as_str(), full_lines[1].as_str()]),
        "{out}"
    );
    assert_eq!(
        &lines[lines.len() - 3..],
        [
            format!("deleted: {layer}").as_str(),
            "",
            "Total reclaimed space: 18B"
        ],
        "{out}"
    );
}

#[test]
fn info_and_version_headers_are_dockers() {
    let s = Skiff::new();
    let out = s.ok(["info"]);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        out.stdout.starts_with(&format!(
            "Client:\n Version:    {version}\n Context:    default\n Debug Mode: false\n\nServer:\n Containers: 0\n  Running: 0\n  Paused: 0\n  Stopped: 0\n Images: 0\n Server Version: {version}\n Storage Driver: "
        )),
        "{out}"
    );
    assert!(
        out.stdout.ends_with("\n Debug Mode: false\n\n"),
        "docker ends with an empty line:\n{out}"
    );
    let out = s.ok(["version"]);
    assert!(
        out.stdout.starts_with(&format!(
            "Client:\n Version:           {version}\n API version:       1.41\n"
        )),
        "{out}"
    );
}

/// docker's CLI: an unknown flag exits 125 pointing at the help; a wrong number of arguments
/// exits 1 with `"docker tag" requires exactly 2 arguments.` and the usage line.
#[test]
fn command_line_errors_use_dockers_words_and_codes() {
    let s = Skiff::new();
    let out = s.run(["images", "--bogus"]);
    assert_eq!(out.code, 125, "{out}");
    assert_eq!(
        out.stderr, "unknown flag: --bogus\nSee 'skiff images --help'.\n",
        "{out}"
    );
    let out = s.run(["images", "-z"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr
            .starts_with("unknown shorthand flag: 'z' in -z\n"),
        "{out}"
    );
    for (args, words) in [
        (&["tag"][..], "\"skiff tag\" requires exactly 2 arguments."),
        (
            &["tag", "a", "b", "c"][..],
            "\"skiff tag\" requires exactly 2 arguments.",
        ),
        (
            &["history"][..],
            "\"skiff history\" requires exactly 1 argument.",
        ),
        (&["rmi"][..], "\"skiff rmi\" requires at least 1 argument."),
        (
            &["image", "rm"][..],
            "\"skiff image rm\" requires at least 1 argument.",
        ),
    ] {
        let out = s.run(args);
        assert_eq!(out.code, 1, "{out}");
        assert!(out.stderr.starts_with(&format!("{words}\nSee '")), "{out}");
        assert!(out.stderr.contains("\nUsage:  skiff "), "{out}");
    }
}
