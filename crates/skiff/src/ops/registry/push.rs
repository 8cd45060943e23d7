//! `skiff push`: local image -> compressed layers (gzip on all cores, made once and kept)
//! -> for each blob: HEAD, mount from another repository of the same registry, or upload ->
//! config -> manifest PUT under the tag.
//!
//! Local layers are stored uncompressed; the first push compresses each one into the content
//! store and records the image with the pushed manifest (Docker schema2, gzip layers, as
//! docker pushes), so later pushes and pulls of the same image find the same blobs and
//! digests. An image that came from a registry is pushed with its manifest as received.

use std::collections::VecDeque;
use std::io::{self, BufReader, Write};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;
use skiff_image::content::ContentStore;
use skiff_image::digest::HashingWriter;
use skiff_image::reference::Reference;
use skiff_image::spec::{media, Manifest};
use skiff_image::store::{ImageRecord, LayerRecord, Lease};
use skiff_image::Digest;
use skiff_registry::client::{stream_channel, Mount, Session, StreamSender};
use skiff_snapshot::layer::{compressing_writer, Compression};

use super::{client_error, client_options, image_layers, session};
use crate::ops::engine::Engine;
use crate::ops::error::{OpError, PlainError};
use crate::ops::new_image::{store_image, ImageParts};

#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub all_tags: bool,
    /// Layers uploaded at once (docker's default is 5).
    pub max_concurrent: usize,
    pub insecure: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushEvent {
    /// `The push refers to repository [NAME]`
    Refers(String),
    /// `ID: STATUS` for a layer (`Preparing`, `Waiting`, `Pushed`, `Layer already exists`,
    /// `Mounted from REPO`).
    Layer { id: String, status: String },
    Progress {
        id: String,
        current: u64,
        total: u64,
    },
    /// `TAG: digest: DIGEST size: N`
    Pushed {
        tag: String,
        digest: Digest,
        size: usize,
    },
}

#[derive(Debug, Default)]
pub struct PushResult {
    pub digests: Vec<(String, Digest)>,
}

pub fn push(
    engine: &Engine,
    input: &str,
    opts: &PushOptions,
    on: &(dyn Fn(PushEvent) + Sync),
) -> Result<PushResult> {
    let reference = Reference::parse_normalized(input)
        .map_err(|e| PlainError::invalid(format!("invalid reference format: {e}")))?;
    if reference.digest().is_some() {
        return Err(OpError::invalid("cannot push a digest reference").into());
    }
    if opts.all_tags && reference.tag().is_some() {
        return Err(PlainError::invalid("tag can't be used with --all-tags/-a").into());
    }
    let targets: Vec<Reference> = if opts.all_tags {
        let mut tags = Vec::new();
        for (tag, _) in engine.meta.all_tags()? {
            if let Ok(r) = tag.parse::<Reference>() {
                if r.name() == reference.name() {
                    tags.push(r);
                }
            }
        }
        if tags.is_empty() {
            return Err(OpError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                reference.familiar_name()
            ))
            .into());
        }
        tags
    } else if reference.tag().is_none() {
        vec![reference.with_tag("latest")?]
    } else {
        vec![reference.clone()]
    };
    let mut images = Vec::new();
    for t in &targets {
        let id = engine.meta.resolve_tag(&t.to_string())?.ok_or_else(|| {
            OpError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                if opts.all_tags || reference.tag().is_some() {
                    t.familiar_string()
                } else {
                    reference.familiar_name()
                }
            ))
        })?;
        let image = engine
            .meta
            .image(&id)?
            .ok_or_else(|| OpError::not_found(format!("No such image: {id}")))?;
        images.push((t.clone(), image));
    }
    let options = client_options(&opts.insecure);
    let session = session(reference.domain(), &options)?;
    on(PushEvent::Refers(reference.name()));
    let lease = engine.meta.create_lease(Duration::from_secs(24 * 3600))?;
    let mut result = PushResult::default();
    for (tag, image) in images {
        let (digest, size) = push_one(engine, &session, &lease, &tag, &image, opts, on)?;
        let tag_name = tag.tag().unwrap_or("latest").to_owned();
        on(PushEvent::Pushed {
            tag: tag_name.clone(),
            digest: digest.clone(),
            size,
        });
        result.digests.push((tag_name, digest));
    }
    Ok(result)
}

/// A layer to make sure the registry has.
struct Upload {
    /// What the progress lines call it (the layer's diff ID, as docker shows it).
    id: String,
    job: Job,
}

enum Job {
    /// A compressed blob in the store: HEAD, mount or upload it.
    Blob {
        digest: Digest,
        size: u64,
        /// Other repositories of this registry that have the blob.
        mount_from: Vec<String>,
    },
    /// The uncompressed layer at this position: compress and upload it in one pass.
    Compress(usize),
}

/// Counts free compression slots: each compression already uses every core (and holds a
/// few MiB of chunks), so one runs at a time; the commit and upload of one layer overlap the
/// compression of the next.
struct Slots {
    free: Mutex<usize>,
    freed: std::sync::Condvar,
}

struct Slot<'a>(&'a Slots);

impl Slots {
    fn acquire(&self) -> Option<Slot<'_>> {
        let mut n = self.free.lock().ok()?;
        while *n == 0 {
            n = self.freed.wait(n).ok()?;
        }
        *n -= 1;
        Some(Slot(self))
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Ok(mut n) = self.0.free.lock() {
            *n += 1;
        }
        self.0.freed.notify_one();
    }
}

/// Docker's schema2 descriptor, fields in the order docker writes them.
#[derive(Serialize)]
struct D2Descriptor {
    #[serde(rename = "mediaType")]
    media_type: String,
    size: u64,
    digest: String,
}

#[derive(Serialize)]
struct D2Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'static str,
    config: D2Descriptor,
    layers: Vec<D2Descriptor>,
}

/// JSON indented with three spaces, as docker's distribution code marshals manifests.
fn docker_json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    v.serialize(&mut ser)?;
    Ok(out)
}

fn is_compressed(media_type: &str) -> bool {
    media_type.ends_with("gzip") || media_type.ends_with("+zstd")
}

/// The manifest stored with the image, if it can be pushed as it is: it names this config
/// and compressed layers that are all in the store.
fn stored_manifest(engine: &Engine, image: &ImageRecord) -> Option<(Vec<u8>, Manifest)> {
    if !media::is_manifest(&image.manifest_media_type) {
        return None;
    }
    let bytes = engine.content.read_blob(&image.manifest).ok()?;
    let m: Manifest = serde_json::from_slice(&bytes).ok()?;
    let usable = m.config.digest == image.id
        && m.layers.iter().all(|l| {
            (is_compressed(&l.media_type) || l.media_type.contains("foreign"))
                && engine.content.exists(&l.digest)
        });
    usable.then_some((bytes, m))
}

/// Passes compressed bytes to the ingest and, while the upload reads them, to the upload.
struct TeeToUpload<'a, W: Write> {
    ingest: &'a mut W,
    upload: Option<StreamSender>,
}

impl<W: Write> Write for TeeToUpload<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.ingest.write(buf)?;
        if let Some(tx) = &self.upload {
            if !tx.send(buf[..n].to_vec()) {
                // The upload stopped; the blob is still stored and is uploaded again later.
                self.upload = None;
            }
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.ingest.flush()
    }
}

/// Gzips an uncompressed layer blob into the store and into `upload` as it goes; returns
/// the compressed digest and size once the blob is committed.
fn compress_layer(
    content: &ContentStore,
    layer: &LayerRecord,
    upload: Option<StreamSender>,
    slot: Option<Slot<'_>>,
) -> Result<(Digest, u64)> {
    let mut writer = content.writer(&format!("push-gzip-{}", layer.blob.hex()))?;
    writer.truncate()?;
    let (digest, size) = {
        // Held while compressing only: the commit (an fsync) overlaps the next layer.
        let _slot = slot;
        let mut out = HashingWriter::new(TeeToUpload {
            ingest: &mut writer,
            upload,
        });
        let src = content.open_blob(&layer.blob)?;
        let mut gz = compressing_writer(&mut out, Compression::Gzip)?;
        io::copy(&mut BufReader::with_capacity(1 << 20, src), &mut gz)
            .with_context(|| format!("compressing layer {}", layer.blob))?;
        gz.finish()?;
        // Dropping the tee (returned here) ends the upload's body.
        let (_tee, digest, size) = out.finish();
        (digest, size)
    };
    writer.commit(Some(size), Some(&digest))?;
    Ok((digest, size))
}

/// Compresses a layer and uploads it in the same pass, as docker pushes layers it has never
/// compressed: the gzip stream goes both into the store (kept for later pushes) and into one
/// streamed PATCH. If the streamed upload fails, the stored blob is uploaded again.
fn compress_and_upload(
    content: &ContentStore,
    session: &Session,
    repo: &str,
    layer: &LayerRecord,
    slots: &Slots,
    on: &(dyn Fn(PushEvent) + Sync),
) -> Result<(Digest, u64)> {
    let id = layer.diff_id.short().to_owned();
    // Taken before the upload session opens, so that no session idles waiting for it.
    let slot = slots.acquire();
    let location = match session.start_upload(repo) {
        Ok(l) => Some(l),
        Err(e) => {
            log::debug!("starting the upload of layer {}: {e}", layer.diff_id);
            None
        }
    };
    on(PushEvent::Layer {
        id: id.clone(),
        status: "Pushing".into(),
    });
    let total = layer.blob_size;
    let progress = |current: u64| {
        on(PushEvent::Progress {
            id: id.clone(),
            current: current.min(total),
            total,
        })
    };
    // A short queue: the compressor runs only a few chunks ahead of the network.
    let (tx, body) = stream_channel(4);
    let (compressed, streamed) = std::thread::scope(|s| {
        let compressor = s.spawn(move || compress_layer(content, layer, Some(tx), slot));
        let streamed = match &location {
            Some(loc) => Some(session.upload_stream(repo, loc, body, &progress)),
            None => {
                drop(body);
                None
            }
        };
        let compressed = compressor
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the compression thread panicked")));
        (compressed, streamed)
    });
    let (digest, size) = compressed?;
    let finished = match streamed {
        Some(Ok(next)) => session.finish_upload(repo, &next, &digest),
        Some(Err(e)) => Err(e),
        None => Err(skiff_registry::client::ClientError::Protocol(
            "no upload session".into(),
        )),
    };
    if let Err(e) = finished {
        log::debug!("streamed upload of {digest} failed ({e}); uploading the stored blob");
        let path = content.blob_path(&digest);
        session
            .upload_blob(repo, &digest, &path, size, None, &mut |n| progress(n))
            .map_err(client_error)?;
    }
    on(PushEvent::Layer {
        id,
        status: "Pushed".into(),
    });
    Ok((digest, size))
}

fn push_one(
    engine: &Engine,
    session: &Session,
    lease: &Lease<'_>,
    tag: &Reference,
    image: &ImageRecord,
    opts: &PushOptions,
    on: &(dyn Fn(PushEvent) + Sync),
) -> Result<(Digest, usize)> {
    let repo = tag.path().to_owned();
    let layers = engine.meta.layers(&image.id)?;
    let config_bytes = engine.content.read_blob(&image.id)?;
    let stored = stored_manifest(engine, image);
    for l in &layers {
        on(PushEvent::Layer {
            id: l.diff_id.short().to_owned(),
            status: "Preparing".into(),
        });
    }
    let workers = opts.max_concurrent.max(1);
    for l in layers.iter().skip(workers) {
        on(PushEvent::Layer {
            id: l.diff_id.short().to_owned(),
            status: "Waiting".into(),
        });
    }
    // Compressed twins of uncompressed layers, from earlier pushes or pulls.
    let images = image_layers(engine)?;
    let compressed_twin = |l: &LayerRecord| -> Option<(Digest, u64, String)> {
        images
            .iter()
            .flat_map(|(_, layers)| layers)
            .find(|k| {
                k.diff_id == l.diff_id
                    && k.media_type.ends_with("gzip")
                    && engine.content.exists(&k.blob)
            })
            .map(|k| (k.blob.clone(), k.blob_size, k.media_type.clone()))
    };

    // The producer decides per layer what to send (in layer order); the workers send it:
    // HEAD / mount / upload for compressed blobs, compress-and-stream for the others.
    let queue: Mutex<VecDeque<Upload>> = Mutex::new(VecDeque::new());
    let ready = std::sync::Condvar::new();
    let done_producing = std::sync::atomic::AtomicBool::new(false);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let errors: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    let new_layers: Mutex<Vec<Option<LayerRecord>>> = Mutex::new(vec![None; layers.len()]);
    let push_manifest_layers = stored.as_ref().map(|(_, m)| m.layers.clone());
    let slots = Slots {
        free: Mutex::new(1),
        freed: std::sync::Condvar::new(),
    };
    let record = |i: usize, l: &LayerRecord, digest: &Digest, size: u64, media_type: &str| {
        if let Ok(mut nl) = new_layers.lock() {
            nl[i] = Some(LayerRecord {
                diff_id: l.diff_id.clone(),
                blob: digest.clone(),
                media_type: media_type.to_owned(),
                blob_size: size,
                size: l.size,
            });
        }
    };
    // Blobs the workers compressed: the lease (held by this thread, the metadata connection
    // is not shareable) protects them until the image is recorded with them.
    let (lease_tx, lease_rx) = std::sync::mpsc::channel::<Digest>();

    // Only the content store goes to the worker threads.
    let content = &engine.content;
    std::thread::scope(|s| {
        let (queue, ready, done_producing, failed, errors, slots, record, layers, repo) = (
            &queue,
            &ready,
            &done_producing,
            &failed,
            &errors,
            &slots,
            &record,
            &layers,
            &repo,
        );
        for _ in 0..workers {
            let lease_tx = lease_tx.clone();
            s.spawn(move || loop {
                let job = {
                    let Ok(mut q) = queue.lock() else { break };
                    loop {
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            break None;
                        }
                        if let Some(j) = q.pop_front() {
                            break Some(j);
                        }
                        if done_producing.load(std::sync::atomic::Ordering::Acquire) {
                            break None;
                        }
                        q = match ready.wait_timeout(q, Duration::from_millis(200)) {
                            Ok((q, _)) => q,
                            Err(_) => return,
                        };
                    }
                };
                let Some(job) = job else { break };
                let result = match &job.job {
                    Job::Blob {
                        digest,
                        size,
                        mount_from,
                    } => upload_layer(
                        content, session, repo, &job.id, digest, *size, mount_from, on,
                    ),
                    Job::Compress(i) => {
                        let l = &layers[*i];
                        compress_and_upload(content, session, repo, l, slots, on).map(
                            |(d, size)| {
                                let _ = lease_tx.send(d.clone());
                                record(*i, l, &d, size, media::DOCKER_LAYER_GZIP);
                            },
                        )
                    }
                };
                if let Err(e) = result {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    if let Ok(mut errs) = errors.lock() {
                        errs.push(e);
                    }
                }
            });
        }
        drop(lease_tx);
        let produce = || -> Result<()> {
            for (i, l) in layers.iter().enumerate() {
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let known_blob = match &push_manifest_layers {
                    Some(ml) => {
                        let d = &ml[i];
                        Some((d.digest.clone(), d.size, d.media_type.clone()))
                    }
                    None if is_compressed(&l.media_type) => {
                        Some((l.blob.clone(), l.blob_size, l.media_type.clone()))
                    }
                    None => compressed_twin(l),
                };
                let job = match known_blob {
                    Some((digest, size, media_type)) => {
                        record(i, l, &digest, size, &media_type);
                        let mount_from = mount_sources(engine, &images, tag, &digest)?;
                        Job::Blob {
                            digest,
                            size,
                            mount_from,
                        }
                    }
                    None => Job::Compress(i),
                };
                if let Ok(mut q) = queue.lock() {
                    q.push_back(Upload {
                        id: l.diff_id.short().to_owned(),
                        job,
                    });
                }
                ready.notify_one();
            }
            Ok(())
        };
        if let Err(e) = produce() {
            failed.store(true, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut errs) = errors.lock() {
                errs.push(e);
            }
        }
        done_producing.store(true, std::sync::atomic::Ordering::Release);
        ready.notify_all();
        // Until every worker is done (they hold the senders).
        for d in lease_rx {
            if let Err(e) = lease.add("blob", &d.to_string()) {
                if let Ok(mut errs) = errors.lock() {
                    errs.push(e.into());
                }
            }
        }
    });
    if let Some(e) = errors
        .into_inner()
        .map_err(|_| anyhow::anyhow!("an upload thread panicked"))?
        .into_iter()
        .next()
    {
        return Err(e);
    }
    let new_layers: Vec<LayerRecord> = new_layers
        .into_inner()
        .map_err(|_| anyhow::anyhow!("an upload thread panicked"))?
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("a layer was not prepared"))?;

    // The config, then the manifest.
    if session
        .blob_exists(&repo, &image.id)
        .map_err(client_error)?
        .is_none()
    {
        let path = engine.content.blob_path(&image.id);
        session
            .upload_blob(
                &repo,
                &image.id,
                &path,
                config_bytes.len() as u64,
                None,
                &mut |_| {},
            )
            .map_err(client_error)?;
    }
    let (manifest_bytes, media_type) = match &stored {
        Some((bytes, _)) => (bytes.clone(), image.manifest_media_type.clone()),
        None => {
            let m = D2Manifest {
                schema_version: 2,
                media_type: media::DOCKER_MANIFEST,
                config: D2Descriptor {
                    media_type: media::DOCKER_CONFIG.to_owned(),
                    size: config_bytes.len() as u64,
                    digest: image.id.to_string(),
                },
                layers: new_layers
                    .iter()
                    .map(|l| D2Descriptor {
                        media_type: if l.media_type == media::OCI_LAYER_GZIP {
                            media::DOCKER_LAYER_GZIP.to_owned()
                        } else {
                            l.media_type.clone()
                        },
                        size: l.blob_size,
                        digest: l.blob.to_string(),
                    })
                    .collect(),
            };
            (docker_json(&m)?, media::DOCKER_MANIFEST.to_owned())
        }
    };
    let size = manifest_bytes.len();
    let tag_name = tag.tag().unwrap_or("latest");
    let digest = session
        .put_manifest(&repo, tag_name, manifest_bytes.clone().into(), &media_type)
        .map_err(client_error)?;
    if stored.is_none() {
        // From now on the image is recorded with what was pushed: its compressed layers
        // are what GC keeps, and the next push or pull finds them.
        store_image(
            engine,
            ImageParts {
                config: &config_bytes,
                layers: &new_layers,
                manifest: Some((&manifest_bytes, &media_type)),
                parent: image.parent.clone(),
            },
            &[],
        )?;
    }
    engine
        .meta
        .add_repo_digest(&format!("{}@{digest}", tag.name()), &image.id)?;
    Ok((digest, size))
}

/// Makes sure the registry has one layer blob: already there, mounted from another
/// repository of the same registry that has it, or uploaded.
#[allow(clippy::too_many_arguments)]
fn upload_layer(
    content: &ContentStore,
    session: &Session,
    repo: &str,
    id: &str,
    digest: &Digest,
    size: u64,
    mount_from: &[String],
    on: &(dyn Fn(PushEvent) + Sync),
) -> Result<()> {
    let status = |s: &str| {
        on(PushEvent::Layer {
            id: id.to_owned(),
            status: s.to_owned(),
        })
    };
    if session
        .blob_exists(repo, digest)
        .map_err(client_error)?
        .is_some()
    {
        status("Layer already exists");
        return Ok(());
    }
    let mut location = None;
    for source in mount_from {
        match session.mount_blob(repo, source, digest) {
            Ok(Mount::Mounted) => {
                status(&format!("Mounted from {source}"));
                return Ok(());
            }
            Ok(Mount::Upload(loc)) => {
                location = Some(loc);
                break;
            }
            Err(e) => log::debug!("mounting {digest} from {source}: {e}"),
        }
    }
    status("Pushing");
    let path = content.blob_path(digest);
    session
        .upload_blob(repo, digest, &path, size, location, &mut |current| {
            on(PushEvent::Progress {
                id: id.to_owned(),
                current,
                total: size,
            })
        })
        .map_err(client_error)?;
    status("Pushed");
    Ok(())
}

/// Other repositories of the same registry known to have `blob` (from the repo digests of
/// local images that contain it).
fn mount_sources(
    engine: &Engine,
    images: &[(Digest, Vec<LayerRecord>)],
    tag: &Reference,
    blob: &Digest,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let holders = images
        .iter()
        .filter(|(_, layers)| layers.iter().any(|l| &l.blob == blob));
    for (id, _) in holders {
        for rd in engine.meta.repo_digests_of(id)? {
            let Ok(r) = rd.parse::<Reference>() else {
                continue;
            };
            if r.domain() == tag.domain() && r.path() != tag.path() {
                let p = r.path().to_owned();
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    Ok(out)
}
