//! `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`: blobs streamed from the content store,
//! with single `Range` requests answered by 206.

use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use hyper::header::{HeaderMap, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use hyper::{Response, StatusCode};
use skiff_image::Digest;

use super::body;
use super::errors::{ApiError, ErrorCode};
use super::service::{blocking, set, status_only, Reply};
use super::State;

/// Parses a digest from a URL or query, answering DIGEST_INVALID (400) when it is not one
/// (unsupported algorithms included: only sha256 is stored).
pub fn parse_digest(s: &str) -> Result<Digest, ApiError> {
    s.parse().map_err(|e: skiff_image::digest::DigestError| {
        ApiError::detail(ErrorCode::DigestInvalid, e.to_string())
    })
}

pub async fn get(
    state: &Arc<State>,
    name: &str,
    digest: &str,
    headers: &HeaderMap,
    head: bool,
) -> Reply {
    let digest = parse_digest(digest)?;
    let storage = state.storage.clone();
    let (repo, d) = (name.to_owned(), digest.clone());
    if !blocking(move || Ok(storage.blob_linked(&repo, &d)?)).await? {
        return Err(ApiError::detail(ErrorCode::BlobUnknown, digest.to_string()));
    }
    let path = state.storage.content().blob_path(&digest);
    let opened = {
        let path = path.clone();
        blocking(move || match std::fs::File::open(&path) {
            Ok(f) => {
                let size = f
                    .metadata()
                    .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
                    .len();
                Ok(Some((f, size)))
            }
            // Collected between the check and the open.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ApiError::internal(format!("{}: {e}", path.display()))),
        })
        .await?
    };
    let Some((mut file, size)) = opened else {
        return Err(ApiError::detail(ErrorCode::BlobUnknown, digest.to_string()));
    };
    let range = headers
        .get(RANGE)
        .and_then(|v| v.to_str().ok())
        .map_or(ByteRange::Whole, |r| parse_range(r, size));
    let (status, start, len) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part(a, b) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        ByteRange::Unsatisfiable => {
            let mut r = status_only(StatusCode::RANGE_NOT_SATISFIABLE);
            set(&mut r, "Content-Range", format!("bytes */{size}"));
            return Ok(r);
        }
    };
    let body = if head || len == 0 {
        body::empty()
    } else {
        if start > 0 {
            // A seek on a regular file does no I/O: fine on the async side.
            file.seek(SeekFrom::Start(start))
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        }
        body::file(file, len)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert("Accept-Ranges", HeaderValue::from_static("bytes"));
    // Content never changes under a digest, so caches may keep it as long as they like.
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("max-age=31536000"),
    );
    set(&mut resp, "Docker-Content-Digest", digest.to_string());
    set(&mut resp, "ETag", format!("\"{digest}\""));
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut resp,
            "Content-Range",
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    Ok(resp)
}

pub async fn delete(state: &Arc<State>, name: &str, digest: &str) -> Reply {
    let digest = parse_digest(digest)?;
    let storage = state.storage.clone();
    let (repo, d) = (name.to_owned(), digest.clone());
    // Only the repository's link goes; the bytes stay until `registry gc` finds nothing
    // referring to them (another repository may hold the same blob).
    if blocking(move || Ok(storage.unlink_blob(&repo, &d)?)).await? {
        Ok(status_only(StatusCode::ACCEPTED))
    } else {
        Err(ApiError::detail(ErrorCode::BlobUnknown, digest.to_string()))
    }
}

/// What a `Range` request header asks of a blob of a known size.
#[derive(Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable range (absent, malformed or several ranges): send everything with 200.
    Whole,
    /// Inclusive byte positions, both within the blob.
    Part(u64, u64),
    /// A well-formed range entirely past the end: 416.
    Unsatisfiable,
}

/// Parses `bytes=A-B`, `bytes=A-` or `bytes=-N` (RFC 9110 section 14). Several ranges are
/// answered whole, which the RFC allows.
pub fn parse_range(header: &str, size: u64) -> ByteRange {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last N bytes.
        return match b.parse::<u64>() {
            Ok(0) => ByteRange::Unsatisfiable,
            Ok(_) if size == 0 => ByteRange::Unsatisfiable,
            Ok(n) => ByteRange::Part(size.saturating_sub(n), size - 1),
            Err(_) => ByteRange::Whole,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return ByteRange::Whole;
    };
    let end = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return ByteRange::Whole,
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    let end = end.map_or(size - 1, |e| e.min(size - 1));
    ByteRange::Part(start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_as_rfc_9110_says() {
        assert_eq!(parse_range("bytes=0-9", 100), ByteRange::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), ByteRange::Part(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), ByteRange::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), ByteRange::Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), ByteRange::Part(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), ByteRange::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), ByteRange::Whole);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), ByteRange::Whole);
        assert_eq!(parse_range("items=0-1", 100), ByteRange::Whole);
        assert_eq!(parse_range("bytes=x-", 100), ByteRange::Whole);
    }
}
