//! `skiff update`: change a container's resource limits and restart policy. The record
//! (`container.json`) always changes, so the next start uses the new values; a running or
//! paused container also gets them at once, through the runtime's `update` on its cgroups.

use anyhow::Result;
use skiff_runtime::{ContainerSpec, Runtime};

use super::model::RestartPolicy;
use super::reconcile;
use super::store::{Container, ContainerStore, Status};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

/// What to change; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct Update {
    pub memory: Option<i64>,
    pub memory_swap: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub cpu_shares: Option<i64>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub pids_limit: Option<i64>,
    pub restart: Option<RestartPolicy>,
}

impl Update {
    /// Whether nothing would change (docker refuses such an update).
    pub fn is_empty(&self) -> bool {
        self.memory.is_none()
            && self.memory_swap.is_none()
            && self.memory_reservation.is_none()
            && self.nano_cpus.is_none()
            && self.cpu_shares.is_none()
            && self.cpuset_cpus.is_none()
            && self.cpuset_mems.is_none()
            && self.pids_limit.is_none()
            && self.restart.is_none()
    }
}

/// Applies `u` to `c`; returns warnings (limits the host cannot enforce).
pub fn update(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    u: &Update,
) -> Result<Vec<String>> {
    let fail = |why: &str| -> anyhow::Error {
        OpError::invalid(format!("Cannot update container {}: {why}", c.id)).into()
    };
    let mut next = c.clone();
    let h = &mut next.host_config;
    if let Some(p) = &u.restart {
        if h.auto_remove && p.name != "no" {
            return Err(fail(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        h.restart_policy = p.clone();
    }
    if let Some(m) = u.memory {
        // docker's rule: a memory limit above the swap limit already set needs a new swap
        // limit in the same update.
        if m > 0 && u.memory_swap.is_none() && h.memory_swap > 0 && m > h.memory_swap {
            return Err(fail("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"));
        }
        h.memory = m;
    }
    if let Some(s) = u.memory_swap {
        h.memory_swap = s;
    }
    if let Some(r) = u.memory_reservation {
        h.memory_reservation = r;
    }
    if let Some(n) = u.nano_cpus {
        h.nano_cpus = n;
    }
    if let Some(s) = u.cpu_shares {
        h.cpu_shares = s;
    }
    if let Some(s) = &u.cpuset_cpus {
        h.cpuset_cpus = s.clone();
    }
    if let Some(s) = &u.cpuset_mems {
        h.cpuset_mems = s.clone();
    }
    if let Some(p) = u.pids_limit {
        h.pids_limit = Some(p);
    }

    // The limits as the runtime will see them: invalid combinations fail here, before
    // anything changed.
    let mut spec = ContainerSpec::new(next.id.clone(), next.rootfs.clone(), Vec::new());
    spec.resources = super::spec::resources(&next);
    let host = super::runtime::host()?;
    let (json, warnings) = spec
        .resources_json(&host)
        .map_err(|e| fail(&e.to_string()))?;

    let state = reconcile::state(engine.root(), store, c)?;
    if matches!(
        state.status,
        Status::Running | Status::Paused | Status::Restarting
    ) {
        let file = tempfile::Builder::new()
            .prefix("update-")
            .tempfile_in(engine.tmp_dir()?)?;
        std::fs::write(file.path(), &json)?;
        let rt = super::runtime::open(engine.root(), Some(&c.runtime))?;
        rt.update(&c.id, file.path())
            .map_err(|e| fail(&e.to_string()))?;
    }
    // A restart by the monitor reuses the bundle: it must carry the new limits too.
    let dir = store.dir(&c.id);
    if dir.join(skiff_runtime::bundle::CONFIG_JSON).exists() {
        let mut bundle = skiff_runtime::bundle::read_config(&dir)?;
        let mut resources: oci_spec::runtime::LinuxResources = serde_json::from_slice(&json)?;
        if let Some(linux) = bundle.linux_mut() {
            // Device rules are not limits: they stay as the container was created
            // (privileged, --device), not the defaults `resources` starts from.
            let devices = linux.resources().as_ref().and_then(|r| r.devices().clone());
            resources.set_devices(devices);
            linux.set_resources(Some(resources));
        }
        super::store::write_file(
            &dir.join(skiff_runtime::bundle::CONFIG_JSON),
            &skiff_runtime::bundle::spec_json(&bundle)?,
        )?;
    }
    store.save(&next)?;
    Ok(warnings)
}
