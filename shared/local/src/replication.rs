//! **A test stand-in for DynamoDB global tables' replication.** Neither
//! DynamoDB Local nor any other local engine replicates a global table, so
//! this replays what AWS documents of it between tables of one DynamoDB
//! Local (DynamoDB Local keeps a table per Region, so one engine holds
//! every Region's replica):
//!
//! - **per item, asynchronous**: each write seen in a replica's stream is
//!   applied to every other replica after [`ReplicationConfig::delay`] plus
//!   a random share of [`ReplicationConfig::jitter`] (seeded);
//! - **reordered across items, in order within one**: each item's copy has
//!   its own delay, so two items written in one order may land in another
//!   (a transaction's items arrive separately, as AWS says they may), while
//!   the writes of one item reach a replica in the order they were made, so
//!   each replica's stream shows every version;
//! - **last writer wins** by the replication timestamp: a write is stamped
//!   when its replica's stream shows it (microseconds, ties broken by
//!   Region), and a replica keeps, per item, the highest stamp it has seen;
//!   an older copy arriving later is dropped. A copy never overwrites a
//!   local write this stand-in has not seen yet (its apply is conditional
//!   on the item it last knew): that local write is newer, and its own copy
//!   will follow;
//! - **every replica's stream carries replicated writes too**: copies are
//!   plain writes to the replica's table, so its stream shows them and its
//!   fan-out sees them as AWS's would;
//! - **a Region can be cut off** ([`Replication::pause`]): nothing leaves
//!   or reaches it until [`Replication::resume`]; what was written on either
//!   side meanwhile is then delivered and reconciled by the same rule.
//!
//! What it does not model: AWS's replication of TTL deletes and of its own
//! system attributes, throughput limits, and the multi-Region strong
//! consistency mode. And where AWS stamps a write when it is made, this
//! stand-in stamps it when its replica's stream shows it, within a poll
//! interval of the write: two writes of one item in two Regions closer
//! together than that may be ordered as they were seen rather than as they
//! were made (a test that needs them ordered leaves more time between
//! them). It is a test stand-in, used only by the tests, the
//! benches and `beacon dev --regions`, never in the product.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodb::error::ProvideErrorMetadata as _;
use aws_sdk_dynamodb::types::AttributeValue;
use beacon_domain::keys;
use futures::FutureExt as _;
use serde_dynamo::Item;
use tokio::sync::{Mutex, Notify, watch};
use tracing::{debug, warn};

use crate::filter::FilterCriteria;
use crate::mapping::{Handler, MappingConfig, Poller};

/// One Region's replica: its table, its stream, and the clients that reach
/// them (a client's Region picks the replica in DynamoDB Local).
#[derive(Debug, Clone)]
pub struct Replica {
    /// The Region's name (`us-east-1`).
    pub region: String,
    /// DynamoDB, in this Region.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// DynamoDB Streams, in this Region.
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// The table (every replica has the same name, as in a global table).
    pub table: String,
    /// This replica's stream.
    pub stream_arn: String,
}

/// How replication behaves.
#[derive(Debug, Clone)]
pub struct ReplicationConfig {
    /// The least time between a write and its copy elsewhere (AWS: usually
    /// within a second).
    pub delay: Duration,
    /// Up to this much more, drawn per item and per Region: what reorders
    /// copies across items.
    pub jitter: Duration,
    /// Seed of the draws, so a failing run can be replayed.
    pub seed: u64,
    /// How often a replica's stream is read (AWS's own readers: 250 ms).
    pub poll_interval: Duration,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_secs(1),
            jitter: Duration::from_millis(200),
            seed: 1,
            poll_interval: Duration::from_millis(100),
        }
    }
}

/// Counters, for tests to assert on and the dev runner to print.
#[derive(Debug, Default)]
pub struct ReplicationStats {
    /// Local writes seen in a replica's stream (each is copied to every
    /// other replica).
    pub local_writes: AtomicU64,
    /// Copies written to a replica.
    pub applied: AtomicU64,
    /// Copies dropped because the replica already held a newer write.
    pub superseded: AtomicU64,
    /// Copies dropped because the replica had a local write this stand-in
    /// had not seen yet (newer by construction).
    pub raced: AtomicU64,
    /// Copies that failed for another reason and were retried.
    pub retried: AtomicU64,
}

type Key = (String, String);

/// A write's replication timestamp: when its replica's stream showed it,
/// then its Region's index, so two Regions never tie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    micros: u64,
    origin: usize,
}

#[derive(Debug, Clone)]
struct Version {
    stamp: Stamp,
    image: Option<Item>,
}

#[derive(Debug, Clone)]
struct Copy {
    due: Instant,
    dest: usize,
    key: Key,
    image: Option<Item>,
    stamp: Stamp,
}

#[derive(Debug, Default)]
struct State {
    /// Per replica: what it holds of each item, as far as this stand-in
    /// knows, and the stamp that put it there.
    known: Vec<HashMap<Key, Version>>,
    /// Per replica: copies written whose stream records are still to come
    /// (so they are not taken for local writes and copied back).
    echoes: Vec<HashMap<Key, VecDeque<Option<Item>>>>,
    /// Copies not yet applied.
    pending: Vec<Copy>,
    /// Regions cut off.
    paused: HashSet<usize>,
    /// Per replica and item, when its last copy is due: the next copy of
    /// the same item is due after it (one item's writes stay in order).
    last_due: Vec<HashMap<Key, Instant>>,
    rng: u64,
    last_micros: u64,
}

impl State {
    fn next_stamp(&mut self, origin: usize) -> Stamp {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_micros() as u64;
        self.last_micros = now.max(self.last_micros + 1);
        Stamp { micros: self.last_micros, origin }
    }

    /// xorshift64*: a seeded draw with no dependency.
    fn draw(&mut self, below: Duration) -> Duration {
        if below.is_zero() {
            return Duration::ZERO;
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        Duration::from_micros(r % below.as_micros().max(1) as u64)
    }
}

struct Shared {
    replicas: Vec<Replica>,
    config: ReplicationConfig,
    state: Mutex<State>,
    wake: Notify,
    stats: ReplicationStats,
}

/// Running replication between the replicas; stops when dropped or
/// [`Replication::stop`]ped.
pub struct Replication {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
}

impl std::fmt::Debug for Replication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let regions: Vec<&str> = self.shared.replicas.iter().map(|r| r.region.as_str()).collect();
        f.debug_struct("Replication").field("regions", &regions).field("config", &self.shared.config).finish()
    }
}

impl Replication {
    /// Starts replicating between `replicas` (two or more Regions of one
    /// table). Each replica's stream is read from its start, so start this
    /// before anything is written.
    pub fn start(replicas: Vec<Replica>, config: ReplicationConfig) -> Self {
        let n = replicas.len();
        let state = State {
            known: vec![HashMap::new(); n],
            echoes: vec![HashMap::new(); n],
            last_due: vec![HashMap::new(); n],
            rng: config.seed.max(1),
            ..State::default()
        };
        let shared = Arc::new(Shared {
            replicas,
            config,
            state: Mutex::new(state),
            wake: Notify::new(),
            stats: ReplicationStats::default(),
        });
        let (stop, rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        for index in 0..n {
            let replica = &shared.replicas[index];
            let me = shared.clone();
            let handler: Handler = Arc::new(move |event: StreamEvent| {
                let me = me.clone();
                async move {
                    me.observe(index, event).await;
                    Ok(DynamoDbEventResponse::default())
                }
                .boxed()
            });
            let config = MappingConfig {
                poll_interval: shared.config.poll_interval,
                batch_size: 1000,
                filter: FilterCriteria::all(),
                max_retry_attempts: None,
                ..MappingConfig::default()
            };
            let poller = Poller::new(
                replica.streams.clone(),
                None,
                replica.stream_arn.clone(),
                replica.region.clone(),
                config,
                handler,
            );
            tasks.spawn(poller.run(rx.clone()));
        }
        tasks.spawn(shared.clone().apply_loop(rx));
        Self { shared, stop, tasks }
    }

    /// Cuts `region` off: nothing leaves or reaches it until
    /// [`Replication::resume`]. Its own writes still go to its table and
    /// stream (and its fan-out, if running).
    pub async fn pause(&self, region: &str) {
        if let Some(i) = self.index(region) {
            self.shared.state.lock().await.paused.insert(i);
        }
    }

    /// Reconnects `region`: what waited on either side is delivered.
    pub async fn resume(&self, region: &str) {
        if let Some(i) = self.index(region) {
            self.shared.state.lock().await.paused.remove(&i);
            self.shared.wake.notify_one();
        }
    }

    fn index(&self, region: &str) -> Option<usize> {
        self.shared.replicas.iter().position(|r| r.region == region)
    }

    /// The counters.
    pub fn stats(&self) -> &ReplicationStats {
        &self.shared.stats
    }

    /// Copies still to be applied (held by a cut-off Region, or not due).
    pub async fn in_flight(&self) -> usize {
        let s = self.shared.state.lock().await;
        s.pending.len() + s.echoes.iter().map(|e| e.values().map(VecDeque::len).sum::<usize>()).sum::<usize>()
    }

    /// Waits until every copy is applied and seen in its replica's stream,
    /// and nothing new was written for `quiet`; false if `timeout` passed
    /// first (a cut-off Region holds copies back).
    pub async fn settle(&self, quiet: Duration, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut still_since: Option<(Instant, u64)> = None;
        while Instant::now() < deadline {
            let writes = self.shared.stats.local_writes.load(Ordering::Relaxed)
                + self.shared.stats.applied.load(Ordering::Relaxed);
            if self.in_flight().await == 0 {
                match still_since {
                    Some((since, seen)) if seen == writes => {
                        if since.elapsed() >= quiet {
                            return true;
                        }
                    }
                    _ => still_since = Some((Instant::now(), writes)),
                }
            } else {
                still_since = None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// Stops reading the streams and applying copies.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        self.shared.wake.notify_one();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Shared {
    /// A batch of one replica's stream: copies of its own writes go out;
    /// records of copies this stand-in wrote are recognised and let be.
    async fn observe(&self, index: usize, event: StreamEvent) {
        let mut state = self.state.lock().await;
        for record in event.records {
            let image = (!record.change.new_image.inner().is_empty()).then(|| record.change.new_image.clone());
            let Some(key) = beacon_aws::item::item_key(&record.change.keys)
                .or_else(|| image.as_ref().and_then(beacon_aws::item::item_key))
                .or_else(|| beacon_aws::item::item_key(&record.change.old_image))
            else {
                continue;
            };
            if let Some(queue) = state.echoes[index].get_mut(&key)
                && queue.front() == Some(&image)
            {
                queue.pop_front();
                if queue.is_empty() {
                    state.echoes[index].remove(&key);
                }
                continue;
            }
            self.stats.local_writes.fetch_add(1, Ordering::Relaxed);
            let stamp = state.next_stamp(index);
            state.known[index].insert(key.clone(), Version { stamp, image: image.clone() });
            let now = Instant::now();
            for dest in (0..self.replicas.len()).filter(|d| *d != index) {
                let drawn = now + self.config.delay + state.draw(self.config.jitter);
                let due = match state.last_due[dest].get(&key) {
                    Some(last) if *last >= drawn => *last + Duration::from_micros(1),
                    _ => drawn,
                };
                state.last_due[dest].insert(key.clone(), due);
                state.pending.push(Copy { due, dest, key: key.clone(), image: image.clone(), stamp });
            }
            debug!(region = %self.replicas[index].region, pk = %key.0, sk = %key.1, ?stamp, deleted = image.is_none(), "local write; copies queued");
        }
        drop(state);
        self.wake.notify_one();
    }

    async fn apply_loop(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let (ready, next_due) = {
                let mut state = self.state.lock().await;
                let now = Instant::now();
                let paused = state.paused.clone();
                let movable = |c: &Copy| !paused.contains(&c.dest) && !paused.contains(&c.stamp.origin);
                let mut ready = Vec::new();
                let mut next_due: Option<Instant> = None;
                let mut keep = Vec::with_capacity(state.pending.len());
                for c in state.pending.drain(..) {
                    if movable(&c) && c.due <= now {
                        ready.push(c);
                    } else {
                        if movable(&c) {
                            next_due = Some(next_due.map_or(c.due, |d| d.min(c.due)));
                        }
                        keep.push(c);
                    }
                }
                state.pending = keep;
                (ready, next_due)
            };
            // Applied in due order: the order AWS's replicator would reach
            // each copy; one item's copies are due in the order written.
            let mut ready = ready;
            ready.sort_by_key(|c| (c.due, c.stamp));
            for copy in ready {
                self.apply(copy).await;
            }
            let wait = next_due.map_or(Duration::from_millis(500), |d| d.saturating_duration_since(Instant::now()));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Applies one copy, unless its replica holds a newer write.
    async fn apply(&self, copy: Copy) {
        let replica = &self.replicas[copy.dest];
        let expected = {
            let mut state = self.state.lock().await;
            let known = state.known[copy.dest].get(&copy.key).cloned();
            if let Some(v) = known.as_ref().filter(|v| v.stamp >= copy.stamp) {
                debug!(
                    region = %replica.region, pk = %copy.key.0, sk = %copy.key.1,
                    held = ?v.stamp, copy = ?copy.stamp, "copy superseded"
                );
                self.stats.superseded.fetch_add(1, Ordering::Relaxed);
                return;
            }
            let expected = known.and_then(|v| v.image);
            if expected.is_none() && copy.image.is_none() {
                // Deleting what is not there writes nothing and streams
                // nothing; only the stamp moves.
                state.known[copy.dest].insert(copy.key.clone(), Version { stamp: copy.stamp, image: None });
                return;
            }
            state.echoes[copy.dest].entry(copy.key.clone()).or_default().push_back(copy.image.clone());
            expected
        };
        let (condition, names, values) = condition_on(expected.as_ref());
        let values = (!values.is_empty()).then_some(values);
        // The put and the delete take the same condition; their builders
        // are different types, so the common tail is spelled by a macro.
        macro_rules! conditioned {
            ($request:expr) => {
                $request
                    .table_name(&replica.table)
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(values)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        (e.code().map(str::to_owned), aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
                    })
            };
        }
        let result = match &copy.image {
            Some(image) => {
                conditioned!(replica.dynamodb.put_item().set_item(Some(beacon_aws::item::to_sdk(image.clone()))))
            }
            None => conditioned!(
                replica
                    .dynamodb
                    .delete_item()
                    .key(keys::PK, AttributeValue::S(copy.key.0.clone()))
                    .key(keys::SK, AttributeValue::S(copy.key.1.clone()))
            ),
        };
        let mut state = self.state.lock().await;
        match result {
            Ok(()) => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                state.known[copy.dest].insert(copy.key, Version { stamp: copy.stamp, image: copy.image });
            }
            Err((code, message)) => {
                // The echo will not come: take it back.
                if let Some(queue) = state.echoes[copy.dest].get_mut(&copy.key) {
                    if let Some(at) = queue.iter().rposition(|e| *e == copy.image) {
                        queue.remove(at);
                    }
                    if queue.is_empty() {
                        state.echoes[copy.dest].remove(&copy.key);
                    }
                }
                if code.as_deref() == Some("ConditionalCheckFailedException") {
                    // A local write this stand-in has not read yet: newer
                    // than this copy, and its own copy will follow.
                    self.stats.raced.fetch_add(1, Ordering::Relaxed);
                } else {
                    warn!(region = %replica.region, error = %message, "replicating a write failed; retrying");
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    state.pending.push(Copy { due: Instant::now() + Duration::from_millis(200), ..copy });
                }
            }
        }
    }
}

/// The condition that the item is still what this stand-in last knew of it:
/// absent, or with the same scalar attributes (every write Beacon makes
/// changes one: a timestamp, a version, a generation).
fn condition_on(expected: Option<&Item>) -> (String, HashMap<String, String>, HashMap<String, AttributeValue>) {
    let mut names = HashMap::from([("#pk".to_owned(), keys::PK.to_owned())]);
    let mut values = HashMap::new();
    let Some(item) = expected else {
        return ("attribute_not_exists(#pk)".to_owned(), names, values);
    };
    let mut parts = vec!["attribute_exists(#pk)".to_owned()];
    let sdk = beacon_aws::item::to_sdk(item.clone());
    let mut attrs: Vec<(&String, &AttributeValue)> = sdk.iter().collect();
    attrs.sort_by(|a, b| a.0.cmp(b.0));
    for (i, (name, value)) in attrs.into_iter().enumerate() {
        if !matches!(value, AttributeValue::S(_) | AttributeValue::N(_) | AttributeValue::Bool(_)) {
            continue;
        }
        names.insert(format!("#a{i}"), name.clone());
        values.insert(format!(":v{i}"), value.clone());
        parts.push(format!("#a{i} = :v{i}"));
    }
    (parts.join(" AND "), names, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_order_by_time_then_region_and_never_repeat() {
        let mut s = State::default();
        let a = s.next_stamp(1);
        let b = s.next_stamp(0);
        assert!(b > a, "a later stamp wins whatever its Region");
        assert!(Stamp { micros: 5, origin: 1 } > Stamp { micros: 5, origin: 0 }, "ties go by Region");
    }

    #[test]
    fn draws_are_seeded_and_bounded() {
        let mut a = State { rng: 7, ..State::default() };
        let mut b = State { rng: 7, ..State::default() };
        for _ in 0..100 {
            let (x, y) = (a.draw(Duration::from_millis(200)), b.draw(Duration::from_millis(200)));
            assert_eq!(x, y);
            assert!(x < Duration::from_millis(200));
        }
        assert_eq!(a.draw(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn the_condition_names_the_scalars_of_the_known_item() {
        let (c, _, v) = condition_on(None);
        assert_eq!(c, "attribute_not_exists(#pk)");
        assert!(v.is_empty());
        let item: Item = serde_dynamo::to_item(serde_json::json!({"pk": "SERVICE#a", "sk": "X", "n": 3, "l": [1]}))
            .expect("an item");
        let (c, names, v) = condition_on(Some(&item));
        assert_eq!(v.len(), 3, "pk, sk and n; the list is left out: {c}");
        assert_eq!(names.len(), 4);
        assert!(c.starts_with("attribute_exists(#pk) AND "));
    }
}
