//! The container's process (and an exec's): user, environment, capabilities, rlimits.

use std::path::PathBuf;

use oci_spec::runtime::{
    Capabilities, LinuxCapabilities, PosixRlimit, PosixRlimitBuilder, Process, Spec, User,
    UserBuilder,
};

use super::{oci_err, ProcessSpec, Rlimit, Security};
use crate::defaults::{self, CapabilityError};
use crate::error::Error;
use crate::host::HostInfo;

/// The `process.json` of an exec into the container whose `config.json` is `container`: the
/// new process keeps the container's capabilities (all of the host's when `privileged`),
/// no_new_privileges and, unless it names its own, its rlimits. The container's seccomp
/// filter applies to it as well (the runtime sees to that).
pub fn exec_process(
    container: &Spec,
    process_spec: &ProcessSpec,
    privileged: bool,
    host: &dyn HostInfo,
) -> Result<(Process, Vec<String>), Error> {
    let base = container.process().as_ref();
    let caps: Vec<String> = if privileged {
        host.capabilities()
    } else {
        let mut caps: Vec<String> = base
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().as_ref())
            .map(|set| set.iter().map(capability_name).collect())
            .unwrap_or_default();
        caps.sort();
        caps
    };
    let nnp = base.and_then(|p| p.no_new_privileges()).unwrap_or(false);
    let mut warnings = Vec::new();
    let mut p = process(process_spec, &caps, nnp, host, &mut warnings)?;
    if process_spec.rlimits.is_empty() {
        if let Some(r) = base.and_then(|b| b.rlimits().clone()) {
            p.set_rlimits(Some(r));
        }
    }
    Ok((p, warnings))
}

pub(super) fn process(
    spec: &ProcessSpec,
    caps: &[String],
    no_new_privileges: bool,
    host: &dyn HostInfo,
    warnings: &mut Vec<String>,
) -> Result<Process, Error> {
    if spec.args.is_empty() || spec.args[0].is_empty() {
        return Err(Error::InvalidSpec("no command specified".to_owned()));
    }
    if !spec.cwd.starts_with('/') {
        return Err(Error::InvalidSpec(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            spec.cwd
        )));
    }
    let mut user = UserBuilder::default().uid(spec.user.uid).gid(spec.user.gid);
    if !spec.user.additional_gids.is_empty() {
        user = user.additional_gids(spec.user.additional_gids.clone());
    }
    if let Some(umask) = spec.user.umask {
        user = user.umask(umask);
    }
    let set = to_capabilities(caps)?;
    // Bounding, effective and permitted hold the set; inheritable and ambient stay empty so
    // that no capability survives an execve into a non-root user (CVE-2022-24769).
    let mut capabilities = LinuxCapabilities::default();
    capabilities
        .set_bounding(Some(set.clone()))
        .set_effective(Some(set.clone()))
        .set_permitted(Some(set))
        .set_inheritable(Some(Capabilities::new()))
        .set_ambient(Some(Capabilities::new()));
    let mut p = blank_process();
    p.set_terminal(Some(spec.terminal))
        .set_user(user.build().map_err(oci_err)?)
        .set_args(Some(spec.args.clone()))
        .set_env(Some(spec.env.clone()))
        .set_cwd(PathBuf::from(&spec.cwd))
        .set_capabilities(Some(capabilities));
    if let (true, Some(size)) = (spec.terminal, spec.console_size) {
        p.set_console_size(Some(
            oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(size.height))
                .width(u64::from(size.width))
                .build()
                .map_err(oci_err)?,
        ));
    }
    if !spec.rlimits.is_empty() {
        p.set_rlimits(Some(rlimits(&spec.rlimits, host, warnings)?));
    }
    if no_new_privileges {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// A process with every optional field unset (see `spec::blank_spec`).
fn blank_process() -> Process {
    let mut p = Process::default();
    p.set_terminal(None)
        .set_console_size(None)
        .set_user(User::default())
        .set_args(None)
        .set_command_line(None)
        .set_env(None)
        .set_cwd(PathBuf::from("/"))
        .set_capabilities(None)
        .set_rlimits(None)
        .set_no_new_privileges(None)
        .set_apparmor_profile(None)
        .set_oom_score_adj(None)
        .set_selinux_label(None)
        .set_io_priority(None)
        .set_scheduler(None)
        .set_exec_cpu_affinity(None);
    p
}

/// Each limit lowered to skiff's own hard limit if it asks more: the runtime could not raise
/// it anyway without CAP_SYS_RESOURCE in the initial user namespace, and failing the whole
/// container for it (as podman does) helps nobody.
fn rlimits(
    wanted: &[Rlimit],
    host: &dyn HostInfo,
    warnings: &mut Vec<String>,
) -> Result<Vec<PosixRlimit>, Error> {
    let mut out: Vec<PosixRlimit> = Vec::with_capacity(wanted.len());
    for r in wanted {
        if r.soft > r.hard {
            return Err(Error::InvalidSpec(format!(
                "ulimit {}: soft limit {} is larger than hard limit {}",
                r.kind, r.soft, r.hard
            )));
        }
        let mut hard = r.hard;
        if let Some(max) = host.rlimit_hard(r.kind) {
            if hard > max {
                warnings.push(format!(
                    "ulimit {}: hard limit {} lowered to {}, the most this host allows",
                    r.kind, r.hard, max
                ));
                hard = max;
            }
        }
        let limit = PosixRlimitBuilder::default()
            .typ(r.kind)
            .hard(hard)
            .soft(r.soft.min(hard))
            .build()
            .map_err(oci_err)?;
        // A later --ulimit of the same kind wins, as in docker.
        out.retain(|o| o.typ() != r.kind);
        out.push(limit);
    }
    Ok(out)
}

/// The container's capabilities, by docker's rules: every capability this host can grant
/// for privileged containers; otherwise docker's defaults adjusted by `--cap-add` and
/// `--cap-drop` ([`defaults::adjust_capabilities`]).
pub fn capabilities(sec: &Security, host: &dyn HostInfo) -> Result<Vec<String>, Error> {
    if sec.privileged {
        return Ok(host.capabilities());
    }
    Ok(defaults::adjust_capabilities(
        &defaults::default_capabilities(),
        &sec.cap_add,
        &sec.cap_drop,
    )?)
}

fn to_capabilities(names: &[String]) -> Result<Capabilities, Error> {
    names
        .iter()
        .map(|n| {
            serde_json::from_value(serde_json::Value::String(n.clone()))
                .map_err(|_| Error::Capability(CapabilityError::Unknown(n.clone())))
        })
        .collect()
}

fn capability_name(cap: &oci_spec::runtime::Capability) -> String {
    match serde_json::to_value(cap) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("CAP_{cap}"),
    }
}
