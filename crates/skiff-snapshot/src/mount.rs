//! Mounting the mounts a snapshotter describes. The only place this crate makes mount
//! syscalls; they go through rustix's safe wrappers.

use std::path::Path;

use rustix::mount::{
    mount, mount_bind_recursive, mount_remount, unmount, MountFlags, UnmountFlags,
};

use crate::snapshotter::{Mount, SnapshotError};

fn sys_err(path: &Path) -> impl FnOnce(rustix::io::Errno) -> SnapshotError + '_ {
    move |e| SnapshotError::Io {
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Mounts `mounts` (in order) on `target`.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), SnapshotError> {
    for m in mounts {
        let readonly = m.options.iter().any(|o| o == "ro");
        match m.kind.as_str() {
            "bind" => {
                mount_bind_recursive(&m.source, target).map_err(sys_err(target))?;
                if readonly {
                    mount_remount(target, MountFlags::BIND | MountFlags::RDONLY, "")
                        .map_err(sys_err(target))?;
                }
            }
            _ => {
                let data: Vec<&str> = m
                    .options
                    .iter()
                    .map(String::as_str)
                    .filter(|o| *o != "ro" && *o != "rw")
                    .collect();
                let flags = if readonly {
                    MountFlags::RDONLY
                } else {
                    MountFlags::empty()
                };
                let data =
                    std::ffi::CString::new(data.join(",")).map_err(|e| SnapshotError::Io {
                        path: target.to_owned(),
                        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                    })?;
                mount(
                    &m.source,
                    target,
                    m.kind.as_str(),
                    flags,
                    Some(data.as_c_str()),
                )
                .map_err(sys_err(target))?;
            }
        }
    }
    Ok(())
}

/// Unmounts `target` (lazily, so a busy mount does not make cleanup fail).
pub fn unmount_all(target: &Path) -> Result<(), SnapshotError> {
    match unmount(target, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        // Not mounted (EINVAL) or already gone: nothing to undo.
        Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(sys_err(target)(e)),
    }
}

/// True if `path` is a mount point (its device differs from its parent's, or /proc says so).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(canon) = path.canonicalize() else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = canon.to_string_lossy();
    info.lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|mp| unescape(mp) == want))
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}
