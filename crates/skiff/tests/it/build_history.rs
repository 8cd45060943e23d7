//! Build records and `--progress=tty`: every build, whatever it printed, leaves a record and
//! a log that `skiff buildx history ls|logs|inspect|rm` read back; failed builds too. The
//! live view falls back to a summary when stderr is not a terminal. These builds run RUN
//! steps in real containers, so they need root and runc or crun.

use serde_json::Value;

use crate::build::{need_builder, with_busybox};
use crate::harness::{require, Out, Skiff};

/// The rows of `buildx history ls` under its header, split into columns.
fn ls_rows(s: &Skiff) -> Vec<Vec<String>> {
    let out = s.ok(["buildx", "history", "ls"]);
    let mut lines = out.stdout.lines();
    let header = lines.next().unwrap_or_default();
    assert!(
        header.starts_with("BUILD ID") && header.contains("NAME") && header.contains("STATUS"),
        "{out}"
    );
    assert!(
        header.contains("CREATED AT") && header.contains("DURATION"),
        "{out}"
    );
    lines
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

fn inspect(s: &Skiff, id: &str) -> Value {
    let out = s.ok(["buildx", "history", "inspect", id]);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn a_build_is_recorded_with_its_steps_and_its_run_output() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN echo hist-marker-7 && echo second\nCOPY a /a\n",
    );
    s.write("ctx/a", b"a\n");
    let out = s.ok(["build", "-t", "recorded:1", "ctx"]);
    // The classic output is unchanged by the recording.
    assert!(out.stdout.contains("hist-marker-7\nsecond\n"), "{out}");

    let rows = ls_rows(&s);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let id = rows[0][0].clone();
    assert!(
        id.len() >= 12 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_eq!(rows[0][1], "recorded:1");
    assert_eq!(rows[0][2], "Completed");
    assert!(rows[0][3].ends_with(" ago"), "{rows:?}");
    assert!(rows[0][4].ends_with('s'), "{rows:?}");

    // The newest build by default, and by a prefix of its id: the same log.
    let log = s.ok(["buildx", "history", "logs"]).stdout;
    assert_eq!(s.ok(["buildx", "history", "logs", &id[..6]]).stdout, log);
    assert!(log.starts_with("#1 [1/3] FROM busybox\n"), "{log}");
    assert!(
        log.contains(
            "#2 [2/3] RUN echo hist-marker-7 && echo second\n#2 hist-marker-7\n#2 second\n#2 DONE "
        ),
        "{log}"
    );
    assert!(log.contains("#3 [3/3] COPY a /a\n#3 DONE "), "{log}");
    assert!(
        log.contains("naming to docker.io/library/recorded:1 done"),
        "{log}"
    );
    // Each step ends with its time.
    let timed = log
        .lines()
        .filter(|l| l.contains(" DONE ") && l.ends_with('s'))
        .count();
    assert!(timed >= 3, "{log}");

    let rec = inspect(&s, &id);
    assert_eq!(rec["id"], id.as_str());
    assert_eq!(rec["status"], "Completed");
    assert_eq!(rec["tags"][0], "recorded:1");
    assert_eq!(rec["dockerfile"], "Dockerfile");
    let image = s
        .ok(["inspect", "--format", "{{.Id}}", "recorded:1"])
        .stdout
        .trim()
        .to_owned();
    assert_eq!(rec["image"], image.as_str());
    let steps = rec["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3);
    assert_eq!(steps[1]["number"], 2);
    assert_eq!(steps[1]["text"], "RUN echo hist-marker-7 && echo second");
    assert_eq!(steps[1]["cached"], false);
    assert!(steps[1]["duration_ms"].is_u64());
    assert!(steps[1]["image"]
        .as_str()
        .is_some_and(|i| i.starts_with("sha256:")));
    assert!(rec["started"].as_str().is_some() && rec["finished"].as_str().is_some());

    // A second, cached build is its own record, with cached steps.
    let again = s.ok(["build", "--progress=plain", "-t", "recorded:1", "ctx"]);
    assert!(again.stderr.contains("#2 CACHED"), "{again}");
    let rows = ls_rows(&s);
    assert_eq!(rows.len(), 2);
    assert_ne!(rows[0][0], id, "the newest is listed first");
    let cached = inspect(&s, &rows[0][0]);
    assert_eq!(cached["steps"][1]["cached"], true);
    assert!(s
        .ok(["buildx", "history", "logs", &rows[0][0]])
        .stdout
        .contains("#2 CACHED\n"));

    // --format and -q.
    let q = s.ok(["buildx", "history", "ls", "-q"]);
    assert_eq!(q.lines(), [rows[0][0].as_str(), id.as_str()]);
    let t = s.ok([
        "buildx",
        "history",
        "ls",
        "--format",
        "{{.Ref}}={{.Status}}",
    ]);
    assert_eq!(t.lines()[1], format!("{id}=Completed"));
    let j = s.ok(["buildx", "history", "ls", "--format", "json"]);
    let first: Value = serde_json::from_str(j.lines()[1]).expect("json row");
    assert_eq!(first["ref"], id.as_str());
    assert_eq!(first["status"], "Completed");

    // rm removes one record, and only that one.
    s.ok(["buildx", "history", "rm", &id]);
    let rows = ls_rows(&s);
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0][0], id);
    let gone = s.run(["buildx", "history", "logs", &id]);
    assert_eq!(gone.code, 1, "{gone}");
}

#[test]
fn a_failed_build_is_recorded_as_an_error_with_its_output() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN echo before-failing-9; echo on-stderr >&2; exit 3\n",
    );
    let out = s.run(["build", "-t", "broken", "ctx"]);
    assert_eq!(out.code, 1, "{out}");
    let rows = ls_rows(&s);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][1], "broken:latest");
    assert_eq!(rows[0][2], "Error");
    let log = s.ok(["buildx", "history", "logs"]).stdout;
    assert!(
        log.contains("#2 before-failing-9\n#2 on-stderr\n#2 ERROR: The command '/bin/sh -c echo before-failing-9; echo on-stderr >&2; exit 3' returned a non-zero code: 3\n"),
        "{log}"
    );
    let rec = inspect(&s, &rows[0][0]);
    assert_eq!(rec["status"], "Error");
    assert!(rec["error"]
        .as_str()
        .is_some_and(|e| e.contains("returned a non-zero code: 3")));
    assert!(rec.get("image").is_none(), "{rec}");
}

#[test]
fn unknown_build_ids_are_a_one_line_error() {
    let s = Skiff::new();
    for args in [
        &["buildx", "history", "logs", "0123abcd"][..],
        &["buildx", "history", "inspect", "0123abcd"],
        &["buildx", "history", "rm", "0123abcd"],
    ] {
        let out: Out = s.run(args.iter().copied());
        assert_eq!(out.code, 1, "{out}");
        assert_eq!(
            out.stderr.trim(),
            "Error: no such build record: 0123abcd",
            "{out}"
        );
        assert!(out.stdout.is_empty(), "{out}");
    }
    // No builds yet: an empty table, and no newest build to show.
    let ls = s.ok(["buildx", "history", "ls"]);
    assert_eq!(ls.lines().len(), 1, "{ls}");
    assert_eq!(s.run(["buildx", "history", "logs"]).code, 1);
}

#[test]
fn tty_progress_without_a_terminal_prints_every_step_with_its_time() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox\nRUN echo tty-run-output\nENV A=1\n",
    );
    let out = s.ok(["build", "--progress=tty", "-t", "ttyview", "ctx"]);
    let err = &out.stderr;
    assert!(
        !err.contains('\x1b'),
        "no cursor codes without a terminal: {out}"
    );
    assert!(err.starts_with("[+] Building "), "{out}");
    assert!(err.contains("(3/3) FINISHED"), "{out}");
    for step in [
        "[1/3] FROM busybox",
        "[2/3] RUN echo tty-run-output",
        "[3/3] ENV A=1",
    ] {
        let line = err
            .lines()
            .find(|l| l.starts_with(" => ") && l.contains(step))
            .unwrap_or_else(|| panic!("no line for {step}: {out}"));
        let time = line.split_whitespace().last().unwrap_or_default();
        assert!(
            time.ends_with('s') && time.trim_end_matches('s').parse::<f64>().is_ok(),
            "{line}"
        );
    }
    assert!(err.contains(" => exporting to image"), "{out}");
    assert!(
        err.contains("naming to docker.io/library/ttyview:latest"),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
    // Recorded like any build, RUN output included.
    let log = s.ok(["buildx", "history", "logs"]).stdout;
    assert!(log.contains("#2 tty-run-output\n"), "{log}");

    // A failed step shows its output under the view, and the error.
    s.write(
        "bad/Dockerfile",
        b"FROM busybox\nRUN echo tty-fail-out; false\n",
    );
    let bad = s.run(["build", "--progress=tty", "bad"]);
    assert_eq!(bad.code, 1, "{bad}");
    assert!(
        bad.stderr
            .contains(" => ERROR [2/2] RUN echo tty-fail-out; false"),
        "{bad}"
    );
    assert!(
        bad.stderr
            .contains("------\n > [2/2] RUN echo tty-fail-out; false:\ntty-fail-out\n------\n"),
        "{bad}"
    );
    assert!(bad.stderr.contains("returned a non-zero code: 1"), "{bad}");
}
