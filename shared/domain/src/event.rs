//! The published events: a versioned JSON document per real change, with
//! SNS message attributes for filter policies. Schemas: `events/schema/`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::change::{ChangeKind, InvalidRecord, RegistrationChange};
use crate::registration::{Registration, Status};
use crate::view::{RequirementView, ResolvedItem};

/// The version of the event documents. Additive changes keep it; a
/// breaking change bumps it, and subscribers can filter on it.
pub const SCHEMA_VERSION: u32 = 1;

/// A change to one registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEvent {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Unique per event; equal across re-deliveries (the stream record id).
    pub event_id: String,
    /// The DynamoDB stream record's `eventID`.
    pub record_id: String,
    /// registered · updated · status_changed · deregistered · expired.
    pub kind: ChangeKind,
    /// Service name.
    pub service: String,
    /// Version (normalised semver).
    pub version: String,
    /// Instance id.
    pub instance_id: String,
    /// Status after the change (before, for removals).
    pub status: Status,
    /// The registration before, when there was one.
    pub before: Option<Registration>,
    /// The registration after, unless it was removed.
    pub after: Option<Registration>,
    /// When it changed, epoch seconds: the writer's `updated_at` for writes,
    /// the stream record's approximate creation time for removals.
    pub changed_at: i64,
}

/// A record that could not be read as a Beacon item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidEvent {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The stream record id (unique per event).
    pub event_id: String,
    /// The DynamoDB stream record's `eventID`.
    pub record_id: String,
    /// Always `invalid`.
    pub kind: InvalidKind,
    /// The item's pk, if it had a string one.
    pub pk: Option<String>,
    /// The item's sk, if it had a string one.
    pub sk: Option<String>,
    /// The service its key names, if any.
    pub service: Option<String>,
    /// What is wrong, naming the attribute.
    pub reason: String,
    /// The stream record's approximate creation time, epoch seconds.
    pub changed_at: i64,
}

/// The `kind` tag of [`InvalidEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidKind {
    /// The only value.
    Invalid,
}

/// A consumer's resolved view changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedEvent {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `<record_id>/<consumer>`: one record can change many consumers' views.
    pub event_id: String,
    /// The stream record whose change caused this.
    pub record_id: String,
    /// Always `resolved`.
    pub kind: ResolvedKind,
    /// The consumer whose view changed.
    pub consumer: String,
    /// The service whose change caused it, when one did (not for needs changes).
    pub service: Option<String>,
    /// The view's revision after the change.
    pub revision: u64,
    /// What the consumer needs, as text.
    pub needs: Vec<String>,
    /// Per needed service, each requirement's outcome.
    pub services: BTreeMap<String, Vec<RequirementView>>,
    /// The stream record's approximate creation time, epoch seconds.
    pub changed_at: i64,
}

/// The `kind` tag of [`ResolvedEvent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolvedKind {
    /// The only value.
    Resolved,
}

/// Any published event.
// Short-lived, one per published message: no point boxing a variant.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Event {
    /// A registration changed.
    Change(ChangeEvent),
    /// A record was malformed.
    Invalid(InvalidEvent),
    /// A consumer's view changed.
    Resolved(ResolvedEvent),
}

impl Event {
    /// A change event for a classified registration change.
    pub fn change(record_id: &str, change: &RegistrationChange, record_created_at: i64) -> Self {
        let current = change.current();
        Event::Change(ChangeEvent {
            schema_version: SCHEMA_VERSION,
            event_id: record_id.to_owned(),
            record_id: record_id.to_owned(),
            kind: change.kind,
            service: current.service.clone(),
            version: current.version.to_string(),
            instance_id: current.instance_id.clone(),
            status: current.status,
            before: change.before.clone(),
            after: change.after.clone(),
            changed_at: change.after.as_ref().map_or(record_created_at, |a| a.updated_at),
        })
    }

    /// An invalid event for a malformed record.
    pub fn invalid(record_id: &str, invalid: &InvalidRecord, record_created_at: i64) -> Self {
        Event::Invalid(InvalidEvent {
            schema_version: SCHEMA_VERSION,
            event_id: record_id.to_owned(),
            record_id: record_id.to_owned(),
            kind: InvalidKind::Invalid,
            pk: invalid.pk.clone(),
            sk: invalid.sk.clone(),
            service: invalid.service.clone(),
            reason: invalid.reason.clone(),
            changed_at: record_created_at,
        })
    }

    /// A resolved event for a consumer's new view.
    pub fn resolved(record_id: &str, service: Option<&str>, item: &ResolvedItem, record_created_at: i64) -> Self {
        Event::Resolved(ResolvedEvent {
            schema_version: SCHEMA_VERSION,
            event_id: format!("{record_id}/{}", item.consumer),
            record_id: record_id.to_owned(),
            kind: ResolvedKind::Resolved,
            consumer: item.consumer.clone(),
            service: service.map(str::to_owned),
            revision: item.revision,
            needs: item.needs.clone(),
            services: item.view(),
            changed_at: record_created_at,
        })
    }

    /// The unique id subscribers de-duplicate on.
    pub fn event_id(&self) -> &str {
        match self {
            Event::Change(e) => &e.event_id,
            Event::Invalid(e) => &e.event_id,
            Event::Resolved(e) => &e.event_id,
        }
    }

    /// The kind, as text.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Change(e) => e.kind.as_str(),
            Event::Invalid(_) => "invalid",
            Event::Resolved(_) => "resolved",
        }
    }

    /// SNS message attributes (all `String`), for subscription filter
    /// policies: `kind` always; `service`, `version`, `status` on change
    /// events; `service` on invalid events whose key names one; `consumer`
    /// (and `service`, when a service change caused it) on resolved events.
    pub fn message_attributes(&self) -> Vec<(&'static str, String)> {
        let mut attrs = vec![("kind", self.kind().to_owned())];
        match self {
            Event::Change(e) => {
                attrs.push(("service", e.service.clone()));
                attrs.push(("version", e.version.clone()));
                attrs.push(("status", e.status.as_str().to_owned()));
            }
            Event::Invalid(e) => attrs.extend(e.service.clone().map(|s| ("service", s))),
            Event::Resolved(e) => {
                attrs.push(("consumer", e.consumer.clone()));
                attrs.extend(e.service.clone().map(|s| ("service", s)));
            }
        }
        attrs
    }

    /// The JSON body published to SNS.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail: every map key is a
        // string and no value has a fallible Serialize.
        serde_json::to_string(self).unwrap_or_default()
    }
}
