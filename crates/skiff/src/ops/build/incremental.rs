//! Incremental COPY: when a COPY from the context misses only because some of its files
//! changed, its new snapshot is made from the result of an earlier build of the same step
//! (same parent, destination, flags and file list) instead of copying everything again:
//! the earlier snapshot's upper directory is hard-linked into a new one (committed snapshots
//! are never written, and nothing here opens their files), the changed files are replaced,
//! and the layer tar is spliced from the earlier blob with fresh entries for just those
//! files (`skiff_snapshot::layer::splice`). The result is the snapshot and the layer a full
//! copy would give, byte for byte; anything this cannot prove (another storage driver,
//! several sources, a directory or a new entry among the changes, a missing earlier
//! snapshot or blob...) falls back to the full copy.

use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;

use skiff_build::context::{recopy_changed, SourceDigest};
use skiff_image::spec::chain_ids;
use skiff_snapshot::layer::splice::{link_tree, splice_layer};
use skiff_snapshot::layer::DiffOptions;
use skiff_snapshot::snapshotter::{ChangeDirs, Kind};

use super::*;

/// At most this many earlier results of the same parent are looked at.
const CANDIDATES: usize = 8;

/// An earlier result of the step to start from.
struct Earlier {
    /// The committed snapshot of its layers.
    chain: String,
    /// Its own layer's blob (uncompressed: blob digest = diff_id).
    blob: Digest,
    /// The entries (paths as `SourceDigest::files` names them) that differ now.
    changed: Vec<String>,
}

/// Removes the snapshot being made unless it was committed.
struct Pending<'e> {
    engine: &'e Engine,
    key: String,
    done: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(snap) = self.engine.snapshotter() {
            if let Err(e) = snap.remove(&self.key) {
                log::warn!("removing snapshot {}: {e}", self.key);
            }
        }
    }
}

impl Builder<'_> {
    /// The layer of the COPY `copy` (whose cache key missed) made incrementally from an
    /// earlier result of the same step, or `None` when there is none to start from or the
    /// change is not one this handles.
    pub(super) fn incremental_copy(
        &mut self,
        current: &Current,
        copy: &CopyStep,
        input: &cache_db::StoredInput,
        digest: &SourceDigest,
    ) -> Result<Option<LayerRecord>> {
        if copy.from.is_some()
            || copy.remote
            || !copy.inline.is_empty()
            || copy.add
            || copy.parents
            || digest.files.len() != digest.mtimes.len()
        {
            return Ok(None);
        }
        let snap = self.engine.snapshotter()?;
        if snap.driver() != "overlay" {
            return Ok(None);
        }
        let Some(earlier) = self.earlier(current, input, digest)? else {
            return Ok(None);
        };
        let t0 = Instant::now();
        let excludes = Ignore::parse(&copy.excludes.join("\n"));
        let root = SourceRoot {
            dir: &self.opts.context,
            ignore: Some(&self.ignore),
            excludes: Some(&excludes),
        };
        let found = root
            .resolve(&copy.sources)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if found.len() != 1 {
            // recopy_changed replays single sources only.
            return Ok(None);
        }
        let parent = layer::ensure_chain(self.engine, &current.layers)?;
        let key = format!("build-{}-{}", std::process::id(), random_hex(16));
        snap.prepare(&key, parent.as_deref())?;
        let mut pending = Pending {
            engine: self.engine,
            key: key.clone(),
            done: false,
        };
        let (ChangeDirs::OverlayUpper(old_upper), ChangeDirs::OverlayUpper(upper)) =
            (snap.changes(&earlier.chain)?, snap.changes(&key)?)
        else {
            return Ok(None);
        };
        let owner = match &copy.chown {
            // Names resolve in the tree the step starts from.
            Some(c) => {
                let view = layer::View::new(self.engine, &current.layers)?;
                Some(
                    skiff_build::user::resolve_chown(view.path(), c)
                        .map_err(|e| step_failed(e.to_string()))?,
                )
            }
            None => None,
        };
        let linked = link_tree(&old_upper, &upper)?;
        let t1 = Instant::now();
        let opts = CopyOptions {
            owner,
            chmod: copy.chmod,
            extract_archives: false,
            instruction: "COPY",
            parents: false,
        };
        let Some(written) = recopy_changed(&upper, &found, &copy.dest, &opts, &earlier.changed)
            .map_err(|e| anyhow::anyhow!("{e}"))?
        else {
            return Ok(None);
        };
        linked.restore_times()?;
        let mut replace = HashSet::new();
        for path in &written {
            let rel = path
                .strip_prefix(&upper)
                .context("a copied file outside the snapshot")?;
            replace.insert(rel.as_os_str().as_bytes().to_vec());
        }
        let t2 = Instant::now();
        // Straight into the content store (no pipe, no second parse): the splice writes in
        // large blocks, and the store hashes on the way.
        let old = self.engine.content.open_blob(&earlier.blob)?;
        let ingest_ref = format!("layer-{}-{}", std::process::id(), random_hex(8));
        let mut writer = self.engine.content.writer(&ingest_ref)?;
        writer.truncate()?;
        let stats = splice_layer(
            old,
            &upper,
            &replace,
            &mut writer,
            &DiffOptions {
                source_date_epoch: self.opts.source_date_epoch,
            },
        )?;
        let t3 = Instant::now();
        let blob = writer.commit(Some(stats.tar_size), None)?;
        let record = LayerRecord {
            diff_id: blob.clone(),
            blob,
            media_type: skiff_image::spec::media::OCI_LAYER.to_owned(),
            blob_size: stats.tar_size,
            size: stats.content_size,
        };
        let below: Vec<Digest> = current.layers.iter().map(|l| l.diff_id.clone()).collect();
        pending.done = layer::commit_chain(snap, &below, &record.diff_id, &key)?;
        log::debug!(
            "incremental COPY: {} of {} entries copied; link {:?}, copy {:?}, splice {:?}, store {:?} ({} bytes)",
            written.len(),
            digest.files.len(),
            t1 - t0,
            t2 - t1,
            t3 - t2,
            t3.elapsed(),
            record.blob_size
        );
        self.lease_layer(&record)?;
        Ok(Some(record))
    }

    /// The most recently used earlier result of this step (same parent and input but for
    /// the content of some files) whose snapshot and blob still exist.
    fn earlier(
        &self,
        current: &Current,
        input: &cache_db::StoredInput,
        digest: &SourceDigest,
    ) -> Result<Option<Earlier>> {
        let snap = self.engine.snapshotter()?;
        let n = digest.files.len();
        for (old_key, old, entry) in self.cache.children(&current.key, CANDIDATES)? {
            let Some(old_hash) = old.sources.first() else {
                continue;
            };
            if old.build_args != input.build_args
                || old.execution != input.execution
                || old.source_date_epoch != input.source_date_epoch
                || old.sources.len() != input.sources.len()
                || old.sources.len() != n + 1
                || old.instruction.replace(old_hash.as_str(), &digest.hash) != input.instruction
            {
                continue;
            }
            // Its layers: the ones the step starts from, and its own.
            if entry.layers.len() != current.layers.len() + 1
                || entry
                    .layers
                    .iter()
                    .zip(&current.layers)
                    .any(|(a, b)| a.diff_id != b.diff_id)
            {
                continue;
            }
            let Some(mtimes) = self.cache.mtimes(&old_key)? else {
                continue;
            };
            if mtimes.len() != n {
                continue;
            }
            let mut changed = Vec::new();
            let mut same_paths = true;
            for (i, (new_file, old_file)) in digest.files.iter().zip(&old.sources[1..]).enumerate()
            {
                let (Some((np, _)), Some((op, _))) =
                    (new_file.rsplit_once('='), old_file.rsplit_once('='))
                else {
                    same_paths = false;
                    break;
                };
                if np != op {
                    same_paths = false;
                    break;
                }
                if new_file == old_file && digest.mtimes[i] == mtimes[i] {
                    continue;
                }
                // A directory's own mtime is lost once its entries are copied into it (the
                // copy sets it first), so a directory whose only change is its mtime (a file
                // saved by rename, a temporary file come and gone) and that has entries
                // copies the same.
                let has_entries = digest
                    .files
                    .get(i + 1)
                    .is_some_and(|next| np.is_empty() || next.starts_with(&format!("{np}/")));
                if new_file == old_file && has_entries {
                    continue;
                }
                changed.push(np.to_owned());
            }
            // Past half of the files, linking and splicing saves little over a full copy.
            if !same_paths || changed.is_empty() || changed.len() * 2 > n {
                continue;
            }
            let Some(own) = entry.layers.last() else {
                continue;
            };
            // Uncompressed blobs only: the splice reads the tar itself.
            if own.blob != own.diff_id || !self.engine.content.exists(&own.blob) {
                continue;
            }
            let diff_ids: Vec<Digest> = entry.layers.iter().map(|l| l.diff_id.clone()).collect();
            let Some(chain) = chain_ids(&diff_ids).pop().map(|c| c.to_string()) else {
                continue;
            };
            if !snap
                .stat(&chain)?
                .is_some_and(|i| i.kind == Kind::Committed)
            {
                continue;
            }
            return Ok(Some(Earlier {
                chain,
                blob: own.blob.clone(),
                changed,
            }));
        }
        Ok(None)
    }
}
