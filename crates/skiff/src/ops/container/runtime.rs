//! Which OCI runtime runs a container, opened the same way by every command and monitor.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use skiff_runtime::runtime::select;
use skiff_runtime::{Host, OciCli};

/// The runtime named `name` (as recorded in the container, or `--runtime`), or the best one
/// for this host when `None`, keeping its state under `root/runtime/<name>`.
pub fn open(root: &Path, name: Option<&str>) -> Result<OciCli> {
    let cgroups = skiff_runtime::cgroups::CgroupInfo::detect()?;
    Ok(select::select(root, name, &BTreeMap::new(), &cgroups)?.runtime)
}

/// The host facts the spec builder needs.
pub fn host() -> Result<Host> {
    Ok(Host::detect()?)
}
