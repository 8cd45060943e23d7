//! `skiff wait`: block until a container is no longer running and return its exit code.

use std::time::{Duration, Instant};

use anyhow::Result;

use super::reconcile;
use super::store::{Container, ContainerStore, State};
use crate::ops::engine::Engine;

/// How often the state is looked at while waiting.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `c` is not running (nor restarting, nor being started), or `deadline`
/// passes (then `None`). A container removed meanwhile (`--rm`) counts as stopped with
/// the last state seen.
pub fn wait_stopped(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    deadline: Option<Instant>,
) -> Result<Option<State>> {
    let mut last = None;
    loop {
        let state = match reconcile::state(engine.root(), store, c) {
            Ok(s) => s,
            Err(e) if !store.dir(&c.id).exists() => {
                return match last {
                    Some(s) => Ok(Some(s)),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let starting = state.status == super::Status::Created
            && state.monitor_pid > 0
            && reconcile::monitor_alive(&state);
        if !state.running && !starting {
            return Ok(Some(state));
        }
        last = Some(state);
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// `skiff wait`: the exit code once the container stops.
pub fn wait(engine: &Engine, store: &ContainerStore, c: &Container) -> Result<i32> {
    Ok(wait_stopped(engine, store, c, None)?
        .map(|s| s.exit_code)
        .unwrap_or(super::reconcile::UNKNOWN_EXIT))
}
