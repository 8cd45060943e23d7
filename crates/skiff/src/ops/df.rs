//! `system df` and the counts `info` shows.

use anyhow::Result;

use super::engine::Engine;
use super::rmi::containers_using;

#[derive(Debug, Default)]
pub struct DiskUsage {
    pub images: usize,
    pub active_images: usize,
    pub images_size: u64,
    pub reclaimable: u64,
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
    Ok(du)
}
