//! Finding an image from what a user typed: a name, a name:tag, a name@digest, a full ID or
//! a unique ID prefix — in docker's order.

use std::collections::{BTreeSet, HashMap, VecDeque};

use anyhow::Result;
use skiff_image::reference::Reference;
use skiff_image::store::{put_image_tx, ImageRecord};
use skiff_image::Digest;

use super::build::CacheDb;
use super::engine::Engine;
use super::error::OpError;
use super::new_image::{store_image, ImageParts};

/// An image found from user input, with the reference that found it when it was a name.
pub struct Resolved {
    pub image: ImageRecord,
    /// The normalized tag or digest reference that matched, if the input was a name.
    pub reference: Option<Reference>,
}

/// Looks an image up; `Ok(None)` when nothing matches. A build step's ID (the ` ---> ID`
/// a build prints, full or a prefix) finds that step's image in the build cache, as
/// docker's classic builder keeps intermediate images.
pub fn lookup(engine: &Engine, input: &str) -> Result<Option<Resolved>> {
    match stored(engine, input)? {
        Some(found) => Ok(Some(found)),
        None => from_build_cache(engine, input),
    }
}

/// Looks an image up among the stored images only.
fn stored(engine: &Engine, input: &str) -> Result<Option<Resolved>> {
    if let Some(id) = as_full_id(input) {
        return Ok(engine.meta.image(&id)?.map(|image| Resolved {
            image,
            reference: None,
        }));
    }
    match Reference::parse_normalized_tagged(input) {
        Ok(reference) => {
            let found = match reference.digest() {
                Some(_) => engine.meta.resolve_repo_digest(&reference.to_string())?,
                None => engine.meta.resolve_tag(&reference.to_string())?,
            };
            if let Some(id) = found {
                if let Some(image) = engine.meta.image(&id)? {
                    return Ok(Some(Resolved {
                        image,
                        reference: Some(reference),
                    }));
                }
            }
            by_prefix(engine, input)
        }
        Err(e) => {
            if is_hex_prefix(input) {
                by_prefix(engine, input)
            } else {
                Err(e.into())
            }
        }
    }
}

/// Looks an image up, failing with docker's "No such image" when nothing matches.
pub fn require(engine: &Engine, input: &str) -> Result<Resolved> {
    lookup(engine, input)?.ok_or_else(|| no_such_image(input).into())
}

/// docker's wording for a missing image: a full ID as `sha256:<hex>`, anything that parses as
/// a name (short hex IDs included) with its default tag (`0123abcd:latest`), the rest as typed.
pub fn no_such_image(input: &str) -> OpError {
    let shown = match (as_full_id(input), Reference::parse_normalized_tagged(input)) {
        (Some(id), _) => id.to_string(),
        (None, Ok(r)) => r.familiar_string(),
        (None, Err(_)) => input.to_owned(),
    };
    OpError::not_found(format!("No such image: {shown}"))
}

fn as_full_id(input: &str) -> Option<Digest> {
    if let Ok(d) = input.parse::<Digest>() {
        return Some(d);
    }
    if skiff_image::reference::is_full_hex_id(input) {
        return Digest::from_hex(input).ok();
    }
    None
}

fn is_hex_prefix(input: &str) -> bool {
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    !hex.is_empty()
        && hex.len() <= 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn by_prefix(engine: &Engine, input: &str) -> Result<Option<Resolved>> {
    if !is_hex_prefix(input) {
        return Ok(None);
    }
    let hex = input.strip_prefix("sha256:").unwrap_or(input);
    let ids = engine.meta.ids_with_prefix(hex)?;
    match ids.as_slice() {
        [] => Ok(None),
        [id] => Ok(engine.meta.image(id)?.map(|image| Resolved {
            image,
            reference: None,
        })),
        _ => {
            Err(OpError::invalid(format!("multiple IDs found with provided prefix: {hex}")).into())
        }
    }
}

/// A build step's image, registered as an untagged image on first use. So that `images`
/// hides it (without `-a`) as docker hides intermediate images, the steps from it up to the
/// nearest stored image built on it are registered too, each with the previous step as its
/// parent: each one then has a child, which is how `images` tells intermediates apart.
fn from_build_cache(engine: &Engine, input: &str) -> Result<Option<Resolved>> {
    let hex = match as_full_id(input) {
        Some(d) => d.hex().to_owned(),
        None if is_hex_prefix(input) => input.strip_prefix("sha256:").unwrap_or(input).to_owned(),
        None => return Ok(None),
    };
    // Never create the database just to find it empty.
    if !engine.root().join("build-cache.db").exists() {
        return Ok(None);
    }
    let cache = CacheDb::open(engine.root())?;
    // IDs are digests of the configs; hashing them here (only when no stored image matched)
    // keeps the cache's schema as it is.
    let steps = cache.configs()?;
    let ids: Vec<Digest> = steps.iter().map(|s| Digest::of_bytes(&s.config)).collect();
    let matching: BTreeSet<&Digest> = ids.iter().filter(|d| d.hex().starts_with(&hex)).collect();
    let start = match matching.len() {
        0 => return Ok(None),
        1 => ids
            .iter()
            .position(|d| d.hex().starts_with(&hex))
            .unwrap_or_default(),
        _ => {
            return Err(
                OpError::invalid(format!("multiple IDs found with provided prefix: {hex}")).into(),
            )
        }
    };
    let by_key: HashMap<&str, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i))
        .collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in steps.iter().enumerate() {
        children.entry(s.parent.as_str()).or_default().push(i);
    }
    // The image a step was built on: the previous step's, or the stage's base image.
    let parent_of = |i: usize| -> Option<Digest> {
        let p = steps[i].parent.as_str();
        match p.strip_prefix("image:") {
            Some(id) => id.parse().ok(),
            None => by_key.get(p).map(|j| ids[*j].clone()),
        }
    };
    // Breadth first to the nearest stored descendant, remembering the way back.
    let mut came_from: HashMap<usize, usize> = HashMap::new();
    let mut queue = VecDeque::from([start]);
    let mut top = None;
    while let Some(i) = queue.pop_front() {
        if i != start && engine.meta.image(&ids[i])?.is_some() {
            top = Some(i);
            break;
        }
        for &c in children.get(steps[i].key.as_str()).into_iter().flatten() {
            if c != start && !came_from.contains_key(&c) {
                came_from.insert(c, i);
                queue.push_back(c);
            }
        }
    }
    let mut path = vec![start];
    if let Some(top) = top {
        let mut i = top;
        let mut way = Vec::new();
        while let Some(&prev) = came_from.get(&i) {
            if prev == start {
                break;
            }
            way.push(prev);
            i = prev;
        }
        path.extend(way.into_iter().rev());
    }
    let mut found = None;
    for &i in &path {
        let Some(entry) = cache.get(&steps[i].key)? else {
            return Ok(None);
        };
        // A step whose layers are gone cannot be an image (GC keeps them while the entry
        // lives, so this is only a race with `builder prune`).
        if !entry.layers.iter().all(|l| engine.content.exists(&l.blob)) {
            return Ok(None);
        }
        let image = match engine.meta.image(&ids[i])? {
            Some(image) => image,
            None => {
                store_image(
                    engine,
                    ImageParts {
                        config: &entry.config,
                        layers: &entry.layers,
                        manifest: None,
                        parent: parent_of(i),
                    },
                    &[],
                )?
                .image
            }
        };
        if i == start {
            found = Some(image);
        }
    }
    if let Some(top) = top {
        // The stored image above gets its parent, as docker's builder records it.
        if let Some(image) = engine.meta.image(&ids[top])? {
            if image.parent.is_none() {
                let layers = engine.meta.layers(&image.id)?;
                let tx = engine.meta.write()?;
                put_image_tx(
                    &tx,
                    &ImageRecord {
                        parent: parent_of(top),
                        ..image
                    },
                    &layers,
                )?;
                tx.commit()?;
            }
        }
    }
    Ok(found.map(|image| Resolved {
        image,
        reference: None,
    }))
}

/// How docker shows a stored (normalized) tag: `busybox:latest`, `localhost:5000/app:v1`.
pub fn familiar(stored: &str) -> String {
    stored
        .parse::<Reference>()
        .map(|r| r.familiar_string())
        .unwrap_or_else(|_| stored.to_owned())
}
