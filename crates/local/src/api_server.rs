//! `beacon dev`'s stand-in for API Gateway: the catalog API's own
//! [`beacon_catalog_api::handle`], served on a loopback listener, with SigV4 required on writes (as the
//! template's IAM auth does in AWS) and checked against the local
//! credentials.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use beacon::ports::Catalog;
use beacon_catalog_api::{ApiError, ApiRequest, MAX_BODY, handle};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::sigv4::{SignedRequest, verify};

/// The one key pair the server accepts.
#[derive(Debug, Clone)]
pub struct LocalCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

fn json_response(status: u16, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

async fn serve_one<C: Catalog>(
    registry: Arc<C>,
    credentials: Arc<LocalCredentials>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => {
            let (status, json) = ApiError::TooLarge.response();
            return Ok(json_response(status, &json));
        }
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str().to_owned(), v.to_owned())))
        .collect();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    if parts.method != hyper::Method::GET {
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: &path,
            query: &raw_query,
            headers: &headers,
            body: &body,
        };
        let secret = |key: &str| (key == credentials.access_key).then(|| credentials.secret_key.clone());
        if let Err(e) = verify(&signed, secret, beacon::clock::now_seconds()) {
            tracing::warn!(method = %parts.method, %path, reason = %e, "refused an unsigned or wrongly signed write");
            let (status, json) = ApiError::Forbidden(e.to_string()).response();
            return Ok(json_response(status, &json));
        }
    }
    let query: BTreeMap<String, String> = url::form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    let api = ApiRequest {
        method: parts.method.as_str().to_owned(),
        path,
        query,
        if_none_match: parts.headers.get("if-none-match").and_then(|v| v.to_str().ok()).map(str::to_owned),
        body,
    };
    let (status, json) = handle(registry.as_ref(), &api, beacon::clock::now_seconds()).await;
    Ok(json_response(status, &json))
}

/// Serves the catalog on `listener` until `shutdown` turns true.
pub async fn serve<C: Catalog + 'static>(
    listener: TcpListener,
    registry: C,
    credentials: LocalCredentials,
    mut shutdown: watch::Receiver<bool>,
) {
    let registry = Arc::new(registry);
    let credentials = Arc::new(credentials);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.changed() => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (registry, credentials) = (registry.clone(), credentials.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| serve_one(registry.clone(), credentials.clone(), req));
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(error = %e, "catalog connection ended");
            }
        });
    }
}
