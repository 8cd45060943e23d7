//! `search`: docker hub's `GET /v1/search?q=TERM&n=LIMIT` where the registry has it (docker
//! hub, skiff's own server), else the `/v2/_catalog` names that contain the term.

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::{ClientError, Result};
use super::manifest::next_link;
use super::transport::{Registry, Req};

/// One search hit, in docker hub's v1 shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Debug, Deserialize)]
struct SearchResponse {
    #[serde(default)]
    results: Vec<SearchResult>,
}

impl Registry {
    /// Searches for `term`, at most `limit` results.
    pub async fn search(&self, term: &str, limit: usize) -> Result<Vec<SearchResult>> {
        let base = self.base().await?;
        let mut url = reqwest::Url::parse(&format!("{base}/v1/search"))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("q", term)
            .append_pair("n", &limit.to_string());
        let req = Req::new(Method::GET, url.to_string(), None);
        let resp = self.send(&req).await?;
        if resp.status().is_success() {
            let (_, bytes) = self.read_ok(&req, resp).await?;
            if let Ok(r) = serde_json::from_slice::<SearchResponse>(&bytes) {
                let mut results = r.results;
                results.truncate(limit);
                return Ok(results);
            }
        } else if !matches!(
            resp.status(),
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::UNAUTHORIZED
        ) {
            let (_, _) = self.read_ok(&req, resp).await?;
        }
        let mut results: Vec<SearchResult> = self
            .catalog()
            .await?
            .into_iter()
            .filter(|name| name.contains(term))
            .map(|name| SearchResult {
                name,
                ..Default::default()
            })
            .collect();
        results.truncate(limit);
        Ok(results)
    }

    /// Every repository name of `/v2/_catalog`, following pagination.
    pub async fn catalog(&self) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Vec<String>,
        }
        let base = self.base().await?;
        let mut url = format!("{base}/v2/_catalog?n=1000");
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let req = Req::new(Method::GET, url.clone(), Some("registry:catalog:*".into()));
            let resp = self.send(&req).await?;
            let (headers, bytes) = self.read_ok(&req, resp).await?;
            let c: Catalog = serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Protocol(format!("catalog: {e}")))?;
            out.extend(c.repositories);
            match next_link(&headers, &base) {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(out)
    }
}
