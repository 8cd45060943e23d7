//! `--squash`: the layers a build made above the base of its final stage merged into one,
//! as docker's daemon does it (moby `daemon/images/image_squash.go`, `SquashImage`): the
//! config stays, the history keeps every entry but marks those above the base
//! `empty_layer`, and one entry (`merge <image> to <base>`, or `create new from <image>`
//! on scratch) carries the merged layer. The unsquashed image stays, untagged.

use super::*;

/// The base of the final stage, as far as squashing needs it.
#[derive(Debug, Clone)]
pub struct Base {
    /// Its image ID (`None` for scratch).
    pub id: Option<Digest>,
    /// How many layers and history entries it has (those are kept as they are).
    pub layers: usize,
    pub history: usize,
}

/// The base of `stage`: an earlier stage's result, scratch, or an image in the store (only
/// `--squash` needs it, so a base removed meanwhile fails that, not the build).
pub(super) fn stage_base(b: &Builder<'_>, stage: &Stage) -> Option<Base> {
    match find_base(b, stage) {
        Ok(base) => Some(base),
        Err(e) => {
            log::debug!("the base of the final stage: {e:#}");
            None
        }
    }
}

fn find_base(b: &Builder<'_>, stage: &Stage) -> Result<Base> {
    if let Some(c) = b.stage_result(&stage.base, stage.index) {
        return Ok(Base {
            id: Some(Digest::of_bytes(&config_bytes(&c.config))),
            layers: c.layers.len(),
            history: c.config.history.len(),
        });
    }
    if stage.base.eq_ignore_ascii_case("scratch") {
        return Ok(Base {
            id: None,
            layers: 0,
            history: 0,
        });
    }
    let image = resolve::require(b.engine, &stage.base)?.image;
    let config: ImageConfig = serde_json::from_slice(&b.engine.content.read_blob(&image.id)?)
        .with_context(|| format!("reading the config of {}", image.id))?;
    Ok(Base {
        layers: b.engine.meta.layers(&image.id)?.len(),
        history: config.history.len(),
        id: Some(image.id),
    })
}

/// Squashes the built image: stores the squashed image under the build's tags and returns
/// it as the build's result.
pub fn squash(engine: &Engine, built: &Built, source_date_epoch: Option<i64>) -> Result<Built> {
    let Some(base) = &built.base else {
        anyhow::bail!(
            "cannot squash {}: the base of its final stage is gone",
            built.id
        );
    };
    let config: ImageConfig = serde_json::from_slice(&engine.content.read_blob(&built.id)?)
        .with_context(|| format!("reading the config of {}", built.id))?;
    if built.layers.len() < base.layers || config.history.len() < base.history {
        anyhow::bail!(
            "cannot squash {}: it has fewer layers than its base",
            built.id
        );
    }
    let below = &built.layers[..base.layers];
    let merged = merged_layer(engine, below, &built.layers, source_date_epoch)?;

    let now = match source_date_epoch {
        Some(e) => {
            time::OffsetDateTime::from_unix_timestamp(e).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        }
        None => time::OffsetDateTime::now_utc(),
    };
    let now = format_rfc3339(now);
    let mut squashed = config;
    for h in squashed.history.iter_mut().skip(base.history) {
        h.empty_layer = true;
    }
    squashed.history.push(History {
        created: Some(now.clone()),
        comment: Some(match &base.id {
            Some(b) => format!("merge {} to {b}", built.id),
            None => format!("create new from {}", built.id),
        }),
        ..History::default()
    });
    squashed.created = Some(now);
    let mut layers = below.to_vec();
    layers.push(merged);
    squashed.rootfs = RootFs::layers(layers.iter().map(|l| l.diff_id.clone()).collect());
    let bytes = config_bytes(&squashed);
    let stored = store_image(
        engine,
        ImageParts {
            config: &bytes,
            layers: &layers,
            manifest: None,
            parent: None,
        },
        &built.tags,
    )?;
    Ok(Built {
        id: stored.image.id,
        tags: built.tags.clone(),
        unused_args: built.unused_args.clone(),
        layers,
        base: Some(base.clone()),
    })
}

/// The difference between the trees of `below` and `all` as one stored layer (removed
/// files as whiteouts).
fn merged_layer(
    engine: &Engine,
    below: &[LayerRecord],
    all: &[LayerRecord],
    source_date_epoch: Option<i64>,
) -> Result<LayerRecord> {
    use skiff_snapshot::layer::{write_layer, DiffOptions, DiffSource};
    let lower = if below.is_empty() {
        None
    } else {
        Some(layer::View::new(engine, below)?)
    };
    let upper = layer::View::new(engine, all)?;
    let (reader, writer) = std::io::pipe().context("creating a pipe")?;
    std::thread::scope(|scope| -> Result<LayerRecord> {
        let source = DiffSource::Compare {
            lower: lower.as_ref().map(|v| v.path()),
            upper: upper.path(),
        };
        let diff = scope.spawn(move || -> Result<()> {
            let mut w = std::io::BufWriter::with_capacity(1 << 20, writer);
            write_layer(source, &mut w, &DiffOptions { source_date_epoch })?;
            std::io::Write::flush(&mut w)?;
            Ok(())
        });
        let stored = crate::ops::layer_ingest::ingest_layer(engine, reader, "squashed layer");
        diff.join()
            .map_err(|_| anyhow::anyhow!("the layer writer panicked"))??;
        stored
    })
}
