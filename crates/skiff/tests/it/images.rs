//! import, images, inspect, history, tag, rmi: docker's columns, flags and wording.

use std::collections::BTreeSet;
use std::fs;

use serde_json::Value;

use crate::harness::{busybox_tar, goarch, is_hex, is_image_id, short_id, Skiff};
use crate::table::{parse_docker_table, parse_human_size};

const IMAGES_HEADER: &[&str] = &["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"];
const HISTORY_HEADER: &[&str] = &["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"];

/// `{{.Repository}}:{{.Tag}}` of every listed image.
fn repo_tags(s: &Skiff, extra: &[&str]) -> BTreeSet<String> {
    let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
    args.extend_from_slice(extra);
    s.ok(&args).stdout.lines().map(str::to_string).collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn import_prints_id_and_images_lists_it_in_dockers_table() {
    let s = Skiff::new();
    let id = s.import_busybox("busybox:latest");

    let out = s.ok(["images"]);
    let rows = parse_docker_table(&out, IMAGES_HEADER);
    assert_eq!(rows.len(), 1, "one image expected:\n{out}");
    let row = &rows[0];
    assert_eq!(row[0], "busybox", "REPOSITORY:\n{out}");
    assert_eq!(row[1], "latest", "TAG:\n{out}");
    assert_eq!(
        row[2],
        short_id(&id),
        "IMAGE ID is the first 12 hex digits of the ID:\n{out}"
    );
    assert!(is_hex(&row[2], 12));
    assert!(
        row[3].ends_with(" ago") || row[3] == "Less than a second ago",
        "CREATED is a human age like docker's \"2 seconds ago\":\n{out}"
    );
    // The image holds busybox (~2 MB) uncompressed; docker prints decimal units ("2.13MB").
    let size = parse_human_size(&row[4])
        .unwrap_or_else(|| panic!("SIZE {:?} is not a docker human size:\n{out}", row[4]));
    let binary = fs::metadata("/bin/busybox")
        .map(|m| m.len() as f64)
        .unwrap_or(1.9e6);
    let tar = fs::metadata(busybox_tar()).expect("stat base tar").len() as f64;
    assert!(
        size >= binary * 0.95 && size <= tar * 3.0,
        "SIZE {} should be about the unpacked busybox tree ({binary} bytes of binary):\n{out}",
        row[4]
    );
}

#[test]
fn images_quiet_no_trunc_format_and_aliases() {
    let s = Skiff::new();
    let id = s.import_busybox("busybox:latest");

    let q = s.ok(["images", "-q"]);
    assert_eq!(
        q.stdout,
        format!("{}\n", short_id(&id)),
        "images -q prints short IDs:\n{q}"
    );
    let q2 = s.ok(["image", "ls", "-q"]);
    assert_eq!(q2.stdout, q.stdout, "`image ls` is an alias of `images`");
    let q3 = s.ok(["images", "-q", "--no-trunc"]);
    assert_eq!(
        q3.stdout,
        format!("{id}\n"),
        "images -q --no-trunc prints full IDs:\n{q3}"
    );

    let nt = s.ok(["images", "--no-trunc"]);
    let rows = parse_docker_table(&nt, IMAGES_HEADER);
    assert_eq!(
        rows[0][2], id,
        "--no-trunc shows the full sha256:... ID:\n{nt}"
    );

    let f = s.ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(f.stdout, "busybox:latest\n", "Go-template --format:\n{f}");
    let f = s.ok(["images", "--format", "{{.ID}} {{.Repository}} {{.Tag}}"]);
    assert_eq!(
        f.stdout,
        format!("{} busybox latest\n", short_id(&id)),
        "{f}"
    );

    let j = s.ok(["images", "--format", "json"]);
    let lines: Vec<&str> = j.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "--format json prints one JSON object per image per line:\n{j}"
    );
    let v: Value =
        serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("not JSON ({e}):\n{j}"));
    assert_eq!(v["Repository"], "busybox", "{j}");
    assert_eq!(v["Tag"], "latest", "{j}");
    assert_eq!(
        v["ID"],
        short_id(&id),
        "docker's json ID is the short one unless --no-trunc:\n{j}"
    );
    assert!(
        v["CreatedSince"]
            .as_str()
            .is_some_and(|c| c.ends_with("ago")),
        "CreatedSince:\n{j}"
    );
    assert!(
        v["Size"].as_str().and_then(parse_human_size).is_some(),
        "Size is a human size string:\n{j}"
    );
    assert!(v.get("CreatedAt").is_some(), "CreatedAt field:\n{j}");
}

#[test]
fn images_filters_by_name_pattern_dangling_and_reference() {
    let s = Skiff::new();
    let busybox = s.import_busybox("busybox:latest");
    let other = s.import_busybox_with(&["-m", "other"], "other:1");
    let dangling = s.import_busybox_with(&["-m", "dangling"], "");
    assert!(
        busybox != other && other != dangling,
        "distinct images expected"
    );

    assert_eq!(
        repo_tags(&s, &[]),
        set(&["busybox:latest", "other:1", "<none>:<none>"])
    );

    // Positional REPOSITORY[:TAG] with wildcards.
    assert_eq!(repo_tags(&s, &["busy*"]), set(&["busybox:latest"]));
    assert_eq!(repo_tags(&s, &["busybox:lat*"]), set(&["busybox:latest"]));
    assert_eq!(repo_tags(&s, &["other"]), set(&["other:1"]));
    let none = s.ok(["images", "nomatch*"]);
    assert!(
        parse_docker_table(&none, IMAGES_HEADER).is_empty(),
        "no rows for a pattern that matches nothing:\n{none}"
    );

    // -f dangling=true: untagged images only, shown as <none> <none>.
    let d = s.ok(["images", "-q", "-f", "dangling=true"]);
    assert_eq!(
        d.stdout,
        format!("{}\n", short_id(&dangling)),
        "dangling=true:\n{d}"
    );
    let d = s.ok(["images", "-f", "dangling=true"]);
    let rows = parse_docker_table(&d, IMAGES_HEADER);
    assert_eq!(
        (rows[0][0].as_str(), rows[0][1].as_str()),
        ("<none>", "<none>"),
        "{d}"
    );
    let nd = s.ok(["images", "-q", "-f", "dangling=false"]);
    let mut ids: Vec<&str> = nd.stdout.lines().collect();
    ids.sort();
    let mut want = vec![short_id(&busybox), short_id(&other)];
    want.sort();
    assert_eq!(ids, want, "dangling=false:\n{nd}");

    // -f reference=PATTERN
    assert_eq!(
        repo_tags(&s, &["-f", "reference=busy*"]),
        set(&["busybox:latest"])
    );
    assert_eq!(repo_tags(&s, &["-f", "reference=*:1"]), set(&["other:1"]));
}

#[test]
fn import_applies_changes_and_message() {
    let s = Skiff::new();
    let id = s.import_busybox_with(
        &["-c", r#"CMD ["sh"]"#, "-c", "ENV A=1", "-m", "msg"],
        "changed:1",
    );

    let cmd = s.ok(["inspect", "-f", "{{json .Config.Cmd}}", "changed:1"]);
    assert_eq!(cmd.stdout.trim(), r#"["sh"]"#, "{cmd}");
    let env = s.ok(["inspect", "-f", "{{json .Config.Env}}", "changed:1"]);
    let env: Vec<String> = serde_json::from_str(env.stdout.trim())
        .unwrap_or_else(|e| panic!("Env is a JSON list ({e}):\n{env}"));
    assert!(
        env.iter().any(|e| e == "A=1"),
        "Env should contain A=1: {env:?}"
    );
    let comment = s.ok(["inspect", "-f", "{{.Comment}}", "changed:1"]);
    assert_eq!(comment.stdout.trim(), "msg", "{comment}");

    let h = s.ok(["history", "changed:1"]);
    let lines: Vec<&str> = h.stdout.lines().collect();
    assert!(
        lines.len() == 2,
        "history of an imported image has one row:\n{h}"
    );
    assert_eq!(
        crate::table::cells(lines[0]),
        HISTORY_HEADER,
        "docker's history header:\n{h}"
    );
    assert!(
        lines[1].starts_with(&short_id(&id)),
        "the top row names the image:\n{h}"
    );
    assert!(
        lines[1].trim_end().ends_with("msg"),
        "COMMENT column shows the import message:\n{h}"
    );

    let hq = s.ok(["history", "-q", "changed:1"]);
    assert_eq!(hq.stdout.trim(), short_id(&id), "history -q:\n{hq}");
}

#[test]
fn inspect_prints_dockers_image_json() {
    let s = Skiff::new();
    let id = s.import_busybox_with(&["-m", "base"], "busybox");

    let out = s.ok(["inspect", "busybox"]);
    let v: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("inspect prints JSON ({e}):\n{out}"));
    let arr = v
        .as_array()
        .unwrap_or_else(|| panic!("inspect prints a JSON array:\n{out}"));
    assert_eq!(arr.len(), 1);
    let img = &arr[0];
    assert_eq!(img["Id"], id.as_str(), "{out}");
    assert_eq!(
        img["RepoTags"],
        serde_json::json!(["busybox:latest"]),
        "{out}"
    );
    assert!(
        img["RepoDigests"].is_array(),
        "RepoDigests is a list:\n{out}"
    );
    assert!(img.get("Parent").is_some(), "Parent field:\n{out}");
    assert_eq!(img["Comment"], "base", "{out}");
    assert!(
        img["Created"]
            .as_str()
            .is_some_and(|c| c.len() >= 20 && c.contains('T')),
        "Created is RFC 3339:\n{out}"
    );
    assert!(img["Config"].is_object(), "Config object:\n{out}");
    assert_eq!(img["Architecture"], goarch(), "{out}");
    assert_eq!(img["Os"], "linux", "{out}");
    assert!(
        img["Size"].as_u64().is_some_and(|n| n > 1_000_000),
        "Size in bytes:\n{out}"
    );
    assert_eq!(img["RootFS"]["Type"], "layers", "{out}");
    let layers = img["RootFS"]["Layers"]
        .as_array()
        .unwrap_or_else(|| panic!("RootFS.Layers:\n{out}"));
    assert_eq!(layers.len(), 1, "an imported image has one layer:\n{out}");
    assert!(
        layers[0].as_str().is_some_and(is_image_id),
        "layer diff IDs are sha256 digests:\n{out}"
    );

    let by_id = s.ok(["image", "inspect", "-f", "{{.Id}}", &short_id(&id)]);
    assert_eq!(
        by_id.stdout.trim(),
        id,
        "inspect by short ID via the `image inspect` alias:\n{by_id}"
    );

    let missing = s.run(["inspect", "nope"]);
    assert!(
        !missing.success(),
        "inspect of an unknown image fails:\n{missing}"
    );
    assert!(
        missing.stderr.contains("No such image") || missing.stderr.contains("No such object"),
        "{missing}"
    );
}

#[test]
fn tag_then_rmi_untags_before_deleting() {
    let s = Skiff::new();
    let id = s.import_busybox("busybox:latest");

    let t = s.ok(["tag", "busybox", "busybox:two"]);
    assert_eq!(t.stdout, "", "tag prints nothing:\n{t}");
    let listed = s.ok(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let got: BTreeSet<&str> = listed.stdout.lines().collect();
    let want_a = format!("busybox:latest {}", short_id(&id));
    let want_b = format!("busybox:two {}", short_id(&id));
    assert_eq!(
        got,
        [want_a.as_str(), want_b.as_str()].into_iter().collect(),
        "{listed}"
    );

    let r = s.ok(["rmi", "busybox:two"]);
    assert_eq!(
        r.stdout, "Untagged: busybox:two\n",
        "removing one of two tags only untags:\n{r}"
    );
    let still = s.ok(["inspect", "-f", "{{.Id}}", "busybox"]);
    assert_eq!(
        still.stdout.trim(),
        id,
        "the image is still there:\n{still}"
    );
    assert_eq!(
        s.ok(["images", "-q"]).stdout,
        format!("{}\n", short_id(&id))
    );

    let r = s.ok(["rmi", "busybox"]);
    let lines = r.lines();
    assert_eq!(
        lines.first().copied(),
        Some("Untagged: busybox:latest"),
        "{r}"
    );
    assert!(
        lines.contains(&format!("Deleted: {id}").as_str()),
        "the last tag's removal deletes the image:\n{r}"
    );
    assert_eq!(s.ok(["images", "-q"]).stdout, "", "no images left");
    s.run(["inspect", "busybox"]).assert_fail();
}

#[test]
fn rmi_of_unknown_image_fails_with_dockers_message() {
    let s = Skiff::new();
    let out = s.run(["rmi", "nope"]);
    assert_eq!(out.code, 1, "exit code 1 like docker:\n{out}");
    assert!(
        out.stderr
            .lines()
            .any(|l| l.trim_end() == "Error response from daemon: No such image: nope:latest"),
        "docker's wording expected:\n{out}"
    );
    assert_eq!(out.stdout, "", "{out}");

    // docker rmi -f: a missing image is reported on stderr but is not an error.
    let forced = s.run(["rmi", "-f", "nope"]);
    assert_eq!(
        forced.code, 0,
        "rmi -f of a missing image exits 0 like docker:\n{forced}"
    );
    assert!(
        forced.stderr.contains("No such image: nope:latest"),
        "{forced}"
    );
}

#[test]
fn tag_rejects_uppercase_repository_with_dockers_message() {
    let s = Skiff::new();
    s.import_busybox("busybox:latest");
    let out = s.run(["tag", "busybox", "Bad:x"]);
    assert!(
        !out.success(),
        "an uppercase repository name is invalid:\n{out}"
    );
    assert!(
        out.stderr
            .contains("invalid reference format: repository name (library/Bad) must be lowercase"),
        "distribution/reference's wording expected:\n{out}"
    );
    assert_eq!(
        repo_tags(&s, &[]),
        set(&["busybox:latest"]),
        "no tag was added"
    );
}

/// `import URL`: the tar is fetched over HTTP (from a one-shot server on loopback that this
/// test runs) and gives the same image content as importing the file.
#[test]
fn import_from_an_http_url() {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    let s = Skiff::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    let body = fs::read(busybox_tar()).expect("read fixture");
    let server = std::thread::spawn(move || {
        // Serve exactly one request, then stop: the test never leaves a listener behind.
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut line = String::new();
        while reader.read_line(&mut line).expect("read request") > 2 {
            line.clear();
        }
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .expect("write");
        out.write_all(&body).expect("write body");
    });
    let url = format!("http://127.0.0.1:{port}/busybox.tar");
    let out = s.ok(["import", &url, "fromurl:1"]);
    server.join().expect("server thread");
    let from_url = out.stdout.trim().to_owned();
    assert!(is_image_id(&from_url), "{out}");
    let history = s.ok([
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        "fromurl:1",
    ]);
    assert_eq!(
        history.stdout.trim(),
        format!("Imported from {url}"),
        "{history}"
    );
    let from_file = s.ok([
        "import",
        busybox_tar().to_str().expect("utf-8"),
        "fromfile:1",
    ]);
    let layers = |r: &str| s.ok(["inspect", "-f", "{{json .RootFS.Layers}}", r]).stdout;
    assert_eq!(layers("fromurl:1"), layers("fromfile:1"), "{from_file}");
}
