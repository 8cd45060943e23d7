//! `image prune` and `system prune`: delete dangling (or all unused) images, then collect
//! garbage.

use anyhow::Result;

use skiff_image::store::ImageRecord;

use super::engine::Engine;
use super::error::OpError;
use super::gc::collect_garbage;
use super::list::read_config;
use super::rmi::{containers_using, delete_image_and_layers, sorted_references, RmiEvent};

#[derive(Debug, Default)]
pub struct PruneReport {
    pub events: Vec<RmiEvent>,
    pub reclaimed: u64,
}

/// `image prune` filters, as docker's daemon reads them.
#[derive(Debug, Default)]
pub struct PruneFilters {
    /// `dangling=false` (or `0`): every unused image, as `-a`.
    pub all: bool,
    /// `until=`: only images created before this Unix time.
    pub until: Option<i64>,
    /// `label=KEY[=VALUE]`: only images with all these labels.
    pub labels: Vec<String>,
    /// `label!=KEY[=VALUE]`: only images with none of these labels.
    pub not_labels: Vec<String>,
}

impl PruneFilters {
    /// Parses `--filter` values with docker's wording; `now` is for relative `until` values.
    pub fn parse(args: &[String], now: i64) -> Result<PruneFilters, OpError> {
        let mut f = PruneFilters::default();
        let mut dangling: Vec<&str> = Vec::new();
        for arg in args {
            let (key, value) = arg
                .split_once('=')
                .ok_or_else(|| OpError::invalid("bad format of filter (expected name=value)"))?;
            match key {
                "dangling" => dangling.push(value),
                "until" => f.until = Some(timestamp(value, now)?),
                "label" => f.labels.push(value.to_owned()),
                "label!" => f.not_labels.push(value.to_owned()),
                _ => return Err(OpError::invalid(format!("Invalid filter '{key}'"))),
            }
        }
        if !dangling.is_empty() {
            if dangling.iter().any(|v| *v == "false" || *v == "0") {
                f.all = true;
            } else if !dangling.iter().any(|v| *v == "true" || *v == "1") {
                return Err(OpError::invalid(format!(
                    "Invalid filter 'dangling=[{}]'",
                    dangling.join(" ")
                )));
            }
        }
        Ok(f)
    }
}

/// docker's `timetypes.GetTimestamp`: a Go duration before `now` (`10m`, `1h30m`), a Unix
/// time (`1700000000`, `1700000000.5`) or an RFC 3339 date or date-time.
fn timestamp(value: &str, now: i64) -> Result<i64, OpError> {
    let bad = || {
        OpError::invalid(format!(
            "failed to parse value as time or duration: {value:?}"
        ))
    };
    if let Ok(d) = super::changes::duration_nanos(value) {
        return Ok(now - d / 1_000_000_000);
    }
    if let Some(secs) = value
        .split('.')
        .next()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    {
        if value[secs.len()..].is_empty()
            || value[secs.len() + 1..].bytes().all(|b| b.is_ascii_digit())
        {
            return secs.parse().map_err(|_| bad());
        }
    }
    let full = if value.len() == 10 {
        format!("{value}T00:00:00Z")
    } else {
        value.to_owned()
    };
    skiff_image::spec::parse_rfc3339(&full).ok_or_else(bad)
}

fn label_matches(labels: &std::collections::BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(want),
    }
}

/// Whether the filters let `image` be pruned.
fn selected(engine: &Engine, image: &ImageRecord, f: &PruneFilters) -> Result<bool> {
    if f.until.is_some_and(|until| image.created >= until) {
        return Ok(false);
    }
    if f.labels.is_empty() && f.not_labels.is_empty() {
        return Ok(true);
    }
    let labels = read_config(engine, &image.id)?
        .config
        .and_then(|c| c.labels)
        .unwrap_or_default();
    Ok(f.labels.iter().all(|l| label_matches(&labels, l))
        && !f.not_labels.iter().any(|l| label_matches(&labels, l)))
}

/// Removes images without tags (or, with `all`, every image no container uses), leaves of
/// the parent graph first so that parents become prunable in turn.
pub fn prune_images(engine: &Engine, all: bool, filters: &PruneFilters) -> Result<PruneReport> {
    let all = all || filters.all;
    let mut report = PruneReport::default();
    loop {
        let mut removed_any = false;
        for image in engine.meta.images()? {
            let tags = engine.meta.tags_of(&image.id)?;
            if (!all && !tags.is_empty()) || !engine.meta.children(&image.id)?.is_empty() {
                continue;
            }
            if !selected(engine, &image, filters)? {
                continue;
            }
            if !containers_using(engine, &image)?.is_empty() {
                continue;
            }
            let digests = engine.meta.repo_digests_of(&image.id)?;
            for t in sorted_references(&tags, &digests) {
                report
                    .events
                    .push(RmiEvent::Untagged(super::resolve::familiar(t)));
            }
            let (deleted, reclaimed) = delete_image_and_layers(engine, &image)?;
            report.events.extend(deleted);
            report.reclaimed += reclaimed;
            removed_any = true;
        }
        if !removed_any {
            break;
        }
    }
    collect_garbage(engine)?;
    Ok(report)
}
