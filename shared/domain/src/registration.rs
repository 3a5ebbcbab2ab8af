//! A service instance's registration: its fields, its status, and what a
//! write does to its expiry. The per-field rules are in [`crate::validation`]
//! (re-exported here).

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

pub use crate::validation::*;
use crate::version::parse_version;

/// The instance id a writer that names none gets: the seed registers one
/// instance per version and never names it.
pub const DEFAULT_INSTANCE_ID: &str = "default";

/// When a registration written at `now` with `ttl_seconds` expires: the one
/// place this sum is made (registration, heartbeat, every writer).
pub fn expires_after(now: i64, ttl_seconds: u64) -> i64 {
    now.saturating_add(i64::try_from(ttl_seconds).unwrap_or(i64::MAX))
}

/// How far ahead of the reader's clock a registration's `updated_at` may
/// be (clock skew between writers and the fan-out): a registration written
/// further in the future is `invalid` and never resolved, since its expiry,
/// which counts from `updated_at`, could not be trusted.
pub const MAX_CLOCK_SKEW_SECONDS: i64 = 30;

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
            expires_at: expires_after(now, ttl_seconds),
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

    /// The moment the registration stops being valid: `expires_at`, but
    /// never later than `updated_at + ttl_seconds`. A writer may put any
    /// `expires_at` in its item; the registration's own TTL bounds it.
    pub fn valid_until(&self) -> i64 {
        self.expires_at.min(expires_after(self.updated_at, self.ttl_seconds))
    }

    /// [`Self::valid_until`] for a write first seen at `seen` (the
    /// fan-out's clock): an `updated_at` more than
    /// [`MAX_CLOCK_SKEW_SECONDS`] ahead counts as that far ahead and no
    /// further, so a writer whose clock runs fast (or that dates its writes
    /// ahead on purpose) gains at most the skew. The fan-out writes this
    /// back as `expires_at`.
    pub fn valid_until_seen_at(&self, seen: i64) -> i64 {
        let dated = self.updated_at.min(seen.saturating_add(MAX_CLOCK_SKEW_SECONDS));
        self.expires_at.min(expires_after(dated, self.ttl_seconds))
    }

    /// True once `now` has reached [`Self::valid_until`].
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.valid_until()
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
    fn expiry_is_bounded_by_the_registrations_own_ttl() {
        let mut r = sample();
        r.updated_at = 1_000;
        r.ttl_seconds = 10;
        r.expires_at = 4_102_444_800; // 2100: whatever the writer says
        assert_eq!(r.valid_until(), 1_010);
        assert!(!r.is_expired(1_009));
        assert!(r.is_expired(1_010));
        // An honest item: expires_at is updated_at + ttl.
        r.expires_at = 1_010;
        assert_eq!(r.valid_until(), 1_010);
        // An earlier expires_at still wins.
        r.expires_at = 1_005;
        assert!(r.is_expired(1_005));
    }

    #[test]
    fn a_registration_dated_in_the_future_gains_at_most_the_skew() {
        let mut r = sample();
        r.ttl_seconds = 300;
        r.updated_at = 1_000 + MAX_CLOCK_SKEW_SECONDS;
        r.expires_at = r.updated_at + 300;
        assert_eq!(r.valid_until_seen_at(1_000), r.expires_at, "within the skew");
        r.updated_at = 1_000 + 3_600;
        r.expires_at = 4_102_444_800;
        assert_eq!(r.valid_until_seen_at(1_000), 1_000 + MAX_CLOCK_SKEW_SECONDS + 300);
        // Seen later, the bound moves with the fan-out's clock, never past
        // the writer's own updated_at + ttl.
        assert_eq!(r.valid_until_seen_at(10_000), r.updated_at + 300);
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
