//! End-to-end tests of containers: `run` (attached and detached), the lifecycle commands,
//! the monitor (restart policy, a monitor killed with -9), and `rmi` refusing images in use.
//! Each test removes every container it made (`rm -f`) even when it fails.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::harness::{need_root, require, Out, Skiff};

/// Root and an OCI runtime (runc or crun) installed, found where skiff looks for one.
pub fn need_containers() -> Result<(), String> {
    need_root()?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = ["runc", "crun"]
        .iter()
        .any(|name| skiff_runtime::runtime::select::find_program(name, &path).is_some());
    if found {
        Ok(())
    } else {
        Err("needs an OCI runtime (Debian package: runc or crun)".into())
    }
}

/// A skiff with the busybox base imported as `busybox`, and a guard that force-removes
/// every container when the test ends, passing or failing.
pub struct Env {
    pub s: Skiff,
}

impl Env {
    pub fn new() -> Env {
        let s = Skiff::new();
        s.import_busybox("busybox");
        Env { s }
    }

    pub fn run(&self, args: &[&str]) -> Out {
        self.s.run(args)
    }

    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> Out {
        self.s.ok(args)
    }

    /// `inspect -f TEMPLATE NAME`, trimmed.
    #[track_caller]
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
            .stdout
            .trim()
            .to_owned()
    }

    /// Polls `inspect` until `template` gives `want` (or 20 s pass); returns the last value.
    pub fn wait_for(&self, name: &str, template: &str, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.inspect(name, template);
            if got == want || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let ids = self.s.run(["ps", "-aq", "--no-trunc"]);
        let ids: Vec<&str> = ids.stdout.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f"];
            args.extend(ids);
            let out = self.s.run(&args);
            if !out.success() {
                eprintln!("cleanup failed:\n{out}");
            }
        }
    }
}

#[test]
fn run_prints_the_output_and_exits_with_the_container_code() {
    require!(need_containers());
    let e = Env::new();
    let out = e.run(&["run", "busybox", "echo", "hello", "world"]);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout, "hello world\n");
    let out = e.run(&[
        "run",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.code, 3, "{out}");
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
fn commands_that_cannot_run_exit_127_and_126_like_docker() {
    require!(need_containers());
    let e = Env::new();
    let out = e.run(&["run", "busybox", "no-such-command"]);
    assert_eq!(out.code, 127, "{out}");
    assert!(
        out.stderr
            .contains("exec: \"no-such-command\": executable file not found in $PATH"),
        "{out}"
    );
    let out = e.run(&["run", "busybox", "/etc/passwd"]);
    assert_eq!(out.code, 126, "{out}");
    let out = e.run(&["run", "nosuchimage", "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr
            .contains("Unable to find image 'nosuchimage:latest' locally"),
        "{out}"
    );
    // The failed containers exist, never started, as in docker.
    let out = e.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert_eq!(out.lines(), ["Created", "Created"], "{out}");
}

#[test]
fn detached_container_lists_logs_stops_and_is_removed() {
    require!(need_containers());
    let e = Env::new();
    let out = e.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got TERM; exit 0' TERM; echo started; while true; do sleep 0.1; done",
    ]);
    let id = out.stdout.trim().to_owned();
    assert_eq!(id.len(), 64, "{out}");
    assert_eq!(
        e.wait_for("ticker", "{{.State.Status}}", "running"),
        "running"
    );
    let ps = e.ok(&["ps"]);
    let lines = ps.lines();
    assert!(
        lines[0].starts_with("CONTAINER ID   IMAGE     COMMAND"),
        "{ps}"
    );
    assert!(lines[1].starts_with(&id[..12]), "{ps}");
    assert!(lines[1].contains("Up "), "{ps}");
    assert!(lines[1].ends_with("ticker"), "{ps}");
    // The output goes to the json-file log as it comes.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !e.ok(&["logs", "ticker"]).stdout.contains("started") {
        assert!(Instant::now() < deadline, "no log line");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid: i32 = e.inspect("ticker", "{{.State.Pid}}").parse().unwrap();
    assert!(Path::new(&format!("/proc/{pid}")).exists());

    let started = Instant::now();
    assert_eq!(e.ok(&["stop", "ticker"]).stdout, "ticker\n");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "SIGTERM was not used"
    );
    assert_eq!(
        e.inspect("ticker", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 0"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || pid_is_not(pid, "sh"));
    let logs = e.ok(&["logs", "ticker"]);
    assert_eq!(logs.stdout, "started\ngot TERM\n", "{logs}");
    let ps = e.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.stdout.starts_with("ticker Exited (0) "), "{ps}");
    assert!(e.ok(&["ps", "-q"]).stdout.is_empty());

    // Started again, it logs again.
    e.ok(&["start", "ticker"]);
    assert_eq!(
        e.wait_for("ticker", "{{.State.Status}}", "running"),
        "running"
    );
    let out = e.run(&["rm", "ticker"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(
        out.stderr.contains("You cannot remove a running container"),
        "{out}"
    );
    e.ok(&["rm", "-f", "ticker"]);
    assert!(e.ok(&["ps", "-aq"]).stdout.is_empty());
    let out = e.run(&["logs", "ticker"]);
    assert!(out.stderr.contains("No such container: ticker"), "{out}");
    // Nothing of it is left mounted or on disk.
    assert!(!e.s.root().join("containers").join(&id).exists());
}

fn pid_is_not(pid: i32, comm: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map_or(true, |c| c.trim() != comm)
}

#[test]
fn stop_kills_a_process_that_ignores_sigterm_after_the_timeout() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "stubborn",
        "busybox",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    assert_eq!(
        e.wait_for("stubborn", "{{.State.Status}}", "running"),
        "running"
    );
    let started = Instant::now();
    e.ok(&["stop", "-t", "1", "stubborn"]);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(e.inspect("stubborn", "{{.State.ExitCode}}"), "137");
}

#[test]
fn rm_flag_removes_the_container_when_it_ends() {
    require!(need_containers());
    let e = Env::new();
    let out = e.ok(&["run", "--rm", "busybox", "echo", "bye"]);
    assert_eq!(out.stdout, "bye\n");
    assert!(e.ok(&["ps", "-aq"]).stdout.is_empty());
    let out = e.run(&["run", "--rm", "busybox", "sh", "-c", "exit 4"]);
    assert_eq!(out.code, 4, "{out}");
    assert!(e.ok(&["ps", "-aq"]).stdout.is_empty());
    // Detached: the monitor removes it.
    e.ok(&["run", "-d", "--rm", "busybox", "true"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !e.ok(&["ps", "-aq"]).stdout.is_empty() {
        assert!(Instant::now() < deadline, "the --rm container stayed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn env_workdir_user_and_hostname_take_effect() {
    require!(need_containers());
    let e = Env::new();
    let env_file =
        e.s.write("env.list", b"# comment\nFROM_FILE=1\n\nOTHER=two words\n");
    let out = e.ok(&[
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/tmp/work",
        "-u",
        "nobody",
        "-h",
        "myhost",
        "busybox",
        "sh",
        "-c",
        "id; pwd; hostname; cat /etc/hostname; env | sort",
    ]);
    let lines = out.lines();
    assert_eq!(lines[0], "uid=65534(nobody) gid=65534(nobody)", "{out}");
    assert_eq!(lines[1], "/tmp/work", "{out}");
    assert_eq!(lines[2], "myhost", "{out}");
    assert_eq!(lines[3], "myhost", "{out}");
    for want in [
        "FOO=bar",
        "FROM_FILE=1",
        "OTHER=two words",
        "HOSTNAME=myhost",
        "HOME=/home",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    ] {
        assert!(lines.contains(&want), "{want} missing:\n{out}");
    }
    // Numeric user and group need not exist; root's defaults otherwise.
    let out = e.ok(&["run", "--rm", "-u", "1234:5678", "busybox", "id"]);
    assert_eq!(out.stdout, "uid=1234 gid=5678\n", "{out}");
    let out = e.ok(&["run", "--rm", "busybox", "sh", "-c", "echo $HOME; hostname"]);
    let lines = out.lines();
    assert_eq!(lines[0], "/root", "{out}");
    assert_eq!(lines[1].len(), 12, "the hostname is the short id: {out}");
    let out = e.run(&["run", "--rm", "-u", "nosuchuser", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr.contains("unable to find user nosuchuser"),
        "{out}"
    );
}

#[test]
fn stdin_is_forwarded_with_interactive() {
    require!(need_containers());
    let e = Env::new();
    let input = e.s.write("input.txt", b"line one\nline two\n");
    let out =
        e.s.run_stdin_file(["run", "--rm", "-i", "busybox", "wc", "-l"], &input);
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stdout.trim(), "2", "{out}");
}

#[test]
fn restart_policy_on_failure_restarts_the_given_number_of_times() {
    require!(need_containers());
    let e = Env::new();
    e.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo run; exit 1",
    ]);
    let got = e.wait_for(
        "flaky",
        "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}",
        "exited 2 1",
    );
    assert_eq!(got, "exited 2 1");
    assert_eq!(e.ok(&["logs", "flaky"]).stdout, "run\nrun\nrun\n");
    assert_eq!(
        e.inspect(
            "flaky",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:2"
    );
    // A successful exit is not restarted.
    e.ok(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]);
    assert_eq!(e.wait_for("fine", "{{.State.Status}}", "exited"), "exited");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(e.inspect("fine", "{{.RestartCount}}"), "0");
}

#[test]
fn a_killed_monitor_is_noticed_and_the_container_reported_exited() {
    require!(need_containers());
    let e = Env::new();
    let id = e
        .ok(&["run", "-d", "busybox", "sleep", "300"])
        .stdout
        .trim()
        .to_owned();
    assert_eq!(e.wait_for(&id, "{{.State.Status}}", "running"), "running");
    let pid: i32 = e.inspect(&id, "{{.State.Pid}}").parse().unwrap();
    let state: serde_json::Value = serde_json::from_slice(
        &std::fs::read(e.s.root().join("containers").join(&id).join("state.json")).unwrap(),
    )
    .unwrap();
    let monitor = state["MonitorPid"].as_i64().unwrap() as i32;
    assert!(monitor > 0);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(monitor).unwrap(),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&format!("/proc/{monitor}/stat")).exists()
        && !std::fs::read_to_string(format!("/proc/{monitor}/stat"))
            .unwrap_or_default()
            .contains(") Z")
    {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    let ps = e.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.stdout.starts_with("Exited (255) "), "{ps}");
    // What the monitor supervised does not run on unsupervised.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pid_is_not(pid, "sleep") {
        assert!(
            Instant::now() < deadline,
            "the container's process survived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rmi_refuses_an_image_a_container_uses() {
    require!(need_containers());
    let e = Env::new();
    let image = e
        .ok(&["inspect", "-f", "{{.Id}}", "busybox"])
        .stdout
        .trim()
        .to_owned();
    let id = e
        .ok(&["create", "busybox", "true"])
        .stdout
        .trim()
        .to_owned();
    let out = e.run(&["rmi", "busybox"]);
    assert_eq!(out.code, 1, "{out}");
    assert_eq!(
        out.stderr.trim(),
        format!(
            "Error response from daemon: conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {}",
            &id[..12],
            &image[7..19]
        )
    );
    let out = e.run(&["rmi", &image]);
    assert!(
        out.stderr.contains(&format!(
            "unable to delete {} (must be forced) - image is being used by stopped container {}",
            &image[7..19],
            &id[..12]
        )),
        "{out}"
    );
    e.ok(&["rm", &id]);
    e.ok(&["rmi", "busybox"]);
}

#[test]
fn names_are_unique_and_resolve_like_ids() {
    require!(need_containers());
    let e = Env::new();
    let id = e
        .ok(&["create", "--name", "one", "busybox", "true"])
        .stdout
        .trim()
        .to_owned();
    let out = e.run(&["create", "--name", "one", "busybox", "true"]);
    assert_eq!(out.code, 125, "{out}");
    assert!(
        out.stderr.contains(&format!(
            "Conflict. The container name \"/one\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
        )),
        "{out}"
    );
    assert_eq!(e.inspect("one", "{{.Name}} {{.Id}}"), format!("/one {id}"));
    assert_eq!(e.inspect(&id[..6], "{{.Name}}"), "/one");
    assert_eq!(
        e.inspect("one", "{{.State.Status}} {{.HostConfig.NetworkMode}}"),
        "created none"
    );
    let out = e.run(&["inspect", "nothing-here"]);
    assert!(
        out.stderr.contains("Error: No such object: nothing-here"),
        "{out}"
    );
    // Unnamed containers get docker's adjective_surname names.
    e.ok(&["create", "busybox", "true"]);
    let names = e.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    let generated = names.lines()[0].to_owned();
    assert!(generated.contains('_') && generated != "one", "{names}");
}

#[test]
fn wait_and_kill_report_exit_codes() {
    require!(need_containers());
    let e = Env::new();
    // A signal the container's init handles (pid 1 ignores those it has no handler for).
    e.ok(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; while true; do sleep 0.1; done",
    ]);
    assert_eq!(
        e.wait_for("sleeper", "{{.State.Status}}", "running"),
        "running"
    );
    e.ok(&["kill", "-s", "USR1", "sleeper"]);
    assert_eq!(e.ok(&["wait", "sleeper"]).stdout, "7\n");
    e.ok(&["start", "sleeper"]);
    assert_eq!(
        e.wait_for("sleeper", "{{.State.Status}}", "running"),
        "running"
    );
    e.ok(&["kill", "sleeper"]);
    assert_eq!(e.ok(&["wait", "sleeper"]).stdout, "137\n");
    let out = e.run(&["kill", "sleeper"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("is not running"), "{out}");
    e.ok(&[
        "run",
        "-d",
        "--name",
        "three",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2; exit 3",
    ]);
    assert_eq!(e.ok(&["wait", "three"]).stdout, "3\n");
}
