//! Volumes: `volume create/ls/inspect/rm/prune` with docker's output and wording, the
//! `-v`/`--mount`/`--tmpfs` parsers' errors, named volumes filled from the image, data kept
//! across runs, in-use refusal and `rm -v` of anonymous volumes.

use serde_json::Value;

use crate::containers::{need_containers, Env};
use crate::harness::{require, Skiff};
use crate::table::parse_docker_table;

fn names(s: &Skiff, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["volume", "ls", "-q"];
    args.extend_from_slice(extra);
    let mut v: Vec<String> = s.ok(&args).stdout.lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn create_ls_inspect_rm_with_dockers_output() {
    let s = Skiff::new();
    let anon = s.ok(["volume", "create"]).stdout.trim().to_owned();
    assert_eq!(
        anon.len(),
        64,
        "a nameless volume gets 64 hex digits: {anon}"
    );
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()));
    let out = s.ok([
        "volume",
        "create",
        "--label",
        "a=b",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "myvol",
    ]);
    assert_eq!(out.stdout, "myvol\n");
    // Creating an existing name again is fine and keeps the first volume.
    assert_eq!(s.ok(["volume", "create", "myvol"]).stdout, "myvol\n");

    let out = s.ok(["volume", "ls"]);
    let rows = parse_docker_table(&out, &["DRIVER", "VOLUME NAME"]);
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows.iter().all(|r| r[0] == "local"), "{out}");
    assert_eq!(names(&s, &[]), {
        let mut v = vec![anon.clone(), "myvol".to_owned()];
        v.sort();
        v
    });
    assert_eq!(names(&s, &["-f", "label=a=b"]), vec!["myvol"]);
    assert_eq!(
        names(&s, &["-f", "label=a", "-f", "label=x"]),
        Vec::<String>::new()
    );
    assert_eq!(names(&s, &["-f", "name=myv"]), vec!["myvol"]);
    assert_eq!(names(&s, &["-f", "dangling=true"]).len(), 2);
    let out = s.run(["volume", "ls", "-f", "foo=bar"]).assert_fail();
    assert!(out.stderr.contains("Invalid filter 'foo'"), "{out}");
    let out = s.ok([
        "volume",
        "ls",
        "-f",
        "name=myvol",
        "--format",
        "{{.Name}} {{.Labels}} {{.Scope}}",
    ]);
    assert_eq!(out.stdout, "myvol a=b local\n");

    let out = s.ok(["volume", "inspect", "myvol"]);
    let doc: Value = serde_json::from_str(&out.stdout).expect("inspect prints JSON");
    let v = &doc[0];
    assert_eq!(v["Name"], "myvol");
    assert_eq!(v["Driver"], "local");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Labels"]["a"], "b");
    assert_eq!(v["Options"]["type"], "tmpfs");
    let mp = v["Mountpoint"].as_str().unwrap_or_default();
    assert!(
        mp.ends_with("/volumes/myvol/_data") && std::path::Path::new(mp).is_dir(),
        "{out}"
    );
    let created = v["CreatedAt"].as_str().unwrap_or_default();
    assert!(
        created.len() == 20 && created.ends_with('Z'),
        "CreatedAt like docker's: {created}"
    );
    let keys: Vec<&String> = v
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "CreatedAt",
            "Driver",
            "Labels",
            "Mountpoint",
            "Name",
            "Options",
            "Scope"
        ]
    );
    // A parse failure must not pass as Null below.
    let plain: Value = serde_json::from_str(&s.ok(["volume", "inspect", &anon]).stdout)
        .expect("inspect prints JSON");
    assert_eq!(
        plain[0]["Labels"],
        Value::Null,
        "no labels is null, as docker prints it"
    );

    let out = s.ok(["volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "myvol"]);
    assert_eq!(out.stdout, "myvol local\n");
    let out = s.run(["volume", "inspect", "myvol", "nosuch"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Error response from daemon: get nosuch: no such volume"),
        "{out}"
    );

    let out = s.run(["volume", "create", "a"]).assert_fail();
    assert!(out.stderr.contains("create a: volume name is too short, names should be at least two alphanumeric characters"), "{out}");
    let out = s.run(["volume", "create", "bad name!"]).assert_fail();
    assert!(
        out.stderr
            .contains("includes invalid characters for a local volume name"),
        "{out}"
    );
    let out = s.run(["volume", "create", "-d", "foo", "x1"]).assert_fail();
    assert!(
        out.stderr
            .contains("create x1: error looking up volume plugin foo: plugin \"foo\" not found"),
        "{out}"
    );
    let out = s
        .run(["volume", "create", "-o", "foo=bar", "x1"])
        .assert_fail();
    assert!(
        out.stderr.contains("create x1: invalid option: \"foo\""),
        "{out}"
    );
    let out = s
        .run(["volume", "create", "-o", "type=tmpfs", "x1"])
        .assert_fail();
    assert!(
        out.stderr.contains("missing required option: \"device\""),
        "{out}"
    );

    assert_eq!(s.ok(["volume", "rm", "myvol"]).stdout, "myvol\n");
    assert!(!std::path::Path::new(mp).exists(), "rm deletes the data");
    let out = s.run(["volume", "rm", "myvol"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("Error response from daemon: get myvol: no such volume"),
        "{out}"
    );
    assert_eq!(s.ok(["volume", "rm", "-f", "myvol"]).stdout, "myvol\n");
}

#[test]
fn prune_removes_unused_volumes_without_options_and_says_reclaimed_space() {
    let s = Skiff::new();
    s.ok(["volume", "create", "--label", "keep=1", "labelled"]);
    s.ok(["volume", "create", "plain"]);
    s.ok([
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "withopts",
    ]);
    let data = s.root().join("volumes/plain/_data/f");
    std::fs::write(&data, vec![b'x'; 2000]).expect("write into the volume");

    let out = s.ok(["volume", "prune", "-f", "--filter", "label=keep"]);
    assert_eq!(
        out.stdout,
        "Deleted Volumes:\nlabelled\n\nTotal reclaimed space: 0B\n"
    );
    let out = s.ok(["volume", "prune", "-f"]);
    assert_eq!(
        out.stdout,
        "Deleted Volumes:\nplain\n\nTotal reclaimed space: 2kB\n"
    );
    // docker 20.10 never prunes volumes created with driver options.
    assert_eq!(names(&s, &[]), vec!["withopts"]);
    assert_eq!(
        s.ok(["volume", "prune", "-f"]).stdout,
        "Total reclaimed space: 0B\n"
    );
    let out = s
        .run(["volume", "prune", "-f", "--filter", "name=x"])
        .assert_fail();
    assert!(out.stderr.contains("Invalid filter 'name'"), "{out}");
}

#[test]
fn bad_mount_specs_fail_with_dockers_messages() {
    require!(need_containers());
    let e = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (&["-v", "a:b:c:d"], "invalid volume specification: 'a:b:c:d'"),
        (&["-v", "/tmp:x"], "invalid volume specification: '/tmp:x': invalid mount config for type \"bind\": invalid mount path: 'x' mount path must be absolute"),
        (&["-v", "/tmp:/x:foo"], "invalid mode: foo"),
        (&["-v", "/tmp:/x", "-v", "/etc:/x"], "Duplicate mount point: /x"),
        (&["--mount", "type=bind,src=/nonexistent-skiff-c2,dst=/x"], "invalid mount config for type \"bind\": bind source path does not exist: /nonexistent-skiff-c2"),
        (&["--mount", "type=volume,dst=/x,foo=bar"], "unexpected key 'foo' in 'foo=bar'"),
        (&["--mount", "type=bind,src=/tmp"], "target is required"),
        (&["--mount", "type=foo,dst=/x"], "invalid mount config for type \"foo\": mount type unknown"),
        (&["--mount", "type=tmpfs,src=a,dst=/x"], "invalid mount config for type \"tmpfs\": field Source must not be specified"),
        (&["--tmpfs", "u"], "invalid mount path: 'u' mount path must be absolute"),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "true"]);
        let out = e.run(&args);
        assert_eq!(out.code, 125, "{out}");
        assert!(out.stderr.contains(want), "expected {want:?}:\n{out}");
    }
    // Nothing was left behind by the refused containers.
    assert_eq!(e.ok(&["volume", "ls", "-q"]).stdout, "");
}

#[test]
fn named_volume_is_filled_from_the_image_and_keeps_data_across_runs() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&["run", "--name", "maker", "busybox", "sh", "-c",
        "mkdir -p /srv/app && echo from-image > /srv/app/seed && chown 65534:65534 /srv/app && chmod 750 /srv/app"]);
    e.ok(&["commit", "-c", "VOLUME /srv/app", "maker", "withvol"]);
    e.ok(&["rm", "maker"]);

    let out = e.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/srv/app",
        "withvol",
        "sh",
        "-c",
        "cat /srv/app/seed; stat -c '%u:%g %a' /srv/app; echo kept > /srv/app/new",
    ]);
    assert_eq!(out.stdout, "from-image\n65534:65534 750\n", "{out}");
    // A second run sees what the first wrote (and the seed is not copied again).
    let out = e.ok(&[
        "run",
        "--rm",
        "-v",
        "data:/srv/app",
        "busybox",
        "cat",
        "/srv/app/new",
        "/srv/app/seed",
    ]);
    assert_eq!(out.stdout, "kept\nfrom-image\n", "{out}");
    // nocopy: a new volume stays empty.
    let out = e.ok(&[
        "run",
        "--rm",
        "-v",
        "empty:/srv/app:nocopy",
        "withvol",
        "ls",
        "-A",
        "/srv/app",
    ]);
    assert_eq!(out.stdout, "", "{out}");
    // The image VOLUME without a flag gets an anonymous volume, filled too.
    let out = e.ok(&["run", "--rm", "withvol", "cat", "/srv/app/seed"]);
    assert_eq!(out.stdout, "from-image\n", "{out}");
}

#[test]
fn volume_in_use_is_refused_and_rm_v_removes_anonymous_volumes() {
    require!(need_containers());
    let e = Env::new();
    let id = e
        .ok(&[
            "create",
            "-v",
            "named:/n",
            "-v",
            "/anon",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            "busybox",
            "true",
        ])
        .stdout
        .trim()
        .to_owned();
    let mounts: Value =
        serde_json::from_str(&e.inspect(&id, "{{json .Mounts}}")).unwrap_or_default();
    let list = mounts.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 3, "{mounts}");
    let named = list
        .iter()
        .find(|m| m["Destination"] == "/n")
        .cloned()
        .unwrap_or_default();
    assert_eq!(named["Type"], "volume");
    assert_eq!(named["Name"], "named");
    assert_eq!(named["Mode"], "z");
    assert_eq!(named["RW"], true);
    let anon = list
        .iter()
        .find(|m| m["Destination"] == "/anon")
        .cloned()
        .unwrap_or_default();
    let anon_name = anon["Name"].as_str().unwrap_or_default().to_owned();
    assert_eq!(anon_name.len(), 64, "{anon}");
    assert_eq!(anon["Mode"], "");
    let tmpfs = list
        .iter()
        .find(|m| m["Destination"] == "/t")
        .cloned()
        .unwrap_or_default();
    assert_eq!(tmpfs["Type"], "tmpfs");

    let out = e.run(&["volume", "rm", "named"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "Error response from daemon: remove named: volume is in use - [{id}]"
        )),
        "{out}"
    );
    assert_eq!(
        e.ok(&["volume", "ls", "-q", "-f", "dangling=false"])
            .stdout
            .lines()
            .count(),
        2
    );
    // prune spares volumes in use.
    e.ok(&["volume", "prune", "-f"]);
    assert_eq!(e.ok(&["volume", "ls", "-q"]).stdout.lines().count(), 2);

    e.ok(&["rm", "-v", &id]);
    let left = e.ok(&["volume", "ls", "-q"]).stdout;
    assert_eq!(left, "named\n", "rm -v removes the anonymous volume only");
    e.ok(&["volume", "rm", "named"]);
}

#[test]
fn binds_tmpfs_and_read_only_volumes_are_mounted() {
    require!(need_containers());
    let e = Env::new();
    let host = e.s.path("hostdir");
    std::fs::create_dir_all(&host).expect("host dir");
    std::fs::write(host.join("h"), "host\n").expect("host file");
    let bind = format!("{}:/h:ro", host.display());
    let out = e.run(&["run", "--rm", "-v", &bind, "--tmpfs", "/run/t:size=1m", "-v", "rov:/r:ro", "busybox", "sh", "-c",
        "cat /h/h; touch /h/x 2>/dev/null && echo bind-writable; touch /r/x 2>/dev/null && echo vol-writable; grep ' /run/t ' /proc/mounts | cut -d' ' -f3"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, "host\ntmpfs\n", "{out}");
    // -v creates a missing host directory, as docker does.
    let missing = e.s.path("made-by-v");
    e.ok(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", missing.display()),
        "busybox",
        "true",
    ]);
    assert!(missing.is_dir());
}

#[test]
fn system_df_and_info_count_containers_volumes_and_their_bytes() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "dfvol:/data",
        "busybox",
        "sh",
        "-c",
        "head -c 100000 /dev/zero > /data/blob; head -c 50000 /dev/zero > /rw",
    ]);
    e.ok(&["run", "-d", "--name", "sleeper", "busybox", "sleep", "60"]);

    let out = e.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}",
    ]);
    let rows: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(rows[1], "Containers|2|1|50kB", "{out}");
    // The exited writer still refers to the volume, so docker counts it active.
    assert_eq!(rows[2], "Local Volumes|1|1|100kB", "{out}");

    let out = e.ok(&[
        "info",
        "--format",
        "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}}",
    ]);
    assert_eq!(out.stdout, "2 1 0 1\n", "{out}");
}
