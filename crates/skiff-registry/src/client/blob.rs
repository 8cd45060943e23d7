//! Blobs: download into the content store (resumable, verified), existence checks, cross-
//! repository mounts, and uploads (monolithic for small blobs, chunked PATCHes for big ones).

use std::io::Write;
use std::path::Path;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use reqwest::{Method, StatusCode};
use skiff_image::content::{ContentError, ContentStore};
use skiff_image::spec::Descriptor;
use skiff_image::Digest;

use super::auth::repository_scope;
use super::error::{ClientError, Result};
use super::transport::{network_error, Registry, Req, ReqBody, TRIES};

/// Blobs up to this size go up in one PUT; bigger ones in PATCH chunks of this size.
pub const CHUNK: u64 = 32 << 20;

/// What happens to a blob while it downloads.
#[derive(Debug)]
pub enum BlobEvent<'a> {
    /// Bytes are about to arrive, continuing at `offset` (0 for a fresh start, more when an
    /// earlier partial download is resumed). After a restart from 0 the bytes come again.
    Start { offset: u64 },
    /// The next bytes of the blob, in order.
    Data(&'a [u8]),
    /// The download is complete and is being verified.
    Verifying,
}

/// The outcome of a cross-repository mount request.
#[derive(Debug, PartialEq, Eq)]
pub enum Mount {
    Mounted,
    /// The registry started an ordinary upload instead (at this location).
    Upload(String),
}

impl Registry {
    fn blob_url(base: &str, repo: &str, digest: &Digest) -> String {
        format!("{base}/v2/{repo}/blobs/{digest}")
    }

    /// Downloads `desc` into `store` (nothing to do when it is there). A partial download
    /// left by an earlier attempt or process is continued with a `Range` request; the blob
    /// is committed only when its size and digest match the descriptor.
    pub async fn fetch_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        store: &ContentStore,
        on: &mut (dyn FnMut(BlobEvent<'_>) + Send),
    ) -> Result<()> {
        if store.exists(&desc.digest) {
            return Ok(());
        }
        let mut writer = store.writer(&format!("pull-{}", desc.digest.hex()))?;
        if store.exists(&desc.digest) {
            // Another process committed it while we waited for the ingest lock.
            return Ok(());
        }
        if writer.offset() > desc.size {
            writer.truncate()?;
        }
        let base = self.base().await?;
        let mut sources: Vec<(String, bool)> = desc
            .urls
            .iter()
            .flatten()
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .map(|u| (u.clone(), false))
            .collect();
        sources.push((Self::blob_url(&base, repo, &desc.digest), true));
        let mut failures_without_progress = 0;
        let mut source = 0;
        let mut last_err: Option<ClientError> = None;
        while writer.offset() < desc.size || (desc.size == 0 && last_err.is_none()) {
            let Some((url, from_registry)) = sources.get(source).cloned() else {
                break;
            };
            let offset = writer.offset();
            let mut req = Req::new(
                Method::GET,
                url.clone(),
                from_registry.then(|| repository_scope(repo, false)),
            );
            if offset > 0 {
                req = req.header(RANGE, format!("bytes={offset}-"));
            }
            let resp = if from_registry {
                self.send(&req).await
            } else {
                self.send_foreign(&req).await
            };
            let resp = match resp {
                Ok(r) => r,
                // The registry is the last source (and `send` already retried it).
                Err(e) if from_registry => return Err(e),
                // A foreign URL failed: try the next source.
                Err(e) => {
                    source += 1;
                    last_err = Some(e);
                    continue;
                }
            };
            let status = resp.status();
            if !status.is_success() {
                let body = resp.bytes().await.unwrap_or_default();
                let e = ClientError::from_response("GET", &url, status.as_u16(), &body);
                if from_registry {
                    return Err(e);
                }
                source += 1;
                last_err = Some(e);
                continue;
            }
            if offset > 0 && status != StatusCode::PARTIAL_CONTENT {
                // The server ignored the Range: start over.
                writer.truncate()?;
            }
            on(BlobEvent::Start {
                offset: writer.offset(),
            });
            let before = writer.offset();
            let mut stream = resp.bytes_stream();
            let mut cut = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(bytes) => {
                        if writer.offset() + bytes.len() as u64 > desc.size {
                            // More than the descriptor says: refuse rather than store.
                            writer.truncate()?;
                            return Err(ClientError::Verify(format!(
                                "filesystem layer verification failed for digest {}",
                                desc.digest
                            )));
                        }
                        writer.write_all(&bytes).map_err(|e| ClientError::Io {
                            context: format!("writing {}", desc.digest),
                            source: e,
                        })?;
                        on(BlobEvent::Data(&bytes));
                    }
                    Err(e) => {
                        cut = Some(network_error("GET", &url, &e));
                        break;
                    }
                }
            }
            if writer.offset() >= desc.size {
                break;
            }
            // The connection ended early: resume from where it stopped.
            let e = cut.unwrap_or_else(|| ClientError::Network {
                method: "Get".into(),
                url: url.clone(),
                message: "unexpected EOF".into(),
            });
            log::debug!(
                "{}: cut at {} of {} bytes: {e}",
                desc.digest,
                writer.offset(),
                desc.size
            );
            if writer.offset() > before {
                failures_without_progress = 0;
            } else {
                failures_without_progress += 1;
            }
            last_err = Some(e);
            if failures_without_progress >= TRIES {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(
                200 * u64::from(failures_without_progress),
            ))
            .await;
        }
        if writer.offset() < desc.size {
            return Err(last_err.unwrap_or_else(|| {
                ClientError::Protocol(format!("{}: download incomplete", desc.digest))
            }));
        }
        on(BlobEvent::Verifying);
        match writer.commit(Some(desc.size), Some(&desc.digest)) {
            Ok(_) => Ok(()),
            Err(ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. }) => {
                Err(ClientError::Verify(format!(
                    "filesystem layer verification failed for digest {}",
                    desc.digest
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `HEAD` of a blob: its size if the repository has it.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        let base = self.base().await?;
        let req = Req::new(
            Method::HEAD,
            Self::blob_url(&base, repo, digest),
            Some(repository_scope(repo, true)),
        );
        let resp = self.send(&req).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            s => Err(ClientError::from_response(
                "HEAD",
                &req.url,
                s.as_u16(),
                b"",
            )),
        }
    }

    /// Asks the registry to mount `digest` from repository `from` into `repo`.
    pub async fn mount_blob(&self, repo: &str, from: &str, digest: &Digest) -> Result<Mount> {
        let base = self.base().await?;
        let url = format!("{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
        let mut req = Req::new(Method::POST, url, Some(repository_scope(repo, true)));
        req = req.header(CONTENT_LENGTH, "0");
        let resp = self.send(&req).await?;
        let status = resp.status();
        let location = self.location(&base, &resp);
        match status {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(location.ok_or_else(|| {
                ClientError::Protocol("upload started without a Location".into())
            })?)),
            s => {
                let body = resp.bytes().await.unwrap_or_default();
                Err(ClientError::from_response(
                    "POST",
                    &req.url,
                    s.as_u16(),
                    &body,
                ))
            }
        }
    }

    fn location(&self, base: &str, resp: &reqwest::Response) -> Option<String> {
        let loc = resp.headers().get(LOCATION)?.to_str().ok()?;
        Some(
            if loc.starts_with("http://") || loc.starts_with("https://") {
                loc.to_owned()
            } else {
                format!("{base}{loc}")
            },
        )
    }

    /// Starts an upload session; returns its location.
    pub async fn start_upload(&self, repo: &str) -> Result<String> {
        let base = self.base().await?;
        let req = Req::new(
            Method::POST,
            format!("{base}/v2/{repo}/blobs/uploads/"),
            Some(repository_scope(repo, true)),
        )
        .header(CONTENT_LENGTH, "0");
        let resp = self.send(&req).await?;
        let status = resp.status();
        if status != StatusCode::ACCEPTED {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::from_response(
                "POST",
                &req.url,
                status.as_u16(),
                &body,
            ));
        }
        self.location(&base, &resp)
            .ok_or_else(|| ClientError::Protocol("upload started without a Location".into()))
    }

    /// Uploads `len` bytes of the file at `path` as blob `digest`, monolithically when small
    /// and in PATCH chunks otherwise. `location` is an upload session already started (by a
    /// mount that fell back), or None to start one. `progress` gets the bytes sent so far.
    pub async fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        path: &Path,
        len: u64,
        location: Option<String>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<()> {
        let base = self.base().await?;
        let mut location = match location {
            Some(l) => l,
            None => self.start_upload(repo).await?,
        };
        let scope = Some(repository_scope(repo, true));
        let chunk = self.chunk_size;
        if len <= chunk {
            let req = Req::new(Method::PUT, with_digest(&location, digest), scope)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, len.to_string())
                .body(ReqBody::File {
                    path: path.to_owned(),
                    offset: 0,
                    len,
                });
            let resp = self.send(&req).await?;
            self.read_ok(&req, resp).await?;
            progress(len);
            return Ok(());
        }
        let mut offset = 0u64;
        while offset < len {
            let n = chunk.min(len - offset);
            let req = Req::new(Method::PATCH, location.clone(), scope.clone())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, n.to_string())
                .header(CONTENT_RANGE, format!("{}-{}", offset, offset + n - 1))
                .body(ReqBody::File {
                    path: path.to_owned(),
                    offset,
                    len: n,
                });
            let resp = self.send(&req).await?;
            let status = resp.status();
            let next = self.location(&base, &resp);
            if status != StatusCode::ACCEPTED && !status.is_success() {
                let body = resp.bytes().await.unwrap_or_default();
                return Err(ClientError::from_response(
                    "PATCH",
                    &req.url,
                    status.as_u16(),
                    &body,
                ));
            }
            if let Some(next) = next {
                location = next;
            }
            offset += n;
            progress(offset);
        }
        self.finish_upload(repo, &location, digest).await
    }

    /// A GET to a foreign layer's URL: no registry credentials go there.
    async fn send_foreign(&self, req: &Req) -> Result<reqwest::Response> {
        let mut rb = self.client().get(&req.url);
        for (k, v) in &req.headers {
            rb = rb.header(k.clone(), v.clone());
        }
        rb.send()
            .await
            .map_err(|e| network_error("GET", &req.url, &e))
    }
}

/// An upload session's location with the `digest=` that completes it.
fn with_digest(location: &str, digest: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// The sending half of a streamed upload: bytes produced on any plain thread (a compressor)
/// go straight into the request body.
pub struct StreamSender {
    tx: tokio::sync::mpsc::Sender<Bytes>,
}

impl StreamSender {
    /// Queues the next bytes; false when the upload has stopped reading (it failed).
    /// Blocks while the queue is full, so a compressor runs no further ahead than the
    /// network takes (memory stays bounded). Never call it from async code.
    pub fn send(&self, bytes: Vec<u8>) -> bool {
        self.tx.blocking_send(Bytes::from(bytes)).is_ok()
    }
}

/// The receiving half: becomes the body of one PATCH.
pub struct StreamBody {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
}

/// A channel for [`Registry::upload_stream`]; `depth` chunks may wait in it.
pub fn stream_channel(depth: usize) -> (StreamSender, StreamBody) {
    let (tx, rx) = tokio::sync::mpsc::channel(depth.max(1));
    (StreamSender { tx }, StreamBody { rx })
}

impl Registry {
    /// Sends everything `body` yields as one streamed PATCH to the upload session at
    /// `location` (the spec's streamed upload, as docker pushes layers it compresses on the
    /// fly); returns the session's next location. Not retried: the bytes are gone once sent,
    /// so the caller falls back to an upload from the stored blob.
    pub async fn upload_stream(
        &self,
        repo: &str,
        location: &str,
        body: StreamBody,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<String> {
        let base = self.base().await?;
        let scope = repository_scope(repo, true);
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = sent.clone();
        let stream = futures_util::stream::unfold(body.rx, move |mut rx| {
            let counter = counter.clone();
            async move {
                let b = rx.recv().await?;
                counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
                Some((Ok::<Bytes, std::io::Error>(b), rx))
            }
        });
        let mut rb = self
            .client()
            .patch(location)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream));
        if let Some(auth) = self.auth_header(Some(&scope)) {
            rb = rb.header(reqwest::header::AUTHORIZATION, auth);
        }
        let send = rb.send();
        tokio::pin!(send);
        // Report progress while the body streams.
        let resp = loop {
            tokio::select! {
                r = &mut send => break r,
                _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                    progress(sent.load(std::sync::atomic::Ordering::Relaxed));
                }
            }
        };
        let resp = resp.map_err(|e| network_error("PATCH", location, &e))?;
        progress(sent.load(std::sync::atomic::Ordering::Relaxed));
        let status = resp.status();
        let next = self.location(&base, &resp);
        if status != StatusCode::ACCEPTED && !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(ClientError::from_response(
                "PATCH",
                location,
                status.as_u16(),
                &body,
            ));
        }
        Ok(next.unwrap_or_else(|| location.to_owned()))
    }

    /// Closes an upload session with the blob's digest (`PUT location?digest=`).
    pub async fn finish_upload(&self, repo: &str, location: &str, digest: &Digest) -> Result<()> {
        let req = Req::new(
            Method::PUT,
            with_digest(location, digest),
            Some(repository_scope(repo, true)),
        )
        .header(CONTENT_LENGTH, "0");
        let resp = self.send(&req).await?;
        self.read_ok(&req, resp).await?;
        Ok(())
    }
}
