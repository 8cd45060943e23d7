//! `skiff rmi`: untag and delete images with docker's rules for what needs `-f` and what
//! cannot be forced at all.

use anyhow::Result;
use skiff_image::store::ImageRecord;

use super::engine::Engine;
use super::error::OpError;
use super::gc::{collect_garbage, needed_chain_ids};
use super::resolve::{self, familiar};

/// What `rmi` did, in the order docker prints it.
#[derive(Debug, PartialEq, Eq)]
pub enum RmiEvent {
    Untagged(String),
    Deleted(String),
}

/// A container that uses an image, as far as `rmi` needs to know.
pub struct ContainerUse {
    pub id: String,
    pub running: bool,
}

/// Containers created from `image`, newest first, each with whether it runs (a live
/// monitor); docker names the first in its refusal.
pub fn containers_using(engine: &Engine, image: &ImageRecord) -> Result<Vec<ContainerUse>> {
    let store = crate::ops::container::ContainerStore::open(engine.root())?;
    let mut out = Vec::new();
    for id in store.using_image(&image.id.to_string())? {
        let Some(c) = store.record(&id)? else {
            continue;
        };
        let running = crate::ops::container::reconcile::state(engine.root(), &store, &c)
            .map(|s| s.running)
            .unwrap_or(false);
        out.push(ContainerUse { id, running });
    }
    Ok(out)
}

/// Removes `input` as `docker rmi` does; with `prune` (docker's default, off with
/// `--no-prune`), also deletes the untagged parents left with nothing using them.
pub fn remove_image(
    engine: &Engine,
    input: &str,
    force: bool,
    prune: bool,
) -> Result<Vec<RmiEvent>> {
    let found = resolve::require(engine, input)?;
    let image = found.image;
    let short = image.id.short().to_owned();
    let mut events = Vec::new();
    let tags = engine.meta.tags_of(&image.id)?;
    let digests = engine.meta.repo_digests_of(&image.id)?;
    let users = containers_using(engine, &image)?;

    if let Some(reference) = found.reference {
        // By name: untag just that name, and delete the image only if nothing else names it.
        let name = reference.to_string();
        let others = tags
            .iter()
            .chain(digests.iter())
            .filter(|t| **t != name)
            .count();
        if others == 0 && !force {
            if let Some(c) = users.first() {
                return Err(OpError::conflict(format!(
                    "conflict: unable to remove repository reference \"{input}\" (must force) - container {} is using its referenced image {short}",
                    &c.id[..12.min(c.id.len())]
                ))
                .into());
            }
        }
        if !engine.meta.untag(&name)? {
            // A name@digest reference.
            engine
                .meta
                .write()?
                .execute("DELETE FROM repo_digests WHERE name = ?1", [&name])?;
        }
        events.push(RmiEvent::Untagged(reference.familiar_string()));
        if others > 0 {
            return Ok(events);
        }
    } else {
        let references = tags.len() + digests.len();
        if references > 1 && !force {
            return Err(OpError::conflict(format!(
                "conflict: unable to delete {short} (must be forced) - image is referenced in multiple repositories"
            ))
            .into());
        }
    }
    if !engine.meta.children(&image.id)?.is_empty() {
        if events.is_empty() {
            return Err(OpError::conflict(format!(
                "conflict: unable to delete {short} (cannot be forced) - image has dependent child images"
            ))
            .into());
        }
        // Untagged but kept: it is the parent of other images.
        return Ok(events);
    }
    if let Some(c) = users.iter().find(|c| c.running) {
        return Err(OpError::conflict(format!(
            "conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}",
            &c.id[..12.min(c.id.len())]
        ))
        .into());
    }
    if let Some(c) = users.first() {
        if !force {
            return Err(OpError::conflict(format!(
                "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}",
                &c.id[..12.min(c.id.len())]
            ))
            .into());
        }
    }
    for t in sorted_references(&tags, &digests) {
        if events.iter().any(|e| *e == RmiEvent::Untagged(familiar(t))) {
            continue;
        }
        events.push(RmiEvent::Untagged(familiar(t)));
    }
    let (deleted, _) = delete_image_and_layers(engine, &image)?;
    events.extend(deleted);
    if prune {
        prune_parents(engine, image.parent.as_ref(), &mut events)?;
    }
    collect_garbage(engine)?;
    Ok(events)
}

/// docker's parent pruning after a delete: walks up the parent chain deleting each parent
/// that nothing names (tag or digest), no other image is built on and no container (running
/// or stopped) uses, and stops quietly at the first one that is still wanted.
fn prune_parents(
    engine: &Engine,
    parent: Option<&skiff_image::Digest>,
    events: &mut Vec<RmiEvent>,
) -> Result<()> {
    let mut parent = parent.cloned();
    while let Some(id) = parent {
        let Some(image) = engine.meta.image(&id)? else {
            return Ok(());
        };
        if !engine.meta.tags_of(&image.id)?.is_empty()
            || !engine.meta.repo_digests_of(&image.id)?.is_empty()
            || !engine.meta.children(&image.id)?.is_empty()
            || !containers_using(engine, &image)?.is_empty()
        {
            return Ok(());
        }
        let (deleted, _) = delete_image_and_layers(engine, &image)?;
        events.extend(deleted);
        parent = image.parent;
    }
    Ok(())
}

/// An image's tags and digests in the order docker lists them: sorted by their full names.
pub fn sorted_references<'a>(tags: &'a [String], digests: &'a [String]) -> Vec<&'a String> {
    let mut all: Vec<&String> = tags.iter().chain(digests).collect();
    all.sort();
    all
}

/// Deletes the image's record. Returns docker's `Deleted:` events — the image, then each of
/// its layers (by chain ID, top first) that no other image uses any more — and the size of
/// those layers, which is what docker reports as reclaimed.
pub fn delete_image_and_layers(
    engine: &Engine,
    image: &ImageRecord,
) -> Result<(Vec<RmiEvent>, u64)> {
    let layers = engine.meta.layers(&image.id)?;
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let chains = skiff_image::spec::chain_ids(&diff_ids);
    engine.meta.delete_image(&image.id)?;
    let mut events = vec![RmiEvent::Deleted(image.id.to_string())];
    let still_needed = needed_chain_ids(engine)?;
    let mut reclaimed = 0;
    // Like docker's layer store: release from the top, stop at the first layer still in use
    // (everything below it is in use too).
    for (chain, layer) in chains.iter().zip(&layers).rev() {
        if still_needed.contains(&chain.to_string()) {
            break;
        }
        events.push(RmiEvent::Deleted(chain.to_string()));
        reclaimed += layer.size;
    }
    Ok((events, reclaimed))
}
