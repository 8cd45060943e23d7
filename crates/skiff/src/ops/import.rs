//! `skiff import`: a filesystem tar becomes a one-layer image.

use std::io::Read;
use std::time::Duration;

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::spec::{rfc3339_now, History, ImageConfig, Platform, RootFs, RunConfig};
use skiff_image::Digest;

use super::changes::apply_changes;
use super::engine::Engine;
use super::layer_ingest::ingest_layer;
use super::new_image::{config_bytes, store_image, ImageParts};

pub struct ImportOptions {
    /// What the source was, for the history comment ("-" for stdin, a path or a URL).
    pub source_name: String,
    pub changes: Vec<String>,
    pub message: Option<String>,
    pub tag: Option<Reference>,
}

/// Imports the tar read from `source` and returns the new image ID.
pub fn import(engine: &Engine, source: impl Read, opts: &ImportOptions) -> Result<Digest> {
    // Validate the changes before reading a possibly huge input.
    let mut run_config = RunConfig::default();
    apply_changes(&mut run_config, &opts.changes)?;
    let lease = engine.meta.create_lease(Duration::from_secs(24 * 3600))?;
    let layer = ingest_layer(engine, source, &opts.source_name)?;
    lease.add("blob", &layer.blob.to_string())?;
    let created = rfc3339_now();
    let comment = opts
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", opts.source_name));
    let platform = Platform::host();
    let config = ImageConfig {
        architecture: platform.architecture,
        variant: platform.variant,
        os: platform.os,
        comment: Some(comment.clone()),
        config: Some(run_config),
        created: Some(created.clone()),
        history: vec![History {
            created: Some(created),
            comment: Some(comment),
            ..Default::default()
        }],
        rootfs: RootFs::layers(vec![layer.diff_id.clone()]),
        ..Default::default()
    };
    let bytes = config_bytes(&config);
    let tags: Vec<Reference> = opts.tag.iter().cloned().collect();
    let stored = store_image(
        engine,
        ImageParts {
            config: &bytes,
            layers: std::slice::from_ref(&layer),
            manifest: None,
            parent: None,
        },
        &tags,
    )?;
    Ok(stored.image.id)
}
