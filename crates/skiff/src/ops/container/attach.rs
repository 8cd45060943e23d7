//! Connecting to a running container's monitor to receive its output (and send its stdin).

use std::os::unix::net::UnixStream;

use anyhow::{Context, Result};

use super::store::{Container, ContainerStore, ATTACH_SOCKET};
use crate::ops::error::OpError;

/// Connects to the attach socket of the running container `c`.
pub fn connect(store: &ContainerStore, c: &Container) -> Result<UnixStream> {
    let state = store.state(&c.id)?;
    if !state.running {
        return Err(
            OpError::conflict("You cannot attach to a stopped container, start it first").into(),
        );
    }
    let dir = store.dir(&c.id);
    let (_dir_fd, sock) = super::store::socket_path(&dir, ATTACH_SOCKET)?;
    UnixStream::connect(&sock)
        .with_context(|| format!("connecting to {}", dir.join(ATTACH_SOCKET).display()))
}
