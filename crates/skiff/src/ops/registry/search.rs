//! `skiff search`: the registry's search API (docker hub's v1 shape), else its catalog.

use anyhow::Result;
use skiff_registry::client::SearchResult;

use super::{client_error, client_options, session};
use crate::ops::error::PlainError;

#[derive(Debug, Clone, Default)]
pub struct SearchFilters {
    pub min_stars: u64,
    pub is_official: Option<bool>,
    pub is_automated: Option<bool>,
}

impl SearchFilters {
    /// Parses docker's `-f` values: `stars=N`, `is-official=true|false`,
    /// `is-automated=true|false`.
    pub fn parse(filters: &[String]) -> Result<SearchFilters> {
        let mut f = SearchFilters::default();
        for raw in filters {
            let (k, v) = raw.split_once('=').unwrap_or((raw.as_str(), ""));
            let bool_of = |v: &str| -> Result<bool> {
                match v.to_ascii_lowercase().as_str() {
                    "1" | "t" | "true" => Ok(true),
                    "0" | "f" | "false" => Ok(false),
                    _ => Err(PlainError::invalid(format!(
                        "Error response from daemon: invalid filter '{k}={v}'"
                    ))
                    .into()),
                }
            };
            match k {
                "stars" => {
                    f.min_stars = v.parse().map_err(|_| {
                        PlainError::invalid(format!(
                            "Error response from daemon: invalid filter 'stars={v}'"
                        ))
                    })?
                }
                "is-official" => f.is_official = Some(bool_of(v)?),
                "is-automated" => f.is_automated = Some(bool_of(v)?),
                _ => {
                    return Err(PlainError::invalid(format!(
                        "Error response from daemon: invalid filter '{k}'"
                    ))
                    .into())
                }
            }
        }
        Ok(f)
    }

    fn keep(&self, r: &SearchResult) -> bool {
        r.star_count >= self.min_stars
            && self.is_official.is_none_or(|o| o == r.is_official)
            && self.is_automated.is_none_or(|a| a == r.is_automated)
    }
}

/// Splits `TERM` into the registry to ask and the term (`localhost:5000/busy` asks
/// localhost:5000 for `busy`; a bare term asks docker hub).
pub fn split_term(term: &str) -> (String, String) {
    if let Some((first, rest)) = term.split_once('/') {
        if first.contains('.') || first.contains(':') || first == "localhost" {
            return (first.to_owned(), rest.to_owned());
        }
    }
    ("docker.io".to_owned(), term.to_owned())
}

pub fn search(
    term: &str,
    limit: usize,
    filters: &SearchFilters,
    insecure: &[String],
) -> Result<Vec<SearchResult>> {
    if limit == 0 || limit > 100 {
        return Err(PlainError::invalid(format!(
            "Error response from daemon: limit {limit} is outside the range of [1, 100]"
        ))
        .into());
    }
    let (domain, what) = split_term(term);
    let options = client_options(insecure);
    // docker hub answers searches on its index host, not on its registry host.
    let host = if domain == "docker.io" {
        "index.docker.io"
    } else {
        domain.as_str()
    };
    let session = session(host, &options)?;
    let results = session.search(&what, limit).map_err(client_error)?;
    Ok(results.into_iter().filter(|r| filters.keep(r)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry() {
        assert_eq!(
            split_term("busybox"),
            ("docker.io".into(), "busybox".into())
        );
        assert_eq!(
            split_term("user/app"),
            ("docker.io".into(), "user/app".into())
        );
        assert_eq!(
            split_term("localhost:5000/team"),
            ("localhost:5000".into(), "team".into())
        );
    }

    #[test]
    fn filters_as_docker_takes_them() {
        let f = SearchFilters::parse(&["stars=3".into(), "is-official=true".into()])
            .unwrap_or_default();
        assert_eq!(f.min_stars, 3);
        assert_eq!(f.is_official, Some(true));
        let r = SearchResult {
            name: "x".into(),
            star_count: 5,
            is_official: true,
            ..Default::default()
        };
        assert!(f.keep(&r));
        assert!(!f.keep(&SearchResult {
            star_count: 2,
            ..r.clone()
        }));
        assert!(SearchFilters::parse(&["stars=x".into()]).is_err());
        assert!(SearchFilters::parse(&["color=red".into()]).is_err());
    }
}
