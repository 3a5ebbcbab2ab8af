//! `beacon dev`'s stand-in for API Gateway: the catalog API's own
//! [`beacon_catalog_api::handle`], served on a loopback listener, with
//! SigV4 required on writes (as the template's IAM auth does in AWS),
//! checked against the local principals, and each principal held to the
//! services it may write (as an `execute-api:Invoke` grant scoped to
//! `/catalog/services/{name}/*` does).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

pub use beacon_catalog_api::ApiConfig;
use beacon_catalog_api::{ApiError, ApiRequest, MAX_BODY, handle};
use beacon_domain::ports::Catalog;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::sigv4::{SignedRequest, verify};

/// One key pair the server accepts, and what it may write: the stand-in
/// for an IAM principal and its `execute-api:Invoke` grant.
#[derive(Debug, Clone)]
pub struct LocalPrincipal {
    /// Its name in refusals and logs.
    pub name: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// `Some(service)`: it may write only that service, only through
    /// `POST /catalog/services/{service}/...` (as `infra/policies/
    /// catalog-writer.json` grants in AWS); `None`: any write route.
    pub service: Option<String>,
}

/// Every principal the server accepts.
#[derive(Debug, Clone)]
pub struct LocalCredentials {
    /// The principals.
    pub principals: Vec<LocalPrincipal>,
}

impl LocalCredentials {
    /// The local stack's two principals: the account-wide one (the
    /// `AWS_ACCESS_KEY_ID` of `.beacon/dev.env`, with `secret`) and one that
    /// may write only `scoped_service` (`BEACON_SCOPED_*`).
    pub fn local(secret: &str, scoped_service: &str) -> Self {
        use crate::setup::{LOCAL_ACCESS_KEY, LOCAL_SCOPED_ACCESS_KEY, LOCAL_SCOPED_SECRET_KEY};
        Self {
            principals: vec![
                LocalPrincipal {
                    name: "local-admin".into(),
                    access_key: LOCAL_ACCESS_KEY.into(),
                    secret_key: secret.into(),
                    service: None,
                },
                LocalPrincipal {
                    name: format!("local-{scoped_service}-writer"),
                    access_key: LOCAL_SCOPED_ACCESS_KEY.into(),
                    secret_key: LOCAL_SCOPED_SECRET_KEY.into(),
                    service: Some(scoped_service.into()),
                },
            ],
        }
    }
}

impl LocalPrincipal {
    /// Whether it may send this write; `Err` names the service it tried to
    /// write and itself. Mirrors API Gateway's IAM check on the path (a
    /// scoped principal's grant covers only its own service's routes).
    fn may_write(&self, path: &str, body: &[u8]) -> Result<(), ApiError> {
        let Some(own) = &self.service else { return Ok(()) };
        let (_, parts) = beacon_catalog_api::catalog_path(path);
        let target = match parts.as_slice() {
            ["services", name, ..] => (*name).to_owned(),
            _ => serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|b| {
                    b.get("service_name").or_else(|| b.get("service")).and_then(|v| v.as_str()).map(str::to_owned)
                })
                .unwrap_or_else(|| "(unnamed)".into()),
        };
        let scoped_route = matches!(parts.as_slice(), ["services", name, _] if name == own);
        if scoped_route {
            return Ok(());
        }
        Err(ApiError::Forbidden(format!(
            "principal {} ({}) may write only service `{own}`, through /catalog/services/{own}/...; refused a write of service `{}`",
            self.name,
            self.access_key,
            beacon_domain::registration::shown(&target)
        )))
    }
}

fn json_response(status: u16, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    if let Some(allow) = beacon_catalog_api::allow_header(status, body)
        && let Ok(value) = hyper::header::HeaderValue::from_str(allow)
    {
        response.headers_mut().insert("allow", value);
    }
    response
}

async fn serve_one<C: Catalog>(
    registry: Arc<C>,
    credentials: Arc<LocalCredentials>,
    config: ApiConfig,
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
    // Only the write routes need a signature, as in the template: any other
    // method or route reaches the router, which answers 405 with `Allow`
    // (or 404). (API Gateway answers a method the API does not define with
    // its own 403 before any Lambda runs.)
    if beacon_catalog_api::is_write(parts.method.as_str(), &path) {
        let signed = SignedRequest {
            method: parts.method.as_str(),
            path: &path,
            query: &raw_query,
            headers: &headers,
            body: &body,
        };
        let principal = |key: &str| credentials.principals.iter().find(|p| p.access_key == key);
        let secret = |key: &str| principal(key).map(|p| p.secret_key.clone());
        let signer = match verify(&signed, secret, beacon_domain::clock::now_seconds()) {
            Ok(key) => principal(&key).cloned(),
            Err(e) => {
                tracing::warn!(method = %parts.method, %path, reason = %e, "refused an unsigned or wrongly signed write");
                let (status, json) = ApiError::Forbidden(e.to_string()).response();
                return Ok(json_response(status, &json));
            }
        };
        if let Some(Err(e)) = signer.map(|p| p.may_write(&path, &body)) {
            tracing::warn!(method = %parts.method, %path, reason = %e, "refused a write outside the principal's service");
            let (status, json) = e.response();
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
    let (status, json) = handle(registry.as_ref(), config, &api, beacon_domain::clock::now_seconds()).await;
    Ok(json_response(status, &json))
}

/// Serves the catalog on `listener` until `shutdown` turns true.
pub async fn serve<C: Catalog + 'static>(
    listener: TcpListener,
    registry: C,
    credentials: LocalCredentials,
    config: ApiConfig,
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
            let service =
                hyper::service::service_fn(move |req| serve_one(registry.clone(), credentials.clone(), config, req));
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(error = %e, "catalog connection ended");
            }
        });
    }
}
