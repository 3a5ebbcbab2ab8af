//! A service instance's registration and the rules every write path checks.
//!
//! The limits below are part of the public contract (README, "Registration
//! item"). They keep one item far under DynamoDB's 400 KB item limit and a
//! change event — which carries the registration before and after — far under
//! SNS's 256 KB message limit: 32 attributes of at most 64 + 1,024 bytes is
//! about 35 KB per registration, 70 KB per event.

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::version::parse_version;

/// Longest service or consumer name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest instance id.
pub const MAX_INSTANCE_ID_LEN: usize = 128;
/// Longest endpoint URL or ARN.
pub const MAX_URL_LEN: usize = 2048;
/// Most attributes on one registration.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key.
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
/// Longest attribute value, in bytes.
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 1024;
/// Shortest heartbeat ttl: shorter than the sweeper's one-minute schedule
/// would only make registrations flap.
pub const MIN_TTL_SECONDS: u64 = 10;
/// Longest ttl: a day. A registration nobody renews for longer is stale.
pub const MAX_TTL_SECONDS: u64 = 86_400;
/// The ttl used when a writer gives none (the seed's registrar uses 300).
pub const DEFAULT_TTL_SECONDS: u64 = 300;

/// Health of one instance, as its registrar reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Serving; eligible for resolution.
    Healthy,
    /// Registered but failing its checks; never chosen.
    Unhealthy,
    /// Finishing in-flight work; never chosen, but its service is not missing.
    Draining,
}

impl Status {
    /// The text form used in items, events and SNS message attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Unhealthy => "unhealthy",
            Status::Draining => "draining",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = ValidationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "healthy" => Ok(Status::Healthy),
            "unhealthy" => Ok(Status::Unhealthy),
            "draining" => Ok(Status::Draining),
            other => Err(ValidationError::new(
                "status",
                format!("`{}` is not one of healthy, unhealthy, draining", shown(other)),
            )),
        }
    }
}

/// One instance of one version of one service.
///
/// Construct it with [`Registration::validate`] (or decode an item, which
/// validates): a value of this type has passed every rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Service name ([`validate_name`]).
    pub service: String,
    /// Semver version; serialised in its normalised text form.
    #[serde(with = "version_text")]
    pub version: Version,
    /// Distinguishes instances of the same version ([`validate_instance_id`]).
    pub instance_id: String,
    /// Absolute http(s) URL clients call.
    pub endpoint_url: String,
    /// ARN for callers that invoke rather than call a URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// Health as last reported.
    pub status: Status,
    /// Free-form string metadata (region, zone, protocol...).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// How long a registration lives without a heartbeat.
    pub ttl_seconds: u64,
    /// Epoch seconds after which the registration is expired.
    pub expires_at: i64,
    /// Epoch seconds of the last write (registration or heartbeat).
    pub updated_at: i64,
}

/// A field that broke a rule: names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ValidationError {
    /// The field's name as it appears in the item and the API.
    pub field: &'static str,
    /// The rule it broke, in words a user can act on.
    pub rule: String,
}

impl ValidationError {
    /// A new error for `field`.
    pub fn new(field: &'static str, rule: impl Into<String>) -> Self {
        Self { field, rule: rule.into() }
    }
}

/// A value as error messages show it: escaped, and cut to 64 characters so
/// an error (and the log line or `invalid` event carrying it) never echoes
/// a large payload back.
pub fn shown(value: &str) -> String {
    const MAX: usize = 64;
    let escaped: String = value.escape_debug().collect();
    if escaped.chars().count() <= MAX {
        escaped
    } else {
        let cut: String = escaped.chars().take(MAX).collect();
        format!("{cut}… ({} bytes)", value.len())
    }
}

/// Checks a service (or consumer) name: a letter, then letters, digits, `-`
/// or `_`, at most [`MAX_NAME_LEN`] in all. Names start with a letter so that
/// a needs list (`orders,users>=1.2,<2`) can tell a new name from a
/// continued version range.
pub fn validate_name(field: &'static str, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(ValidationError::new(
            field,
            format!("is {} characters; at most {MAX_NAME_LEN} are allowed", name.len()),
        ));
    }
    let mut chars = name.chars();
    let first_is_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !first_is_letter || !chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(ValidationError::new(
            field,
            format!("`{}` must start with a letter and contain only letters, digits, `-` and `_`", name.escape_debug()),
        ));
    }
    Ok(())
}

/// Checks an instance id: a letter or digit, then letters, digits, `.`, `_`,
/// `:` or `-`, at most [`MAX_INSTANCE_ID_LEN`]. `#` is excluded because it
/// separates the parts of the sort key.
pub fn validate_instance_id(id: &str) -> Result<(), ValidationError> {
    let field = "instance_id";
    if id.is_empty() {
        return Err(ValidationError::new(field, "must not be empty"));
    }
    if id.len() > MAX_INSTANCE_ID_LEN {
        return Err(ValidationError::new(
            field,
            format!("is {} characters; at most {MAX_INSTANCE_ID_LEN} are allowed", id.len()),
        ));
    }
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')) {
        return Err(ValidationError::new(
            field,
            format!(
                "`{}` must start with a letter or digit and contain only letters, digits, `.`, `_`, `:` and `-`",
                id.escape_debug()
            ),
        ));
    }
    Ok(())
}

/// Checks an endpoint URL: absolute, `http` or `https`, with a host, and no
/// user name or password: a registration is copied into change events,
/// every dependent's resolved item and services file, so a credential in it
/// would leak to every consumer.
pub fn validate_endpoint_url(text: &str) -> Result<(), ValidationError> {
    let field = "endpoint_url";
    if text.len() > MAX_URL_LEN {
        return Err(ValidationError::new(
            field,
            format!("is {} characters; at most {MAX_URL_LEN} are allowed", text.len()),
        ));
    }
    let url = url::Url::parse(text)
        .map_err(|e| ValidationError::new(field, format!("`{}` is not an absolute URL: {e}", shown(text))))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ValidationError::new(
            field,
            format!("scheme `{}` is not allowed; use http or https", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ValidationError::new(field, "must name a host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ValidationError::new(
            field,
            "must not carry a user name or password: every consumer reads it; keep credentials elsewhere",
        ));
    }
    Ok(())
}

/// Checks an ARN's shape: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
pub fn validate_arn(text: &str) -> Result<(), ValidationError> {
    let field = "arn";
    if text.len() > MAX_URL_LEN {
        return Err(ValidationError::new(
            field,
            format!("is {} characters; at most {MAX_URL_LEN} are allowed", text.len()),
        ));
    }
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    let well_formed = parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && !parts[2].is_empty()
        && !parts[5].is_empty()
        && !text.chars().any(char::is_whitespace);
    if !well_formed {
        return Err(ValidationError::new(
            field,
            format!("`{}` is not an ARN (arn:partition:service:region:account:resource)", text.escape_debug()),
        ));
    }
    Ok(())
}

fn validate_attributes(attributes: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    let field = "attributes";
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(ValidationError::new(
            field,
            format!("has {} entries; at most {MAX_ATTRIBUTES} are allowed", attributes.len()),
        ));
    }
    for (key, value) in attributes {
        let key_ok = !key.is_empty()
            && key.len() <= MAX_ATTRIBUTE_KEY_LEN
            && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '-'));
        if !key_ok {
            return Err(ValidationError::new(
                field,
                format!(
                    "key `{}` must be 1 to {MAX_ATTRIBUTE_KEY_LEN} letters, digits, `.`, `_`, `:`, `/` or `-`",
                    shown(key)
                ),
            ));
        }
        if value.len() > MAX_ATTRIBUTE_VALUE_LEN {
            return Err(ValidationError::new(
                field,
                format!(
                    "value of `{}` is {} bytes; at most {MAX_ATTRIBUTE_VALUE_LEN} are allowed",
                    shown(key),
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

fn validate_ttl(ttl: u64) -> Result<(), ValidationError> {
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(ValidationError::new(
            "ttl_seconds",
            format!("{ttl} is outside {MIN_TTL_SECONDS}..={MAX_TTL_SECONDS}"),
        ));
    }
    Ok(())
}

impl Registration {
    /// Builds a registration that is `status` now and expires `ttl_seconds`
    /// from `now`, checking every rule.
    #[allow(clippy::too_many_arguments)]
    pub fn new_at(
        service: &str,
        version: &str,
        instance_id: &str,
        endpoint_url: &str,
        status: Status,
        ttl_seconds: u64,
        now: i64,
    ) -> Result<Self, ValidationError> {
        let version = parse_version(version).map_err(|e| ValidationError::new("version", e.to_string()))?;
        let registration = Registration {
            service: service.to_owned(),
            version,
            instance_id: instance_id.to_owned(),
            endpoint_url: endpoint_url.to_owned(),
            arn: None,
            status,
            attributes: BTreeMap::new(),
            ttl_seconds,
            expires_at: now.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX)),
            updated_at: now,
        };
        registration.validate()?;
        Ok(registration)
    }

    /// Checks every rule; the first broken one is returned.
    pub fn validate(&self) -> Result<(), ValidationError> {
        self.validate_all().into_iter().next().map_or(Ok(()), Err)
    }

    /// Checks every rule and returns every broken one, so an API can name
    /// each invalid field at once.
    pub fn validate_all(&self) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        let mut check = |r: Result<(), ValidationError>| {
            if let Err(e) = r {
                errors.push(e);
            }
        };
        check(validate_name("service", &self.service));
        if self.version.to_string().len() > crate::version::MAX_VERSION_LEN {
            check(Err(ValidationError::new("version", "is too long")));
        }
        check(validate_instance_id(&self.instance_id));
        check(validate_endpoint_url(&self.endpoint_url));
        if let Some(arn) = &self.arn {
            check(validate_arn(arn));
        }
        check(validate_attributes(&self.attributes));
        check(validate_ttl(self.ttl_seconds));
        if self.expires_at <= 0 {
            check(Err(ValidationError::new("expires_at", "must be a positive epoch second")));
        }
        if self.updated_at < 0 {
            check(Err(ValidationError::new("updated_at", "must not be negative")));
        }
        errors
    }

    /// True once `now` has reached `expires_at`.
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires_at
    }

    /// Whether `other` differs from `self` only in the heartbeat fields
    /// (`expires_at`, `updated_at`) — such a change publishes nothing.
    pub fn same_but_heartbeat(&self, other: &Registration) -> bool {
        Registration { expires_at: other.expires_at, updated_at: other.updated_at, ..self.clone() } == *other
    }
}

/// Serialises [`Version`] as its text and reads it back with the seed's
/// two-part rule.
pub(crate) mod version_text {
    use semver::Version;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let text = String::deserialize(d)?;
        crate::version::parse_version(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Registration {
        Registration::new_at("helloworld", "1.0", "i-1", "https://example.com/v1", Status::Healthy, 300, 1_000).unwrap()
    }

    #[test]
    fn seed_registration_is_valid_and_normalised() {
        let r = sample();
        assert_eq!(r.version, Version::new(1, 0, 0));
        assert_eq!(r.expires_at, 1_300);
    }

    #[test]
    fn each_rule_names_its_field() {
        type Breaker = fn(&mut Registration);
        let cases: Vec<(Breaker, &str)> = vec![
            (|r| r.service = "9lives".into(), "service"),
            (|r| r.service = "a".repeat(65), "service"),
            (|r| r.service = "has space".into(), "service"),
            (|r| r.instance_id = "a#b".into(), "instance_id"),
            (|r| r.instance_id = String::new(), "instance_id"),
            (|r| r.endpoint_url = "ftp://x.example".into(), "endpoint_url"),
            (|r| r.endpoint_url = "/relative".into(), "endpoint_url"),
            (|r| r.endpoint_url = "javascript:alert(1)".into(), "endpoint_url"),
            (|r| r.endpoint_url = "https://user:hunter2@x.example".into(), "endpoint_url"),
            (|r| r.endpoint_url = "https://token@x.example".into(), "endpoint_url"),
            (|r| r.arn = Some("not-an-arn".into()), "arn"),
            (|r| r.ttl_seconds = 5, "ttl_seconds"),
            (|r| r.ttl_seconds = 100_000, "ttl_seconds"),
            (|r| r.expires_at = 0, "expires_at"),
            (
                |r| {
                    r.attributes = (0..33).map(|i| (format!("k{i}"), String::new())).collect();
                },
                "attributes",
            ),
            (|r| _ = r.attributes.insert("k".into(), "v".repeat(1025)), "attributes"),
            (|r| _ = r.attributes.insert("bad key".into(), "v".into()), "attributes"),
        ];
        for (break_it, field) in cases {
            let mut r = sample();
            break_it(&mut r);
            let err = r.validate().unwrap_err();
            assert_eq!(err.field, field, "{err}");
        }
    }

    #[test]
    fn validate_all_reports_every_field() {
        let mut r = sample();
        r.service = String::new();
        r.endpoint_url = "nope".into();
        let fields: Vec<_> = r.validate_all().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["service", "endpoint_url"]);
    }

    #[test]
    fn heartbeat_only_is_detected() {
        let a = sample();
        let mut b = a.clone();
        b.expires_at += 60;
        b.updated_at += 60;
        assert!(a.same_but_heartbeat(&b));
        b.status = Status::Draining;
        assert!(!a.same_but_heartbeat(&b));
    }

    #[test]
    fn arns_are_checked_for_shape() {
        assert!(validate_arn("arn:aws:lambda:us-east-1:123456789012:function:hello").is_ok());
        assert!(validate_arn("arn:aws:lambda").is_err());
    }
}
