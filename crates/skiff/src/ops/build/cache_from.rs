//! `--cache-from IMAGE`: a step that missed the local cache takes its result from an image
//! whose history says it was built the same way, as docker's classic builder does (moby's
//! `image/cache/cache.go`: `isValidParent`, `isValidConfig`, `restoreCachedImage`).
//!
//! An image matches when its history and layers start with those of the image the step
//! builds on, and its next history entry's `created_by` is this step's line (COPY and ADD
//! lines carry the content hash, so changed files do not match). The step's result is then
//! the config the step makes, with that history entry (timestamp included) and, unless the
//! entry is empty, the image's layer at that position: a build that made the image gives
//! back the same IDs. The result is recorded in the local cache like a built step.

use super::*;

/// A `--cache-from` image, loaded once per build.
pub(super) struct Source {
    config: ImageConfig,
    layers: Vec<LayerRecord>,
}

impl Builder<'_> {
    /// The `--cache-from` images (found, or pulled when they name a registry image); those
    /// that cannot be had are skipped with a note, as docker skips them.
    fn cache_from_sources(&mut self) -> Result<()> {
        if self.cache_from.is_some() {
            return Ok(());
        }
        let mut sources = Vec::new();
        for name in &self.opts.cache_from {
            // A local image is used as it is (also with --pull); only a missing one is pulled.
            let found = match resolve::lookup(self.engine, name) {
                Ok(Some(r)) => self.stored_source(&r.image.id),
                Ok(None) => self.image(name).map(|image| Source {
                    config: image.config,
                    layers: image.layers,
                }),
                Err(e) => Err(e),
            };
            match found {
                Ok(source) => sources.push(source),
                Err(e) => self.progress.note(&format!(
                    "Could not look up {name} for cache resolution, skipping: {e:#}"
                )),
            }
        }
        self.cache_from = Some(sources);
        Ok(())
    }

    fn stored_source(&self, id: &Digest) -> Result<Source> {
        let config: ImageConfig = serde_json::from_slice(&self.engine.content.read_blob(id)?)
            .with_context(|| format!("reading the config of {id}"))?;
        Ok(Source {
            config,
            layers: self.engine.meta.layers(id)?,
        })
    }

    /// The result of the step `input` describes on `current` (whose config the dispatch
    /// changed into `state.config`), taken from a `--cache-from` image, if one matches.
    pub(super) fn step_from_cache_images(
        &mut self,
        state: &mut StageState,
        current: &Current,
        input: &KeyInput<'_>,
        key: &str,
    ) -> Result<Option<Current>> {
        if self.opts.cache_from.is_empty() || self.opts.no_cache {
            return Ok(None);
        }
        self.cache_from_sources()?;
        let Some(sources) = &self.cache_from else {
            return Ok(None);
        };
        let history = &current.config.history;
        let n = history.len();
        let below: Vec<&Digest> = current.layers.iter().map(|l| &l.diff_id).collect();
        let mut found = None;
        for src in sources {
            let theirs = &src.config.history;
            let their_ids = &src.config.rootfs.diff_ids;
            let same_parent = theirs.len() > n
                && theirs[..n] == history[..]
                && their_ids.len() >= below.len()
                && their_ids.iter().zip(&below).all(|(a, b)| a == *b);
            if !same_parent || theirs[n].created_by.as_deref() != Some(input.instruction) {
                continue;
            }
            let entry = theirs[n].clone();
            let layer = if entry.empty_layer {
                None
            } else {
                // The layer at this position must be the one the config names.
                match (src.layers.get(below.len()), their_ids.get(below.len())) {
                    (Some(l), Some(d))
                        if l.diff_id == *d && self.engine.content.exists(&l.blob) =>
                    {
                        Some(l.clone())
                    }
                    _ => continue,
                }
            };
            found = Some((entry, layer));
            break;
        }
        let Some((entry, layer)) = found else {
            return Ok(None);
        };
        let mut next = current.clone();
        next.config = state.config.clone();
        let own_size = layer.as_ref().map_or(0, |l| l.size);
        next.layers.extend(layer);
        next.config.created = entry.created.clone();
        next.config.history.push(entry);
        next.config.rootfs =
            RootFs::layers(next.layers.iter().map(|l| l.diff_id.clone()).collect());
        let bytes = config_bytes(&next.config);
        let stored = cache_db::StoredInput {
            parent: input.parent.to_owned(),
            instruction: input.instruction.to_owned(),
            build_args: input.build_args.to_vec(),
            sources: input.sources.to_vec(),
            execution: input.execution.to_vec(),
            source_date_epoch: input.source_date_epoch,
        };
        // Recorded like a built step: the next build hits locally, and GC keeps the layer.
        self.cache
            .put(key, &stored, &bytes, &next.layers, own_size)?;
        state.config = next.config.clone();
        next.key = key.to_owned();
        self.progress.cached(&Digest::of_bytes(&bytes));
        self.missed = false;
        Ok(Some(next))
    }
}
