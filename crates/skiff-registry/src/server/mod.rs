//! The registry server behind `skiff registry serve` and `skiff registry gc`: the OCI
//! distribution spec v1.1 (and Docker Registry v2) over hyper, with streaming bodies end to end.
//!
//! Where to start reading:
//! - [`Server`]: bind, accept (plain TCP or TLS), graceful shutdown.
//! - `service`: one request -> auth, read-only check, route, handler, log line.
//! - `routes`: path -> typed `routes::Route` (pure, unit-tested).
//! - `blobs`, `uploads`, `manifests`, `tags`: the handlers, one module per resource.
//! - `storage`: blobs in skiff-image's content store, repositories/tags/manifests in SQLite.
//! - [`gc()`]: mark every blob a manifest references, sweep the rest.

mod auth;
mod blobs;
mod body;
mod errors;
mod gc;
mod manifests;
mod routes;
mod service;
mod storage;
mod tags;
mod tls;
mod uploads;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use errors::{ApiError, ErrorCode, ServerError};
pub use gc::{gc, GcReport};

/// How `skiff registry serve` was asked to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// `host:port` to listen on (port 0 picks a free one).
    pub addr: String,
    /// The registry's state directory.
    pub root: PathBuf,
    /// An htpasswd file of bcrypt entries: when set, every request needs Basic auth.
    pub htpasswd: Option<PathBuf>,
    /// PEM certificate chain and private key: when set, the server speaks HTTPS only.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse every write with 405 UNSUPPORTED.
    pub read_only: bool,
}

/// What every request handler shares.
pub(crate) struct State {
    storage: Arc<storage::Storage>,
    uploads: uploads::Sessions,
    auth: Option<auth::Htpasswd>,
    read_only: bool,
}

/// A bound, not yet running, registry server.
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<State>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// How long in-flight requests may take to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Server {
    /// Opens the state under `config.root`, reads the htpasswd and TLS files, and binds.
    pub async fn bind(config: &Config) -> Result<Server, ServerError> {
        let storage = Arc::new(storage::Storage::open(&config.root)?);
        let auth = match &config.htpasswd {
            Some(p) => Some(auth::Htpasswd::load(p)?),
            None => None,
        };
        let tls = match &config.tls {
            Some((cert, key)) => Some(tls::acceptor(cert, key)?),
            None => None,
        };
        let listener =
            TcpListener::bind(&config.addr)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.addr.clone(),
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
        let state = Arc::new(State {
            uploads: uploads::Sessions::new(storage.clone()),
            storage,
            auth,
            read_only: config.read_only,
        });
        Ok(Server {
            listener,
            local_addr,
            state,
            tls,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (for a while).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let graceful = GracefulShutdown::new();
        let janitor = tokio::spawn(uploads::expire_idle(self.state.clone()));
        tokio::pin!(shutdown);
        loop {
            let (stream, remote) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of descriptors and the like: wait instead of spinning.
                        log::warn!("registry: accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = self.state.clone();
            let tls = self.tls.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(service::handle(state, req, remote).await)
                    }
                });
                let mut http = http1::Builder::new();
                http.timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(60));
                let result = match tls {
                    None => {
                        watcher
                            .watch(http.serve_connection(TokioIo::new(stream), svc))
                            .await
                    }
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls_stream) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(tls_stream), svc))
                                .await
                        }
                        Err(e) => {
                            log::debug!("registry: TLS handshake with {remote}: {e}");
                            return;
                        }
                    },
                };
                if let Err(e) = result {
                    log::debug!("registry: connection from {remote}: {e}");
                }
            });
        }
        janitor.abort();
        drop(self.listener);
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
            .await
            .is_err()
        {
            log::warn!("registry: requests still running after {SHUTDOWN_GRACE:?}; stopping");
        }
    }
}

/// Runs the server in the foreground until SIGINT or SIGTERM, calling `on_listen` with the
/// bound address once it accepts connections.
pub fn serve_blocking(
    config: &Config,
    on_listen: impl FnOnce(SocketAddr),
) -> Result<(), ServerError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("skiff-registry")
        .build()
        .map_err(ServerError::Runtime)?;
    rt.block_on(async {
        let server = Server::bind(config).await?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(ServerError::Runtime)?;
        on_listen(server.local_addr());
        server
            .run(async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            })
            .await;
        Ok(())
    })
}
