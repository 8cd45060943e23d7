//! docker's seccomp profiles: the default one, and docker's profile format for
//! `--security-opt seccomp=FILE`.
//!
//! A docker profile is an OCI `LinuxSeccomp` plus conditions: an `archMap` (the host's
//! architecture and its sub-architectures), and per rule `includes` / `excludes` on
//! capabilities, host architecture and minimum kernel version. Resolving it against the
//! container's bounding capabilities and the host gives the plain OCI profile a runtime loads.
//! The rules follow moby/profiles `seccomp_linux.go` (`setupSeccomp`):
//!
//! - a rule is dropped if the host arch is in `excludes.arches`, if *any* of `excludes.caps` is
//!   held, or if the kernel is at least `excludes.minKernel`;
//! - then dropped unless the host arch is in `includes.arches` (when given), *all* of
//!   `includes.caps` are held, and the kernel is at least `includes.minKernel`.
//!
//! The default profile is docker's own `default.json` (moby/profiles, Apache-2.0, license in
//! `docker-seccomp-default.LICENSE`), embedded as is, so skiff allows and denies exactly the
//! syscalls docker does. Like docker, the caller gives a privileged container no seccomp
//! profile unless the user names one.

use std::path::PathBuf;
use std::sync::OnceLock;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall,
};
use serde::Deserialize;

/// docker's default profile, byte for byte.
const DOCKER_DEFAULT_PROFILE: &[u8] = include_bytes!("docker-seccomp-default.json");

/// A seccomp profile that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeccompError {
    /// Not JSON, or not docker's profile format.
    #[error("decoding seccomp profile failed: {0}")]
    Decode(#[source] serde_json::Error),
    /// No `defaultAction` and no `syscalls`: docker runs such a container without seccomp.
    /// The caller decides whether that means `seccomp=unconfined`.
    #[error(
        "seccomp profile has no defaultAction and no syscalls \
         (for no filter at all, use seccomp=unconfined)"
    )]
    Empty,
    /// Rules without a `defaultAction` to fall back on.
    #[error("seccomp profile has syscalls but no defaultAction")]
    MissingDefaultAction,
    #[error(
        "both 'architectures' and 'archMap' are specified in the seccomp profile, \
         use either 'architectures' or 'archMap'"
    )]
    ArchitecturesAndArchMap,
    #[error(
        "both 'name' and 'names' are specified in the seccomp profile (syscalls[{index}]), \
         use either 'name' or 'names'"
    )]
    NameAndNames { index: usize },
    #[error("seccomp architecture {0:?} is not supported")]
    UnsupportedArch(String),
    /// A rule depends on the kernel version and the running one could not be read.
    #[error("cannot read the running kernel's version: {0}")]
    KernelVersion(String),
    /// oci-spec refused a value while building the OCI profile.
    #[error("building the OCI seccomp profile failed: {0}")]
    Spec(#[source] oci_spec::OciSpecError),
}

/// docker's default seccomp profile resolved for a container holding `capabilities` (its
/// bounding set) on this host: default action `SCMP_ACT_ERRNO` with EPERM, the host's
/// architectures (x86_64: `SCMP_ARCH_X86_64`, `SCMP_ARCH_X86`, `SCMP_ARCH_X32`), and the
/// allowed syscalls with their argument and capability conditions. Where the running kernel's
/// version cannot be read, rules that need a newer kernel are left out.
pub fn default_profile(capabilities: &[String]) -> LinuxSeccomp {
    static PARSED: OnceLock<Profile> = OnceLock::new();
    let profile = PARSED.get_or_init(|| match parse(DOCKER_DEFAULT_PROFILE) {
        Ok(profile) => profile,
        Err(err) => panic!("the embedded default seccomp profile is invalid: {err}"),
    });
    // The default profile's one kernel condition (ptrace and process_vm_* need 4.8, which
    // fixed a ptrace-based seccomp bypass) is not granted on a host whose version is unreadable.
    let host = Host::current();
    let old_kernel = host.clone().with_kernel(Ok((0, 0)));
    match resolve(profile, capabilities, &host)
        .or_else(|_| resolve(profile, capabilities, &old_kernel))
    {
        Ok(seccomp) => seccomp,
        Err(err) => panic!("the embedded default seccomp profile: {err}"),
    }
}

/// A docker-format profile (`--security-opt seccomp=FILE`) resolved like docker's
/// `LoadProfile`: for a container holding `capabilities` (its bounding set) on this host.
pub fn profile_from_docker_json(
    json: &[u8],
    capabilities: &[String],
) -> Result<LinuxSeccomp, SeccompError> {
    resolve(&parse(json)?, capabilities, &Host::current())
}

/// docker's profile format (moby/profiles `seccomp.go`). Field names as docker writes them.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    default_action: Option<LinuxSeccompAction>,
    default_errno_ret: Option<u32>,
    architectures: Option<Vec<String>>,
    arch_map: Option<Vec<ArchMapEntry>>,
    flags: Option<Vec<LinuxSeccompFilterFlag>>,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
    syscalls: Option<Vec<Rule>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArchMapEntry {
    architecture: String,
    sub_architectures: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    /// Deprecated single-name form.
    name: Option<String>,
    names: Option<Vec<String>>,
    action: LinuxSeccompAction,
    errno_ret: Option<u32>,
    args: Option<Vec<Arg>>,
    includes: Option<Filter>,
    excludes: Option<Filter>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Arg {
    index: usize,
    value: u64,
    value_two: Option<u64>,
    op: LinuxSeccompOperator,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    caps: Option<Vec<String>>,
    arches: Option<Vec<String>>,
    #[serde(default, deserialize_with = "min_kernel")]
    min_kernel: Option<(u64, u64)>,
}

/// docker's `minKernel`: exactly `<kernel>.<major>`, each 0..=255, not `0.0`; empty = none.
/// Checked while decoding, as docker does.
fn min_kernel<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Option<(u64, u64)>, D::Error> {
    let version = Option::<String>::deserialize(de)?.unwrap_or_default();
    if version.is_empty() {
        return Ok(None);
    }
    let parsed = version
        .split_once('.')
        .and_then(|(kernel, major)| Some((kernel.parse::<u8>().ok()?, major.parse::<u8>().ok()?)));
    match parsed {
        Some((kernel, major)) if (kernel, major) != (0, 0) => {
            Ok(Some((kernel.into(), major.into())))
        }
        _ => Err(serde::de::Error::custom(format!(
            r#"invalid kernel version {version:?}, expected "<kernel>.<major>""#
        ))),
    }
}

/// Parses docker's format.
fn parse(json: &[u8]) -> Result<Profile, SeccompError> {
    serde_json::from_slice(json).map_err(SeccompError::Decode)
}

/// What a profile's conditions are resolved against besides the capabilities.
#[derive(Debug, Clone)]
struct Host {
    /// docker's name for the architecture (`amd64`, `arm64`, `x86`, `ppc64le`, ...), as used in
    /// `includes.arches` / `excludes.arches`; empty where docker has none.
    arch: &'static str,
    /// `<kernel>.<major>` of the running kernel.
    kernel: Result<(u64, u64), String>,
}

impl Host {
    fn current() -> Host {
        static KERNEL: OnceLock<Result<(u64, u64), String>> = OnceLock::new();
        let kernel = KERNEL.get_or_init(|| {
            let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .map_err(|err| format!("/proc/sys/kernel/osrelease: {err}"))?;
            parse_kernel_release(release.trim())
                .ok_or_else(|| format!("unrecognised kernel release {:?}", release.trim()))
        });
        Host {
            arch: native_arch(),
            kernel: kernel.clone(),
        }
    }

    fn with_kernel(self, kernel: Result<(u64, u64), String>) -> Host {
        Host { kernel, ..self }
    }

    fn kernel_at_least(&self, min: (u64, u64)) -> Result<bool, SeccompError> {
        match &self.kernel {
            Ok(running) => Ok(*running >= min),
            Err(err) => Err(SeccompError::KernelVersion(err.clone())),
        }
    }
}

/// `6.1.0-18-amd64` -> (6, 1); like docker, only the first two numbers count.
fn parse_kernel_release(release: &str) -> Option<(u64, u64)> {
    let digits = |s: &str| -> Option<u64> {
        let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        s[..end].parse().ok()
    };
    let (kernel, rest) = release.split_once('.')?;
    Some((kernel.parse().ok()?, digits(rest)?))
}

/// docker's (libseccomp's) name for the architecture skiff was built for; empty where docker
/// has none.
fn native_arch() -> &'static str {
    let little = cfg!(target_endian = "little");
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc" => "ppc",
        "powerpc64" if little => "ppc64le",
        "powerpc64" => "ppc64",
        "mips64" if little => "mipsel64",
        "mips" if little => "mipsle",
        arch @ ("x86" | "arm" | "s390x" | "riscv64" | "loongarch64" | "mips64") => arch,
        _ => "",
    }
}

/// The `archMap` key for docker's architecture name.
fn seccomp_arch_name(native: &str) -> Option<&'static str> {
    #[rustfmt::skip]
    const NAMES: [(&str, &str); 14] = [
        ("x86", "SCMP_ARCH_X86"), ("amd64", "SCMP_ARCH_X86_64"), ("arm", "SCMP_ARCH_ARM"),
        ("arm64", "SCMP_ARCH_AARCH64"), ("loongarch64", "SCMP_ARCH_LOONGARCH64"),
        ("mips64", "SCMP_ARCH_MIPS64"), ("mipsel64", "SCMP_ARCH_MIPSEL64"),
        ("mipsle", "SCMP_ARCH_MIPSEL"), ("ppc", "SCMP_ARCH_PPC"), ("ppc64", "SCMP_ARCH_PPC64"),
        ("ppc64le", "SCMP_ARCH_PPC64LE"), ("riscv64", "SCMP_ARCH_RISCV64"),
        ("s390", "SCMP_ARCH_S390"), ("s390x", "SCMP_ARCH_S390X"),
    ];
    NAMES.iter().find(|(n, _)| *n == native).map(|(_, s)| *s)
}

fn oci_arch(name: &str) -> Result<Arch, SeccompError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| SeccompError::UnsupportedArch(name.to_string()))
}

/// docker's `setupSeccomp`.
fn resolve(
    profile: &Profile,
    capabilities: &[String],
    host: &Host,
) -> Result<LinuxSeccomp, SeccompError> {
    let rules = profile.syscalls.as_deref().unwrap_or_default();
    let default_action = match profile.default_action {
        Some(action) => action,
        None if rules.is_empty() => return Err(SeccompError::Empty),
        None => return Err(SeccompError::MissingDefaultAction),
    };
    let listed = profile.architectures.as_deref().unwrap_or_default();
    let arch_map = profile.arch_map.as_deref().unwrap_or_default();
    if !listed.is_empty() && !arch_map.is_empty() {
        return Err(SeccompError::ArchitecturesAndArchMap);
    }
    let mut architectures = listed
        .iter()
        .map(|a| oci_arch(a))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(host_arch) = seccomp_arch_name(host.arch) {
        if let Some(entry) = arch_map.iter().find(|e| e.architecture == host_arch) {
            architectures.push(oci_arch(&entry.architecture)?);
            for sub in entry.sub_architectures.iter().flatten() {
                architectures.push(oci_arch(sub)?);
            }
        }
    }

    let mut syscalls = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let names = match (&rule.name, &rule.names) {
            (Some(name), Some(names)) if !name.is_empty() && !names.is_empty() => {
                return Err(SeccompError::NameAndNames { index })
            }
            (Some(name), _) if !name.is_empty() => vec![name.clone()],
            (_, names) => names.clone().unwrap_or_default(),
        };
        if !applies(rule, capabilities, host)? {
            continue;
        }
        let mut syscall = LinuxSyscall::default();
        syscall
            .set_names(names)
            .set_action(rule.action)
            .set_errno_ret(rule.errno_ret)
            .set_args(match &rule.args {
                Some(args) => Some(args.iter().map(oci_arg).collect::<Result<_, _>>()?),
                None => None,
            });
        syscalls.push(syscall);
    }

    let mut seccomp = LinuxSeccomp::default();
    seccomp
        .set_default_action(default_action)
        .set_default_errno_ret(profile.default_errno_ret)
        .set_architectures((!architectures.is_empty()).then_some(architectures))
        .set_flags(profile.flags.clone())
        .set_listener_path(profile.listener_path.clone())
        .set_listener_metadata(profile.listener_metadata.clone())
        .set_syscalls((!syscalls.is_empty()).then_some(syscalls));
    Ok(seccomp)
}

/// Whether a rule survives its `excludes` and `includes` on this host for these capabilities.
fn applies(rule: &Rule, capabilities: &[String], host: &Host) -> Result<bool, SeccompError> {
    let held = |cap: &String| capabilities.contains(cap);
    if let Some(excludes) = &rule.excludes {
        if excludes.arches.iter().flatten().any(|a| a == host.arch)
            || excludes.caps.iter().flatten().any(held)
        {
            return Ok(false);
        }
        if let Some(min) = excludes.min_kernel {
            if host.kernel_at_least(min)? {
                return Ok(false);
            }
        }
    }
    if let Some(includes) = &rule.includes {
        if let Some(arches) = includes.arches.as_ref().filter(|a| !a.is_empty()) {
            if !arches.iter().any(|a| a == host.arch) {
                return Ok(false);
            }
        }
        if !includes.caps.iter().flatten().all(held) {
            return Ok(false);
        }
        if let Some(min) = includes.min_kernel {
            if !host.kernel_at_least(min)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// docker copies an argument as is; a zero `valueTwo` is omitted, as Go's `omitempty` does.
fn oci_arg(arg: &Arg) -> Result<LinuxSeccompArg, SeccompError> {
    let builder = LinuxSeccompArgBuilder::default()
        .index(arg.index)
        .value(arg.value)
        .op(arg.op);
    let builder = match arg.value_two.filter(|&v| v != 0) {
        Some(two) => builder.value_two(two),
        None => builder,
    };
    builder.build().map_err(SeccompError::Spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeSet;

    /// One (syscall, action, errnoRet, argument conditions) a filter contains.
    type Entry = (String, String, Option<u64>, Vec<String>);

    fn host(arch: &'static str, kernel: (u64, u64)) -> Host {
        Host {
            arch,
            kernel: Ok(kernel),
        }
    }

    /// `""`: docker's default capabilities, `"+CAP_X"`: those and CAP_X, `"ALL"`: all 41.
    fn caps(spec: &str) -> Vec<String> {
        let mut caps = crate::defaults::default_capabilities();
        match spec {
            "ALL" => caps = crate::defaults::CAPABILITIES.map(String::from).to_vec(),
            "NONE" => caps.clear(),
            _ => caps.extend(spec.strip_prefix('+').map(String::from)),
        }
        caps
    }

    fn docker_default(capabilities: &[String], host: &Host) -> LinuxSeccomp {
        resolve(&parse(DOCKER_DEFAULT_PROFILE).unwrap(), capabilities, host).unwrap()
    }

    fn strs(v: &Value) -> Vec<String> {
        let items = v.as_array().into_iter().flatten();
        items.map(|s| s.as_str().unwrap().to_string()).collect()
    }

    /// Flattens rules (docker's or OCI's JSON: the same field names) into entries.
    fn flatten<'a>(rules: impl IntoIterator<Item = &'a Value>) -> BTreeSet<Entry> {
        let mut set = BTreeSet::new();
        for rule in rules {
            let args = rule["args"].as_array().into_iter().flatten();
            let args: Vec<String> = args
                .map(|a| {
                    let (op, two) = (a["op"].as_str().unwrap(), a["valueTwo"].as_u64());
                    format!("{}:{op}:{}:{}", a["index"], a["value"], two.unwrap_or(0))
                })
                .collect();
            let action = rule["action"].as_str().unwrap();
            for name in strs(&rule["names"]) {
                set.insert((name, action.into(), rule["errnoRet"].as_u64(), args.clone()));
            }
        }
        set
    }

    fn entries(seccomp: &LinuxSeccomp) -> BTreeSet<Entry> {
        let json = serde_json::to_value(seccomp).unwrap();
        flatten(json["syscalls"].as_array().into_iter().flatten())
    }

    /// A separate, deliberately naive reading of docker's rules over the raw JSON.
    fn reference_entries(json: &[u8], caps: &[String], host: &Host) -> BTreeSet<Entry> {
        let doc: Value = serde_json::from_slice(json).unwrap();
        let (arch, kernel) = (host.arch, host.kernel.clone().unwrap());
        let version = |v: &Value| -> Option<(u64, u64)> {
            let (a, b) = v.as_str()?.split_once('.')?;
            Some((a.parse().unwrap(), b.parse().unwrap()))
        };
        let rules = doc["syscalls"].as_array().unwrap().iter();
        flatten(rules.filter(|rule| {
            let (inc, exc) = (&rule["includes"], &rule["excludes"]);
            let arches = strs(&inc["arches"]);
            !(strs(&exc["arches"]).iter().any(|a| a == arch)
                || strs(&exc["caps"]).iter().any(|c| caps.contains(c))
                || version(&exc["minKernel"]).is_some_and(|v| kernel >= v)
                || (!arches.is_empty() && !arches.iter().any(|a| a == arch))
                || !strs(&inc["caps"]).iter().all(|c| caps.contains(c))
                || version(&inc["minKernel"]).is_some_and(|v| kernel < v))
        }))
    }

    /// The argument conditions of each rule that allows `name` (`[[]]`: unconditionally).
    fn allowed(seccomp: &LinuxSeccomp, name: &str) -> Vec<Vec<String>> {
        let entries = entries(seccomp).into_iter();
        let allows = entries.filter(|(n, action, _, _)| n == name && action == "SCMP_ACT_ALLOW");
        allows.map(|(_, _, _, args)| args).collect()
    }

    #[test]
    fn resolution_equals_a_naive_reading_of_dockers_file() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let reference = dir.join("../../../shared/reference/docker-seccomp-default.json");
        let json = std::fs::read(&reference).unwrap_or_else(|err| {
            eprintln!("{}: {err}; embedded copy only", reference.display());
            DOCKER_DEFAULT_PROFILE.to_vec()
        });
        assert_eq!(json, DOCKER_DEFAULT_PROFILE, "embedded copy differs");
        for arch in ["amd64", "arm64", "s390x", "ppc64le", "riscv64", "x86"] {
            for kernel in [(4, 4), (4, 8), (6, 18)] {
                for spec in ["NONE", "", "+CAP_SYS_ADMIN", "+CAP_SYS_PTRACE", "ALL"] {
                    let (h, c) = (host(arch, kernel), caps(spec));
                    let ours = entries(&docker_default(&c, &h));
                    assert_eq!(
                        ours,
                        reference_entries(&json, &c, &h),
                        "{arch} {kernel:?} {spec}"
                    );
                }
            }
        }
    }

    const ALWAYS: &[&str] = &[""];
    const NEVER: &[&str] = &[];

    type Fact = (
        &'static str,
        &'static str,
        (u64, u64),
        &'static str,
        &'static [&'static str],
    );

    /// Known facts of docker's default profile: (capabilities, arch, kernel, syscalls, the
    /// argument conditions under which each is allowed, one string per rule).
    #[rustfmt::skip]
    const FACTS: &[Fact] = &[
        ("", "amd64", (6, 1), "read chroot arch_prctl modify_ldt ptrace", ALWAYS),
        // clone3 gets ENOSYS instead, so that libcs fall back to clone
        ("", "amd64", (6, 1), "mount umount2 unshare setns reboot kexec_load bpf clone3", NEVER),
        // clone without CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET (0x7e020000)
        ("", "amd64", (6, 1), "clone", &["0:SCMP_CMP_MASKED_EQ:2114060288:0"]),
        ("", "s390x", (6, 1), "clone", &["1:SCMP_CMP_MASKED_EQ:2114060288:0"]),
        // PER_LINUX, UNAME26 (0x20000), UNAME26|PER_LINUX32, 0xffffffff (query), PER_LINUX32
        ("", "amd64", (6, 1), "personality", &["0:SCMP_CMP_EQ:0:0", "0:SCMP_CMP_EQ:131072:0",
            "0:SCMP_CMP_EQ:131080:0", "0:SCMP_CMP_EQ:4294967295:0", "0:SCMP_CMP_EQ:8:0"]),
        // every address family but AF_ALG (38) and AF_VSOCK (40)
        ("", "amd64", (6, 1), "socket",
            &["0:SCMP_CMP_EQ:39:0", "0:SCMP_CMP_GT:40:0", "0:SCMP_CMP_LT:38:0"]),
        ("", "amd64", (4, 8), "ptrace process_vm_readv", ALWAYS),
        ("", "amd64", (4, 4), "ptrace process_vm_readv", NEVER),
        ("+CAP_SYS_PTRACE", "amd64", (4, 4), "ptrace process_vm_readv", ALWAYS),
        ("", "arm64", (6, 1), "arm_fadvise64_64", ALWAYS),
        ("", "arm64", (6, 1), "arch_prctl modify_ldt", NEVER),
        ("+CAP_SYS_ADMIN", "amd64", (6, 1), "mount umount2 unshare setns clone clone3", ALWAYS),
        ("+CAP_SYS_ADMIN", "amd64", (6, 1), "reboot kexec_load", NEVER),
        ("+CAP_SYS_BOOT", "amd64", (6, 1), "reboot", ALWAYS),
        ("ALL", "amd64", (6, 1), "reboot init_module perf_event_open mount", ALWAYS),
        ("ALL", "amd64", (6, 1), "kexec_load kexec_file_load", NEVER),
    ];

    #[test]
    fn default_profile_known_facts() {
        for &(spec, arch, kernel, names, expected) in FACTS {
            let seccomp = docker_default(&caps(spec), &host(arch, kernel));
            for name in names.split(' ') {
                let rules: Vec<String> = allowed(&seccomp, name)
                    .iter()
                    .map(|a| a.join(","))
                    .collect();
                assert_eq!(rules, expected, "{spec} {arch} {kernel:?} {name}");
            }
        }
        let amd64 = host("amd64", (6, 1));
        let enosys = ("clone3".into(), "SCMP_ACT_ERRNO".into(), Some(38), vec![]);
        assert!(entries(&docker_default(&caps(""), &amd64)).contains(&enosys));
        let admin = entries(&docker_default(&caps("+CAP_SYS_ADMIN"), &amd64));
        assert!(!admin.iter().any(|entry| entry.1 == "SCMP_ACT_ERRNO"));
    }

    #[test]
    fn default_profile_denies_with_eperm_on_the_hosts_architectures() {
        let seccomp = docker_default(&caps(""), &host("amd64", (6, 1)));
        assert_eq!(seccomp.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(seccomp.default_errno_ret(), Some(1));
        let x86 = [Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32];
        assert_eq!(seccomp.architectures().as_deref(), Some(&x86[..]));
        let arm = docker_default(&caps(""), &host("arm64", (6, 1)));
        let arm64 = [Arch::ScmpArchAarch64, Arch::ScmpArchArm];
        assert_eq!(arm.architectures().as_deref(), Some(&arm64[..]));
        // The live host resolves too, with its own kernel.
        let live = default_profile(&caps(""));
        assert_eq!(allowed(&live, "read"), [[""; 0]]);
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(live.architectures().as_deref(), Some(&x86[..]));
        }
        let loaded = profile_from_docker_json(DOCKER_DEFAULT_PROFILE, &caps("+CAP_BPF"));
        assert_eq!(loaded.unwrap(), default_profile(&caps("+CAP_BPF")));
    }

    fn load(profile: Value, host: &Host) -> Result<LinuxSeccomp, SeccompError> {
        resolve(&parse(profile.to_string().as_bytes())?, &caps(""), host)
    }

    #[test]
    fn docker_json_old_and_new_forms_resolve() {
        let op = "SCMP_CMP_MASKED_EQ";
        let profile = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"], "syscalls": [
            {"name": "chmod", "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 7, "valueTwo": 0, "op": op}]},
            {"names": ["kill"], "action": "SCMP_ACT_LOG", "comment": "x",
             "args": [{"index": 0, "value": 7, "valueTwo": 5, "op": op}]}]});
        // "name" becomes "names", the comment goes, and a zero valueTwo is omitted (omitempty).
        let expected = json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"], "syscalls": [
            {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 7, "op": op}]},
            {"names": ["kill"], "action": "SCMP_ACT_LOG",
             "args": [{"index": 0, "value": 7, "valueTwo": 5, "op": op}]}]});
        let resolved = load(profile, &host("amd64", (6, 1))).unwrap();
        assert_eq!(serde_json::to_value(resolved).unwrap(), expected);
    }

    #[test]
    fn docker_json_excludes_and_includes() {
        fn rule(name: &str, key: &str, filter: Value) -> Value {
            json!({"names": [name], "action": "SCMP_ACT_ALLOW", key: filter})
        }
        let profile = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            rule("a", "excludes", json!({"minKernel": "5.10"})),
            rule("b", "excludes", json!({"caps": ["CAP_KILL", "CAP_BPF"]})),
            rule("c", "includes", json!({"caps": ["CAP_KILL", "CAP_BPF"]})),
            rule("d", "includes", json!({"arches": [], "caps": []})),
            rule("e", "excludes", json!({"arches": ["amd64"]})),
            rule("f", "includes", json!({"minKernel": ""}))]});
        let names = |h: Host| -> Vec<String> {
            let entries = entries(&load(profile.clone(), &h).unwrap());
            entries.into_iter().map(|e| e.0).collect()
        };
        assert_eq!(names(host("amd64", (5, 10))), ["d", "f"]);
        assert_eq!(names(host("arm64", (5, 9))), ["a", "d", "e", "f"]);
        // A kernel condition on a host whose version is unknown is an error, as in docker.
        let unknown = host("amd64", (0, 0)).with_kernel(Err("no /proc".into()));
        let err = load(profile, &unknown).unwrap_err();
        assert!(matches!(err, SeccompError::KernelVersion(_)));
    }

    #[test]
    fn docker_json_errors() {
        let amd64 = host("amd64", (6, 1));
        let err = |profile: Value| load(profile, &amd64).unwrap_err().to_string();
        let decode = profile_from_docker_json(b"not json", &[]).unwrap_err();
        assert!(matches!(decode, SeccompError::Decode(_)));
        let read = json!({"names": ["read"], "action": "SCMP_ACT_ALLOW"});
        let kill = json!({"name": "kill", "names": ["kill"], "action": "SCMP_ACT_ALLOW"});
        let map = json!([{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": null}]);
        let errno = "SCMP_ACT_ERRNO";
        let x86 = json!(["SCMP_ARCH_X86"]);
        #[rustfmt::skip]
        let cases = [
            (json!({"defaultAction": "SCMP_ACT_NOPE"}), "decoding seccomp profile failed: "),
            (json!({}), "seccomp profile has no defaultAction and no syscalls"),
            (json!({"syscalls": [read]}), "seccomp profile has syscalls but no defaultAction"),
            (json!({"defaultAction": errno, "architectures": x86, "archMap": map}),
                "both 'architectures' and 'archMap' are specified"),
            (json!({"defaultAction": errno, "syscalls": [read, kill]}),
                "both 'name' and 'names' are specified in the seccomp profile (syscalls[1])"),
            (json!({"defaultAction": errno, "architectures": ["SCMP_ARCH_VAX"]}),
                r#"seccomp architecture "SCMP_ARCH_VAX" is not supported"#),
        ];
        for (profile, expected) in cases {
            let message = err(profile);
            assert!(message.starts_with(expected), "{message}");
        }
        for version in ["4", "4.8.1", "0.0", "x.1", "256.1", "-1.2"] {
            let mut rule = read.clone();
            rule["includes"] = json!({"minKernel": version});
            let message = err(json!({"defaultAction": errno, "syscalls": [rule]}));
            let expected =
                format!("decoding seccomp profile failed: invalid kernel version {version:?}");
            assert!(message.starts_with(&expected), "{message}");
        }
    }

    #[test]
    fn kernel_releases_parse_like_docker() {
        assert_eq!(parse_kernel_release("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel_release("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_kernel_release("5.15+"), Some((5, 15)));
        assert_eq!(parse_kernel_release("linux"), None);
        assert!(Host::current().kernel.is_ok());
    }
}
