//! Item codecs: one schema for each item type, carried either as the SDK's
//! `AttributeValue` maps or as the `serde_dynamo::Item` that
//! `aws_lambda_events` uses for stream images.
//!
//! Everything here works on [`serde_dynamo::Item`]; the SDK carrier converts
//! with [`from_sdk`] / [`to_sdk`]. Decoding any map returns a value or a
//! [`DecodeError`] naming the field and what was wrong — never a panic,
//! because the table accepts whatever a client writes.

use std::collections::{BTreeMap, HashMap};

use beacon_domain::decode::DecodeError;
use beacon_domain::keys::{self, KeyKind};
use beacon_domain::registration::{DEFAULT_TTL_SECONDS, Registration, Status, ValidationError, shown};
use beacon_domain::requirement::parse_needs;
use beacon_domain::version::parse_version;
use beacon_domain::view::{Needs, ResolvedItem};
use serde::Serialize;
use serde_dynamo::{AttributeValue as Av, Item};

fn type_name(v: &Av) -> &'static str {
    match v {
        Av::N(_) => "a number (N)",
        Av::S(_) => "a string (S)",
        Av::Bool(_) => "a boolean (BOOL)",
        Av::B(_) => "binary (B)",
        Av::Null(_) => "null (NULL)",
        Av::M(_) => "a map (M)",
        Av::L(_) => "a list (L)",
        Av::Ss(_) => "a string set (SS)",
        Av::Ns(_) => "a number set (NS)",
        Av::Bs(_) => "a binary set (BS)",
    }
}

/// Typed access to one item's attributes with errors that name the field.
struct Fields<'a>(&'a HashMap<String, Av>);

impl<'a> Fields<'a> {
    fn opt(&self, field: &'static str) -> Option<&'a Av> {
        match self.0.get(field) {
            // An explicit NULL is the same as absent for optional fields.
            Some(Av::Null(_)) | None => None,
            Some(v) => Some(v),
        }
    }

    fn string(&self, field: &'static str) -> Result<&'a str, DecodeError> {
        self.opt_string(field)?.ok_or(DecodeError::Missing(field))
    }

    fn opt_string(&self, field: &'static str) -> Result<Option<&'a str>, DecodeError> {
        match self.opt(field) {
            None => Ok(None),
            Some(Av::S(s)) => Ok(Some(s)),
            Some(other) => Err(DecodeError::WrongType { field, expected: "a string (S)", found: type_name(other) }),
        }
    }

    fn opt_int(&self, field: &'static str) -> Result<Option<i64>, DecodeError> {
        match self.opt(field) {
            None => Ok(None),
            Some(Av::N(n)) => n.parse::<i64>().map(Some).map_err(|_| {
                DecodeError::Invalid(ValidationError::new(field, format!("`{n}` is not a whole number in range")))
            }),
            Some(other) => Err(DecodeError::WrongType { field, expected: "a number (N)", found: type_name(other) }),
        }
    }

    fn string_list(&self, field: &'static str) -> Result<Vec<&'a str>, DecodeError> {
        match self.opt(field) {
            None => Err(DecodeError::Missing(field)),
            Some(Av::L(items)) => items
                .iter()
                .map(|v| match v {
                    Av::S(s) => Ok(s.as_str()),
                    other => {
                        Err(DecodeError::WrongType { field, expected: "a list of strings", found: type_name(other) })
                    }
                })
                .collect(),
            Some(Av::Ss(items)) => Ok(items.iter().map(String::as_str).collect()),
            // One string with the comma syntax is accepted too: it is what
            // `NEEDED_SERVICES` looks like, and what a person types.
            Some(Av::S(s)) => Ok(vec![s.as_str()]),
            Some(other) => {
                Err(DecodeError::WrongType { field, expected: "a list of strings (L or SS)", found: type_name(other) })
            }
        }
    }
}

/// The primary key of an item, if it has one of the right type.
pub fn item_key(item: &Item) -> Option<(String, String)> {
    match (item.inner().get(keys::PK), item.inner().get(keys::SK)) {
        (Some(Av::S(pk)), Some(Av::S(sk))) => Some((pk.clone(), sk.clone())),
        _ => None,
    }
}

/// Decodes a registration item, checking that its key agrees with it and
/// that every rule holds.
pub fn decode_registration(item: &Item) -> Result<Registration, DecodeError> {
    let f = Fields(item.inner());
    let pk = f.string(keys::PK)?;
    let sk = f.string(keys::SK)?;
    let KeyKind::Instance { service: key_service, version: key_version, instance_id: key_instance } =
        keys::key_kind(pk, sk)
    else {
        return Err(DecodeError::Key(format!("`{pk}` / `{sk}` is not a registration key")));
    };
    let service = f.string("service")?;
    let version_text = f.string("version")?;
    let version = parse_version(version_text)
        .map_err(|e| DecodeError::Invalid(ValidationError::new("version", e.to_string())))?;
    let instance_id = f.string("instance_id")?;
    if key_service != service {
        return Err(DecodeError::Key(format!(
            "pk names service `{}` but `service` is `{}`",
            shown(&key_service),
            shown(service)
        )));
    }
    if key_instance != instance_id {
        return Err(DecodeError::Key(format!(
            "sk names instance `{}` but `instance_id` is `{}`",
            shown(&key_instance),
            shown(instance_id)
        )));
    }
    if parse_version(&key_version).ok().as_ref() != Some(&version) {
        return Err(DecodeError::Key(format!(
            "sk names version `{}` but `version` is `{}`",
            shown(&key_version),
            shown(version_text)
        )));
    }
    let status: Status = f.string("status")?.parse()?;
    let ttl = f.opt_int("ttl_seconds")?.unwrap_or(DEFAULT_TTL_SECONDS as i64);
    let ttl_seconds =
        u64::try_from(ttl).map_err(|_| ValidationError::new("ttl_seconds", format!("{ttl} must not be negative")))?;
    let expires_at = f.opt_int("expires_at")?.ok_or(DecodeError::Missing("expires_at"))?;
    let updated_at = f.opt_int("updated_at")?.unwrap_or_else(|| expires_at.saturating_sub(ttl));
    let attributes = match f.opt("attributes") {
        None => BTreeMap::new(),
        Some(Av::M(m)) => m
            .iter()
            .map(|(k, v)| match v {
                Av::S(s) => Ok((k.clone(), s.clone())),
                other => Err(DecodeError::WrongType {
                    field: "attributes",
                    expected: "a map of strings",
                    found: type_name(other),
                }),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(DecodeError::WrongType { field: "attributes", expected: "a map (M)", found: type_name(other) });
        }
    };
    let registration = Registration {
        service: service.to_owned(),
        version,
        instance_id: instance_id.to_owned(),
        endpoint_url: f.string("endpoint_url")?.to_owned(),
        arn: f.opt_string("arn")?.map(str::to_owned),
        status,
        attributes,
        ttl_seconds,
        expires_at,
        updated_at,
    };
    registration.validate()?;
    Ok(registration)
}

/// Encodes a registration as its item (with its key and expiry shard).
pub fn encode_registration(r: &Registration) -> Item {
    let pk = keys::service_pk(&r.service);
    let sk = keys::instance_sk(&r.version.to_string(), &r.instance_id);
    let mut m: HashMap<String, Av> = HashMap::new();
    let s = |v: &str| Av::S(v.to_owned());
    m.insert(keys::EXPIRY_SHARD.into(), s(&keys::expiry_shard(&pk, &sk)));
    m.insert(keys::PK.into(), Av::S(pk));
    m.insert(keys::SK.into(), Av::S(sk));
    m.insert("service".into(), s(&r.service));
    m.insert("version".into(), Av::S(r.version.to_string()));
    m.insert("instance_id".into(), s(&r.instance_id));
    m.insert("endpoint_url".into(), s(&r.endpoint_url));
    if let Some(arn) = &r.arn {
        m.insert("arn".into(), s(arn));
    }
    m.insert("status".into(), s(r.status.as_str()));
    // An empty map is left out: DynamoDB Local's stream shows `{}` without
    // its `M` tag, and absent reads back as empty anyway.
    if !r.attributes.is_empty() {
        m.insert("attributes".into(), Av::M(r.attributes.iter().map(|(k, v)| (k.clone(), s(v))).collect()));
    }
    m.insert("ttl_seconds".into(), Av::N(r.ttl_seconds.to_string()));
    m.insert(keys::EXPIRES_AT.into(), Av::N(r.expires_at.to_string()));
    m.insert("updated_at".into(), Av::N(r.updated_at.to_string()));
    Item::from(m)
}

/// Decodes a needs item. Each list element may itself be a comma list.
pub fn decode_needs(item: &Item) -> Result<Needs, DecodeError> {
    let f = Fields(item.inner());
    let pk = f.string(keys::PK)?;
    let sk = f.string(keys::SK)?;
    let KeyKind::Needs { consumer } = keys::key_kind(pk, sk) else {
        return Err(DecodeError::Key(format!("`{pk}` / `{sk}` is not a needs key")));
    };
    beacon_domain::registration::validate_name("consumer", &consumer)?;
    if let Some(c) = f.opt_string("consumer")?
        && c != consumer
    {
        return Err(DecodeError::Key(format!(
            "pk names consumer `{}` but `consumer` is `{}`",
            shown(&consumer),
            shown(c)
        )));
    }
    let mut needs = Vec::new();
    for text in f.string_list("needs")? {
        needs.extend(parse_needs(text)?);
    }
    if needs.len() > beacon_domain::requirement::MAX_NEEDS {
        return Err(DecodeError::Shape(format!(
            "attribute `needs` lists {} requirements; at most {} are allowed",
            needs.len(),
            beacon_domain::requirement::MAX_NEEDS
        )));
    }
    Ok(Needs { consumer, needs })
}

/// Encodes a needs item.
pub fn encode_needs(needs: &Needs, now: i64) -> Item {
    let mut m: HashMap<String, Av> = HashMap::new();
    m.insert(keys::PK.into(), Av::S(keys::consumer_pk(&needs.consumer)));
    m.insert(keys::SK.into(), Av::S(keys::needs_sk().into()));
    m.insert("consumer".into(), Av::S(needs.consumer.clone()));
    m.insert("needs".into(), Av::L(needs.needs.iter().map(|r| Av::S(r.to_string())).collect()));
    m.insert("updated_at".into(), Av::N(now.to_string()));
    Item::from(m)
}

/// Decodes a resolved item (the fan-out's own, so serde does the work).
pub fn decode_resolved(item: Item) -> Result<ResolvedItem, DecodeError> {
    serde_dynamo::from_item(item).map_err(|e| DecodeError::Shape(format!("resolved item: {e}")))
}

/// Encodes any serialisable value as a DynamoDB attribute value.
pub fn to_attribute<T: Serialize>(value: &T) -> Result<Av, DecodeError> {
    serde_dynamo::to_attribute_value(value).map_err(|e| DecodeError::Shape(e.to_string()))
}

/// Converts the SDK's map to the neutral carrier. Unlike serde_dynamo's own
/// `From`, it never panics on a type the SDK does not know: such a value
/// (DynamoDB Local streams an empty map as `{}` with no tag) becomes an empty
/// map, which is what it was.
pub fn from_sdk(item: HashMap<String, aws_sdk_dynamodb::types::AttributeValue>) -> Item {
    Item::from(item.into_iter().map(|(k, v)| (k, av_from_sdk(v))).collect::<HashMap<_, _>>())
}

/// Defines `fn $name(v: $sdk) -> serde_dynamo::AttributeValue`: one
/// conversion for both SDKs' `AttributeValue` (the DynamoDB and the DynamoDB
/// Streams crates each have their own, with the same variants). Exported so
/// the local stack converts stream records with the same rule without this
/// crate (and every function) compiling the Streams SDK. A type the SDK does
/// not know becomes an empty map: DynamoDB Local streams an empty map as `{}`
/// with no tag.
#[macro_export]
macro_rules! attribute_value_from_sdk {
    ($name:ident, $sdk:ty) => {
        fn $name(v: $sdk) -> ::serde_dynamo::AttributeValue {
            use ::serde_dynamo::AttributeValue as Av;
            use $sdk as S;
            match v {
                S::N(n) => Av::N(n),
                S::S(s) => Av::S(s),
                S::Bool(b) => Av::Bool(b),
                S::B(b) => Av::B(b.into_inner()),
                S::Null(b) => Av::Null(b),
                S::M(m) => Av::M(m.into_iter().map(|(k, v)| (k, $name(v))).collect()),
                S::L(l) => Av::L(l.into_iter().map($name).collect()),
                S::Ss(s) => Av::Ss(s),
                S::Ns(n) => Av::Ns(n),
                S::Bs(b) => Av::Bs(b.into_iter().map(|b| b.into_inner()).collect()),
                _ => Av::M(::std::collections::HashMap::new()),
            }
        }
    };
}

attribute_value_from_sdk!(av_from_sdk, aws_sdk_dynamodb::types::AttributeValue);

/// Converts the neutral carrier to the SDK's map (always succeeds).
pub fn to_sdk(item: Item) -> HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    item.into()
}

#[cfg(test)]
mod tests {
    use beacon_domain::view::{Outcome, RequirementView, ServiceView};

    use super::*;

    fn sample() -> Registration {
        let mut r =
            Registration::new_at("orders", "1.2", "i-1", "https://o.example", Status::Healthy, 60, 100).unwrap();
        r.attributes.insert("zone".into(), "a".into());
        r.arn = Some("arn:aws:lambda:us-east-1:123456789012:function:orders".into());
        r
    }

    #[test]
    fn registration_round_trips_through_both_carriers() {
        let r = sample();
        let item = encode_registration(&r);
        assert_eq!(decode_registration(&item).unwrap(), r);
        let sdk = to_sdk(item);
        assert_eq!(decode_registration(&from_sdk(sdk)).unwrap(), r);
    }

    fn with(mut item: Item, field: &str, v: Option<Av>) -> Item {
        match v {
            Some(v) => item.inner_mut().insert(field.into(), v),
            None => item.inner_mut().remove(field),
        };
        item
    }

    #[test]
    fn malformed_registrations_name_the_problem() {
        let good = encode_registration(&sample());
        let cases = [
            (with(good.clone(), "endpoint_url", None), "missing attribute `endpoint_url`"),
            (with(good.clone(), "ttl_seconds", Some(Av::S("60".into()))), "`ttl_seconds` must be a number"),
            (with(good.clone(), "status", Some(Av::S("up".into()))), "status: `up`"),
            (with(good.clone(), "service", Some(Av::S("other".into()))), "pk names service `orders`"),
            (with(good.clone(), "version", Some(Av::S("2.0.0".into()))), "sk names version"),
            (with(good.clone(), "expires_at", Some(Av::N("1e999".into()))), "expires_at"),
            (with(good.clone(), "attributes", Some(Av::L(vec![]))), "`attributes` must be a map"),
            (with(good.clone(), "pk", Some(Av::N("1".into()))), "`pk` must be a string"),
        ];
        for (item, want) in cases {
            let err = decode_registration(&item).unwrap_err().to_string();
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }

    #[test]
    fn needs_accept_lists_and_comma_strings() {
        let n = Needs { consumer: "web".into(), needs: parse_needs("orders,payments==1.2.0").unwrap() };
        let item = encode_needs(&n, 5);
        assert_eq!(decode_needs(&item).unwrap(), n);
        let as_string = with(item, "needs", Some(Av::S("orders,payments==1.2.0".into())));
        assert_eq!(decode_needs(&as_string).unwrap(), n);
        assert_eq!(n.services(), ["orders", "payments"]);
    }

    #[test]
    fn resolved_item_round_trips() {
        let mut services = BTreeMap::new();
        services.insert(
            "orders".to_string(),
            ServiceView::new(
                3,
                vec![
                    RequirementView {
                        requirement: "orders".into(),
                        outcome: Outcome::Unresolved(beacon_domain::resolution::Unresolved::NoVersionMatches {
                            available: vec!["1.0.0".into()],
                        }),
                    },
                    RequirementView {
                        requirement: "orders^1".into(),
                        outcome: Outcome::Resolved(beacon_domain::resolution::Resolved {
                            version: semver::Version::new(1, 0, 0),
                            endpoints: vec![],
                            // A consumer's slot of a large service survives the round trip.
                            subset: Some(beacon_domain::subset::Subset {
                                slot: Some(3),
                                slots: 128,
                                of: None,
                                digests: vec![],
                            }),
                        }),
                    },
                ],
            ),
        );
        let r = ResolvedItem {
            consumer: "web".into(),
            revision: 2,
            needs: vec!["orders".into()],
            needed_services: vec!["orders".into()],
            services,
            last_change_id: Some("abc".into()),
        };
        let item: Item = serde_dynamo::to_item(&r).unwrap();
        assert_eq!(decode_resolved(item).unwrap(), r);
    }
}
