//! Noticing a monitor that is gone. A container in a live state (running, paused,
//! restarting) always has a monitor; if that process no longer exists (killed with -9, the
//! machine rebooted), the container is recorded as exited with what is known, and whatever
//! the runtime still holds of it is killed and deleted, so nothing runs unsupervised.

use std::path::Path;

use anyhow::Result;
use skiff_runtime::Runtime;

use super::store::{now_rfc3339, Container, ContainerStore, State, Status};

/// The exit code recorded when the monitor died before the container's end was seen
/// (docker records 255 when it cannot learn a container's exit status).
pub const UNKNOWN_EXIT: i32 = 255;

/// The fields of `/proc/<pid>/stat` after the command name, the process state first
/// (field 3 of the full line); `None` if there is no such process.
fn stat_after_comm(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces, so count fields after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.to_owned())
}

/// starttime (field 22 of the full line) from [`stat_after_comm`]'s fields.
fn start_time_in(rest: &str) -> Option<u64> {
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The start time (clock ticks after boot) of process `pid`, or `None` if there is none.
pub fn process_start_time(pid: i32) -> Option<u64> {
    start_time_in(&stat_after_comm(pid)?)
}

/// Whether the monitor recorded in `state` is still the same live process (not a zombie).
/// `/proc/<pid>/stat` is read once: `ps` asks this of every live container.
pub fn monitor_alive(state: &State) -> bool {
    let Some(rest) = stat_after_comm(state.monitor_pid) else {
        return false;
    };
    let zombie = rest
        .split_whitespace()
        .next()
        .is_some_and(|s| s == "Z" || s == "X");
    !zombie && start_time_in(&rest) == Some(state.monitor_start_time)
}

/// The container's state, corrected if its monitor has died.
pub fn state(root: &Path, store: &ContainerStore, c: &Container) -> Result<State> {
    let state = store.state(&c.id)?;
    if !needs_reconcile(&state) {
        return Ok(state);
    }
    let (state, orphaned) = store.update_state(&c.id, |s| {
        // Re-checked under the lock: the monitor may have written its final state meanwhile.
        if !needs_reconcile(s) {
            return Ok(false);
        }
        s.set_status(Status::Exited);
        s.exit_code = UNKNOWN_EXIT;
        if s.error.is_empty() {
            s.error = "the container's monitor process exited unexpectedly".to_owned();
        }
        s.finished_at = now_rfc3339();
        s.monitor_pid = 0;
        s.monitor_start_time = 0;
        Ok(true)
    })?;
    if orphaned {
        cleanup_runtime(root, c);
    }
    Ok(state)
}

fn needs_reconcile(s: &State) -> bool {
    (s.status.is_live() || (s.status == Status::Created && s.monitor_pid > 0)) && !monitor_alive(s)
}

/// Kills and deletes whatever the runtime still has of the container, and unmounts its
/// rootfs. Best effort: each failure is logged, none stops the caller.
pub fn cleanup_runtime(root: &Path, c: &Container) {
    match super::runtime::open(root, Some(&c.runtime)) {
        // No state directory: the runtime has nothing of it (and a `delete` would cost a
        // process for nothing).
        Ok(rt) if !rt.root().join(&c.id).exists() => {}
        Ok(rt) => match rt.delete(&c.id, true) {
            Ok(()) => {}
            Err(e) if e.kind() == skiff_runtime::ErrorKind::NotFound => {}
            Err(e) => log::warn!("deleting container {} in {}: {e}", c.id, rt.name()),
        },
        Err(e) => log::warn!("opening runtime {}: {e}", c.runtime),
    }
    if let Err(e) = skiff_snapshot::mount::unmount_all(&c.rootfs) {
        log::warn!("unmounting {}: {e}", c.rootfs.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_stale_start_time_is_not() {
        let me = std::process::id() as i32;
        let start = process_start_time(me).unwrap();
        let mut s = State {
            monitor_pid: me,
            monitor_start_time: start,
            ..State::default()
        };
        assert!(monitor_alive(&s));
        s.monitor_start_time = start + 1;
        assert!(!monitor_alive(&s));
        s.monitor_pid = 0;
        assert!(!monitor_alive(&s));
    }
}
