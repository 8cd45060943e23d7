//! One request: authenticate, refuse writes when read-only, route, run the handler, add the
//! headers every answer carries and log one line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};

use super::body::Body;
use super::errors::{ApiError, ErrorCode};
use super::routes::{self, Route};
use super::{blobs, manifests, tags, uploads, State};

pub type Reply = Result<Response<Body>, ApiError>;

pub async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Response<Body> {
    let start = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    let head = method == Method::HEAD;
    let mut resp = match answer(&state, req).await {
        Ok(r) => r,
        Err(e) => {
            let unauthorized = e.code == ErrorCode::Unauthorized;
            let mut r = e.into_response(head);
            if unauthorized {
                r.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"skiff\""),
                );
            }
            r
        }
    };
    resp.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    let len = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    log::debug!(
        "{remote} \"{method} {uri}\" {} {len} {:.1}ms",
        resp.status().as_u16(),
        start.elapsed().as_secs_f64() * 1000.0
    );
    resp
}

async fn answer(state: &Arc<State>, req: Request<Incoming>) -> Reply {
    let Some(route) = routes::parse(req.uri().path()) else {
        return Err(ApiError::detail(ErrorCode::Unsupported, "no such endpoint")
            .with_status(StatusCode::NOT_FOUND));
    };
    if let Some(auth) = &state.auth {
        if !auth.allows(req.headers()).await {
            return Err(ApiError::new(ErrorCode::Unauthorized));
        }
    }
    let method = req.method().clone();
    let writes = !matches!(method, Method::GET | Method::HEAD);
    if state.read_only && writes {
        return Err(ApiError::detail(
            ErrorCode::Unsupported,
            "the registry is read-only",
        ));
    }
    let query = routes::query_pairs(req.uri().query());
    let name = match &route {
        Route::Blob { name, .. }
        | Route::Uploads { name }
        | Route::Upload { name, .. }
        | Route::Manifest { name, .. }
        | Route::Tags { name }
        | Route::Referrers { name, .. } => Some(name.clone()),
        Route::Base | Route::Catalog | Route::Search => None,
    };
    if let Some(name) = &name {
        if !routes::valid_name(name) {
            return Err(ApiError::detail(ErrorCode::NameInvalid, name.clone()));
        }
    }
    let head = method == Method::HEAD;
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(json_response(b"{}\n".to_vec(), head)),
        (Route::Catalog, Method::GET) => tags::catalog(state, &query).await,
        (Route::Search, Method::GET) => tags::search(state, &query).await,
        (Route::Tags { name }, Method::GET) => tags::list(state, &name, &query).await,
        (Route::Referrers { name, digest }, Method::GET) => {
            tags::referrers(state, &name, &digest, &query).await
        }
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            blobs::get(state, &name, &digest, req.headers(), head).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => {
            blobs::delete(state, &name, &digest).await
        }
        (Route::Uploads { name }, Method::POST) => uploads::post(state, &name, &query, req).await,
        (Route::Upload { name, id }, Method::PATCH) => uploads::patch(state, &name, &id, req).await,
        (Route::Upload { name, id }, Method::PUT) => {
            uploads::put(state, &name, &id, &query, req).await
        }
        (Route::Upload { name, id }, Method::GET) => uploads::status(state, &name, &id).await,
        (Route::Upload { name, id }, Method::DELETE) => uploads::cancel(state, &name, &id).await,
        (Route::Manifest { name, reference }, Method::GET | Method::HEAD) => {
            manifests::get(state, &name, &reference, req.headers(), head).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            manifests::put(state, &name, &reference, req).await
        }
        (Route::Manifest { name, reference }, Method::DELETE) => {
            manifests::delete(state, &name, &reference).await
        }
        (_, m) => Err(ApiError::detail(
            ErrorCode::Unsupported,
            format!("method {m} not allowed here"),
        )),
    }
}

/// A 200 JSON answer with its length.
pub fn json_response(bytes: Vec<u8>, head: bool) -> Response<Body> {
    let len = bytes.len();
    let mut r = Response::new(if head {
        super::body::empty()
    } else {
        super::body::full(bytes)
    });
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    r
}

/// An empty answer with a status.
pub fn status_only(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(super::body::empty());
    *r.status_mut() = status;
    if status != StatusCode::NO_CONTENT {
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

/// Sets a header from text that may not be a valid header value (then it is left out; every
/// value we build is ASCII, so this does not happen in practice).
pub fn set(resp: &mut Response<Body>, name: &'static str, value: impl AsRef<str>) {
    if let Ok(v) = HeaderValue::from_str(value.as_ref()) {
        resp.headers_mut().insert(name, v);
    }
}

/// Runs storage work on the blocking pool; a panic there becomes a 500.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}
