//! `skiff save`: images as a docker-archive (`manifest.json`, layer tars) that also is an OCI
//! image layout (`index.json`, `oci-layout`, `blobs/sha256/`), as current docker writes it.
//!
//! Every header is fixed (mtime 0, uid 0, mode 0644/0755), entries come in a fixed order and
//! layers are the uncompressed blobs themselves, so saving the same images twice gives the
//! same bytes.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use skiff_image::reference::Reference;
use skiff_image::spec::{media, to_canonical_json, Descriptor, Index};
use skiff_image::store::{ImageRecord, LayerRecord};
use skiff_image::Digest;
use skiff_snapshot::layer::{decompressing_reader, Compression};

use super::engine::Engine;
use super::error::OpError;
use super::new_image::manifest_for;
use super::resolve;

/// One image to save and the names it is saved under.
struct Selected {
    image: ImageRecord,
    tags: Vec<Reference>,
}

/// One entry of docker's `manifest.json`.
#[derive(Serialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Resolves the command-line names: a bare repository name means all of its tags, as in docker.
fn select(engine: &Engine, inputs: &[String]) -> Result<Vec<Selected>> {
    let mut out: Vec<Selected> = Vec::new();
    for input in inputs {
        let bare_name = Reference::parse_normalized(input)
            .ok()
            .filter(|r| r.tag().is_none() && r.digest().is_none());
        let mut found: Vec<(ImageRecord, Option<Reference>)> = Vec::new();
        if let Some(name) = &bare_name {
            for (tag, id) in engine.meta.all_tags()? {
                let Ok(r) = tag.parse::<Reference>() else {
                    continue;
                };
                if r.name() == name.name() {
                    if let Some(image) = engine.meta.image(&id)? {
                        found.push((image, Some(r)));
                    }
                }
            }
        }
        if found.is_empty() {
            let r = resolve::lookup(engine, input)?.ok_or_else(|| {
                // docker's exporter: a missing tag is a missing reference, anything else is
                // searched as an ID and named as typed.
                let tagged = Reference::parse_normalized(input).is_ok_and(|r| r.tag().is_some());
                if tagged {
                    OpError::not_found("reference does not exist")
                } else {
                    OpError::not_found(format!("No such image: {input}"))
                }
            })?;
            let tag = r.reference.filter(|t| t.tag().is_some());
            found.push((r.image, tag));
        }
        for (image, tag) in found {
            match out.iter_mut().find(|s| s.image.id == image.id) {
                Some(s) => s.tags.extend(tag.filter(|t| !s.tags.contains(t))),
                None => out.push(Selected {
                    image,
                    tags: tag.into_iter().collect(),
                }),
            }
        }
    }
    Ok(out)
}

/// Where a blob of the archive comes from.
enum BlobSource {
    Bytes(Vec<u8>),
    /// An uncompressed blob of the content store, written as it is.
    Stored(Digest),
    /// A layer decompressed into a temporary file.
    Temp(std::fs::File),
}

/// Writes the archive of `inputs` to `out`: `blobs/sha256/` (layers, configs, manifests, in
/// digest order), `index.json`, `manifest.json`, `oci-layout` and `repositories`, as current
/// docker lays it out.
pub fn save(engine: &Engine, inputs: &[String], out: impl Write) -> Result<()> {
    let selected = select(engine, inputs)?;
    let mut blobs: BTreeMap<String, (u64, BlobSource)> = BTreeMap::new();
    let mut archive_manifests = Vec::new();
    let mut index_entries = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for sel in &selected {
        let mut layer_paths = Vec::new();
        let mut local_layers: Vec<LayerRecord> = Vec::new();
        for layer in engine.meta.layers(&sel.image.id)? {
            let local = prepare_layer(engine, &layer, &mut blobs)?;
            layer_paths.push(blob_path(&local.blob));
            local_layers.push(local);
        }
        let config = engine.content.read_blob(&sel.image.id)?;
        let manifest = manifest_for(&sel.image.id, config.len() as u64, &local_layers);
        let manifest_digest = Digest::of_bytes(&manifest);
        add_bytes(&mut blobs, &sel.image.id, config);
        let manifest_len = manifest.len() as u64;
        add_bytes(&mut blobs, &manifest_digest, manifest);
        let descriptor = Descriptor::new(media::OCI_MANIFEST, manifest_digest, manifest_len);
        if sel.tags.is_empty() {
            index_entries.push(descriptor.clone());
        }
        for tag in &sel.tags {
            let mut d = descriptor.clone();
            let mut annotations = BTreeMap::new();
            annotations.insert("io.containerd.image.name".to_owned(), tag.to_string());
            annotations.insert(
                "org.opencontainers.image.ref.name".to_owned(),
                tag.tag().unwrap_or("latest").to_owned(),
            );
            d.annotations = Some(annotations);
            index_entries.push(d);
            // docker's legacy `repositories`: name -> tag -> top layer.
            if let Some(top) = local_layers.last() {
                repositories.entry(tag.familiar_name()).or_default().insert(
                    tag.tag().unwrap_or("latest").to_owned(),
                    top.diff_id.hex().to_owned(),
                );
            }
        }
        archive_manifests.push(ArchiveManifest {
            config: blob_path(&sel.image.id),
            repo_tags: (!sel.tags.is_empty())
                .then(|| sel.tags.iter().map(Reference::familiar_string).collect()),
            layers: layer_paths,
        });
    }
    let index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.to_owned()),
        manifests: index_entries,
        annotations: None,
    };

    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    append_dir(&mut tar, "blobs/")?;
    append_dir(&mut tar, "blobs/sha256/")?;
    for (hex, (size, source)) in blobs {
        let path = format!("blobs/sha256/{hex}");
        let mut h = header(tar::EntryType::Regular, size, 0o644);
        match source {
            BlobSource::Bytes(bytes) => tar.append_data(&mut h, &path, bytes.as_slice())?,
            BlobSource::Stored(d) => {
                let blob = engine.content.open_blob(&d)?;
                tar.append_data(&mut h, &path, blob)
                    .with_context(|| format!("writing layer {d}"))?
            }
            BlobSource::Temp(mut file) => {
                file.rewind()?;
                tar.append_data(&mut h, &path, file)?
            }
        }
    }
    append_file(&mut tar, "index.json", &to_canonical_json(&index))?;
    // docker writes these two with json.Encoder, which ends them with a newline.
    let mut manifest_json = to_canonical_json(&archive_manifests);
    manifest_json.push(b'\n');
    append_file(&mut tar, "manifest.json", &manifest_json)?;
    append_file(
        &mut tar,
        "oci-layout",
        format!(
            "{{\"imageLayoutVersion\": \"{}\"}}",
            media::OCI_LAYOUT_VERSION
        )
        .as_bytes(),
    )?;
    if !repositories.is_empty() {
        let mut repos = serde_json::to_vec(&repositories)?;
        repos.push(b'\n');
        append_file(&mut tar, "repositories", &repos)?;
    }
    tar.into_inner().context("finishing the archive")?.flush()?;
    Ok(())
}

fn add_bytes(blobs: &mut BTreeMap<String, (u64, BlobSource)>, d: &Digest, bytes: Vec<u8>) {
    blobs
        .entry(d.hex().to_owned())
        .or_insert_with(|| (bytes.len() as u64, BlobSource::Bytes(bytes)));
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append_dir<W: Write>(tar: &mut tar::Builder<W>, path: &str) -> Result<()> {
    let mut h = header(tar::EntryType::Directory, 0, 0o755);
    tar.append_data(&mut h, path, io::empty())?;
    Ok(())
}

fn append_file<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
    tar.append_data(&mut h, path, bytes)?;
    Ok(())
}

/// Plans a layer as an uncompressed tar blob and returns it as such. Layers kept compressed
/// (from a registry or an OCI archive) are decompressed into a temporary file now, because
/// the manifest needs their size and a tar header needs it before the data.
fn prepare_layer(
    engine: &Engine,
    layer: &LayerRecord,
    blobs: &mut BTreeMap<String, (u64, BlobSource)>,
) -> Result<LayerRecord> {
    let mut blob = engine.content.open_blob(&layer.blob)?;
    let mut magic = [0u8; 6];
    let n = read_prefix(&mut blob, &mut magic)?;
    blob.rewind()?;
    let compression = skiff_snapshot::layer::compression::detect(&magic[..n]);
    let mut local = layer.clone();
    local.media_type = media::OCI_LAYER.to_owned();
    if compression == Compression::None {
        local.blob_size = engine.content.size(&layer.blob)?;
        blobs
            .entry(layer.blob.hex().to_owned())
            .or_insert_with(|| (local.blob_size, BlobSource::Stored(layer.blob.clone())));
        return Ok(local);
    }
    if let Some((size, _)) = blobs.get(layer.diff_id.hex()) {
        local.blob = layer.diff_id.clone();
        local.blob_size = *size;
        return Ok(local);
    }
    let mut tmp = tempfile::tempfile_in(engine.tmp_dir()?)?;
    let (_, mut reader) = decompressing_reader(io::BufReader::with_capacity(1 << 20, blob))?;
    let mut hashing = skiff_image::digest::HashingWriter::new(&mut tmp);
    io::copy(&mut reader, &mut hashing)
        .with_context(|| format!("decompressing layer {}", layer.blob))?;
    let (_, diff_id, size) = hashing.finish();
    if diff_id != layer.diff_id {
        anyhow::bail!(
            "layer {} does not match its diff ID {} (content hashes to {diff_id})",
            layer.blob,
            layer.diff_id
        );
    }
    blobs.insert(diff_id.hex().to_owned(), (size, BlobSource::Temp(tmp)));
    local.blob = diff_id;
    local.blob_size = size;
    Ok(local)
}

fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let k = r.read(&mut buf[n..])?;
        if k == 0 {
            break;
        }
        n += k;
    }
    Ok(n)
}
