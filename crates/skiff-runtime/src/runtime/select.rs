//! Which OCI runtime runs skiff's containers on this host.
//!
//! With no `--runtime`, crun where it works (it starts a container in about half runc's
//! time), runc otherwise. crun refuses hybrid cgroup hosts whose cgroup v2 hierarchy holds a
//! controller; that case is detected from the host's cgroup layout (see
//! [`CgroupInfo::crun_refusal`]) rather than discovered by a failed container, and skiff then
//! uses runc. The host's cgroup layout is never changed to suit a runtime.
//!
//! `--runtime NAME|PATH` overrides the choice: a name from skiff's configuration (docker's
//! `--add-runtime`), a name looked up in `PATH`, or a path to the binary.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::oci_cli::OciCli;
use crate::cgroups::CgroupInfo;
use crate::error::Error;

/// The runtimes tried, in order, when none is named.
pub const PREFERRED: [&str; 2] = ["crun", "runc"];

/// Directories searched after `PATH`: runtimes often live in `sbin`, which a user's `PATH`
/// may lack.
const FALLBACK_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// A runtime that was passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// The chosen runtime, and why the ones preferred to it were not chosen.
#[derive(Debug, Clone)]
pub struct Selection {
    pub runtime: OciCli,
    pub skipped: Vec<Skipped>,
}

/// Chooses the runtime for containers kept under `state_root`: `requested` if given (a name
/// in `configured`, a name in `PATH`, or a path), else the first of [`PREFERRED`] that is
/// installed and works on a host with these `cgroups`.
pub fn select(
    state_root: &Path,
    requested: Option<&str>,
    configured: &BTreeMap<String, PathBuf>,
    cgroups: &CgroupInfo,
) -> Result<Selection, Error> {
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    select_in(state_root, requested, configured, cgroups, &path_var)
}

fn select_in(
    state_root: &Path,
    requested: Option<&str>,
    configured: &BTreeMap<String, PathBuf>,
    cgroups: &CgroupInfo,
    path_var: &OsStr,
) -> Result<Selection, Error> {
    if let Some(req) = requested {
        let (name, binary) = if req.contains('/') {
            let binary = PathBuf::from(req);
            let name = binary
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !is_executable(&binary) {
                return Err(Error::RuntimeNotFound {
                    name: req.to_owned(),
                    reason: format!("{req} is not an executable file"),
                });
            }
            (name, binary)
        } else if let Some(binary) = configured.get(req) {
            if !is_executable(binary) {
                return Err(Error::RuntimeNotFound {
                    name: req.to_owned(),
                    reason: format!(
                        "configured as {}, which is not an executable file",
                        binary.display()
                    ),
                });
            }
            (req.to_owned(), binary.clone())
        } else {
            match find_program(req, path_var) {
                Some(binary) => (req.to_owned(), binary),
                None => {
                    return Err(Error::RuntimeNotFound {
                        name: req.to_owned(),
                        reason: not_found_reason(req),
                    })
                }
            }
        };
        if let Some(reason) = refusal(&binary, cgroups) {
            return Err(Error::RuntimeUnsupported { name, reason });
        }
        return Ok(Selection {
            runtime: OciCli::new(&name, binary, state_root)?,
            skipped: Vec::new(),
        });
    }

    let mut skipped = Vec::new();
    for name in PREFERRED {
        let Some(binary) = find_program(name, path_var) else {
            skipped.push(Skipped {
                name: name.to_owned(),
                reason: not_found_reason(name),
            });
            continue;
        };
        if let Some(reason) = refusal(&binary, cgroups) {
            skipped.push(Skipped {
                name: name.to_owned(),
                reason,
            });
            continue;
        }
        for s in &skipped {
            log::debug!("OCI runtime {} not used: {}", s.name, s.reason);
        }
        return Ok(Selection {
            runtime: OciCli::new(name, binary, state_root)?,
            skipped,
        });
    }
    Err(Error::RuntimeNotFound {
        name: PREFERRED.join(" or "),
        reason: skipped
            .iter()
            .map(|s| format!("{}: {}", s.name, s.reason))
            .collect::<Vec<_>>()
            .join("; ")
            + " (install the crun or runc package)",
    })
}

/// Why the runtime at `binary` cannot run containers here, if we know it cannot.
fn refusal(binary: &Path, cgroups: &CgroupInfo) -> Option<String> {
    let is_crun = binary.file_name().is_some_and(|n| n == "crun");
    if is_crun {
        cgroups.crun_refusal()
    } else {
        None
    }
}

fn not_found_reason(name: &str) -> String {
    format!("{name} not found in PATH or {}", FALLBACK_DIRS.join(", "))
}

/// The first executable file called `name` in `path_var`, then in the usual sbin and bin
/// directories.
pub fn find_program(name: &str, path_var: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path_var)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::CgroupMode;
    use std::fs;

    fn fake_runtime(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn hybrid_with_hugetlb() -> CgroupInfo {
        CgroupInfo {
            mode: CgroupMode::Hybrid,
            v2_controllers: vec!["hugetlb".into()],
        }
    }

    fn unified() -> CgroupInfo {
        CgroupInfo {
            mode: CgroupMode::Unified,
            v2_controllers: vec!["cpu".into(), "memory".into(), "pids".into()],
        }
    }

    /// A PATH holding only `bin`; the fallback directories still apply, so tests only assert
    /// on runtimes found in `bin`.
    fn select_with(
        bin: &Path,
        requested: Option<&str>,
        configured: &BTreeMap<String, PathBuf>,
        cgroups: &CgroupInfo,
    ) -> Result<Selection, Error> {
        select_in(
            Path::new("/state"),
            requested,
            configured,
            cgroups,
            bin.as_os_str(),
        )
    }

    #[test]
    fn crun_is_preferred_where_it_works() {
        let bin = tempfile::tempdir().unwrap();
        let crun = fake_runtime(bin.path(), "crun");
        fake_runtime(bin.path(), "runc");
        let s = select_with(bin.path(), None, &BTreeMap::new(), &unified()).unwrap();
        assert_eq!(s.runtime.binary(), crun);
        assert_eq!(s.runtime.root(), Path::new("/state/runtime/crun"));
        assert!(s.skipped.is_empty());
    }

    #[test]
    fn hybrid_hosts_with_v2_controllers_fall_back_to_runc() {
        let bin = tempfile::tempdir().unwrap();
        fake_runtime(bin.path(), "crun");
        let runc = fake_runtime(bin.path(), "runc");
        let s = select_with(bin.path(), None, &BTreeMap::new(), &hybrid_with_hugetlb()).unwrap();
        assert_eq!(s.runtime.binary(), runc);
        assert_eq!(s.skipped.len(), 1);
        assert_eq!(s.skipped[0].name, "crun");
        assert!(s.skipped[0].reason.contains("hugetlb"), "{:?}", s.skipped);
    }

    #[test]
    fn an_explicit_crun_on_a_refusing_host_says_why() {
        let bin = tempfile::tempdir().unwrap();
        let crun = fake_runtime(bin.path(), "crun");
        let e = select_with(
            bin.path(),
            Some(crun.to_str().unwrap()),
            &BTreeMap::new(),
            &hybrid_with_hugetlb(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::RuntimeUnsupported { ref name, .. } if name == "crun"));
        assert_eq!(e.kind(), crate::ErrorKind::Unavailable);
    }

    #[test]
    fn runtime_by_path_by_configured_name_and_by_path_lookup() {
        let bin = tempfile::tempdir().unwrap();
        let mine = fake_runtime(bin.path(), "my-runtime");
        let s = select_with(
            bin.path(),
            Some(mine.to_str().unwrap()),
            &BTreeMap::new(),
            &unified(),
        )
        .unwrap();
        assert_eq!(s.runtime.binary(), mine);
        assert_eq!(s.runtime.root(), Path::new("/state/runtime/my-runtime"));

        let mut configured = BTreeMap::new();
        configured.insert("fast".to_owned(), mine.clone());
        let s = select_with(bin.path(), Some("fast"), &configured, &unified()).unwrap();
        assert_eq!(s.runtime.binary(), mine);
        assert_eq!(s.runtime.root(), Path::new("/state/runtime/fast"));

        let s = select_with(bin.path(), Some("my-runtime"), &BTreeMap::new(), &unified()).unwrap();
        assert_eq!(s.runtime.binary(), mine);
    }

    #[test]
    fn unknown_runtimes_are_not_found() {
        let bin = tempfile::tempdir().unwrap();
        let e = select_with(
            bin.path(),
            Some("no-such-runtime-xyz"),
            &BTreeMap::new(),
            &unified(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        let e = select_with(
            bin.path(),
            Some("/no/such/runtime"),
            &BTreeMap::new(),
            &unified(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::NotFound);
        let not_exec = bin.path().join("plain");
        fs::write(&not_exec, "").unwrap();
        assert!(select_with(
            bin.path(),
            Some(not_exec.to_str().unwrap()),
            &BTreeMap::new(),
            &unified()
        )
        .is_err());
    }
}
