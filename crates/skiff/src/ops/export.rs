//! `skiff export CONTAINER`: the container's flattened filesystem as a tar (its image's
//! layers plus its own changes; volumes and binds are not part of it, as in docker).

use std::io::Write;
use std::os::fd::AsFd;

use anyhow::Result;

use super::cp::{open_container, ContainerRoot};
use super::engine::Engine;
use super::volume::inroot::TreeTar;

/// Writes the filesystem of container `name` to `out` as a tar, owners and modes kept,
/// entries named relative to its root (`bin/`, `etc/passwd`), parents before children.
pub fn export(engine: &Engine, name: &str, out: &mut dyn Write) -> Result<()> {
    let (c, state) = open_container(engine, name)?;
    let root = ContainerRoot::open(engine, &c, &state, false)?;
    let rootfd = rustix::io::dup(root.fd())?;
    let mut tree = TreeTar::new(out, true);
    tree.add_children(rootfd.as_fd(), "")?;
    tree.finish()?.flush()?;
    Ok(())
}
