//! Manifests and tags: fetch with content negotiation (the four manifest media types), pick
//! the host's entry from an index or Docker manifest list, store, and list tags.

use bytes::Bytes;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use serde::Deserialize;
use skiff_image::spec::{media, Descriptor, Index, Platform};
use skiff_image::Digest;

use super::auth::repository_scope;
use super::error::{ClientError, Result};
use super::transport::{Registry, Req, ReqBody};

/// Every manifest type the client understands, as docker's Accept header lists them.
pub const ACCEPTED: [&str; 4] = [
    media::DOCKER_MANIFEST,
    media::DOCKER_MANIFEST_LIST,
    media::OCI_MANIFEST,
    media::OCI_INDEX,
];

/// A manifest or index as the registry served it.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    pub media_type: String,
    /// The digest of `bytes` (checked against the requested digest, if one was asked for).
    pub digest: Digest,
}

impl Fetched {
    pub fn is_index(&self) -> bool {
        media::is_index(&self.media_type)
    }
}

/// The media type of a manifest document: the Content-Type if it is a manifest type, else
/// the document's own `mediaType`, else its shape (`manifests` means an index).
fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> String {
    let ct = content_type
        .map(|c| c.split(';').next().unwrap_or(c).trim().to_owned())
        .filter(|c| ACCEPTED.contains(&c.as_str()));
    if let Some(ct) = ct {
        return ct;
    }
    #[derive(Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType", default)]
        media_type: Option<String>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
    }
    match serde_json::from_slice::<Probe>(bytes) {
        Ok(Probe {
            media_type: Some(m),
            ..
        }) => m,
        Ok(Probe {
            manifests: Some(_), ..
        }) => media::OCI_INDEX.to_owned(),
        _ => media::OCI_MANIFEST.to_owned(),
    }
}

impl Registry {
    fn url(&self, base: &str, repo: &str, tail: &str) -> String {
        format!("{base}/v2/{repo}/{tail}")
    }

    /// GETs a manifest by tag or digest.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<Fetched> {
        let base = self.base().await?;
        let req = Req::new(
            Method::GET,
            self.url(&base, repo, &format!("manifests/{reference}")),
            Some(repository_scope(repo, false)),
        )
        .header(ACCEPT, ACCEPTED.join(", "));
        let resp = self.send(&req).await?;
        let (headers, bytes) = self.read_ok(&req, resp).await?;
        let digest = Digest::of_bytes(&bytes);
        if let Ok(want) = reference.parse::<Digest>() {
            if want != digest {
                return Err(ClientError::Verify(format!(
                    "manifest verification failed for digest {want}"
                )));
            }
        }
        let media_type = media_type_of(
            headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()),
            &bytes,
        );
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// PUTs a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest> {
        let base = self.base().await?;
        let digest = Digest::of_bytes(&bytes);
        let req = Req::new(
            Method::PUT,
            self.url(&base, repo, &format!("manifests/{reference}")),
            Some(repository_scope(repo, true)),
        )
        .header(CONTENT_TYPE, media_type)
        .body(ReqBody::Bytes(bytes));
        let resp = self.send(&req).await?;
        self.read_ok(&req, resp).await?;
        Ok(digest)
    }

    /// Every tag of a repository, following `Link` pagination.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>> {
        #[derive(Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let base = self.base().await?;
        let mut url = self.url(&base, repo, "tags/list");
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let req = Req::new(
                Method::GET,
                url.clone(),
                Some(repository_scope(repo, false)),
            );
            let resp = self.send(&req).await?;
            let (headers, bytes) = self.read_ok(&req, resp).await?;
            let list: TagList = serde_json::from_slice(&bytes)
                .map_err(|e| ClientError::Protocol(format!("tags list of {repo}: {e}")))?;
            out.extend(list.tags.unwrap_or_default());
            match next_link(&headers, &base) {
                Some(next) => url = next,
                None => break,
            }
        }
        Ok(out)
    }
}

/// The next page from an RFC 5988 `Link: </v2/...?last=x&n=y>; rel="next"` header.
pub(crate) fn next_link(headers: &reqwest::header::HeaderMap, base: &str) -> Option<String> {
    let link = headers.get("link")?.to_str().ok()?;
    for part in link.split(',') {
        if !part.contains("rel=\"next\"") && !part.contains("rel=next") {
            continue;
        }
        let start = part.find('<')?;
        let end = part.find('>')?;
        let target = part.get(start + 1..end)?;
        return Some(
            if target.starts_with("http://") || target.starts_with("https://") {
                target.to_owned()
            } else {
                format!("{base}{target}")
            },
        );
    }
    None
}

/// The manifest of an index that suits `want`: same OS and architecture, the same variant
/// when one is asked for (else the first entry, which registries list in preference order).
/// Attestation entries (`unknown/unknown`) never match.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let candidates: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| media::is_manifest(&d.media_type) || d.media_type.is_empty())
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == want.os && p.architecture == want.architecture)
        })
        .filter(|d| d.platform.as_ref().is_some_and(|p| p.os != "unknown"))
        .collect();
    let want_variant = want.variant.as_deref().filter(|v| !v.is_empty());
    match want_variant {
        Some(v) => candidates
            .iter()
            .find(|d| d.platform.as_ref().and_then(|p| p.variant.as_deref()) == Some(v))
            .or_else(|| {
                // arm64 images often omit "v8".
                candidates
                    .iter()
                    .find(|d| d.platform.as_ref().is_some_and(|p| p.variant.is_none()) && v == "v8")
            })
            .copied(),
        None => candidates.first().copied(),
    }
}

/// Parses `os/arch[/variant]` as `--platform` takes it.
pub fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    let bad = || {
        ClientError::Config(format!(
            "\"{s}\": unknown operating system or architecture: invalid argument"
        ))
    };
    if parts.len() < 2 || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    let arch = match parts[1] {
        "x86_64" | "x86-64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let mut p = Platform::host();
    p.os = parts[0].to_lowercase();
    p.architecture = arch.to_lowercase();
    p.variant = parts.get(2).map(|v| v.to_lowercase());
    p.os_version = None;
    Ok(p)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn index() -> Index {
        serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
              {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1,"platform":{"architecture":"amd64","os":"linux"}},
              {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v6"}},
              {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:3333333333333333333333333333333333333333333333333333333333333333","size":1,"platform":{"architecture":"arm","os":"linux","variant":"v7"}},
              {"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","size":1,"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:5555555555555555555555555555555555555555555555555555555555555555","size":1,"platform":{"architecture":"unknown","os":"unknown"}}
            ]}"#,
        )
        .unwrap()
    }

    fn pick(p: &str) -> Option<String> {
        let idx = index();
        select_platform(&idx, &parse_platform(p).unwrap()).map(|d| d.digest.hex()[..1].to_owned())
    }

    #[test]
    fn manifest_list_platform_selection() {
        assert_eq!(pick("linux/amd64").as_deref(), Some("1"));
        assert_eq!(pick("linux/x86_64").as_deref(), Some("1"));
        assert_eq!(pick("linux/arm/v7").as_deref(), Some("3"));
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("2"));
        assert_eq!(pick("linux/arm64").as_deref(), Some("4"));
        assert_eq!(pick("linux/arm64/v8").as_deref(), Some("4"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert_eq!(pick("unknown/unknown"), None);
    }

    #[test]
    fn bad_platform_strings() {
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux//").is_err());
    }

    #[test]
    fn media_type_from_header_or_document() {
        assert_eq!(
            media_type_of(
                Some("application/vnd.oci.image.index.v1+json; charset=utf-8"),
                b"{}"
            ),
            media::OCI_INDEX
        );
        assert_eq!(
            media_type_of(Some("application/json"), br#"{"manifests":[]}"#),
            media::OCI_INDEX
        );
        assert_eq!(
            media_type_of(None, br#"{"layers":[]}"#),
            media::OCI_MANIFEST
        );
    }

    #[test]
    fn link_header_pagination() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "link",
            "</v2/_catalog?last=b&n=2>; rel=\"next\"".parse().unwrap(),
        );
        assert_eq!(
            next_link(&h, "http://r").as_deref(),
            Some("http://r/v2/_catalog?last=b&n=2")
        );
    }
}
