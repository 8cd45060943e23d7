//! `skiff start` (and the second half of `run`): mount the rootfs, write the OCI bundle,
//! spawn the monitor and wait for it to say whether the container started.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use super::reconcile;
use super::store::{Container, ContainerStore, Status, ATTACH_SOCKET};
use crate::monitor::protocol::{parse_handshake, Handshake};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

/// The container's command could not be run; `code` is docker's exit code for it (127 not
/// found, 126 not executable, 125 anything else) and `message` the runtime's words.
#[derive(Debug)]
pub struct StartFailed {
    pub code: i32,
    pub message: String,
}

impl std::fmt::Display for StartFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StartFailed {}

/// What `start` handed back.
pub struct Started {
    /// Connected to the monitor's attach socket before the container started, when asked;
    /// `None` also when the container was already running (nothing was done).
    pub attach: Option<UnixStream>,
}

/// Starts container `c`. With `attach`, the monitor waits for this process to connect to
/// its socket before starting the container, so no output is missed.
pub fn start(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    attach: bool,
) -> Result<Started> {
    // Serializes starts of this container (the state lock is only taken for each change:
    // the monitor needs it while we wait for its handshake).
    let _start = crate::ops::engine::FileLock::acquire(&store.dir(&c.id), "start.lock")?;
    let state = reconcile::state(engine.root(), store, c)?;
    match state.status {
        Status::Running | Status::Restarting => return Ok(Started { attach: None }),
        Status::Paused => {
            return Err(
                OpError::conflict("cannot start a paused container, try unpause instead").into(),
            )
        }
        Status::Removing | Status::Dead => {
            return Err(
                OpError::conflict("container is marked for removal and cannot be started").into(),
            )
        }
        Status::Created | Status::Exited => {}
    }
    // The monitor of the previous run may still be cleaning up (runtime delete, unmount):
    // let it finish first.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut state = state;
    while state.monitor_pid > 0 && reconcile::monitor_alive(&state) {
        if std::time::Instant::now() > deadline {
            return Err(OpError::conflict(format!(
                "container {} is still being stopped",
                c.short_id()
            ))
            .into());
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
        state = store.state(&c.id)?;
    }
    mount_rootfs(engine, c)?;
    let result = (|| -> Result<Started> {
        let joined_net = joined_network(store, c)?;
        let extra = c.mounts.iter().map(|m| m.to_spec()).collect();
        let spec = super::spec::build(store, c, extra, joined_net)?;
        let host = super::runtime::host()?;
        let built = spec
            .build(&host)
            .map_err(|e| OpError::invalid(e.to_string()))?;
        for w in &built.warnings {
            log::warn!("{w}");
        }
        // The canonical bundle JSON, written like the container's other files (see
        // `store::write_file`).
        let config = skiff_runtime::bundle::spec_json(&built.spec)?;
        super::store::write_file(
            &store.dir(&c.id).join(skiff_runtime::bundle::CONFIG_JSON),
            &config,
        )?;
        store.update_state(&c.id, |s| {
            s.manually_stopped = false;
            s.restart_count = 0;
            s.error.clear();
            Ok(())
        })?;
        spawn_monitor(engine, store, c, attach)
    })();
    if result.is_err() {
        let _ = skiff_snapshot::mount::unmount_all(&c.rootfs);
    }
    result
}

/// Mounts the container's writable snapshot at its rootfs directory (once).
pub fn mount_rootfs(engine: &Engine, c: &Container) -> Result<()> {
    std::fs::create_dir_all(&c.rootfs)
        .with_context(|| format!("creating {}", c.rootfs.display()))?;
    if skiff_snapshot::mount::is_mounted(&c.rootfs) {
        return Ok(());
    }
    let mounts = engine.snapshotter()?.mounts(&c.snapshot_key)?;
    skiff_snapshot::mount::mount_all(&mounts, &c.rootfs)
        .with_context(|| format!("mounting the rootfs of {}", c.short_id()))?;
    Ok(())
}

/// For `--network container:NAME`, that container's network namespace.
fn joined_network(store: &ContainerStore, c: &Container) -> Result<Option<PathBuf>> {
    let Some(other) = c.host_config.network_mode.strip_prefix("container:") else {
        return Ok(None);
    };
    let target = store.get(other)?;
    let st = store.state(&target.id)?;
    if !st.running || st.pid <= 0 {
        return Err(OpError::conflict(format!(
            "cannot join network namespace of a non running container: container {} is not running",
            target.short_id()
        ))
        .into());
    }
    Ok(Some(PathBuf::from(format!("/proc/{}/ns/net", st.pid))))
}

fn spawn_monitor(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    attach: bool,
) -> Result<Started> {
    let dir = store.dir(&c.id);
    let monitor_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("monitor.log"))
        .context("opening monitor.log")?;
    let exe = std::env::current_exe().context("finding the skiff executable")?;
    let mut cmd = Command::new(exe);
    cmd.arg("--root")
        .arg(engine.root())
        .arg("__monitor")
        .arg(&c.id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(monitor_log));
    if attach {
        cmd.arg("--attach");
    }
    let mut child = cmd.spawn().context("starting the container monitor")?;
    let Some(out) = child.stdout.take() else {
        anyhow::bail!("the container monitor has no stdout");
    };
    // The monitor outlives us; nobody waits for it but its new parent.
    drop(child);
    let mut lines = BufReader::new(out);
    let mut stream = None;
    let mut line = String::new();
    loop {
        line.clear();
        let n = lines
            .read_line(&mut line)
            .context("reading from the container monitor")?;
        if n == 0 {
            anyhow::bail!(
                "the container monitor exited before starting the container (see {})",
                dir.join("monitor.log").display()
            );
        }
        match parse_handshake(&line) {
            Some(Handshake::Ready) if attach => {
                let (_dir_fd, sock) = super::store::socket_path(&dir, ATTACH_SOCKET)?;
                stream = Some(UnixStream::connect(&sock).with_context(|| {
                    format!("connecting to {}", dir.join(ATTACH_SOCKET).display())
                })?);
            }
            Some(Handshake::Ready) => {}
            Some(Handshake::Started) => return Ok(Started { attach: stream }),
            Some(Handshake::Error { code, message }) => {
                return Err(StartFailed { code, message }.into())
            }
            None => log::debug!("monitor said {line:?}"),
        }
    }
}
