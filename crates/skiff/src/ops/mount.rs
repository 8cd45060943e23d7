//! `skiff image mount` / `unmount` (as podman has them): the flattened, read-only rootfs of an
//! image at a path, for inspecting or copying files out.

use std::fs;
use std::path::PathBuf;

use anyhow::{Context, Result};
use skiff_snapshot::mount::{is_mounted, mount_all, unmount_all};

use super::engine::Engine;
use super::error::OpError;
use super::resolve;
use super::unpack::unpack_image;

fn mount_key(id: &skiff_image::Digest) -> String {
    format!("mount-{}", id.hex())
}

fn mountpoint(engine: &Engine, id: &skiff_image::Digest) -> PathBuf {
    engine.root().join("mounts").join(id.hex())
}

/// Mounts the image read-only and returns the mountpoint (the same one if already mounted).
pub fn mount_image(engine: &Engine, input: &str) -> Result<PathBuf> {
    let image = resolve::require(engine, input)?.image;
    let target = mountpoint(engine, &image.id);
    if is_mounted(&target) {
        return Ok(target);
    }
    let top = unpack_image(engine, &image)?.ok_or_else(|| {
        OpError::invalid(format!("image {} has no layers to mount", image.id.short()))
    })?;
    let snapshotter = engine.snapshotter()?;
    let key = mount_key(&image.id);
    let mounts = match snapshotter.stat(&key)? {
        Some(_) => snapshotter.mounts(&key)?,
        None => snapshotter.view(&key, &top)?,
    };
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    mount_all(&mounts, &target)?;
    Ok(target)
}

/// Undoes `mount_image`. Unmounting an image that is not mounted is not an error.
pub fn unmount_image(engine: &Engine, input: &str) -> Result<()> {
    let image = resolve::require(engine, input)?.image;
    let target = mountpoint(engine, &image.id);
    unmount_all(&target)?;
    if target.exists() {
        fs::remove_dir(&target).with_context(|| format!("removing {}", target.display()))?;
    }
    let snapshotter = engine.snapshotter()?;
    let key = mount_key(&image.id);
    if snapshotter.stat(&key)?.is_some() {
        snapshotter.remove(&key)?;
    }
    Ok(())
}
