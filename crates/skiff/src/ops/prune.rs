//! `image prune` and `system prune`: delete dangling (or all unused) images, then collect
//! garbage.

use anyhow::Result;

use super::engine::Engine;
use super::gc::collect_garbage;
use super::rmi::{containers_using, RmiEvent};

#[derive(Debug, Default)]
pub struct PruneReport {
    pub events: Vec<RmiEvent>,
    pub reclaimed: u64,
}

/// Removes images without tags (or, with `all`, every image no container uses), leaves of
/// the parent graph first so that parents become prunable in turn.
pub fn prune_images(engine: &Engine, all: bool) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let before = blob_bytes(engine)?;
    loop {
        let mut removed_any = false;
        for image in engine.meta.images()? {
            let tags = engine.meta.tags_of(&image.id)?;
            if (!all && !tags.is_empty()) || !engine.meta.children(&image.id)?.is_empty() {
                continue;
            }
            if !containers_using(engine, &image)?.is_empty() {
                continue;
            }
            for t in tags
                .iter()
                .chain(engine.meta.repo_digests_of(&image.id)?.iter())
            {
                report
                    .events
                    .push(RmiEvent::Untagged(super::resolve::familiar(t)));
            }
            engine.meta.delete_image(&image.id)?;
            report.events.push(RmiEvent::Deleted(image.id.to_string()));
            removed_any = true;
        }
        if !removed_any {
            break;
        }
    }
    collect_garbage(engine)?;
    report.reclaimed = before.saturating_sub(blob_bytes(engine)?);
    Ok(report)
}

fn blob_bytes(engine: &Engine) -> Result<u64> {
    Ok(engine.content.list()?.iter().map(|(_, s)| s).sum())
}
