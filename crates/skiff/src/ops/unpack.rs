//! Unpacking an image's layers into committed snapshots named by chain ID, each exactly once
//! even when several processes unpack the same image at the same moment.

use std::fs::File;
use std::io::BufReader;

use anyhow::{Context, Result};
use skiff_image::spec::chain_ids;
use skiff_image::store::ImageRecord;
use skiff_image::Digest;
use skiff_snapshot::layer::{apply_layer, ApplyOptions};

use super::engine::{Engine, FileLock};
use super::error::OpError;

/// Makes sure every layer of `image` is a committed snapshot; returns the top chain ID
/// (None for an image without layers).
pub fn unpack_image(engine: &Engine, image: &ImageRecord) -> Result<Option<String>> {
    let layers = engine.meta.layers(&image.id)?;
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    let snapshotter = engine.snapshotter()?;
    let mut parent: Option<String> = None;
    for (layer, chain) in layers.iter().zip(&chains) {
        let key = chain.to_string();
        if snapshotter.stat(&key)?.is_none() {
            let _lock = FileLock::acquire(&engine.lock_dir()?, &format!("unpack-{}", chain.hex()))?;
            // Another process may have finished it while we waited for the lock.
            if snapshotter.stat(&key)?.is_none() {
                apply_one(engine, &layer.blob, &layer.diff_id, &key, parent.as_deref())?;
            }
        }
        parent = Some(key);
    }
    Ok(parent)
}

fn apply_one(
    engine: &Engine,
    blob: &Digest,
    diff_id: &Digest,
    chain: &str,
    parent: Option<&str>,
) -> Result<()> {
    let snapshotter = engine.snapshotter()?;
    let extract = format!("extract-{}", chain.trim_start_matches("sha256:"));
    // We hold the chain's lock: an extract snapshot under this key is a killed process's.
    if snapshotter.stat(&extract)?.is_some() {
        snapshotter.remove(&extract)?;
    }
    snapshotter.prepare(&extract, parent)?;
    let result = (|| -> Result<()> {
        let target = snapshotter.layer_target(&extract)?;
        let file = engine.content.open_blob(blob)?;
        let stats = apply_layer(
            BufReader::with_capacity(1 << 20, file),
            &target.dir,
            &ApplyOptions {
                whiteouts: target.whiteouts,
            },
        )
        .with_context(|| format!("applying layer {blob}"))?;
        if &stats.diff_id != diff_id {
            return Err(OpError::invalid(format!(
                "layer {blob} does not match the image config: its content hashes to {}, the config says {diff_id}",
                stats.diff_id
            ))
            .into());
        }
        // One syncfs for the whole tree instead of an fsync per file.
        let dir =
            File::open(&target.dir).with_context(|| format!("opening {}", target.dir.display()))?;
        rustix::fs::syncfs(&dir).with_context(|| format!("syncing {}", target.dir.display()))?;
        snapshotter.commit(chain, &extract)?;
        Ok(())
    })();
    if result.is_err() {
        if let Err(e) = snapshotter.remove(&extract) {
            log::warn!("removing failed extraction {extract}: {e}");
        }
    }
    result
}
