//! The read routes: the seed's lookup, resolution, and the paginated list.

use beacon_domain::keys;
use beacon_domain::ports::{Catalog, PageToken};
use beacon_domain::registration::{DEFAULT_INSTANCE_ID, Registration, Status};
use beacon_domain::{Requirement, resolve_for};
use serde_json::{Value, json};

use crate::{ApiError, ApiRequest, MAX_PAGE};

/// The seed's lookup of one version.
pub async fn lookup(catalog: &impl Catalog, name: &str, version: &str, now: i64) -> Result<(u16, Value), ApiError> {
    let not_found = || ApiError::NotFound("Service Not Found".into());
    if beacon_domain::registration::validate_name("service_name", name).is_err() {
        return Err(not_found());
    }
    let Ok(version) = beacon_domain::version::parse_version(version) else { return Err(not_found()) };
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

/// Resolution of `{name}` with an optional `requirement`, as an optional
/// `consumer` sees it (its slot of a large service's endpoints).
pub async fn resolve_route(
    catalog: &impl Catalog,
    name: &str,
    req: &ApiRequest,
    now: i64,
) -> Result<(u16, Value), ApiError> {
    let text = format!("{name}{}", req.query.get("requirement").map(String::as_str).unwrap_or_default());
    let requirement = Requirement::parse(&text).map_err(|e| ApiError::field("requirement", e.to_string()))?;
    let consumer = req.query.get("consumer").map(String::as_str);
    if let Some(c) = consumer {
        beacon_domain::registration::validate_name("consumer", c).map_err(|e| ApiError::field("consumer", e.rule))?;
    }
    let instances = catalog.instances(requirement.service()).await?.registrations;
    match resolve_for(&requirement, &instances, now, consumer) {
        Ok(r) => Ok((200, json!({ "requirement": requirement.to_string(), "resolved": r }))),
        Err(reason) => Err(ApiError::Unresolved { requirement: requirement.to_string(), reason }),
    }
}

/// One page of registrations.
pub async fn list(catalog: &impl Catalog, req: &ApiRequest) -> Result<(u16, Value), ApiError> {
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
