//! `skiff stop` and `restart`: the stop signal, then SIGKILL after the timeout.

use std::time::{Duration, Instant};

use anyhow::Result;
use skiff_runtime::Runtime;

use super::kill::parse_signal;
use super::reconcile;
use super::store::{Container, ContainerStore};
use super::wait::wait_stopped;
use crate::ops::engine::Engine;

/// docker's default grace period before SIGKILL.
pub const DEFAULT_TIMEOUT: i64 = 10;

/// Stops `c`: its stop signal (`--stop-signal`, the image's STOPSIGNAL, or SIGTERM), then
/// after `timeout` seconds (the container's `--stop-timeout`, else 10; -1 waits forever)
/// SIGKILL to every process. A container that is not running is left as it is. The
/// restart policy does not bring it back.
pub fn stop(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    timeout: Option<i64>,
    signal: Option<&str>,
) -> Result<()> {
    let state = reconcile::state(engine.root(), store, c)?;
    if !state.running {
        return Ok(());
    }
    store.update_state(&c.id, |s| {
        s.manually_stopped = true;
        Ok(())
    })?;
    if state.restarting {
        // Between two runs: the monitor sees the flag and ends.
        wait_stopped(engine, store, c, None)?;
        return Ok(());
    }
    let rt = super::runtime::open(engine.root(), Some(&c.runtime))?;
    if state.paused {
        let _ = rt.resume(&c.id);
    }
    let sig = match signal.or(c.config.stop_signal.as_deref()) {
        Some(s) => parse_signal(s)?,
        None => 15,
    };
    let timeout = timeout.or(c.config.stop_timeout).unwrap_or(DEFAULT_TIMEOUT);
    if let Err(e) = rt.kill(&c.id, sig, false) {
        log::debug!("stop signal to {}: {e}", c.id);
    }
    let deadline = (timeout >= 0).then(|| Instant::now() + Duration::from_secs(timeout as u64));
    if wait_stopped(engine, store, c, deadline)?.is_some() {
        return Ok(());
    }
    if let Err(e) = rt.kill(&c.id, 9, true) {
        log::debug!("SIGKILL to {}: {e}", c.id);
    }
    wait_stopped(engine, store, c, None)?;
    Ok(())
}
