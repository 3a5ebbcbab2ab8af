//! The read models: a consumer's declared needs, and the resolved view the
//! fan-out keeps for it (per needed service, per requirement, what it
//! resolved to or why not). What consumers, events and the services file read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::registration::Registration;
use crate::requirement::Requirement;
use crate::resolution::{Resolution, resolve};

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
    /// Whether any requirement shows a subset of its endpoints: then a
    /// view group's form of it leaves the endpoints out, and each member's
    /// differs (see [`ViewCache::member_view`]).
    pub fn has_subset(&self) -> bool {
        self.requirements.iter().any(|r| matches!(&r.outcome, Outcome::Resolved(x) if x.subset.is_some()))
    }

    /// A view at `generation`, with its digest.
    pub fn new(generation: u64, requirements: Vec<RequirementView>) -> Self {
        use sha2::Digest as _;
        let json = serde_json::to_vec(&requirements).unwrap_or_default();
        let digest = hex::encode(&sha2::Sha256::digest(&json)[..12]);
        Self { generation, digest, requirements }
    }
}

/// The id of a view group: consumers whose requirements on a service are
/// the same list share one view, so the fan-out resolves it once and
/// compares it once (docs/architecture.md, "View groups"). Order matters:
/// a view lists requirements in the order the consumer declared them.
pub fn group_id(requirements: &[String]) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(requirements).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(&json)[..12])
}

/// One view group of a service, as stored in `FANOUT#<s> / VIEW#<id>`:
/// the view last claimed for the group's consumers, at the generation of
/// the read it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewGroup {
    /// [`group_id`] of `requirements`.
    pub id: String,
    /// The requirements on the service that every member has.
    pub requirements: Vec<String>,
    /// The view, with the generation that claimed it.
    pub view: ServiceView,
    /// The claim's members may not all have been written, or handed on to
    /// the refresh queue, yet (the claiming invocation may have failed): the
    /// next refresh rewrites them even if its view is the same.
    pub pending: bool,
}

/// Views computed from one read of a service: each distinct requirement is
/// resolved once, however many groups (or consumers) name it.
///
/// A requirement whose chosen version has more endpoints than one view
/// shows ([`crate::subset`]) has two forms: a view group's, which stands
/// for every slot (the endpoints left out, a digest per slot kept), and a
/// consumer's, which holds its slot's endpoints. Every other requirement
/// looks the same in both.
#[derive(Debug)]
pub struct ViewCache<'a> {
    instances: &'a [Registration],
    now: i64,
    generation: u64,
    outcomes: BTreeMap<String, Option<Cached>>,
}

/// One requirement's outcome in both forms.
#[derive(Debug)]
struct Cached {
    /// The service the requirement names.
    service: String,
    /// The group's form.
    group: RequirementView,
    /// When subset: each slot's endpoints, and the chosen version.
    slots: Option<(Vec<Vec<crate::resolution::Endpoint>>, semver::Version)>,
}

impl<'a> ViewCache<'a> {
    /// Views at `generation` over `instances`, resolved at `now`.
    pub fn new(instances: &'a [Registration], generation: u64, now: i64) -> Self {
        Self { instances, now, generation, outcomes: BTreeMap::new() }
    }

    /// The view for a list of requirements (as text), in a view group's
    /// form. An unreadable requirement (a hand-edited edge: the fan-out
    /// writes edges only from validated needs) is left out rather than
    /// blocking the refresh.
    pub fn view(&mut self, requirements: &[String]) -> ServiceView {
        let views = requirements.iter().filter_map(|text| self.cached(text).map(|c| c.group.clone())).collect();
        ServiceView::new(self.generation, views)
    }

    /// The view `consumer` gets of a list of requirements: the group's
    /// form, with its slot's endpoints where a requirement is subset.
    pub fn member_view(&mut self, requirements: &[String], consumer: &str) -> ServiceView {
        let views = requirements
            .iter()
            .filter_map(|text| {
                let cached = self.cached(text)?;
                Some(match &cached.slots {
                    None => cached.group.clone(),
                    Some((slots, version)) => {
                        let count = u32::try_from(slots.len()).unwrap_or(u32::MAX);
                        let slot = crate::subset::slot_of(&cached.service, consumer, count);
                        RequirementView {
                            requirement: cached.group.requirement.clone(),
                            outcome: Outcome::Resolved(crate::resolution::Resolved {
                                version: version.clone(),
                                endpoints: slots[slot as usize].clone(),
                                subset: Some(crate::subset::Subset::slot(slot, count)),
                            }),
                        }
                    }
                })
            })
            .collect();
        ServiceView::new(self.generation, views)
    }

    fn cached(&mut self, text: &str) -> Option<&Cached> {
        if !self.outcomes.contains_key(text) {
            let cached = Requirement::parse(text)
                .map_err(|e| {
                    tracing::warn!(requirement = %text, error = %e, "unreadable requirement on a dependency edge");
                })
                .ok()
                .map(|req| {
                    let outcome = resolve(&req, self.instances, self.now);
                    subset_forms(req.to_string(), req.service(), outcome)
                });
            self.outcomes.insert(text.to_owned(), cached);
        }
        self.outcomes.get(text).and_then(Option::as_ref)
    }

    /// How many distinct requirements were resolved (or found unreadable).
    pub fn resolutions(&self) -> usize {
        self.outcomes.len()
    }
}

/// Both forms of one outcome.
fn subset_forms(requirement: String, service: &str, outcome: Resolution) -> Cached {
    match outcome {
        Ok(whole) if crate::subset::slots_for(whole.endpoints.len()) > 1 => {
            let count = crate::subset::slots_for(whole.endpoints.len());
            let slots = crate::subset::all_slots(service, &whole.endpoints, count);
            let group = crate::resolution::Resolved {
                version: whole.version.clone(),
                endpoints: Vec::new(),
                subset: Some(crate::subset::Subset {
                    slot: None,
                    slots: count,
                    of: Some(whole.endpoints.len()),
                    digests: slots.iter().map(|s| crate::subset::digest(s)).collect(),
                }),
            };
            Cached {
                service: service.to_owned(),
                group: RequirementView { requirement, outcome: Outcome::Resolved(group) },
                slots: Some((slots, whole.version)),
            }
        }
        other => Cached {
            service: service.to_owned(),
            group: RequirementView { requirement, outcome: Outcome::from(other) },
            slots: None,
        },
    }
}

/// Which members of a view group moved when its view went from `old` to
/// `new` (both in the group's form).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Moved {
    /// Per slot count, the slots whose endpoints moved. Only meaningful
    /// when `all` is false.
    #[serde(default)]
    pub slots: BTreeMap<u32, Vec<u32>>,
    /// Every member moved (or it cannot be told which did).
    #[serde(default)]
    pub all: bool,
}

impl Moved {
    /// Every member.
    pub fn everyone() -> Self {
        Self { slots: BTreeMap::new(), all: true }
    }

    /// Which members moved from `old` to `new`: all of them unless the only
    /// differences are inside subset requirements whose version and slot
    /// count stayed the same.
    pub fn between(old: &ServiceView, new: &ServiceView) -> Self {
        if old.requirements.len() != new.requirements.len() {
            return Self::everyone();
        }
        let mut moved = Self::default();
        for (a, b) in old.requirements.iter().zip(&new.requirements) {
            if a == b {
                continue;
            }
            let (Outcome::Resolved(x), Outcome::Resolved(y)) = (&a.outcome, &b.outcome) else {
                return Self::everyone();
            };
            match (&x.subset, &y.subset) {
                (Some(sx), Some(sy))
                    if a.requirement == b.requirement
                        && x.version == y.version
                        && sx.slots == sy.slots
                        && sx.digests.len() == sy.digests.len() =>
                {
                    let slots = moved.slots.entry(sy.slots).or_default();
                    for (j, (dx, dy)) in sx.digests.iter().zip(&sy.digests).enumerate() {
                        if dx != dy {
                            slots.push(u32::try_from(j).unwrap_or(u32::MAX));
                        }
                    }
                    slots.sort_unstable();
                    slots.dedup();
                }
                _ => return Self::everyone(),
            }
        }
        moved
    }

    /// Whether `consumer` of `service` is among them.
    pub fn includes(&self, service: &str, consumer: &str) -> bool {
        self.all
            || self
                .slots
                .iter()
                .any(|(count, moved)| moved.binary_search(&crate::subset::slot_of(service, consumer, *count)).is_ok())
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

/// Why a view write was refused, from the resolved item as it was (see
/// `ports::Views::write_view`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No item, or it no longer lists the service.
    NotNeeded,
    /// The stored view is as new or newer: a later read won.
    Stale,
    /// The stored view is this one, under an older generation.
    SameViewOlder,
}

/// Why writing `view` of `service` was refused, given the item as it was.
pub fn why_refused(old: Option<&ResolvedItem>, service: &str, view: &ServiceView) -> Refused {
    let stored = old.filter(|o| o.needed_services.iter().any(|n| n == service)).and_then(|o| o.services.get(service));
    match stored {
        None => Refused::NotNeeded,
        Some(s) if s.generation >= view.generation => Refused::Stale,
        Some(_) => Refused::SameViewOlder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_view_write_says_why_from_the_item_as_it_was() {
        let view =
            |generation: u64, digest: &str| ServiceView { generation, digest: digest.into(), requirements: Vec::new() };
        let item = |needed: bool, stored: Option<ServiceView>| ResolvedItem {
            consumer: "web".into(),
            revision: 1,
            needs: vec!["orders".into()],
            needed_services: if needed { vec!["orders".into()] } else { Vec::new() },
            services: stored.into_iter().map(|v| ("orders".to_owned(), v)).collect(),
            last_change_id: None,
        };
        let new = view(5, "a");
        assert_eq!(why_refused(None, "orders", &new), Refused::NotNeeded, "no item");
        assert_eq!(why_refused(Some(&item(false, Some(view(1, "a")))), "orders", &new), Refused::NotNeeded);
        assert_eq!(why_refused(Some(&item(true, Some(view(5, "b")))), "orders", &new), Refused::Stale, "as new");
        assert_eq!(why_refused(Some(&item(true, Some(view(9, "b")))), "orders", &new), Refused::Stale, "newer");
        assert_eq!(why_refused(Some(&item(true, Some(view(4, "a")))), "orders", &new), Refused::SameViewOlder);
    }

    #[test]
    fn group_ids_follow_the_requirement_list_and_its_order() {
        let a = vec!["auth^1".to_owned(), "auth==1.2.0".to_owned()];
        let b = vec!["auth==1.2.0".to_owned(), "auth^1".to_owned()];
        assert_eq!(group_id(&a), group_id(&a.clone()));
        assert_ne!(group_id(&a), group_id(&b), "a view lists requirements in declared order");
        assert_eq!(group_id(&a).len(), 24);
    }

    #[test]
    fn each_distinct_requirement_is_resolved_once() {
        let instances = Vec::new();
        let mut cache = ViewCache::new(&instances, 7, 0);
        let one = vec!["auth^1".to_owned()];
        let two = vec!["auth^1".to_owned(), "auth".to_owned()];
        for _ in 0..1000 {
            assert_eq!(cache.view(&one).generation, 7);
        }
        let v = cache.view(&two);
        assert_eq!(v.requirements.len(), 2);
        assert_eq!(cache.resolutions(), 2);
        assert_eq!(cache.view(&["not a requirement!".to_owned()]).requirements, vec![]);
    }
}
