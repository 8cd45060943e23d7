//! `volume ls` and `volume prune` filters, as docker's daemon reads them.

use super::store::{self, Volume};
use crate::ops::engine::Engine;
use crate::ops::error::OpError;

/// Parsed `-f key=value` filters. Values of one key are ORed, keys are ANDed (labels: every
/// `label=` must match).
#[derive(Debug, Clone, Default)]
pub struct VolumeFilters {
    pub names: Vec<String>,
    pub drivers: Vec<String>,
    /// `label=KEY` or `label=KEY=VALUE`: the volume must have each.
    pub labels: Vec<(String, Option<String>)>,
    /// `label!=...`: the volume must have none.
    pub not_labels: Vec<(String, Option<String>)>,
    pub dangling: Option<bool>,
}

fn invalid_filter(key: &str) -> OpError {
    OpError::invalid(format!("Invalid filter '{key}'"))
}

fn label(value: &str) -> (String, Option<String>) {
    match value.split_once('=') {
        Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
        None => (value.to_owned(), None),
    }
}

impl VolumeFilters {
    /// Parses `volume ls` filters (`name`, `driver`, `label`, `dangling`).
    pub fn parse_ls(raw: &[String]) -> Result<Self, OpError> {
        Self::parse(raw, &["name", "driver", "label", "label!", "dangling"])
    }

    /// Parses `volume prune` filters (`label`, `label!`).
    pub fn parse_prune(raw: &[String]) -> Result<Self, OpError> {
        Self::parse(raw, &["label", "label!"])
    }

    fn parse(raw: &[String], allowed: &[&str]) -> Result<Self, OpError> {
        let mut f = VolumeFilters::default();
        for item in raw {
            let (key, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            if !allowed.contains(&key.as_str()) {
                return Err(invalid_filter(&key));
            }
            match key.as_str() {
                "name" => f.names.push(value.to_owned()),
                "driver" => f.drivers.push(value.to_owned()),
                "label" => f.labels.push(label(value)),
                "label!" => f.not_labels.push(label(value)),
                "dangling" => {
                    f.dangling = Some(match value.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => {
                            return Err(OpError::invalid(format!(
                                "Invalid filter 'dangling={value}'"
                            )))
                        }
                    })
                }
                _ => return Err(invalid_filter(&key)),
            }
        }
        Ok(f)
    }

    /// Whether `v` passes the label filters.
    pub fn labels_match(&self, v: &Volume) -> bool {
        let labels = v.labels();
        let has = |(k, want): &(String, Option<String>)| match (labels.get(k), want) {
            (Some(_), None) => true,
            (Some(have), Some(want)) => have == want,
            (None, _) => false,
        };
        self.labels.iter().all(has) && !self.not_labels.iter().any(has)
    }
}

/// The volumes `volume ls` shows, by name.
pub fn list_volumes(engine: &Engine, f: &VolumeFilters) -> anyhow::Result<Vec<Volume>> {
    let mut out = Vec::new();
    for v in store::list(engine)? {
        if !f.names.is_empty() && !f.names.iter().any(|n| v.name.contains(n.as_str())) {
            continue;
        }
        if !f.drivers.is_empty() && !f.drivers.iter().any(|d| &v.driver == d) {
            continue;
        }
        if !f.labels_match(&v) {
            continue;
        }
        if let Some(dangling) = f.dangling {
            if store::users(engine, &v.name)?.is_empty() != dangling {
                continue;
            }
        }
        out.push(v);
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn filter_errors_are_dockers() {
        let e = VolumeFilters::parse_ls(&["foo=bar".into()]).unwrap_err();
        assert_eq!(e.message, "Invalid filter 'foo'");
        let e = VolumeFilters::parse_ls(&["dangling=maybe".into()]).unwrap_err();
        assert_eq!(e.message, "Invalid filter 'dangling=maybe'");
        let e = VolumeFilters::parse_prune(&["name=x".into()]).unwrap_err();
        assert_eq!(e.message, "Invalid filter 'name'");
    }

    #[test]
    fn labels_and_together() {
        let f = VolumeFilters::parse_ls(&["label=a=b".into(), "label=x".into()]).unwrap();
        let mut v = Volume {
            created_at: String::new(),
            driver: "local".into(),
            labels: Some([("a".to_owned(), "b".to_owned())].into()),
            mountpoint: "/x".into(),
            name: "v".into(),
            options: None,
            scope: "local".into(),
        };
        assert!(!f.labels_match(&v));
        v.labels
            .get_or_insert_with(Default::default)
            .insert("x".into(), "1".into());
        assert!(f.labels_match(&v));
    }
}
