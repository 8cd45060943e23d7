//! `skiff container prune`: remove every stopped container (matching the filters).

use anyhow::Result;

use super::reconcile;
use super::store::{parse_time, ContainerStore};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

/// What `prune` removed.
#[derive(Debug, Default)]
pub struct Pruned {
    pub ids: Vec<String>,
    /// Bytes of their writable layers.
    pub reclaimed: u64,
}

/// Removes the containers that are not running, created before `until` (unix seconds) and
/// carrying the `label=` filters (`label!=` excludes).
pub fn prune(engine: &Engine, store: &ContainerStore, filters: &[String]) -> Result<Pruned> {
    let now = time::OffsetDateTime::now_utc();
    let mut until = None;
    let mut labels = Vec::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| OpError::invalid("bad format of filter (expected name=value)"))?;
        match k {
            "until" => {
                until = Some(
                    super::timeparse::parse_time_or_duration(v, now).ok_or_else(|| {
                        OpError::invalid(format!(
                            "failed to parse value as time or duration: \"{v}\""
                        ))
                    })?,
                )
            }
            "label" => labels.push((false, v.to_owned())),
            "label!" => labels.push((true, v.to_owned())),
            _ => return Err(OpError::invalid(format!("invalid filter '{k}'")).into()),
        }
    }
    let mut out = Pruned::default();
    for c in store.list()? {
        let state = match reconcile::state(engine.root(), store, &c) {
            Ok(s) => s,
            Err(_) => continue,
        };
        if state.running || state.paused {
            continue;
        }
        if let (Some(u), Some(created)) = (until, parse_time(&c.created)) {
            if created >= u {
                continue;
            }
        }
        let label_ok = labels.iter().all(|(negate, l)| {
            let has = match l.split_once('=') {
                Some((k, v)) => c.config.labels.get(k).is_some_and(|x| x == v),
                None => c.config.labels.contains_key(l.as_str()),
            };
            has != *negate
        });
        if !label_ok {
            continue;
        }
        let size = engine.snapshotter()?.usage(&c.snapshot_key).unwrap_or(0);
        match super::rm::remove(engine, store, &c, false, false) {
            Ok(()) => {
                out.ids.push(c.id.clone());
                out.reclaimed += size;
            }
            Err(e) => log::warn!("pruning container {}: {e:#}", c.id),
        }
    }
    Ok(out)
}
