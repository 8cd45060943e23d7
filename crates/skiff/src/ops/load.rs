//! `skiff load`: images from a docker-archive (`docker save`, `skopeo copy … docker-archive:`)
//! or an OCI archive (`skopeo copy … oci-archive:`), plain or compressed, from a file or stdin.
//!
//! The archive is read once, as a stream: every file goes into the content store as it passes
//! (layers that are tars are counted and, when compressed outside `blobs/`, stored
//! uncompressed), then the small JSON documents say which blobs form which image. Nothing is
//! recorded until all blobs are in, so a load killed half-way leaves only unreferenced blobs
//! for garbage collection.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;
use skiff_image::reference::Reference;
use skiff_image::spec::{media, Descriptor, ImageConfig, Index, Manifest, Platform};
use skiff_image::store::{LayerRecord, Lease};
use skiff_image::Digest;
use skiff_snapshot::layer::decompressing_reader;

use super::engine::Engine;
use super::error::OpError;
use super::layer_ingest::{count_layer, go_tar_error, ingest_layer, Counted};
use super::new_image::{store_image, ImageParts};

/// What `load` reports.
#[derive(Debug, Default)]
pub struct Loaded {
    /// `Loaded image: NAME` lines.
    pub tags: Vec<String>,
    /// `Loaded image ID: ID` lines, for images without a name.
    pub ids: Vec<Digest>,
    /// Tags that moved away from another image: (tag, old image).
    pub renamed: Vec<(String, Digest)>,
    /// Everything above in the order docker prints it: per tag, the rename notice (if any)
    /// right before its `Loaded image:` line.
    pub lines: Vec<LoadLine>,
}

/// One line of `load`'s output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadLine {
    /// `The image TAG already exists, renaming the old one with ID ID to empty string`
    Renamed(String, Digest),
    /// `Loaded image: TAG`
    Tag(String),
    /// `Loaded image ID: ID`
    Id(Digest),
}

/// A file of the archive, once stored.
#[derive(Debug, Clone)]
struct Stored {
    digest: Digest,
    /// Content bytes if the file was a tar layer (then `digest` is its uncompressed digest).
    layer_size: Option<u64>,
}

#[derive(Deserialize)]
struct ArchiveManifest {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

const SMALL_FILES: &[&str] = &["manifest.json", "index.json", "oci-layout", "repositories"];

fn invalid(msg: impl Into<String>) -> anyhow::Error {
    OpError::invalid(msg).into()
}

pub fn load(engine: &Engine, input: impl Read) -> Result<Loaded> {
    let (_, reader) = decompressing_reader(BufReader::with_capacity(1 << 20, input))
        .context("reading the archive")?;
    let lease = engine.meta.create_lease(Duration::from_secs(24 * 3600))?;
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut files: HashMap<String, Stored> = HashMap::new();
    let mut links: HashMap<String, String> = HashMap::new();
    let mut input = Counted::new(reader);
    let mut next_header = 0u64;
    let walked = read_entries(
        engine,
        &lease,
        &mut input,
        &mut next_header,
        &mut small,
        &mut files,
        &mut links,
    );
    let seen_any = match walked {
        Ok(seen) => seen,
        Err(e) => {
            return Err(match e.downcast::<TarReadError>() {
                Ok(TarReadError(io_err)) => {
                    let go = go_tar_error(io_err, next_header, &mut input);
                    invalid(format!("Error processing tar file(exit status 1): {go}"))
                }
                Err(other) => other,
            })
        }
    };
    if !seen_any {
        return Err(invalid("invalid archive: it is empty (no files found)"));
    }
    let lookup = |name: &str| -> Result<Stored> {
        let mut name = clean(Path::new(name))?;
        for _ in 0..16 {
            match links.get(&name) {
                Some(t) => name = t.clone(),
                None => break,
            }
        }
        files.get(&name).cloned().ok_or_else(|| {
            invalid(format!(
                "invalid archive: {name} is named in the manifest but missing"
            ))
        })
    };
    if let Some(bytes) = small.get("manifest.json") {
        let manifests: Vec<ArchiveManifest> = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("invalid archive: manifest.json: {e}")))?;
        load_docker_archive(engine, &lease, &manifests, &lookup)
    } else if let Some(bytes) = small.get("index.json") {
        let index: Index = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("invalid archive: index.json: {e}")))?;
        load_oci_layout(engine, &index, &files)
    } else {
        Err(invalid("invalid archive: neither manifest.json (docker-archive) nor index.json (OCI layout) found"))
    }
}

/// The archive itself could not be read as a tar.
#[derive(Debug)]
struct TarReadError(io::Error);

impl std::fmt::Display for TarReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TarReadError {}

/// Stores every file of the archive (small JSON documents in memory, the rest in the content
/// store) and records links; returns whether the archive had any entry at all.
fn read_entries<R: Read>(
    engine: &Engine,
    lease: &Lease<'_>,
    input: &mut Counted<R>,
    next_header: &mut u64,
    small: &mut HashMap<String, Vec<u8>>,
    files: &mut HashMap<String, Stored>,
    links: &mut HashMap<String, String>,
) -> Result<bool> {
    let mut archive = tar::Archive::new(input);
    let entries = archive.entries().map_err(TarReadError)?;
    let mut seen_any = false;
    for entry in entries {
        let entry = entry.map_err(TarReadError)?;
        seen_any = true;
        *next_header = entry.raw_file_position()
            + entry.header().entry_size().unwrap_or(0).div_ceil(512) * 512;
        let name = clean(
            &entry
                .path()
                .map_err(|e| invalid(format!("invalid archive: {e}")))?,
        )?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let target = entry
                .link_name()?
                .ok_or_else(|| invalid(format!("invalid archive: link {name} has no target")))?;
            let target = if kind.is_symlink() && !target.is_absolute() {
                Path::new(&name)
                    .parent()
                    .unwrap_or(Path::new(""))
                    .join(target)
            } else {
                target.into_owned()
            };
            links.insert(name, clean(&target)?);
            continue;
        }
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        if SMALL_FILES.contains(&name.as_str()) {
            let mut bytes = Vec::new();
            entry.take(16 << 20).read_to_end(&mut bytes)?;
            small.insert(name, bytes);
            continue;
        }
        let stored = store_file(engine, lease, &name, entry)?;
        files.insert(name, stored);
    }
    Ok(seen_any)
}

/// Normalizes an archive path (`./a/../b` -> `b`), refusing paths that leave the archive.
fn clean(path: &Path) -> Result<String> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir if !out.pop() => {
                return Err(invalid(format!(
                    "invalid archive: entry {} leaves the archive",
                    path.display()
                )));
            }
            _ => {}
        }
    }
    Ok(out.to_string_lossy().into_owned())
}

fn looks_like_layer(prefix: &[u8]) -> bool {
    let compressed = skiff_snapshot::layer::compression::detect(prefix)
        != skiff_snapshot::layer::Compression::None;
    compressed || prefix.get(257..262) == Some(b"ustar")
}

/// Stores one archive file: blobs under `blobs/sha256/` as they are (their name is checked
/// against their content), other tar-looking files through the layer ingester.
fn store_file(engine: &Engine, lease: &Lease<'_>, name: &str, entry: impl Read) -> Result<Stored> {
    let mut reader = BufReader::with_capacity(1 << 20, entry);
    let prefix = fill_at_least(&mut reader, 512)?;
    let is_layer = looks_like_layer(&prefix);
    let named = name
        .strip_prefix("blobs/sha256/")
        .and_then(|h| Digest::from_hex(h).ok());
    let stored = match named {
        Some(expected) => {
            let plain_tar = prefix.get(257..262) == Some(b"ustar");
            let layer_size = if plain_tar {
                Some(store_layer_blob(engine, reader, &expected, name)?)
            } else {
                engine
                    .content
                    .copy_in(reader, &expected, None)
                    .map_err(|e| blob_error(name, e))?;
                None
            };
            Stored {
                digest: expected,
                layer_size,
            }
        }
        None if is_layer => {
            let layer = ingest_layer(engine, reader, name)?;
            Stored {
                digest: layer.blob,
                layer_size: Some(layer.size),
            }
        }
        None => {
            let mut w = engine.content.writer(&format!(
                "load-{}-{}",
                std::process::id(),
                name.replace('/', "_")
            ))?;
            w.truncate()?;
            io::copy(&mut reader, &mut w)?;
            Stored {
                digest: w.commit(None, None)?,
                layer_size: None,
            }
        }
    };
    lease.add("blob", &stored.digest.to_string())?;
    Ok(stored)
}

fn blob_error(name: &str, e: skiff_image::content::ContentError) -> anyhow::Error {
    match e {
        skiff_image::content::ContentError::DigestMismatch { actual, .. } => invalid(format!(
            "invalid archive: {name} does not match its digest (its content hashes to {actual})"
        )),
        other => other.into(),
    }
}

fn fill_at_least(r: &mut impl BufRead, n: usize) -> io::Result<Vec<u8>> {
    // BufReader hands out what it has; with a 1 MiB buffer the first fill covers 512 bytes
    // unless the file is shorter.
    let buf = r.fill_buf()?;
    Ok(buf[..buf.len().min(n)].to_vec())
}

/// Stores an uncompressed layer tar named by its digest and returns its size as docker
/// counts it. The tar is read to its end even when the blob is already stored, because its
/// size is needed either way.
fn store_layer_blob(
    engine: &Engine,
    reader: impl Read,
    expected: &Digest,
    name: &str,
) -> Result<u64> {
    let bad_tar = |e: io::Error| invalid(format!("Error processing tar file(exit status 1): {e}"));
    if engine.content.exists(expected) {
        return count_layer(reader, io::sink()).map_err(bad_tar);
    }
    // If another process commits the same blob meanwhile, commit keeps the one stored.
    let mut w = engine.content.writer(&format!("put-{}", expected.hex()))?;
    w.truncate()?;
    let size = count_layer(reader, &mut w).map_err(bad_tar)?;
    w.commit(None, Some(expected))
        .map_err(|e| blob_error(name, e))?;
    Ok(size)
}

fn load_docker_archive(
    engine: &Engine,
    lease: &Lease<'_>,
    manifests: &[ArchiveManifest],
    lookup: &dyn Fn(&str) -> Result<Stored>,
) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    for m in manifests {
        let config_digest = lookup(&m.config)?.digest;
        let config_bytes = engine.content.read_blob(&config_digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("invalid archive: image config {}: {e}", m.config)))?;
        if config.rootfs.diff_ids.len() != m.layers.len() {
            return Err(invalid(format!(
                "invalid archive: the config lists {} layers, manifest.json {}",
                config.rootfs.diff_ids.len(),
                m.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for (i, (path, want)) in m.layers.iter().zip(&config.rootfs.diff_ids).enumerate() {
            let file = lookup(path)?;
            let layer = match file.layer_size {
                Some(size) if &file.digest == want => LayerRecord {
                    diff_id: want.clone(),
                    blob: file.digest.clone(),
                    media_type: media::OCI_LAYER.to_owned(),
                    blob_size: engine.content.size(&file.digest)?,
                    size,
                },
                // A compressed blob under blobs/: keep layers uncompressed, as docker does.
                _ => {
                    let blob = engine.content.open_blob(&file.digest)?;
                    let layer = ingest_layer(engine, blob, path)?;
                    lease.add("blob", &layer.blob.to_string())?;
                    layer
                }
            };
            if &layer.diff_id != want {
                return Err(invalid(format!(
                    "invalid diffID for layer {i}: expected {want:?}, got {:?}",
                    layer.diff_id.to_string()
                )));
            }
            layers.push(layer);
        }
        let mut tags = Vec::new();
        for t in m.repo_tags.iter().flatten() {
            tags.push(
                Reference::parse_normalized_tagged(t)
                    .map_err(|e| invalid(format!("invalid archive: tag {t:?}: {e}")))?,
            );
        }
        let stored = store_image(
            engine,
            ImageParts {
                config: &config_bytes,
                layers: &layers,
                manifest: None,
                parent: None,
            },
            &tags,
        )?;
        report(&mut loaded, &stored, &tags);
    }
    Ok(loaded)
}

fn report(loaded: &mut Loaded, stored: &super::new_image::Stored, tags: &[Reference]) {
    for (tag, old) in &stored.moved_tags {
        loaded.renamed.push((tag.familiar_string(), old.clone()));
    }
    if tags.is_empty() {
        loaded.ids.push(stored.image.id.clone());
        loaded.lines.push(LoadLine::Id(stored.image.id.clone()));
    }
    for tag in tags {
        if let Some((_, old)) = stored.moved_tags.iter().find(|(t, _)| t == tag) {
            loaded
                .lines
                .push(LoadLine::Renamed(tag.familiar_string(), old.clone()));
        }
        loaded.lines.push(LoadLine::Tag(tag.familiar_string()));
    }
    loaded
        .tags
        .extend(tags.iter().map(Reference::familiar_string));
}

/// The name an OCI index entry gives its image, if it gives a whole reference.
fn oci_name(d: &Descriptor) -> Option<Reference> {
    let a = d.annotations.as_ref()?;
    if let Some(full) = a.get("io.containerd.image.name") {
        return Reference::parse_normalized_tagged(full).ok();
    }
    let r = a.get("org.opencontainers.image.ref.name")?;
    // A bare tag ("latest") names no repository; only a full reference can become a tag.
    if r.contains('/') || r.contains(':') {
        Reference::parse_normalized_tagged(r).ok()
    } else {
        None
    }
}

fn load_oci_layout(
    engine: &Engine,
    index: &Index,
    files: &HashMap<String, Stored>,
) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    let host = Platform::host();
    for entry in &index.manifests {
        let manifest_desc = if media::is_index(&entry.media_type) {
            let nested: Index = serde_json::from_slice(&engine.content.read_blob(&entry.digest)?)?;
            match nested.manifests.iter().find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == host.os && p.architecture == host.architecture)
            }) {
                Some(m) => m.clone(),
                None => continue,
            }
        } else {
            entry.clone()
        };
        let manifest_bytes = engine.content.read_blob(&manifest_desc.digest)?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            invalid(format!(
                "invalid archive: manifest {}: {e}",
                manifest_desc.digest
            ))
        })?;
        let config_bytes = engine.content.read_blob(&manifest.config.digest)?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
            invalid(format!(
                "invalid archive: config {}: {e}",
                manifest.config.digest
            ))
        })?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(invalid(format!(
                "invalid archive: manifest {} and its config disagree on the number of layers",
                manifest_desc.digest
            )));
        }
        let mut layers = Vec::new();
        for (desc, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            if !engine.content.exists(&desc.digest) {
                return Err(invalid(format!(
                    "invalid archive: layer {} is missing",
                    desc.digest
                )));
            }
            let size = files
                .get(&format!("blobs/sha256/{}", desc.digest.hex()))
                .and_then(|f| f.layer_size)
                .unwrap_or(desc.size);
            layers.push(LayerRecord {
                diff_id: diff_id.clone(),
                blob: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                blob_size: desc.size,
                size,
            });
        }
        let manifest_type = manifest
            .media_type
            .clone()
            .unwrap_or_else(|| manifest_desc.media_type.clone());
        let tags: Vec<Reference> = oci_name(entry).into_iter().collect();
        let stored = store_image(
            engine,
            ImageParts {
                config: &config_bytes,
                layers: &layers,
                manifest: Some((&manifest_bytes, &manifest_type)),
                parent: None,
            },
            &tags,
        )?;
        report(&mut loaded, &stored, &tags);
    }
    if loaded.tags.is_empty() && loaded.ids.is_empty() {
        return Err(invalid(
            "invalid archive: index.json names no image for this platform",
        ));
    }
    Ok(loaded)
}
