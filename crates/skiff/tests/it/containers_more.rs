//! End-to-end tests of the commands around running containers: exec, attach, pause,
//! rename, top, prune, healthchecks, terminals.

use std::time::{Duration, Instant};

use crate::containers::{need_containers, Env};
use crate::harness::require;

#[test]
fn exec_runs_in_the_container_with_its_options() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run", "-d", "--name", "box", "-h", "boxhost", "busybox", "sleep", "300",
    ]);
    assert_eq!(e.wait_for("box", "{{.State.Status}}", "running"), "running");
    let out = e.run(&[
        "exec",
        "box",
        "sh",
        "-c",
        "hostname; echo $HOSTNAME; exit 4",
    ]);
    assert_eq!(out.code, 4, "{out}");
    assert_eq!(out.stdout, "boxhost\nboxhost\n");
    let out = e.ok(&[
        "exec",
        "-u",
        "nobody",
        "-w",
        "/tmp",
        "-e",
        "X=1",
        "box",
        "sh",
        "-c",
        "id -u; pwd; echo $X",
    ]);
    assert_eq!(out.stdout, "65534\n/tmp\n1\n");
    let input = e.s.write("in.txt", b"a\nb\nc\n");
    let out =
        e.s.run_stdin_file(["exec", "-i", "box", "wc", "-l"], &input);
    assert_eq!(out.stdout.trim(), "3", "{out}");
    let out = e.run(&["exec", "box", "no-such-command"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(out.stderr.contains("executable file not found"), "{out}");
    // Detached: returns at once, the process runs on.
    e.ok(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "sleep 0.2; touch /tmp/done",
    ]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !e.run(&["exec", "box", "test", "-f", "/tmp/done"]).success() {
        assert!(Instant::now() < deadline, "detached exec did not run");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The exec'd process is in the container's pid namespace.
    let out = e.ok(&["exec", "box", "sh", "-c", "echo $$"]);
    assert!(out.stdout.trim().parse::<i32>().unwrap() > 1, "{out}");
}

#[test]
fn pause_freezes_and_exec_is_refused_until_unpause() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "pz", "busybox", "sleep", "300"]);
    assert_eq!(e.wait_for("pz", "{{.State.Status}}", "running"), "running");
    assert_eq!(e.ok(&["pause", "pz"]).stdout, "pz\n");
    assert_eq!(
        e.inspect(
            "pz",
            "{{.State.Status}} {{.State.Paused}} {{.State.Running}}"
        ),
        "paused true true"
    );
    let ps = e.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.stdout.trim().ends_with("(Paused)"), "{ps}");
    let out = e.run(&["exec", "pz", "true"]);
    assert!(
        out.stderr
            .contains("is paused, unpause the container before exec"),
        "{out}"
    );
    let out = e.run(&["pause", "pz"]);
    assert!(out.stderr.contains("is already paused"), "{out}");
    e.ok(&["unpause", "pz"]);
    assert_eq!(e.inspect("pz", "{{.State.Status}}"), "running");
    e.ok(&["exec", "pz", "true"]);
}

#[test]
fn rename_top_port_and_prune() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&["run", "-d", "--name", "old", "busybox", "sleep", "300"]);
    assert_eq!(e.wait_for("old", "{{.State.Status}}", "running"), "running");
    e.ok(&["rename", "old", "new"]);
    assert_eq!(e.inspect("new", "{{.Name}}"), "/new");
    assert!(e
        .run(&["inspect", "old"])
        .stderr
        .contains("No such object: old"));
    let top = e.ok(&["top", "new"]);
    let lines = top.lines();
    assert!(lines[0].starts_with("UID"), "{top}");
    assert!(lines.iter().any(|l| l.ends_with("sleep 300")), "{top}");
    assert_eq!(lines.len(), 2, "only the container's process: {top}");
    assert_eq!(e.ok(&["port", "new"]).stdout, "");
    e.ok(&["create", "--name", "stopped", "busybox", "true"]);
    e.ok(&["run", "--name", "done", "busybox", "true"]);
    let out = e.ok(&["container", "prune", "-f"]);
    assert!(out.stdout.starts_with("Deleted Containers:\n"), "{out}");
    assert!(out.stdout.contains("Total reclaimed space:"), "{out}");
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(
        names.stdout, "new\n",
        "only the running one is left: {names}"
    );
}

#[test]
fn healthcheck_turns_unhealthy_then_healthy() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "test -f /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(e.inspect("hc", "{{.State.Health.Status}}"), "starting");
    assert_eq!(
        e.wait_for("hc", "{{.State.Health.Status}}", "unhealthy"),
        "unhealthy"
    );
    let ps = e.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(ps.stdout.trim().ends_with("(unhealthy)"), "{ps}");
    e.ok(&["exec", "hc", "touch", "/tmp/ok"]);
    assert_eq!(
        e.wait_for("hc", "{{.State.Health.Status}}", "healthy"),
        "healthy"
    );
    assert_eq!(e.inspect("hc", "{{.State.Health.FailingStreak}}"), "0");
    let n: usize = e
        .inspect("hc", "{{len .State.Health.Log}}")
        .parse()
        .unwrap();
    assert!((1..=5).contains(&n));
    let out = e.ok(&["create", "--no-healthcheck", "busybox", "true"]);
    let id = out.stdout.trim();
    assert_eq!(
        e.inspect(id, "{{json .Config.Healthcheck.Test}}"),
        "[\"NONE\"]"
    );
}

#[test]
fn a_terminal_is_a_real_pty() {
    require!(need_containers());
    let e = Env::new();
    let out = e.ok(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; echo $TERM",
    ]);
    assert_eq!(out.stdout, "/dev/pts/0\r\nxterm\r\n", "{out}");
    // -i -t needs a terminal on our side.
    let out = e.run(&["run", "--rm", "-it", "busybox", "true"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("the input device is not a TTY"),
        "{out}"
    );
}

#[test]
fn logs_filter_by_tail_and_time_and_follow_to_the_end() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "--name",
        "lg",
        "busybox",
        "sh",
        "-c",
        "echo 1; echo 2 >&2; sleep 0.2; echo 3",
    ]);
    let out = e.ok(&["logs", "lg"]);
    assert_eq!(out.stdout, "1\n3\n");
    assert_eq!(out.stderr, "2\n");
    assert_eq!(e.ok(&["logs", "--tail", "1", "lg"]).stdout, "3\n");
    assert_eq!(e.ok(&["logs", "--since", "1h", "lg"]).stdout, "1\n3\n");
    assert_eq!(e.ok(&["logs", "--until", "1h", "lg"]).stdout, "");
    let ts = e.ok(&["logs", "-t", "lg"]);
    let first = ts.lines()[0].to_owned();
    let (stamp, text) = first.split_once(' ').unwrap();
    assert_eq!(text, "1");
    assert!(stamp.ends_with('Z') && stamp.len() == 30, "{stamp}");
    // -f returns once the container has stopped and everything is printed.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "fw",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo $i; sleep 0.1; done",
    ]);
    assert_eq!(e.ok(&["logs", "-f", "fw"]).stdout, "1\n2\n3\n");
    // The json-file log is docker's format.
    let id = e.inspect("lg", "{{.Id}}");
    let path = e.inspect("lg", "{{.LogPath}}");
    assert!(path.ends_with(&format!("{id}-json.log")));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(v["log"], "1\n");
    assert_eq!(v["stream"], "stdout");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn init_runs_as_pid_one_and_resources_reach_the_cgroup() {
    require!(need_containers());
    let e = Env::new();
    let out = e.run(&[
        "run",
        "--rm",
        "--init",
        "busybox",
        "sh",
        "-c",
        "cat /proc/1/cmdline | tr '\\0' ' '",
    ]);
    if out.stderr.contains("no docker-init or tini-static") {
        crate::harness::report_note(
            "--init not checked: no tini-static here (Debian package tini)",
        );
    } else {
        assert_eq!(
            out.stdout.trim(),
            "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '",
            "{out}"
        );
    }
    // Limits land where the kernel enforces them.
    let out = e.ok(&[
        "run", "--rm", "-m", "64m", "--pids-limit", "20", "--cpu-shares", "512", "busybox", "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; true",
    ]);
    assert!(out.stdout.contains("67108864"), "{out}");
    assert!(out.stdout.contains("20"), "{out}");
    // A read-only rootfs refuses writes; --tmpfs-free /tmp too.
    let out = e.run(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Read-only file system"), "{out}");
    // Capabilities: dropping CHOWN makes chown fail.
    let out = e.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "CHOWN",
        "busybox",
        "chown",
        "nobody",
        "/tmp",
    ]);
    assert_ne!(out.code, 0, "{out}");
    e.ok(&["run", "--rm", "busybox", "chown", "nobody", "/tmp"]);
    // --network host shares the host's interfaces; the default has only lo.
    let out = e.ok(&["run", "--rm", "busybox", "ls", "/sys/class/net"]);
    assert_eq!(out.stdout, "lo\n");
    assert_eq!(
        e.ok(&["run", "--rm", "--network", "host", "busybox", "hostname"])
            .stdout
            .trim(),
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .unwrap()
            .trim()
    );
}

#[test]
fn signals_to_an_attached_run_reach_the_container() {
    require!(need_containers());
    let e = Env::new();
    let mut child =
        e.s.command([
            "run",
            "--name",
            "proxied",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got INT; exit 9' INT; while true; do sleep 0.1; done",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while e
        .run(&["inspect", "-f", "{{.State.Status}}", "proxied"])
        .stdout
        .trim()
        != "running"
    {
        assert!(Instant::now() < deadline, "the container did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The shell installs its trap right after it starts.
    std::thread::sleep(Duration::from_millis(300));
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(child.id() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let (code, stdout, stderr) = crate::harness::wait_with_timeout(
        &mut child,
        Duration::from_secs(20),
        "skiff run (attached)",
    );
    assert_eq!(code, 9, "{}", String::from_utf8_lossy(&stderr));
    assert_eq!(String::from_utf8_lossy(&stdout), "got INT\n");
}

#[test]
fn the_memory_limit_triggers_the_oom_killer_and_inspect_says_so() {
    require!(need_containers());
    let e = Env::new();
    let out = e.run(&[
        "run",
        "--name",
        "oomy",
        "-m",
        "8m",
        "--memory-swap",
        "8m",
        "busybox",
        "sh",
        "-c",
        "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    assert_eq!(out.code, 137, "{out}");
    assert!(!out.stdout.contains("survived"), "{out}");
    assert_eq!(
        e.inspect("oomy", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    assert_eq!(e.inspect("oomy", "{{.HostConfig.Memory}}"), "8388608");
}

#[test]
fn stats_no_stream_reads_the_cgroup() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while true; do :; done",
    ]);
    assert_eq!(
        e.wait_for("busy", "{{.State.Status}}", "running"),
        "running"
    );
    let out = e.ok(&["stats", "--no-stream"]);
    let lines = out.lines();
    assert!(
        lines[0].starts_with("CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT"),
        "{out}"
    );
    assert!(lines[1].contains(" busy "), "{out}");
    assert!(lines[1].contains("/ 64MiB"), "{out}");
    let cpu: f64 = e
        .ok(&["stats", "--no-stream", "--format", "{{.CPUPerc}}", "busy"])
        .stdout
        .trim()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 20.0, "a busy loop uses CPU: {cpu}");
}

#[test]
fn security_options_and_ulimits_take_effect() {
    require!(need_containers());
    let e = Env::new();
    let grep = |args: &[&str], field: &str| -> String {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        all.extend(["busybox", "grep", field, "/proc/self/status"]);
        let out = e.ok(&all);
        out.stdout
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(grep(&[], "Seccomp:"), "2");
    assert_eq!(
        grep(&["--security-opt", "seccomp=unconfined"], "Seccomp:"),
        "0"
    );
    assert_eq!(grep(&[], "NoNewPrivs:"), "0");
    assert_eq!(
        grep(&["--security-opt", "no-new-privileges"], "NoNewPrivs:"),
        "1"
    );
    let out = e.ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(out.stdout, "100\n200\n");
    // A profile from a file is read by the client and kept in HostConfig.SecurityOpt.
    let profile = e.s.write(
        "profile.json",
        br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#,
    );
    let opt = format!("seccomp={}", profile.display());
    let out = e.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]);
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("Operation not permitted"), "{out}");
}

/// `update` as dockerd 20.10 answers it: limits reach a running container's cgroup at once
/// and the bundle for the next start; the restart policy reaches the running monitor; docker's
/// refusals word for word.
#[test]
fn update_changes_limits_of_a_running_container_and_its_restart_policy() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run", "-d", "--name", "upd", "-m", "64m", "busybox", "sleep", "300",
    ]);
    assert_eq!(e.wait_for("upd", "{{.State.Status}}", "running"), "running");
    let out = e.ok(&[
        "update",
        "-m",
        "128m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "upd",
    ]);
    assert_eq!(out.stdout, "upd\n");
    let cgroup = |file: &str| {
        e.ok(&["exec", "upd", "cat", &format!("/sys/fs/cgroup/{file}")])
            .stdout
            .trim()
            .to_owned()
    };
    assert_eq!(cgroup("memory/memory.limit_in_bytes"), "134217728");
    assert_eq!(cgroup("pids/pids.max"), "50");
    assert_eq!(cgroup("cpu/cpu.cfs_quota_us"), "50000");
    assert_eq!(
        e.inspect(
            "upd",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}"
        ),
        "134217728 50 500000000"
    );
    // The limits survive a restart (a new cgroup from the bundle).
    e.ok(&["restart", "-t", "0", "upd"]);
    assert_eq!(e.wait_for("upd", "{{.State.Status}}", "running"), "running");
    assert_eq!(cgroup("memory/memory.limit_in_bytes"), "134217728");

    // docker's refusals.
    let out = e.run(&["update", "upd"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr.trim(),
        "you must provide one or more flags when using this command"
    );
    e.ok(&["update", "--memory-swap", "200m", "upd"]);
    let out = e.run(&["update", "-m", "300m", "upd", "nosuch"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"), "{out}");
    assert!(out.stderr.contains("No such container: nosuch"), "{out}");
    e.ok(&[
        "run", "-d", "--rm", "--name", "auto", "busybox", "sleep", "300",
    ]);
    let out = e.run(&["update", "--restart", "always", "auto"]);
    assert!(
        out.stderr.contains(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        ),
        "{out}"
    );

    // A new restart policy reaches the monitor of the running container.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "rst",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 3",
    ]);
    e.ok(&["update", "--restart", "on-failure:1", "rst"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.inspect("rst", "{{.RestartCount}}") != "1" {
        assert!(Instant::now() < deadline, "r was not restarted");
        std::thread::sleep(Duration::from_millis(100));
    }
    e.ok(&["rm", "-f", "upd", "auto", "rst"]);
}
