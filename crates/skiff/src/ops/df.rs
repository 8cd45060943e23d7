//! `system df` and the counts `info` shows.

use std::collections::{HashMap, HashSet};

use anyhow::Result;

use super::container::{reconcile, ContainerStore, Status};
use super::engine::Engine;
use super::volume::store as volumes;

#[derive(Debug, Default)]
pub struct DiskUsage {
    pub images: usize,
    pub active_images: usize,
    pub images_size: u64,
    pub reclaimable: u64,
    pub containers: ContainerCounts,
    /// Bytes in the writable layers of all containers, and of those not running.
    pub containers_size: u64,
    pub containers_reclaimable: u64,
    pub volumes: usize,
    pub active_volumes: usize,
    pub volumes_size: u64,
    pub volumes_reclaimable: u64,
    pub build_cache: usize,
    pub build_cache_size: u64,
}

/// Containers by state, as `info` counts them.
#[derive(Debug, Default)]
pub struct ContainerCounts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
}

/// Counts containers by their (reconciled) state; with `sizes`, also adds up their writable
/// layers as `(all, not running)`.
pub fn containers(engine: &Engine, sizes: bool) -> Result<(ContainerCounts, u64, u64)> {
    let store = ContainerStore::open(engine.root())?;
    let mut counts = ContainerCounts::default();
    let (mut size, mut reclaimable) = (0, 0);
    for c in store.list()? {
        let Ok(state) = reconcile::state(engine.root(), &store, &c) else {
            continue; // removed while we counted
        };
        counts.total += 1;
        let running = match state.status {
            Status::Paused => {
                counts.paused += 1;
                true
            }
            Status::Running | Status::Restarting => {
                counts.running += 1;
                true
            }
            _ => {
                counts.stopped += 1;
                false
            }
        };
        if sizes {
            let rw = engine.snapshotter()?.usage(&c.snapshot_key).unwrap_or(0);
            size += rw;
            if !running {
                reclaimable += rw;
            }
        }
    }
    Ok((counts, size, reclaimable))
}

pub fn disk_usage(engine: &Engine) -> Result<DiskUsage> {
    let mut du = DiskUsage::default();
    let mut seen_layers = HashSet::new();
    for image in engine.meta.images()? {
        // Shared layers count once, as docker counts them.
        for layer in engine.meta.layers(&image.id)? {
            if seen_layers.insert(layer.diff_id.clone()) {
                du.images_size += layer.size;
            }
        }
    }
    // docker counts the images `images` lists and, as reclaimable, all the bytes but the
    // unique ones of images with containers (so a used base shared with an unused image
    // counts as reclaimable, as docker 20.10 shows it).
    let listed = image_usage(engine)?;
    du.images = listed.len();
    let mut used = 0u64;
    for i in listed.iter().filter(|i| i.containers > 0) {
        du.active_images += 1;
        used += i.image.size.saturating_sub(i.shared);
    }
    du.reclaimable = du.images_size.saturating_sub(used);
    (du.containers, du.containers_size, du.containers_reclaimable) = containers(engine, true)?;
    for v in volumes::list(engine)? {
        let size = volumes::disk_usage(&v.mountpoint);
        du.volumes += 1;
        du.volumes_size += size;
        if volumes::users(engine, &v.name)?.is_empty() {
            du.volumes_reclaimable += size;
        } else {
            du.active_volumes += 1;
        }
    }
    // docker's build cache size leaves out what images hold (`Shared`), as `-v` shows it.
    let cache = cache_usage(engine)?;
    du.build_cache = cache.len();
    du.build_cache_size = unshared_size(&cache);
    Ok(du)
}

/// One build cache entry, as `system df -v` lists it.
#[derive(Debug, Clone)]
pub struct CacheRecord {
    pub key: String,
    pub parent: String,
    pub instruction: String,
    /// The image's layer stack after the step.
    pub layers: Vec<skiff_image::store::LayerRecord>,
    /// Bytes of the layer the step made.
    pub size: u64,
    /// Seconds since the epoch.
    pub created: i64,
    pub last_used: i64,
}

/// One image row of `system df -v`.
pub struct ImageUsage {
    pub image: skiff_image::store::ImageRecord,
    pub repository: String,
    pub tag: String,
    /// Bytes of its layers that another listed image also has.
    pub shared: u64,
    /// Containers created from it.
    pub containers: usize,
}

pub struct VolumeUsage {
    pub volume: volumes::Volume,
    /// Containers that mount it.
    pub links: usize,
    pub size: u64,
}

pub struct CacheUsage {
    pub record: CacheRecord,
    /// An image holds the entry's layers, so pruning the cache would not free them
    /// (BuildKit's `Shared`).
    pub shared: bool,
}

/// What `system df -v` lists.
pub struct VerboseUsage {
    pub images: Vec<ImageUsage>,
    pub containers: Vec<super::container::list::PsRow>,
    pub volumes: Vec<VolumeUsage>,
    pub cache: Vec<CacheUsage>,
}

impl VerboseUsage {
    /// docker's "Build cache usage".
    pub fn cache_size(&self) -> u64 {
        unshared_size(&self.cache)
    }
}

/// Bytes of the cache entries no image holds: what docker counts as the build cache's size
/// (the CLI sums the records that are not `Shared`).
fn unshared_size(cache: &[CacheUsage]) -> u64 {
    cache
        .iter()
        .filter(|c| !c.shared)
        .map(|c| c.record.size)
        .sum()
}

/// The per-object listing of `system df -v`, computed as docker 20.10's daemon does.
pub fn verbose_usage(engine: &Engine) -> Result<VerboseUsage> {
    let out = image_usage(engine)?;
    let store = ContainerStore::open(engine.root())?;
    let containers = super::container::list::list(
        engine,
        &store,
        &super::container::list::PsOptions {
            all: true,
            size: true,
            ..Default::default()
        },
    )?;

    let mut vols = Vec::new();
    for v in volumes::list(engine)? {
        let size = volumes::disk_usage(&v.mountpoint);
        let links = volumes::users(engine, &v.name)?.len();
        vols.push(VolumeUsage {
            volume: v,
            links,
            size,
        });
    }

    let cache = cache_usage(engine)?;
    Ok(VerboseUsage {
        images: out,
        containers,
        volumes: vols,
        cache,
    })
}

/// The build cache's entries, each marked shared when an image holds its layers.
pub fn cache_usage(engine: &Engine) -> Result<Vec<CacheUsage>> {
    let mut cache = Vec::new();
    // No cache database yet means an empty cache; don't create one just to list it.
    if engine.root().join("build-cache.db").exists() {
        let image_chains: Vec<Vec<skiff_image::Digest>> = engine
            .meta
            .images()?
            .iter()
            .map(|i| {
                Ok(engine
                    .meta
                    .layers(&i.id)?
                    .into_iter()
                    .map(|l| l.diff_id)
                    .collect())
            })
            .collect::<Result<_>>()?;
        for record in super::build::CacheDb::open(engine.root())?.df_records()? {
            let ids: Vec<&skiff_image::Digest> = record.layers.iter().map(|l| &l.diff_id).collect();
            let shared = !ids.is_empty()
                && image_chains
                    .iter()
                    .any(|c| c.len() >= ids.len() && c.iter().zip(&ids).all(|(a, b)| a == *b));
            cache.push(CacheUsage { record, shared });
        }
    }
    Ok(cache)
}

/// The images `images` lists (intermediate ones hidden), each once under its first tag,
/// with the bytes it shares with the others and how many containers use it.
pub fn image_usage(engine: &Engine) -> Result<Vec<ImageUsage>> {
    // The images `images` lists (intermediate ones hidden), each once under its first tag.
    let rows = super::list::list_images(
        engine,
        &super::list::ListOptions {
            all: false,
            reference: None,
            filters: Default::default(),
        },
    )?;
    let mut seen = HashSet::new();
    let mut images = Vec::new();
    for r in rows {
        if !seen.insert(r.image.id.clone()) {
            continue;
        }
        let (repository, tag) = if r.tag == "<none>" {
            ("<none>".to_owned(), "<none>".to_owned())
        } else {
            (r.repository, r.tag)
        };
        images.push((r.image, repository, tag));
    }
    // docker counts layers by chain (a layer and everything under it): the same diff on a
    // different base is a different layer. A chain is named here by its diff ids joined.
    let mut stacks = Vec::with_capacity(images.len());
    let mut refs: HashMap<String, usize> = HashMap::new();
    for (image, _, _) in &images {
        let mut chain = String::new();
        let mut layers = Vec::new();
        for l in engine.meta.layers(&image.id)? {
            chain.push_str(&l.diff_id.to_string());
            chain.push('/');
            *refs.entry(chain.clone()).or_default() += 1;
            layers.push((chain.clone(), l.size));
        }
        stacks.push(layers);
    }
    let store = ContainerStore::open(engine.root())?;
    let mut out = Vec::with_capacity(images.len());
    for ((image, repository, tag), layers) in images.into_iter().zip(stacks) {
        let shared = layers
            .iter()
            .filter(|(chain, _)| refs.get(chain).copied().unwrap_or(0) > 1)
            .map(|(_, size)| size)
            .sum();
        let containers = store.using_image(&image.id.to_string())?.len();
        out.push(ImageUsage {
            image,
            repository,
            tag,
            shared,
            containers,
        });
    }

    Ok(out)
}
