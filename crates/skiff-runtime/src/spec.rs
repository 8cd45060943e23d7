//! [`ContainerSpec`]: everything skiff has decided about a container, typed, and its
//! translation into the OCI runtime spec (`config.json`) that crun and runc read.
//!
//! The translation is a pure function of the spec and a [`HostInfo`]; it starts from docker's
//! defaults (capabilities, mounts, devices, masked and read-only paths, seccomp profile; see
//! [`crate::defaults`] and [`crate::seccomp`]) and applies the container's choices the way
//! docker does. Resolving docker's flags (`--cpus`, `--memory-swap` defaults, `-u name`) into
//! this struct is the caller's job.
//!
//! This file holds the types and the `linux` section (namespaces, cgroup, resources, devices,
//! seccomp); `process` builds the process (and an exec's), `mounts` the mount list.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use oci_spec::runtime::{
    Linux, LinuxCpuBuilder, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, LinuxSeccomp, PosixRlimitType, Root, Spec,
};

use crate::defaults;
use crate::error::Error;
use crate::host::HostInfo;
use crate::seccomp;

mod mounts;
mod process;

pub use process::{capabilities, exec_process};

/// The OCI runtime spec version skiff writes.
pub const OCI_VERSION: &str = "1.0.2";
/// Parent of every container's cgroup unless the container names another (docker's is
/// `/docker`). Absolute on purpose: runc and crun read a relative `cgroupsPath` differently
/// (runc from its own cgroup in each hierarchy, crun 1.8 on cgroup v1 from the root), and the
/// same bundle must land in the same place whichever runtime runs it.
pub const DEFAULT_CGROUP_PARENT: &str = "/skiff";

/// A container to run, as skiff has resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    /// The container id; also the last element of its cgroup path.
    pub id: String,
    /// The root filesystem (mounted snapshot), absolute or relative to the bundle.
    pub rootfs: PathBuf,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    pub process: ProcessSpec,
    /// `-h`; ignored unless the UTS namespace is private.
    pub hostname: Option<String>,
    /// `-v`, `--mount`, `--tmpfs`, volumes: mounted after the defaults, parents first.
    pub mounts: Vec<MountSpec>,
    /// Size of `/dev/shm` in bytes (`--shm-size`).
    pub shm_size: u64,
    pub namespaces: Namespaces,
    /// Parent cgroup (`--cgroup-parent`); [`DEFAULT_CGROUP_PARENT`] when `None`.
    pub cgroup_parent: Option<String>,
    pub resources: Resources,
    pub security: Security,
    /// `--sysctl`.
    pub sysctls: BTreeMap<String, String>,
    /// Extra device nodes (`--device`), allowed read, write and mknod.
    pub devices: Vec<LinuxDevice>,
    /// OCI annotations.
    pub annotations: BTreeMap<String, String>,
}

impl ContainerSpec {
    /// A container `id` running `args` in `rootfs` with docker's defaults: every namespace
    /// private, 64 MiB of /dev/shm, docker's capabilities and seccomp profile, no limits.
    pub fn new(id: impl Into<String>, rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        ContainerSpec {
            id: id.into(),
            rootfs: rootfs.into(),
            readonly_rootfs: false,
            process: ProcessSpec::new(args),
            hostname: None,
            mounts: Vec::new(),
            shm_size: defaults::DEFAULT_SHM_SIZE,
            namespaces: Namespaces::default(),
            cgroup_parent: None,
            resources: Resources::default(),
            security: Security::default(),
            sysctls: BTreeMap::new(),
            devices: Vec::new(),
            annotations: BTreeMap::new(),
        }
    }
}

/// The container's (or an exec's) process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// The command and its arguments; never empty.
    pub args: Vec<String>,
    /// `KEY=value` entries, passed as they are.
    pub env: Vec<String>,
    /// Working directory inside the container; absolute.
    pub cwd: String,
    pub user: UserSpec,
    /// Allocate a pty (`-t`); the runtime then needs a console socket.
    pub terminal: bool,
    /// Initial pty size.
    pub console_size: Option<ConsoleSize>,
    /// `--ulimit`; each is lowered to skiff's own hard limit if it asks more.
    pub rlimits: Vec<Rlimit>,
}

impl ProcessSpec {
    /// `args` as root in `/`, no environment, no terminal.
    pub fn new(args: Vec<String>) -> Self {
        ProcessSpec {
            args,
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: UserSpec::default(),
            terminal: false,
            console_size: None,
            rlimits: Vec::new(),
        }
    }
}

/// Numeric identity of the process (names are resolved against the image's /etc/passwd by the
/// caller).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserSpec {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
}

/// Rows and columns of a pty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsoleSize {
    pub height: u16,
    pub width: u16,
}

/// One resource limit (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub kind: PosixRlimitType,
    pub soft: u64,
    pub hard: u64,
}

/// A mount the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSpec {
    /// A host path (or a volume's `_data`) bound recursively into the container.
    Bind {
        source: PathBuf,
        destination: String,
        readonly: bool,
        propagation: Propagation,
    },
    /// A fresh tmpfs; `options` are mount(8) options (`size=64m`, `mode=1777`, `exec`) added
    /// to docker's `nosuid,nodev,noexec`.
    Tmpfs {
        destination: String,
        options: Vec<String>,
    },
}

impl MountSpec {
    /// Where the mount appears in the container.
    pub fn destination(&self) -> &str {
        match self {
            MountSpec::Bind { destination, .. } | MountSpec::Tmpfs { destination, .. } => {
                destination
            }
        }
    }
}

/// Mount propagation of a bind mount; docker's default is `rprivate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Propagation {
    Private,
    #[default]
    RPrivate,
    Shared,
    RShared,
    Slave,
    RSlave,
}

impl Propagation {
    fn option(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::RPrivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::RShared => "rshared",
            Propagation::Slave => "slave",
            Propagation::RSlave => "rslave",
        }
    }
}

/// Whether the container gets its own namespace of a kind, shares the host's, or joins
/// another's (`--net container:NAME` resolves to that container's `/proc/<pid>/ns/net`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NamespaceMode {
    #[default]
    Private,
    Host,
    Join(PathBuf),
}

/// The namespaces besides the mount namespace, which is always private.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// `Private` is docker's `--net none`: only `lo`, which the runtime brings up.
    pub network: NamespaceMode,
    pub pid: NamespaceMode,
    pub ipc: NamespaceMode,
    pub uts: NamespaceMode,
    /// `Private` is honoured only where the kernel has cgroup namespaces.
    pub cgroup: NamespaceMode,
}

/// cgroup limits. `None` leaves a limit unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    /// Memory limit in bytes (`-m`).
    pub memory: Option<i64>,
    /// Memory plus swap in bytes (`--memory-swap`); -1 for unlimited swap.
    pub memory_swap: Option<i64>,
    /// Soft limit in bytes (`--memory-reservation`).
    pub memory_reservation: Option<i64>,
    /// Relative CPU weight (`--cpu-shares`).
    pub cpu_shares: Option<u64>,
    /// CPU time per period in µs (`--cpu-quota`; `--cpus` is quota over period).
    pub cpu_quota: Option<i64>,
    /// CFS period in µs (`--cpu-period`).
    pub cpu_period: Option<u64>,
    /// `--cpuset-cpus`, e.g. `0-2,4`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`; 0 or -1 for unlimited.
    pub pids_limit: Option<i64>,
}

/// Privileges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Security {
    /// `--privileged`: every capability and host device, no seccomp, no masked paths,
    /// writable /sys.
    pub privileged: bool,
    /// `--cap-add`: names with or without `CAP_`, any case, or `ALL`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    pub seccomp: SeccompPolicy,
}

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SeccompPolicy {
    /// Docker's default profile, adjusted to the container's capabilities.
    #[default]
    Default,
    /// `--security-opt seccomp=unconfined`.
    Unconfined,
    /// `--security-opt seccomp=FILE`, parsed.
    Profile(Box<LinuxSeccomp>),
}

/// The generated spec and what the user should be told about it.
#[derive(Debug, Clone)]
pub struct Built {
    pub spec: Spec,
    /// Things skiff changed or dropped (a limit lowered to the host's), docker-style.
    pub warnings: Vec<String>,
}

impl ContainerSpec {
    /// Translates the container into an OCI runtime spec for this host.
    /// Only the cgroup limits, as the JSON of an OCI `linux.resources` object (what `runc
    /// update --resources` reads), and the warnings a full build would give about them.
    pub fn resources_json(&self, host: &dyn HostInfo) -> Result<(Vec<u8>, Vec<String>), Error> {
        let mut warnings = Vec::new();
        let resources = self.resources(host, &mut warnings)?;
        let json = serde_json::to_vec(&resources)
            .map_err(|e| Error::InvalidSpec(format!("encoding resources: {e}")))?;
        Ok((json, warnings))
    }

    pub fn build(&self, host: &dyn HostInfo) -> Result<Built, Error> {
        crate::runtime::validate_id(&self.id)?;
        if self.rootfs.as_os_str().is_empty() {
            return Err(Error::InvalidSpec("no root filesystem".to_owned()));
        }
        let mut warnings = Vec::new();
        let sec = &self.security;
        let caps = capabilities(sec, host)?;
        let process = process::process(
            &self.process,
            &caps,
            sec.no_new_privileges,
            host,
            &mut warnings,
        )?;

        let mut linux = blank_linux();
        linux
            .set_namespaces(Some(self.namespaces(host)?))
            .set_cgroups_path(Some(PathBuf::from(self.cgroups_path())))
            .set_resources(Some(self.resources(host, &mut warnings)?))
            .set_devices(Some(self.linux_devices(host)?))
            .set_seccomp(self.seccomp_profile(&caps));
        if !sec.privileged {
            linux
                .set_masked_paths(Some(defaults::masked_paths()))
                .set_readonly_paths(Some(defaults::readonly_paths()));
        }
        if !self.sysctls.is_empty() {
            linux.set_sysctl(Some(
                self.sysctls
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ));
        }

        let mut root = Root::default();
        root.set_path(self.rootfs.clone())
            .set_readonly(Some(self.readonly_rootfs));
        let mut spec = blank_spec();
        spec.set_version(OCI_VERSION.to_owned())
            .set_root(Some(root))
            .set_mounts(Some(mounts::mounts(self)?))
            .set_process(Some(process))
            .set_linux(Some(linux));
        if self.namespaces.uts == NamespaceMode::Private {
            spec.set_hostname(self.hostname.clone());
        }
        if !self.annotations.is_empty() {
            spec.set_annotations(Some(
                self.annotations
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<HashMap<_, _>>(),
            ));
        }
        Ok(Built { spec, warnings })
    }

    /// `linux.cgroupsPath`: `<parent>/<id>`.
    pub fn cgroups_path(&self) -> String {
        let parent = self
            .cgroup_parent
            .as_deref()
            .unwrap_or(DEFAULT_CGROUP_PARENT)
            .trim_end_matches('/');
        if parent.is_empty() {
            format!("/{}", self.id)
        } else {
            format!("{parent}/{}", self.id)
        }
    }

    fn namespaces(&self, host: &dyn HostInfo) -> Result<Vec<LinuxNamespace>, Error> {
        let ns = &self.namespaces;
        let mut out = vec![namespace(LinuxNamespaceType::Mount, None)?];
        let cgroup = match &ns.cgroup {
            NamespaceMode::Private if !host.cgroup_namespace() => &NamespaceMode::Host,
            other => other,
        };
        for (typ, mode) in [
            (LinuxNamespaceType::Pid, &ns.pid),
            (LinuxNamespaceType::Uts, &ns.uts),
            (LinuxNamespaceType::Ipc, &ns.ipc),
            (LinuxNamespaceType::Network, &ns.network),
            (LinuxNamespaceType::Cgroup, cgroup),
        ] {
            match mode {
                NamespaceMode::Private => out.push(namespace(typ, None)?),
                NamespaceMode::Host => {}
                NamespaceMode::Join(path) => {
                    if !path.is_absolute() {
                        return Err(Error::InvalidSpec(format!(
                            "{typ} namespace path {} is not absolute",
                            path.display()
                        )));
                    }
                    out.push(namespace(typ, Some(path.clone()))?);
                }
            }
        }
        Ok(out)
    }

    fn resources(
        &self,
        host: &dyn HostInfo,
        warnings: &mut Vec<String>,
    ) -> Result<oci_spec::runtime::LinuxResources, Error> {
        let r = &self.resources;
        let mut out = LinuxResourcesBuilder::default().devices(self.device_rules());

        let mut swap = r.memory_swap;
        if let Some(s) = swap {
            if r.memory.is_none() {
                return Err(Error::InvalidSpec(
                    "you should always set the memory limit when using the memoryswap limit"
                        .to_owned(),
                ));
            }
            if s != -1 && r.memory.is_some_and(|m| s < m) {
                return Err(Error::InvalidSpec(
                    "minimum memoryswap limit should be larger than memory limit".to_owned(),
                ));
            }
            if !host.swap_accounting() {
                warnings.push(
                    "Your kernel does not support swap limit capabilities or the cgroup is \
                     not mounted. Memory limited without swap."
                        .to_owned(),
                );
                swap = None;
            }
        }
        if r.memory.is_some() || swap.is_some() || r.memory_reservation.is_some() {
            let mut mem = LinuxMemoryBuilder::default();
            if let Some(m) = r.memory {
                mem = mem.limit(m);
            }
            if let Some(s) = swap {
                mem = mem.swap(s);
            }
            if let Some(m) = r.memory_reservation {
                mem = mem.reservation(m);
            }
            out = out.memory(mem.build().map_err(oci_err)?);
        }

        if r.cpu_shares.is_some()
            || r.cpu_quota.is_some()
            || r.cpu_period.is_some()
            || r.cpuset_cpus.is_some()
            || r.cpuset_mems.is_some()
        {
            let mut cpu = LinuxCpuBuilder::default();
            if let Some(v) = r.cpu_shares {
                cpu = cpu.shares(v);
            }
            if let Some(v) = r.cpu_quota {
                cpu = cpu.quota(v);
            }
            if let Some(v) = r.cpu_period {
                cpu = cpu.period(v);
            }
            if let Some(v) = &r.cpuset_cpus {
                cpu = cpu.cpus(v.clone());
            }
            if let Some(v) = &r.cpuset_mems {
                cpu = cpu.mems(v.clone());
            }
            out = out.cpu(cpu.build().map_err(oci_err)?);
        }

        if let Some(limit) = r.pids_limit {
            // Docker: 0 and negative values mean unlimited, which the OCI spec spells -1.
            let limit = if limit <= 0 { -1 } else { limit };
            out = out.pids(
                LinuxPidsBuilder::default()
                    .limit(limit)
                    .build()
                    .map_err(oci_err)?,
            );
        }
        out.build().map_err(oci_err)
    }

    /// The device cgroup: everything for privileged containers; otherwise docker's rules
    /// ([`defaults::default_device_cgroup_rules`]) plus read, write and mknod of each extra
    /// device. The runtimes add their own defaults after these (ptmx, pts, mknod of any node).
    fn device_rules(&self) -> Vec<LinuxDeviceCgroup> {
        if self.security.privileged {
            return vec![device_rule(true, None, None, None, "rwm")];
        }
        let mut rules = defaults::default_device_cgroup_rules();
        for d in &self.devices {
            rules.push(device_rule(
                true,
                Some(d.typ()),
                Some(d.major()),
                Some(d.minor()),
                "rwm",
            ));
        }
        rules
    }

    fn linux_devices(&self, host: &dyn HostInfo) -> Result<Vec<LinuxDevice>, Error> {
        let mut out = defaults::default_devices();
        if self.security.privileged {
            out.extend(host.devices()?);
        }
        out.extend(self.devices.iter().cloned());
        let mut seen = Vec::new();
        out.retain(|d| {
            let path = d.path().clone();
            if seen.contains(&path) {
                false
            } else {
                seen.push(path);
                true
            }
        });
        Ok(out)
    }

    fn seccomp_profile(&self, caps: &[String]) -> Option<LinuxSeccomp> {
        if self.security.privileged {
            return None;
        }
        match &self.security.seccomp {
            SeccompPolicy::Default => Some(seccomp::default_profile(caps)),
            SeccompPolicy::Unconfined => None,
            SeccompPolicy::Profile(p) => Some((**p).clone()),
        }
    }
}

/// A spec with every field unset. `Spec::default()` (and its builder, which starts from it)
/// is youki's example container: a hostname, rlimits, capabilities and namespaces that are not
/// ours. Every field is named here so that one added to oci-spec cannot slip in unseen.
fn blank_spec() -> Spec {
    let mut s = Spec::default();
    s.set_version(String::new())
        .set_root(None)
        .set_mounts(None)
        .set_process(None)
        .set_hostname(None)
        .set_domainname(None)
        .set_hooks(None)
        .set_annotations(None)
        .set_linux(None)
        .set_solaris(None)
        .set_windows(None)
        .set_vm(None)
        .set_zos(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None);
    s
}

/// A `linux` section with every field unset (see [`blank_spec`]).
fn blank_linux() -> Linux {
    let mut l = Linux::default();
    l.set_net_devices(None)
        .set_uid_mappings(None)
        .set_gid_mappings(None)
        .set_sysctl(None)
        .set_resources(None)
        .set_cgroups_path(None)
        .set_namespaces(None)
        .set_devices(None)
        .set_seccomp(None)
        .set_rootfs_propagation(None)
        .set_masked_paths(None)
        .set_readonly_paths(None)
        .set_mount_label(None)
        .set_intel_rdt(None)
        .set_memory_policy(None)
        .set_personality(None)
        .set_time_offsets(None);
    l
}

fn namespace(typ: LinuxNamespaceType, path: Option<PathBuf>) -> Result<LinuxNamespace, Error> {
    let mut ns = LinuxNamespaceBuilder::default().typ(typ);
    if let Some(p) = path {
        ns = ns.path(p);
    }
    ns.build().map_err(oci_err)
}

fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access.to_owned());
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap_or_default()
}

pub(super) fn oci_err(e: oci_spec::OciSpecError) -> Error {
    Error::InvalidSpec(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_defaults_to_the_absolute_skiff_parent() {
        let mut c = ContainerSpec::new("abc", "/rootfs", vec!["true".into()]);
        assert_eq!(c.cgroups_path(), "/skiff/abc");
        c.cgroup_parent = Some("/custom/".into());
        assert_eq!(c.cgroups_path(), "/custom/abc");
        c.cgroup_parent = Some("/".into());
        assert_eq!(c.cgroups_path(), "/abc");
    }
}
