//! The registry client: auth, manifests, blobs, pull and push.
//!
//! Where to start reading:
//! - [`Session`]: the blocking facade the `skiff` operations use (one tokio runtime, one
//!   registry host); each method runs one async call to completion, and may be called from
//!   several threads at once for concurrent transfers.
//! - [`transport`]: the host's base URL (HTTPS, plain HTTP for loopback and insecure
//!   registries), retries with backoff, and the 401 challenge / token round.
//! - [`auth`]: `WWW-Authenticate` parsing and credentials; [`credentials`]: docker's
//!   `config.json` and `docker-credential-*` helpers; [`tls`]: roots and `certs.d`.
//! - [`manifest`], [`blob`], [`search`]: the distribution spec's endpoints.
//! - [`error`]: errors worded as docker prints registry errors.

pub mod auth;
pub mod blob;
pub mod credentials;
pub mod error;
pub mod manifest;
pub mod search;
pub mod tls;
pub mod transport;

use std::future::Future;
use std::path::Path;

use bytes::Bytes;
use skiff_image::content::ContentStore;
use skiff_image::spec::Descriptor;
use skiff_image::Digest;

pub use auth::Credentials;
pub use blob::{stream_channel, BlobEvent, Mount, StreamBody, StreamSender};
pub use error::{ClientError, Result};
pub use manifest::{parse_platform, select_platform, Fetched};
pub use search::SearchResult;
pub use transport::{ClientOptions, Registry};

/// A registry host with a runtime to drive it from synchronous code.
pub struct Session {
    rt: tokio::runtime::Runtime,
    registry: Registry,
}

impl Session {
    /// Prepares a session with `domain` (`docker.io`, `localhost:5000`); nothing is sent yet.
    pub fn new(domain: &str, creds: Option<Credentials>, options: &ClientOptions) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("skiff-registry")
            .enable_all()
            .build()
            .map_err(|e| ClientError::Io {
                context: "starting the registry client runtime".into(),
                source: e,
            })?;
        // reqwest's client must be built inside the runtime that drives it.
        let registry = {
            let _guard = rt.enter();
            Registry::new(domain, creds, options)?
        };
        Ok(Session { rt, registry })
    }

    fn run<T>(&self, f: impl Future<Output = T>) -> T {
        self.rt.block_on(f)
    }

    /// The base URL (`https://host` or `http://host`), pinging the registry on first use.
    pub fn base(&self) -> Result<String> {
        self.run(self.registry.base())
    }

    pub fn login(&self) -> Result<()> {
        self.run(self.registry.login())
    }

    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Fetched> {
        self.run(self.registry.get_manifest(repo, reference))
    }

    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest> {
        self.run(
            self.registry
                .put_manifest(repo, reference, bytes, media_type),
        )
    }

    pub fn tags(&self, repo: &str) -> Result<Vec<String>> {
        self.run(self.registry.tags(repo))
    }

    pub fn fetch_blob(
        &self,
        repo: &str,
        desc: &Descriptor,
        store: &ContentStore,
        on: &mut (dyn FnMut(BlobEvent<'_>) + Send),
    ) -> Result<()> {
        self.run(self.registry.fetch_blob(repo, desc, store, on))
    }

    pub fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<Option<u64>> {
        self.run(self.registry.blob_exists(repo, digest))
    }

    pub fn mount_blob(&self, repo: &str, from: &str, digest: &Digest) -> Result<Mount> {
        self.run(self.registry.mount_blob(repo, from, digest))
    }

    pub fn upload_blob(
        &self,
        repo: &str,
        digest: &Digest,
        path: &Path,
        len: u64,
        location: Option<String>,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<()> {
        self.run(
            self.registry
                .upload_blob(repo, digest, path, len, location, progress),
        )
    }

    /// Starts an upload session; returns its location.
    pub fn start_upload(&self, repo: &str) -> Result<String> {
        self.run(self.registry.start_upload(repo))
    }

    /// Streams `body` into the upload session at `location` (see
    /// [`Registry::upload_stream`]); returns the next location.
    pub fn upload_stream(
        &self,
        repo: &str,
        location: &str,
        body: StreamBody,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<String> {
        self.run(self.registry.upload_stream(repo, location, body, progress))
    }

    /// Completes an upload session with the blob's digest.
    pub fn finish_upload(&self, repo: &str, location: &str, digest: &Digest) -> Result<()> {
        self.run(self.registry.finish_upload(repo, location, digest))
    }

    pub fn search(&self, term: &str, limit: usize) -> Result<Vec<SearchResult>> {
        self.run(self.registry.search(term, limit))
    }
}
