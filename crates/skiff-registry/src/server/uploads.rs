//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (start a session, push monolithically with
//! `?digest=`, or mount with `?mount=&from=`), `PATCH` chunks, `PUT ?digest=` to finish,
//! `GET` for the status and `DELETE` to cancel.
//!
//! A session is an ingest of the content store (`ingest/upload-<id>`) whose writer, with its
//! running hash, stays open between requests, so chunks are hashed once as they arrive. The
//! final PUT commits it: size and digest checked, fsync, rename. A digest mismatch discards
//! the data; nothing partial is ever linked or served. Concurrent uploads of one blob each
//! have their own ingest and the second commit finds the blob present.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH};
use hyper::{Request, Response, StatusCode};
use skiff_image::content::{ContentError, IngestWriter};
use skiff_image::Digest;

use super::blobs::parse_digest;
use super::body::{self, Body, PumpError};
use super::errors::{ApiError, ErrorCode};
use super::routes::{self, query_get};
use super::service::{blocking, set, status_only, Reply};
use super::storage::Storage;
use super::State;

/// Open sessions beyond this are refused with 429 TOOMANYREQUESTS: each holds a file and a lock.
const MAX_SESSIONS: usize = 4096;

/// Sessions nobody touched for this long are closed (their data is left for `registry gc`).
const IDLE_LIMIT: Duration = Duration::from_secs(24 * 3600);

struct Session {
    repo: String,
    /// `None` once the writer is gone (committed, or its thread died).
    writer: Option<IngestWriter>,
    last_used: Instant,
}

type SessionRef = Arc<tokio::sync::Mutex<Session>>;

/// The upload sessions of a running server.
pub struct Sessions {
    storage: Arc<Storage>,
    map: Mutex<HashMap<String, SessionRef>>,
    /// Serializes re-opening sessions a previous server process left on disk.
    recovering: tokio::sync::Mutex<()>,
}

impl Sessions {
    pub fn new(storage: Arc<Storage>) -> Sessions {
        Sessions {
            storage,
            map: Mutex::new(HashMap::new()),
            recovering: tokio::sync::Mutex::new(()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, SessionRef>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lookup(&self, id: &str) -> Option<SessionRef> {
        self.map().get(id).cloned()
    }

    fn remove(&self, id: &str) {
        self.map().remove(id);
    }

    /// Finds a session, re-opening one a previous server process left in `ingest/` (its
    /// bytes are re-hashed once).
    async fn find(&self, name: &str, id: &str) -> Result<SessionRef, ApiError> {
        let unknown = || ApiError::detail(ErrorCode::BlobUploadUnknown, id.to_owned());
        if let Some(s) = self.lookup(id) {
            return Ok(s);
        }
        if !valid_id(id) {
            return Err(unknown());
        }
        let _guard = self.recovering.lock().await;
        if let Some(s) = self.lookup(id) {
            return Ok(s);
        }
        let dir = self.storage.root().join("ingest").join(ingest_ref(id));
        if !dir.join("data").exists() {
            return Err(unknown());
        }
        let storage = self.storage.clone();
        let reference = ingest_ref(id);
        let writer = blocking(move || {
            storage
                .content()
                .writer(&reference)
                .map_err(ApiError::internal)
        })
        .await?;
        let session = Arc::new(tokio::sync::Mutex::new(Session {
            repo: name.to_owned(),
            writer: Some(writer),
            last_used: Instant::now(),
        }));
        self.map().insert(id.to_owned(), session.clone());
        Ok(session)
    }

    async fn start(&self, name: &str) -> Result<String, ApiError> {
        if self.map().len() >= MAX_SESSIONS {
            return Err(ApiError::detail(
                ErrorCode::TooManyRequests,
                "too many uploads in progress",
            ));
        }
        let id = new_id();
        let storage = self.storage.clone();
        let reference = ingest_ref(&id);
        let writer = blocking(move || {
            let mut w = storage
                .content()
                .writer(&reference)
                .map_err(ApiError::internal)?;
            w.truncate().map_err(ApiError::internal)?;
            Ok(w)
        })
        .await?;
        let session = Arc::new(tokio::sync::Mutex::new(Session {
            repo: name.to_owned(),
            writer: Some(writer),
            last_used: Instant::now(),
        }));
        self.map().insert(id.clone(), session);
        Ok(id)
    }
}

fn new_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn valid_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn ingest_ref(id: &str) -> String {
    format!("upload-{id}")
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// The spec's `Range: 0-<last byte>` for an upload holding `offset` bytes (`0-0` when empty,
/// as distribution answers).
fn range_value(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// The headers of every answer about a live session.
fn session_response(status: StatusCode, name: &str, id: &str, offset: u64) -> Response<Body> {
    let mut r = status_only(status);
    set(&mut r, "Location", upload_location(name, id));
    set(&mut r, "Range", range_value(offset));
    set(&mut r, "Docker-Upload-UUID", id);
    set(&mut r, "Blob-Upload-Session-ID", id);
    r
}

fn blob_created(name: &str, digest: &Digest) -> Response<Body> {
    let mut r = status_only(StatusCode::CREATED);
    set(&mut r, "Location", format!("/v2/{name}/blobs/{digest}"));
    set(&mut r, "Docker-Content-Digest", digest.to_string());
    r
}

pub async fn post(
    state: &Arc<State>,
    name: &str,
    query: &[(String, String)],
    req: Request<Incoming>,
) -> Reply {
    if let Some(mount) = query_get(query, "mount") {
        // A mount that cannot happen (bad digest, unknown source) falls back to a plain
        // upload session, as the spec says.
        if let Ok(digest) = mount.parse::<Digest>() {
            let from = query_get(query, "from").map(str::to_owned);
            let storage = state.storage.clone();
            let (repo, d) = (name.to_owned(), digest.clone());
            let mounted = blocking(move || {
                let available = match &from {
                    Some(from) if routes::valid_name(from) => storage.blob_linked(from, &d)?,
                    Some(_) => false,
                    // Without `from` the spec lets the registry mount from wherever it has it.
                    None => storage.blob_linked_anywhere(&d)?,
                };
                if available {
                    storage.link_blob(&repo, &d)?;
                }
                Ok(available)
            })
            .await?;
            if mounted {
                return Ok(blob_created(name, &digest));
            }
        }
    } else if let Some(digest) = query_get(query, "digest") {
        let digest = parse_digest(digest)?;
        return monolithic(state, name, digest, req).await;
    }
    let id = state.uploads.start(name).await?;
    Ok(session_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// `POST ?digest=` with the whole blob as the body.
async fn monolithic(
    state: &Arc<State>,
    name: &str,
    digest: Digest,
    req: Request<Incoming>,
) -> Reply {
    let storage = state.storage.clone();
    let reference = format!("post-{}", new_id());
    let dir = state.storage.root().join("ingest").join(&reference);
    let writer = blocking(move || {
        storage
            .content()
            .writer(&reference)
            .map_err(ApiError::internal)
    })
    .await?;
    let (writer, pumped) = body::pump(req.into_body(), writer).await;
    let Some(writer) = writer else {
        return Err(ApiError::internal("upload writer lost"));
    };
    if let Err(e) = pumped {
        // Nothing of a failed single-request upload is worth keeping.
        let _ = blocking(move || {
            drop(writer);
            Ok(std::fs::remove_dir_all(&dir))
        })
        .await;
        return Err(pump_error(e));
    }
    commit(state, name, writer, digest).await
}

/// Verifies and commits an ingest, then links the blob into the repository.
async fn commit(state: &Arc<State>, name: &str, writer: IngestWriter, digest: Digest) -> Reply {
    let storage = state.storage.clone();
    let (repo, d) = (name.to_owned(), digest.clone());
    blocking(move || {
        match writer.commit(None, Some(&d)) {
            Ok(_) => {}
            Err(ContentError::DigestMismatch { actual, .. }) => {
                return Err(ApiError::detail(
                    ErrorCode::DigestInvalid,
                    format!("digest {d} does not match the uploaded content ({actual})"),
                ))
            }
            Err(e) => return Err(ApiError::internal(e)),
        }
        storage.link_blob(&repo, &d)?;
        Ok(())
    })
    .await?;
    Ok(blob_created(name, &digest))
}

fn pump_error(e: PumpError) -> ApiError {
    match e {
        PumpError::Client(e) => ApiError::detail(ErrorCode::BlobUploadInvalid, e.to_string()),
        PumpError::Disk(_) | PumpError::Lost => ApiError::internal(e),
    }
}

/// A `Content-Range: <start>-<end>` request header (a `bytes ` or `bytes=` prefix is also
/// accepted, as some clients send one).
fn parse_content_range(v: &str) -> Option<(u64, u64)> {
    let v = v.trim();
    let v = v
        .strip_prefix("bytes ")
        .or_else(|| v.strip_prefix("bytes="))
        .unwrap_or(v);
    let v = v.split('/').next()?;
    let (a, b) = v.split_once('-')?;
    let (a, b) = (a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?);
    (b >= a).then_some((a, b))
}

/// Checks a chunk's `Content-Range` (when sent) against the session's offset: chunks must
/// come in order, and the range must agree with `Content-Length`. Otherwise 416 with the
/// current range, so the client can resume.
fn check_chunk(
    req: &Request<Incoming>,
    name: &str,
    id: &str,
    offset: u64,
) -> Result<(), Box<Response<Body>>> {
    let Some(cr) = req.headers().get("Content-Range") else {
        return Ok(());
    };
    let not_satisfiable = || {
        Box::new(session_response(
            StatusCode::RANGE_NOT_SATISFIABLE,
            name,
            id,
            offset,
        ))
    };
    let Some((start, end)) = cr.to_str().ok().and_then(parse_content_range) else {
        return Err(not_satisfiable());
    };
    if start != offset {
        return Err(not_satisfiable());
    }
    let length = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = length {
        if len != end - start + 1 {
            return Err(not_satisfiable());
        }
    }
    Ok(())
}

/// Appends the request body to a session. Returns the new offset.
async fn append(
    state: &Arc<State>,
    id: &str,
    session: &mut Session,
    req: Request<Incoming>,
) -> Result<u64, ApiError> {
    let Some(writer) = session.writer.take() else {
        return Err(ApiError::detail(
            ErrorCode::BlobUploadUnknown,
            id.to_owned(),
        ));
    };
    let (writer, pumped) = body::pump(req.into_body(), writer).await;
    session.last_used = Instant::now();
    match writer {
        Some(w) => {
            let offset = w.offset();
            session.writer = Some(w);
            pumped.map_err(pump_error)?;
            Ok(offset)
        }
        None => {
            state.uploads.remove(id);
            Err(pumped
                .err()
                .map_or_else(|| ApiError::internal("upload writer lost"), pump_error))
        }
    }
}

pub async fn patch(state: &Arc<State>, name: &str, id: &str, req: Request<Incoming>) -> Reply {
    let session = state.uploads.find(name, id).await?;
    let mut s = session.lock().await;
    let offset = session_offset(&s, name, id)?;
    if let Err(resp) = check_chunk(&req, name, id, offset) {
        return Ok(*resp);
    }
    let offset = append(state, id, &mut s, req).await?;
    Ok(session_response(StatusCode::ACCEPTED, name, id, offset))
}

pub async fn put(
    state: &Arc<State>,
    name: &str,
    id: &str,
    query: &[(String, String)],
    req: Request<Incoming>,
) -> Reply {
    let session = state.uploads.find(name, id).await?;
    let Some(digest) = query_get(query, "digest") else {
        return Err(ApiError::detail(
            ErrorCode::DigestInvalid,
            "the digest parameter is required to finish an upload",
        ));
    };
    let digest = parse_digest(digest)?;
    let mut s = session.lock().await;
    let offset = session_offset(&s, name, id)?;
    if let Err(resp) = check_chunk(&req, name, id, offset) {
        return Ok(*resp);
    }
    append(state, id, &mut s, req).await?;
    let Some(writer) = s.writer.take() else {
        return Err(ApiError::detail(
            ErrorCode::BlobUploadUnknown,
            id.to_owned(),
        ));
    };
    // Whatever the verdict, the session is over: a mismatch discards the data.
    state.uploads.remove(id);
    drop(s);
    commit(state, name, writer, digest).await
}

pub async fn status(state: &Arc<State>, name: &str, id: &str) -> Reply {
    let session = state.uploads.find(name, id).await?;
    let s = session.lock().await;
    let offset = session_offset(&s, name, id)?;
    Ok(session_response(StatusCode::NO_CONTENT, name, id, offset))
}

pub async fn cancel(state: &Arc<State>, name: &str, id: &str) -> Reply {
    let session = state.uploads.find(name, id).await?;
    let mut s = session.lock().await;
    session_offset(&s, name, id)?;
    let writer = s.writer.take();
    state.uploads.remove(id);
    drop(s);
    let dir = state.storage.root().join("ingest").join(ingest_ref(id));
    blocking(move || {
        // Close the file and release its lock first, then drop the data.
        drop(writer);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ApiError::internal(format!("{}: {e}", dir.display()))),
        }
    })
    .await?;
    let mut r = status_only(StatusCode::NO_CONTENT);
    r.headers_mut().insert(
        "Docker-Upload-UUID",
        HeaderValue::from_str(id).map_err(ApiError::internal)?,
    );
    Ok(r)
}

/// The session's offset, if it belongs to `name` and is still live.
fn session_offset(s: &Session, name: &str, id: &str) -> Result<u64, ApiError> {
    match &s.writer {
        Some(w) if s.repo == name => Ok(w.offset()),
        _ => Err(ApiError::detail(
            ErrorCode::BlobUploadUnknown,
            id.to_owned(),
        )),
    }
}

/// Closes sessions idle for longer than [`IDLE_LIMIT`], every few minutes, for as long as the
/// server runs. Their ingest data stays on disk for `registry gc` (or a resuming client).
pub async fn expire_idle(state: Arc<State>) {
    loop {
        tokio::time::sleep(Duration::from_secs(300)).await;
        let sessions: Vec<(String, SessionRef)> = state
            .uploads
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (id, session) in sessions {
            // A session busy with a request is not idle.
            let Ok(s) = session.try_lock() else { continue };
            if s.last_used.elapsed() > IDLE_LIMIT {
                state.uploads.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(parse_content_range("0-9"), Some((0, 9)));
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((10, 19)));
        assert_eq!(parse_content_range("bytes=10-19"), Some((10, 19)));
        assert_eq!(parse_content_range("9-0"), None);
        assert_eq!(parse_content_range("x-1"), None);
        assert_eq!(parse_content_range(""), None);
    }

    #[test]
    fn ranges_report_the_last_byte() {
        assert_eq!(range_value(0), "0-0");
        assert_eq!(range_value(1), "0-0");
        assert_eq!(range_value(10), "0-9");
    }
}
