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
//! 2. apply needs changes in stream order (`needs`): dependency edges first, then each
//!    needed service's view;
//! 3. refresh each changed service once per batch — bump its generation,
//!    then, for a service with at most 16 dependents, read each one's
//!    resolved item and write the views that moved (`direct`); for a larger
//!    one, read its registrations and view groups, resolve each distinct
//!    requirement once, and write only the groups whose view moved
//!    (`view_groups`): here if they fit in the batch's 100 dependents, else all
//!    through the refresh queue (`pages`) — because a view is recomputed from the
//!    table, several records for one service need only one refresh;
//! 4. publish every event (PublishBatch, 10 at a time) and report the
//!    records whose work or events failed and can pass on a retry; a
//!    failure a stored item causes is reported once and not retried.

use std::collections::{BTreeMap, BTreeSet};

use beacon_domain::change::{Classified, NeedsChange, StreamChange};
use beacon_domain::event::Event;
use beacon_domain::ports::{FanOutStore, Publisher, RefreshQueue};
use beacon_domain::{ShardRepair, classify, shard_repair};
use futures::StreamExt;
use tracing::{Instrument, debug, error, info_span, warn};

mod direct;
mod lambda;
mod needs;
mod pages;
mod report;
mod view_groups;
mod work;

pub use lambda::decode;
pub use pages::PagesReport;
pub use report::BatchReport;
pub use work::Limits;
use work::{Budget, Change, VIEW_WRITE_CONCURRENCY};

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

/// The one action either function adds when the stack puts events on a bus
/// (`EventBusName`): PutEvents, on that bus, as the stack's source.
pub const EVENT_BUS_IAM_ACTIONS: &[&str] = &["events:PutEvents"];

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

/// One stream record, decoded: the change and the identifier a partial
/// batch response names it by (its sequence number).
#[derive(Debug, Clone)]
pub struct Record {
    /// The record, decoded into the domain's terms.
    pub change: StreamChange,
    /// Its sequence number (the record's event id when it has none).
    pub item_identifier: String,
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
pub type AwsFanOut = FanOut<beacon_aws::DynamoTable, beacon_aws::ChangePublisher, beacon_aws::SqsRefreshQueue>;

impl AwsFanOut {
    /// Reads `BEACON_TABLE` (and `BEACON_REPLICA_REGION`), `BEACON_TOPIC_ARN`,
    /// `BEACON_REFRESH_QUEUE_URL` and, when events also go on a bus,
    /// `BEACON_EVENT_BUS_ARN` and `BEACON_EVENT_SOURCE`, and builds the
    /// adapters from the shared AWS configuration.
    pub async fn from_env() -> Result<Self, beacon_aws::config::MissingEnv> {
        use beacon_aws::config::{event_bus_from_env, refresh_queue_from_env, sdk_config, topic_from_env};
        let (topic, queue, bus) = (topic_from_env()?, refresh_queue_from_env()?, event_bus_from_env()?);
        let config = sdk_config().await;
        Ok(FanOut::new(
            beacon_aws::registry_from_env(&config)?,
            beacon_aws::change_publisher(&config, topic, bus),
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
}
