//! How a [`ContainerSpec`] becomes an OCI spec: docker's rules, one behaviour per test.

use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};
use skiff_runtime::spec::{
    self, MountSpec, NamespaceMode, Propagation, Resources, Rlimit, SeccompPolicy,
};
use skiff_runtime::{defaults, seccomp, ContainerSpec, Error, ProcessSpec};

use crate::support::FixedHost;

fn container(args: &[&str]) -> ContainerSpec {
    ContainerSpec::new(
        "c1",
        "/rootfs",
        args.iter().map(|a| (*a).to_owned()).collect(),
    )
}

fn build(c: &ContainerSpec) -> Spec {
    c.build(&FixedHost::v1()).expect("build").spec
}

fn bounding(spec: &Spec) -> Vec<String> {
    let mut caps: Vec<String> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .map(|set| {
            set.iter()
                .map(|c| {
                    serde_json::to_value(c)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    caps.sort();
    caps
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn destinations(spec: &Spec) -> Vec<String> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn default_capabilities_are_the_defaults_module() {
    let spec = build(&container(&["true"]));
    assert_eq!(bounding(&spec), sorted(defaults::default_capabilities()));
}

#[test]
fn cap_add_and_cap_drop_follow_docker() {
    let mut c = container(&["true"]);
    c.security.cap_add = vec!["sys_admin".into()];
    c.security.cap_drop = vec!["CAP_CHOWN".into()];
    let caps = bounding(&build(&c));
    assert!(caps.contains(&"CAP_SYS_ADMIN".to_owned()));
    assert!(!caps.contains(&"CAP_CHOWN".to_owned()));

    c.security.cap_add = vec!["ALL".into()];
    c.security.cap_drop = vec!["NET_ADMIN".into()];
    let caps = bounding(&build(&c));
    let available = defaults::all_capabilities();
    assert_eq!(caps.len(), available.len() - 1, "all but NET_ADMIN");
    assert!(!caps.contains(&"CAP_NET_ADMIN".to_owned()));

    c.security.cap_add = vec!["KILL".into()];
    c.security.cap_drop = vec!["all".into()];
    assert_eq!(bounding(&build(&c)), ["CAP_KILL"]);

    c.security.cap_add = vec!["CAP_FLY".into()];
    let e = c.build(&FixedHost::v1()).unwrap_err();
    assert!(matches!(e, Error::Capability(_)), "{e:?}");
    assert_eq!(e.kind(), skiff_runtime::ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("CAP_FLY"), "{e}");
}

#[test]
fn privileged_gets_everything_and_no_confinement() {
    let mut c = container(&["sh"]);
    c.security.privileged = true;
    let spec = build(&c);
    assert_eq!(bounding(&spec).len(), 41);
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().is_none());
    assert!(linux.readonly_paths().is_none());
    let devices = linux.devices().as_ref().unwrap();
    assert!(devices.iter().any(|d| d.path() == Path::new("/dev/kvm")));
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap();
    assert_eq!(rules.len(), 1);
    assert!(rules[0].allow());
}

#[test]
fn default_seccomp_profile_matches_the_capabilities() {
    let mut c = container(&["true"]);
    c.security.cap_add = vec!["SYS_ADMIN".into()];
    let spec = build(&c);
    let caps = skiff_runtime::spec::capabilities(&c.security, &FixedHost::v1()).unwrap();
    assert_eq!(
        spec.linux().as_ref().unwrap().seccomp().as_ref(),
        Some(&seccomp::default_profile(&caps))
    );
    c.security.seccomp = SeccompPolicy::Unconfined;
    assert!(build(&c).linux().as_ref().unwrap().seccomp().is_none());
}

#[test]
fn masked_and_readonly_paths_come_from_the_defaults() {
    let spec = build(&container(&["true"]));
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.masked_paths().as_ref(),
        Some(&defaults::masked_paths())
    );
    assert_eq!(
        linux.readonly_paths().as_ref(),
        Some(&defaults::readonly_paths())
    );
}

#[test]
fn user_mounts_replace_defaults_and_mount_parents_first() {
    let mut c = container(&["true"]);
    c.mounts = vec![
        MountSpec::Bind {
            source: "/h/a/b".into(),
            destination: "/a/b".into(),
            readonly: false,
            propagation: Propagation::RPrivate,
        },
        MountSpec::Bind {
            source: "/h/a".into(),
            destination: "/a".into(),
            readonly: true,
            propagation: Propagation::RPrivate,
        },
        MountSpec::Tmpfs {
            destination: "/dev/shm".into(),
            options: vec![],
        },
    ];
    let spec = build(&c);
    let dests = destinations(&spec);
    assert_eq!(dests.iter().filter(|d| *d == "/dev/shm").count(), 1);
    let a = dests.iter().position(|d| d == "/a").unwrap();
    let ab = dests.iter().position(|d| d == "/a/b").unwrap();
    assert!(a < ab, "{dests:?}");
    let shm = &spec.mounts().as_ref().unwrap()[dests.iter().position(|d| d == "/dev/shm").unwrap()];
    assert_eq!(shm.typ().as_deref(), Some("tmpfs"));
    assert_eq!(
        shm.options().as_ref().unwrap(),
        &["nosuid", "nodev", "noexec"]
    );
    let ro = &spec.mounts().as_ref().unwrap()[a];
    assert_eq!(ro.options().as_ref().unwrap(), &["rbind", "ro", "rprivate"]);

    c.mounts = vec![MountSpec::Bind {
        source: "relative".into(),
        destination: "/x".into(),
        readonly: false,
        propagation: Propagation::RPrivate,
    }];
    assert!(matches!(
        c.build(&FixedHost::v1()),
        Err(Error::InvalidSpec(_))
    ));
}

#[test]
fn a_user_mount_on_dev_replaces_every_default_under_dev() {
    let mut c = container(&["true"]);
    c.mounts = vec![MountSpec::Bind {
        source: "/dev".into(),
        destination: "/dev".into(),
        readonly: false,
        propagation: Propagation::RPrivate,
    }];
    let dests = destinations(&build(&c));
    assert_eq!(
        dests.iter().filter(|d| d.starts_with("/dev")).count(),
        1,
        "{dests:?}"
    );
}

#[test]
fn host_ipc_binds_the_hosts_dev_shm() {
    let mut c = container(&["true"]);
    c.namespaces.ipc = NamespaceMode::Host;
    let spec = build(&c);
    let shm = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/dev/shm"))
        .unwrap();
    assert_eq!(shm.typ().as_deref(), Some("bind"));
    assert_eq!(shm.source().as_deref(), Some(Path::new("/dev/shm")));
    let types: Vec<_> = spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert!(!types.contains(&LinuxNamespaceType::Ipc));
}

#[test]
fn every_namespace_is_private_by_default_and_cgroup_only_where_the_kernel_has_it() {
    let types = |host: &FixedHost| -> Vec<LinuxNamespaceType> {
        container(&["true"])
            .build(host)
            .unwrap()
            .spec
            .linux()
            .as_ref()
            .unwrap()
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .map(|n| n.typ())
            .collect()
    };
    let mut host = FixedHost::v1();
    assert_eq!(
        types(&host),
        [
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Cgroup
        ]
    );
    host.cgroup_namespace = false;
    assert!(!types(&host).contains(&LinuxNamespaceType::Cgroup));
}

#[test]
fn rlimits_are_lowered_to_the_host_hard_limit_with_a_warning() {
    let mut c = container(&["true"]);
    c.process.rlimits = vec![Rlimit {
        kind: PosixRlimitType::RlimitNofile,
        soft: 1 << 20,
        hard: 1 << 20,
    }];
    let built = c.build(&FixedHost::v1()).unwrap();
    let r = built
        .spec
        .process()
        .as_ref()
        .unwrap()
        .rlimits()
        .clone()
        .unwrap();
    assert_eq!((r[0].soft(), r[0].hard()), (20000, 20000));
    assert_eq!(built.warnings.len(), 1);

    c.process.rlimits[0].soft = 10;
    c.process.rlimits[0].hard = 5;
    assert!(matches!(
        c.build(&FixedHost::v1()),
        Err(Error::InvalidSpec(_))
    ));
}

#[test]
fn swap_needs_memory_and_accounting() {
    let mut c = container(&["true"]);
    c.resources = Resources {
        memory_swap: Some(1 << 30),
        ..Resources::default()
    };
    assert!(matches!(
        c.build(&FixedHost::v1()),
        Err(Error::InvalidSpec(_))
    ));
    c.resources.memory = Some(2 << 30);
    assert!(matches!(
        c.build(&FixedHost::v1()),
        Err(Error::InvalidSpec(_))
    ));
    c.resources.memory = Some(1 << 29);
    let mut host = FixedHost::v1();
    host.swap_accounting = false;
    let built = c.build(&host).unwrap();
    let mem = built
        .spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .as_ref()
        .unwrap()
        .memory()
        .unwrap();
    assert_eq!(mem.limit(), Some(1 << 29));
    assert_eq!(mem.swap(), None);
    assert!(built.warnings[0].contains("swap"));
}

#[test]
fn pids_limit_zero_or_negative_is_unlimited() {
    let mut c = container(&["true"]);
    c.resources.pids_limit = Some(0);
    let spec = build(&c);
    let pids = spec
        .linux()
        .as_ref()
        .unwrap()
        .resources()
        .as_ref()
        .unwrap()
        .pids()
        .unwrap();
    assert_eq!(pids.limit(), -1);
}

#[test]
fn bad_processes_are_refused() {
    let mut c = container(&[]);
    assert!(matches!(
        c.build(&FixedHost::v1()),
        Err(Error::InvalidSpec(_))
    ));
    c.process.args = vec!["true".into()];
    c.process.cwd = "relative".into();
    assert!(matches!(
        c.build(&FixedHost::v1()),
        Err(Error::InvalidSpec(_))
    ));
    c.process.cwd = "/".into();
    c.id = "../escape".into();
    assert!(matches!(
        c.build(&FixedHost::v1()),
        Err(Error::InvalidId(_))
    ));
}

#[test]
fn exec_processes_inherit_the_containers_privileges() {
    let mut c = container(&["sleep", "100"]);
    c.security.cap_drop = vec!["ALL".into()];
    c.security.cap_add = vec!["KILL".into()];
    c.security.no_new_privileges = true;
    c.process.rlimits = vec![Rlimit {
        kind: PosixRlimitType::RlimitNproc,
        soft: 10,
        hard: 20,
    }];
    let config = build(&c);
    let exec = ProcessSpec::new(vec!["ps".into()]);
    let (p, _) = spec::exec_process(&config, &exec, false, &FixedHost::v1()).unwrap();
    let caps = p
        .capabilities()
        .as_ref()
        .unwrap()
        .bounding()
        .clone()
        .unwrap();
    assert_eq!(caps.len(), 1);
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.rlimits().as_ref().unwrap()[0].hard(), 20);
    assert_eq!(p.args().as_ref().unwrap(), &["ps"]);

    let (p, _) = spec::exec_process(&config, &exec, true, &FixedHost::v1()).unwrap();
    assert_eq!(
        p.capabilities()
            .as_ref()
            .unwrap()
            .bounding()
            .as_ref()
            .unwrap()
            .len(),
        41
    );
}

#[test]
fn nothing_is_set_that_was_not_asked_for() {
    // oci-spec's Default is youki's sample container (hostname "youki", nofile 1024,
    // no_new_privileges); none of it may leak into ours.
    let spec = build(&container(&["true"]));
    assert_eq!(spec.hostname(), &None);
    assert_eq!(spec.annotations(), &None);
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.rlimits(), &None);
    assert_eq!(p.no_new_privileges(), None);
    assert_eq!(p.env().as_deref(), Some(&[][..]));
    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(linux.sysctl(), &None);
    assert_eq!(linux.uid_mappings(), &None);
}
