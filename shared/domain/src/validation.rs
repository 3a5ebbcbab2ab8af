//! The rules every write path checks, one per field, and the error that
//! names the field and the rule it broke.
//!
//! The limits are part of the public contract (README, "Registration
//! item"). They keep one item far under DynamoDB's 400 KB item limit and a
//! change event — which carries the registration before and after — far under
//! SNS's 256 KB message limit: 32 attributes of at most 64 + 1,024 bytes is
//! about 35 KB per registration, 70 KB per event.

use std::collections::BTreeMap;

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

/// Checks the attributes map: count, key shape, value size.
pub fn validate_attributes(attributes: &BTreeMap<String, String>) -> Result<(), ValidationError> {
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

/// Checks a ttl is within [`MIN_TTL_SECONDS`]..=[`MAX_TTL_SECONDS`].
pub fn validate_ttl(ttl: u64) -> Result<(), ValidationError> {
    if !(MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&ttl) {
        return Err(ValidationError::new(
            "ttl_seconds",
            format!("{ttl} is outside {MIN_TTL_SECONDS}..={MAX_TTL_SECONDS}"),
        ));
    }
    Ok(())
}

/// Reads a ttl as writers send it: the seed sends text (`"300"`), others a
/// number. `null` or absent is `None` (the caller's default applies).
pub fn ttl_from_json(value: Option<&serde_json::Value>) -> Result<Option<u64>, ValidationError> {
    use serde_json::Value;
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| ValidationError::new("ttl", format!("{n} is not a whole number of seconds"))),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| ValidationError::new("ttl", format!("`{}` is not a whole number of seconds", shown(s)))),
        Some(_) => Err(ValidationError::new("ttl", "must be a number of seconds")),
    }
}
