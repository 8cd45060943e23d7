//! The build's [`Executor`]: each RUN is a throwaway container on the step's mounted root
//! filesystem, run to its end through the OCI runtime (no container record: nothing outlives
//! the step). The build process is a child subreaper, so the container's init, whose parent
//! runtime process exits, is re-parented to us and waited for here.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use skiff_build::executor::{ExecError, ExecMount, Executor, RunRequest};
use skiff_runtime::runtime::select;
use skiff_runtime::spec::{MountSpec, NamespaceMode, Propagation};
use skiff_runtime::sys::{self, Exit};
use skiff_runtime::{bundle, ContainerSpec, Host, HostInfo, Io, OciCli, ProcessIo, Runtime, Stdio};

pub struct RuntimeExecutor {
    runtime: OciCli,
    host: Host,
    bundles: PathBuf,
}

impl RuntimeExecutor {
    /// Picks the runtime for containers kept under `root` and becomes a child subreaper.
    pub fn new(root: &std::path::Path) -> anyhow::Result<RuntimeExecutor> {
        let host = Host::detect()?;
        let runtime = select::select(root, None, &BTreeMap::new(), host.cgroups())?.runtime;
        sys::set_child_subreaper()?;
        // Containers of builds that were killed mid-RUN.
        if let Ok(entries) = fs::read_dir(runtime.root()) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = super::layer::owner_pid(&name, "skiff-build-") {
                    if !super::layer::alive(pid) {
                        if let Err(err) = runtime.delete(&name, true) {
                            log::warn!("removing stale build container {name}: {err}");
                        }
                    }
                }
            }
        }
        let bundles = root.join("tmp");
        if let Ok(entries) = fs::read_dir(&bundles) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if super::layer::owner_pid(&name, "skiff-build-")
                    .is_some_and(|p| !super::layer::alive(p))
                {
                    // RUN --mount scratch: a secrets tmpfs, or a rw bind's overlay.
                    for m in [e.path().join("merged"), e.path()] {
                        if skiff_snapshot::mount::is_mounted(&m) {
                            let _ = skiff_snapshot::mount::unmount_all(&m);
                        }
                    }
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(RuntimeExecutor {
            runtime,
            host,
            bundles,
        })
    }
}

impl Executor for RuntimeExecutor {
    fn run(&mut self, req: RunRequest<'_>) -> Result<i32, ExecError> {
        let err = |e: &dyn std::fmt::Display| ExecError(e.to_string());
        let id = format!("skiff-build-{}-{}", std::process::id(), req.name);
        let identity =
            skiff_build::user::resolve_user(req.rootfs, req.user).map_err(|e| err(&e))?;
        // docker creates the working directory of a RUN when it is missing.
        let wd = req.rootfs.join(req.workdir.trim_start_matches('/'));
        if !wd.exists() {
            fs::create_dir_all(&wd).map_err(|e| err(&format!("mkdir {}: {e}", req.workdir)))?;
        }
        let mut spec = ContainerSpec::new(id.clone(), req.rootfs.to_owned(), req.args.to_vec());
        spec.process.env = req.env.to_vec();
        spec.process.cwd = req.workdir.to_owned();
        spec.process.user.uid = identity.uid;
        spec.process.user.gid = identity.gid;
        spec.process.user.additional_gids = identity.additional_gids;
        // Mount points made for the host's files are removed after the run, so that they
        // never reach the layer (docker keeps them in a hidden init layer).
        let mut created = Created(Vec::new());
        if req.network == "host" {
            spec.namespaces.network = NamespaceMode::Host;
            for file in ["/etc/resolv.conf", "/etc/hosts"] {
                let inside = req.rootfs.join(&file[1..]);
                if !std::path::Path::new(file).exists() {
                    continue;
                }
                if fs::symlink_metadata(&inside).is_err()
                    && inside.parent().is_some_and(|p| p.is_dir())
                    && fs::write(&inside, b"").is_ok()
                {
                    created.0.push(inside.clone());
                }
                if inside.is_file() {
                    spec.mounts.push(MountSpec::Bind {
                        source: file.into(),
                        destination: file.to_owned(),
                        readonly: true,
                        propagation: Propagation::RPrivate,
                    });
                }
            }
        }
        // Stubs go after the hosts files': those are already in `created`, and a mount under
        // /etc must not see a stub of its own removed before theirs.
        let mut stubs = Stubs::default();
        for m in req.mounts {
            let target = m.target();
            // A target under another mount's is made by the runtime inside that mount.
            let nested = req.mounts.iter().any(|o| {
                let t = o.target();
                t != target && target.starts_with(t) && target[t.len()..].starts_with('/')
            });
            if !nested {
                let dir = match m {
                    ExecMount::Bind { source, .. } => source.is_dir(),
                    ExecMount::Tmpfs { .. } => true,
                };
                stubs
                    .make(req.rootfs, target, dir)
                    .map_err(|e| err(&format!("creating mount point {target}: {e}")))?;
            }
            spec.mounts.push(match m {
                ExecMount::Bind {
                    source,
                    target,
                    readonly,
                } => MountSpec::Bind {
                    source: source.clone(),
                    destination: target.clone(),
                    readonly: *readonly,
                    propagation: Propagation::RPrivate,
                },
                ExecMount::Tmpfs { target, size } => MountSpec::Tmpfs {
                    destination: target.clone(),
                    // BuildKit's tmpfs mounts allow executables (docker run's do not).
                    options: std::iter::once("exec".to_owned())
                        .chain(size.map(|s| format!("size={s}")))
                        .collect(),
                },
            });
        }
        let built = spec.build(&self.host).map_err(|e| err(&e))?;
        let dir = self.bundles.join(&id);
        fs::create_dir_all(&dir).map_err(|e| err(&format!("{}: {e}", dir.display())))?;
        let result = (|| -> Result<i32, ExecError> {
            bundle::write_config(&dir, &built.spec).map_err(|e| err(&e))?;
            let stdout = req.output.try_clone().map_err(|e| err(&e))?;
            let io = ProcessIo {
                stdio: Stdio {
                    stdin: Io::Null,
                    stdout: Io::Fd(stdout),
                    stderr: Io::Fd(req.output),
                },
                ..ProcessIo::default()
            };
            let pid = self.runtime.create(&id, &dir, io).map_err(|e| err(&e))?;
            if let Err(e) = self.runtime.start(&id) {
                let _ = self.runtime.delete(&id, true);
                let _ = sys::wait_pid(pid);
                return Err(err(&e));
            }
            let exit = sys::wait_pid(pid).map_err(|e| err(&e))?;
            Ok(match exit {
                Exit::Code(c) => c,
                Exit::Signal(s) => 128 + s,
            })
        })();
        if let Err(e) = self.runtime.delete(&id, true) {
            log::debug!("deleting build container {id}: {e}");
        }
        let _ = fs::remove_dir_all(&dir);
        drop(stubs);
        drop(created);
        result
    }
}

/// Mount points made in a rootfs for one run (parents first), and the times of the
/// directory they were made in. Dropping removes them, deepest first, and puts the times
/// back, so that neither the stubs nor a changed parent reach the layer (BuildKit cleans its
/// mount stubs the same way).
#[derive(Default)]
struct Stubs {
    made: Vec<(PathBuf, bool)>,
    parents: Vec<(PathBuf, rustix::fs::Timestamps)>,
}

impl Stubs {
    /// Makes `target` (absolute in the container) exist in `rootfs`, as a directory or an
    /// empty file, resolving symlinks on the way inside the rootfs.
    fn make(&mut self, rootfs: &std::path::Path, target: &str, dir: bool) -> std::io::Result<()> {
        let rel = target.trim_start_matches('/');
        let resolved = skiff_build::context::resolve_in_root(rootfs, rel, true)?;
        if fs::symlink_metadata(&resolved).is_ok() {
            return Ok(());
        }
        let inner = resolved
            .strip_prefix(rootfs)
            .map_err(std::io::Error::other)?;
        let mut path = rootfs.to_path_buf();
        let parts: Vec<_> = inner.components().collect();
        let mut first = true;
        for (i, c) in parts.iter().enumerate() {
            let parent = path.clone();
            path.push(c);
            if fs::symlink_metadata(&path).is_ok() {
                continue;
            }
            if first {
                first = false;
                let st = rustix::fs::stat(&parent)?;
                let ts = |sec: i64, nsec: i64| rustix::fs::Timespec {
                    tv_sec: sec,
                    tv_nsec: nsec as _,
                };
                self.parents.push((
                    parent,
                    rustix::fs::Timestamps {
                        last_access: ts(st.st_atime as i64, st.st_atime_nsec as i64),
                        last_modification: ts(st.st_mtime as i64, st.st_mtime_nsec as i64),
                    },
                ));
            }
            let last = i + 1 == parts.len();
            if last && !dir {
                fs::File::create(&path)?;
                self.made.push((path.clone(), false));
            } else {
                fs::create_dir(&path)?;
                self.made.push((path.clone(), true));
            }
        }
        Ok(())
    }
}

impl Drop for Stubs {
    fn drop(&mut self) {
        for (p, dir) in self.made.iter().rev() {
            // A directory the command wrote into (beside the mount) stays, as it would with
            // docker.
            let _ = if *dir {
                fs::remove_dir(p)
            } else {
                fs::remove_file(p)
            };
        }
        for (p, times) in self.parents.iter().rev() {
            if let Err(e) = rustix::fs::utimensat(
                rustix::fs::CWD,
                p,
                times,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            ) {
                log::debug!("restoring the times of {}: {e}", p.display());
            }
        }
    }
}

/// Files created in a rootfs for one run, removed when dropped.
struct Created(Vec<PathBuf>);

impl Drop for Created {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn stubs_are_made_inside_the_rootfs_and_removed_with_the_parents_times() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        fs::create_dir_all(r.join("var/lib")).unwrap();
        fs::create_dir_all(r.join("run")).unwrap();
        // An absolute symlink resolves inside the rootfs, never on the host.
        std::os::unix::fs::symlink("/run", r.join("var/run")).unwrap();
        let t = rustix::fs::Timespec {
            tv_sec: 1000,
            tv_nsec: 0,
        };
        for d in ["var/lib", "run"] {
            rustix::fs::utimensat(
                rustix::fs::CWD,
                r.join(d),
                &rustix::fs::Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                rustix::fs::AtFlags::empty(),
            )
            .unwrap();
        }
        let mut stubs = Stubs::default();
        stubs.make(r, "/var/lib/a/b", true).unwrap();
        stubs.make(r, "/var/run/secrets/tok", false).unwrap();
        stubs.make(r, "/var/lib", true).unwrap();
        assert!(r.join("var/lib/a/b").is_dir());
        assert!(r.join("run/secrets/tok").is_file());
        // What the command wrote beside a stub stays (and so does its directory).
        fs::write(r.join("var/lib/a/kept"), b"x").unwrap();
        drop(stubs);
        assert!(!r.join("var/lib/a/b").exists());
        assert!(r.join("var/lib/a/kept").exists());
        assert!(!r.join("run/secrets").exists());
        assert_eq!(fs::metadata(r.join("run")).unwrap().mtime(), 1000);
    }
}
