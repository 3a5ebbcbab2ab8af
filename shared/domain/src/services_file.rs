//! The document the Lambda extension keeps current for its function (the
//! file, and its loopback endpoint's answer), and lookups in it. Schema:
//! `events/schema/services-file.schema.json`. Reading it from the disk or
//! the endpoint is `beacon-client`'s (the domain does no I/O).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resolution::Endpoint;
use crate::subset::Subset;
use crate::view::{Outcome, RequirementView, ResolvedItem};

/// Where the extension writes unless told otherwise (`BEACON_SERVICES_FILE`,
/// or the seed's `SERVICES_FILE`).
pub const DEFAULT_PATH: &str = "/tmp/beacon/services.json";

/// The file's document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicesFile {
    /// Always 1 for this shape.
    pub schema_version: u32,
    /// The consumer whose view this is.
    pub consumer: String,
    /// The resolved item's revision this file shows.
    pub revision: u64,
    /// What the function needs (`NEEDED_SERVICES`, normalised).
    pub needs: Vec<String>,
    /// Per needed service, each requirement's outcome.
    pub services: BTreeMap<String, Vec<ServiceEntry>>,
}

/// One requirement's outcome, flattened for readers in any language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The requirement as declared (`payments==1.2.0`).
    pub requirement: String,
    /// `resolved` or `unresolved`.
    pub status: String,
    /// The chosen version, when resolved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Healthy endpoints of that version (each with its ARN, if registered):
    /// all of them, or this consumer's slot when `subset` says so.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Present when `endpoints` is this consumer's slot of a larger set
    /// (docs/architecture.md, "Large services").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Subset>,
    /// Why it did not resolve: `no_such_service`, `no_version_matches`,
    /// `none_healthy`, `only_draining`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The same, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<&RequirementView> for ServiceEntry {
    fn from(v: &RequirementView) -> Self {
        match &v.outcome {
            Outcome::Resolved(r) => ServiceEntry {
                requirement: v.requirement.clone(),
                status: "resolved".into(),
                version: Some(r.version.to_string()),
                endpoints: r.endpoints.clone(),
                subset: r.subset.clone(),
                reason: None,
                message: None,
            },
            Outcome::Unresolved(why) => {
                let reason = serde_json::to_value(why)
                    .ok()
                    .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned));
                ServiceEntry {
                    requirement: v.requirement.clone(),
                    status: "unresolved".into(),
                    version: None,
                    endpoints: Vec::new(),
                    subset: None,
                    reason,
                    message: Some(why.to_string()),
                }
            }
        }
    }
}

impl ServicesFile {
    /// The file for a resolved item.
    pub fn from_resolved(item: &ResolvedItem) -> Self {
        Self {
            schema_version: 1,
            consumer: item.consumer.clone(),
            revision: item.revision,
            needs: item.needs.clone(),
            services: item
                .view()
                .iter()
                .map(|(k, v)| (k.clone(), v.iter().map(ServiceEntry::from).collect()))
                .collect(),
        }
    }

    /// The first resolved entry for a service.
    pub fn resolved(&self, service: &str) -> Option<&ServiceEntry> {
        self.services.get(service)?.iter().find(|e| e.status == "resolved")
    }

    /// The first healthy endpoint URL of a service (endpoints are in a stable
    /// order; pick another index to spread load).
    pub fn endpoint_url(&self, service: &str) -> Option<&str> {
        self.resolved(service)?.endpoints.first().map(|e| e.endpoint_url.as_str())
    }

    /// The first ARN registered for a service.
    pub fn arn(&self, service: &str) -> Option<&str> {
        self.resolved(service)?.endpoints.iter().find_map(|e| e.arn.as_deref())
    }
}
