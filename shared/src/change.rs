//! Classifying one stream record into what happened.
//!
//! Input is carrier-neutral ([`StreamChange`]); the fan-out builds it from
//! the Lambda event. The rules (README, "Change events"):
//!
//! - INSERT of a registration → `registered`; MODIFY → `status_changed` when
//!   the status moved, `updated` when the endpoint, ARN or attributes did,
//!   nothing when only `expires_at` / `updated_at` moved (a heartbeat);
//! - REMOVE → `expired` when made by DynamoDB's TTL service, when the event
//!   name is not one the stream documents (DynamoDB Local's TTL deletes), or
//!   when the old image had passed `expires_at` (the sweeper); otherwise
//!   `deregistered`;
//! - an item that does not decode → `invalid`, naming the key and reason;
//! - needs items → a needs change; the fan-out's own items → ignored.

use serde_dynamo::Item;

use crate::item::{DecodeError, Needs, decode_needs, decode_registration, item_key};
use crate::keys::{self, KeyKind};
use crate::registration::Registration;

/// The principal DynamoDB's TTL deletes carry in `userIdentity`.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// One stream record, without AWS types.
#[derive(Debug, Clone, Default)]
pub struct StreamChange {
    /// The record's `eventID`; events carry it for de-duplication.
    pub event_id: String,
    /// `INSERT`, `MODIFY`, `REMOVE`, or something else (DynamoDB Local's TTL).
    pub event_name: String,
    /// The record's `Keys`.
    pub keys: Item,
    /// The old image, if the stream carried one.
    pub old_image: Option<Item>,
    /// The new image, if the stream carried one.
    pub new_image: Option<Item>,
    /// `userIdentity.type` and `.principalId`, present on TTL deletes in AWS.
    pub user_identity: Option<(String, String)>,
    /// Approximate creation time, epoch seconds (rounded to the minute by
    /// DynamoDB Local, so never used to decide expiry).
    pub created_at: i64,
}

/// What changed about a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new instance (or one whose previous item was invalid).
    Registered,
    /// Endpoint, ARN or attributes changed.
    Updated,
    /// Status changed (other fields may have too).
    StatusChanged,
    /// Removed by a client.
    Deregistered,
    /// Removed because its heartbeats stopped.
    Expired,
}

impl ChangeKind {
    /// The text used in events and message attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Registered => "registered",
            ChangeKind::Updated => "updated",
            ChangeKind::StatusChanged => "status_changed",
            ChangeKind::Deregistered => "deregistered",
            ChangeKind::Expired => "expired",
        }
    }
}

/// A real change to a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationChange {
    /// What kind of change.
    pub kind: ChangeKind,
    /// The registration before (absent for `registered`).
    pub before: Option<Registration>,
    /// The registration after (absent for removals).
    pub after: Option<Registration>,
}

impl RegistrationChange {
    /// The registration that identifies the change (after, else before).
    pub fn current(&self) -> &Registration {
        match (&self.after, &self.before) {
            (Some(r), _) | (None, Some(r)) => r,
            // Constructed only by `classify`, which always sets one side.
            (None, None) => unreachable!("a registration change has a before or an after"),
        }
    }
}

/// A change to a consumer's needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsChange {
    /// The consumer.
    pub consumer: String,
    /// Needs before, if there were valid ones.
    pub before: Option<Needs>,
    /// Needs after; `None` when the needs item was removed.
    pub after: Option<Needs>,
}

/// A record that cannot ever be processed: reported, then skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidRecord {
    /// The item's pk, if it had one.
    pub pk: Option<String>,
    /// The item's sk, if it had one.
    pub sk: Option<String>,
    /// The service the key names, for the `service` message attribute.
    pub service: Option<String>,
    /// Why it is invalid.
    pub reason: String,
}

/// The outcome of classifying one record.
// One value lives per stream record for a moment; boxing the big variant
// would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    /// Publish an event and refresh the service's dependents.
    Registration(RegistrationChange),
    /// Only `expires_at` / `updated_at` moved: nothing to publish.
    Heartbeat {
        /// The service heartbeating.
        service: String,
    },
    /// Rewrite dependency edges and the consumer's resolved item.
    Needs(NeedsChange),
    /// Publish an `invalid` event; never retry.
    Invalid(InvalidRecord),
    /// Nothing to do (the fan-out's own writes, foreign keys, no-op writes).
    Ignored(&'static str),
}

fn is_ttl_delete(change: &StreamChange) -> bool {
    let by_ttl_service =
        change.user_identity.as_ref().is_some_and(|(kind, principal)| kind == "Service" && principal == TTL_PRINCIPAL);
    by_ttl_service || !matches!(change.event_name.as_str(), "INSERT" | "MODIFY" | "REMOVE")
}

/// Classifies one record at `now` (epoch seconds).
pub fn classify(change: &StreamChange, now: i64) -> Classified {
    let key = item_key(&change.keys)
        .or_else(|| change.new_image.as_ref().and_then(item_key))
        .or_else(|| change.old_image.as_ref().and_then(item_key));
    let Some((pk, sk)) = key else {
        return Classified::Invalid(InvalidRecord {
            pk: None,
            sk: None,
            service: None,
            reason: "record has no string pk/sk".into(),
        });
    };
    let known_name = matches!(change.event_name.as_str(), "INSERT" | "MODIFY" | "REMOVE");
    let removed = change.event_name == "REMOVE" || (!known_name && change.new_image.is_none());
    if !removed && !known_name {
        return invalid(&pk, &sk, format!("unknown stream event name `{}`", change.event_name));
    }
    match keys::key_kind(&pk, &sk) {
        KeyKind::Instance { .. } => classify_registration(change, &pk, &sk, removed, now),
        KeyKind::Other if pk.starts_with("SERVICE#") && sk.starts_with(keys::instance_sk_prefix()) => {
            if removed {
                Classified::Ignored("removed item had a malformed registration key")
            } else {
                invalid(&pk, &sk, "sk must be INSTANCE#<version>#<instance_id>".into())
            }
        }
        KeyKind::Needs { consumer } => classify_needs(change, &pk, &sk, consumer, removed),
        KeyKind::Own => Classified::Ignored("the fan-out's own write"),
        KeyKind::Other => Classified::Ignored("not a Beacon key"),
    }
}

fn invalid(pk: &str, sk: &str, reason: String) -> Classified {
    Classified::Invalid(InvalidRecord {
        pk: Some(pk.to_owned()),
        sk: Some(sk.to_owned()),
        service: pk.strip_prefix("SERVICE#").map(str::to_owned),
        reason,
    })
}

fn decode_image<T>(
    image: Option<&Item>,
    decode: fn(&Item) -> Result<T, DecodeError>,
) -> Option<Result<T, DecodeError>> {
    image.filter(|i| !i.inner().is_empty()).map(decode)
}

fn classify_registration(change: &StreamChange, pk: &str, sk: &str, removed: bool, now: i64) -> Classified {
    let before = decode_image(change.old_image.as_ref(), decode_registration).and_then(Result::ok);
    if removed {
        let Some(before) = before else {
            return Classified::Ignored("removed item was not a valid registration");
        };
        let kind = if is_ttl_delete(change) || before.is_expired(now) {
            ChangeKind::Expired
        } else {
            ChangeKind::Deregistered
        };
        return Classified::Registration(RegistrationChange { kind, before: Some(before), after: None });
    }
    let after = match decode_image(change.new_image.as_ref(), decode_registration) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return invalid(pk, sk, e.to_string()),
        None => return invalid(pk, sk, "record has no new image (the stream must be NEW_AND_OLD_IMAGES)".into()),
    };
    let kind = match &before {
        None => ChangeKind::Registered,
        Some(b) if b == &after => return Classified::Ignored("identical write"),
        Some(b) if b.same_but_heartbeat(&after) => {
            return Classified::Heartbeat { service: after.service.clone() };
        }
        Some(b) if b.status != after.status => ChangeKind::StatusChanged,
        Some(_) => ChangeKind::Updated,
    };
    Classified::Registration(RegistrationChange { kind, before, after: Some(after) })
}

fn classify_needs(change: &StreamChange, pk: &str, sk: &str, consumer: String, removed: bool) -> Classified {
    let before = decode_image(change.old_image.as_ref(), decode_needs).and_then(Result::ok);
    let after = if removed {
        None
    } else {
        match decode_image(change.new_image.as_ref(), decode_needs) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => return invalid(pk, sk, e.to_string()),
            None => return invalid(pk, sk, "record has no new image".into()),
        }
    };
    if before.as_ref().map(|n| &n.needs) == after.as_ref().map(|n| &n.needs) {
        return Classified::Ignored("needs unchanged");
    }
    Classified::Needs(NeedsChange { consumer, before, after })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::item::{encode_needs, encode_registration};
    use crate::registration::Status;
    use crate::requirement::parse_needs;
    use serde_dynamo::AttributeValue as Av;

    fn reg() -> Registration {
        Registration::new_at("orders", "1.0", "i-1", "https://o.example", Status::Healthy, 60, 1_000).unwrap()
    }

    fn change(name: &str, old: Option<&Registration>, new: Option<&Registration>) -> StreamChange {
        let any = new.or(old).unwrap();
        let full = encode_registration(any);
        let keys: std::collections::HashMap<String, Av> = full
            .inner()
            .iter()
            .filter(|(k, _)| *k == "pk" || *k == "sk")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        StreamChange {
            event_id: "e1".into(),
            event_name: name.into(),
            keys: keys.into(),
            old_image: old.map(encode_registration),
            new_image: new.map(encode_registration),
            user_identity: None,
            created_at: 1_000,
        }
    }

    fn kind(c: Classified) -> ChangeKind {
        match c {
            Classified::Registration(r) => r.kind,
            other => panic!("expected a registration change, got {other:?}"),
        }
    }

    #[test]
    fn writes_are_classified() {
        let a = reg();
        assert_eq!(kind(classify(&change("INSERT", None, Some(&a)), 1_001)), ChangeKind::Registered);
        let mut b = a.clone();
        b.status = Status::Draining;
        assert_eq!(kind(classify(&change("MODIFY", Some(&a), Some(&b)), 1_001)), ChangeKind::StatusChanged);
        let mut c = a.clone();
        c.endpoint_url = "https://new.example".into();
        assert_eq!(kind(classify(&change("MODIFY", Some(&a), Some(&c)), 1_001)), ChangeKind::Updated);
        let mut hb = a.clone();
        hb.expires_at += 60;
        hb.updated_at += 60;
        assert!(matches!(classify(&change("MODIFY", Some(&a), Some(&hb)), 1_001), Classified::Heartbeat { .. }));
    }

    #[test]
    fn removals_are_deregistered_or_expired() {
        let a = reg(); // expires at 1_060
        assert_eq!(kind(classify(&change("REMOVE", Some(&a), None), 1_001)), ChangeKind::Deregistered);
        assert_eq!(kind(classify(&change("REMOVE", Some(&a), None), 1_060)), ChangeKind::Expired);
        let mut ttl = change("REMOVE", Some(&a), None);
        ttl.user_identity = Some(("Service".into(), TTL_PRINCIPAL.into()));
        assert_eq!(kind(classify(&ttl, 1_001)), ChangeKind::Expired);
        // DynamoDB Local's TTL deletes: an event name the SDK does not know.
        let local_ttl = change("UNKNOWN", Some(&a), None);
        assert_eq!(kind(classify(&local_ttl, 1_001)), ChangeKind::Expired);
    }

    #[test]
    fn malformed_items_are_invalid_with_key_and_reason() {
        let a = reg();
        let mut c = change("INSERT", None, Some(&a));
        if let Some(img) = c.new_image.as_mut() {
            img.inner_mut().insert("status".into(), Av::N("1".into()));
        }
        match classify(&c, 1_001) {
            Classified::Invalid(i) => {
                assert_eq!(i.pk.as_deref(), Some("SERVICE#orders"));
                assert_eq!(i.service.as_deref(), Some("orders"));
                assert!(i.reason.contains("status"), "{}", i.reason);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn needs_changes_and_own_writes() {
        let n = Needs { consumer: "web".into(), needs: parse_needs("orders").unwrap() };
        let img = encode_needs(&n, 1);
        let c =
            StreamChange { event_name: "INSERT".into(), keys: img.clone(), new_image: Some(img), ..Default::default() };
        assert!(matches!(classify(&c, 1), Classified::Needs(NeedsChange { after: Some(_), .. })));
        let own: std::collections::HashMap<String, Av> =
            [("pk".to_string(), Av::S("CONSUMER#web".into())), ("sk".to_string(), Av::S("RESOLVED".into()))].into();
        let c = StreamChange { event_name: "MODIFY".into(), keys: own.into(), ..Default::default() };
        assert_eq!(classify(&c, 1), Classified::Ignored("the fan-out's own write"));
    }
}
