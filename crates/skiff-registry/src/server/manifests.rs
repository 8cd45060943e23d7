//! `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<tag-or-digest>`: manifests stored as the
//! exact bytes pushed (as blobs of the content store), with their media type, checked
//! references, content negotiation through `Accept`, and `subject` recorded for referrers.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;
use skiff_image::spec::media;
use skiff_image::Digest;

use super::blobs::parse_digest;
use super::body::{self, ReadLimitedError};
use super::errors::{ApiError, ErrorCode};
use super::routes;
use super::service::{blocking, set, status_only, Reply};
use super::storage::ManifestRow;
use super::State;

/// The largest manifest accepted (the spec asks registries to take at least 4 MiB; docker's
/// registry and containers/image stop there too).
pub const MAX_MANIFEST_SIZE: usize = 4 * 1024 * 1024;

/// The manifest media types the registry stores.
const SUPPORTED: [&str; 4] = [
    media::OCI_MANIFEST,
    media::OCI_INDEX,
    media::DOCKER_MANIFEST,
    media::DOCKER_MANIFEST_LIST,
];

#[derive(Deserialize)]
struct RawDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: i64,
    #[serde(default)]
    urls: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawManifest {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    #[serde(rename = "artifactType")]
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    annotations: Option<BTreeMap<String, String>>,
}

/// What the registry needs of a manifest or index.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub media_type: String,
    /// Blobs that must exist (config and layers; layers with `urls` live elsewhere).
    pub blobs: Vec<Digest>,
    /// Manifests an index lists.
    pub children: Vec<Digest>,
    pub subject: Option<Digest>,
    /// For referrers: `artifactType`, or for an image manifest without one, its config's type.
    pub artifact_type: Option<String>,
    pub annotations: Option<BTreeMap<String, String>>,
}

fn invalid(detail: impl Into<String>) -> ApiError {
    ApiError::detail(ErrorCode::ManifestInvalid, detail)
}

fn descriptor_digest(d: &RawDescriptor) -> Result<Digest, ApiError> {
    if d.size < 0 {
        return Err(invalid(format!(
            "descriptor {} has a negative size",
            d.digest
        )));
    }
    d.digest
        .parse()
        .map_err(|e: skiff_image::digest::DigestError| invalid(e.to_string()))
}

/// Parses a manifest or index. `content_type` is the request's (or the stored) media type; the
/// document's own `mediaType`, when present, must agree with it.
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Parsed, ApiError> {
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a manifest: {e}")))?;
    if raw.schema_version != Some(2) {
        return Err(invalid("only schemaVersion 2 manifests are supported"));
    }
    let content_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| SUPPORTED.contains(c));
    let media_type = match (&raw.media_type, content_type) {
        (Some(m), Some(c)) if m != c => {
            return Err(invalid(format!(
                "mediaType {m} does not match Content-Type {c}"
            )))
        }
        (Some(m), _) => m.clone(),
        (None, Some(c)) => c.to_owned(),
        // Neither says: an OCI document (where mediaType is optional) by its shape.
        (None, None) if raw.manifests.is_some() => media::OCI_INDEX.to_owned(),
        (None, None) => media::OCI_MANIFEST.to_owned(),
    };
    if !SUPPORTED.contains(&media_type.as_str()) {
        return Err(invalid(format!(
            "unsupported manifest media type {media_type}"
        )));
    }
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    let mut artifact_type = raw.artifact_type.clone().filter(|a| !a.is_empty());
    if media::is_index(&media_type) {
        let Some(list) = &raw.manifests else {
            return Err(invalid("an index needs a manifests list"));
        };
        for d in list {
            children.push(descriptor_digest(d)?);
        }
    } else {
        let Some(config) = &raw.config else {
            return Err(invalid("a manifest needs a config"));
        };
        blobs.push(descriptor_digest(config)?);
        if artifact_type.is_none() && !config.media_type.is_empty() {
            artifact_type = Some(config.media_type.clone());
        }
        for d in raw.layers.iter().flatten() {
            let digest = descriptor_digest(d)?;
            if d.urls.as_ref().is_none_or(Vec::is_empty) {
                blobs.push(digest);
            }
        }
    }
    let subject = raw.subject.as_ref().map(descriptor_digest).transpose()?;
    Ok(Parsed {
        media_type,
        blobs,
        children,
        subject,
        artifact_type,
        annotations: raw.annotations,
    })
}

/// Whether an `Accept` list allows `media_type` (no list, or `*/*`, allows everything).
fn acceptable(headers: &HeaderMap, media_type: &str) -> bool {
    let mut any = false;
    for value in headers.get_all(ACCEPT) {
        let Ok(v) = value.to_str() else { continue };
        for item in v.split(',') {
            let t = item.split(';').next().unwrap_or("").trim();
            if t.is_empty() {
                continue;
            }
            any = true;
            if t == media_type || t == "*/*" || t == "application/*" {
                return true;
            }
        }
    }
    !any
}

pub async fn get(
    state: &Arc<State>,
    name: &str,
    reference: &str,
    headers: &HeaderMap,
    head: bool,
) -> Reply {
    if reference.contains(':') {
        parse_digest(reference)?;
    }
    let storage = state.storage.clone();
    let (repo, r) = (name.to_owned(), reference.to_owned());
    let row = blocking(move || Ok(storage.resolve(&repo, &r)?)).await?;
    let Some(row) = row else {
        return Err(ApiError::detail(
            ErrorCode::ManifestUnknown,
            format!("{name}:{reference}"),
        ));
    };
    if !acceptable(headers, &row.media_type) {
        return Err(ApiError::detail(
            ErrorCode::ManifestUnknown,
            format!(
                "{} found, but the Accept header does not include it",
                row.media_type
            ),
        ));
    }
    let path = state.storage.content().blob_path(&row.digest);
    let bytes = if head {
        Vec::new()
    } else {
        match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ApiError::detail(
                    ErrorCode::ManifestUnknown,
                    row.digest.to_string(),
                ))
            }
            Err(e) => return Err(ApiError::internal(format!("{}: {e}", path.display()))),
        }
    };
    let mut resp = Response::new(body::full(bytes));
    resp.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(row.size));
    set(&mut resp, CONTENT_TYPE.as_str(), &row.media_type);
    set(&mut resp, "Docker-Content-Digest", row.digest.to_string());
    set(&mut resp, "ETag", format!("\"{}\"", row.digest));
    Ok(resp)
}

pub async fn put(state: &Arc<State>, name: &str, reference: &str, req: Request<Incoming>) -> Reply {
    let too_large = || {
        invalid(format!("manifest is larger than {MAX_MANIFEST_SIZE} bytes"))
            .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_MANIFEST_SIZE as u64) {
        return Err(too_large());
    }
    let tag = if reference.contains(':') {
        None
    } else if routes::valid_tag(reference) {
        Some(reference.to_owned())
    } else {
        return Err(invalid(format!("invalid tag {reference:?}")));
    };
    let expected = if tag.is_none() {
        Some(parse_digest(reference)?)
    } else {
        None
    };
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match body::read_limited(req.into_body(), MAX_MANIFEST_SIZE).await {
        Ok(b) => b,
        Err(ReadLimitedError::TooLarge) => return Err(too_large()),
        Err(e @ ReadLimitedError::Client(_)) => return Err(invalid(e.to_string())),
    };
    let digest = Digest::of_bytes(&bytes);
    if let Some(want) = &expected {
        if want != &digest {
            return Err(ApiError::detail(
                ErrorCode::DigestInvalid,
                format!("manifest digest is {digest}, not {want}"),
            ));
        }
    }
    let parsed = parse(&bytes, content_type.as_deref())?;
    let row = ManifestRow {
        digest: digest.clone(),
        media_type: parsed.media_type.clone(),
        size: bytes.len() as u64,
        subject: parsed.subject.as_ref().map(ToString::to_string),
        artifact_type: parsed.artifact_type.clone(),
        annotations: parsed
            .annotations
            .as_ref()
            .filter(|a| !a.is_empty())
            .and_then(|a| serde_json::to_string(a).ok()),
    };
    let storage = state.storage.clone();
    let repo = name.to_owned();
    let subject = parsed.subject.clone();
    blocking(move || {
        for b in &parsed.blobs {
            if !storage.blob_linked(&repo, b)? {
                return Err(ApiError::detail(
                    ErrorCode::ManifestBlobUnknown,
                    b.to_string(),
                ));
            }
        }
        for m in &parsed.children {
            if storage.resolve(&repo, &m.to_string())?.is_none() {
                return Err(ApiError::detail(
                    ErrorCode::ManifestBlobUnknown,
                    m.to_string(),
                ));
            }
        }
        storage
            .content()
            .write_blob(&bytes)
            .map_err(ApiError::internal)?;
        storage.put_manifest(&repo, &row, tag.as_deref())?;
        Ok(())
    })
    .await?;
    let mut resp = status_only(StatusCode::CREATED);
    set(
        &mut resp,
        "Location",
        format!("/v2/{name}/manifests/{digest}"),
    );
    set(&mut resp, "Docker-Content-Digest", digest.to_string());
    if let Some(s) = subject {
        set(&mut resp, "OCI-Subject", s.to_string());
    }
    Ok(resp)
}

pub async fn delete(state: &Arc<State>, name: &str, reference: &str) -> Reply {
    let storage = state.storage.clone();
    let repo = name.to_owned();
    let deleted = if reference.contains(':') {
        let digest = parse_digest(reference)?;
        blocking(move || Ok(storage.delete_manifest(&repo, &digest)?)).await?
    } else {
        let tag = reference.to_owned();
        blocking(move || Ok(storage.delete_tag(&repo, &tag)?)).await?
    };
    if deleted {
        Ok(status_only(StatusCode::ACCEPTED))
    } else {
        Err(ApiError::detail(
            ErrorCode::ManifestUnknown,
            format!("{name}:{reference}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const LAYER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn manifest_references_and_artifact_type() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/x.sbom","digest":"{CONFIG}","size":2}},
            "layers":[{{"mediaType":"a","digest":"{LAYER}","size":3}},{{"mediaType":"b","digest":"{LAYER}","size":3,"urls":["http://x"]}}],
            "subject":{{"mediaType":"x","digest":"{CONFIG}","size":1}}}}"#,
            media::OCI_MANIFEST
        );
        let p = parse(doc.as_bytes(), Some(media::OCI_MANIFEST)).unwrap();
        assert_eq!(p.blobs.len(), 2, "the layer with urls is not required");
        assert_eq!(p.artifact_type.as_deref(), Some("application/x.sbom"));
        assert_eq!(p.subject.unwrap().to_string(), CONFIG);
    }

    #[test]
    fn mismatched_or_unknown_types_are_invalid() {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media::OCI_INDEX
        );
        assert!(parse(doc.as_bytes(), Some(media::OCI_INDEX)).is_ok());
        assert!(parse(doc.as_bytes(), Some(media::DOCKER_MANIFEST)).is_err());
        assert!(parse(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(parse(b"not json", None).is_err());
        let bad = r#"{"schemaVersion":2,"mediaType":"application/x","manifests":[]}"#;
        assert!(parse(bad.as_bytes(), None).is_err());
    }

    #[test]
    fn accept_lists_negotiate() {
        let mut h = HeaderMap::new();
        assert!(acceptable(&h, media::OCI_INDEX));
        h.append(ACCEPT, HeaderValue::from_static(media::DOCKER_MANIFEST));
        assert!(!acceptable(&h, media::OCI_INDEX));
        h.append(
            ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json; q=0.5"),
        );
        assert!(acceptable(&h, media::OCI_INDEX));
    }
}
