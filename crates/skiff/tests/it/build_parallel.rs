//! `skiff build` with stages that do not depend on each other: they are built at the same
//! time, and the output still reads like docker's sequential build (steps in file order,
//! docker's numbering, each RUN's output under its step). Needs root and runc or crun.

use std::fs;
use std::time::{Duration, Instant};

use crate::build::{cached_steps, need_builder, runtime_containers, with_busybox};
use crate::harness::{mounts_under, require, Out, Skiff};

/// Two stages that each take a second, and a last one that copies from both.
const TWO_SLOW_STAGES: &str = "FROM busybox AS a
RUN echo start-a; sleep 1; echo a > /a; echo end-a
FROM busybox AS b
RUN echo start-b; sleep 1; echo b > /b; echo end-b
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
";

/// The `Step N/M : ...` lines of a classic build.
fn step_lines(out: &Out) -> Vec<&str> {
    out.stdout
        .lines()
        .filter(|l| l.starts_with("Step "))
        .collect()
}

/// The steps a sequential build of `dockerfile` shows (every stage needed, no meta ARGs).
fn sequential_steps(dockerfile: &str) -> Vec<String> {
    let lines: Vec<&str> = dockerfile.lines().filter(|l| !l.is_empty()).collect();
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("Step {}/{} : {l}", i + 1, lines.len()))
        .collect()
}

/// The lines between the header of step `n` and the next step header.
fn step_body(out: &Out, n: usize) -> Vec<&str> {
    let prefix = format!("Step {n}/");
    out.stdout
        .lines()
        .skip_while(|l| !l.starts_with(&prefix))
        .skip(1)
        .take_while(|l| !l.starts_with("Step "))
        .collect()
}

fn assert_nothing_left(s: &Skiff) {
    assert!(
        mounts_under(s.root()).is_empty(),
        "mounts left: {:?}",
        mounts_under(s.root())
    );
    assert!(
        runtime_containers(s).is_empty(),
        "containers left: {:?}",
        runtime_containers(s)
    );
    let left: Vec<_> = fs::read_dir(s.root().join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch left in tmp: {left:?}");
}

#[test]
fn independent_stages_run_at_once_and_print_as_a_sequential_build() {
    require!(need_builder());
    let s = with_busybox();
    s.write("ctx/Dockerfile", TWO_SLOW_STAGES.as_bytes());

    let t = Instant::now();
    let out = s.ok(["build", "-t", "both", "ctx"]);
    let took = t.elapsed();
    assert!(
        took < Duration::from_millis(1800),
        "two 1 s stages took {took:?}: they did not run at the same time\n{out}"
    );

    // Steps in file order with the sequential numbering; each RUN's output under its step.
    assert_eq!(step_lines(&out), sequential_steps(TWO_SLOW_STAGES), "{out}");
    for (n, name) in [(2, "a"), (4, "b")] {
        let body = step_body(&out, n);
        let start = format!("start-{name}");
        let end = format!("end-{name}");
        assert!(
            body.len() == 5
                && body[0].starts_with(" ---> Running in ")
                && body[1] == start
                && body[2] == end
                && body[3].starts_with("Removing intermediate container ")
                && body[4].starts_with(" ---> "),
            "step {n}:\n{body:#?}\n{out}"
        );
    }
    assert!(
        out.stdout.contains("Successfully tagged both:latest"),
        "{out}"
    );

    let mp = s.mount("both");
    assert_eq!(fs::read_to_string(mp.join("a")).expect("/a"), "a\n");
    assert_eq!(fs::read_to_string(mp.join("b")).expect("/b"), "b\n");
    s.ok(["image", "unmount", "both"]);
    let id = s.ok(["inspect", "--format", "{{.Id}}", "both"]).stdout;

    // Again: every step from the cache, the same image; an unused build arg is reported.
    let again = s.ok(["build", "--build-arg", "NOBODY=1", "-t", "both", "ctx"]);
    assert_eq!(cached_steps(&again), [2, 4, 6, 7], "{again}");
    assert_eq!(step_lines(&again), sequential_steps(TWO_SLOW_STAGES));
    assert!(
        again
            .stdout
            .contains("[Warning] One or more build-args [NOBODY] were not consumed"),
        "{again}"
    );
    assert_eq!(
        s.ok(["inspect", "--format", "{{.Id}}", "both"]).stdout,
        id,
        "{again}"
    );

    // -q prints the ID only; --target builds one of the parallel stages alone.
    let q = s.ok(["build", "-q", "ctx"]);
    assert_eq!(q.stdout, id, "{q}");
    let b = s.ok(["build", "--target", "b", "ctx"]);
    assert_eq!(
        step_lines(&b),
        [
            "Step 1/2 : FROM busybox AS b",
            "Step 2/2 : RUN echo start-b; sleep 1; echo b > /b; echo end-b"
        ],
        "{b}"
    );
    assert_eq!(cached_steps(&b), [2], "{b}");

    // Plain progress numbers the steps the same way.
    let plain = s.ok(["build", "--progress=plain", "ctx"]);
    for n in 1..=7 {
        assert!(
            plain.stderr.contains(&format!("#{n} [{n}/7] ")),
            "step {n}:\n{plain}"
        );
    }
    assert_nothing_left(&s);
}

#[test]
fn a_failing_stage_fails_the_build_with_dockers_message_and_leaves_nothing() {
    require!(need_builder());
    let s = with_busybox();
    // The second stage fails at once while the first still runs: the first is shown in
    // full, then the failing one, and nothing after it.
    let dockerfile = "FROM busybox AS a
RUN echo start-a; sleep 1; echo a > /a
FROM busybox AS b
RUN echo failing; exit 3
FROM busybox
COPY --from=a /a /a
COPY --from=b /b /b
";
    s.write("ctx/Dockerfile", dockerfile.as_bytes());
    let out = s.run(["build", "ctx"]).assert_fail();
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr
            .contains("The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3"),
        "{out}"
    );
    let expected: Vec<String> = sequential_steps(dockerfile).into_iter().take(4).collect();
    assert_eq!(step_lines(&out), expected, "{out}");
    assert!(step_body(&out, 2).contains(&"start-a"), "{out}");
    assert!(step_body(&out, 4).contains(&"failing"), "{out}");
    assert_nothing_left(&s);

    // The first stage's work was kept: fixed, the build reuses it.
    s.write(
        "ctx/Dockerfile",
        dockerfile.replace("exit 3", "echo b > /b").as_bytes(),
    );
    let fixed = s.ok(["build", "-t", "fixed", "ctx"]);
    assert_eq!(cached_steps(&fixed), [2], "{fixed}");
    let mp = s.mount("fixed");
    assert_eq!(fs::read_to_string(mp.join("b")).expect("/b"), "b\n");
    s.ok(["image", "unmount", "fixed"]);
    assert_nothing_left(&s);

    // When the earlier stage fails too (later than the other), its error is the build's,
    // as in a sequential build.
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox AS a\nRUN sleep 1; exit 4\nFROM busybox AS b\nRUN exit 5\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    );
    let both = s.run(["build", "ctx"]).assert_fail();
    assert!(
        both.stderr
            .contains("The command '/bin/sh -c sleep 1; exit 4' returned a non-zero code: 4"),
        "{both}"
    );
    assert!(!both.stdout.contains("Step 3/7"), "{both}");
    assert_nothing_left(&s);
}

#[test]
fn an_onbuild_copy_from_waits_for_the_earlier_stage_it_names() {
    require!(need_builder());
    let s = with_busybox();
    s.write(
        "trig/Dockerfile",
        b"FROM busybox\nONBUILD COPY --from=a /a /from-a\n",
    );
    s.ok(["build", "-q", "-t", "trig", "trig"]);
    // Stage b starts beside a (its base is an image), and its trigger needs a's result.
    s.write(
        "ctx/Dockerfile",
        b"FROM busybox AS a\nRUN sleep 1; echo a > /a\nFROM trig AS b\nRUN cat /from-a\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /from-a /b\n",
    );
    let out = s.ok(["build", "-t", "ob", "ctx"]);
    assert!(
        step_body(&out, 3).contains(&"# Executing 1 build trigger"),
        "{out}"
    );
    assert!(step_body(&out, 4).contains(&"a"), "{out}");
    let mp = s.mount("ob");
    assert_eq!(fs::read_to_string(mp.join("b")).expect("/b"), "a\n");
    s.ok(["image", "unmount", "ob"]);
    assert_nothing_left(&s);
}
