//! Refreshing a service's dependents through view groups
//! (docs/architecture.md, "View groups" and "Large fan-outs").
//!
//! Consumers with the same requirements on a service form a view group,
//! stored as `FANOUT#<s> / VIEW#<id>` with the view last claimed for it. A
//! change reads the service's registrations and groups (never its edges),
//! resolves each distinct requirement once, and compares each group's view
//! with the stored one: a group whose view did not move costs nothing. A
//! group whose view moved is *claimed* (stored as pending, in a transaction
//! that checks the service's generation is still the refresh's), then its
//! members are found on the edges, page by page: the first page here, the
//! rest handed to the refresh queue. The claim is settled once its members
//! are written or handed on; a pending claim is rewritten by the next
//! refresh even if its view is the same (its writer may have failed).

use std::collections::BTreeMap;

use beacon_domain::event::Event;
use beacon_domain::ports::{Dependent, FanOutStore, Publisher, RefreshPage, RefreshQueue, StoreError, ViewWrite};
use beacon_domain::view::{Moved, ServiceView, ViewCache, ViewGroup, group_id};
use futures::{StreamExt, TryStreamExt};
use tracing::{debug, error, warn};

use crate::FanOut;
use crate::work::{Budget, Change, Claim, Refreshed, VIEW_WRITE_CONCURRENCY};

/// How many times a refresh starts over when a newer one claimed first,
/// before its record is retried by the stream instead.
const ATTEMPTS: usize = 5;

/// Most edges a refresh reads inline to find the members of a subset
/// view's moved slots (a few pages of edges, some 100 bytes each).
const INLINE_EDGES: usize = 5_000;
impl<R: FanOutStore, P: Publisher, Q: RefreshQueue> FanOut<R, P, Q> {
    /// Refreshes every view group of `service` whose view moved.
    pub(crate) async fn refresh(
        &self,
        service: &str,
        change: Change<'_>,
        now: i64,
        budget: &Budget,
    ) -> Result<Refreshed, StoreError> {
        self.refresh_forcing(service, None, change, now, budget).await
    }

    /// [`Self::refresh`], with `force`'s group (if it is grouped) claimed and
    /// every member of it written even if its view did not move: what a
    /// refresh page does when it cannot write a subset view's members with
    /// the group's current claim (pages.rs).
    pub(crate) async fn refresh_forcing(
        &self,
        service: &str,
        force: Option<&str>,
        change: Change<'_>,
        now: i64,
        budget: &Budget,
    ) -> Result<Refreshed, StoreError> {
        for _ in 0..ATTEMPTS {
            let generation = self.registry.bump_generation(service).await?;
            if !generation.grouped {
                // Few dependents: no groups (one more than the limit is
                // asked for, to tell "exactly the limit" from "more").
                let limit = self.limits.direct;
                let page =
                    if limit == 0 { None } else { Some(self.registry.dependents(service, None, limit + 1).await?) };
                if let Some(page) = page.filter(|p| p.next.is_none() && p.dependents.len() <= limit) {
                    match self
                        .refresh_directly(service, generation.value, &page.dependents, change, now, budget)
                        .await?
                    {
                        Some(done) => return Ok(done),
                        None => continue,
                    }
                }
                match self.regroup(service, generation.value, change, now, budget).await? {
                    Some(done) => return Ok(done),
                    None => continue,
                }
            }
            let state = self.registry.read_state(service).await?;
            let mut views = ViewCache::new(&state.instances, generation.value, now);
            let mut claimed = BTreeMap::new();
            let mut lost = false;
            for group in &state.groups {
                let view = views.view(&group.requirements);
                let forced = force == Some(group.id.as_str());
                if view.digest == group.view.digest && !group.pending && !forced {
                    continue;
                }
                if !self.claim(service, &group.id, &group.requirements, &view).await? {
                    lost = true;
                    break;
                }
                // A subset view moves only some slots' members; a pending
                // claim's members may not all hold it, so all are written.
                let moved =
                    if group.pending || forced { Moved::everyone() } else { Moved::between(&group.view, &view) };
                claimed.insert(group.id.clone(), Claim { view, moved });
            }
            debug!(%service, groups = state.groups.len(), claimed = claimed.len(), resolutions = views.resolutions(), "compared view groups");
            if lost {
                continue;
            }
            if claimed.is_empty() {
                return Ok(Refreshed::default());
            }
            return self.fan_out(service, generation.value, &claimed, &mut views, change, budget).await;
        }
        Err(lost_too_often(service))
    }

    /// Writes one consumer's view of `service` after a needs change (its
    /// edge is already written), keeping its view group true: a group seen
    /// for the first time is claimed; a group whose stored view differs from
    /// this fresh read is claimed and all its members rewritten. Returns the
    /// consumer's write and what the group's other members got.
    pub(crate) async fn join(
        &self,
        service: &str,
        consumer: &str,
        requirements: &[String],
        change: Change<'_>,
        now: i64,
        budget: &Budget,
    ) -> Result<(ViewWrite, Refreshed), StoreError> {
        // A write of an attempt that then starts over still moved the view.
        let mut moved = None;
        for _ in 0..ATTEMPTS {
            let generation = self.registry.bump_generation(service).await?;
            let state = self.registry.read_state(service).await?;
            let mut views = ViewCache::new(&state.instances, generation.value, now);
            let view = views.view(requirements);
            let own = views.member_view(requirements, consumer);
            let id = group_id(requirements);
            let stored = state.groups.iter().find(|g| g.id == id);
            // Before view groups (the service's next refresh regroups it),
            // or the group already holds this view: the consumer's own view
            // is all there is to write. A pending group with this view is
            // being written by its claimer, or its failed record will be
            // retried.
            if !generation.grouped || stored.is_some_and(|g| g.view.digest == view.digest) {
                let write = self.registry.write_view(consumer, service, &own, None).await?;
                // Not grouped: a direct refresh may have skipped this
                // consumer after this read, so a write is checked as a
                // direct refresh's is (docs/architecture.md, "Small fan-outs").
                if !generation.grouped
                    && matches!(write, ViewWrite::Changed(_))
                    && self.registry.current_generation(service).await? != generation.value
                {
                    moved = Some(write);
                    continue;
                }
                return Ok((changed_first(write, moved), Refreshed::default()));
            }
            if !self.claim(service, &id, requirements, &view).await? {
                continue;
            }
            let write = self.registry.write_view(consumer, service, &own, None).await?;
            let mut others = Refreshed { groups_claimed: 1, ..Refreshed::default() };
            match stored {
                // A new group: its only other members are consumers joining
                // now, and each of them either sees this claim or claims
                // after it (docs/architecture.md, "View groups").
                None => {
                    self.registry.settle_group(service, &id, generation.value).await?;
                }
                // The group's view moved since it was claimed, and no
                // refresh since has seen it: rewrite every member.
                Some(stored) => {
                    let moved = if stored.pending { Moved::everyone() } else { Moved::between(&stored.view, &view) };
                    let claimed = BTreeMap::from([(id, Claim { view, moved })]);
                    others = self.fan_out(service, generation.value, &claimed, &mut views, change, budget).await?;
                }
            }
            return Ok((changed_first(write, moved), others));
        }
        Err(lost_too_often(service))
    }

    /// Claims a group for `view` (at its generation).
    async fn claim(
        &self,
        service: &str,
        id: &str,
        requirements: &[String],
        view: &ServiceView,
    ) -> Result<bool, StoreError> {
        let group =
            ViewGroup { id: id.to_owned(), requirements: requirements.to_vec(), view: view.clone(), pending: true };
        let won = self.registry.claim_group(service, &group).await?;
        if !won {
            debug!(%service, group = id, generation = view.generation, "a newer refresh began: starting over");
        }
        Ok(won)
    }

    /// Writes the claimed groups' members: here if they fit in the batch's
    /// budget, else all through the refresh queue; then settles the claims
    /// (or drops a group found empty).
    async fn fan_out(
        &self,
        service: &str,
        generation: u64,
        claimed: &BTreeMap<String, Claim>,
        views: &mut ViewCache<'_>,
        change: Change<'_>,
        budget: &Budget,
    ) -> Result<Refreshed, StoreError> {
        let mut done = Refreshed { groups_claimed: claimed.len(), ..Refreshed::default() };
        if let Some(inline) = self.moved_slots_inline(service, generation, claimed, views, change, budget).await? {
            done.add(inline);
            return Ok(done);
        }
        let want = self.limits.page.min(self.limits.inline_dependents);
        let take = budget.take(want);
        let mut members = BTreeMap::new();
        // A refresh that fits in what the batch may still write is done
        // here; a larger one goes to the refresh queue whole, so the batch
        // (and every change on the shard behind it) is not held up by its
        // writes, and the stream path never competes with its pages.
        let page = if take == 0 { None } else { Some(self.registry.dependents(service, None, take).await?) };
        let complete = page.as_ref().is_some_and(|p| p.next.is_none());
        if complete {
            let dependents = page.map(|p| p.dependents).unwrap_or_default();
            budget.give_back(take - dependents.len());
            done.add(self.write_members(service, claimed, &dependents, views, change, &mut members).await?);
        } else {
            budget.give_back(take);
            let page = RefreshPage {
                service: service.to_owned(),
                generation,
                after: None,
                change_ids: change.ids.iter().map(|s| (*s).to_owned()).collect(),
                created_at: change.created_at,
                // Every subset view's claim, whole or not: a newer claim of
                // the group may move only some slots, and this claim's
                // members must still be written (with the group's current
                // view) once this claim is superseded.
                moved: claimed
                    .iter()
                    .filter(|(_, c)| c.view.has_subset())
                    .map(|(id, c)| (id.clone(), c.moved.clone()))
                    .collect(),
            };
            self.queue.send(&page).await?;
            done.pages_queued += 1;
        }
        for id in claimed.keys() {
            // Every edge was read and none is in the group: nobody needs it.
            if complete && !members.contains_key(id) {
                self.registry.drop_group(service, id, generation).await?;
            } else {
                self.registry.settle_group(service, id, generation).await?;
            }
        }
        Ok(done)
    }

    /// A refresh whose every claimed group is a subset view that moved only
    /// some slots writes few members: they are found on the edges here,
    /// when the edges are few enough to read inline and the members fit
    /// the batch's budget, rather than in refresh pages that would each
    /// read the service's registrations again to compute the members'
    /// slots (docs/architecture.md, "Large services"). `None`: not so;
    /// the caller pages as usual. Settles (or drops) the claims when done.
    async fn moved_slots_inline(
        &self,
        service: &str,
        generation: u64,
        claimed: &BTreeMap<String, Claim>,
        views: &mut ViewCache<'_>,
        change: Change<'_>,
        budget: &Budget,
    ) -> Result<Option<Refreshed>, StoreError> {
        if claimed.is_empty() || !claimed.values().all(|c| c.view.has_subset() && !c.moved.all) {
            return Ok(None);
        }
        let (mut after, mut edges, mut members, mut moved) = (None, 0, BTreeMap::new(), Vec::new());
        loop {
            let page = self.registry.dependents(service, after.as_deref(), self.limits.page.max(1)).await?;
            edges += page.dependents.len();
            for dependent in page.dependents {
                let id = group_id(&dependent.requirements);
                let Some(claim) = claimed.get(&id) else { continue };
                *members.entry(id).or_insert(0usize) += 1;
                if claim.moved.includes(service, &dependent.consumer) {
                    moved.push(dependent);
                }
            }
            match page.next {
                None => break,
                Some(_) if edges >= INLINE_EDGES => return Ok(None),
                Some(next) => after = Some(next),
            }
        }
        let take = budget.take(moved.len());
        if take < moved.len() {
            budget.give_back(take);
            return Ok(None);
        }
        let mut counted = BTreeMap::new();
        let done = self.write_members(service, claimed, &moved, views, change, &mut counted).await?;
        for id in claimed.keys() {
            if members.contains_key(id) {
                self.registry.settle_group(service, id, generation).await?;
            } else {
                self.registry.drop_group(service, id, generation).await?;
            }
        }
        Ok(Some(done))
    }

    /// Writes the view of every dependent on the page whose group is
    /// claimed and whose view the claim moved, counting members per group.
    /// A member of a group whose view is a subset gets its own slot's view
    /// from `views`, which the caller has read at the claim's state.
    pub(crate) async fn write_members(
        &self,
        service: &str,
        claimed: &BTreeMap<String, Claim>,
        dependents: &[Dependent],
        views: &mut ViewCache<'_>,
        change: Change<'_>,
        members: &mut BTreeMap<String, usize>,
    ) -> Result<Refreshed, StoreError> {
        let change_id = change.id();
        let mut jobs = Vec::new();
        for dependent in dependents {
            let id = group_id(&dependent.requirements);
            let Some(claim) = claimed.get(&id) else { continue };
            *members.entry(id).or_default() += 1;
            if !claim.moved.includes(service, &dependent.consumer) {
                continue;
            }
            let view = if claim.view.has_subset() {
                let mut own = views.member_view(&dependent.requirements, &dependent.consumer);
                own.generation = claim.view.generation;
                own
            } else {
                claim.view.clone()
            };
            jobs.push(async move {
                match self.registry.write_view(&dependent.consumer, service, &view, Some(change_id)).await {
                    Ok(w) => Ok((dependent, Some(w))),
                    // One consumer's resolved item that no write can fix
                    // (its own writer may put anything in its partition)
                    // must not keep the service's other dependents from
                    // their views, nor hold up the stream behind them.
                    Err(e) if e.is_bad_item() => {
                        error!(consumer = %dependent.consumer, %service, error = %e, "resolved item cannot be written: skipped (fix or delete the item)");
                        Ok((dependent, None))
                    }
                    Err(e) => Err(e),
                }
            });
        }
        let outcomes: Vec<(&Dependent, Option<ViewWrite>)> =
            futures::stream::iter(jobs).buffer_unordered(VIEW_WRITE_CONCURRENCY).try_collect().await?;
        let mut done = Refreshed::default();
        for (dependent, outcome) in outcomes {
            let Some(outcome) = outcome else {
                done.bad_items += 1;
                continue;
            };
            match outcome {
                ViewWrite::Changed(item) => {
                    debug!(consumer = %dependent.consumer, revision = item.revision, "view changed");
                    done.views_changed += 1;
                    done.events.push(Event::resolved(change_id, Some(service), &item, change.created_at));
                }
                // A retry of a page whose view write landed but whose event
                // may not have: the stored change id is one of ours, so the
                // event is published again under the same id.
                ViewWrite::Unchanged(item)
                    if item.last_change_id.as_deref().is_some_and(|id| change.ids.contains(&id)) =>
                {
                    let id = item.last_change_id.clone().unwrap_or_default();
                    done.events.push(Event::resolved(&id, Some(service), &item, change.created_at));
                }
                ViewWrite::Unchanged(_) | ViewWrite::Stale | ViewWrite::NotNeeded => {}
            }
        }
        Ok(done)
    }

    /// The first refresh of a service whose dependents are not in view
    /// groups yet (written before groups existed, or in a table `beacon
    /// upgrade` rebuilt the edges of): every edge is read to find the
    /// groups, each is claimed, and the members are written as any claimed
    /// group's are (here if they fit the batch's budget, else through the
    /// refresh queue, so a large service does not hold up its shard); then
    /// the service is marked. Once per service. `None` when a newer refresh
    /// began (start over).
    async fn regroup(
        &self,
        service: &str,
        generation: u64,
        change: Change<'_>,
        now: i64,
        budget: &Budget,
    ) -> Result<Option<Refreshed>, StoreError> {
        let partition = self.registry.read_service(service).await?;
        let mut views = ViewCache::new(&partition.instances, generation, now);
        let mut claimed = BTreeMap::new();
        for dependent in &partition.dependents {
            let id = group_id(&dependent.requirements);
            if claimed.contains_key(&id) {
                continue;
            }
            let view = views.view(&dependent.requirements);
            if !self.claim(service, &id, &dependent.requirements, &view).await? {
                return Ok(None);
            }
            claimed.insert(id, Claim::everyone(view));
        }
        let done = if claimed.is_empty() {
            Refreshed::default()
        } else {
            self.fan_out(service, generation, &claimed, &mut views, change, budget).await?
        };
        for stale in partition.groups.iter().filter(|g| !claimed.contains_key(&g.id)) {
            self.registry.drop_group(service, &stale.id, generation).await?;
        }
        if !self.registry.mark_grouped(service, generation).await? {
            warn!(%service, "a newer refresh began while regrouping; the next one regroups again");
        }
        Ok(Some(done))
    }
}

/// This attempt's write, or an earlier attempt's that changed the view (a
/// write that landed before its attempt started over still moved it).
fn changed_first(write: ViewWrite, earlier: Option<ViewWrite>) -> ViewWrite {
    match (write, earlier) {
        (ViewWrite::Changed(item), _) => ViewWrite::Changed(item),
        (_, Some(earlier)) => earlier,
        (write, None) => write,
    }
}

fn lost_too_often(service: &str) -> StoreError {
    StoreError::transient(
        format!("refresh {service}"),
        format!("newer refreshes claimed first {ATTEMPTS} times in a row"),
    )
}
