//! A needs change on the stream: the consumer's edges, its resolved item's
//! header, then each needed service's view through its view group
//! (docs/architecture.md, "The fan-out, batch by batch", step 3).

use std::collections::BTreeSet;

use beacon_domain::change::NeedsChange;
use beacon_domain::event::Event;
use beacon_domain::ports::{FanOutStore, Publisher, RefreshQueue, StoreError, ViewWrite};
use futures::StreamExt;
use tracing::error;

use crate::FanOut;
use crate::work::{self, Budget, Change, VIEW_WRITE_CONCURRENCY};

impl<R: FanOutStore, P: Publisher, Q: RefreshQueue> FanOut<R, P, Q> {
    /// Applies a needs change: edges, header, each needed service's view,
    /// then one revision bump and one `resolved` event if anything changed.
    pub(crate) async fn apply_needs(
        &self,
        change: &NeedsChange,
        record_id: &str,
        created_at: i64,
        now: i64,
        budget: &Budget,
    ) -> Result<(Vec<Event>, usize, usize), StoreError> {
        let consumer = change.consumer.as_str();
        let existing = self.registry.get_resolved(consumer).await?;
        let mut old_services: BTreeSet<String> =
            existing.as_ref().map(|r| r.needed_services.iter().cloned().collect()).unwrap_or_default();
        old_services.extend(change.before.iter().flat_map(|b| b.services()));

        let Some(after) = &change.after else {
            for service in &old_services {
                self.registry.delete_edge(service, consumer).await?;
            }
            self.registry.delete_resolved(consumer).await?;
            return Ok((Vec::new(), 0, 0));
        };
        let services = after.services();
        let dropped: Vec<String> = old_services.iter().filter(|s| !services.contains(s)).cloned().collect();
        let needs_text: Vec<String> = after.needs.iter().map(ToString::to_string).collect();
        let header_changed = existing.as_ref().is_none_or(|r| r.needs != needs_text) || !dropped.is_empty();
        self.registry.set_needs_header(consumer, &needs_text, &services, &dropped).await?;
        for service in &dropped {
            self.registry.delete_edge(service, consumer).await?;
        }
        // Edges before reads: a change to a service after this point finds
        // the consumer as a dependent; one before it is seen by our read.
        for service in &services {
            self.registry.put_edge(service, consumer, &after.requirements_on(service)).await?;
        }
        let ids = [record_id];
        let change = Change { ids: &ids, created_at };
        let mut jobs = Vec::with_capacity(services.len());
        for service in &services {
            jobs.push(async move {
                self.join(service, consumer, &after.requirements_on(service), change, now, budget).await
            });
        }
        let results: Vec<Result<(ViewWrite, work::Refreshed), StoreError>> =
            futures::stream::iter(jobs).buffer_unordered(VIEW_WRITE_CONCURRENCY).collect().await;
        let mut writes = Vec::with_capacity(results.len());
        let mut bad = 0;
        for result in results {
            match result {
                Ok(w) => writes.push(w),
                // One needed service that cannot be refreshed (the
                // consumer's own item no write fixes) must not cost the
                // consumer its other views, nor the group members their
                // events: skipped, reported once.
                Err(e) if e.is_bad_item() => {
                    error!(%consumer, error = %e, "one needed service's view cannot be written: skipped, not retried");
                    bad += 1;
                }
                Err(e) => return Err(e),
            }
        }
        let views_changed = writes.iter().any(|(w, _)| matches!(w, ViewWrite::Changed(_)));
        // Other members of a group this consumer found stale.
        let mut events: Vec<Event> = Vec::new();
        let mut changed = 0;
        for (_, others) in writes {
            changed += others.views_changed;
            bad += others.bad_items;
            events.extend(others.events);
        }
        if header_changed || views_changed {
            let item = self.registry.bump_revision(consumer, record_id).await?;
            events.push(Event::resolved(record_id, None, &item, created_at));
            return Ok((events, changed + 1, bad));
        }
        // Retried record whose bump landed but whose event may not have.
        if let Some(item) = existing.filter(|r| r.last_change_id.as_deref() == Some(record_id)) {
            events.push(Event::resolved(record_id, None, &item, created_at));
        }
        Ok((events, changed, bad))
    }
}
