//! The read models: a consumer's declared needs, and the resolved view the
//! fan-out keeps for it (per needed service, per requirement, what it
//! resolved to or why not). What consumers, events and the services file read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::requirement::Requirement;
use crate::resolution::Resolution;

/// A consumer's declared needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Needs {
    /// The consumer id (a name, same rules as a service name).
    pub consumer: String,
    /// What it needs, in the order declared.
    pub needs: Vec<Requirement>,
}

impl Needs {
    /// The distinct services named, sorted.
    pub fn services(&self) -> Vec<String> {
        let mut s: Vec<String> = self.needs.iter().map(|r| r.service().to_owned()).collect();
        s.sort();
        s.dedup();
        s
    }

    /// The requirements on one service, as text.
    pub fn requirements_on(&self, service: &str) -> Vec<String> {
        self.needs.iter().filter(|r| r.service() == service).map(ToString::to_string).collect()
    }
}

/// One requirement's outcome inside a consumer's resolved view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequirementView {
    /// The requirement, in its text form.
    pub requirement: String,
    /// What it resolved to, or why it did not.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// [`Resolution`] in a serialisable shape (`resolved` xor `unresolved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The requirement resolved.
    Resolved(crate::resolution::Resolved),
    /// It did not, and why.
    Unresolved(crate::resolution::Unresolved),
}

impl From<Resolution> for Outcome {
    fn from(r: Resolution) -> Self {
        match r {
            Ok(v) => Outcome::Resolved(v),
            Err(e) => Outcome::Unresolved(e),
        }
    }
}

/// A consumer's view of one service: the part of a resolved item the
/// fan-out refreshes when that service changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceView {
    /// The service generation this was computed at (docs/architecture.md, "Convergence under races").
    pub generation: u64,
    /// A hash of `requirements`, so a conditional write can tell "changed"
    /// from "same" without DynamoDB comparing nested maps.
    pub digest: String,
    /// One entry per requirement the consumer has on the service.
    pub requirements: Vec<RequirementView>,
}

impl ServiceView {
    /// A view at `generation`, with its digest.
    pub fn new(generation: u64, requirements: Vec<RequirementView>) -> Self {
        use sha2::Digest as _;
        let json = serde_json::to_vec(&requirements).unwrap_or_default();
        let digest = hex::encode(&sha2::Sha256::digest(&json)[..12]);
        Self { generation, digest, requirements }
    }
}

/// The resolved item of one consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedItem {
    /// The consumer id.
    pub consumer: String,
    /// Bumped on every real change of the view; the extension watches it.
    pub revision: u64,
    /// The needs this view answers, as text.
    #[serde(default)]
    pub needs: Vec<String>,
    /// The distinct services named by `needs`; writes of a view are
    /// conditional on the service being listed here.
    #[serde(default)]
    pub needed_services: Vec<String>,
    /// Per needed service, its view.
    #[serde(default)]
    pub services: BTreeMap<String, ServiceView>,
    /// The stream record id of the change that last bumped `revision`, so a
    /// retried record can re-publish the `resolved` event it may have lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_change_id: Option<String>,
}

impl ResolvedItem {
    /// The view without bookkeeping: what a consumer reads and what events
    /// carry.
    pub fn view(&self) -> BTreeMap<String, Vec<RequirementView>> {
        self.services.iter().map(|(k, v)| (k.clone(), v.requirements.clone())).collect()
    }
}
