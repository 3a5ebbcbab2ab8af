//! The catalog HTTP API: the seed's routes, per-service write routes,
//! resolution and listing.
//!
//! | route | what |
//! |---|---|
//! | `POST /catalog/services/{name}/register` | register (or re-register) an instance of `{name}`; `If-None-Match: *` makes it create-only (409 if it exists). IAM can scope `execute-api:Invoke` to one service |
//! | `POST /catalog/services/{name}/deregister` | deregister an instance of `{name}` (404 if it is not registered) |
//! | `POST /catalog/register` | the seed's route: the body names the service, so IAM cannot scope it; can be turned off ([`ApiConfig::unscoped_writes`]) |
//! | `POST /catalog/deregister` | the seed's route, likewise |
//! | `GET /catalog/{name}/{version}` | the seed's lookup: `endpoint_url`, `ttl`, `status`; 404 `Service Not Found` |
//! | `GET /catalog/{name}?requirement=^1` | resolution, with the reason when nothing resolves (404) |
//! | `GET /catalog?limit=50&next=TOKEN` | registrations, paginated |
//!
//! The routing is here, the work in [`writes`] and [`reads`], independent
//! of the carrier and of the store: the Lambda (`main.rs`, behind API
//! Gateway with IAM auth on writes) and `beacon dev`'s loopback server
//! (`beacon_local::api_server`, which checks SigV4 and the per-service rule
//! itself) both call [`handle`] over a [`Catalog`] port. Errors become
//! responses in one place, [`ApiError::response`].

use std::collections::BTreeMap;

use beacon_domain::ports::Catalog;
use serde_json::Value;

pub mod definition;
mod error;
pub mod openapi;
pub mod reads;
pub mod routes;
pub mod writes;

pub use error::{ApiError, FieldError};

/// Every IAM action the API's code needs: PutItem (register), DeleteItem
/// (deregister), Query (lookup, resolve, and the listing index), BatchGetItem
/// (a listing page's registrations). The template must grant exactly these
/// (a test checks).
pub const IAM_ACTIONS: &[&str] =
    &["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:BatchGetItem"];

/// Largest request body accepted (a registration is far smaller).
pub const MAX_BODY: usize = 64 * 1024;
/// Largest page of `GET /catalog`.
pub const MAX_PAGE: u32 = 100;

/// A request, reduced to what the API reads.
#[derive(Debug, Clone, Default)]
pub struct ApiRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, possibly with a stage prefix (`/dev/catalog/...`).
    pub path: String,
    /// Decoded query parameters.
    pub query: BTreeMap<String, String>,
    /// `If-None-Match`, for create-only registration.
    pub if_none_match: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

/// Reads what the API needs from a `lambda_http` request (API Gateway REST
/// or HTTP API event).
pub fn from_lambda(request: &lambda_http::Request) -> ApiRequest {
    use lambda_http::RequestExt as _;
    ApiRequest {
        method: request.method().as_str().to_owned(),
        path: request.raw_http_path().to_owned(),
        query: request.query_string_parameters().iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        if_none_match: request.headers().get("if-none-match").and_then(|v| v.to_str().ok()).map(str::to_owned),
        body: request.body().to_vec(),
    }
}

/// What a deployment turns on or off, read once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiConfig {
    /// Whether the seed's body routes (`POST /catalog/register`,
    /// `/catalog/deregister`) accept writes. They name the service in the
    /// body, where IAM cannot see it; turn them off and every write goes
    /// through a route IAM scopes per service.
    pub unscoped_writes: bool,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self { unscoped_writes: true }
    }
}

impl ApiConfig {
    /// Reads `BEACON_UNSCOPED_WRITES` (`on`, the default, or `off`).
    pub fn from_env() -> Result<Self, String> {
        match std::env::var("BEACON_UNSCOPED_WRITES").as_deref() {
            Err(_) | Ok("on") => Ok(Self { unscoped_writes: true }),
            Ok("off") => Ok(Self { unscoped_writes: false }),
            Ok(other) => Err(format!("BEACON_UNSCOPED_WRITES: `{other}` is neither on nor off")),
        }
    }
}

/// Handles one request at `now`; returns the status and the JSON body.
pub async fn handle(catalog: &impl Catalog, config: ApiConfig, request: &ApiRequest, now: i64) -> (u16, Value) {
    match route(catalog, config, request, now).await {
        Ok(ok) => ok,
        Err(e) => e.response(),
    }
}

/// Whether a request is for a write route (API Gateway puts IAM auth on
/// these): the route table's `write` column ([`routes::ROUTES`]).
pub fn is_write(method: &str, path: &str) -> bool {
    matches!(routes::find(method, path), routes::Found::Route(route, _) if route.write)
}

/// The `Allow` header a response carries: a 405 names the methods its
/// route allows (RFC 9110).
pub fn allow_header(status: u16, body: &Value) -> Option<&str> {
    (status == 405).then(|| body.get("allow").and_then(Value::as_str)).flatten()
}

/// A path segment with its `%XX` escapes decoded (a version's `+` arrives
/// as `%2B`); an escape that is not UTF-8 or not hex stays as sent.
pub fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) =
                (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| segment.to_owned())
}

/// The path from `/catalog` on (a stage prefix is ignored), and its
/// segments after `/catalog`.
pub fn catalog_path(path: &str) -> (&str, Vec<&str>) {
    let path = path.find("/catalog").map_or("", |i| &path[i..]);
    (path, path.trim_end_matches('/').split('/').skip(2).collect())
}

async fn route(
    catalog: &impl Catalog,
    config: ApiConfig,
    req: &ApiRequest,
    now: i64,
) -> Result<(u16, Value), ApiError> {
    if req.body.len() > MAX_BODY {
        return Err(ApiError::TooLarge);
    }
    let method = req.method.as_str();
    let (route, segments) = match routes::find(method, &req.path) {
        routes::Found::Route(route, segments) => (route, segments),
        routes::Found::MethodNotAllowed { allow } => {
            return Err(ApiError::MethodNotAllowed { method: method.into(), allow });
        }
        routes::Found::NotFound => return Err(ApiError::NotFound(format!("no route for {method} {}", req.path))),
    };
    if route.unscoped && !config.unscoped_writes {
        return Err(ApiError::Forbidden(
            "the unscoped write routes are turned off here; use POST /catalog/services/{name}/register or /deregister"
                .into(),
        ));
    }
    definition::Definition::for_config(config).check(route, &segments, req)?;
    let name = route.parameter("name", &segments);
    match route.action {
        routes::Action::Register => writes::register(catalog, req, name, now).await,
        routes::Action::Deregister => writes::deregister(catalog, req, name).await,
        routes::Action::List => reads::list(catalog, req).await,
        routes::Action::Resolve => reads::resolve_route(catalog, name.unwrap_or_default(), req, now).await,
        routes::Action::Lookup => {
            let version = route.parameter("version", &segments).unwrap_or_default();
            reads::lookup(catalog, name.unwrap_or_default(), version, now).await
        }
    }
}
