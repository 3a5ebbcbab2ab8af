//! The fan-out's ports: what the stream path and the refresh function read
//! and write in the table, one concern per trait ([`FanOutStore`] is all
//! six), and the refresh queue its large refreshes go through.

use async_trait::async_trait;

use super::StoreError;
use crate::change::ShardRepair;
use crate::registration::Registration;
use crate::view::{Refused, ResolvedItem, ServiceView, ViewGroup};

/// A consumer that depends on a service, from its dependency edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    /// The consumer id.
    pub consumer: String,
    /// Its requirements on the service, as text.
    pub requirements: Vec<String>,
}

/// One service's partition, read consistently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePartition {
    /// Valid registrations (expired ones included; resolution skips them).
    pub instances: Vec<Registration>,
    /// Registration items that did not decode (already reported on write).
    pub invalid: usize,
    /// Consumers that need the service (empty from [`Registry::read_state`]).
    pub dependents: Vec<Dependent>,
    /// The service's view groups, whose members are found on the edges.
    pub groups: Vec<ViewGroup>,
}

/// A service's generation just after a bump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation {
    /// The new value.
    pub value: u64,
    /// Whether the service's dependents are in view groups. False for a
    /// service last refreshed before view groups existed: its next refresh
    /// writes every dependent and creates the groups (docs/architecture.md,
    /// "View groups").
    pub grouped: bool,
}

/// One page of a service's dependency edges, in sort-key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependentsPage {
    /// The edges on the page.
    pub dependents: Vec<Dependent>,
    /// The last edge's consumer, to continue after; `None` on the last page.
    pub next: Option<String>,
}

/// A page of a large refresh handed to the refresh queue: write the
/// members of every view group of `service` still claimed at `generation`,
/// among the edges after `after` (docs/architecture.md, "Large fan-outs").
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefreshPage {
    /// The service whose dependents are refreshed.
    pub service: String,
    /// The generation whose claims the page writes; groups claimed since by
    /// a newer refresh are that refresh's to write, except those named in
    /// `moved`.
    pub generation: u64,
    /// The consumer whose edge the page starts after (`None`: the first).
    pub after: Option<String>,
    /// The stream records of the change, for `resolved` events' ids and
    /// their re-publication on retry.
    pub change_ids: Vec<String>,
    /// When the change was made (epoch seconds), for the events.
    pub created_at: i64,
    /// Per claimed group whose view is a subset, which members it moved
    /// (docs/architecture.md, "Large services"): written with the group's
    /// current claim, whoever made it. A group not named here has every
    /// member written, while still claimed at `generation`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub moved: std::collections::BTreeMap<String, crate::view::Moved>,
}

impl RefreshPage {
    /// The same page always has the same id, so a retried sender's copy is
    /// dropped by the queue's deduplication instead of doubling the rest of
    /// the refresh.
    pub fn dedup_id(&self) -> String {
        use sha2::Digest as _;
        let text = format!("{}\n{}\n{}", self.service, self.generation, self.after.as_deref().unwrap_or(""));
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16])
    }
}

/// Where the fan-out hands the pages of a large refresh.
#[async_trait]
pub trait RefreshQueue: Send + Sync {
    /// Sends one page (at least once).
    async fn send(&self, page: &RefreshPage) -> Result<(), StoreError>;
}

/// What writing one service view into a resolved item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewWrite {
    /// The view changed; `revision` was bumped. Carries the item after.
    Changed(Box<ResolvedItem>),
    /// The view was already this; only its generation moved. Carries the item.
    Unchanged(Box<ResolvedItem>),
    /// A newer generation is already stored: a later read won.
    Stale,
    /// The consumer no longer needs the service (or has no resolved item).
    NotNeeded,
}

/// A service's generation: the count every refresh bumps first, and its `grouped` mark (docs/architecture.md, "Convergence under races").
#[async_trait]
pub trait Generations: Send + Sync {
    /// Atomically adds one to the service's generation and returns the new
    /// value (docs/architecture.md, "Convergence under races": bump, then read, then write).
    async fn bump_generation(&self, service: &str) -> Result<Generation, StoreError>;

    /// Records that the service's dependents are in view groups, if its
    /// generation is still `generation`.
    async fn mark_grouped(&self, service: &str, generation: u64) -> Result<bool, StoreError>;

    /// The service's generation now (a consistent read; 0 before any
    /// bump): a direct refresh's check that no newer one began while it
    /// wrote (docs/architecture.md, "Small fan-outs").
    async fn current_generation(&self, service: &str) -> Result<u64, StoreError>;
}

/// Consistent reads of a service: its registrations with its edges or with its view groups.
#[async_trait]
pub trait ServiceState: Send + Sync {
    /// Reads the service's whole partition (edges too) with a consistent
    /// Query.
    async fn read_service(&self, service: &str) -> Result<ServicePartition, StoreError>;

    /// Reads the service's registrations and view groups, not its edges,
    /// with one consistent Query: its cost does not grow with dependents.
    async fn read_state(&self, service: &str) -> Result<ServicePartition, StoreError>;
}

/// View-group claims, each conditional on the service's generation (docs/architecture.md, "View groups").
#[async_trait]
pub trait ViewGroups: Send + Sync {
    /// Stores `group` (its view's generation is the claim's) as pending,
    /// only if the service's generation is still that one: false when a
    /// newer refresh has begun, which then owns the group.
    async fn claim_group(&self, service: &str, group: &ViewGroup) -> Result<bool, StoreError>;

    /// Clears a claim's pending mark once its members are written or handed
    /// to the refresh queue; false when a newer claim replaced it.
    async fn settle_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError>;

    /// Deletes a view group that has no members, only if the service's
    /// generation is still `generation` (a consumer joining since bumped it).
    async fn drop_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError>;
}

/// Dependency edges: which consumers need a service, with what requirements.
#[async_trait]
pub trait Edges: Send + Sync {
    /// Reads up to `limit` dependency edges after consumer `after`
    /// (consistent).
    async fn dependents(&self, service: &str, after: Option<&str>, limit: usize) -> Result<DependentsPage, StoreError>;

    /// Writes the dependency edge `service → consumer`.
    async fn put_edge(&self, service: &str, consumer: &str, requirements: &[String]) -> Result<(), StoreError>;

    /// Deletes the dependency edge `service → consumer`.
    async fn delete_edge(&self, service: &str, consumer: &str) -> Result<(), StoreError>;
}

/// What a conditional write did: written (the item after), or refused (the
/// item as it was, if there was one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional<T> {
    /// The condition held.
    Written(T),
    /// The condition refused the write.
    Refused(Option<T>),
}

/// Consumers' resolved items: conditional view writes, the header, the revision.
#[async_trait]
pub trait Views: Send + Sync {
    /// Writes `view` for `service` into `consumer`'s resolved item, only if
    /// the stored generation is older and the consumer still needs the
    /// service. When `change_id` is given and the view changed, `revision` is
    /// bumped and `last_change_id` set in the same write.
    ///
    /// The protocol is decided here, once, for every adapter: one
    /// conditional write of a view that moved; when it is refused, the item
    /// as it was says why ([`crate::view::why_refused`]); a view that is the
    /// same but older has only its generation raised (so a slower writer
    /// holding an older read cannot overwrite it later). Adapters implement
    /// the two conditional writes only.
    async fn write_view(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<ViewWrite, StoreError> {
        let old = match self.put_view_if_moved(consumer, service, view, change_id).await? {
            Conditional::Written(item) => return Ok(ViewWrite::Changed(Box::new(item))),
            Conditional::Refused(old) => old,
        };
        match crate::view::why_refused(old.as_ref(), service, view) {
            Refused::NotNeeded => Ok(ViewWrite::NotNeeded),
            Refused::Stale => Ok(ViewWrite::Stale),
            Refused::SameViewOlder => match self.raise_view_generation(consumer, service, view.generation).await? {
                Some(item) => Ok(ViewWrite::Unchanged(Box::new(item))),
                // Raised by a newer writer in between.
                None => Ok(ViewWrite::Stale),
            },
        }
    }

    /// Sets `services.<service>` to `view` (and, with `change_id`, bumps
    /// `revision` and sets `last_change_id`) only if the item exists, lists
    /// `service` in `needed_services`, and holds no view of it or one that
    /// is older *and* different. Returns the item after, or the item as it
    /// was when the condition refused (`None`: no item).
    async fn put_view_if_moved(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<Conditional<ResolvedItem>, StoreError>;

    /// Sets only `services.<service>.generation` to `generation`, if the
    /// consumer still needs the service and the stored one is older.
    /// Returns the item after, `None` when refused.
    async fn raise_view_generation(
        &self,
        consumer: &str,
        service: &str,
        generation: u64,
    ) -> Result<Option<ResolvedItem>, StoreError>;

    /// Creates or updates a consumer's resolved item header: its needs and
    /// needed services; drops views of services no longer needed. Returns
    /// the item after the update.
    async fn set_needs_header(
        &self,
        consumer: &str,
        needs: &[String],
        services: &[String],
        dropped: &[String],
    ) -> Result<ResolvedItem, StoreError>;

    /// Bumps a consumer's revision and records the change id.
    async fn bump_revision(&self, consumer: &str, change_id: &str) -> Result<ResolvedItem, StoreError>;

    /// Deletes a consumer's resolved item (its needs were removed).
    async fn delete_resolved(&self, consumer: &str) -> Result<(), StoreError>;

    /// Reads a consumer's resolved item (consistent).
    async fn get_resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError>;
}

/// The fan-out's repair of a registration's expiry (docs/architecture.md, "The fan-out, batch by batch").
#[async_trait]
pub trait ExpiryRepair: Send + Sync {
    /// Puts a registration into the expiry index (sets its `expiry_shard`),
    /// only if it still has the `expires_at` the record saw; false when a
    /// later write or a delete got there first (its own record decides).
    async fn repair_expiry_shard(&self, repair: &ShardRepair) -> Result<bool, StoreError>;
}

/// Everything the fan-out (the stream path and the refresh function) reads
/// and writes in the table, one concern per trait, so a fake or a fault
/// wrapper names the concerns it needs. Implemented for every type that
/// implements all of them.
pub trait FanOutStore: Generations + ServiceState + ViewGroups + Edges + Views + ExpiryRepair {}

impl<T: Generations + ServiceState + ViewGroups + Edges + Views + ExpiryRepair> FanOutStore for T {}
