//! `skiff pull`: reference -> manifest (an index or manifest list resolved to the platform)
//! -> config and layers streamed into the content store (up to N at once, resumable,
//! verified) -> image recorded with its tag and repo digest.
//!
//! While a layer downloads, its bytes also go to a thread that decompresses them, hashes the
//! tar (checking the config's diff ID) and counts its size, so nothing is read twice. Layers
//! keep the compression they came with, and their manifest is stored as received, so the
//! image's digests survive a later push. Everything fetched is under a lease until the image
//! is recorded.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result};
use skiff_image::content::ContentStore;
use skiff_image::reference::Reference;
use skiff_image::spec::{Descriptor, ImageConfig, Index, Manifest, Platform};
use skiff_image::store::{LayerRecord, Lease};
use skiff_image::Digest;
use skiff_registry::client::{parse_platform, select_platform, BlobEvent, ClientError, Session};
use skiff_snapshot::layer::decompressing_reader;

use super::{client_error, client_error_with, client_options, image_layers, session};
use crate::ops::engine::Engine;
use crate::ops::error::{OpError, PlainError};
use crate::ops::layer_ingest::count_layer;
use crate::ops::new_image::{store_image, ImageParts};

#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    pub all_tags: bool,
    /// `os/arch[/variant]`; the host's when None.
    pub platform: Option<String>,
    /// Layers downloaded at once (docker's default is 3).
    pub max_concurrent: usize,
    pub insecure: Vec<String>,
}

/// What a pull reports while it runs, in docker's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullEvent {
    /// `TAG: Pulling from PATH` (TAG may be a digest).
    PullingFrom { reference: String, path: String },
    /// `ID: STATUS` for a layer (`Pulling fs layer`, `Waiting`, `Verifying Checksum`,
    /// `Download complete`, `Pull complete`, `Already exists`).
    Layer { id: String, status: &'static str },
    /// Bytes of a layer downloaded so far (for a terminal's progress bars).
    Progress {
        id: String,
        current: u64,
        total: u64,
    },
    /// `Digest: sha256:…`
    Digest(Digest),
    /// `Status: …`
    Status(String),
}

/// The result of a pull: the references pulled (the last line docker prints).
#[derive(Debug, Default)]
pub struct Pulled {
    pub references: Vec<String>,
}

pub fn pull(
    engine: &Engine,
    input: &str,
    opts: &PullOptions,
    on: &(dyn Fn(PullEvent) + Sync),
) -> Result<Pulled> {
    let reference = Reference::parse_normalized(input)
        .map_err(|e| PlainError::invalid(format!("invalid reference format: {e}")))?;
    if opts.all_tags && (reference.tag().is_some() || reference.digest().is_some()) {
        return Err(PlainError::invalid("tag can't be used with --all-tags/-a").into());
    }
    let platform = match &opts.platform {
        Some(p) => parse_platform(p).map_err(|e| PlainError::invalid(e.to_string()))?,
        None => Platform::host(),
    };
    let options = client_options(&opts.insecure);
    let session = session(reference.domain(), &options)?;
    let lease = engine.meta.create_lease(Duration::from_secs(24 * 3600))?;
    let mut pulled = Pulled::default();
    if opts.all_tags {
        let tags = session
            .tags(reference.path())
            .map_err(|e| pull_error(e, &reference))?;
        let mut any_new = false;
        for tag in tags {
            let r = reference.with_tag(&tag)?;
            let outcome = pull_one(engine, &session, &lease, &r, &platform, opts, on)?;
            on(PullEvent::Digest(outcome.digest.clone()));
            any_new |= outcome.downloaded;
        }
        on(PullEvent::Status(format!(
            "{} {}",
            status_words(any_new),
            reference.familiar_name()
        )));
        pulled.references.push(reference.name());
        return Ok(pulled);
    }
    let r = if reference.tag().is_none() && reference.digest().is_none() {
        reference.with_tag("latest")?
    } else {
        reference
    };
    let outcome = pull_one(engine, &session, &lease, &r, &platform, opts, on)?;
    on(PullEvent::Digest(outcome.digest.clone()));
    on(PullEvent::Status(format!(
        "{} {}",
        status_words(outcome.downloaded),
        r.familiar_string()
    )));
    pulled.references.push(r.to_string());
    Ok(pulled)
}

/// The start of docker's last `Status:` line.
fn status_words(downloaded: bool) -> &'static str {
    if downloaded {
        "Downloaded newer image for"
    } else {
        "Image is up to date for"
    }
}

struct Outcome {
    /// The digest of what the reference named (the index when it named one).
    digest: Digest,
    /// Whether anything changed locally (blobs fetched or the tag moved).
    downloaded: bool,
}

/// docker's wording for a failed manifest fetch.
fn pull_error(e: ClientError, r: &Reference) -> anyhow::Error {
    if matches!(e.code(), Some("MANIFEST_UNKNOWN")) {
        let msg = format!("manifest for {} not found: {e}", r.familiar_string());
        return client_error_with(e, msg);
    }
    if e.is_access_denied() {
        let msg = format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {e}",
            r.familiar_name()
        );
        return client_error_with(e, msg);
    }
    client_error(e)
}

fn pull_one(
    engine: &Engine,
    session: &Session,
    lease: &Lease<'_>,
    r: &Reference,
    platform: &Platform,
    opts: &PullOptions,
    on: &(dyn Fn(PullEvent) + Sync),
) -> Result<Outcome> {
    let repo = r.path().to_owned();
    let wanted = match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    };
    let top = session
        .get_manifest(&repo, &wanted)
        .map_err(|e| pull_error(e, r))?;
    on(PullEvent::PullingFrom {
        reference: wanted.clone(),
        path: repo.clone(),
    });
    let mut downloaded = false;
    let manifest = if top.is_index() {
        let index: Index = serde_json::from_slice(&top.bytes)
            .map_err(|e| OpError::invalid(format!("invalid manifest list {}: {e}", top.digest)))?;
        let entry = select_platform(&index, platform).ok_or_else(|| {
            let variant = platform
                .variant
                .as_deref()
                .map(|v| format!("/{v}"))
                .unwrap_or_default();
            OpError::not_found(format!(
                "no matching manifest for {}/{}{variant} in the manifest list entries",
                platform.os, platform.architecture
            ))
        })?;
        downloaded |= !engine.content.exists(&top.digest);
        engine.content.write_blob(&top.bytes)?;
        lease.add("blob", &top.digest.to_string())?;
        session
            .get_manifest(&repo, &entry.digest.to_string())
            .map_err(|e| pull_error(e, r))?
    } else {
        top.clone()
    };
    if manifest.is_index() {
        return Err(OpError::invalid(format!(
            "manifest {} is an index inside an index: not supported",
            manifest.digest
        ))
        .into());
    }
    let parsed: Manifest = serde_json::from_slice(&manifest.bytes).map_err(|e| {
        OpError::invalid(format!(
            "unsupported manifest {} ({}): {e}",
            manifest.digest, manifest.media_type
        ))
    })?;
    if parsed.schema_version != 2 {
        return Err(OpError::invalid(format!(
            "unsupported manifest schema version {} (only schema 2 manifests can be pulled)",
            parsed.schema_version
        ))
        .into());
    }
    // The config first: its diff IDs say what each layer must unpack to.
    downloaded |= !engine.content.exists(&parsed.config.digest);
    session
        .fetch_blob(&repo, &parsed.config, &engine.content, &mut |_| {})
        .map_err(client_error)?;
    lease.add("blob", &parsed.config.digest.to_string())?;
    let config_bytes = engine.content.read_blob(&parsed.config.digest)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|e| {
        OpError::invalid(format!(
            "invalid image config {}: {e}",
            parsed.config.digest
        ))
    })?;
    if config.rootfs.diff_ids.len() != parsed.layers.len() {
        return Err(OpError::invalid(format!(
            "the image config lists {} layers, the manifest {}",
            config.rootfs.diff_ids.len(),
            parsed.layers.len()
        ))
        .into());
    }
    let (layers, fetched) =
        fetch_layers(engine, session, lease, &repo, &parsed, &config, opts, on)?;
    downloaded |= fetched;
    engine.content.write_blob(&manifest.bytes)?;
    lease.add("blob", &manifest.digest.to_string())?;

    let id = parsed.config.digest.clone();
    let tag_name = r.digest().is_none().then(|| r.to_string());
    let previous = match &tag_name {
        Some(t) => engine.meta.resolve_tag(t)?,
        None => None,
    };
    let repo_digest = format!("{}@{}", r.name(), top.digest);
    let had_repo_digest = engine.meta.resolve_repo_digest(&repo_digest)? == Some(id.clone());
    downloaded |= previous.as_ref() != Some(&id) && tag_name.is_some();
    downloaded |= !had_repo_digest;
    let tags: Vec<Reference> = if r.digest().is_none() {
        vec![r.clone()]
    } else {
        Vec::new()
    };
    store_image(
        engine,
        ImageParts {
            config: &config_bytes,
            layers: &layers,
            manifest: Some((&manifest.bytes, &manifest.media_type)),
            parent: None,
        },
        &tags,
    )?;
    engine.meta.add_repo_digest(&repo_digest, &id)?;
    Ok(Outcome {
        digest: top.digest,
        downloaded,
    })
}

/// One layer to fetch.
struct Job {
    index: usize,
    desc: Descriptor,
    diff_id: Digest,
}

/// Downloads the missing layers, `max_concurrent` at a time; returns the layer records in
/// manifest order and whether anything was downloaded.
#[allow(clippy::too_many_arguments)]
fn fetch_layers(
    engine: &Engine,
    session: &Session,
    lease: &Lease<'_>,
    repo: &str,
    manifest: &Manifest,
    config: &ImageConfig,
    opts: &PullOptions,
    on: &(dyn Fn(PullEvent) + Sync),
) -> Result<(Vec<LayerRecord>, bool)> {
    let known: Vec<LayerRecord> = image_layers(engine)?
        .into_iter()
        .flat_map(|(_, layers)| layers)
        .collect();
    let mut records: Vec<Option<LayerRecord>> = vec![None; manifest.layers.len()];
    let mut jobs = VecDeque::new();
    for (i, (desc, diff_id)) in manifest
        .layers
        .iter()
        .zip(&config.rootfs.diff_ids)
        .enumerate()
    {
        let id = desc.digest.short().to_owned();
        if engine.content.exists(&desc.digest) {
            lease.add("blob", &desc.digest.to_string())?;
            on(PullEvent::Layer {
                id,
                status: "Already exists",
            });
            let size = match known.iter().find(|l| l.blob == desc.digest) {
                Some(l) => l.size,
                None => {
                    let (d, size) = measure_blob(&engine.content, &desc.digest)?;
                    check_diff_id(&desc.digest, &d, diff_id)?;
                    size
                }
            };
            records[i] = Some(LayerRecord {
                diff_id: diff_id.clone(),
                blob: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                blob_size: desc.size,
                size,
            });
        } else {
            if is_foreign(&desc.media_type) && desc.urls.as_ref().is_none_or(Vec::is_empty) {
                return Err(OpError::invalid(format!(
                    "foreign layer {} has no URLs to download it from",
                    desc.digest
                ))
                .into());
            }
            on(PullEvent::Layer {
                id,
                status: "Pulling fs layer",
            });
            jobs.push_back(Job {
                index: i,
                desc: desc.clone(),
                diff_id: diff_id.clone(),
            });
        }
    }
    let workers = opts.max_concurrent.max(1);
    for job in jobs.iter().skip(workers) {
        on(PullEvent::Layer {
            id: job.desc.digest.short().to_owned(),
            status: "Waiting",
        });
    }
    let downloaded = !jobs.is_empty();
    let queue = Mutex::new(jobs);
    // Only the content store goes to the download threads (the metadata connection is not
    // shareable between threads).
    let content = &engine.content;
    let results: Mutex<Vec<(usize, Result<LayerRecord>)>> = Mutex::new(Vec::new());
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                if failed.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let job = match queue.lock() {
                    Ok(mut q) => q.pop_front(),
                    Err(_) => None,
                };
                let Some(job) = job else { break };
                let r = fetch_layer(content, session, repo, &job, on);
                if r.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                if let Ok(mut res) = results.lock() {
                    res.push((job.index, r));
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a download thread panicked"))?;
    let mut first_err = None;
    for (i, r) in results {
        match r {
            Ok(rec) => {
                lease.add("blob", &rec.blob.to_string())?;
                records[i] = Some(rec);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let records = records
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| anyhow::anyhow!("a layer download did not finish"))?;
    Ok((records, downloaded))
}

/// Docker's foreign and OCI's non-distributable layers: fetched from their `urls`.
fn is_foreign(media_type: &str) -> bool {
    media_type.contains("foreign") || media_type.contains("nondistributable")
}

fn check_diff_id(blob: &Digest, actual: &Digest, want: &Digest) -> Result<()> {
    if actual != want {
        return Err(OpError::invalid(format!(
            "layer {blob} does not match the image config: its content hashes to {actual}, the config says {want}"
        ))
        .into());
    }
    Ok(())
}

/// Decompresses a stored layer blob to learn its diff ID and size.
fn measure_blob(content: &ContentStore, blob: &Digest) -> Result<(Digest, u64)> {
    // `measure` buffers its reader.
    measure(content.open_blob(blob)?).with_context(|| format!("reading layer {blob}"))
}

fn measure(reader: impl Read) -> io::Result<(Digest, u64)> {
    let (_, reader) = decompressing_reader(io::BufReader::with_capacity(1 << 20, reader))?;
    let mut hasher = skiff_image::digest::Hasher::new();
    let size = count_layer(reader, &mut hasher)?;
    Ok((hasher.finish(), size))
}

/// Reads the chunks a download thread sends.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A thread measuring a layer from the bytes of its download.
struct Tee {
    tx: Option<SyncSender<Vec<u8>>>,
    handle: Option<JoinHandle<io::Result<(Digest, u64)>>>,
    /// Bytes sent so far (must equal the download offset to stay valid).
    seen: u64,
}

impl Tee {
    fn start() -> Tee {
        // A short queue: a download may run only a few chunks ahead of its measurer, which
        // keeps memory flat (each chunk can be a few hundred KiB).
        let (tx, rx) = sync_channel::<Vec<u8>>(8);
        let handle = std::thread::spawn(move || {
            let mut r = ChannelReader {
                rx,
                buf: Vec::new(),
                pos: 0,
            };
            let result = measure(&mut r);
            // Drain so the sender never blocks on a measurer that gave up.
            let _ = io::copy(&mut r, &mut io::sink());
            result
        });
        Tee {
            tx: Some(tx),
            handle: Some(handle),
            seen: 0,
        }
    }

    fn finish(mut self) -> Option<io::Result<(Digest, u64)>> {
        drop(self.tx.take());
        self.handle.take().and_then(|h| h.join().ok())
    }
}

fn fetch_layer(
    content: &ContentStore,
    session: &Session,
    repo: &str,
    job: &Job,
    on: &(dyn Fn(PullEvent) + Sync),
) -> Result<LayerRecord> {
    let id = job.desc.digest.short().to_owned();
    let total = job.desc.size;
    let mut tee: Option<Tee> = None;
    let mut valid = true;
    let mut current = 0u64;
    let mut last_report = std::time::Instant::now();
    let mut observe = |ev: BlobEvent<'_>| match ev {
        BlobEvent::Start { offset } => {
            current = offset;
            match &tee {
                Some(t) if t.seen == offset => {}
                _ if offset == 0 => {
                    if let Some(old) = tee.take() {
                        let _ = old.finish();
                    }
                    tee = Some(Tee::start());
                    valid = true;
                }
                _ => valid = false,
            }
        }
        BlobEvent::Data(bytes) => {
            current += bytes.len() as u64;
            if valid {
                if let Some(t) = &mut tee {
                    t.seen += bytes.len() as u64;
                    if let Some(tx) = &t.tx {
                        if tx.send(bytes.to_vec()).is_err() {
                            valid = false;
                        }
                    }
                }
            }
            if last_report.elapsed() >= Duration::from_millis(100) {
                last_report = std::time::Instant::now();
                on(PullEvent::Progress {
                    id: id.clone(),
                    current,
                    total,
                });
            }
        }
        BlobEvent::Verifying => on(PullEvent::Layer {
            id: id.clone(),
            status: "Verifying Checksum",
        }),
    };
    let fetched = session.fetch_blob(repo, &job.desc, content, &mut observe);
    let measured = tee.take().and_then(Tee::finish);
    fetched.map_err(client_error)?;
    on(PullEvent::Layer {
        id: id.clone(),
        status: "Download complete",
    });
    let (diff_id, size) = match measured {
        Some(Ok(m)) if valid => m,
        _ => measure_blob(content, &job.desc.digest)?,
    };
    check_diff_id(&job.desc.digest, &diff_id, &job.diff_id)?;
    on(PullEvent::Layer {
        id,
        status: "Pull complete",
    });
    Ok(LayerRecord {
        diff_id,
        blob: job.desc.digest.clone(),
        media_type: job.desc.media_type.clone(),
        blob_size: job.desc.size,
        size,
    })
}
