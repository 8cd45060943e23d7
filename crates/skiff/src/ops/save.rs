//! `skiff save`: images as a docker-archive (`manifest.json`, layer tars) that also is an OCI
//! image layout (`index.json`, `oci-layout`, `blobs/sha256/`), as current docker writes it.
//!
//! Every header is fixed (mtime 0, uid 0, mode 0644/0755), entries come in a fixed order and
//! layers are the uncompressed blobs themselves, so saving the same images twice gives the
//! same bytes.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Read, Seek, Write};

use anyhow::{Context, Result};
use serde::Serialize;
use skiff_image::reference::Reference;
use skiff_image::spec::{media, to_canonical_json, Descriptor, Index};
use skiff_image::store::{ImageRecord, LayerRecord};
use skiff_image::Digest;
use skiff_snapshot::layer::{decompressing_reader, Compression};

use super::engine::Engine;
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
            let r = resolve::require(engine, input)?;
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

/// Writes the archive of `inputs` to `out`.
pub fn save(engine: &Engine, inputs: &[String], out: impl Write) -> Result<()> {
    let selected = select(engine, inputs)?;
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    append_dir(&mut tar, "blobs/")?;
    append_dir(&mut tar, "blobs/sha256/")?;
    let mut written: HashSet<Digest> = HashSet::new();
    let mut archive_manifests = Vec::new();
    let mut index_entries = Vec::new();
    for sel in &selected {
        let mut layer_paths = Vec::new();
        let mut local_layers: Vec<LayerRecord> = Vec::new();
        for layer in engine.meta.layers(&sel.image.id)? {
            let local = append_layer(engine, &mut tar, &layer, &mut written)?;
            layer_paths.push(blob_path(&local.blob));
            local_layers.push(local);
        }
        let config = engine.content.read_blob(&sel.image.id)?;
        append_blob(&mut tar, &sel.image.id, &config, &mut written)?;
        let manifest = manifest_for(&sel.image.id, config.len() as u64, &local_layers);
        let manifest_digest = Digest::of_bytes(&manifest);
        append_blob(&mut tar, &manifest_digest, &manifest, &mut written)?;
        let descriptor =
            Descriptor::new(media::OCI_MANIFEST, manifest_digest, manifest.len() as u64);
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
    append_file(&mut tar, "index.json", &to_canonical_json(&index))?;
    append_file(
        &mut tar,
        "manifest.json",
        &to_canonical_json(&archive_manifests),
    )?;
    append_file(
        &mut tar,
        "oci-layout",
        format!(
            "{{\"imageLayoutVersion\":\"{}\"}}",
            media::OCI_LAYOUT_VERSION
        )
        .as_bytes(),
    )?;
    tar.into_inner().context("finishing the archive")?.flush()?;
    Ok(())
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

fn append_blob<W: Write>(
    tar: &mut tar::Builder<W>,
    d: &Digest,
    bytes: &[u8],
    written: &mut HashSet<Digest>,
) -> Result<()> {
    if written.insert(d.clone()) {
        append_file(tar, &blob_path(d), bytes)?;
    }
    Ok(())
}

/// Writes a layer as an uncompressed tar blob and returns it as such. Layers kept compressed
/// (from a registry or an OCI archive) are decompressed through a temporary file first,
/// because a tar header needs the size before the data.
fn append_layer<W: Write>(
    engine: &Engine,
    tar: &mut tar::Builder<W>,
    layer: &LayerRecord,
    written: &mut HashSet<Digest>,
) -> Result<LayerRecord> {
    let mut blob = engine.content.open_blob(&layer.blob)?;
    let mut magic = [0u8; 6];
    let n = read_prefix(&mut blob, &mut magic)?;
    blob.rewind()?;
    let compression = skiff_snapshot::layer::compression::detect(&magic[..n]);
    let mut local = layer.clone();
    local.media_type = media::OCI_LAYER.to_owned();
    if compression == Compression::None {
        if written.insert(layer.blob.clone()) {
            let size = blob.metadata()?.len();
            let mut h = header(tar::EntryType::Regular, size, 0o644);
            tar.append_data(&mut h, blob_path(&layer.blob), &mut blob)
                .with_context(|| format!("writing layer {}", layer.blob))?;
        }
        local.blob_size = engine.content.size(&layer.blob)?;
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
    tmp.rewind()?;
    if written.insert(diff_id.clone()) {
        let mut h = header(tar::EntryType::Regular, size, 0o644);
        tar.append_data(&mut h, blob_path(&diff_id), &mut tmp)?;
    }
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
