//! A step's root filesystem: a snapshot prepared on the parent chain and mounted, then its
//! changes written as a layer, stored, and the snapshot committed under the new chain ID.

use std::fs;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use skiff_image::spec::chain_ids;
use skiff_image::store::LayerRecord;
use skiff_image::Digest;
use skiff_snapshot::layer::{apply_layer, write_layer, ApplyOptions, DiffOptions};
use skiff_snapshot::mount::{mount_all, unmount_all};
use skiff_snapshot::Snapshotter;

use crate::ops::engine::{Engine, FileLock};
use crate::ops::layer_ingest::count_layer;

/// Makes sure every chain of `layers` is a committed snapshot (re-applying blobs for any
/// that were removed); returns the top chain ID.
pub fn ensure_chain(engine: &Engine, layers: &[LayerRecord]) -> Result<Option<String>> {
    let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = chain_ids(&diff_ids);
    let snap = engine.snapshotter()?;
    let mut parent: Option<String> = None;
    for (layer, chain) in layers.iter().zip(&chains) {
        let key = chain.to_string();
        if snap.stat(&key)?.is_none() {
            let _lock = FileLock::acquire(&engine.lock_dir()?, &format!("unpack-{}", chain.hex()))?;
            if snap.stat(&key)?.is_none() {
                let extract = format!("extract-{}", chain.hex());
                if snap.stat(&extract)?.is_some() {
                    snap.remove(&extract)?;
                }
                snap.prepare(&extract, parent.as_deref())?;
                let applied = (|| -> Result<()> {
                    let target = snap.layer_target(&extract)?;
                    let blob = engine.content.open_blob(&layer.blob)?;
                    apply_layer(
                        BufReader::with_capacity(1 << 20, blob),
                        &target.dir,
                        &ApplyOptions {
                            whiteouts: target.whiteouts,
                        },
                    )
                    .with_context(|| format!("applying layer {}", layer.blob))?;
                    snap.commit(&key, &extract)?;
                    Ok(())
                })();
                if applied.is_err() {
                    let _ = snap.remove(&extract);
                }
                applied?;
            }
        }
        parent = Some(key);
    }
    Ok(parent)
}

/// Stores the uncompressed layer tar `reader` (the layer writer's output, through a pipe):
/// hashed, validated and counted as `ingest_layer` does, with the store's file written in
/// large blocks instead of one write per tar read (two per entry).
fn store_tar(engine: &Engine, reader: impl std::io::Read) -> Result<LayerRecord> {
    let ingest_ref = format!("layer-{}-{}", std::process::id(), super::random_hex(8));
    let mut writer = engine.content.writer(&ingest_ref)?;
    writer.truncate()?;
    let size = {
        let mut buffered = BufWriter::with_capacity(1 << 20, &mut writer);
        let size = count_layer(BufReader::with_capacity(1 << 20, reader), &mut buffered)
            .context("reading build layer: invalid tar")?;
        std::io::Write::flush(&mut buffered)?;
        size
    };
    let blob = writer.commit(None, None)?;
    Ok(LayerRecord {
        diff_id: blob.clone(),
        blob_size: engine.content.size(&blob)?,
        blob,
        media_type: skiff_image::spec::media::OCI_LAYER.to_owned(),
        size,
    })
}

/// An active snapshot mounted for one step; unmounted and removed on drop unless committed.
pub struct WorkTree<'e> {
    engine: &'e Engine,
    key: String,
    pub rootfs: PathBuf,
    dir: PathBuf,
    mounted: bool,
    done: bool,
}

impl<'e> WorkTree<'e> {
    pub fn new(engine: &'e Engine, parent: Option<&str>) -> Result<WorkTree<'e>> {
        let key = format!("build-{}-{}", std::process::id(), super::random_hex(16));
        let snap = engine.snapshotter()?;
        let mounts = snap.prepare(&key, parent)?;
        let dir = engine.tmp_dir()?.join(&key);
        let rootfs = dir.join("rootfs");
        let mut tree = WorkTree {
            engine,
            key,
            rootfs,
            dir,
            mounted: false,
            done: false,
        };
        fs::create_dir_all(&tree.rootfs)
            .with_context(|| format!("creating {}", tree.rootfs.display()))?;
        mount_all(&mounts, &tree.rootfs)?;
        tree.mounted = true;
        Ok(tree)
    }

    fn unmount(&mut self) -> Result<()> {
        if self.mounted {
            unmount_all(&self.rootfs)?;
            self.mounted = false;
        }
        Ok(())
    }

    /// Unmounts, writes the changes as a layer, stores it, and commits the snapshot as the
    /// chain on top of `below` (the diff IDs under it). Returns the layer's record.
    pub fn commit(mut self, below: &[Digest], epoch: Option<i64>) -> Result<LayerRecord> {
        let t = std::time::Instant::now();
        self.unmount()?;
        log::debug!("unmount {:?}", t.elapsed());
        let snap = self.engine.snapshotter()?;
        let changes = snap.changes(&self.key)?;
        // The layer tar streams through a pipe into the content store: written once, hashed
        // and validated on the way (the diff runs on a second thread).
        let (reader, writer) = std::io::pipe().context("creating a pipe")?;
        let record = std::thread::scope(|scope| -> Result<LayerRecord> {
            let source = changes.as_diff_source();
            let diff = scope.spawn(move || -> Result<()> {
                let mut w = BufWriter::with_capacity(1 << 20, writer);
                write_layer(
                    source,
                    &mut w,
                    &DiffOptions {
                        source_date_epoch: epoch,
                    },
                )?;
                std::io::Write::flush(&mut w)?;
                Ok(())
            });
            let stored = store_tar(self.engine, reader);
            let written = diff
                .join()
                .map_err(|_| anyhow::anyhow!("the layer writer panicked"))?;
            written?;
            stored
        })?;
        self.done = commit_chain(snap, below, &record.diff_id, &self.key)?;
        Ok(record)
    }
}

/// Commits the active snapshot `key` as the chain of `below` plus `diff_id`, unless that
/// chain exists already (another build may commit the same one at the same time). Returns
/// whether `key` was committed (else the caller removes it).
pub(super) fn commit_chain(
    snap: &dyn Snapshotter,
    below: &[Digest],
    diff_id: &Digest,
    key: &str,
) -> Result<bool> {
    let mut ids = below.to_vec();
    ids.push(diff_id.clone());
    let chain = chain_ids(&ids)
        .pop()
        .map(|c| c.to_string())
        .unwrap_or_default();
    if snap.stat(&chain)?.is_some() {
        return Ok(false);
    }
    match snap.commit(&chain, key) {
        Ok(()) => Ok(true),
        Err(e) if snap.stat(&chain)?.is_some() => {
            log::debug!("chain {chain} committed concurrently: {e}");
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

impl Drop for WorkTree<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            log::warn!("unmounting {}: {e}", self.rootfs.display());
            return;
        }
        if !self.done {
            if let Ok(snap) = self.engine.snapshotter() {
                if let Err(e) = snap.remove(&self.key) {
                    log::warn!("removing snapshot {}: {e}", self.key);
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A read-only view of the tree of `layers`, mounted until dropped (COPY --from, -o).
pub struct View<'e> {
    engine: &'e Engine,
    key: String,
    pub rootfs: PathBuf,
    dir: PathBuf,
    mounted: bool,
}

impl<'e> View<'e> {
    pub fn new(engine: &'e Engine, layers: &[LayerRecord]) -> Result<View<'e>> {
        let key = format!(
            "build-view-{}-{}",
            std::process::id(),
            super::random_hex(16)
        );
        let dir = engine.tmp_dir()?.join(&key);
        let rootfs = dir.join("rootfs");
        fs::create_dir_all(&rootfs).with_context(|| format!("creating {}", rootfs.display()))?;
        let mut view = View {
            engine,
            key,
            rootfs,
            dir,
            mounted: false,
        };
        let Some(top) = ensure_chain(engine, layers)? else {
            // An image without layers is an empty tree.
            return Ok(view);
        };
        let mounts = engine.snapshotter()?.view(&view.key, &top)?;
        mount_all(&mounts, &view.rootfs)?;
        view.mounted = true;
        Ok(view)
    }

    pub fn path(&self) -> &Path {
        &self.rootfs
    }
}

impl Drop for View<'_> {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = unmount_all(&self.rootfs) {
                log::warn!("unmounting {}: {e}", self.rootfs.display());
                return;
            }
        }
        if let Ok(snap) = self.engine.snapshotter() {
            if snap.stat(&self.key).ok().flatten().is_some() {
                if let Err(e) = snap.remove(&self.key) {
                    log::warn!("removing snapshot {}: {e}", self.key);
                }
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The pid in a name `<prefix><pid>-...` that this build module made.
pub fn owner_pid(name: &str, prefix: &str) -> Option<u32> {
    name.strip_prefix(prefix)?.split('-').next()?.parse().ok()
}

/// Whether process `pid` is alive (it exists and is not a zombie).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": the comm may hold spaces, so the state follows the last ')'.
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z" && state != "X")
}

/// Active snapshots (and views) of builds that were killed mid-step.
pub fn stale_keys(engine: &Engine) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for info in engine.snapshotter()?.walk()? {
        let pid = owner_pid(&info.key, "build-view-").or_else(|| owner_pid(&info.key, "build-"));
        if pid.is_some_and(|p| !alive(p)) {
            out.push(info.key);
        }
    }
    Ok(out)
}

/// Removes what killed builds left behind: their mounts, snapshots and scratch directories
/// (their containers must be gone first).
pub fn remove_stale(engine: &Engine, keys: &[String]) -> Result<()> {
    let snap = engine.snapshotter()?;
    let tmp = engine.tmp_dir()?;
    for key in keys {
        let dir = tmp.join(key);
        let rootfs = dir.join("rootfs");
        if skiff_snapshot::mount::is_mounted(&rootfs) {
            unmount_all(&rootfs)?;
        }
        snap.remove(key)?;
        let _ = fs::remove_dir_all(&dir);
        log::info!("removed {key}, left by a build that was killed");
    }
    Ok(())
}
