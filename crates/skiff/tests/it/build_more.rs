//! More of `skiff build`: the cache survives `rmi` and goes with `builder prune`; step IDs
//! are images (`run`, `inspect`, `tag`, `history`); `--cache-from`; `-o type=oci|docker`;
//! `COPY --parents`; `--squash`. Like `build`, these run RUN steps in real containers and
//! need root and runc or crun.

use std::fs;

use serde_json::Value;

use crate::build::{build_ok, cached_steps, config, need_builder, with_busybox, Registry};
use crate::harness::{need_tool, require, Out, Skiff};

/// The ` ---> ID` that ends each step, by step number (the base's for FROM).
fn step_ids(out: &Out) -> Vec<(usize, String)> {
    let mut step = 0;
    let mut ids: Vec<(usize, String)> = Vec::new();
    for line in out.stdout.lines() {
        if let Some(rest) = line.strip_prefix("Step ") {
            step = rest
                .split('/')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
        }
        if let Some(id) = line.strip_prefix(" ---> ") {
            if id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
                ids.retain(|(n, _)| *n != step);
                ids.push((step, id.to_owned()));
            }
        }
    }
    ids
}

fn image_id(s: &Skiff, reference: &str) -> String {
    s.ok(["inspect", "--format", "{{.Id}}", reference])
        .stdout
        .trim()
        .to_owned()
}

/// Snapshot directories of every storage driver under the root.
fn snapshot_dirs(s: &Skiff) -> usize {
    let Ok(drivers) = fs::read_dir(s.root().join("snapshots")) else {
        return 0;
    };
    drivers
        .flatten()
        .filter_map(|d| fs::read_dir(d.path()).ok())
        .flat_map(|entries| entries.flatten())
        .filter(|e| e.file_name().to_string_lossy().parse::<u64>().is_ok())
        .count()
}

const TWO_RUNS: &str = "FROM busybox\nRUN echo one > /one\nCOPY f /f\nRUN echo two > /two\n";

#[test]
fn the_build_cache_survives_rmi_and_goes_with_builder_prune() {
    require!(need_builder());
    let s = with_busybox();
    s.write("ctx/Dockerfile", TWO_RUNS.as_bytes());
    s.write("ctx/f", b"f\n");
    let first = build_ok(&s, &["-t", "kept", "ctx"]);
    assert!(cached_steps(&first).is_empty(), "{first}");
    let id = image_id(&s, "kept");

    // rmi takes the image; the GC it runs keeps what the cache refers to.
    s.ok(["rmi", "kept"]);
    s.run(["inspect", "kept"]).assert_fail();
    let again = build_ok(&s, &["-t", "kept", "ctx"]);
    assert_eq!(cached_steps(&again), [2, 3, 4], "{again}");
    assert_eq!(image_id(&s, "kept"), id);
    let mp = s.mount("kept");
    assert_eq!(fs::read_to_string(mp.join("two")).expect("/two"), "two\n");
    s.ok(["image", "unmount", "kept"]);

    // image prune -a too (a container keeps the base in use).
    s.ok(["rmi", "kept"]);
    s.ok(["create", "--name", "keeps-base", "busybox", "true"]);
    s.ok(["image", "prune", "-a", "-f"]);
    let pruned_images = build_ok(&s, &["-t", "kept", "ctx"]);
    assert_eq!(cached_steps(&pruned_images), [2, 3, 4], "{pruned_images}");

    // builder prune empties the cache and GC then takes the layers only it kept.
    s.ok(["rmi", "kept"]);
    let trees_before = snapshot_dirs(&s);
    s.ok(["builder", "prune", "-f"]);
    let trees_after = snapshot_dirs(&s);
    // Blobs this young are spared by GC's grace period; the snapshots go at once.
    assert!(
        trees_after < trees_before,
        "builder prune removed no snapshot ({trees_before} -> {trees_after})"
    );
    let after = build_ok(&s, &["-t", "kept", "ctx"]);
    assert!(cached_steps(&after).is_empty(), "{after}");
}

#[test]
fn step_ids_are_images_for_run_inspect_tag_and_history() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN echo one > /file\nRUN echo two > /file\nLABEL done=1\n",
    );
    let out = build_ok(&s, &["-t", "final", "ctx"]);
    let ids = step_ids(&out);
    let step2 = &ids.iter().find(|(n, _)| *n == 2).expect("step 2 id").1;
    let step3 = &ids.iter().find(|(n, _)| *n == 3).expect("step 3 id").1;

    // Not an image until it is asked for, and then hidden from `images` as docker hides
    // intermediate images, but listed with -a.
    let listed = s.ok(["images", "-q"]).stdout;
    assert!(!listed.contains(step2.as_str()), "{listed}");

    let ran = s.ok(["run", "--rm", step2, "cat", "/file"]);
    assert_eq!(ran.stdout, "one\n", "{ran}");
    let full = image_id(&s, step2);
    assert!(
        full.starts_with(&format!("sha256:{step2}")),
        "{full} for {step2}"
    );
    let ran3 = s.ok(["run", "--rm", step3, "cat", "/file"]);
    assert_eq!(ran3.stdout, "two\n", "{ran3}");

    let listed = s.ok(["images", "-q"]).stdout;
    assert!(
        !listed.contains(step2.as_str()),
        "hidden without -a:\n{listed}"
    );
    assert!(
        !listed.contains(step3.as_str()),
        "hidden without -a:\n{listed}"
    );
    let all = s.ok(["images", "-a", "-q"]).stdout;
    assert!(all.contains(step2.as_str()), "{all}");
    assert!(all.contains(step3.as_str()), "{all}");

    // history: the base's entries and the step's own, not the later ones.
    let history = s.ok(["history", "--no-trunc", "--format", "{{.CreatedBy}}", step2]);
    assert!(history.stdout.contains("echo one > /file"), "{history}");
    assert!(!history.stdout.contains("echo two"), "{history}");

    // tag by the full ID too; the tagged step is an ordinary image.
    s.ok(["tag", &full, "stepimg:2"]);
    assert_eq!(image_id(&s, "stepimg:2"), full);
    let cfg = config(&s, "stepimg:2");
    assert_eq!(
        cfg["history"].as_array().map(Vec::len),
        config(&s, "busybox")["history"]
            .as_array()
            .map(|h| h.len() + 1)
    );

    // An ID that is neither an image nor a step is still not found.
    let missing = s.run(["inspect", "0123456789ab"]).assert_fail();
    assert!(missing.stderr.contains("No such"), "{missing}");
}

#[test]
fn cache_from_a_loaded_image_gives_the_same_steps_and_id() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nENV A=1\nRUN echo one > /one\nCOPY f /f\nRUN echo two > /two\n",
    );
    s.write("ctx/f", b"f\n");
    build_ok(&s, &["-t", "app:v1", "ctx"]);
    let id = image_id(&s, "app:v1");
    let saved = s.path("app.tar");
    let saved = saved.to_str().expect("utf-8");
    s.ok(["save", "-o", saved, "busybox", "app:v1"]);

    // A fresh root with the same base and the saved image, no build cache.
    let t = Skiff::new();
    t.ok(["load", "-i", saved]);
    t.write(
        "ctx/Dockerfile",
        b"FROM busybox\nENV A=1\nRUN echo one > /one\nCOPY f /f\nRUN echo two > /two\n",
    );
    t.write("ctx/f", b"f\n");
    let from = build_ok(&t, &["--cache-from", "app:v1", "-t", "again", "ctx"]);
    assert_eq!(cached_steps(&from), [2, 3, 4, 5], "{from}");
    assert_eq!(image_id(&t, "again"), id);
    let mp = t.mount("again");
    assert_eq!(fs::read_to_string(mp.join("two")).expect("/two"), "two\n");
    t.ok(["image", "unmount", "again"]);
    // What came from the image is now in the local cache.
    let local = build_ok(&t, &["-t", "again", "ctx"]);
    assert_eq!(cached_steps(&local), [2, 3, 4, 5], "{local}");

    // Other content in the COPY: its history line differs, so it and the steps after it run.
    let u = Skiff::new();
    u.ok(["load", "-i", saved]);
    u.write(
        "ctx/Dockerfile",
        b"FROM busybox\nENV A=1\nRUN echo one > /one\nCOPY f /f\nRUN echo two > /two\n",
    );
    u.write("ctx/f", b"changed\n");
    let changed = build_ok(&u, &["--cache-from", "app:v1", "ctx"]);
    assert_eq!(cached_steps(&changed), [2, 3], "{changed}");

    // Without --cache-from every step runs; a missing --cache-from image is skipped.
    let v = Skiff::new();
    v.ok(["load", "-i", saved]);
    v.write(
        "ctx/Dockerfile",
        b"FROM busybox\nENV A=1\nRUN echo one > /one\nCOPY f /f\nRUN echo two > /two\n",
    );
    v.write("ctx/f", b"f\n");
    let plain = build_ok(&v, &["--cache-from", "localhost:1/nosuch:1", "ctx"]);
    assert!(cached_steps(&plain).is_empty(), "{plain}");
}

#[test]
fn output_oci_and_docker_archives_of_the_result() {
    require!(need_builder());
    require!(need_tool("skopeo"));
    let s = with_busybox();
    s.write("ctx/Dockerfile", b"FROM busybox\nRUN echo built > /built\n");
    let oci = s.path("image-oci.tar");
    let oci = oci.to_str().expect("utf-8");
    build_ok(
        &s,
        &["-o", &format!("type=oci,dest={oci}"), "-t", "out:1", "ctx"],
    );
    let id = image_id(&s, "out:1");
    let inspected = crate::harness::tool_ok(
        "skopeo",
        ["inspect", "--config", &format!("oci-archive:{oci}")],
    );
    let cfg: Value = serde_json::from_str(&inspected.stdout).expect("skopeo's config JSON");
    assert_eq!(
        cfg["history"]
            .as_array()
            .and_then(|h| h.last())
            .and_then(|h| h["created_by"].as_str()),
        Some("/bin/sh -c echo built > /built"),
        "{inspected}"
    );
    let raw = crate::harness::tool_ok(
        "skopeo",
        [
            "inspect",
            "--raw",
            "--config",
            &format!("oci-archive:{oci}"),
        ],
    );
    assert_eq!(
        format!(
            "sha256:{}",
            crate::files::sha256_hex(raw.raw_stdout.as_slice())
        ),
        id,
        "the archive holds the built config as it is"
    );

    // docker: tagged with name=, loads elsewhere with the same ID; `dest=-` is stdout.
    let out = s
        .run(["build", "-o", "type=docker,dest=-,name=named:2", "ctx"])
        .assert_ok();
    assert!(out.raw_stdout.len() > 1024, "{}", out.stderr);
    assert_eq!(image_id(&s, "named:2"), id);
    let tar = s.path("docker.tar");
    fs::write(&tar, &out.raw_stdout).expect("write the archive");
    let t = Skiff::new();
    let loaded = t.ok(["load", "-i", tar.to_str().expect("utf-8")]);
    assert_eq!(loaded.stdout, "Loaded image: named:2\n", "{loaded}");
    assert_eq!(image_id(&t, "named:2"), id);

    let bad = s
        .run(["build", "-o", "type=oci,dest=x.tar,name=n", "ctx"])
        .assert_fail();
    assert!(bad.stderr.contains("name"), "{bad}");
}

#[test]
fn copy_parents_keeps_directories_below_the_context_or_the_pivot() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        concat!(
            "FROM busybox\n",
            "COPY ./x/a.txt ./y/b.txt /plain/\n",
            "COPY --parents ./x/a.txt ./y/b.txt /dst/\n",
            "COPY --parents src/*/*.go /globbed/\n",
            "COPY --parents ./src/./one/*.go /pivot/\n",
            "COPY --parents src/two /dir/\n",
        )
        .as_bytes(),
    );
    s.write("ctx/x/a.txt", b"a\n");
    s.write("ctx/y/b.txt", b"b\n");
    s.write("ctx/src/one/m.go", b"one\n");
    s.write("ctx/src/one/skip.txt", b"no\n");
    s.write("ctx/src/two/n.go", b"two\n");
    s.write("ctx/src/two/deeper/d.txt", b"deep\n");
    let first = build_ok(&s, &["-t", "parents", "ctx"]);
    let mp = s.mount("parents");
    let read = |p: &str| fs::read_to_string(mp.join(p)).ok();
    assert_eq!(read("plain/a.txt").as_deref(), Some("a\n"));
    assert_eq!(read("plain/b.txt").as_deref(), Some("b\n"));
    assert_eq!(read("dst/x/a.txt").as_deref(), Some("a\n"));
    assert_eq!(read("dst/y/b.txt").as_deref(), Some("b\n"));
    assert!(!mp.join("dst/a.txt").exists());
    assert_eq!(read("globbed/src/one/m.go").as_deref(), Some("one\n"));
    assert_eq!(read("globbed/src/two/n.go").as_deref(), Some("two\n"));
    assert!(!mp.join("globbed/src/one/skip.txt").exists());
    assert_eq!(read("pivot/one/m.go").as_deref(), Some("one\n"));
    assert!(!mp.join("pivot/src").exists());
    assert_eq!(read("dir/src/two/n.go").as_deref(), Some("two\n"));
    assert_eq!(read("dir/src/two/deeper/d.txt").as_deref(), Some("deep\n"));
    s.ok(["image", "unmount", "parents"]);
    assert!(cached_steps(&first).is_empty(), "{first}");

    // The same sources with and without --parents are different steps.
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nCOPY ./x/a.txt ./y/b.txt /plain/\nCOPY ./x/a.txt ./y/b.txt /dst/\n",
    );
    let without = build_ok(&s, &["-t", "noparents", "ctx"]);
    assert_eq!(cached_steps(&without), [2], "{without}");
    let mp = s.mount("noparents");
    assert!(mp.join("dst/a.txt").exists());
    assert!(!mp.join("dst/x").exists());
    s.ok(["image", "unmount", "noparents"]);
}

#[test]
fn squash_merges_the_built_layers_into_one_and_keeps_the_history() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        concat!(
            "FROM busybox\n",
            "RUN echo a > /a && echo gone > /gone && mkdir /d && echo x > /d/x\n",
            "ENV E=1\n",
            "RUN echo b > /b && rm /gone\n",
            "RUN rm -r /d /etc/group && echo c > /a\n",
        )
        .as_bytes(),
    );
    let out = build_ok(&s, &["--squash", "-t", "sq", "ctx"]);
    let base = config(&s, "busybox");
    let cfg = config(&s, "sq");
    let base_layers = base["rootfs"]["diff_ids"].as_array().map_or(0, Vec::len);
    let layers = cfg["rootfs"]["diff_ids"].as_array().expect("diff_ids");
    assert_eq!(layers.len(), base_layers + 1, "{cfg}");
    assert!(
        out.stdout.contains(&format!(
            "Successfully built {}",
            &image_id(&s, "sq")["sha256:".len()..][..12]
        )),
        "{out}"
    );

    // Every step's line is kept, marked empty, and one entry holds the merged layer.
    let history = cfg["history"].as_array().expect("history");
    let base_history = base["history"].as_array().map_or(0, Vec::len);
    assert_eq!(history.len(), base_history + 5, "{cfg}");
    for h in &history[base_history..base_history + 4] {
        assert_eq!(h["empty_layer"], Value::Bool(true), "{h}");
    }
    let last = &history[base_history + 4];
    assert!(last["empty_layer"].is_null(), "{last}");
    let comment = last["comment"].as_str().expect("comment");
    assert!(
        comment.starts_with("merge sha256:") && comment.contains(" to sha256:"),
        "{comment}"
    );
    assert_eq!(
        history[base_history + 3]["created_by"].as_str(),
        Some("/bin/sh -c rm -r /d /etc/group && echo c > /a")
    );
    assert_eq!(
        cfg["config"]["Env"]
            .as_array()
            .map(|e| e.iter().any(|v| v == "E=1")),
        Some(true)
    );

    // The merged layer: what is new, a whiteout for what left the base, nothing of the files
    // made and removed within the build.
    let top = layers
        .last()
        .and_then(Value::as_str)
        .expect("top diff_id")
        .trim_start_matches("sha256:");
    let names = crate::files::tar_entry_names(&s.root().join("blobs/sha256").join(top));
    for want in ["a", "b", "etc/.wh.group"] {
        assert!(
            names.iter().any(|n| n.trim_start_matches("./") == want),
            "{want} in {names:?}"
        );
    }
    for never in ["gone", "d/x", "d", ".wh.gone", ".wh.d"] {
        assert!(
            !names
                .iter()
                .any(|n| n.trim_start_matches("./").trim_end_matches('/') == never),
            "{never} in {names:?}"
        );
    }

    // The tree is the same as the unsquashed build's; removed files are whiteouts applied.
    let mp = s.mount("sq");
    assert_eq!(fs::read_to_string(mp.join("a")).expect("/a"), "c\n");
    assert_eq!(fs::read_to_string(mp.join("b")).expect("/b"), "b\n");
    assert!(!mp.join("gone").exists());
    assert!(!mp.join("d").exists());
    assert!(!mp.join("etc/group").exists());
    assert!(mp.join("bin/sh").exists());
    s.ok(["image", "unmount", "sq"]);
    let ran = s.ok(["run", "--rm", "sq", "cat", "/a", "/b"]);
    assert_eq!(ran.stdout, "c\nb\n", "{ran}");
}

#[test]
fn cache_from_a_registry_image_that_is_not_here_is_pulled() {
    require!(need_builder());
    let s = with_busybox();
    let dockerfile = b"FROM busybox\nRUN echo one > /one\nLABEL l=1\n";
    s.write("ctx/Dockerfile", dockerfile);
    build_ok(&s, &["-t", "app:v1", "ctx"]);
    let id = image_id(&s, "app:v1");
    let registry = Registry::start(&s);
    let name = format!("{}/app:v1", registry.addr);
    s.ok(["tag", "app:v1", &name]);
    s.ok(["push", &name]);
    let base = s.path("base.tar");
    let base = base.to_str().expect("utf-8");
    s.ok(["save", "-o", base, "busybox"]);

    let t = Skiff::new();
    t.ok(["load", "-i", base]);
    t.write("ctx/Dockerfile", dockerfile);
    let out = build_ok(&t, &["--cache-from", &name, "-t", "again", "ctx"]);
    assert!(out.stdout.contains("v1: Pulling from app"), "{out}");
    assert_eq!(cached_steps(&out), [2, 3], "{out}");
    assert_eq!(image_id(&t, "again"), id);
    let ran = t.ok(["run", "--rm", "again", "cat", "/one"]);
    assert_eq!(ran.stdout, "one\n", "{ran}");
}
