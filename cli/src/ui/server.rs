//! The page server: GET only, loopback only, assets compiled in.
//!
//! | path | what |
//! |---|---|
//! | `/` , `/app.js`, `/style.css` | the page |
//! | `/api/snapshot` | the registry, read once ([`super::snapshot`]) |
//! | `/events` | events as they are published, as server-sent events |
//!
//! Anything else is a clear 4xx: 404 for an unknown path, 405 for a method
//! other than GET, 414 for a URI over [`MAX_URI`], 400 for query parameters
//! on a route that takes none, 421 for a Host that is not this loopback
//! address (a DNS-rebinding page cannot read the registry).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use beacon_domain::ports::Catalog;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

/// Longest request URI accepted.
pub const MAX_URI: usize = 2048;
/// How often an idle event stream carries a comment, so proxies and the
/// browser keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

const INDEX: &str = include_str!("assets/index.html");
const APP: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

type Body = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static(content_type));
    h.insert("cache-control", hyper::header::HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
    h.insert("referrer-policy", hyper::header::HeaderValue::from_static("no-referrer"));
    h.insert(
        "content-security-policy",
        hyper::header::HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    );
    r
}

fn error(status: StatusCode, message: String) -> Response<Body> {
    full(status, "application/json", json!({ "error": message }).to_string())
}

/// Serves until `stop` turns true.
pub async fn serve<C: Catalog + 'static>(
    listener: TcpListener,
    catalog: C,
    events: broadcast::Sender<String>,
    stop: watch::Receiver<bool>,
) {
    let catalog = Arc::new(catalog);
    let Ok(addr) = listener.local_addr() else { return };
    let hosts = Arc::new([format!("127.0.0.1:{}", addr.port()), format!("localhost:{}", addr.port())]);
    let mut stopping = stop.clone();
    loop {
        let accepted = tokio::select! {
            _ = stopping.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (catalog, events, stop, hosts) = (catalog.clone(), events.clone(), stop.clone(), hosts.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (catalog, events, stop, hosts) = (catalog.clone(), events.clone(), stop.clone(), hosts.clone());
                async move { Ok::<_, Infallible>(route(req, catalog.as_ref(), &events, stop, hosts.as_ref()).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
        });
    }
}

async fn route(
    req: Request<Incoming>,
    catalog: &impl Catalog,
    events: &broadcast::Sender<String>,
    stop: watch::Receiver<bool>,
    hosts: &[String; 2],
) -> Response<Body> {
    let uri = req.uri().to_string();
    if uri.len() > MAX_URI {
        return error(
            StatusCode::URI_TOO_LONG,
            format!("the URI is {} bytes; at most {MAX_URI} are accepted", uri.len()),
        );
    }
    let host = req.headers().get("host").and_then(|h| h.to_str().ok()).unwrap_or_default();
    if !hosts.iter().any(|h| h == host) {
        return error(StatusCode::MISDIRECTED_REQUEST, "this page answers only on its loopback address".into());
    }
    if req.method() != hyper::Method::GET {
        return error(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not allowed: the page is read-only", req.method()),
        );
    }
    let path = req.uri().path();
    if req.uri().query().is_some_and(|q| !q.is_empty()) {
        return error(StatusCode::BAD_REQUEST, format!("{path} takes no query parameters"));
    }
    match path {
        "/" | "/index.html" => full(StatusCode::OK, "text/html; charset=utf-8", INDEX),
        "/app.js" => full(StatusCode::OK, "text/javascript; charset=utf-8", APP),
        "/style.css" => full(StatusCode::OK, "text/css; charset=utf-8", STYLE),
        "/api/snapshot" => match super::snapshot::read(catalog, beacon_domain::clock::now_seconds()).await {
            Ok(s) => full(StatusCode::OK, "application/json", s.to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "snapshot failed");
                let status = if e.is_retryable() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::BAD_GATEWAY };
                error(status, "the registry could not be read; the page retries".into())
            }
        },
        "/events" => event_stream(events.subscribe(), stop),
        other => error(StatusCode::NOT_FOUND, format!("no such page: {}", beacon_domain::registration::shown(other))),
    }
}

/// One page's events: each as `id: <event_id>` / `data: <json>`, a
/// `resync` when the page fell too far behind (it re-reads the snapshot),
/// and a keep-alive comment when idle.
fn event_stream(rx: broadcast::Receiver<String>, stop: watch::Receiver<bool>) -> Response<Body> {
    let opening = futures::stream::once(async { Ok(Frame::data(Bytes::from("retry: 1000\n: connected\n\n"))) });
    let events = futures::stream::unfold((rx, stop), |(mut rx, mut stop)| async move {
        let chunk = tokio::select! {
            _ = stop.wait_for(|s| *s) => return None,
            r = tokio::time::timeout(KEEPALIVE, rx.recv()) => match r {
                Err(_) => ": keep-alive\n\n".to_owned(),
                Ok(Ok(event)) => {
                    let id = serde_json::from_str::<serde_json::Value>(&event)
                        .ok()
                        .and_then(|v| v["event_id"].as_str().map(str::to_owned))
                        .unwrap_or_default();
                    format!("id: {}\nevent: change\ndata: {event}\n\n", id.replace(['\n', '\r'], ""))
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => "event: resync\ndata: {}\n\n".to_owned(),
                Ok(Err(broadcast::error::RecvError::Closed)) => return None,
            },
        };
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(chunk))), (rx, stop)))
    });
    let body = StreamBody::new(opening.chain(events));
    let mut r = Response::new(BodyExt::boxed(body));
    let h = r.headers_mut();
    h.insert("content-type", hyper::header::HeaderValue::from_static("text/event-stream"));
    h.insert("cache-control", hyper::header::HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
    r
}
