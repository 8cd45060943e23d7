//! What the spec builder needs to know about the host: its cgroups, whether it has cgroup
//! namespaces and swap accounting, the hard resource limits skiff runs under, the
//! capabilities it can grant, and (for privileged containers) its devices.
//!
//! [`HostInfo`] is a trait so that golden tests build specs against a fixed, made-up host;
//! [`Host::detect`] reads the real one.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType, PosixRlimitType};

use crate::cgroups::{CgroupInfo, CgroupMode, CGROUP_ROOT};
use crate::error::{io_err, Error};
use crate::sys;

/// Facts about the host that change the generated spec.
pub trait HostInfo {
    /// The host's cgroup mode.
    fn cgroups(&self) -> &CgroupInfo;
    /// Whether the kernel has cgroup namespaces (`/proc/self/ns/cgroup`).
    fn cgroup_namespace(&self) -> bool;
    /// Whether the memory controller can limit swap (`memory.memsw.*` on v1).
    fn swap_accounting(&self) -> bool;
    /// skiff's own hard limit for `kind` (`None`: unlimited). A container never asks more.
    fn rlimit_hard(&self, kind: PosixRlimitType) -> Option<u64>;
    /// Every capability a container can be given here, `CAP_`-prefixed, in kernel order:
    /// what privileged containers get.
    fn capabilities(&self) -> Vec<String>;
    /// The host's device nodes, which privileged containers get.
    fn devices(&self) -> Result<Vec<LinuxDevice>, Error>;
}

/// The real host, detected once.
#[derive(Debug)]
pub struct Host {
    cgroups: CgroupInfo,
    cgroup_namespace: bool,
    swap_accounting: bool,
    devices: OnceLock<Vec<LinuxDevice>>,
}

impl Host {
    /// Reads the host's cgroup mode, cgroup namespace support and swap accounting.
    /// Cheap (a few small reads); devices are walked only when a privileged container asks.
    pub fn detect() -> Result<Host, Error> {
        let cgroups = CgroupInfo::detect()?;
        let swap_accounting = match cgroups.mode {
            CgroupMode::Unified => cgroups.v2_controllers.iter().any(|c| c == "memory"),
            CgroupMode::Legacy | CgroupMode::Hybrid => Path::new(CGROUP_ROOT)
                .join("memory/memory.memsw.limit_in_bytes")
                .exists(),
        };
        Ok(Host {
            cgroups,
            cgroup_namespace: Path::new("/proc/self/ns/cgroup").exists(),
            swap_accounting,
            devices: OnceLock::new(),
        })
    }
}

impl HostInfo for Host {
    fn cgroups(&self) -> &CgroupInfo {
        &self.cgroups
    }

    fn cgroup_namespace(&self) -> bool {
        self.cgroup_namespace
    }

    fn swap_accounting(&self) -> bool {
        self.swap_accounting
    }

    fn rlimit_hard(&self, kind: PosixRlimitType) -> Option<u64> {
        sys::rlimit_hard(kind)
    }

    fn capabilities(&self) -> Vec<String> {
        crate::defaults::all_capabilities()
    }

    fn devices(&self) -> Result<Vec<LinuxDevice>, Error> {
        if let Some(d) = self.devices.get() {
            return Ok(d.clone());
        }
        let mut found = Vec::new();
        walk_devices(Path::new("/dev"), &mut found)?;
        found.sort_by(|a, b| a.path().cmp(b.path()));
        Ok(self.devices.get_or_init(|| found).clone())
    }
}

/// Collects the device nodes under `dir`, skipping what the runtime mounts itself (pts,
/// shm, mqueue), the per-process `fd` view, and the console and ptmx, which the runtime sets
/// up per container. Like runc's `HostDevices`.
fn walk_devices(dir: &Path, out: &mut Vec<LinuxDevice>) -> Result<(), Error> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        // A directory that vanished or that we may not read holds nothing for us.
        Err(_) => return Ok(()),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if matches!(
                name.to_str(),
                Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
            ) {
                continue;
            }
            walk_devices(&path, out)?;
            continue;
        }
        if matches!(name.to_str(), Some("console" | "ptmx")) {
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        let (major, minor) = sys::major_minor(meta.rdev());
        out.push(device(
            path,
            typ,
            major,
            minor,
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid(),
        ));
    }
    Ok(())
}

/// A device node entry for `linux.devices`.
pub fn device(
    path: PathBuf,
    typ: LinuxDeviceType,
    major: u32,
    minor: u32,
    mode: u32,
    uid: u32,
    gid: u32,
) -> LinuxDevice {
    LinuxDeviceBuilder::default()
        .path(path)
        .typ(typ)
        .major(i64::from(major))
        .minor(i64::from(minor))
        .file_mode(mode)
        .uid(uid)
        .gid(gid)
        .build()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detected_host_lists_dev_null() {
        let host = Host::detect().unwrap();
        let devices = host.devices().unwrap();
        let null = devices
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null is a host device");
        assert_eq!((null.major(), null.minor()), (1, 3));
        assert!(!devices.iter().any(|d| d.path().starts_with("/dev/pts")));
        assert!(host.capabilities().contains(&"CAP_SYS_ADMIN".to_owned()));
        assert_eq!(host.capabilities(), crate::defaults::all_capabilities());
    }
}
