//! A container record -> the typed [`ContainerSpec`] the runtime crate turns into
//! `config.json`, with docker's rules for the environment, the user, the working directory,
//! resources and security options. Done at every start, against the mounted rootfs (the
//! user is looked up in the container's own /etc/passwd).

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::runtime::PosixRlimitType;
use skiff_runtime::spec::{
    MountSpec, NamespaceMode, Propagation, Resources, Rlimit, SeccompPolicy, Security, UserSpec,
};
use skiff_runtime::ContainerSpec;

use super::create::replace_or_append;
use super::store::{Container, ContainerStore, HOSTNAME_FILE, HOSTS_FILE, RESOLV_CONF_FILE};
use crate::ops::error::OpError;

/// docker's default `PATH` for Linux containers.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where `--init` puts the init inside the container (docker's path).
pub const INIT_PATH: &str = "/sbin/docker-init";

/// Builds the spec of `c`, whose rootfs is mounted at `c.rootfs`. `extra_mounts` are the
/// volumes and binds already resolved; `joined_net` is the `/proc/<pid>/ns/net` of the
/// container named by `--network container:NAME`.
pub fn build(
    store: &ContainerStore,
    c: &Container,
    extra_mounts: Vec<MountSpec>,
    joined_net: Option<PathBuf>,
) -> Result<ContainerSpec> {
    let user = super::users::resolve(&c.rootfs, &c.config.user)?;
    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    let mut mounts = Vec::new();
    if c.host_config.init == Some(true) {
        let init = find_init().ok_or_else(|| {
            OpError::invalid(
                "--init: no docker-init or tini-static binary found on this host (install the \
                 tini package)",
            )
        })?;
        mounts.push(MountSpec::Bind {
            source: init,
            destination: INIT_PATH.to_owned(),
            readonly: true,
            propagation: Propagation::RPrivate,
        });
        let mut with_init = vec![INIT_PATH.to_owned(), "--".to_owned()];
        with_init.append(&mut args);
        args = with_init;
    }

    let mut spec = ContainerSpec::new(c.id.clone(), c.rootfs.clone(), args);
    spec.process.env = environment(c, c.config.tty, &user.home);
    spec.process.cwd = if c.config.working_dir.is_empty() {
        "/".to_owned()
    } else {
        c.config.working_dir.clone()
    };
    if spec.process.cwd != "/" {
        mkdir_in_root(&c.rootfs, &spec.process.cwd)?;
    }
    spec.process.user = UserSpec {
        uid: user.uid,
        gid: user.gid,
        additional_gids: user.additional_gids.clone(),
        umask: None,
    };
    spec.process.terminal = c.config.tty;
    spec.process.rlimits = rlimits(c)?;
    spec.readonly_rootfs = c.host_config.readonly_rootfs;

    let dir = store.dir(&c.id);
    for (file, dest) in [
        (HOSTNAME_FILE, "/etc/hostname"),
        (HOSTS_FILE, "/etc/hosts"),
        (RESOLV_CONF_FILE, "/etc/resolv.conf"),
    ] {
        mounts.push(MountSpec::Bind {
            source: dir.join(file),
            destination: dest.to_owned(),
            readonly: false,
            propagation: Propagation::RPrivate,
        });
    }
    mounts.extend(extra_mounts);
    spec.mounts = mounts;
    spec.shm_size =
        u64::try_from(c.host_config.shm_size).unwrap_or(skiff_runtime::defaults::DEFAULT_SHM_SIZE);

    match c.host_config.network_mode.as_str() {
        "host" => {
            spec.namespaces.network = NamespaceMode::Host;
            spec.namespaces.uts = NamespaceMode::Host;
        }
        m if m.starts_with("container:") => {
            let path = joined_net.ok_or_else(|| {
                OpError::conflict(format!(
                    "cannot join network of a non running container: {}",
                    &m[10..]
                ))
            })?;
            spec.namespaces.network = NamespaceMode::Join(path);
        }
        _ => spec.namespaces.network = NamespaceMode::Private,
    }
    if c.host_config.pid_mode == "host" {
        spec.namespaces.pid = NamespaceMode::Host;
    }
    if c.host_config.ipc_mode == "host" {
        spec.namespaces.ipc = NamespaceMode::Host;
    }
    if spec.namespaces.uts == NamespaceMode::Private && !c.config.hostname.is_empty() {
        spec.hostname = Some(c.config.hostname.clone());
    }
    if !c.host_config.cgroup_parent.is_empty() {
        spec.cgroup_parent = Some(c.host_config.cgroup_parent.clone());
    }
    spec.resources = resources(c);
    spec.security = security(c)?;
    Ok(spec)
}

/// docker's `CreateDaemonEnvironment`: PATH, HOSTNAME and (with a tty) TERM first, then the
/// container's own variables replacing or adding; HOME last if nothing set it. `tty` is the
/// process's (an exec's `-t` may differ from the container's).
pub fn environment(c: &Container, tty: bool, home: &str) -> Vec<String> {
    let mut env = vec![format!("PATH={DEFAULT_PATH}")];
    env.push(format!("HOSTNAME={}", c.config.hostname));
    if tty {
        env.push("TERM=xterm".to_owned());
    }
    for e in &c.config.env {
        replace_or_append(&mut env, e);
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// The cgroup limits of `c` (also what `update` sends to a running container).
pub fn resources(c: &Container) -> Resources {
    let h = &c.host_config;
    let pos = |v: i64| (v > 0).then_some(v);
    let (quota, period) = if h.nano_cpus > 0 {
        // docker: --cpus N is a quota of N periods of 100 ms.
        (Some(h.nano_cpus * 100_000 / 1_000_000_000), Some(100_000))
    } else {
        (None, None)
    };
    Resources {
        memory: pos(h.memory),
        memory_swap: if h.memory > 0 && h.memory_swap != 0 {
            Some(h.memory_swap)
        } else {
            None
        },
        memory_reservation: pos(h.memory_reservation),
        cpu_shares: pos(h.cpu_shares).map(|v| v as u64),
        cpu_quota: quota,
        cpu_period: period,
        cpuset_cpus: (!h.cpuset_cpus.is_empty()).then(|| h.cpuset_cpus.clone()),
        cpuset_mems: (!h.cpuset_mems.is_empty()).then(|| h.cpuset_mems.clone()),
        pids_limit: h.pids_limit.filter(|p| *p != 0),
    }
}

fn security(c: &Container) -> Result<Security> {
    let h = &c.host_config;
    let mut sec = Security {
        privileged: h.privileged,
        cap_add: h.cap_add.clone().unwrap_or_default(),
        cap_drop: h.cap_drop.clone().unwrap_or_default(),
        ..Security::default()
    };
    for opt in h.security_opt.iter().flatten() {
        let (key, value) = opt
            .split_once(['=', ':'])
            .map_or((opt.as_str(), ""), |(k, v)| (k, v));
        match key {
            "no-new-privileges" => {
                sec.no_new_privileges = value.is_empty() || value == "true";
            }
            "seccomp" if value == "unconfined" => sec.seccomp = SeccompPolicy::Unconfined,
            "seccomp" => {
                let caps = skiff_runtime::spec::capabilities(&sec, &super::runtime::host()?)?;
                let profile =
                    skiff_runtime::seccomp::profile_from_docker_json(value.as_bytes(), &caps)
                        .map_err(|e| {
                            OpError::invalid(format!("Decoding seccomp profile failed: {e}"))
                        })?;
                sec.seccomp = SeccompPolicy::Profile(Box::new(profile));
            }
            "apparmor" | "label" => {}
            _ => return Err(OpError::invalid(format!("invalid --security-opt: {opt:?}")).into()),
        }
    }
    Ok(sec)
}

fn rlimits(c: &Container) -> Result<Vec<Rlimit>> {
    let mut out = Vec::new();
    for u in c.host_config.ulimits.iter().flatten() {
        let kind = rlimit_kind(&u.name)
            .ok_or_else(|| OpError::invalid(format!("invalid ulimit type: {}", u.name)))?;
        let val = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
        out.push(Rlimit {
            kind,
            soft: val(u.soft),
            hard: val(u.hard),
        });
    }
    Ok(out)
}

/// docker's `--ulimit` names.
pub fn rlimit_kind(name: &str) -> Option<PosixRlimitType> {
    Some(match name {
        "core" => PosixRlimitType::RlimitCore,
        "cpu" => PosixRlimitType::RlimitCpu,
        "data" => PosixRlimitType::RlimitData,
        "fsize" => PosixRlimitType::RlimitFsize,
        "locks" => PosixRlimitType::RlimitLocks,
        "memlock" => PosixRlimitType::RlimitMemlock,
        "msgqueue" => PosixRlimitType::RlimitMsgqueue,
        "nice" => PosixRlimitType::RlimitNice,
        "nofile" => PosixRlimitType::RlimitNofile,
        "nproc" => PosixRlimitType::RlimitNproc,
        "rss" => PosixRlimitType::RlimitRss,
        "rtprio" => PosixRlimitType::RlimitRtprio,
        "rttime" => PosixRlimitType::RlimitRttime,
        "sigpending" => PosixRlimitType::RlimitSigpending,
        "stack" => PosixRlimitType::RlimitStack,
        _ => return None,
    })
}

/// A static init to run as the container's pid 1 with `--init`: docker's own docker-init
/// if installed, else tini-static (the container may have no libc for a dynamic one).
pub fn find_init() -> Option<PathBuf> {
    [
        "/usr/libexec/docker/docker-init",
        "/usr/local/bin/docker-init",
        "/usr/bin/docker-init",
        "/usr/bin/tini-static",
        "/usr/local/bin/tini-static",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// `mkdir -p` of `path` inside `root`, resolving symlinks met on the way inside `root`
/// (an absolute target restarts at `root`, `..` stops there), as docker creates a missing
/// working directory without ever leaving the container's filesystem.
pub fn mkdir_in_root(root: &Path, path: &str) -> Result<()> {
    let mut todo: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .map(str::to_owned)
        .rev()
        .collect();
    let mut cur = root.to_path_buf();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            if cur != root {
                cur.pop();
            }
            continue;
        }
        let next = cur.join(&part);
        match std::fs::symlink_metadata(&next) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    anyhow::bail!("too many levels of symbolic links in {path}");
                }
                let target = std::fs::read_link(&next)
                    .with_context(|| format!("reading {}", next.display()))?;
                if target.is_absolute() {
                    cur = root.to_path_buf();
                }
                for comp in target.components().rev() {
                    match comp {
                        Component::Normal(s) => todo.push(s.to_string_lossy().into_owned()),
                        Component::ParentDir => todo.push("..".to_owned()),
                        _ => {}
                    }
                }
            }
            Ok(m) if m.is_dir() => cur = next,
            Ok(_) => {
                return Err(OpError::invalid(format!(
                    "the working directory {path} is not a directory in the container"
                ))
                .into())
            }
            Err(_) => {
                std::fs::create_dir(&next)
                    .with_context(|| format!("creating {}", next.display()))?;
                cur = next;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkdir_in_root_never_leaves_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::symlink("/", root.join("up")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("dots")).unwrap();
        mkdir_in_root(&root, "/up/a/b").unwrap();
        assert!(root.join("a/b").is_dir());
        mkdir_in_root(&root, "/dots/c").unwrap();
        assert!(root.join("c").is_dir());
        assert!(!tmp.path().join("c").exists());
    }
}
