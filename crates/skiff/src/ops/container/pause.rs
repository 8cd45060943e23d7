//! `skiff pause` / `unpause`: freeze and thaw every process of a container (cgroup freezer,
//! through the runtime).

use anyhow::Result;
use skiff_runtime::Runtime;

use super::reconcile;
use super::store::{Container, ContainerStore, Status};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

/// Freezes `c`, which must be running and not paused.
pub fn pause(engine: &Engine, store: &ContainerStore, c: &Container) -> Result<()> {
    let state = reconcile::state(engine.root(), store, c)?;
    if state.paused {
        return Err(OpError::conflict(format!("Container {} is already paused", c.id)).into());
    }
    if state.status != Status::Running {
        return Err(OpError::conflict(format!("Container {} is not running", c.id)).into());
    }
    let rt = super::runtime::open(engine.root(), Some(&c.runtime))?;
    rt.pause(&c.id)?;
    store.update_state(&c.id, |s| {
        if s.status == Status::Running {
            s.set_status(Status::Paused);
        }
        Ok(())
    })?;
    Ok(())
}

/// Thaws `c`, which must be paused.
pub fn unpause(engine: &Engine, store: &ContainerStore, c: &Container) -> Result<()> {
    let state = reconcile::state(engine.root(), store, c)?;
    if !state.paused {
        return Err(OpError::conflict(format!("Container {} is not paused", c.id)).into());
    }
    let rt = super::runtime::open(engine.root(), Some(&c.runtime))?;
    rt.resume(&c.id)?;
    store.update_state(&c.id, |s| {
        if s.status == Status::Paused {
            s.set_status(Status::Running);
        }
        Ok(())
    })?;
    Ok(())
}
