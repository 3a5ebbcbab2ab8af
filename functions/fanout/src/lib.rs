//! The fan-out: one DynamoDB stream batch in, change events out on SNS,
//! consumers' resolved items refreshed, and a partial batch response naming
//! only the records that must be retried.
//!
//! Order of work for a batch (docs/architecture.md, "The fan-out, batch by batch"):
//!
//! 1. classify every record (pure; malformed items become `invalid` events
//!    and are never retried), and repair expiry: a registration outside the
//!    sweeper's index, or set to expire after its own TTL, gets its shard
//!    and that bound (one conditional write, nothing published);
//! 2. apply needs changes in stream order: dependency edges first, then each
//!    needed service's view;
//! 3. refresh each changed service once per batch — bump its generation,
//!    read its registrations and view groups, resolve each distinct
//!    requirement once, and write only the groups whose view moved
//!    (`view_groups`): here if they fit in the batch's 100 dependents, else all
//!    through the refresh queue (`pages`) — because a view is recomputed from the
//!    table, several records for one service need only one refresh;
//! 4. publish every event (PublishBatch, 10 at a time) and report the
//!    records whose work or events failed and can pass on a retry; a
//!    failure a stored item causes is reported once and not retried.

use std::collections::{BTreeMap, BTreeSet};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use beacon_aws::stream::{sequence_number, stream_change};
use beacon_domain::change::{Classified, NeedsChange, StreamChange};
use beacon_domain::event::Event;
use beacon_domain::ports::{FanOutStore, Publisher, RefreshQueue, StoreError, ViewWrite};
use beacon_domain::{ShardRepair, classify, shard_repair};
use futures::StreamExt;
use tracing::{Instrument, debug, error, info_span, warn};

mod pages;
mod view_groups;

pub use pages::PagesReport;
pub use view_groups::Limits;
use view_groups::{Budget, Change, VIEW_WRITE_CONCURRENCY};

/// Every IAM action this function's code (and its event source mapping)
/// needs; `infra/template.yaml` must grant exactly these (a test checks).
/// Registry: GetItem (resolved items), Query (a service's partition),
/// PutItem (dependency edges), UpdateItem (generations, views, revisions,
/// view groups), DeleteItem (edges, resolved items, view groups),
/// ConditionCheckItem (a claim's check of the generation, in a
/// transaction). SQS: the refresh queue's pages and the on-failure
/// destination. Stream reads are the mapping's.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
    "sns:Publish",
    "sqs:SendMessage",
];

/// Every IAM action the refresh-queue consumer (`bin/refresh.rs`) and its
/// event source mapping need: it reads a service's groups and edges, writes
/// views (UpdateItem), sends the next page and publishes `resolved` events.
pub const REFRESH_IAM_ACTIONS: &[&str] = &[
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    "sns:Publish",
    "sqs:SendMessage",
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
];

/// How many services are refreshed at once within one batch.
const SERVICE_CONCURRENCY: usize = 8;

/// What one batch did, for logs, metrics and benchmarks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// Events published, by kind.
    pub published: BTreeMap<&'static str, usize>,
    /// Malformed records reported.
    pub invalid: usize,
    /// Heartbeat-only records (nothing published).
    pub heartbeats: usize,
    /// Resolved items whose view changed.
    pub views_changed: usize,
    /// Registrations put into the expiry index (written without, or with a
    /// wrong, `expiry_shard`).
    pub shards_repaired: usize,
    /// View groups whose view moved (claimed for rewriting).
    pub groups_claimed: usize,
    /// Pages of dependents handed to the refresh queue.
    pub pages_queued: usize,
    /// Records reported for retry.
    pub failed: usize,
    /// Records, and dependents' views, that failed because of what a
    /// stored item holds (no retry can fix it): reported once, named in
    /// the logs, and not retried, so nothing behind them waits.
    pub bad_items: usize,
    /// The oldest record's approximate creation time (epoch seconds), for
    /// the propagation-lag metric.
    pub oldest_record_at: Option<i64>,
}

impl BatchReport {
    /// The batch's metrics as EMF documents at `now_ms`: totals, and events
    /// published per kind.
    pub fn metrics(&self, now_ms: i64) -> Vec<serde_json::Value> {
        use beacon_aws::metrics::{Metric, document};
        let count = |name, v: usize| Metric { name, value: v as f64, unit: "Count" };
        let mut totals = vec![
            count("Records", self.records),
            count("InvalidRecords", self.invalid),
            count("ResolvedRefreshed", self.views_changed),
            count("ExpiryShardsRepaired", self.shards_repaired),
            count("ViewGroupsClaimed", self.groups_claimed),
            count("RefreshPagesQueued", self.pages_queued),
            count("BatchFailures", self.failed),
            count("BadItemsSkipped", self.bad_items),
        ];
        if let Some(oldest) = self.oldest_record_at {
            // The stream's creation time has one-second (locally one-minute)
            // granularity: the lag is accurate to that.
            let lag = (now_ms - oldest * 1000).max(0);
            totals.push(Metric { name: "PropagationLag", value: lag as f64, unit: "Milliseconds" });
        }
        let mut docs = vec![document(&[("Function", "fanout")], &totals, now_ms)];
        for (kind, n) in &self.published {
            docs.push(document(&[("Function", "fanout"), ("Kind", kind)], &[count("EventsPublished", *n)], now_ms));
        }
        docs
    }
}

/// One stream record, decoded: the change and the identifier a partial
/// batch response names it by (its sequence number).
#[derive(Debug, Clone)]
pub struct Record {
    /// The record, decoded into the domain's terms.
    pub change: StreamChange,
    /// Its sequence number (the record's event id when it has none).
    pub item_identifier: String,
}

/// Decodes a Lambda DynamoDB stream event (the only place the handler
/// meets the Lambda type).
pub fn decode(event: &StreamEvent) -> Vec<Record> {
    event
        .records
        .iter()
        .map(|r| Record {
            change: stream_change(r),
            item_identifier: sequence_number(r).unwrap_or(&r.event_id).to_owned(),
        })
        .collect()
}

/// The fan-out handler, generic over its ports so tests can inject faults
/// the real engines cannot produce. The same value handles stream batches
/// ([`FanOut::handle`]) and refresh-queue pages ([`FanOut::handle_pages`]).
#[derive(Debug, Clone)]
pub struct FanOut<R, P, Q> {
    registry: R,
    publisher: P,
    queue: Q,
    limits: Limits,
}

/// One record's identity within the batch.
struct RecordRef {
    id: String,
    created_at: i64,
    item_identifier: String,
}

/// The fan-out as both Lambdas run it: the table, topic and refresh queue
/// from the environment (failing at start, naming a missing variable).
pub type AwsFanOut = FanOut<beacon_aws::DynamoTable, beacon_aws::SnsPublisher, beacon_aws::SqsRefreshQueue>;

impl AwsFanOut {
    /// Reads `BEACON_TABLE`, `BEACON_TOPIC_ARN` and `BEACON_REFRESH_QUEUE_URL`
    /// and builds the adapters from the shared AWS configuration.
    pub async fn from_env() -> Result<Self, beacon_aws::config::MissingEnv> {
        use beacon_aws::config::{refresh_queue_from_env, sdk_config, table_from_env, topic_from_env};
        let (table, topic, queue) = (table_from_env()?, topic_from_env()?, refresh_queue_from_env()?);
        let config = sdk_config().await;
        Ok(FanOut::new(
            beacon_aws::dynamo_table(&config, table),
            beacon_aws::sns_publisher(&config, topic),
            beacon_aws::refresh_queue(&config, queue),
        ))
    }
}

impl<R: FanOutStore, P: Publisher, Q: RefreshQueue> FanOut<R, P, Q> {
    /// A fan-out over a registry, a publisher and the refresh queue, with
    /// the default [`Limits`].
    pub fn new(registry: R, publisher: P, queue: Q) -> Self {
        Self { registry, publisher, queue, limits: Limits::default() }
    }

    /// The same, with other limits (tests and benchmarks make pages small).
    pub fn with_limits(self, limits: Limits) -> Self {
        Self { limits, ..self }
    }

    /// The registry: the in-memory convergence test writes through it,
    /// since the fan-out owns its ports.
    pub fn registry(&self) -> &R {
        &self.registry
    }

    /// The refresh queue: the in-memory convergence test delivers the
    /// pages it was sent.
    pub fn queue(&self) -> &Q {
        &self.queue
    }

    /// Handles one stream batch at `now` (epoch seconds).
    pub async fn handle(&self, event: &StreamEvent, now: i64) -> (DynamoDbEventResponse, BatchReport) {
        let records = decode(event);
        let (failed, report) = self.handle_records(&records, now).await;
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut f = DynamoDbBatchItemFailure::default();
                f.item_identifier = Some(id);
                f
            })
            .collect();
        (response, report)
    }

    /// Handles one batch of decoded records at `now` (epoch seconds), in
    /// stream order: returns the item identifiers of the records to retry
    /// (what `batchItemFailures` names) and the report. No Lambda or SDK
    /// type: tests drive it with records of their own.
    pub async fn handle_records(&self, records: &[Record], now: i64) -> (Vec<String>, BatchReport) {
        let mut report = BatchReport { records: records.len(), ..Default::default() };
        let mut refs = Vec::with_capacity(records.len());
        let mut pending: Vec<(usize, Event)> = Vec::new();
        let mut failed: BTreeSet<usize> = BTreeSet::new();
        let mut services: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut needs: Vec<(usize, NeedsChange)> = Vec::new();
        let mut repairs: Vec<(usize, ShardRepair)> = Vec::new();
        let budget = Budget::new(self.limits.inline_dependents);

        for (i, record) in records.iter().enumerate() {
            let change: &StreamChange = &record.change;
            let item_identifier = record.item_identifier.clone();
            let span = info_span!("record", event_id = %change.event_id, sequence = %item_identifier);
            let _entered = span.enter();
            repairs.extend(shard_repair(change, now).map(|r| (i, r)));
            match classify(change, now) {
                Classified::Registration(c) => {
                    let current = c.current();
                    debug!(service = %current.service, version = %current.version, kind = c.kind.as_str(), "change");
                    services.entry(current.service.clone()).or_default().push(i);
                    pending.push((i, Event::change(&change.event_id, &c, change.created_at)));
                }
                Classified::Invalid(invalid) => {
                    warn!(
                        pk = invalid.pk.as_deref().unwrap_or("-"),
                        sk = invalid.sk.as_deref().unwrap_or("-"),
                        reason = %invalid.reason,
                        "invalid item: reported and skipped"
                    );
                    report.invalid += 1;
                    pending.push((i, Event::invalid(&change.event_id, &invalid, change.created_at)));
                }
                Classified::Needs(n) => needs.push((i, n)),
                Classified::Heartbeat { service } => {
                    debug!(%service, "heartbeat only: nothing to publish");
                    report.heartbeats += 1;
                }
                Classified::Ignored(why) => debug!(why, "ignored"),
            }
            if change.created_at > 0 {
                report.oldest_record_at =
                    Some(report.oldest_record_at.map_or(change.created_at, |o| o.min(change.created_at)));
            }
            refs.push(RecordRef { id: change.event_id.clone(), created_at: change.created_at, item_identifier });
        }

        // Every registration expires, whoever wrote it: one put into the
        // expiry index is one conditional write, and only for items written
        // without Beacon's shard. A failure is retried with the record.
        let mut jobs = Vec::with_capacity(repairs.len());
        for (i, repair) in &repairs {
            jobs.push(async move { (*i, self.registry.repair_expiry_shard(repair).await) });
        }
        let repaired: Vec<_> = futures::stream::iter(jobs).buffer_unordered(VIEW_WRITE_CONCURRENCY).collect().await;
        for (i, result) in repaired {
            match result {
                Ok(true) => report.shards_repaired += 1,
                Ok(false) => debug!("expiry shard: a later write or a delete got there first"),
                Err(e) if e.is_bad_item() => {
                    // The operation in the error names the item.
                    error!(error = %e, "expiry repair cannot be written: skipped, not retried");
                    report.bad_items += 1;
                }
                Err(e) => {
                    warn!(error = %e, retryable = e.is_retryable(), "expiry shard repair failed; record will be retried");
                    failed.insert(i);
                }
            }
        }

        for (i, change) in needs {
            let r = &refs[i];
            let span = info_span!("needs", consumer = %change.consumer, event_id = %r.id);
            match self.apply_needs(&change, &r.id, r.created_at, now, &budget).instrument(span).await {
                Ok((events, changed, bad)) => {
                    report.views_changed += changed;
                    report.bad_items += bad;
                    pending.extend(events.into_iter().map(|e| (i, e)));
                }
                Err(e) if e.is_bad_item() => {
                    error!(consumer = %change.consumer, error = %e, "needs change cannot be applied (a stored item no write can fix): reported once, not retried");
                    report.bad_items += 1;
                }
                Err(e) => {
                    warn!(consumer = %change.consumer, error = %e, retryable = e.is_retryable(), "needs change failed; record will be retried");
                    failed.insert(i);
                }
            }
        }

        // Futures are built in a loop, not in a stream closure: a closure
        // returning a borrowing future trips rustc's higher-ranked Send check.
        let mut jobs = Vec::with_capacity(services.len());
        for (service, indices) in services {
            let ids: Vec<&str> = indices.iter().map(|&i| refs[i].id.as_str()).collect();
            let last = *indices.last().unwrap_or(&0);
            let created_at = refs[last].created_at;
            let span = info_span!("refresh", %service);
            let budget = &budget;
            jobs.push(
                async move {
                    let change = Change { ids: &ids, created_at };
                    let result = self.refresh(&service, change, now, budget).await;
                    (service, indices[0], result)
                }
                .instrument(span),
            );
        }
        let refreshes: Vec<_> = futures::stream::iter(jobs).buffer_unordered(SERVICE_CONCURRENCY).collect().await;
        for (service, first, result) in refreshes {
            match result {
                Ok(done) => {
                    report.views_changed += done.views_changed;
                    report.groups_claimed += done.groups_claimed;
                    report.pages_queued += done.pages_queued;
                    report.bad_items += done.bad_items;
                    // Attributed to the service's first record in the batch,
                    // so a retry re-delivers every record of the group.
                    pending.extend(done.events.into_iter().map(|e| (first, e)));
                }
                // A refresh reads and writes only the fan-out's own partition
                // and the dependents' items (each skipped on its own), so
                // this is a stored item no write fixes: retrying it would
                // only hold up every change behind it on the shard.
                Err(e) if e.is_bad_item() => {
                    error!(%service, error = %e, "refresh cannot be done (a stored item no write can fix): reported once, not retried");
                    report.bad_items += 1;
                }
                Err(e) => {
                    warn!(%service, error = %e, retryable = e.is_retryable(), "refresh failed; record will be retried");
                    failed.insert(first);
                }
            }
        }

        let events: Vec<Event> = pending.iter().map(|(_, e)| e.clone()).collect();
        let results = if events.is_empty() { Vec::new() } else { self.publisher.publish(&events).await };
        for ((i, event), result) in pending.iter().zip(results) {
            match result {
                Ok(()) => *report.published.entry(event.kind()).or_default() += 1,
                Err(e) => {
                    warn!(event_id = event.event_id(), kind = event.kind(), error = %e, "publish failed; record will be retried");
                    failed.insert(*i);
                }
            }
        }

        report.failed = failed.len();
        (failed.into_iter().map(|i| refs[i].item_identifier.clone()).collect(), report)
    }

    /// Applies a needs change: edges, header, each needed service's view,
    /// then one revision bump and one `resolved` event if anything changed.
    async fn apply_needs(
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
        let results: Vec<Result<(ViewWrite, view_groups::Refreshed), StoreError>> =
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reports_its_metrics_in_emf() {
        let mut report =
            BatchReport { records: 3, invalid: 1, failed: 1, oldest_record_at: Some(100), ..Default::default() };
        report.published.insert("registered", 2);
        let docs = report.metrics(100_250);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["InvalidRecords"], 1.0);
        assert_eq!(docs[0]["BatchFailures"], 1.0);
        assert_eq!(docs[0]["PropagationLag"], 250.0);
        assert_eq!(docs[1]["Kind"], "registered");
        assert_eq!(docs[1]["EventsPublished"], 2.0);
    }
}
