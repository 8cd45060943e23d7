//! Garbage collection: blobs no image, manifest, lease or build cache entry refers to,
//! snapshots no image or cache entry needs, and ingests no live writer holds.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use skiff_image::spec::chain_ids;
use skiff_image::store::LayerRecord;
use skiff_image::Digest;
use skiff_snapshot::Kind;

use super::engine::Engine;

/// A blob this young may belong to an operation between committing it and recording it.
const GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
pub struct GcReport {
    pub blobs_removed: usize,
    pub bytes_removed: u64,
    pub snapshots_removed: Vec<String>,
}

/// The layer stacks the build cache refers to. They outlive the images built from them
/// (`rmi`, `image prune`), as buildkit's cache does, and go only with `builder prune`.
fn build_cache_layers(engine: &Engine) -> Result<Vec<Vec<LayerRecord>>> {
    // Never create the database just to find it empty.
    if !engine.root().join("build-cache.db").exists() {
        return Ok(Vec::new());
    }
    super::build::CacheDb::open(engine.root())?.all_layers()
}

/// The chain IDs of every layer of every image and of the build cache: the committed
/// snapshots worth keeping.
pub fn needed_chain_ids(engine: &Engine) -> Result<HashSet<String>> {
    needed_chain_ids_with(engine, &build_cache_layers(engine)?)
}

/// [`needed_chain_ids`] with the build cache's layer stacks already read.
fn needed_chain_ids_with(engine: &Engine, cache: &[Vec<LayerRecord>]) -> Result<HashSet<String>> {
    let mut needed = HashSet::new();
    for layers in cache {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        needed.extend(chain_ids(&diff_ids).into_iter().map(|c| c.to_string()));
    }
    for image in engine.meta.images()? {
        let diff_ids: Vec<Digest> = engine
            .meta
            .layers(&image.id)?
            .into_iter()
            .map(|l| l.diff_id)
            .collect();
        needed.extend(chain_ids(&diff_ids).into_iter().map(|c| c.to_string()));
    }
    Ok(needed)
}

pub fn collect_garbage(engine: &Engine) -> Result<GcReport> {
    let mut report = GcReport::default();
    engine.meta.prune_leases()?;
    engine.content.prune_ingests()?;
    // Read once: both the blobs and the snapshots it needs are kept.
    let cache = build_cache_layers(engine)?;
    let mut keep: HashSet<Digest> = engine.meta.referenced_blobs()?.into_iter().collect();
    keep.extend(cache.iter().flatten().map(|l| l.blob.clone()));
    let now = SystemTime::now();
    for (digest, size) in engine.content.list()? {
        if keep.contains(&digest) {
            continue;
        }
        let young = std::fs::metadata(engine.content.blob_path(&digest))
            .and_then(|m| m.modified())
            .map(|t| now.duration_since(t).unwrap_or_default() < GRACE)
            .unwrap_or(true);
        if young {
            continue;
        }
        engine.content.delete(&digest)?;
        report.blobs_removed += 1;
        report.bytes_removed += size;
    }
    if engine.root().join("snapshots").exists() {
        report.snapshots_removed = collect_snapshots(engine, &cache)?;
    }
    Ok(report)
}

/// Removes committed snapshots that no image needs, leaves first, until none is left.
fn collect_snapshots(engine: &Engine, cache: &[Vec<LayerRecord>]) -> Result<Vec<String>> {
    let snapshotter = engine.snapshotter()?;
    let needed = needed_chain_ids_with(engine, cache)?;
    let leased: HashSet<String> = engine.meta.leased("snapshot")?.into_iter().collect();
    let mut removed = Vec::new();
    loop {
        let all = snapshotter.walk()?;
        let parents: HashSet<&str> = all.iter().filter_map(|i| i.parent.as_deref()).collect();
        let doomed: Vec<String> = all
            .iter()
            .filter(|i| i.kind == Kind::Committed && !parents.contains(i.key.as_str()))
            .filter(|i| !needed.contains(&i.key) && !leased.contains(&i.key))
            .map(|i| i.key.clone())
            .collect();
        if doomed.is_empty() {
            break;
        }
        for key in doomed {
            snapshotter.remove(&key)?;
            removed.push(key);
        }
    }
    snapshotter.cleanup()?;
    Ok(removed)
}
