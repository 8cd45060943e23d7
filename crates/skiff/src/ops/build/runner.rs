//! The build's [`Executor`]: each RUN is a throwaway container on the step's mounted root
//! filesystem, run to its end through the OCI runtime (no container record: nothing outlives
//! the step). The build process is a child subreaper, so the container's init, whose parent
//! runtime process exits, is re-parented to us and waited for here.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use skiff_build::executor::{ExecError, Executor, RunRequest};
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
        drop(created);
        result
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
