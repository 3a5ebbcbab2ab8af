//! The consumer's resolved view on loopback, as AWS's own extensions serve
//! theirs (AppConfig on 2772, Parameters and Secrets on 2773; Beacon on
//! [`crate::DEFAULT_HTTP_PORT`], `BEACON_HTTP_PORT`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /services` | the whole view: the same document as the services file |
//! | `GET /services/{name}` | one needed service: `{"service", "revision", "entries"}`, each entry resolved (version, endpoints) or unresolved (reason); 404 for a service the function did not declare |
//!
//! Every answer carries the view's revision in `X-Beacon-Revision`, so a
//! function can ask cheaply whether anything moved. `X-Beacon-Refresh: now`
//! asks for a registry check first, bounded by `BEACON_REFRESH_TIMEOUT_MS`
//! (default 300): after it the last good view is served whatever the
//! registry did. Otherwise a request never touches the registry: freshness
//! follows the INVOKE rule (at most one check per interval).
//!
//! Loopback only: bound to 127.0.0.1 inside the function's sandbox, which
//! nothing outside can reach; GET only; it serves this consumer's view and
//! nothing else (no credentials, no other consumer).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use beacon_domain::services_file::ServicesFile;
use futures::future::BoxFuture;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::SharedView;

/// Longest request URI accepted.
pub const MAX_URI: usize = 1024;
/// The header carrying the view's revision.
pub const REVISION_HEADER: &str = "x-beacon-revision";
/// The request header asking for a registry check first.
pub const REFRESH_HEADER: &str = "x-beacon-refresh";

/// Runs a registry check now (the watcher's `check_now`).
pub type Refresh = Arc<dyn Fn() -> BoxFuture<'static, ()> + Send + Sync>;

/// What the endpoint serves from.
#[derive(Clone)]
pub struct Endpoint {
    /// The last good view.
    pub view: SharedView,
    /// A check on demand.
    pub refresh: Refresh,
    /// The longest a refresh may hold a request.
    pub refresh_timeout: Duration,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("refresh_timeout", &self.refresh_timeout).finish_non_exhaustive()
    }
}

fn respond(status: StatusCode, revision: Option<u64>, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    h.insert("cache-control", hyper::header::HeaderValue::from_static("no-store"));
    if let Some(rev) = revision
        && let Ok(v) = hyper::header::HeaderValue::from_str(&rev.to_string())
    {
        h.insert(REVISION_HEADER, v);
    }
    r
}

fn error(status: StatusCode, message: String) -> Response<Full<Bytes>> {
    respond(status, None, json!({ "error": message }).to_string())
}

impl Endpoint {
    /// Answers one request (the routing, without a socket: unit-testable).
    pub async fn answer(&self, method: &str, uri: &str, refresh: bool) -> Response<Full<Bytes>> {
        if uri.len() > MAX_URI {
            return error(StatusCode::URI_TOO_LONG, format!("the URI is {} bytes; at most {MAX_URI}", uri.len()));
        }
        if method != "GET" {
            return error(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed: the view is read-only"));
        }
        let path = uri.split('?').next().unwrap_or_default();
        let service = match path.trim_end_matches('/') {
            "/services" => None,
            p => match p.strip_prefix("/services/") {
                Some(name) if !name.is_empty() && !name.contains('/') => Some(name),
                _ => {
                    return error(
                        StatusCode::NOT_FOUND,
                        format!("no such path: {}; try /services", beacon_domain::registration::shown(path)),
                    );
                }
            },
        };
        if refresh {
            // Bounded: a slow or unreachable registry never holds the caller
            // longer than this; the last good view is served after it.
            let _ = tokio::time::timeout(self.refresh_timeout, (self.refresh)()).await;
        }
        let view: Option<Arc<ServicesFile>> = self.view.read().ok().and_then(|v| v.clone());
        let Some(view) = view else {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "no resolved view yet: the registry has not answered since init; the next INVOKE checks again".into(),
            );
        };
        match service {
            None => respond(StatusCode::OK, Some(view.revision), serde_json::to_string(view.as_ref()).unwrap_or_default()),
            Some(name) => match view.services.get(name) {
                Some(entries) => respond(
                    StatusCode::OK,
                    Some(view.revision),
                    json!({ "service": name, "revision": view.revision, "entries": entries }).to_string(),
                ),
                None => respond(
                    StatusCode::NOT_FOUND,
                    Some(view.revision),
                    json!({
                        "error": format!("`{}` is not among this function's NEEDED_SERVICES", beacon_domain::registration::shown(name)),
                        "needed": view.services.keys().collect::<Vec<_>>(),
                    })
                    .to_string(),
                ),
            },
        }
    }

    /// Serves on `listener` (bound to 127.0.0.1) until `stop` turns true;
    /// then the listener is closed.
    pub async fn serve(self, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let me = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let me = me.clone();
                    async move {
                        let refresh = req
                            .headers()
                            .get(REFRESH_HEADER)
                            .and_then(|v| v.to_str().ok())
                            .is_some_and(|v| v.eq_ignore_ascii_case("now"));
                        Ok::<_, Infallible>(me.answer(req.method().as_str(), &req.uri().to_string(), refresh).await)
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    }
}
