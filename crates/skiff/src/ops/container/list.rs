//! `skiff ps`: the containers, newest first, filtered as docker filters them.

use std::collections::HashMap;

use anyhow::Result;
use skiff_image::spec::History;
use skiff_image::Digest;

use super::reconcile;
use super::store::{Container, ContainerStore, State, Status};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

#[derive(Debug, Clone, Default)]
pub struct PsOptions {
    /// `-a`: stopped containers too.
    pub all: bool,
    /// `-n N` (and `-l`, which is `-n 1`): the N most recently created, whatever their state.
    pub last: Option<usize>,
    /// `-f key=value`, in order.
    pub filters: Vec<String>,
    /// `-s`: compute sizes.
    pub size: bool,
}

/// One listed container.
pub struct PsRow {
    pub container: Container,
    pub state: State,
    /// `-s`: bytes in the writable layer, and the image's size (docker's "virtual" is both).
    pub size: Option<(u64, u64)>,
}

const FILTERS: &[&str] = &[
    "ancestor", "before", "exited", "id", "label", "name", "since", "status",
];

/// Lists containers as `ps` would show them.
pub fn list(engine: &Engine, store: &ContainerStore, opts: &PsOptions) -> Result<Vec<PsRow>> {
    let mut parsed: Vec<(String, String)> = Vec::new();
    for f in &opts.filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| OpError::invalid("bad format of filter (expected name=value)"))?;
        let k = k.to_ascii_lowercase();
        if !FILTERS.contains(&k.as_str()) {
            return Err(OpError::invalid(format!("invalid filter '{k}'")).into());
        }
        if k == "status" && Status::parse(v).is_none() {
            return Err(OpError::invalid(format!("invalid filter 'status={v}'")).into());
        }
        if k == "exited" && v.parse::<i32>().is_err() {
            return Err(OpError::invalid(format!("invalid filter 'exited={v}'")).into());
        }
        parsed.push((k, v.to_owned()));
    }
    let ancestors = ancestor_ids(engine, &parsed)?;
    let bound = |key: &str| -> Result<Option<String>> {
        match parsed.iter().find(|(k, _)| k == key) {
            Some((_, v)) => Ok(Some(store.get(v)?.created)),
            None => Ok(None),
        }
    };
    let before = bound("before")?;
    let since = bound("since")?;

    let has_status_filter = parsed.iter().any(|(k, _)| k == "status" || k == "exited");
    let mut out = Vec::new();
    let containers = store.list()?;
    let only_last = opts.last.filter(|n| *n > 0);
    for (i, c) in containers.into_iter().enumerate() {
        if only_last.is_some_and(|n| i >= n) {
            break;
        }
        let state = match reconcile::state(engine.root(), store, &c) {
            Ok(s) => s,
            // Removed while we listed.
            Err(_) if !store.dir(&c.id).exists() => continue,
            Err(e) => return Err(e),
        };
        if !opts.all && only_last.is_none() && !state.running && !has_status_filter {
            continue;
        }
        if !matches(&c, &state, &parsed, &ancestors) {
            continue;
        }
        if before.as_ref().is_some_and(|b| c.created >= *b) {
            continue;
        }
        if since.as_ref().is_some_and(|s| c.created <= *s) {
            continue;
        }
        let size = if opts.size {
            let rw = engine.snapshotter()?.usage(&c.snapshot_key).unwrap_or(0);
            let image = c
                .image
                .parse()
                .ok()
                .and_then(|d| engine.meta.image(&d).ok().flatten())
                .map_or(0, |i| i.size);
            Some((rw, image))
        } else {
            None
        };
        out.push(PsRow {
            container: c,
            state,
            size,
        });
    }
    Ok(out)
}

/// An image's layer diff ids and history, bottom first.
type Stack = (Vec<Digest>, Vec<History>);

/// The image ids the `ancestor=` filters name, with every image built on them (docker walks
/// the parent links down from each named image).
fn ancestor_ids(engine: &Engine, filters: &[(String, String)]) -> Result<Vec<String>> {
    let named: Vec<_> = filters
        .iter()
        .filter(|(k, _)| k == "ancestor")
        .filter_map(|(_, v)| crate::ops::resolve::lookup(engine, v).ok().flatten())
        .map(|found| found.image)
        .collect();
    if named.is_empty() {
        return Ok(Vec::new());
    }
    let images = engine.meta.images()?;
    // An image's layers and history, read once and only when a prefix test needs them.
    let mut stacks: HashMap<Digest, Option<Stack>> = HashMap::new();
    let mut stack_of = |id: &Digest| -> Option<Stack> {
        stacks
            .entry(id.clone())
            .or_insert_with(|| {
                let layers = engine.meta.layers(id).ok()?;
                let config = crate::ops::list::read_config(engine, id).ok()?;
                Some((
                    layers.into_iter().map(|l| l.diff_id).collect(),
                    config.history,
                ))
            })
            .clone()
    };
    let parents: HashMap<&Digest, &Digest> = images
        .iter()
        .filter_map(|i| i.parent.as_ref().map(|p| (&i.id, p)))
        .collect();
    let mut ids = Vec::new();
    for a in &named {
        let Some((a_layers, a_history)) = stack_of(&a.id) else {
            continue;
        };
        for b in &images {
            let mut descends = b.id == a.id;
            // docker's rule: b is built on a when a is on b's parent chain.
            let mut cur = parents.get(&b.id).copied();
            let mut hops = 0;
            while let (false, Some(p)) = (descends, cur) {
                descends = *p == a.id;
                cur = parents.get(p).copied();
                hops += 1;
                if hops > images.len() {
                    break; // a cycle in damaged records
                }
            }
            // `skiff build` records no parent for the image it tags unless a step image was
            // named, so a build is also recognised by its content: a Dockerfile's FROM image
            // starts the result's rootfs and its history, so a's layers and history both
            // being a prefix of b's means b was built from a (layers alone would also match an
            // unrelated image that merely shares a base layer).
            if !descends && (!a_layers.is_empty() || !a_history.is_empty()) {
                if let Some((b_layers, b_history)) = stack_of(&b.id) {
                    descends = b_layers.starts_with(&a_layers) && b_history.starts_with(&a_history);
                }
            }
            if descends {
                ids.push(b.id.to_string());
            }
        }
    }
    Ok(ids)
}

fn matches(c: &Container, s: &State, filters: &[(String, String)], ancestors: &[String]) -> bool {
    // docker: values of one key are alternatives (OR), different keys must all match (AND).
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter().all(|key| {
        filters
            .iter()
            .filter(|(k, _)| k == key)
            .any(|(_, v)| match key {
                "status" => s.status.as_str() == v,
                "name" => c.name.contains(v.trim_start_matches('/')),
                "id" => c.id.starts_with(v.as_str()),
                "exited" => s.status == Status::Exited && v.parse() == Ok(s.exit_code),
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => c.config.labels.get(lk).is_some_and(|x| x == lv),
                    None => c.config.labels.contains_key(v.as_str()),
                },
                "ancestor" => {
                    ancestors.contains(&c.image)
                        || c.image_ref == *v
                        || c.image
                            .trim_start_matches("sha256:")
                            .starts_with(v.as_str())
                }
                _ => true,
            })
    })
}
