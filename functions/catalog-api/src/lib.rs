//! The catalog HTTP API: the seed's routes, plus resolution and listing.
//!
//! | route | what |
//! |---|---|
//! | `POST /catalog/register` | register (or re-register) an instance; `If-None-Match: *` makes it create-only (409 if it exists) |
//! | `POST /catalog/deregister` | deregister an instance (404 if it is not registered) |
//! | `GET /catalog/{name}/{version}` | the seed's lookup: `endpoint_url`, `ttl`, `status`; 404 `Service Not Found` |
//! | `GET /catalog/{name}?requirement=^1` | resolution, with the reason when nothing resolves (404) |
//! | `GET /catalog?limit=50&next=TOKEN` | registrations, paginated |
//!
//! The routing and the work are here, independent of the carrier and of
//! the store: the Lambda (`main.rs`, behind API Gateway with IAM auth on
//! writes) and `beacon dev`'s loopback server (`beacon_local::api_server`,
//! which checks SigV4 itself) both call [`handle`] over a
//! [`Catalog`] port. Errors become responses in one place,
//! [`ApiError::response`].

use std::collections::BTreeMap;

use beacon::keys;
use beacon::ports::{Catalog, Created, Existing, InstanceKey, PageToken};
use beacon::registration::{
    DEFAULT_INSTANCE_ID, DEFAULT_TTL_SECONDS, Registration, Status, ValidationError, expires_after, ttl_from_json,
};
use beacon::{Requirement, resolve};
use serde_json::{Value, json};

/// Every IAM action the API's code needs: PutItem (register), DeleteItem
/// (deregister), Query (lookup, resolve), Scan (list). The template must
/// grant exactly these (a test checks).
pub const IAM_ACTIONS: &[&str] = &["dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query", "dynamodb:Scan"];

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

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's name in the request.
    pub field: String,
    /// The rule it broke.
    pub message: String,
}

/// Everything that can go wrong, mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; names each invalid field.
    #[error("invalid request")]
    BadRequest(Vec<FieldError>),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 404 for a resolution, with the reason.
    #[error("{requirement}: {reason}")]
    Unresolved {
        /// The requirement.
        requirement: String,
        /// Why nothing resolved.
        reason: beacon::Unresolved,
    },
    /// 405.
    #[error("{0} is not allowed here")]
    MethodNotAllowed(String),
    /// 409: a conditional write found the item in the way.
    #[error("{0}")]
    Conflict(String),
    /// 403: a write without a valid signature (local server only; API
    /// Gateway refuses these itself).
    #[error("{0}")]
    Forbidden(String),
    /// 413.
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// 500/503: the registry failed; retryable ones are 503.
    #[error(transparent)]
    Store(#[from] beacon::ports::StoreError),
}

impl ApiError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// The HTTP status and JSON body for this error.
    pub fn response(&self) -> (u16, Value) {
        match self {
            ApiError::BadRequest(fields) => (400, json!({ "error": "invalid request", "fields": fields })),
            ApiError::NotFound(what) => (404, json!({ "error": what })),
            ApiError::Unresolved { requirement, reason } => (
                404,
                json!({ "error": "Service Not Found", "requirement": requirement, "unresolved": reason, "message": reason.to_string() }),
            ),
            ApiError::MethodNotAllowed(m) => (405, json!({ "error": format!("{m} is not allowed on this route") })),
            ApiError::Conflict(m) => (409, json!({ "error": m })),
            ApiError::Forbidden(m) => (403, json!({ "error": m })),
            ApiError::TooLarge => (413, json!({ "error": self.to_string() })),
            ApiError::Store(e) => {
                // The cause goes to the log, not to the client.
                tracing::error!(error = %e, "registry call failed");
                if e.is_retryable() {
                    (503, json!({ "error": "the registry is busy; retry" }))
                } else {
                    (500, json!({ "error": "internal error" }))
                }
            }
        }
    }
}

impl From<ValidationError> for FieldError {
    fn from(e: ValidationError) -> Self {
        FieldError { field: e.field.into(), message: e.rule }
    }
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

/// Handles one request at `now`; returns the status and the JSON body.
pub async fn handle(catalog: &impl Catalog, request: &ApiRequest, now: i64) -> (u16, Value) {
    match route(catalog, request, now).await {
        Ok(ok) => ok,
        Err(e) => e.response(),
    }
}

async fn route(catalog: &impl Catalog, req: &ApiRequest, now: i64) -> Result<(u16, Value), ApiError> {
    if req.body.len() > MAX_BODY {
        return Err(ApiError::TooLarge);
    }
    // Tolerate a stage prefix: everything before `/catalog` is ignored.
    let path = req.path.find("/catalog").map_or("", |i| &req.path[i..]);
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(2).collect();
    let method = req.method.as_str();
    match (method, parts.as_slice()) {
        ("POST", ["register"]) => register(catalog, req, now).await,
        ("POST", ["deregister"]) => deregister(catalog, req).await,
        ("GET", []) if path.starts_with("/catalog") => list(catalog, req).await,
        ("GET", [name]) => resolve_route(catalog, name, req, now).await,
        ("GET", [name, version]) => lookup(catalog, name, version, now).await,
        (_, ["register" | "deregister"]) => Err(ApiError::MethodNotAllowed(method.into())),
        (_, [] | [_] | [_, _]) if path.starts_with("/catalog") => Err(ApiError::MethodNotAllowed(method.into())),
        _ => Err(ApiError::NotFound(format!("no route for {method} {}", req.path))),
    }
}

fn json_body(req: &ApiRequest) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::field("body", "must be a JSON object")),
        Err(e) => Err(ApiError::field("body", format!("is not valid JSON: {e}"))),
    }
}

/// Reads a string field (the seed's names first, Beacon's as aliases).
fn string_field(
    body: &serde_json::Map<String, Value>,
    names: &[&str],
    required: bool,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let found = names.iter().find_map(|n| body.get(*n).map(|v| (*n, v)));
    match found {
        Some((_, Value::String(s))) => Some(s.clone()),
        Some((_, Value::Null)) | None if !required => None,
        Some((n, _)) => {
            errors.push(FieldError { field: n.into(), message: "must be a string".into() });
            None
        }
        None => {
            errors.push(FieldError { field: names[0].into(), message: "is required".into() });
            None
        }
    }
}

async fn register(catalog: &impl Catalog, req: &ApiRequest, now: i64) -> Result<(u16, Value), ApiError> {
    let body = json_body(req)?;
    let mut errors = Vec::new();
    let service = string_field(&body, &["service_name", "service"], true, &mut errors);
    let version = string_field(&body, &["service_version", "version"], true, &mut errors);
    let endpoint = string_field(&body, &["endpoint_url"], true, &mut errors);
    let instance =
        string_field(&body, &["instance_id"], false, &mut errors).unwrap_or_else(|| DEFAULT_INSTANCE_ID.into());
    let arn = string_field(&body, &["arn"], false, &mut errors);
    let status = match string_field(&body, &["status"], false, &mut errors) {
        None => Some(Status::Healthy),
        Some(s) => s.parse::<Status>().map_err(|e| errors.push(e.into())).ok(),
    };
    // The seed sends ttl as a string ("300"); a number is accepted too.
    let ttl = match ttl_from_json(body.get("ttl").or_else(|| body.get("ttl_seconds"))) {
        Ok(ttl) => Some(ttl.unwrap_or(DEFAULT_TTL_SECONDS)),
        Err(e) => {
            errors.push(e.into());
            None
        }
    };
    let attributes: BTreeMap<String, String> = match body.get("attributes") {
        None | Some(Value::Null) => BTreeMap::new(),
        Some(Value::Object(m)) => m
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => Some((k.clone(), s.clone())),
                _ => {
                    errors.push(FieldError { field: format!("attributes.{k}"), message: "must be a string".into() });
                    None
                }
            })
            .collect(),
        Some(_) => {
            errors.push(FieldError { field: "attributes".into(), message: "must be an object of strings".into() });
            BTreeMap::new()
        }
    };
    let version = version.and_then(|v| match beacon::version::parse_version(&v) {
        Ok(v) => Some(v),
        Err(e) => {
            errors.push(FieldError { field: "service_version".into(), message: e.to_string() });
            None
        }
    });
    // Check every rule even when some fields are missing or unreadable, so
    // one response names every invalid field; placeholders stand in for
    // fields already reported.
    let r = Registration {
        service: service.unwrap_or_else(|| "placeholder".into()),
        version: version.unwrap_or_else(|| semver::Version::new(0, 0, 0)),
        instance_id: instance,
        endpoint_url: endpoint.unwrap_or_else(|| "https://placeholder".into()),
        arn,
        status: status.unwrap_or(Status::Healthy),
        attributes,
        ttl_seconds: ttl.unwrap_or(DEFAULT_TTL_SECONDS),
        expires_at: expires_after(now, ttl.unwrap_or(DEFAULT_TTL_SECONDS)),
        updated_at: now,
    };
    for e in r.validate_all() {
        // Report the seed's field names back to seed-shaped clients.
        let field = match e.field {
            "service" => "service_name",
            "version" => "service_version",
            "ttl_seconds" => "ttl",
            other => other,
        };
        if !errors.iter().any(|f| f.field == field) {
            errors.push(FieldError { field: field.into(), message: e.rule });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::BadRequest(errors));
    }
    if req.if_none_match.as_deref() == Some("*") {
        if catalog.create(&r).await? == Created::AlreadyRegistered {
            return Err(ApiError::Conflict(format!(
                "{} {} {} is already registered (If-None-Match: *)",
                r.service, r.version, r.instance_id
            )));
        }
    } else {
        catalog.put(&r).await?;
    }
    Ok((200, json!({ "registered": r })))
}

async fn deregister(catalog: &impl Catalog, req: &ApiRequest) -> Result<(u16, Value), ApiError> {
    let body = json_body(req)?;
    let mut errors = Vec::new();
    let service = string_field(&body, &["service_name", "service"], true, &mut errors);
    let version = string_field(&body, &["service_version", "version"], true, &mut errors);
    let instance =
        string_field(&body, &["instance_id"], false, &mut errors).unwrap_or_else(|| DEFAULT_INSTANCE_ID.into());
    if let Some(s) = &service
        && let Err(e) = beacon::registration::validate_name("service_name", s)
    {
        errors.push(e.into());
    }
    let version = version.and_then(|v| {
        beacon::version::parse_version(&v)
            .map_err(|e| errors.push(FieldError { field: "service_version".into(), message: e.to_string() }))
            .ok()
    });
    if let Err(e) = beacon::registration::validate_instance_id(&instance) {
        errors.push(e.into());
    }
    let (Some(service), Some(version)) = (service, version) else { return Err(ApiError::BadRequest(errors)) };
    if !errors.is_empty() {
        return Err(ApiError::BadRequest(errors));
    }
    let version = version.to_string();
    let key = InstanceKey { service: service.clone(), version: version.clone(), instance_id: instance.clone() };
    if catalog.delete(&key).await? == Existing::NotRegistered {
        return Err(ApiError::NotFound("Service Not Found".into()));
    }
    Ok((
        200,
        json!({ "deregistered": { "service_name": service, "service_version": version, "instance_id": instance } }),
    ))
}

async fn lookup(catalog: &impl Catalog, name: &str, version: &str, now: i64) -> Result<(u16, Value), ApiError> {
    let not_found = || ApiError::NotFound("Service Not Found".into());
    if beacon::registration::validate_name("service_name", name).is_err() {
        return Err(not_found());
    }
    let Ok(version) = beacon::version::parse_version(version) else { return Err(not_found()) };
    let all = catalog.instances(name).await?.registrations;
    let mut instances: Vec<&Registration> = all.iter().filter(|r| r.version == version && !r.is_expired(now)).collect();
    // Healthy first, then the seed's single `default` instance, then by id.
    instances
        .sort_by_key(|r| (r.status != Status::Healthy, r.instance_id != DEFAULT_INSTANCE_ID, r.instance_id.clone()));
    let Some(r) = instances.first() else { return Err(not_found()) };
    Ok((
        200,
        json!({
            "endpoint_url": r.endpoint_url,
            "ttl": r.ttl_seconds,
            "status": r.status,
            "service_name": r.service,
            "service_version": r.version.to_string(),
            "instance_id": r.instance_id,
        }),
    ))
}

async fn resolve_route(
    catalog: &impl Catalog,
    name: &str,
    req: &ApiRequest,
    now: i64,
) -> Result<(u16, Value), ApiError> {
    let text = format!("{name}{}", req.query.get("requirement").map(String::as_str).unwrap_or_default());
    let requirement = Requirement::parse(&text).map_err(|e| ApiError::field("requirement", e.to_string()))?;
    let instances = catalog.instances(requirement.service()).await?.registrations;
    match resolve(&requirement, &instances, now) {
        Ok(r) => Ok((200, json!({ "requirement": requirement.to_string(), "resolved": r }))),
        Err(reason) => Err(ApiError::Unresolved { requirement: requirement.to_string(), reason }),
    }
}

async fn list(catalog: &impl Catalog, req: &ApiRequest) -> Result<(u16, Value), ApiError> {
    let limit = match req.query.get("limit") {
        None => 50,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::field("limit", format!("must be a whole number from 1 to {MAX_PAGE}"))),
        },
    };
    let start = match req.query.get("next") {
        None => None,
        Some(token) => {
            Some(decode_token(token).ok_or_else(|| ApiError::field("next", "is not a token this API issued"))?)
        }
    };
    let page = catalog.list(limit, start).await?;
    Ok((200, json!({ "registrations": page.registrations, "next": page.next.as_ref().map(encode_token) })))
}

/// A page token: the last key, base64url-encoded. Opaque to clients.
fn encode_token(token: &PageToken) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{}\n{}", token.pk, token.sk))
}

fn decode_token(token: &str) -> Option<PageToken> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (pk, sk) = text.split_once('\n')?;
    keys::service_of(pk).is_some().then(|| PageToken { pk: pk.to_owned(), sk: sk.to_owned() })
}
