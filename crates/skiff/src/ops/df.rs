//! `system df` and the counts `info` shows.

use anyhow::Result;

use super::container::{reconcile, ContainerStore, Status};
use super::engine::Engine;
use super::rmi::containers_using;
use super::volume::store as volumes;

#[derive(Debug, Default)]
pub struct DiskUsage {
    pub images: usize,
    pub active_images: usize,
    pub images_size: u64,
    pub reclaimable: u64,
    pub containers: ContainerCounts,
    /// Bytes in the writable layers of all containers, and of those not running.
    pub containers_size: u64,
    pub containers_reclaimable: u64,
    pub volumes: usize,
    pub active_volumes: usize,
    pub volumes_size: u64,
    pub volumes_reclaimable: u64,
    pub build_cache: usize,
    pub build_cache_size: u64,
}

/// Containers by state, as `info` counts them.
#[derive(Debug, Default)]
pub struct ContainerCounts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
}

/// Counts containers by their (reconciled) state; with `sizes`, also adds up their writable
/// layers as `(all, not running)`.
pub fn containers(engine: &Engine, sizes: bool) -> Result<(ContainerCounts, u64, u64)> {
    let store = ContainerStore::open(engine.root())?;
    let mut counts = ContainerCounts::default();
    let (mut size, mut reclaimable) = (0, 0);
    for c in store.list()? {
        let Ok(state) = reconcile::state(engine.root(), &store, &c) else {
            continue; // removed while we counted
        };
        counts.total += 1;
        let running = match state.status {
            Status::Paused => {
                counts.paused += 1;
                true
            }
            Status::Running | Status::Restarting => {
                counts.running += 1;
                true
            }
            _ => {
                counts.stopped += 1;
                false
            }
        };
        if sizes {
            let rw = engine.snapshotter()?.usage(&c.snapshot_key).unwrap_or(0);
            size += rw;
            if !running {
                reclaimable += rw;
            }
        }
    }
    Ok((counts, size, reclaimable))
}

pub fn disk_usage(engine: &Engine) -> Result<DiskUsage> {
    let mut du = DiskUsage::default();
    let mut seen_layers = std::collections::HashSet::new();
    for image in engine.meta.images()? {
        du.images += 1;
        let used = !containers_using(engine, &image)?.is_empty();
        if used {
            du.active_images += 1;
        }
        // Shared layers count once, as docker counts them.
        let mut own = 0;
        for layer in engine.meta.layers(&image.id)? {
            if seen_layers.insert(layer.diff_id.clone()) {
                own += layer.size;
            }
        }
        du.images_size += own;
        if !used {
            du.reclaimable += own;
        }
    }
    (du.containers, du.containers_size, du.containers_reclaimable) = containers(engine, true)?;
    for v in volumes::list(engine)? {
        let size = volumes::disk_usage(&v.mountpoint);
        du.volumes += 1;
        du.volumes_size += size;
        if volumes::users(engine, &v.name)?.is_empty() {
            du.volumes_reclaimable += size;
        } else {
            du.active_volumes += 1;
        }
    }
    // No cache database yet means an empty cache; don't create one just to count it.
    if engine.root().join("build-cache.db").exists() {
        (du.build_cache, du.build_cache_size) =
            super::build::CacheDb::open(engine.root())?.usage()?;
    }
    Ok(du)
}
