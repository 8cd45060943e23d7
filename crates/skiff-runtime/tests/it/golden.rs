//! Golden `config.json` files: a few typed container specs, built against a fixed host,
//! must serialize to exactly the bytes in `tests/it/golden/<case>.json`.
//!
//! To accept a deliberate change, run with `SKIFF_UPDATE_GOLDEN=1` and review the diff.
//! The cases use `seccomp=unconfined` so the files stay readable; the default profile is
//! checked in `spec.rs`, as are the masked paths (which depend on the host's CPUs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, PosixRlimitType};
use skiff_runtime::spec::{
    ConsoleSize, MountSpec, NamespaceMode, Propagation, Resources, Rlimit, SeccompPolicy, UserSpec,
};
use skiff_runtime::{bundle, ContainerSpec};

use crate::support::FixedHost;

fn check(case: &str, spec: &ContainerSpec, host: &FixedHost) {
    let built = spec.build(host).expect("build");
    let got =
        host_independent(&String::from_utf8(bundle::spec_json(&built.spec).unwrap()).unwrap());
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/golden")
        .join(format!("{case}.json"));
    if std::env::var_os("SKIFF_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with SKIFF_UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "{case}: config.json differs from {} at line {}:\n got: {:?}\nwant: {:?}\n\
             (run with SKIFF_UPDATE_GOLDEN=1 to accept)",
            path.display(),
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first),
        );
    }
}

/// Docker's masked paths include the host's `thermal_throttle` directories, so the golden
/// files hold a marker where the list equals `defaults::masked_paths()` on this host.
fn host_independent(json: &str) -> String {
    let mut value: serde_json::Value = serde_json::from_str(json).unwrap();
    if let Some(masked) = value.pointer_mut("/linux/maskedPaths") {
        let here = serde_json::to_value(skiff_runtime::defaults::masked_paths()).unwrap();
        if *masked == here {
            *masked = serde_json::Value::String("<defaults::masked_paths()>".to_owned());
        }
    }
    let mut out = serde_json::to_string_pretty(&value).unwrap();
    out.push('\n');
    out
}

fn unconfined(mut spec: ContainerSpec) -> ContainerSpec {
    spec.security.seccomp = SeccompPolicy::Unconfined;
    spec
}

#[test]
fn golden_minimal() {
    let spec = unconfined(ContainerSpec::new(
        "minimal",
        "/var/lib/skiff/containers/minimal/rootfs",
        vec!["echo".into(), "hello".into()],
    ));
    check("minimal", &spec, &FixedHost::v1());
}

#[test]
fn golden_full() {
    let mut spec = unconfined(ContainerSpec::new(
        "full",
        "rootfs",
        vec!["/bin/sh".into(), "-c".into(), "exec app".into()],
    ));
    spec.readonly_rootfs = true;
    spec.hostname = Some("web-1".into());
    spec.process.env = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        "HOSTNAME=web-1".into(),
        "HOME=/home/app".into(),
        "TERM=xterm".into(),
    ];
    spec.process.cwd = "/srv".into();
    spec.process.user = UserSpec {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![10, 20],
        umask: Some(0o022),
    };
    spec.process.terminal = true;
    spec.process.console_size = Some(ConsoleSize {
        height: 24,
        width: 80,
    });
    spec.process.rlimits = vec![
        Rlimit {
            kind: PosixRlimitType::RlimitNofile,
            soft: 1 << 20,
            hard: 1 << 20,
        },
        Rlimit {
            kind: PosixRlimitType::RlimitNproc,
            soft: 512,
            hard: 1024,
        },
    ];
    spec.mounts = vec![
        MountSpec::Bind {
            source: "/srv/data/sub".into(),
            destination: "/data/sub".into(),
            readonly: false,
            propagation: Propagation::default(),
        },
        MountSpec::Bind {
            source: "/srv/data".into(),
            destination: "/data/".into(),
            readonly: true,
            propagation: Propagation::RSlave,
        },
        MountSpec::Tmpfs {
            destination: "/run".into(),
            options: vec!["size=64m".into(), "exec".into()],
        },
        MountSpec::Tmpfs {
            destination: "/dev/shm".into(),
            options: vec!["size=1g".into()],
        },
    ];
    spec.shm_size = 128 << 20;
    spec.namespaces.network = NamespaceMode::Join("/proc/4242/ns/net".into());
    spec.cgroup_parent = Some("/skiff-custom".into());
    spec.resources = Resources {
        memory: Some(256 << 20),
        memory_swap: Some(512 << 20),
        memory_reservation: Some(128 << 20),
        cpu_shares: Some(512),
        cpu_quota: Some(150_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0-1".into()),
        cpuset_mems: Some("0".into()),
        pids_limit: Some(100),
    };
    spec.security.cap_add = vec!["net_admin".into(), "CAP_SYS_PTRACE".into()];
    spec.security.cap_drop = vec!["MKNOD".into(), "cap_net_raw".into()];
    spec.security.no_new_privileges = true;
    spec.sysctls = BTreeMap::from([
        ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
        ("kernel.shmmax".to_owned(), "4096".to_owned()),
    ]);
    spec.devices = vec![skiff_runtime::host::device(
        PathBuf::from("/dev/fuse"),
        LinuxDeviceType::C,
        10,
        229,
        0o666,
        0,
        0,
    )];
    spec.annotations = BTreeMap::from([
        ("org.skiff.name".to_owned(), "web".to_owned()),
        ("org.skiff.image".to_owned(), "busybox:latest".to_owned()),
    ]);
    check("full", &spec, &FixedHost::v1());
}

#[test]
fn golden_privileged() {
    let mut spec = ContainerSpec::new("privileged", "/rootfs", vec!["sh".into()]);
    spec.security.privileged = true;
    // Privileged wins over these, as in docker.
    spec.security.cap_drop = vec!["ALL".into()];
    spec.security.seccomp = SeccompPolicy::Default;
    check("privileged", &spec, &FixedHost::v1());
}

#[test]
fn golden_host_namespaces() {
    let mut spec = unconfined(ContainerSpec::new("hostns", "/rootfs", vec!["top".into()]));
    spec.hostname = Some("ignored-with-host-uts".into());
    spec.namespaces.network = NamespaceMode::Host;
    spec.namespaces.pid = NamespaceMode::Host;
    spec.namespaces.uts = NamespaceMode::Host;
    spec.namespaces.ipc = NamespaceMode::Host;
    let mut host = FixedHost::v1();
    host.cgroup_namespace = false;
    host.cgroups = skiff_runtime::cgroups::CgroupInfo {
        mode: skiff_runtime::cgroups::CgroupMode::Unified,
        v2_controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
    };
    check("host-namespaces", &spec, &host);
}
