//! The write routes: register and deregister, by the seed's body routes
//! (unscoped: the body names the service) or by the per-service routes
//! (`/catalog/services/{name}/...`: the path names it, so IAM can grant
//! `execute-api:Invoke` per service).

use std::collections::BTreeMap;

use beacon_domain::ports::{Catalog, Created, Existing, InstanceKey};
use beacon_domain::registration::{
    DEFAULT_INSTANCE_ID, DEFAULT_TTL_SECONDS, Registration, Status, expires_after, ttl_from_json,
};
use serde_json::{Value, json};

use crate::{ApiError, ApiRequest, FieldError};

pub(crate) fn json_body(req: &ApiRequest) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(&req.body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::field("body", "must be a JSON object")),
        Err(e) => Err(ApiError::field("body", format!("is not valid JSON: {e}"))),
    }
}

/// Reads a string field (the seed's names first, Beacon's as aliases).
pub(crate) fn string_field(
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

/// The service a write names: the path's on a per-service route (the body
/// may repeat it, never contradict it: IAM authorised the path), else the
/// body's.
fn service_of(
    body: &serde_json::Map<String, Value>,
    path_service: Option<&str>,
    errors: &mut Vec<FieldError>,
) -> Result<Option<String>, ApiError> {
    let named = string_field(body, &["service_name", "service"], path_service.is_none(), errors);
    match (path_service, named) {
        (Some(path), Some(body)) if body != path => Err(ApiError::ServiceMismatch { path: path.into(), body }),
        (Some(path), _) => Ok(Some(path.to_owned())),
        (None, named) => Ok(named),
    }
}

/// Registers an instance; `path_service` is the per-service route's `{name}`.
pub async fn register(
    catalog: &impl Catalog,
    req: &ApiRequest,
    path_service: Option<&str>,
    now: i64,
) -> Result<(u16, Value), ApiError> {
    let body = json_body(req)?;
    let mut errors = Vec::new();
    let service = service_of(&body, path_service, &mut errors)?;
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
    let version = version.and_then(|v| match beacon_domain::version::parse_version(&v) {
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

/// Deregisters an instance; `path_service` is the per-service route's `{name}`.
pub async fn deregister(
    catalog: &impl Catalog,
    req: &ApiRequest,
    path_service: Option<&str>,
) -> Result<(u16, Value), ApiError> {
    let body = json_body(req)?;
    let mut errors = Vec::new();
    let service = service_of(&body, path_service, &mut errors)?;
    let version = string_field(&body, &["service_version", "version"], true, &mut errors);
    let instance =
        string_field(&body, &["instance_id"], false, &mut errors).unwrap_or_else(|| DEFAULT_INSTANCE_ID.into());
    if let Some(s) = &service
        && let Err(e) = beacon_domain::registration::validate_name("service_name", s)
    {
        errors.push(e.into());
    }
    let version = version.and_then(|v| {
        beacon_domain::version::parse_version(&v)
            .map_err(|e| errors.push(FieldError { field: "service_version".into(), message: e.to_string() }))
            .ok()
    });
    if let Err(e) = beacon_domain::registration::validate_instance_id(&instance) {
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
