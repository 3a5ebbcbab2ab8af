//! Classifying one stream record into what happened.
//!
//! Input is carrier-neutral ([`StreamChange`]): the AWS adapter decodes the
//! Lambda record's key and images (`beacon_aws::stream`), so no AWS or
//! DynamoDB type reaches this module. The rules (README, "Change events"):
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

use crate::decode::DecodeError;
use crate::keys::{self, KeyKind};
use crate::registration::Registration;
use crate::view::Needs;

/// The principal DynamoDB's TTL deletes carry in `userIdentity`.
pub const TTL_PRINCIPAL: &str = "dynamodb.amazonaws.com";

/// One image of a stream record, decoded by what its key says it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A valid registration.
    Registration(Registration),
    /// A valid needs item.
    Needs(Needs),
    /// The key says registration or needs, but the item breaks the schema.
    Invalid(DecodeError),
    /// A key Beacon does not decode (its own bookkeeping, foreign items).
    Other,
}

/// One stream record, without AWS types.
#[derive(Debug, Clone, Default)]
pub struct StreamChange {
    /// The record's `eventID`; events carry it for de-duplication.
    pub event_id: String,
    /// `INSERT`, `MODIFY`, `REMOVE`, or something else (DynamoDB Local's TTL).
    pub event_name: String,
    /// The item's `pk` and `sk`, from the record's `Keys` (or an image);
    /// `None` when it has no string pair.
    pub key: Option<(String, String)>,
    /// The old image, if the stream carried a non-empty one.
    pub old_image: Option<Image>,
    /// The new image, if the stream carried a non-empty one.
    pub new_image: Option<Image>,
    /// `userIdentity.type` and `.principalId`, present on TTL deletes in AWS.
    pub user_identity: Option<(String, String)>,
    /// Approximate creation time, epoch seconds (rounded to the minute by
    /// DynamoDB Local, so never used to decide expiry).
    pub created_at: i64,
    /// The new image's `expiry_shard`, when it is a string: whether the
    /// item is in the sweeper's index.
    pub new_expiry_shard: Option<String>,
}

/// A registration the sweeper would not expire on time: written (by any
/// SDK or the AWS CLI) without `expiry_shard`, or with one its key does not
/// hash to, so it is outside the expiry index; or with an `expires_at`
/// later than its own `updated_at + ttl_seconds` (an `updated_at` ahead
/// of the fan-out's clock counting as at most [`crate::MAX_CLOCK_SKEW_SECONDS`]
/// ahead). The fan-out writes the right shard and brings `expires_at` back
/// to [`Registration::valid_until_seen_at`] the moment it reads the record,
/// so every registration expires on time, whoever wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardRepair {
    /// The item's pk.
    pub pk: String,
    /// The item's sk.
    pub sk: String,
    /// The shard its key hashes to.
    pub shard: String,
    /// The `expires_at` the record saw: the repair applies only to that
    /// write (a later one brings its own record).
    pub expires_at: i64,
    /// The `expires_at` to store: [`Registration::valid_until_seen_at`]
    /// (equal to `expires_at` for every honest writer).
    pub valid_until: i64,
}

/// The repair a record calls for, if its new image is a valid registration
/// outside the expiry index or set to expire after its own TTL. Costs
/// nothing for Beacon's own writers, which set the shard and
/// `expires_at = updated_at + ttl_seconds`; a heartbeat that moves only
/// `expires_at` keeps the shard.
pub fn shard_repair(change: &StreamChange, now: i64) -> Option<ShardRepair> {
    let (pk, sk) = change.key.as_ref()?;
    let Some(Image::Registration(r)) = &change.new_image else { return None };
    let shard = keys::expiry_shard(pk, sk);
    let valid_until = r.valid_until_seen_at(now);
    let misplaced = change.new_expiry_shard.as_deref() != Some(shard.as_str());
    (misplaced || valid_until < r.expires_at).then(|| ShardRepair {
        pk: pk.clone(),
        sk: sk.clone(),
        shard,
        expires_at: r.expires_at,
        valid_until,
    })
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
    let Some((pk, sk)) = change.key.clone() else {
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
        KeyKind::Other if keys::looks_like_registration(&pk, &sk) => {
            if removed {
                Classified::Ignored("removed item had a malformed registration key")
            } else {
                invalid(&pk, &sk, "sk must be INSTANCE#<version>#<instance_id>".into())
            }
        }
        KeyKind::Needs { consumer } => classify_needs(change, &pk, &sk, consumer, removed),
        KeyKind::Own => Classified::Ignored("the fan-out's own write"),
        // Filtered out by the event source mapping too; the fan-out's
        // bookkeeping is never read from a tenant's partition.
        KeyKind::Stray => Classified::Ignored("not a registration, in a service's partition"),
        KeyKind::Other => Classified::Ignored("not a Beacon key"),
    }
}

fn invalid(pk: &str, sk: &str, reason: String) -> Classified {
    Classified::Invalid(InvalidRecord {
        pk: Some(pk.to_owned()),
        sk: Some(sk.to_owned()),
        service: keys::service_of(pk).map(str::to_owned),
        reason,
    })
}

fn registration(image: Option<&Image>) -> Option<Result<Registration, String>> {
    match image? {
        Image::Registration(r) => Some(Ok(r.clone())),
        Image::Invalid(e) => Some(Err(e.to_string())),
        Image::Needs(_) | Image::Other => Some(Err("the item is not a registration".into())),
    }
}

fn needs(image: Option<&Image>) -> Option<Result<Needs, String>> {
    match image? {
        Image::Needs(n) => Some(Ok(n.clone())),
        Image::Invalid(e) => Some(Err(e.to_string())),
        Image::Registration(_) | Image::Other => Some(Err("the item is not a needs item".into())),
    }
}

fn classify_registration(change: &StreamChange, pk: &str, sk: &str, removed: bool, now: i64) -> Classified {
    let before = registration(change.old_image.as_ref()).and_then(Result::ok);
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
    let after = match registration(change.new_image.as_ref()) {
        Some(Ok(r)) => r,
        Some(Err(e)) => return invalid(pk, sk, e),
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
    let before = needs(change.old_image.as_ref()).and_then(Result::ok);
    let after = if removed {
        None
    } else {
        match needs(change.new_image.as_ref()) {
            Some(Ok(n)) => Some(n),
            Some(Err(e)) => return invalid(pk, sk, e),
            None => return invalid(pk, sk, "record has no new image".into()),
        }
    };
    if before.as_ref().map(|n| &n.needs) == after.as_ref().map(|n| &n.needs) {
        return Classified::Ignored("needs unchanged");
    }
    Classified::Needs(NeedsChange { consumer, before, after })
}

#[cfg(test)]
mod tests;
