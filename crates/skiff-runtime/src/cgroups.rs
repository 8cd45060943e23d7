//! What this host's cgroups look like: v1 (legacy), v2 (unified) or hybrid; which controllers
//! sit on the v2 hierarchy; and where a runtime puts a container's `linux.cgroupsPath`.
//!
//! Only reading: skiff never changes the host's cgroup layout to please a runtime. The mode is
//! detected the way crun and runc detect it (statfs(2) of `/sys/fs/cgroup`, then of
//! `/sys/fs/cgroup/unified`), so what we conclude is what they will conclude.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{io_err, Error};
use crate::sys;

/// Where the cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

const CGROUP2_SUPER_MAGIC: u64 = 0x6367_7270;
const TMPFS_MAGIC: u64 = 0x0102_1994;

/// How the host mounts its cgroup hierarchies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupMode {
    /// cgroup v1 only: one hierarchy per controller under a tmpfs at `/sys/fs/cgroup`.
    Legacy,
    /// cgroup v1 for the controllers plus a cgroup v2 hierarchy at `/sys/fs/cgroup/unified`.
    Hybrid,
    /// cgroup v2 only, mounted at `/sys/fs/cgroup`.
    Unified,
}

/// The host's cgroup setup, as far as the runtimes care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupInfo {
    pub mode: CgroupMode,
    /// Controllers available on the v2 hierarchy (its root `cgroup.controllers`): all of
    /// them on a unified host, usually none on a hybrid one.
    pub v2_controllers: Vec<String>,
}

impl CgroupInfo {
    /// Detects the host's cgroup mode and the controllers of its v2 hierarchy.
    pub fn detect() -> Result<CgroupInfo, Error> {
        let root = Path::new(CGROUP_ROOT);
        let magic = sys::fs_magic(root).map_err(io_err(root))?;
        let (mode, v2_dir) = if magic == CGROUP2_SUPER_MAGIC {
            (CgroupMode::Unified, Some(root.to_owned()))
        } else {
            let unified = root.join("unified");
            match sys::fs_magic(&unified) {
                Ok(m) if m == CGROUP2_SUPER_MAGIC => (CgroupMode::Hybrid, Some(unified)),
                Ok(_) => (CgroupMode::Legacy, None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (CgroupMode::Legacy, None),
                Err(e) => return Err(io_err(&unified)(e)),
            }
        };
        if mode != CgroupMode::Unified && magic != TMPFS_MAGIC {
            log::debug!("{CGROUP_ROOT} is neither cgroup2 nor tmpfs (magic {magic:#x})");
        }
        let v2_controllers = match v2_dir {
            Some(dir) => {
                let file = dir.join("cgroup.controllers");
                match fs::read_to_string(&file) {
                    Ok(text) => text.split_whitespace().map(str::to_owned).collect(),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(io_err(&file)(e)),
                }
            }
            None => Vec::new(),
        };
        Ok(CgroupInfo {
            mode,
            v2_controllers,
        })
    }

    /// True on a cgroup v2 (unified) host.
    pub fn is_unified(&self) -> bool {
        self.mode == CgroupMode::Unified
    }

    /// Why crun refuses to create containers on this host, if it does: crun does not support
    /// hybrid hosts whose v2 hierarchy holds any controller ("cgroups in hybrid mode not
    /// supported, drop all controllers from cgroupv2").
    pub fn crun_refusal(&self) -> Option<String> {
        if self.mode == CgroupMode::Hybrid && !self.v2_controllers.is_empty() {
            Some(format!(
                "hybrid cgroup host whose cgroup v2 hierarchy ({CGROUP_ROOT}/unified) holds \
                 the controller(s) {}; crun supports hybrid hosts only when that hierarchy \
                 holds none",
                self.v2_controllers.join(", ")
            ))
        } else {
            None
        }
    }
}

/// One line of `/proc/<pid>/cgroup`: `hierarchy-id:controller,list:/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEntry {
    pub hierarchy: u32,
    /// The controllers (or `name=systemd`); empty for the v2 hierarchy (`0::/path`).
    pub controllers: Vec<String>,
    pub path: String,
}

/// Parses `/proc/<pid>/cgroup`.
pub fn parse_proc_cgroup(text: &str) -> Vec<CgroupEntry> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let hierarchy = parts.next()?.parse().ok()?;
            let controllers = parts.next()?;
            let path = parts.next()?;
            Some(CgroupEntry {
                hierarchy,
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                path: path.to_owned(),
            })
        })
        .collect()
}

/// A cgroup filesystem mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupMount {
    /// The cgroup path mounted (the 4th field; `/` unless this is a nested view).
    root: String,
    mount_point: PathBuf,
    v2: bool,
    /// The super options (`rw,cpu,cpuacct` or `rw,name=systemd`).
    options: Vec<String>,
}

fn parse_mountinfo(text: &str) -> Vec<CgroupMount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split(' ').collect();
            let mut right = right.split(' ');
            let fstype = right.next()?;
            let _source = right.next()?;
            let options = right.next().unwrap_or("");
            let v2 = match fstype {
                "cgroup2" => true,
                "cgroup" => false,
                _ => return None,
            };
            Some(CgroupMount {
                root: unescape_mountinfo(fields.get(3)?),
                mount_point: PathBuf::from(unescape_mountinfo(fields.get(4)?)),
                v2,
                options: options.split(',').map(str::to_owned).collect(),
            })
        })
        .collect()
}

/// Undoes the octal escapes (`\040` for a space) of /proc/self/mountinfo.
fn unescape_mountinfo(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host directories where runc puts a container whose `linux.cgroupsPath` is
/// `cgroups_path`, when runc runs in this process's cgroups: one per v1 hierarchy (and the
/// v2 one on hybrid hosts), or the single v2 directory on unified hosts.
///
/// An absolute `cgroups_path` is taken from each hierarchy's root. A relative one is taken
/// from this process's own cgroup in each hierarchy, except on unified hosts, where runc uses
/// the parent of its own cgroup (a cgroup with processes in it cannot delegate controllers).
pub fn container_dirs(info: &CgroupInfo, cgroups_path: &str) -> Result<Vec<PathBuf>, Error> {
    let own_file = Path::new("/proc/self/cgroup");
    let own = fs::read_to_string(own_file).map_err(io_err(own_file))?;
    let mountinfo_file = Path::new("/proc/self/mountinfo");
    let mountinfo = fs::read_to_string(mountinfo_file).map_err(io_err(mountinfo_file))?;
    Ok(resolve_dirs(
        info,
        &parse_proc_cgroup(&own),
        &parse_mountinfo(&mountinfo),
        cgroups_path,
    ))
}

fn resolve_dirs(
    info: &CgroupInfo,
    own: &[CgroupEntry],
    mounts: &[CgroupMount],
    cgroups_path: &str,
) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for entry in own {
        let v2 = entry.hierarchy == 0 && entry.controllers.is_empty();
        if v2 && info.mode == CgroupMode::Legacy {
            continue;
        }
        let mount = mounts.iter().find(|m| {
            if v2 {
                m.v2
            } else {
                !m.v2
                    && entry
                        .controllers
                        .iter()
                        .all(|c| m.options.iter().any(|o| o == c))
            }
        });
        let Some(mount) = mount else { continue };
        let base = if cgroups_path.starts_with('/') {
            String::new()
        } else if v2 && info.mode == CgroupMode::Unified {
            parent_of(&entry.path)
        } else {
            entry.path.clone()
        };
        let base = base
            .strip_prefix(mount.root.trim_end_matches('/'))
            .unwrap_or(&base)
            .to_owned();
        let mut dir = mount.mount_point.clone();
        for part in base.split('/').chain(cgroups_path.split('/')) {
            if !part.is_empty() && part != "." && part != ".." {
                dir.push(part);
            }
        }
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    dirs
}

fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) => parent.to_owned(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID_CGROUP: &str = "9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n\
                                 2:cpu,cpuacct:/\n0::/\n";
    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    fn hybrid() -> CgroupInfo {
        CgroupInfo {
            mode: CgroupMode::Hybrid,
            v2_controllers: vec!["hugetlb".into()],
        }
    }

    #[test]
    fn parses_proc_cgroup_lines() {
        let entries = parse_proc_cgroup(HYBRID_CGROUP);
        assert_eq!(entries.len(), 5);
        assert_eq!(entries[0].controllers, ["name=systemd"]);
        assert_eq!(entries[2].path, "/process_api/abc");
        assert_eq!(entries[3].controllers, ["cpu", "cpuacct"]);
        assert_eq!(entries[4].hierarchy, 0);
        assert!(entries[4].controllers.is_empty());
    }

    #[test]
    fn crun_refuses_hybrid_hosts_with_v2_controllers_only() {
        assert!(hybrid().crun_refusal().unwrap().contains("hugetlb"));
        let empty_hybrid = CgroupInfo {
            mode: CgroupMode::Hybrid,
            v2_controllers: vec![],
        };
        assert_eq!(empty_hybrid.crun_refusal(), None);
        let unified = CgroupInfo {
            mode: CgroupMode::Unified,
            v2_controllers: vec!["cpu".into(), "memory".into()],
        };
        assert_eq!(unified.crun_refusal(), None);
        let legacy = CgroupInfo {
            mode: CgroupMode::Legacy,
            v2_controllers: vec![],
        };
        assert_eq!(legacy.crun_refusal(), None);
    }

    #[test]
    fn relative_paths_nest_under_our_own_cgroup_in_each_v1_hierarchy() {
        let dirs = resolve_dirs(
            &hybrid(),
            &parse_proc_cgroup(HYBRID_CGROUP),
            &parse_mountinfo(HYBRID_MOUNTINFO),
            "skiff/c1",
        );
        let want: Vec<PathBuf> = [
            "/sys/fs/cgroup/systemd/skiff/c1",
            "/sys/fs/cgroup/pids/skiff/c1",
            "/sys/fs/cgroup/memory/process_api/abc/skiff/c1",
            "/sys/fs/cgroup/cpu,cpuacct/skiff/c1",
            "/sys/fs/cgroup/unified/skiff/c1",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(dirs, want);
    }

    #[test]
    fn absolute_paths_start_at_each_hierarchy_root() {
        let dirs = resolve_dirs(
            &hybrid(),
            &parse_proc_cgroup(HYBRID_CGROUP),
            &parse_mountinfo(HYBRID_MOUNTINFO),
            "/skiff/c1",
        );
        assert!(dirs.contains(&PathBuf::from("/sys/fs/cgroup/memory/skiff/c1")));
    }

    #[test]
    fn unified_relative_paths_use_the_parent_of_our_cgroup() {
        let info = CgroupInfo {
            mode: CgroupMode::Unified,
            v2_controllers: vec!["memory".into()],
        };
        let own = parse_proc_cgroup("0::/user.slice/session-1.scope\n");
        let mounts = parse_mountinfo(
            "30 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
        );
        assert_eq!(
            resolve_dirs(&info, &own, &mounts, "skiff/c1"),
            [PathBuf::from("/sys/fs/cgroup/user.slice/skiff/c1")]
        );
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo("/end\\"), "/end\\");
    }

    #[test]
    fn detect_reads_this_host() {
        let info = CgroupInfo::detect().unwrap();
        if info.mode == CgroupMode::Legacy {
            assert!(info.v2_controllers.is_empty());
        }
    }
}
