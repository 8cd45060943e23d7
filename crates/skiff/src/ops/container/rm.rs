//! `skiff rm`: remove a stopped container (or, with `-f`, kill it first): runtime state,
//! rootfs mount, writable snapshot, volumes it held, record.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use skiff_runtime::Runtime;

use super::reconcile;
use super::store::{Container, ContainerStore, Status};
use super::wait::wait_stopped;
use crate::ops::engine::{Engine, FileLock};
use crate::ops::error::OpError;

/// Removes `c`. Without `force` a running or paused container is refused with docker's
/// message; with it the container is killed first. `volumes` (`-v`) also removes its
/// anonymous volumes.
pub fn remove(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    force: bool,
    volumes: bool,
) -> Result<()> {
    let _lock = FileLock::acquire(&engine.lock_dir()?, &format!("container-rm-{}", c.id))?;
    if !store.dir(&c.id).exists() {
        // Removed while we waited for the lock (by its monitor, for `--rm`).
        return Ok(());
    }
    let state = reconcile::state(engine.root(), store, c)?;
    if state.running || state.status == Status::Paused {
        if !force {
            let msg = if state.paused {
                format!("You cannot remove a paused container {}. Unpause and then stop the container before attempting removal or force remove", c.id)
            } else {
                format!("You cannot remove a running container {}. Stop the container before attempting removal or force remove", c.id)
            };
            return Err(OpError::conflict(msg).into());
        }
        store.update_state(&c.id, |s| {
            s.manually_stopped = true;
            Ok(())
        })?;
        let rt = super::runtime::open(engine.root(), Some(&c.runtime))?;
        if state.paused {
            let _ = rt.resume(&c.id);
        }
        let _ = rt.kill(&c.id, 9, true);
        if wait_stopped(
            engine,
            store,
            c,
            Some(Instant::now() + Duration::from_secs(30)),
        )?
        .is_none()
        {
            return Err(OpError::conflict(format!(
                "could not kill running container {}, cannot remove",
                c.id
            ))
            .into());
        }
    }
    // Its monitor may still be cleaning up after the exit: let it finish.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(s) = store.state(&c.id) {
        if !(s.monitor_pid > 0 && reconcile::monitor_alive(&s)) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    release(engine, store, c, volumes)
}

/// Everything after the container has stopped.
fn release(engine: &Engine, store: &ContainerStore, c: &Container, volumes: bool) -> Result<()> {
    reconcile::cleanup_runtime(engine.root(), c);
    let snapshotter = engine.snapshotter()?;
    if snapshotter.stat(&c.snapshot_key)?.is_some() {
        snapshotter.remove(&c.snapshot_key)?;
    }
    if volumes {
        crate::ops::volume::remove_anonymous(engine, &c.id)?;
    } else {
        crate::ops::volume::release(engine, &c.id)?;
    }
    store.remove(&c.id)
}

/// The monitor's `--rm`: the container `c` (the record the monitor read when it started) has
/// just ended; remove it with its anonymous volumes. The monitor deletes the runtime's state
/// meanwhile, on another thread: `runtime_done` waits for that, before the container's
/// directory goes.
pub fn remove_after_exit(root: &Path, c: &Container, runtime_done: &mut dyn FnMut()) -> Result<()> {
    let dir = root.join("containers").join(&c.id);
    if !dir.exists() {
        return Ok(());
    }
    let engine = Engine::open(root, Some(&c.driver))?;
    let _lock = FileLock::acquire(&engine.lock_dir()?, &format!("container-rm-{}", c.id))?;
    if !dir.exists() {
        return Ok(());
    }
    let store = ContainerStore::open(root)?;
    let _ = skiff_snapshot::mount::unmount_all(&c.rootfs);
    let snapshotter = engine.snapshotter()?;
    if snapshotter.stat(&c.snapshot_key)?.is_some() {
        snapshotter.remove(&c.snapshot_key)?;
    }
    crate::ops::volume::remove_anonymous(&engine, &c.id)?;
    runtime_done();
    store.remove(&c.id)
}
