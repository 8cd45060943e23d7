//! The runtime conformance suite: the same named checks against every OCI runtime backend
//! (runc and crun through [`OciCli`]), with real containers on a busybox rootfs. Each check
//! needs root; a runtime that is missing or refuses this host is skipped with the reason.

use std::time::{Duration, Instant};

use oci_spec::runtime::PosixRlimitType;
use skiff_runtime::spec::{NamespaceMode, Resources, Rlimit};
use skiff_runtime::sys::Exit;
use skiff_runtime::{
    bundle, spec, Error, ErrorKind, ExecFailure, HostInfo, Io, ProcessIo, ProcessSpec, Runtime,
    Status, Stdio,
};

use crate::support::{pipe, read_all, Harness};

macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod runc {
            $(
                #[test]
                fn $case() {
                    super::run("runc", stringify!($case), super::$case);
                }
            )*
        }
        mod crun {
            $(
                #[test]
                fn $case() {
                    super::run("crun", stringify!($case), super::$case);
                }
            )*
        }
    };
}

suite!(
    echo_prints_through_a_pipe_and_exits_zero,
    exit_code_of_the_command_is_reported,
    lifecycle_goes_created_running_stopped,
    kill_ends_a_sleeping_container,
    pause_and_resume_freeze_and_thaw,
    exec_runs_a_second_process,
    loopback_is_up_in_a_private_network_namespace,
    host_namespaces_are_shared,
    rlimits_never_exceed_the_host_hard_limit,
    limits_land_in_the_container_cgroup,
    readonly_rootfs_refuses_writes,
    default_capabilities_are_dockers,
    errors_come_back_typed,
);

fn run(runtime: &str, case: &str, f: fn(&Harness)) {
    let test = format!("{runtime}::{case}");
    if let Some(h) = Harness::new(runtime, &test) {
        f(&h);
    }
}

fn echo_prints_through_a_pipe_and_exits_zero(h: &Harness) {
    let mut times = Vec::new();
    for _ in 0..5 {
        let spec = h.spec(&["echo", "hello"]);
        let start = Instant::now();
        let (exit, out) = h.run(&spec);
        times.push(start.elapsed());
        assert_eq!(exit, Exit::Code(0));
        assert_eq!(out, "hello\n");
    }
    times.sort();
    eprintln!(
        "{}: create+start+wait+delete of `echo hello`: min {:?}, median {:?}, max {:?}",
        h.name, times[0], times[2], times[4]
    );
}

fn exit_code_of_the_command_is_reported(h: &Harness) {
    let (exit, _) = h.run(&h.spec(&["sh", "-c", "exit 3"]));
    assert_eq!(exit, Exit::Code(3));
    assert_eq!(exit.code(), 3);
}

fn lifecycle_goes_created_running_stopped(h: &Harness) {
    let spec = h.spec(&["sleep", "100"]);
    let pid = h.create(&spec, ProcessIo::default()).unwrap();
    let created = h.runtime.state(&spec.id).unwrap();
    assert_eq!(created.status, Status::Created);
    assert_eq!(created.pid, Some(pid));
    assert_eq!(created.id, spec.id);

    h.runtime.start(&spec.id).unwrap();
    assert_eq!(
        h.wait_status(&spec.id, Status::Running).status,
        Status::Running
    );

    h.runtime.kill(&spec.id, 9, false).unwrap();
    assert_eq!(h.wait(pid), Exit::Signal(9));
    let stopped = h.wait_status(&spec.id, Status::Stopped);
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(stopped.pid, None);

    h.runtime.delete(&spec.id, false).unwrap();
    let e = h.runtime.state(&spec.id).unwrap_err();
    assert!(matches!(e, Error::ContainerNotFound { .. }), "{e:?}");
}

fn kill_ends_a_sleeping_container(h: &Harness) {
    let spec = h.spec(&["sleep", "100"]);
    let pid = h.create(&spec, ProcessIo::default()).unwrap();
    h.runtime.start(&spec.id).unwrap();
    let start = Instant::now();
    h.runtime.kill(&spec.id, 9, true).unwrap();
    assert_eq!(h.wait(pid), Exit::Signal(9));
    assert!(start.elapsed() < Duration::from_secs(5));
    h.runtime.delete(&spec.id, false).unwrap();
}

fn pause_and_resume_freeze_and_thaw(h: &Harness) {
    let spec = h.spec(&["sleep", "100"]);
    let pid = h.create(&spec, ProcessIo::default()).unwrap();
    h.runtime.start(&spec.id).unwrap();
    h.runtime.pause(&spec.id).unwrap();
    assert_eq!(h.runtime.state(&spec.id).unwrap().status, Status::Paused);
    // Pausing twice: runc refuses (a state conflict, never an internal error), crun accepts.
    if let Err(e) = h.runtime.pause(&spec.id) {
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
    }
    assert_eq!(h.runtime.state(&spec.id).unwrap().status, Status::Paused);
    h.runtime.resume(&spec.id).unwrap();
    assert_eq!(h.runtime.state(&spec.id).unwrap().status, Status::Running);
    if let Err(e) = h.runtime.resume(&spec.id) {
        assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
    }
    assert_eq!(h.runtime.state(&spec.id).unwrap().status, Status::Running);
    h.runtime.delete(&spec.id, true).unwrap();
    assert_eq!(h.wait(pid), Exit::Signal(9));
}

fn exec_runs_a_second_process(h: &Harness) {
    let spec = h.spec(&["sleep", "100"]);
    let (dir, _) = h.bundle(&spec);
    let init = h.create(&spec, ProcessIo::default()).unwrap();
    h.runtime.start(&spec.id).unwrap();

    let config = bundle::read_config(&dir).unwrap();
    let mut process = ProcessSpec::new(vec![
        "sh".into(),
        "-c".into(),
        "echo from-exec $$; exit 5".into(),
    ]);
    process.env = vec!["PATH=/bin:/usr/bin".into()];
    let (process, _) = spec::exec_process(&config, &process, false, &h.host).unwrap();
    let process_json = dir.join("exec-1.json");
    bundle::write_process(&process_json, &process).unwrap();

    let (read, write) = pipe();
    let io = ProcessIo {
        stdio: Stdio {
            stdin: Io::Null,
            stdout: Io::Fd(write),
            stderr: Io::Inherit,
        },
        ..ProcessIo::default()
    };
    let pid = h.runtime.exec(&spec.id, &process_json, io).unwrap();
    h.track_pid(pid);
    let out = read_all(read);
    assert_eq!(h.wait(pid), Exit::Code(5));
    // Inside the container's pid namespace the exec'd shell is not pid 1.
    let inner_pid: i32 = out
        .trim()
        .strip_prefix("from-exec ")
        .unwrap_or_else(|| panic!("unexpected output {out:?}"))
        .parse()
        .unwrap();
    assert!(inner_pid > 1, "{out:?}");

    // A command that does not exist fails the exec with docker's message.
    let (missing, _) = spec::exec_process(
        &config,
        &ProcessSpec::new(vec!["no-such-command".into()]),
        false,
        &h.host,
    )
    .unwrap();
    let missing_json = dir.join("exec-2.json");
    bundle::write_process(&missing_json, &missing).unwrap();
    let e = h
        .runtime
        .exec(&spec.id, &missing_json, ProcessIo::default())
        .unwrap_err();
    assert_eq!(e.exec_failure(), Some(ExecFailure::NotFound), "{e:?}");
    assert!(e.to_string().contains("no-such-command"), "{e}");

    h.runtime.delete(&spec.id, true).unwrap();
    assert_eq!(h.wait(init), Exit::Signal(9));
}

fn loopback_is_up_in_a_private_network_namespace(h: &Harness) {
    let (exit, out) = h.run(&h.spec(&[
        "sh",
        "-c",
        "ls /sys/class/net; cat /sys/class/net/lo/operstate; ip -o addr show lo",
    ]));
    assert_eq!(exit, Exit::Code(0), "{out}");
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("lo"), "only lo exists: {out}");
    // A loopback that is up reports "unknown" (it has no carrier); a down one "down".
    assert_eq!(lines.next(), Some("unknown"), "{out}");
    assert!(out.contains("127.0.0.1"), "{out}");
}

fn host_namespaces_are_shared(h: &Harness) {
    let mut spec = h.spec(&["sh", "-c", "hostname; ls /sys/class/net"]);
    spec.namespaces.network = NamespaceMode::Host;
    spec.namespaces.uts = NamespaceMode::Host;
    spec.hostname = Some("ignored".into());
    let (exit, out) = h.run(&spec);
    assert_eq!(exit, Exit::Code(0), "{out}");
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(out.lines().next(), Some(host_name.trim()), "{out}");
    let mut host_ifaces: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host_ifaces.sort();
    let mut seen: Vec<String> = out.lines().skip(1).map(str::to_owned).collect();
    seen.sort();
    assert_eq!(seen, host_ifaces, "{out}");
}

fn rlimits_never_exceed_the_host_hard_limit(h: &Harness) {
    let host_hard = h.host.rlimit_hard(PosixRlimitType::RlimitNofile);
    let mut spec = h.spec(&["sh", "-c", "ulimit -Hn; ulimit -Sn"]);
    spec.process.rlimits = vec![Rlimit {
        kind: PosixRlimitType::RlimitNofile,
        soft: 1 << 40,
        hard: 1 << 40,
    }];
    let (_, warnings) = h.bundle(&spec);
    let (exit, out) = h.run(&spec);
    assert_eq!(exit, Exit::Code(0), "{out}");
    let got: Vec<&str> = out.lines().collect();
    match host_hard {
        Some(max) => {
            assert_eq!(got, [max.to_string(), max.to_string()], "{out}");
            assert!(warnings
                .iter()
                .any(|w| w.contains("nofile") || w.contains("NOFILE")));
        }
        None => assert_eq!(got.len(), 2),
    }
}

fn limits_land_in_the_container_cgroup(h: &Harness) {
    let mut spec = h.spec(&["sleep", "100"]);
    spec.resources = Resources {
        memory: Some(64 << 20),
        pids_limit: Some(32),
        cpu_shares: Some(512),
        ..Resources::default()
    };
    let pid = h.create(&spec, ProcessIo::default()).unwrap();
    let dirs = h.cgroup_dirs(&spec.id);
    let read = |file: &str| -> Option<String> {
        dirs.iter()
            .find_map(|d| std::fs::read_to_string(d.join(file)).ok())
            .map(|s| s.trim().to_owned())
    };
    if h.host.cgroups().is_unified() {
        assert_eq!(read("memory.max").as_deref(), Some("67108864"), "{dirs:?}");
        assert_eq!(read("pids.max").as_deref(), Some("32"));
    } else {
        assert_eq!(
            read("memory.limit_in_bytes").as_deref(),
            Some("67108864"),
            "{dirs:?}"
        );
        assert_eq!(read("pids.max").as_deref(), Some("32"));
        assert_eq!(read("cpu.shares").as_deref(), Some("512"));
    }
    // The init process is in those cgroups.
    let procs = read("cgroup.procs").unwrap_or_default();
    assert!(procs.lines().any(|l| l == pid.to_string()), "{procs:?}");
    h.runtime.delete(&spec.id, true).unwrap();
    assert_eq!(h.wait(pid), Exit::Signal(9));
    for d in &dirs {
        assert!(!d.exists(), "{} outlived the container", d.display());
    }
}

fn readonly_rootfs_refuses_writes(h: &Harness) {
    let mut spec = h.spec(&["sh", "-c", "touch /written 2>&1; echo $?"]);
    spec.readonly_rootfs = true;
    let (exit, out) = h.run(&spec);
    assert_eq!(exit, Exit::Code(0));
    assert!(out.contains("Read-only file system"), "{out}");
    assert_eq!(out.lines().last(), Some("1"), "{out}");
    assert!(!h.rootfs.join("written").exists());
}

fn default_capabilities_are_dockers(h: &Harness) {
    let (exit, out) = h.run(&h.spec(&["grep", "^Cap", "/proc/self/status"]));
    assert_eq!(exit, Exit::Code(0), "{out}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    let mut want = 0u64;
    for cap in skiff_runtime::defaults::default_capabilities() {
        let bit = crate::support::CAPABILITIES
            .iter()
            .position(|c| *c == cap)
            .unwrap();
        want |= 1 << bit;
    }
    assert_eq!(field("CapBnd:"), want, "{out}");
    assert_eq!(field("CapEff:"), want, "{out}");
    assert_eq!(field("CapInh:"), 0, "{out}");
    assert_eq!(field("CapAmb:"), 0, "{out}");
}

fn errors_come_back_typed(h: &Harness) {
    let e = h.runtime.state("skiff-it-never-created").unwrap_err();
    assert!(matches!(e, Error::ContainerNotFound { .. }), "{e:?}");
    let e = h
        .runtime
        .kill("skiff-it-never-created", 9, false)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e:?}");

    let spec = h.spec(&["sleep", "100"]);
    let pid = h.create(&spec, ProcessIo::default()).unwrap();
    let (dir, _) = h.bundle(&spec);
    let e = h
        .runtime
        .create(&spec.id, &dir, ProcessIo::default())
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e:?}");
    h.runtime.kill(&spec.id, 9, false).unwrap();
    assert_eq!(h.wait(pid), Exit::Signal(9));
    h.wait_status(&spec.id, Status::Stopped);
    let e = h.runtime.kill(&spec.id, 9, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e:?}");
    h.runtime.delete(&spec.id, false).unwrap();

    let missing = h.spec(&["no-such-command"]);
    let e = h.create(&missing, ProcessIo::default()).unwrap_err();
    assert_eq!(e.exec_failure(), Some(ExecFailure::NotFound), "{e:?}");
    assert_eq!(
        e.to_string(),
        "exec: \"no-such-command\": executable file not found in $PATH"
    );
    let not_exec = h.spec(&["/etc/passwd"]);
    let e = h.create(&not_exec, ProcessIo::default()).unwrap_err();
    assert_eq!(e.exec_failure(), Some(ExecFailure::NotExecutable), "{e:?}");
}
