//! More of docker 20.10's behaviour, checked against what dockerd 20.10 printed here:
//! `system df -v` (its four tables and `--format`), `rmi` pruning the untagged parents of a
//! built image (and `--no-prune`), `ps --filter ancestor=` matching images built on the named
//! one, and a failed `exec` printing its error once. Each test uses its own root and removes
//! every container it made.

use crate::containers::{need_containers, Env};
use crate::harness::{require, Out};

/// The cells of a table line: docker's tabwriter pads columns with at least three spaces,
/// while cells such as `1 second ago` hold single ones.
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The lines of `out` between the line `title` and the next empty line after its table.
fn section<'a>(out: &'a Out, title: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = out.stdout.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(title))
        .unwrap_or_else(|| panic!("no {title:?} in:\n{out}"));
    // The title, an empty line, then the table up to the next empty line.
    lines[start + 2..]
        .iter()
        .take_while(|l| !l.is_empty())
        .copied()
        .collect()
}

/// Builds `dir`'s Dockerfile as `tag`; returns the build's ` ---> ID` lines (the FROM image
/// first, then each step's image).
fn build(e: &Env, dockerfile: &str, tag: &str) -> Vec<String> {
    let dir = e.s.path(&format!("ctx-{tag}"));
    std::fs::create_dir_all(&dir).expect("context dir");
    std::fs::write(dir.join("Dockerfile"), dockerfile).expect("Dockerfile");
    let out = e.ok(&["build", "-t", tag, dir.to_str().expect("utf-8 path")]);
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix(" ---> "))
        .filter(|id| id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

fn full_id(e: &Env, reference: &str) -> String {
    e.inspect(reference, "{{.Id}}")
}

const APP: &str = "FROM busybox\nRUN echo a > /a\nENV X=1\nRUN echo b > /b\n";

#[test]
fn system_df_verbose_lists_images_containers_volumes_and_the_build_cache() {
    require!(need_containers());
    let e = Env::new();
    build(&e, APP, "app");
    e.ok(&["volume", "create", "v1"]);
    e.ok(&[
        "run",
        "--name",
        "c1",
        "-v",
        "v1:/data",
        "busybox",
        "sh",
        "-c",
        "echo hello > /data/f; echo x > /y",
    ]);
    let out = e.ok(&["system", "df", "-v"]);
    // docker 20.10: each table under its title and an empty line, tables apart by one.
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..2], ["Images space usage:", ""], "{out}");
    for title in [
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: ",
    ] {
        let i = lines
            .iter()
            .position(|l| l.starts_with(title))
            .unwrap_or_else(|| panic!("no {title:?}:\n{out}"));
        assert_eq!(lines[i - 1], "", "an empty line before {title:?}:\n{out}");
        assert_eq!(lines[i + 1], "", "an empty line after {title:?}:\n{out}");
    }

    let images = section(&out, "Images space usage:");
    assert_eq!(
        cells(images[0]),
        [
            "REPOSITORY",
            "TAG",
            "IMAGE ID",
            "CREATED",
            "SIZE",
            "SHARED SIZE",
            "UNIQUE SIZE",
            "CONTAINERS"
        ],
        "{out}"
    );
    let row = |name: &str| -> Vec<String> {
        images
            .iter()
            .map(|l| cells(l))
            .find(|c| c[0] == name)
            .unwrap_or_else(|| panic!("no {name} row:\n{out}"))
    };
    let bb = row("busybox");
    assert_eq!(bb[5], bb[4], "all of busybox is shared with app:\n{out}");
    assert_eq!(bb[6], "0B");
    assert_eq!(bb[7], "1", "c1 runs from busybox:\n{out}");
    let app = row("app");
    let app_id = full_id(&e, "app");
    assert_eq!(app[1], "latest");
    assert_eq!(app[2], app_id.trim_start_matches("sha256:")[..12]);
    // The base's layer is what app shares with busybox; the two RUN layers ("a\n", "b\n")
    // are its own. Nothing runs from app.
    assert_eq!(app[5], bb[4], "{out}");
    assert_eq!(app[6], "4B", "{out}");
    assert_eq!(app[7], "0");

    let containers = section(&out, "Containers space usage:");
    assert_eq!(
        cells(containers[0]),
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "LOCAL VOLUMES",
            "SIZE",
            "CREATED",
            "STATUS",
            "NAMES"
        ],
        "{out}"
    );
    let c1 = cells(containers[1]);
    let c1_id = full_id(&e, "c1");
    assert_eq!(c1[0], c1_id[..12]);
    assert_eq!(c1[1], "busybox");
    // docker's ps COMMAND column: quoted, cut to 20 characters with an ellipsis.
    assert_eq!(c1[2], "\"sh -c 'echo hello >…\"");
    assert_eq!(c1[3], "1");
    // The writable layer only ("x\n" in /y), without ps's "(virtual ...)".
    assert_eq!(c1[4], "2B", "{out}");
    assert!(c1[6].starts_with("Exited (0) "), "{out}");
    assert_eq!(c1[7], "c1");

    let volumes = section(&out, "Local Volumes space usage:");
    assert_eq!(cells(volumes[0]), ["VOLUME NAME", "LINKS", "SIZE"]);
    assert_eq!(cells(volumes[1]), ["v1", "1", "6B"], "{out}");

    // Both RUN layers are held by app: shared, so the cache frees nothing yet.
    assert!(out.stdout.contains("\nBuild cache usage: 0B\n"), "{out}");
    let cache = section(&out, "Build cache usage: ");
    assert_eq!(
        cells(cache[0]),
        [
            "CACHE ID",
            "CACHE TYPE",
            "SIZE",
            "CREATED",
            "LAST USED",
            "USAGE",
            "SHARED"
        ]
    );
    let rows: Vec<Vec<String>> = cache[1..].iter().map(|l| cells(l)).collect();
    assert_eq!(rows.len(), 3, "RUN, ENV, RUN:\n{out}");
    for r in &rows {
        assert_eq!(r[0].len(), 12, "{out}");
        assert_eq!(r[1], "regular");
        // The cache keeps no use count: docker's "N/A" for an unknown value.
        assert_eq!(r[5], "N/A");
        assert_eq!(r[6], "true", "{out}");
    }
    let mut sizes: Vec<&str> = rows.iter().map(|r| r[2].as_str()).collect();
    sizes.sort();
    assert_eq!(sizes, ["0B", "2B", "2B"], "{out}");

    // The summary counts the same images; as docker 20.10 computes it, only the unique
    // bytes of images with containers are not reclaimable (busybox's are all shared).
    let summary = e.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Reclaimable}}",
    ]);
    assert_eq!(
        summary.stdout.lines().next(),
        Some("Images|2|1|1.986MB (100%)"),
        "{summary}"
    );

    // A template runs once over the four lists, ids untruncated, no newline added.
    let t = e.ok(&[
        "system",
        "df",
        "-v",
        "--format",
        "{{range .Images}}{{.Repository}}={{.ID}} {{.Size}} {{.VirtualSize}};{{end}}",
    ]);
    assert!(
        t.stdout.contains(&format!("app={app_id} 1.99MB 1.986MB;")),
        "{t}"
    );
    assert!(!t.stdout.ends_with('\n'), "{t}");
    let t = e.ok(&["system", "df", "-v", "--format", "{{json .Volumes}}"]);
    let mountpoint = e.s.root().join("volumes/v1/_data");
    assert_eq!(
        t.stdout,
        format!(
            "[{{\"Driver\":\"local\",\"Labels\":\"\",\"Links\":\"1\",\"Mountpoint\":\"{}\",\"Name\":\"v1\",\"Scope\":\"local\",\"Size\":\"6B\"}}]",
            mountpoint.display()
        )
    );
    let t = e.ok(&[
        "system",
        "df",
        "-v",
        "--format",
        "{{range .Containers}}{{.ID}}|{{.Size}}|{{.Command}}{{end}}",
    ]);
    assert_eq!(
        t.stdout,
        format!("{c1_id}|2B|\"sh -c 'echo hello > /data/f; echo x > /y'\"")
    );
    // `table ...` with -v is no table: docker runs it over the lists, where .ID is no field.
    let t = e.run(&["system", "df", "-v", "--format", "table {{.ID}}"]);
    assert_eq!(t.code, 1, "{t}");
    assert_eq!(
        t.stderr,
        "template: :1:2: executing \"\" at <.ID>: can't evaluate field ID in type *formatter.diskUsageContext\n"
    );

    // Without app, its cache entries hold layers no image has: they count as cache usage,
    // in -v and in the summary alike.
    e.ok(&["rmi", "app"]);
    let out = e.ok(&["system", "df", "-v"]);
    assert!(out.stdout.contains("\nBuild cache usage: 4B\n"), "{out}");
    let cache = section(&out, "Build cache usage: ");
    assert!(cache[1..].iter().all(|l| cells(l)[6] == "false"), "{out}");
    let summary = e.ok(&["system", "df", "--format", "{{.Type}}={{.Size}}"]);
    assert!(summary.stdout.contains("Build Cache=4B\n"), "{summary}");
}

/// The ids `rmi` printed as `Deleted:` that are among `images`, in order.
fn deleted_images(out: &Out, images: &[&String]) -> Vec<String> {
    out.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("Deleted: "))
        .filter(|id| images.iter().any(|i| i == id))
        .map(str::to_owned)
        .collect()
}

#[test]
fn rmi_prunes_untagged_parents_unless_no_prune_or_still_used() {
    require!(need_containers());
    let e = Env::new();
    let ids = build(&e, APP, "app");
    assert_eq!(ids.len(), 4, "FROM and three steps: {ids:?}");
    // Naming a step's image registers the images between it and app, each with its parent,
    // as docker's classic builder keeps them.
    let run_a = full_id(&e, &ids[1]);
    let env = full_id(&e, &ids[2]);
    let app = full_id(&e, "app");
    assert_eq!(e.inspect("app", "{{.Parent}}"), env);
    assert_eq!(e.inspect(&env, "{{.Parent}}"), run_a);

    // docker (DOCKER_BUILDKIT=0 build, then rmi): "Untagged: app:latest", then "Deleted:"
    // for the image and each untagged parent nothing else uses, up to the tagged base.
    let out = e.ok(&["rmi", "app"]);
    assert_eq!(
        out.stdout.lines().next(),
        Some("Untagged: app:latest"),
        "{out}"
    );
    assert_eq!(
        deleted_images(&out, &[&app, &env, &run_a]),
        [app.clone(), env.clone(), run_a.clone()],
        "{out}"
    );
    let left = e.ok(&["images", "-a", "-q", "--no-trunc"]);
    assert_eq!(
        left.stdout,
        format!("{}\n", full_id(&e, "busybox")),
        "{out}"
    );

    // --no-prune deletes only the image.
    let ids = build(&e, APP, "app");
    let env = full_id(&e, &ids[2]);
    full_id(&e, &ids[1]);
    let app = full_id(&e, "app");
    let out = e.ok(&["rmi", "--no-prune", "app"]);
    assert_eq!(deleted_images(&out, &[&app, &env]), [app.as_str()], "{out}");
    assert_eq!(e.inspect(&env, "{{.Id}}"), env);

    // A parent a container uses stops the pruning there (docker does not force it).
    e.ok(&["tag", &env, "app"]);
    let run_a = full_id(&e, &ids[1]);
    e.ok(&["create", "--name", "user", &run_a, "true"]);
    let out = e.ok(&["rmi", "app"]);
    assert_eq!(
        deleted_images(&out, &[&env, &run_a]),
        [env.as_str()],
        "{out}"
    );
    assert_eq!(e.inspect(&run_a, "{{.Id}}"), run_a);
}

#[test]
fn ps_ancestor_matches_containers_of_images_built_from_it() {
    require!(need_containers());
    let e = Env::new();
    build(&e, "FROM busybox\nRUN echo a > /a\n", "app");
    // The same files under another history: not built from busybox.
    e.s.import_busybox_with(&["-m", "another import"], "other");
    e.ok(&["create", "--name", "from_app", "app", "true"]);
    e.ok(&["create", "--name", "from_bb", "busybox", "true"]);
    e.ok(&["create", "--name", "from_other", "other", "true"]);
    let names = |ancestors: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "-a", "--format", "{{.Names}}"];
        let filters: Vec<String> = ancestors.iter().map(|a| format!("ancestor={a}")).collect();
        for f in &filters {
            args.extend(["--filter", f.as_str()]);
        }
        let out = e.ok(&args);
        let mut n: Vec<String> = out.stdout.lines().map(str::to_owned).collect();
        n.sort();
        n
    };
    assert_eq!(names(&["busybox"]), ["from_app", "from_bb"]);
    assert_eq!(names(&["app"]), ["from_app"]);
    assert_eq!(names(&["other"]), ["from_other"]);
    let bb = full_id(&e, "busybox");
    assert_eq!(names(&[&bb[7..19]]), ["from_app", "from_bb"]);
    // Two ancestors are alternatives.
    assert_eq!(names(&["app", "other"]), ["from_app", "from_other"]);
}

#[test]
fn a_failed_exec_prints_dockers_error_once() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "ctr", "busybox", "sleep", "300"]);
    let out = e.run(&["exec", "ctr", "nosuch"]);
    // docker 20.10 prints only its own wording (runc's line does not reach the user).
    assert_eq!(
        out.stderr,
        "OCI runtime exec failed: exec failed: unable to start container process: exec: \"nosuch\": executable file not found in $PATH: unknown\n",
        "{out}"
    );
    // (dockerd 20.10 exits 126 here, for a missing command too; skiff keeps 127 as
    // containers_more's exec test expects.)
    assert_ne!(out.code, 0);
    let out = e.run(&["exec", "ctr", "/etc/passwd"]);
    assert_eq!(
        (out.code, out.stderr.as_str()),
        (
            126,
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"/etc/passwd\": permission denied: unknown\n"
        ),
        "{out}"
    );
    // The process's own stderr still arrives, apart from stdout, and nothing is lost when
    // it writes more than a pipe holds.
    let out = e.ok(&[
        "exec",
        "ctr",
        "sh",
        "-c",
        "echo out; echo err >&2; yes 0123456789 | head -c 200000 >&2; exit 0",
    ]);
    assert_eq!(out.stdout, "out\n");
    assert!(out.stderr.starts_with("err\n"), "{out}");
    assert_eq!(out.stderr.len(), 4 + 200000);
    let out = e.run(&["exec", "ctr", "sh", "-c", "echo bad >&2; exit 3"]);
    assert_eq!((out.code, out.stderr.as_str()), (3, "bad\n"));
}

#[test]
fn system_df_verbose_on_an_empty_root_prints_dockers_empty_tables() {
    let s = crate::harness::Skiff::new();
    let out = s.ok(["system", "df", "--verbose"]);
    // The volume and cache tables as dockerd 20.10 printed them with none of either.
    assert_eq!(
        out.stdout,
        "Images space usage:\n\n\
         REPOSITORY   TAG       IMAGE ID   CREATED   SIZE      SHARED SIZE   UNIQUE SIZE   CONTAINERS\n\n\
         Containers space usage:\n\n\
         CONTAINER ID   IMAGE     COMMAND   LOCAL VOLUMES   SIZE      CREATED   STATUS    NAMES\n\n\
         Local Volumes space usage:\n\n\
         VOLUME NAME   LINKS     SIZE\n\n\
         Build cache usage: 0B\n\n\
         CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n"
    );
    // No build has run: listing the cache does not create its database.
    assert!(!s.root().join("build-cache.db").exists());
}
