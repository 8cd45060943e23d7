//! What docker gives a container by default: capabilities, masked and read-only paths, the
//! standard mounts, the standard device nodes and the device cgroup rules.
//!
//! Each list follows current moby (`daemon/pkg/oci/defaults.go`, `daemon/pkg/oci/caps/`,
//! `daemon/oci_linux.go`); the tests pin them. Applying them (user mounts overriding defaults,
//! `--ipc none` dropping /dev/shm, privileged clearing masked and read-only paths) is the
//! caller's job; this module only says what the defaults are.

use std::path::PathBuf;
use std::sync::OnceLock;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Mount};

/// The `PATH` a container gets when its image sets none (moby's `DefaultPathEnv`).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Size of /dev/shm when `--shm-size` is not given: 64 MiB, docker's `DefaultShmSize`.
pub const DEFAULT_SHM_SIZE: u64 = 64 * 1024 * 1024;

/// Every capability skiff knows, indexed by its number (linux/capability.h, up to 5.9).
#[rustfmt::skip]
pub(crate) const CAPABILITIES: [&str; 41] = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", // 0
    "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", // 4
    "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", // 8
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", // 12
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", // 16
    "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", // 20
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", // 24
    "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", // 28
    "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", // 32
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", // 36
    "CAP_CHECKPOINT_RESTORE", // 40
];

/// docker's 14 default capabilities, in docker's order.
#[rustfmt::skip]
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

/// A `--cap-add` / `--cap-drop` name that cannot be granted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapabilityError {
    /// Not a Linux capability name at all.
    #[error("unknown capability: {0:?}")]
    Unknown(String),
    /// A real capability that this kernel lacks or that skiff itself does not hold.
    #[error(
        "capability not supported by your kernel or not available in the current environment: {0:?}"
    )]
    Unavailable(String),
}

/// docker's default capability set (`caps.DefaultCapabilities`).
pub fn default_capabilities() -> Vec<String> {
    DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
}

/// Every capability a container can be given here: those the running kernel knows
/// (`/proc/sys/kernel/cap_last_cap`) and that are in skiff's own bounding set (docker likewise
/// takes the daemon's own capabilities). For `--privileged` and `--cap-add ALL`.
pub fn all_capabilities() -> Vec<String> {
    static ALL: OnceLock<Vec<String>> = OnceLock::new();
    ALL.get_or_init(|| {
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let bounding = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_cap_bounding(&s));
        available_capabilities(last_cap, bounding)
    })
    .clone()
}

/// The names numbered up to `last_cap` and present in the `bounding` bitmap (either unknown:
/// no limit from it; an empty bitmap is treated as unknown, as docker does).
fn available_capabilities(last_cap: Option<usize>, bounding: Option<u64>) -> Vec<String> {
    let last = last_cap.unwrap_or(CAPABILITIES.len() - 1);
    let bounding = bounding.filter(|&b| b != 0);
    CAPABILITIES
        .iter()
        .enumerate()
        .filter(|&(n, _)| n <= last && bounding.is_none_or(|b| (b >> n) & 1 == 1))
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The `CapBnd:` bitmap of a `/proc/PID/status` text.
fn parse_cap_bounding(status: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let hex = line.strip_prefix("CapBnd:")?.trim();
        u64::from_str_radix(hex, 16).ok()
    })
}

/// docker's `TweakCapabilities` for a non-privileged container: `base` minus `drop` plus `add`.
/// Names are case-insensitive, with or without `CAP_`; `ALL` in `add` means every available
/// capability except those dropped, `ALL` in `drop` means only those added. With nothing to add
/// or drop, `base` comes back untouched. The result has no duplicates.
pub fn adjust_capabilities(
    base: &[String],
    add: &[String],
    drop: &[String],
) -> Result<Vec<String>, CapabilityError> {
    adjust_with(base, add, drop, &all_capabilities())
}

const ALL: &str = "ALL";

fn adjust_with(
    base: &[String],
    add: &[String],
    drop: &[String],
    available: &[String],
) -> Result<Vec<String>, CapabilityError> {
    if add.is_empty() && drop.is_empty() {
        return Ok(base.to_vec());
    }
    let drop = normalize(drop, available)?;
    let add = normalize(add, available)?;
    let caps: Vec<String> = if add.iter().any(|c| c == ALL) {
        available
            .iter()
            .filter(|c| !drop.contains(c))
            .cloned()
            .collect()
    } else if drop.iter().any(|c| c == ALL) {
        add
    } else {
        base.iter()
            .filter(|c| !drop.contains(c))
            .cloned()
            .chain(add)
            .collect()
    };
    let mut unique: Vec<String> = Vec::with_capacity(caps.len());
    for cap in caps {
        if !unique.contains(&cap) {
            unique.push(cap);
        }
    }
    Ok(unique)
}

/// Upper-cases, adds the `CAP_` prefix, keeps `ALL`, and rejects names that are unknown or
/// not available (docker's `NormalizeLegacyCapabilities`).
fn normalize(names: &[String], available: &[String]) -> Result<Vec<String>, CapabilityError> {
    names
        .iter()
        .map(|name| {
            let upper = name.to_ascii_uppercase();
            if upper == ALL {
                return Ok(upper);
            }
            let cap = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            if !CAPABILITIES.contains(&cap.as_str()) {
                Err(CapabilityError::Unknown(cap))
            } else if !available.contains(&cap) {
                Err(CapabilityError::Unavailable(cap))
            } else {
                Ok(cap)
            }
        })
        .collect()
}

/// docker's masked paths: hidden from the container (an empty read-only file or tmpfs over
/// them). Like current moby this includes each possible CPU's `thermal_throttle` directory
/// that exists on the host (GHSA-6fw5-f8r9-fgfm), so the list is computed once per process.
pub fn masked_paths() -> Vec<String> {
    static MASKED: OnceLock<Vec<String>> = OnceLock::new();
    MASKED
        .get_or_init(|| {
            let mut paths: Vec<String> = [
                "/proc/acpi",
                "/proc/asound",
                "/proc/interrupts", // GHSA-6fw5-f8r9-fgfm: leaks host interrupt counts
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/sys/devices/virtual/powercap", // GHSA-jq35-85cj-fj4p: RAPL energy side channel
                "/sys/firmware",
            ]
            .iter()
            .map(|p| p.to_string())
            .collect();
            for cpu in possible_cpus() {
                let path = format!("/sys/devices/system/cpu/cpu{cpu}/thermal_throttle");
                if std::path::Path::new(&path).exists() {
                    paths.push(path);
                }
            }
            paths
        })
        .clone()
}

/// The CPUs the host may ever bring online (`/sys/devices/system/cpu/possible`); docker falls
/// back to 0..=NumCPU when that file cannot be read.
fn possible_cpus() -> Vec<u32> {
    std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|s| parse_cpu_list(s.trim()))
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            (0..=u32::try_from(n).unwrap_or(1)).collect()
        })
}

/// Parses a kernel CPU list such as `0-3,8,10-11`.
fn parse_cpu_list(list: &str) -> Option<Vec<u32>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((start, end)) => cpus.extend(start.parse::<u32>().ok()?..=end.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// docker's read-only paths: remounted read-only inside the container.
pub fn readonly_paths() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .iter()
    .map(|p| p.to_string())
    .collect()
}

/// What changes docker's standard mounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// Size of /dev/shm in bytes (`--shm-size`); 0 means docker's default, 64 MiB.
    pub shm_size: u64,
    /// Keep /sys and /sys/fs/cgroup read-only even for a privileged container (docker's
    /// `--security-opt writable-cgroups=false` idea). Non-privileged containers always get
    /// them read-only.
    pub read_only_sys: bool,
    /// `--privileged`: /sys and /sys/fs/cgroup become writable, as in docker.
    pub privileged: bool,
}

/// docker's standard mounts with exactly docker's options, in docker's order: /proc, /dev,
/// /dev/pts, /sys, /sys/fs/cgroup, /dev/mqueue, /dev/shm. The caller drops those a user mount
/// replaces (and everything under /dev when the user mounts /dev, and /dev/shm for
/// `--ipc none`), as docker does.
pub fn default_mounts(opts: &MountOptions) -> Vec<Mount> {
    let writable_sys = opts.privileged && !opts.read_only_sys;
    let shm_size = match opts.shm_size {
        0 => DEFAULT_SHM_SIZE,
        size => size,
    };
    let shm_size = format!("size={shm_size}");
    #[rustfmt::skip]
    let mounts: [(&str, &str, &str, &[&str]); 7] = [
        ("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        ("/dev", "tmpfs", "tmpfs", &["nosuid", "strictatime", "mode=755", "size=65536k"]),
        ("/dev/pts", "devpts", "devpts",
            &["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]),
        ("/sys", "sysfs", "sysfs", &["nosuid", "noexec", "nodev", "ro"]),
        ("/sys/fs/cgroup", "cgroup", "cgroup", &["ro", "nosuid", "noexec", "nodev"]),
        ("/dev/mqueue", "mqueue", "mqueue", &["nosuid", "noexec", "nodev"]),
        ("/dev/shm", "tmpfs", "shm", &["nosuid", "noexec", "nodev", "mode=1777", &shm_size]),
    ];
    mounts
        .iter()
        .map(|&(destination, typ, source, options)| {
            let writable = writable_sys && destination.starts_with("/sys");
            let options = options.iter().filter(|&&o| !(writable && o == "ro"));
            let mut m = Mount::default();
            m.set_destination(PathBuf::from(destination))
                .set_typ(Some(typ.to_string()))
                .set_source(Some(PathBuf::from(source)))
                .set_options(Some(options.map(|o| o.to_string()).collect()));
            m
        })
        .collect()
}

/// The standard device nodes every container gets: /dev/null (1:3), zero (1:5), full (1:7),
/// random (1:8), urandom (1:9) and tty (5:0), character devices with mode 0666. docker lists
/// none of them in `linux.devices` because the OCI runtime creates exactly these anyway
/// (runtime-spec "Default Devices", along with /dev/ptmx -> pts/ptmx and the console);
/// listing them is equivalent and lets callers derive cgroup rules and node lists from them.
pub fn default_devices() -> Vec<LinuxDevice> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .iter()
    .map(|&(path, major, minor)| {
        let mut device = LinuxDevice::default();
        device
            .set_path(PathBuf::from(path))
            .set_typ(LinuxDeviceType::C)
            .set_major(major)
            .set_minor(minor)
            .set_file_mode(Some(0o666));
        device
    })
    .collect()
}

/// docker's device cgroup rules, in docker's order: deny everything, allow /dev/zero (1:5),
/// null (1:3), urandom (1:9), random (1:8), tty (5:0) and console (5:1), deny fuse (10:229).
/// runc and crun append their own defaults after these (full 1:7, ptmx 5:2, pts 136:*, mknod
/// of any node; crun also tun 10:200), which is how docker containers reach those devices.
pub fn default_device_cgroup_rules() -> Vec<LinuxDeviceCgroup> {
    let c = Some(LinuxDeviceType::C);
    vec![
        device_rule(false, None, None, None),
        device_rule(true, c, Some(1), Some(5)),
        device_rule(true, c, Some(1), Some(3)),
        device_rule(true, c, Some(1), Some(9)),
        device_rule(true, c, Some(1), Some(8)),
        device_rule(true, c, Some(5), Some(0)),
        device_rule(true, c, Some(5), Some(1)),
        device_rule(false, c, Some(10), Some(229)),
    ]
}

fn device_rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
) -> LinuxDeviceCgroup {
    let mut rule = LinuxDeviceCgroup::default();
    rule.set_allow(allow)
        .set_typ(typ)
        .set_major(major)
        .set_minor(minor)
        .set_access(Some("rwm".to_string()));
    rule
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn every_capability() -> Vec<String> {
        available_capabilities(Some(40), None)
    }

    #[test]
    fn default_capabilities_are_dockers_fourteen_in_order() {
        assert_eq!(
            default_capabilities().join(" "),
            "CAP_CHOWN CAP_DAC_OVERRIDE CAP_FSETID CAP_FOWNER CAP_MKNOD CAP_NET_RAW CAP_SETGID \
             CAP_SETUID CAP_SETFCAP CAP_SETPCAP CAP_NET_BIND_SERVICE CAP_SYS_CHROOT CAP_KILL \
             CAP_AUDIT_WRITE"
        );
    }

    #[test]
    fn capability_numbers_match_the_kernel_header() {
        let at = |n: usize| CAPABILITIES[n];
        assert_eq!(at(0), "CAP_CHOWN");
        assert_eq!(at(21), "CAP_SYS_ADMIN");
        assert_eq!(at(24), "CAP_SYS_RESOURCE");
        assert_eq!(at(37), "CAP_AUDIT_READ");
        assert_eq!(at(40), "CAP_CHECKPOINT_RESTORE");
    }

    #[test]
    fn available_capabilities_follow_cap_last_cap_and_the_bounding_set() {
        assert_eq!(every_capability().len(), 41);
        let old_kernel = available_capabilities(Some(37), None);
        assert_eq!(
            old_kernel.last().map(String::as_str),
            Some("CAP_AUDIT_READ")
        );
        // This sandbox's CapBnd: everything but CAP_SYS_RESOURCE (bit 24).
        let bounding = parse_cap_bounding("Name:\tx\nCapBnd:\t000001fffeffffff\nCapAmb:\t0\n");
        assert_eq!(bounding, Some(0x1fffeffffff));
        let caps = available_capabilities(Some(40), bounding);
        assert_eq!(caps.len(), 40);
        assert!(!caps.contains(&"CAP_SYS_RESOURCE".to_string()));
        assert_eq!(available_capabilities(Some(40), Some(0)).len(), 41);
        // The live host: never empty, never more than the kernel knows.
        let live = all_capabilities();
        assert!(!live.is_empty() && live.len() <= 41);
    }

    #[test]
    fn adjust_without_changes_returns_base_untouched() {
        let base = strings(&["CAP_KILL", "cap_whatever"]);
        assert_eq!(adjust_with(&base, &[], &[], &every_capability()), Ok(base));
    }

    #[test]
    fn adjust_accepts_any_case_with_or_without_prefix() {
        let all = every_capability();
        let base = default_capabilities();
        let caps = adjust_with(
            &base,
            &strings(&["sys_admin", "Cap_Net_Admin"]),
            &strings(&["CHOWN", "cap_kill"]),
            &all,
        )
        .unwrap();
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()));
        assert_eq!(caps.len(), 14);
        assert_eq!(&caps[12..], &strings(&["CAP_SYS_ADMIN", "CAP_NET_ADMIN"]));
    }

    #[test]
    fn adjust_does_not_duplicate_an_added_default() {
        let caps = adjust_with(
            &default_capabilities(),
            &strings(&["chown"]),
            &[],
            &every_capability(),
        )
        .unwrap();
        assert_eq!(caps, default_capabilities());
    }

    #[test]
    fn adjust_all() {
        let all = every_capability();
        let base = default_capabilities();
        let add_all = adjust_with(&base, &strings(&["all"]), &strings(&["NET_ADMIN"]), &all);
        let add_all = add_all.unwrap();
        assert_eq!(add_all.len(), 40);
        assert!(!add_all.contains(&"CAP_NET_ADMIN".to_string()));
        let drop_all = adjust_with(&base, &strings(&["chown"]), &strings(&["ALL"]), &all);
        assert_eq!(drop_all, Ok(strings(&["CAP_CHOWN"])));
        let nothing = adjust_with(&base, &[], &strings(&["ALL"]), &all);
        assert_eq!(nothing, Ok(vec![]));
        // docker: ALL in --cap-add wins over ALL in --cap-drop.
        let both = adjust_with(&base, &strings(&["ALL"]), &strings(&["ALL"]), &all);
        assert_eq!(both, Ok(all.clone()));
        // ALL means what is available, not what skiff has names for.
        let limited = available_capabilities(Some(40), Some(0x1fffeffffff));
        let add_all = adjust_with(&base, &strings(&["ALL"]), &[], &limited).unwrap();
        assert_eq!(add_all, limited);
    }

    #[test]
    fn adjust_rejects_unknown_and_unavailable_names() {
        let all = every_capability();
        let base = default_capabilities();
        let err = adjust_with(&base, &strings(&["foo"]), &[], &all).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown capability: "CAP_FOO""#);
        let err = adjust_with(&base, &[], &strings(&["CAP_BAR"]), &all).unwrap_err();
        assert_eq!(err, CapabilityError::Unknown("CAP_BAR".into()));
        let limited = available_capabilities(Some(40), Some(0x1fffeffffff));
        let err = adjust_with(&base, &strings(&["sys_resource"]), &[], &limited).unwrap_err();
        assert_eq!(
            err.to_string(),
            "capability not supported by your kernel or not available in the current \
             environment: \"CAP_SYS_RESOURCE\""
        );
    }

    #[test]
    fn masked_and_readonly_paths_are_dockers() {
        let masked = masked_paths();
        assert_eq!(
            masked[..12].join(" "),
            "/proc/acpi /proc/asound /proc/interrupts /proc/kcore /proc/keys /proc/latency_stats \
             /proc/sched_debug /proc/scsi /proc/timer_list /proc/timer_stats \
             /sys/devices/virtual/powercap /sys/firmware"
        );
        assert!(masked[12..]
            .iter()
            .all(|p| p.ends_with("/thermal_throttle")));
        assert_eq!(
            readonly_paths(),
            strings(&[
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger"
            ])
        );
    }

    #[test]
    fn cpu_lists_parse_like_the_kernel_writes_them() {
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("0-x"), None);
        assert!(!possible_cpus().is_empty());
    }

    /// docker's mounts as `docker run` writes them into config.json (moby's defaults.go plus
    /// withMounts' shm size), with `sys_ro` / `cgroup_ro` saying where "ro" stays.
    fn docker_mounts(shm: &str, sys_ro: bool) -> serde_json::Value {
        let sys: Vec<&str> = ["nosuid", "noexec", "nodev", "ro"]
            .into_iter()
            .filter(|&o| sys_ro || o != "ro")
            .collect();
        let cgroup: Vec<&str> = ["ro", "nosuid", "noexec", "nodev"]
            .into_iter()
            .filter(|&o| sys_ro || o != "ro")
            .collect();
        json!([
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": cgroup},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", shm]},
        ])
    }

    fn mounts_json(opts: &MountOptions) -> serde_json::Value {
        serde_json::to_value(default_mounts(opts)).unwrap()
    }

    #[test]
    fn default_mounts_match_docker_exactly() {
        let opts = MountOptions::default();
        assert_eq!(mounts_json(&opts), docker_mounts("size=67108864", true));
        let opts = MountOptions {
            shm_size: 1 << 30,
            ..MountOptions::default()
        };
        assert_eq!(mounts_json(&opts), docker_mounts("size=1073741824", true));
    }

    #[test]
    fn privileged_mounts_sys_and_cgroup_writable_unless_asked_not_to() {
        let opts = MountOptions {
            privileged: true,
            ..MountOptions::default()
        };
        assert_eq!(mounts_json(&opts), docker_mounts("size=67108864", false));
        let opts = MountOptions {
            privileged: true,
            read_only_sys: true,
            shm_size: 0,
        };
        assert_eq!(mounts_json(&opts), docker_mounts("size=67108864", true));
        let opts = MountOptions {
            read_only_sys: false,
            ..MountOptions::default()
        };
        assert_eq!(mounts_json(&opts), docker_mounts("size=67108864", true));
    }

    #[test]
    fn device_defaults_are_dockers() {
        let devices = serde_json::to_value(default_devices()).unwrap();
        fn node(path: &str, major: i64, minor: i64) -> serde_json::Value {
            json!({"path": path, "type": "c", "major": major, "minor": minor, "fileMode": 0o666})
        }
        assert_eq!(
            devices,
            json!([
                node("/dev/null", 1, 3),
                node("/dev/zero", 1, 5),
                node("/dev/full", 1, 7),
                node("/dev/random", 1, 8),
                node("/dev/urandom", 1, 9),
                node("/dev/tty", 5, 0),
            ])
        );
        let rules = serde_json::to_value(default_device_cgroup_rules()).unwrap();
        fn allow(major: i64, minor: i64) -> serde_json::Value {
            json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"})
        }
        assert_eq!(
            rules,
            json!([
                {"allow": false, "access": "rwm"},
                allow(1, 5),
                allow(1, 3),
                allow(1, 9),
                allow(1, 8),
                allow(5, 0),
                allow(5, 1),
                {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
            ])
        );
    }

    #[test]
    fn default_path_env_is_dockers() {
        assert_eq!(
            DEFAULT_PATH_ENV,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        );
    }
}
