//! `skiff top`: the host's `ps` output for the processes of a container (its cgroup).

use std::collections::HashSet;
use std::process::Command;

use anyhow::{Context, Result};

use super::reconcile;
use super::store::{Container, ContainerStore};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

/// `ps ARGS` (default `-ef`) filtered to the container's processes: the header, then rows.
pub fn top(
    engine: &Engine,
    store: &ContainerStore,
    c: &Container,
    ps_args: &[String],
) -> Result<(String, Vec<String>)> {
    let state = reconcile::state(engine.root(), store, c)?;
    if !state.running {
        return Err(OpError::conflict(format!("Container {} is not running", c.id)).into());
    }
    let pids = container_pids(c)?;
    let args: Vec<String> = if ps_args.is_empty() {
        vec!["-ef".to_owned()]
    } else {
        ps_args.to_vec()
    };
    let out = Command::new("ps")
        .args(&args)
        .output()
        .context("running ps")?;
    if !out.status.success() {
        return Err(OpError::invalid(format!(
            "ps: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("").to_owned();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| OpError::invalid("Couldn't find PID field in ps output"))?;
    let rows = lines
        .filter(|l| {
            l.split_whitespace()
                .nth(pid_col)
                .and_then(|p| p.parse::<i32>().ok())
                .is_some_and(|p| pids.contains(&p))
        })
        .map(str::to_owned)
        .collect();
    Ok((header, rows))
}

/// The host pids in the container's cgroup.
pub fn container_pids(c: &Container) -> Result<HashSet<i32>> {
    let info = skiff_runtime::cgroups::CgroupInfo::detect()?;
    let parent = if c.host_config.cgroup_parent.is_empty() {
        skiff_runtime::spec::DEFAULT_CGROUP_PARENT
    } else {
        c.host_config.cgroup_parent.as_str()
    };
    let path = format!("{}/{}", parent.trim_end_matches('/'), c.id);
    let mut pids = HashSet::new();
    for dir in skiff_runtime::cgroups::container_dirs(&info, &path)? {
        if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
    }
    Ok(pids)
}
