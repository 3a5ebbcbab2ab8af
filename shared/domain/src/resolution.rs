//! Choosing what a requirement resolves to, from a service's instances.
//!
//! Pure: the caller supplies the instances (read consistently from the
//! table) and `now`. The same function backs the fan-out's resolved items,
//! the catalog API and `beacon get`, so every path agrees.

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::registration::{Registration, Status};
use crate::requirement::Requirement;
use crate::subset::{Subset, slots_for};

/// One healthy endpoint of the chosen version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    /// The instance it belongs to (the sort order, so output is stable).
    pub instance_id: String,
    /// Where to call it.
    pub endpoint_url: String,
    /// What to invoke, when the instance registered an ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

/// A requirement that resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// The highest satisfying version with a healthy instance.
    #[serde(with = "crate::registration::version_text")]
    pub version: Version,
    /// Its healthy, unexpired instances, ordered by instance id: all of
    /// them, or the consumer's slot when there are more than
    /// [`SUBSET_SIZE`](crate::subset::SUBSET_SIZE) (see [`crate::subset`]).
    pub endpoints: Vec<Endpoint>,
    /// Present when `endpoints` is a subset: which one, and of how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<Subset>,
}

impl Resolved {
    /// What `consumer` of `service` gets: every endpoint when there are at
    /// most [`SUBSET_SIZE`](crate::subset::SUBSET_SIZE), else its slot of them.
    pub fn for_consumer(&self, service: &str, consumer: &str) -> Resolved {
        let n = self.endpoints.len();
        let slots = slots_for(n);
        if slots == 1 {
            return self.clone();
        }
        let slot = crate::subset::slot_of(service, consumer, slots);
        Resolved {
            version: self.version.clone(),
            endpoints: crate::subset::slot_endpoints(service, &self.endpoints, slot, slots),
            subset: Some(Subset::slot(slot, slots)),
        }
    }
}

/// Why a requirement did not resolve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Unresolved {
    /// No live (unexpired) instance of the service is registered.
    #[error("no such service is registered")]
    NoSuchService,
    /// Instances exist, but no version satisfies the requirement.
    #[error("no registered version matches (available: {})", list(available))]
    NoVersionMatches {
        /// The versions that are registered, highest first.
        available: Vec<String>,
    },
    /// Versions match, but none has a healthy instance.
    #[error("matching versions have no healthy instance")]
    NoneHealthy,
    /// The only matching instances are draining: the service is going away
    /// or being replaced, not missing.
    #[error("matching instances are all draining")]
    OnlyDraining,
}

fn list(v: &[String]) -> String {
    v.join(", ")
}

/// The outcome for one requirement, as stored in resolved items and files.
pub type Resolution = Result<Resolved, Unresolved>;

/// Resolves `req` against `instances` (any services; others are ignored) at
/// `now`. Expired instances count as absent; unhealthy and draining ones are
/// never chosen.
pub fn resolve(req: &Requirement, instances: &[Registration], now: i64) -> Resolution {
    let live: Vec<&Registration> =
        instances.iter().filter(|r| r.service == req.service() && !r.is_expired(now)).collect();
    if live.is_empty() {
        return Err(Unresolved::NoSuchService);
    }
    let matching: Vec<&Registration> = live.iter().copied().filter(|r| req.matches(&r.version)).collect();
    if matching.is_empty() {
        let mut available: Vec<&Version> = live.iter().map(|r| &r.version).collect();
        available.sort_unstable_by(|a, b| b.cmp(a));
        available.dedup();
        return Err(Unresolved::NoVersionMatches {
            available: available.into_iter().map(ToString::to_string).collect(),
        });
    }
    let best = matching.iter().filter(|r| r.status == Status::Healthy).map(|r| &r.version).max();
    let Some(best) = best else {
        return Err(if matching.iter().any(|r| r.status == Status::Draining) {
            Unresolved::OnlyDraining
        } else {
            Unresolved::NoneHealthy
        });
    };
    let mut endpoints: Vec<Endpoint> = matching
        .iter()
        .filter(|r| r.status == Status::Healthy && &r.version == best)
        .map(|r| Endpoint {
            instance_id: r.instance_id.clone(),
            endpoint_url: r.endpoint_url.clone(),
            arn: r.arn.clone(),
        })
        .collect();
    endpoints.sort();
    Ok(Resolved { version: best.clone(), endpoints, subset: None })
}

/// [`resolve`] as `consumer` sees it: its subset when the chosen version has
/// more than [`SUBSET_SIZE`](crate::subset::SUBSET_SIZE) healthy endpoints (what the fan-out writes in
/// its resolved item). `None`: every endpoint.
pub fn resolve_for(req: &Requirement, instances: &[Registration], now: i64, consumer: Option<&str>) -> Resolution {
    let resolved = resolve(req, instances, now)?;
    Ok(match consumer {
        Some(c) => resolved.for_consumer(req.service(), c),
        None => resolved,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(service: &str, version: &str, id: &str, status: Status, expires_at: i64) -> Registration {
        let mut r =
            Registration::new_at(service, version, id, &format!("https://{id}.example"), status, 60, 0).unwrap();
        r.expires_at = expires_at;
        r
    }

    fn req(s: &str) -> Requirement {
        Requirement::parse(s).unwrap()
    }

    #[test]
    fn picks_highest_healthy_version_and_sorts_endpoints() {
        let all = vec![
            reg("orders", "1.0", "a", Status::Healthy, 100),
            reg("orders", "2.0.0", "c", Status::Healthy, 100),
            reg("orders", "2.0.0", "b", Status::Healthy, 100),
            reg("orders", "3.0.0", "d", Status::Unhealthy, 100),
            reg("users", "9.0.0", "e", Status::Healthy, 100),
        ];
        let got = resolve(&req("orders"), &all, 10).unwrap();
        assert_eq!(got.version, Version::new(2, 0, 0));
        let ids: Vec<_> = got.endpoints.iter().map(|e| e.instance_id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(resolve(&req("orders==1.0"), &all, 10).unwrap().version, Version::new(1, 0, 0));
    }

    #[test]
    fn every_failure_says_why() {
        let all = vec![
            reg("orders", "1.0.0", "a", Status::Unhealthy, 100),
            reg("pay", "1.0.0", "b", Status::Draining, 100),
            reg("pay", "1.0.0", "c", Status::Unhealthy, 100),
            reg("gone", "1.0.0", "d", Status::Healthy, 5),
        ];
        assert_eq!(resolve(&req("nobody"), &all, 10), Err(Unresolved::NoSuchService));
        assert_eq!(resolve(&req("gone"), &all, 10), Err(Unresolved::NoSuchService));
        assert_eq!(
            resolve(&req("orders^2"), &all, 10),
            Err(Unresolved::NoVersionMatches { available: vec!["1.0.0".into()] })
        );
        assert_eq!(resolve(&req("orders"), &all, 10), Err(Unresolved::NoneHealthy));
        assert_eq!(resolve(&req("pay"), &all, 10), Err(Unresolved::OnlyDraining));
    }

    #[test]
    fn expired_instances_are_not_chosen() {
        let all = vec![
            reg("orders", "2.0.0", "new", Status::Healthy, 5),
            reg("orders", "1.0.0", "old", Status::Healthy, 100),
        ];
        assert_eq!(resolve(&req("orders"), &all, 10).unwrap().version, Version::new(1, 0, 0));
    }
}
