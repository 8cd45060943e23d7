//! `skiff commit CONTAINER [REPO[:TAG]]`: the container's changes become a new layer on top
//! of its image, with the container's config (plus `--change`) and a history entry, as
//! docker's commit makes them.

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::Duration;

use anyhow::{Context, Result};
use skiff_image::spec::{rfc3339_now, History, ImageConfig, RootFs, RunConfig};
use skiff_image::Digest;
use skiff_runtime::Runtime;
use skiff_snapshot::layer::{write_layer, DiffOptions};

use super::changes::apply_changes;
use super::container::store::{Container, ContainerStore};
use super::engine::Engine;
use super::layer_ingest::ingest_layer;
use super::list::read_config;
use super::new_image::{config_bytes, store_image, ImageParts};
use super::tag::parse_new_tag;

/// What `commit` was asked.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// `-a`.
    pub author: Option<String>,
    /// `-m`.
    pub message: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config.
    pub changes: Vec<String>,
    /// `-p` (docker's default): pause a running container while its changes are read.
    pub pause: bool,
    /// `REPO[:TAG]`.
    pub reference: Option<String>,
}

/// The run config docker writes into a committed image: the container's own config.
fn run_config_of(c: &Container) -> Result<RunConfig> {
    // Same field names (docker's); fields an image config has no place for are dropped.
    let value = serde_json::to_value(&c.config)?;
    let mut rc: RunConfig = serde_json::from_value(value).context("container config")?;
    if rc.labels.as_ref().is_some_and(|l| l.is_empty()) {
        rc.labels = None;
    }
    if rc.env.as_ref().is_some_and(|e| e.is_empty()) {
        rc.env = None;
    }
    Ok(rc)
}

/// Pauses a container for the time of a commit; resumes it on drop.
struct Paused {
    runtime: Option<skiff_runtime::OciCli>,
    id: String,
}

impl Drop for Paused {
    fn drop(&mut self) {
        if let Some(rt) = &self.runtime {
            if let Err(e) = rt.resume(&self.id) {
                log::warn!("resuming {} after commit: {e}", self.id);
            }
        }
    }
}

/// Files the runtime creates in every container as bind-mount targets (docker keeps them in
/// its init layer, so they are never part of a commit).
const RUNTIME_MOUNTPOINTS: &[&[u8]] = &[
    b"etc/hosts",
    b"etc/hostname",
    b"etc/resolv.conf",
    b".dockerenv",
];

/// Copies the layer tar `input` to `out` without the empty regular files at
/// [`RUNTIME_MOUNTPOINTS`]; every other entry (and its extension headers) is copied byte for
/// byte.
fn drop_runtime_mountpoints(input: impl Read, mut out: impl Write) -> std::io::Result<()> {
    let mut ar = tar::Archive::new(input);
    // Extension headers (PAX, GNU long names) waiting for the entry they describe.
    let mut pending: Vec<u8> = Vec::new();
    for entry in ar.entries()?.raw(true) {
        let mut entry = entry?;
        let header = entry.header().clone();
        let kind = header.entry_type();
        let size = entry.size();
        let padding = (size.div_ceil(512) * 512 - size) as usize;
        if kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
            || kind.is_pax_global_extensions()
        {
            pending.extend_from_slice(header.as_bytes());
            entry.read_to_end(&mut pending)?;
            pending.resize(pending.len() + padding, 0);
            continue;
        }
        let is_mountpoint = pending.is_empty()
            && kind.is_file()
            && size == 0
            && RUNTIME_MOUNTPOINTS.contains(&header.path_bytes().as_ref());
        if !is_mountpoint {
            out.write_all(&pending)?;
            out.write_all(header.as_bytes())?;
            // Streamed: a layer may hold files larger than memory.
            std::io::copy(&mut entry, &mut out)?;
            out.write_all(&[0u8; 512][..padding])?;
        }
        pending.clear();
    }
    out.write_all(&pending)?;
    out.write_all(&[0u8; 1024])?;
    out.flush()
}

/// Commits container `name`; returns the new image ID.
pub fn commit(engine: &Engine, name: &str, opts: &CommitOptions) -> Result<Digest> {
    let tag = opts.reference.as_deref().map(parse_new_tag).transpose()?;
    let store = ContainerStore::open(engine.root())?;
    let c = store.get(name)?;
    let state = super::container::reconcile::state(engine.root(), &store, &c)?;
    let mut run_config = run_config_of(&c)?;
    // docker records the container's own command, before `--change`.
    let created_by = run_config.cmd.clone().unwrap_or_default().join(" ");
    apply_changes(&mut run_config, &opts.changes)?;
    let parent: Digest = c.image.parse().context("container image id")?;
    let base = read_config(engine, &parent)?;
    let mut layers = engine.meta.layers(&parent)?;

    let lease = engine.meta.create_lease(Duration::from_secs(24 * 3600))?;
    let mut tmp = tempfile::tempfile_in(engine.tmp_dir()?)?;
    {
        let _paused = if opts.pause && state.running && !state.paused {
            let rt = super::container::runtime::open(engine.root(), Some(&c.runtime))?;
            match rt.pause(&c.id) {
                Ok(()) => Paused {
                    runtime: Some(rt),
                    id: c.id.clone(),
                },
                // It ended between the state check and the pause: nothing to pause.
                Err(_)
                    if !super::container::reconcile::state(engine.root(), &store, &c)?.running =>
                {
                    Paused {
                        runtime: None,
                        id: c.id.clone(),
                    }
                }
                Err(e) => {
                    return Err(anyhow::Error::new(e)
                        .context(format!("pausing container {}", c.short_id())))
                }
            }
        } else {
            Paused {
                runtime: None,
                id: c.id.clone(),
            }
        };
        let dirs = engine.snapshotter()?.changes(&c.snapshot_key)?;
        write_layer(dirs.as_diff_source(), &mut tmp, &DiffOptions::default())?;
    }
    tmp.seek(SeekFrom::Start(0))?;
    let mut filtered = tempfile::tempfile_in(engine.tmp_dir()?)?;
    drop_runtime_mountpoints(std::io::BufReader::new(tmp), &mut filtered)
        .context("filtering the container's changes")?;
    let mut tmp = filtered;
    tmp.seek(SeekFrom::Start(0))?;
    let layer = ingest_layer(engine, std::io::BufReader::new(tmp), "commit")?;
    lease.add("blob", &layer.blob.to_string())?;

    let created = rfc3339_now();
    let mut history = base.history.clone();
    history.push(History {
        created: Some(created.clone()),
        created_by: Some(created_by),
        author: opts.author.clone(),
        comment: opts.message.clone(),
        empty_layer: false,
    });
    let mut diff_ids = base.rootfs.diff_ids.clone();
    diff_ids.push(layer.diff_id.clone());
    layers.push(layer);
    let config = ImageConfig {
        author: opts.author.clone(),
        architecture: base.architecture.clone(),
        comment: opts.message.clone(),
        config: Some(run_config),
        created: Some(created),
        docker_version: None,
        history,
        os: base.os.clone(),
        os_version: base.os_version.clone(),
        parent: None,
        rootfs: RootFs::layers(diff_ids),
        variant: base.variant.clone(),
    };
    let bytes = config_bytes(&config);
    let tags: Vec<_> = tag.into_iter().collect();
    let stored = store_image(
        engine,
        ImageParts {
            config: &bytes,
            layers: &layers,
            manifest: None,
            parent: Some(parent),
        },
        &tags,
    )?;
    Ok(stored.image.id)
}
