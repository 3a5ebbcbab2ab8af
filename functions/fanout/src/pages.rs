//! The refresh queue's consumer: one page of a large refresh per message
//! (docs/architecture.md, "Large fan-outs").
//!
//! A page re-reads the service's view groups and writes the members of
//! those still claimed at its generation: a group claimed since by a newer
//! refresh is that refresh's to write, so a late page never writes an older
//! view over a newer one (and the view writes are conditional on the
//! generation anyway). The next page is sent before this one is written, so
//! pages run in parallel; a failed page is named in `batchItemFailures` and
//! SQS delivers it again, then to the dead-letter queue.

use std::collections::BTreeMap;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use beacon_domain::ports::{FanOutStore, Publisher, RefreshPage, RefreshQueue, StoreError};
use beacon_domain::view::ViewCache;
use futures::StreamExt;
use tracing::{Instrument, debug, info_span, warn};

use crate::FanOut;
use crate::work::{Change, Claim, Refreshed};

/// Pages handled at once within one invocation (the template sends one).
const PAGE_CONCURRENCY: usize = 4;

/// What one invocation of the refresh consumer did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PagesReport {
    /// Messages in the invocation.
    pub pages: usize,
    /// Pages whose groups a newer refresh had claimed (nothing to write).
    pub superseded: usize,
    /// Dependents' views that changed.
    pub views_changed: usize,
    /// Next pages sent.
    pub pages_queued: usize,
    /// `resolved` events published.
    pub published: usize,
    /// Messages reported for redelivery.
    pub failed: usize,
}

/// Why a page failed.
#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("not a refresh page: {0}")]
    Malformed(serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} of its events were not published")]
    Publish(usize),
}

impl<R: FanOutStore, P: Publisher, Q: RefreshQueue> FanOut<R, P, Q> {
    /// Handles one batch of refresh-queue messages.
    /// `now` (epoch seconds) resolves the views of large services' members.
    pub async fn handle_pages(&self, event: &SqsEvent, now: i64) -> (SqsBatchResponse, PagesReport) {
        let mut report = PagesReport { pages: event.records.len(), ..PagesReport::default() };
        let mut jobs = Vec::with_capacity(event.records.len());
        for message in &event.records {
            let id = message.message_id.clone().unwrap_or_default();
            let body = message.body.as_deref().unwrap_or_default();
            let span = info_span!("page", message_id = %id);
            jobs.push(async move { (id, self.page(body, now).await) }.instrument(span));
        }
        let results: Vec<_> = futures::stream::iter(jobs).buffer_unordered(PAGE_CONCURRENCY).collect().await;
        let mut response = SqsBatchResponse::default();
        for (id, result) in results {
            match result {
                Ok(None) => report.superseded += 1,
                Ok(Some((done, published))) => {
                    report.views_changed += done.views_changed;
                    report.pages_queued += done.pages_queued;
                    report.published += published;
                }
                Err(e) => {
                    // A malformed body fails every time: it reaches the
                    // dead-letter queue after the redrive policy's receives.
                    warn!(message_id = %id, error = %e, "refresh page failed; SQS will deliver it again");
                    report.failed += 1;
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
            }
        }
        (response, report)
    }

    /// One page: `None` when a newer refresh owns every group it named.
    async fn page(&self, body: &str, now: i64) -> Result<Option<(Refreshed, usize)>, PageError> {
        let page: RefreshPage = serde_json::from_str(body).map_err(PageError::Malformed)?;
        let ids: Vec<&str> = page.change_ids.iter().map(String::as_str).collect();
        let change = Change { ids: &ids, created_at: page.created_at };
        let state = self.registry.read_state(&page.service).await?;
        let mut views = ViewCache::new(&state.instances, page.generation, now);
        let mut claimed = BTreeMap::new();
        let mut done = Refreshed::default();
        for group in &state.groups {
            match page.moved.get(&group.id) {
                // A subset view's claim. A newer claim moved only the slots
                // it saw move since this one, not necessarily these, so
                // these are written here whoever claimed last, with the
                // group's current view (docs/architecture.md, "Large
                // services"), their slots computed from the registrations
                // read now.
                Some(moved) if group.view.has_subset() && group.view.generation >= page.generation => {
                    if views.view(&group.requirements).digest == group.view.digest {
                        claimed.insert(group.id.clone(), Claim { view: group.view.clone(), moved: moved.clone() });
                        continue;
                    }
                    // The registrations moved again since that claim, and
                    // its refresh may not have claimed yet: which members
                    // hold what cannot be told, so the page claims the
                    // group itself, for every member, at a new generation.
                    debug!(service = %page.service, group = %group.id, "endpoints moved since the claim: claiming the group for everyone");
                    let budget = crate::work::Budget::new(self.limits.inline_dependents);
                    done.add(self.refresh_forcing(&page.service, Some(&group.id), change, now, &budget).await?);
                }
                // A newer claim of a view that is no subset (the version or
                // the slot count changed): it rewrites every member.
                Some(_) => {}
                None if group.view.generation == page.generation => {
                    claimed.insert(group.id.clone(), Claim::everyone(group.view.clone()));
                }
                None => {}
            }
        }
        if claimed.is_empty() && done.groups_claimed == 0 {
            debug!(service = %page.service, generation = page.generation, "superseded by a newer refresh");
            return Ok(None);
        }
        if !claimed.is_empty() {
            let dependents = self.registry.dependents(&page.service, page.after.as_deref(), self.limits.page).await?;
            if let Some(next) = dependents.next {
                self.queue.send(&RefreshPage { after: Some(next), ..page.clone() }).await?;
                done.pages_queued += 1;
            }
            let mut members = BTreeMap::new();
            done.add(
                self.write_members(&page.service, &claimed, &dependents.dependents, &mut views, change, &mut members)
                    .await?,
            );
        }
        let results = if done.events.is_empty() { Vec::new() } else { self.publisher.publish(&done.events).await };
        let failed = results.iter().filter(|r| r.is_err()).count();
        if failed > 0 {
            return Err(PageError::Publish(failed));
        }
        Ok(Some((done, results.len())))
    }
}
