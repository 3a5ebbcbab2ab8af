//! The vocabulary a refresh shares, whichever way it writes (directly,
//! through view groups, or in refresh-queue pages): its limits, the stream
//! batch's budget of inline writes, the change it carries and what it did.

use std::sync::atomic::{AtomicUsize, Ordering};

use beacon_domain::event::Event;
use beacon_domain::view::{Moved, ServiceView};

/// How many dependents' views are written at once.
pub(crate) const VIEW_WRITE_CONCURRENCY: usize = 16;

/// A view group claimed by a refresh: its view (in the group's form) and
/// which of its members that view moved.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub view: ServiceView,
    pub moved: Moved,
}

impl Claim {
    /// A claim whose every member is written.
    pub fn everyone(view: ServiceView) -> Self {
        Self { view, moved: Moved::everyone() }
    }
}

/// How much of a refresh one invocation does (docs/architecture.md, "Large
/// fan-outs").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Dependents a stream batch writes itself, over all its services; a
    /// refresh with more dependents than the batch has left goes to the
    /// refresh queue whole. Small, because every other change on the shard
    /// waits for the batch.
    pub inline_dependents: usize,
    /// Dependents one refresh-queue page covers.
    pub page: usize,
    /// Most dependents a service may have and be refreshed directly,
    /// without view groups ([`crate::direct`]); a service with more is
    /// grouped, and stays grouped. 0: every service is grouped.
    pub direct: usize,
}

impl Default for Limits {
    /// 100 dependents inline and 500 a page: at 16 writes in flight and
    /// DynamoDB's usual 5-10 ms a write, about 50 ms and 300 ms of writes.
    /// Up to 16 dependents (one round of writes in flight) directly.
    fn default() -> Self {
        Self { inline_dependents: 100, page: 500, direct: VIEW_WRITE_CONCURRENCY }
    }
}

/// What a refresh wrote and published.
#[derive(Debug, Default)]
pub(crate) struct Refreshed {
    pub events: Vec<Event>,
    pub views_changed: usize,
    pub groups_claimed: usize,
    pub pages_queued: usize,
    /// Dependents whose resolved item no write can fix (see
    /// [`StoreError::bad_item`]): skipped, so the others still get theirs.
    pub bad_items: usize,
}

impl Refreshed {
    pub(crate) fn add(&mut self, other: Refreshed) {
        self.events.extend(other.events);
        self.views_changed += other.views_changed;
        self.groups_claimed += other.groups_claimed;
        self.pages_queued += other.pages_queued;
        self.bad_items += other.bad_items;
    }
}

/// The stream batch's share of inline writes, taken by its refreshes.
#[derive(Debug)]
pub(crate) struct Budget(AtomicUsize);

impl Budget {
    pub fn new(n: usize) -> Self {
        Self(AtomicUsize::new(n))
    }

    /// Takes up to `want`, returning what was taken.
    pub(crate) fn take(&self, want: usize) -> usize {
        let mut taken = 0;
        let _ = self.0.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            taken = left.min(want);
            Some(left - taken)
        });
        taken
    }

    /// Returns what a refresh took and did not write.
    pub(crate) fn give_back(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
}

/// A change's identity, carried to the events of the views it moves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Change<'a> {
    /// The batch's records for the service, in order; the last names the
    /// events.
    pub ids: &'a [&'a str],
    pub created_at: i64,
}

impl Change<'_> {
    pub(crate) fn id(&self) -> &str {
        self.ids.last().copied().unwrap_or_default()
    }
}
