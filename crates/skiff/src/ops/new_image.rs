//! Recording a new image: config and manifest blobs, then its metadata and tags in one
//! transaction. Import, load, commit and build all end here.

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::spec::{media, to_canonical_json, Descriptor, ImageConfig, Manifest};
use skiff_image::store::{put_image_tx, tag_tx, ImageRecord, LayerRecord};
use skiff_image::Digest;

use super::engine::Engine;

/// What an image consists of before it is stored.
pub struct ImageParts<'a> {
    /// The config bytes exactly as they will be stored (their digest is the image ID).
    pub config: &'a [u8],
    pub layers: &'a [LayerRecord],
    /// A manifest to keep as is (from an OCI archive or a registry); None to write our own.
    pub manifest: Option<(&'a [u8], &'a str)>,
    pub parent: Option<Digest>,
}

/// The result of storing an image: its record and, per tag, the image the tag used to name.
pub struct Stored {
    pub image: ImageRecord,
    pub moved_tags: Vec<(Reference, Digest)>,
}

/// Serializes an image config the way skiff writes all its documents.
pub fn config_bytes(config: &ImageConfig) -> Vec<u8> {
    to_canonical_json(config)
}

/// The OCI manifest skiff writes for a local image (uncompressed layers, as docker keeps them).
pub fn manifest_for(config_digest: &Digest, config_len: u64, layers: &[LayerRecord]) -> Vec<u8> {
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(media::OCI_MANIFEST.to_owned()),
        config: Descriptor::new(media::OCI_CONFIG, config_digest.clone(), config_len),
        layers: layers
            .iter()
            .map(|l| Descriptor::new(&l.media_type, l.blob.clone(), l.blob_size))
            .collect(),
        annotations: None,
    };
    to_canonical_json(&manifest)
}

/// Writes the image's blobs, then its record and tags atomically.
pub fn store_image(engine: &Engine, parts: ImageParts<'_>, tags: &[Reference]) -> Result<Stored> {
    let id = engine.content.write_blob(parts.config)?;
    let own_manifest;
    let (manifest_bytes, manifest_type) = match parts.manifest {
        Some(m) => m,
        None => {
            own_manifest = manifest_for(&id, parts.config.len() as u64, parts.layers);
            (own_manifest.as_slice(), media::OCI_MANIFEST)
        }
    };
    let manifest = engine.content.write_blob(manifest_bytes)?;
    let config: ImageConfig = serde_json::from_slice(parts.config)?;
    let image = ImageRecord {
        id: id.clone(),
        manifest,
        manifest_media_type: manifest_type.to_owned(),
        created: config
            .created
            .as_deref()
            .and_then(skiff_image::spec::parse_rfc3339)
            .unwrap_or(0),
        size: parts.layers.iter().map(|l| l.size).sum(),
        parent: parts.parent,
        added: skiff_image::store::unix_now(),
    };
    let tx = engine.meta.write()?;
    put_image_tx(&tx, &image, parts.layers)?;
    let mut moved_tags = Vec::new();
    for tag in tags {
        if let Some(previous) = tag_tx(&tx, &tag.to_string(), &id)? {
            moved_tags.push((tag.clone(), previous));
        }
    }
    tx.commit()?;
    Ok(Stored { image, moved_tags })
}
