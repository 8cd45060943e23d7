//! `skiff images`: which images exist, one row per tag, filtered like docker's.

use std::collections::BTreeMap;

use anyhow::Result;
use skiff_image::reference::{familiar_match, Reference};
use skiff_image::spec::ImageConfig;
use skiff_image::store::ImageRecord;
use skiff_image::Digest;

use super::engine::Engine;
use super::error::OpError;
use super::resolve;

/// One line of `images`.
#[derive(Debug, Clone)]
pub struct ImageRow {
    pub repository: String,
    pub tag: String,
    pub digest: String,
    pub image: ImageRecord,
}

/// Parsed `-f` filters.
#[derive(Debug, Default)]
pub struct Filters {
    pub dangling: Option<bool>,
    pub references: Vec<String>,
    pub labels: Vec<String>,
    pub before: Option<String>,
    pub since: Option<String>,
}

impl Filters {
    /// Parses `key=value` filter arguments with docker's error wording.
    pub fn parse(args: &[String]) -> Result<Filters, OpError> {
        let mut f = Filters::default();
        let mut dangling: Vec<&str> = Vec::new();
        for arg in args {
            let Some((key, value)) = arg.split_once('=') else {
                return Err(OpError::invalid(
                    "bad format of filter (expected name=value)",
                ));
            };
            match key.to_ascii_lowercase().as_str() {
                "dangling" => dangling.push(value),
                "reference" => f.references.push(value.to_owned()),
                "label" => f.labels.push(value.to_owned()),
                "before" => f.before = Some(value.to_owned()),
                "since" => f.since = Some(value.to_owned()),
                _ => return Err(OpError::invalid(format!("Invalid filter '{key}'"))),
            }
        }
        // docker: any `true` means dangling only, else any `false` means tagged only; the
        // values must be exactly these words.
        if !dangling.is_empty() {
            f.dangling = if dangling.contains(&"true") {
                Some(true)
            } else if dangling.contains(&"false") {
                Some(false)
            } else {
                return Err(OpError::invalid(format!(
                    "Invalid filter 'dangling=[{}]'",
                    dangling.join(" ")
                )));
            };
        }
        Ok(f)
    }
}

pub struct ListOptions {
    pub all: bool,
    pub reference: Option<String>,
    pub filters: Filters,
}

/// Lists images as docker does: newest first, one row per tag, untagged images as `<none>`.
pub fn list_images(engine: &Engine, opts: &ListOptions) -> Result<Vec<ImageRow>> {
    let images = engine.meta.images()?;
    let mut tags: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
    for (name, id) in engine.meta.all_tags()? {
        if let Ok(r) = name.parse::<Reference>() {
            tags.entry(id).or_default().push(r);
        }
    }
    let before = opts
        .filters
        .before
        .as_deref()
        .map(|b| resolve::require(engine, b))
        .transpose()?;
    let since = opts
        .filters
        .since
        .as_deref()
        .map(|s| resolve::require(engine, s))
        .transpose()?;
    let mut patterns: Vec<&str> = opts.filters.references.iter().map(String::as_str).collect();
    if let Some(r) = &opts.reference {
        patterns.push(r);
    }
    // docker compares creation times to the nanosecond.
    let before_t = before
        .as_ref()
        .map(|b| created_nanos(engine, &b.image))
        .transpose()?;
    let since_t = since
        .as_ref()
        .map(|s| created_nanos(engine, &s.image))
        .transpose()?;
    let mut rows = Vec::new();
    for image in images {
        if before_t.is_some() || since_t.is_some() {
            let t = created_nanos(engine, &image)?;
            if before_t.is_some_and(|b| t >= b) || since_t.is_some_and(|s| t <= s) {
                continue;
            }
        }
        let image_tags = tags.get(&image.id).cloned().unwrap_or_default();
        let dangling = image_tags.is_empty();
        if let Some(want) = opts.filters.dangling {
            if want != dangling {
                continue;
            }
        }
        if !opts.filters.labels.is_empty()
            && !labels_match(engine, &image.id, &opts.filters.labels)?
        {
            continue;
        }
        let shown: Vec<&Reference> = image_tags
            .iter()
            .filter(|t| patterns.iter().all(|p| familiar_match(p, t)))
            .collect();
        if !patterns.is_empty() && shown.is_empty() {
            continue;
        }
        let digests = engine.meta.repo_digests_of(&image.id)?;
        if shown.is_empty() {
            // Untagged images that are parents of other images are intermediate layers: hidden
            // unless -a, like docker. Other untagged ones are dangling and always shown.
            if !opts.all && !engine.meta.children(&image.id)?.is_empty() {
                continue;
            }
            let (repository, digest) =
                match digests.first().and_then(|d| d.parse::<Reference>().ok()) {
                    Some(r) => (
                        r.familiar_name(),
                        r.digest().map(ToString::to_string).unwrap_or_default(),
                    ),
                    None => ("<none>".to_owned(), "<none>".to_owned()),
                };
            rows.push(ImageRow {
                repository,
                tag: "<none>".into(),
                digest,
                image: image.clone(),
            });
            continue;
        }
        for t in shown {
            let digest = digests
                .iter()
                .filter_map(|d| d.parse::<Reference>().ok())
                .find(|d| d.name() == t.name())
                .and_then(|d| d.digest().map(ToString::to_string))
                .unwrap_or_else(|| "<none>".to_owned());
            rows.push(ImageRow {
                repository: t.familiar_name(),
                tag: t.tag().unwrap_or("<none>").to_owned(),
                digest,
                image: image.clone(),
            });
        }
    }
    Ok(rows)
}

/// When the image was created, in Unix nanoseconds (its config's `created`).
fn created_nanos(engine: &Engine, image: &ImageRecord) -> Result<i128> {
    let created = read_config(engine, &image.id)?.created;
    Ok(created
        .as_deref()
        .and_then(|c| {
            time::OffsetDateTime::parse(c, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(i128::from(image.created) * 1_000_000_000, |t| {
            t.unix_timestamp_nanos()
        }))
}

/// Reads an image's config from the store.
pub fn read_config(engine: &Engine, id: &Digest) -> Result<ImageConfig> {
    let bytes = engine.content.read_blob(id)?;
    Ok(serde_json::from_slice(&bytes)?)
}

fn labels_match(engine: &Engine, id: &Digest, wanted: &[String]) -> Result<bool> {
    let config = read_config(engine, id)?;
    let labels = config.config.and_then(|c| c.labels).unwrap_or_default();
    Ok(wanted.iter().all(|w| match w.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(w.as_str()),
    }))
}
