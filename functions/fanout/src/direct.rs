//! Refreshing a service with few dependents directly, without view groups
//! (docs/architecture.md, "Small fan-outs").
//!
//! View groups pay for themselves on large services: a change that moves no
//! view costs no dependent anything, and one that moves a view claims and
//! settles the group once for all its members. For a lone dependent that is
//! 7 write units where writing the view costs 1. So a service with at most
//! [`Limits::direct`](crate::Limits::direct) dependents, and never grouped, is
//! refreshed by reading each dependent's resolved item (a consistent read)
//! and writing only the views that moved: a generation bump and one write
//! per moved view, and no dependent write when nothing moved.
//!
//! Skipping a dependent whose view did not move leaves no trace a slower,
//! older refresh could be refused by: that refresh could still write its
//! older view afterwards. So every refresh that wrote a view reads the
//! service's generation after its writes; if a newer refresh began in
//! between, it runs again (a newer bump, fresh reads of the registrations
//! and of every dependent's item), and puts right whatever it wrote that the
//! newer one did not see. A refresh that wrote nothing needs no check: it
//! cannot have hidden anything. A refresh that dies between its writes and
//! its check is retried by the stream, which does the same.

use std::collections::BTreeMap;

use beacon_domain::event::Event;
use beacon_domain::ports::{Dependent, FanOutStore, Publisher, RefreshQueue, StoreError};
use beacon_domain::view::{ViewCache, group_id};
use futures::{StreamExt, TryStreamExt};
use tracing::debug;

use crate::FanOut;
use crate::work::{Budget, Change, Claim, Refreshed, VIEW_WRITE_CONCURRENCY};

impl<R: FanOutStore, P: Publisher, Q: RefreshQueue> FanOut<R, P, Q> {
    /// Refreshes `dependents` (all of `service`'s) at `generation`, already
    /// bumped. `None` when a newer refresh began while this one wrote: the
    /// caller starts over.
    pub(crate) async fn refresh_directly(
        &self,
        service: &str,
        generation: u64,
        dependents: &[Dependent],
        change: Change<'_>,
        now: i64,
        budget: &Budget,
    ) -> Result<Option<Refreshed>, StoreError> {
        if dependents.is_empty() {
            // Nobody needs the service: nothing to read or write.
            return Ok(Some(Refreshed::default()));
        }
        let state = self.registry.read_state(service).await?;
        let mut views = ViewCache::new(&state.instances, generation, now);
        let mut claimed = BTreeMap::new();
        for dependent in dependents {
            claimed
                .entry(group_id(&dependent.requirements))
                .or_insert_with(|| Claim::everyone(views.view(&dependent.requirements)));
        }
        // View groups left from a regroup whose mark a newer refresh
        // refused, or from `beacon upgrade`: their claimers (and their
        // queued pages) do not check the generation after writing, so
        // nothing is skipped: every dependent is written at this generation,
        // which refuses their older writes, and then the groups go.
        let fence = !state.groups.is_empty();
        // Each dependent's item, read consistently: whose view moved.
        let mut reads = Vec::new();
        for dependent in if fence { &[][..] } else { dependents } {
            reads.push(async move {
                match self.registry.get_resolved(&dependent.consumer).await {
                    Ok(item) => Ok((dependent, item)),
                    // An item no read can decode is left to the write,
                    // which skips it and counts it (the others still get
                    // their views).
                    Err(e) if e.is_bad_item() => Ok((dependent, None)),
                    Err(e) => Err(e),
                }
            });
        }
        let items: Vec<_> = futures::stream::iter(reads).buffered(VIEW_WRITE_CONCURRENCY).try_collect().await?;
        let mut moved = if fence { dependents.to_vec() } else { Vec::new() };
        let mut done = Refreshed::default();
        for (dependent, item) in items {
            // Its own view: a subset view differs from member to member.
            let view = views.member_view(&dependent.requirements, &dependent.consumer);
            match item.filter(|i| i.services.get(service).is_some_and(|held| held.digest == view.digest)) {
                Some(item) => {
                    // A retry of a batch whose write landed but whose event
                    // may not have: publish it again, under the same id.
                    if let Some(id) = item.last_change_id.as_deref().filter(|id| change.ids.contains(id)) {
                        done.events.push(Event::resolved(id, Some(service), &item, change.created_at));
                    }
                }
                // Moved, not needed any more (its needs change is on its
                // way), or no item yet: the write's own conditions decide.
                None => moved.push(dependent.clone()),
            }
        }
        debug!(%service, dependents = dependents.len(), moved = moved.len(), fence, "direct refresh compared");
        if moved.is_empty() {
            return Ok(Some(done));
        }
        // The batch's inline budget is shared with its other refreshes.
        let _ = budget.take(moved.len());
        let mut members = BTreeMap::new();
        done.add(self.write_members(service, &claimed, &moved, &mut views, change, &mut members).await?);
        // Only a view that changed can hide a newer refresh's skip; a
        // refused write or a raised generation cannot.
        if done.views_changed > 0 && self.registry.current_generation(service).await? != generation {
            debug!(%service, generation, "a newer refresh began while this one wrote: starting over");
            return Ok(None);
        }
        if fence {
            for group in &state.groups {
                // Refused when a newer refresh began: it drops them instead.
                self.registry.drop_group(service, &group.id, generation).await?;
            }
        }
        Ok(Some(done))
    }
}
