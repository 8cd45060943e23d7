//! Listings: `GET /v2/<name>/tags/list` and `/v2/_catalog` (`n`/`last` pagination with a
//! `Link` header), `GET /v2/<name>/referrers/<digest>` (OCI 1.1) and `GET /v1/search` (docker
//! hub's search API, which `skiff search` and `docker search` speak).

use std::sync::Arc;

use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::StatusCode;
use serde_json::json;
use skiff_image::spec::media;

use super::blobs::parse_digest;
use super::errors::{ApiError, ErrorCode};
use super::routes::{percent_encode, query_get};
use super::service::{blocking, json_response, set, Reply};
use super::State;

/// The most entries one page holds, whatever `n` asks (more come through `Link`).
const MAX_PAGE: usize = 1000;

/// Search results per answer unless `n` says otherwise, and the most it may ask for.
const SEARCH_DEFAULT: usize = 25;
const SEARCH_MAX: usize = 100;

/// `n` and `last`: (page size, start after). A malformed `n` is a 400.
fn page(query: &[(String, String)]) -> Result<(usize, String), ApiError> {
    let n = match query_get(query, "n") {
        None | Some("") => MAX_PAGE,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| {
                ApiError::detail(ErrorCode::Unsupported, format!("invalid n={v}"))
                    .with_status(StatusCode::BAD_REQUEST)
            })?
            .min(MAX_PAGE),
    };
    Ok((n, query_get(query, "last").unwrap_or("").to_owned()))
}

fn link_next(path: &str, n: usize, last: &str) -> String {
    format!("<{path}?n={n}&last={}>; rel=\"next\"", percent_encode(last))
}

pub async fn list(state: &Arc<State>, name: &str, query: &[(String, String)]) -> Reply {
    let (n, last) = page(query)?;
    let storage = state.storage.clone();
    let repo = name.to_owned();
    let found = blocking(move || {
        if !storage.repo_exists(&repo)? {
            return Ok(None);
        }
        Ok(Some(storage.tags(&repo, &last, n)?))
    })
    .await?;
    let Some((tags, more)) = found else {
        return Err(ApiError::detail(ErrorCode::NameUnknown, name.to_owned()));
    };
    let body = json!({ "name": name, "tags": tags });
    let mut resp = json_response(to_json(&body), false);
    if more && n > 0 {
        if let Some(last) = tags.last() {
            set(
                &mut resp,
                "Link",
                link_next(&format!("/v2/{name}/tags/list"), n, last),
            );
        }
    }
    Ok(resp)
}

pub async fn catalog(state: &Arc<State>, query: &[(String, String)]) -> Reply {
    let (n, last) = page(query)?;
    let storage = state.storage.clone();
    let (repos, more) = blocking(move || Ok(storage.catalog(&last, n)?)).await?;
    let body = json!({ "repositories": repos });
    let mut resp = json_response(to_json(&body), false);
    if more && n > 0 {
        if let Some(last) = repos.last() {
            set(&mut resp, "Link", link_next("/v2/_catalog", n, last));
        }
    }
    Ok(resp)
}

pub async fn search(state: &Arc<State>, query: &[(String, String)]) -> Reply {
    let term = query_get(query, "q").unwrap_or("").to_owned();
    let n = query_get(query, "n")
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(SEARCH_DEFAULT)
        .min(SEARCH_MAX);
    let storage = state.storage.clone();
    let t = term.clone();
    let (total, names) = blocking(move || Ok(storage.search(&t, n)?)).await?;
    let results: Vec<_> = names
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "description": "",
                "star_count": 0,
                "is_official": false,
                "is_automated": false,
            })
        })
        .collect();
    let body = json!({
        "num_results": total,
        "query": term,
        "page": 1,
        "page_size": n,
        "results": results,
    });
    Ok(json_response(to_json(&body), false))
}

pub async fn referrers(
    state: &Arc<State>,
    name: &str,
    digest: &str,
    query: &[(String, String)],
) -> Reply {
    let subject = parse_digest(digest)?;
    let filter = query_get(query, "artifactType")
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    let storage = state.storage.clone();
    let repo = name.to_owned();
    let rows = blocking(move || Ok(storage.referrers(&repo, &subject)?)).await?;
    let manifests: Vec<serde_json::Value> = rows
        .into_iter()
        .filter(|r| {
            filter
                .as_ref()
                .is_none_or(|f| r.artifact_type.as_deref() == Some(f.as_str()))
        })
        .map(|r| {
            let mut d = json!({
                "mediaType": r.media_type,
                "size": r.size,
                "digest": r.digest.to_string(),
            });
            if let Some(a) = r.artifact_type {
                d["artifactType"] = json!(a);
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            {
                d["annotations"] = a;
            }
            d
        })
        .collect();
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": manifests,
    });
    let mut resp = json_response(to_json(&body), false);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media::OCI_INDEX));
    if filter.is_some() {
        set(&mut resp, "OCI-Filters-Applied", "artifactType");
    }
    Ok(resp)
}

fn to_json(v: &serde_json::Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(v).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}
