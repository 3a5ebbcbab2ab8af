//! The fan-out bench's rig: a fresh table, topic and queues per size, the
//! dependents loaded as the fan-out would have left them, and the two
//! handlers feeding the counters the bench reads.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as Av, PutRequest, WriteRequest};
use beacon_aws::item::to_attribute;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::ports::ResolvedViews;
use beacon_domain::view::{ResolvedItem, ServiceView, group_id};
use beacon_domain::{Registration, Status, keys};
use beacon_fanout::{FanOut, Limits};
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names, Resources};
use beacon_local::queue::{QueueMapping, QueueMappingConfig};
use beacon_tests::{now, unique};
use futures::StreamExt;

pub(crate) const REQUIREMENT: &str = "auth^1";

/// Counters the two handlers feed.
#[derive(Default)]
pub(crate) struct Seen {
    /// Stream records handled.
    pub(crate) records: AtomicU64,
    /// Views written as changed (stream path + pages).
    pub(crate) views: AtomicU64,
    /// Events published (stream path + pages).
    pub(crate) published: AtomicU64,
    /// `registered` events published (the unrelated change).
    pub(crate) registered: AtomicU64,
    /// Refresh pages handled.
    pub(crate) pages: AtomicU64,
    /// Longest stream invocation since reset, in microseconds.
    pub(crate) longest_stream: AtomicU64,
    /// Longest page invocation since reset, in microseconds.
    pub(crate) longest_page: AtomicU64,
}

impl Seen {
    pub(crate) fn reset_longest(&self) {
        self.longest_stream.store(0, Ordering::Relaxed);
        self.longest_page.store(0, Ordering::Relaxed);
    }
}

pub(crate) struct Rig {
    pub(crate) table: String,
    pub(crate) writer: DynamoTable,
    pub(crate) fan: DynamoTable,
    pub(crate) clients: Clients,
    pub(crate) resources: Resources,
    pub(crate) seen: Arc<Seen>,
}

pub(crate) async fn rig(config: &aws_config::SdkConfig) -> Rig {
    let clients = Clients::from_config(config);
    let table = unique("fan");
    // AWS's visibility timeout for the refresh queue (six times the
    // function's 30 s), not `beacon dev`'s 30 s: a page of 500 writes on a
    // loaded local stack can run longer than 30 s, and SQS then delivers it
    // again while it runs (the 2026-12-03 run's 10,000-dependent row: 61
    // page invocations for 20 pages, 20,405 refused writes). Lambda's own
    // timeout would have ended such a page in AWS.
    let names = Names { on_failure_queue: None, refresh_visibility_seconds: 180, ..Names::for_table(&table) };
    let resources = pipeline::create(&clients, &names).await.expect("table, topic and queues");
    Rig {
        table: table.clone(),
        writer: DynamoTable::new(clients.dynamodb.clone(), &table),
        fan: DynamoTable::new(clients.dynamodb.clone(), &table),
        clients,
        resources,
        seen: Arc::default(),
    }
}

pub(crate) fn start(rig: &Rig, limits: Limits) -> (Mapping, QueueMapping) {
    let publisher = SnsPublisher::new(rig.clients.sns.clone(), &rig.resources.topic_arn);
    let fanout = Arc::new(
        FanOut::new(rig.fan.clone(), publisher, rig.resources.refresh_queue(&rig.clients)).with_limits(limits),
    );
    let seen = rig.seen.clone();
    let stream = pipeline::fanout_handler(fanout.clone(), move |b| {
        seen.records.fetch_add(b.records as u64, Ordering::Relaxed);
        seen.views.fetch_add(b.report.views_changed as u64, Ordering::Relaxed);
        seen.published.fetch_add(b.report.published.values().sum::<usize>() as u64, Ordering::Relaxed);
        seen.registered.fetch_add(*b.report.published.get("registered").unwrap_or(&0) as u64, Ordering::Relaxed);
        seen.longest_stream.fetch_max(b.elapsed.as_micros() as u64, Ordering::Relaxed);
    });
    let seen = rig.seen.clone();
    let pages = pipeline::pages_handler(fanout, move |p| {
        seen.pages.fetch_add(p.report.pages as u64, Ordering::Relaxed);
        seen.views.fetch_add(p.report.views_changed as u64, Ordering::Relaxed);
        seen.published.fetch_add(p.report.published as u64, Ordering::Relaxed);
        seen.longest_page.fetch_max(p.elapsed.as_micros() as u64, Ordering::Relaxed);
    });
    let mapping = Mapping::start(&rig.clients, &rig.resources, MappingConfig::default(), stream);
    let pollers = std::env::var("BENCH_REFRESH_POLLERS").ok().and_then(|v| v.parse().ok());
    let config = QueueMappingConfig { pollers: pollers.unwrap_or(4), ..QueueMappingConfig::default() };
    let queue = pipeline::start_pages(&rig.clients, &rig.resources, config, pages);
    (mapping, queue)
}

pub(crate) fn auth(status: Status, build: &str) -> Registration {
    let mut r = Registration::new_at("auth", "1.4.0", "i-1", "https://auth.example", Status::Healthy, 7200, now())
        .expect("valid");
    r.status = status;
    r.attributes.insert("build".into(), build.into());
    r
}

pub(crate) fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

/// The items the fan-out would have left for `dependents` consumers of
/// `auth^1` at generation 1: the service's generation, its view group when
/// `grouped` (else none: a service refreshed directly), and per consumer its
/// edge and resolved item.
pub(crate) fn seed_items(dependents: usize, view: &ServiceView, grouped: bool) -> Vec<HashMap<String, Av>> {
    let requirements = vec![REQUIREMENT.to_owned()];
    let view_av: Av = to_attribute(view).expect("view").into();
    let mut generation = HashMap::from([
        (keys::PK.to_owned(), s(keys::fanout_pk("auth"))),
        (keys::SK.to_owned(), s(keys::generation_sk())),
        ("generation".to_owned(), Av::N("1".into())),
        (keys::LAYOUT.to_owned(), Av::N(keys::LAYOUT_FANOUT_PARTITION.to_string())),
    ]);
    if grouped {
        generation.insert("grouped".to_owned(), Av::Bool(true));
    }
    let mut items = vec![generation];
    if dependents > 0 && grouped {
        items.push(HashMap::from([
            (keys::PK.to_owned(), s(keys::fanout_pk("auth"))),
            (keys::SK.to_owned(), s(keys::view_sk(&group_id(&requirements)))),
            ("requirements".to_owned(), Av::L(vec![s(REQUIREMENT)])),
            ("view".to_owned(), view_av),
            ("generation".to_owned(), Av::N("1".into())),
            ("pending".to_owned(), Av::Bool(false)),
        ]));
    }
    for c in 0..dependents {
        let consumer = format!("c{c:06}");
        items.push(HashMap::from([
            (keys::PK.to_owned(), s(keys::fanout_pk("auth"))),
            (keys::SK.to_owned(), s(keys::dependent_sk(&consumer))),
            ("consumer".to_owned(), s(&consumer)),
            ("requirements".to_owned(), Av::L(vec![s(REQUIREMENT)])),
        ]));
        let resolved = ResolvedItem {
            consumer: consumer.clone(),
            revision: 1,
            needs: requirements.clone(),
            needed_services: vec!["auth".into()],
            services: [("auth".to_owned(), view.clone())].into(),
            last_change_id: None,
        };
        let Av::M(mut item) = Av::from(to_attribute(&resolved).expect("resolved item")) else {
            panic!("a resolved item encodes as a map")
        };
        item.insert(keys::PK.to_owned(), s(keys::consumer_pk(&consumer)));
        item.insert(keys::SK.to_owned(), s(keys::resolved_sk()));
        items.push(item);
    }
    items
}

/// Switches the table's stream off (`on == false`) or on again; on, the
/// rig reads the new stream, which starts empty.
pub(crate) async fn switch_stream(rig: &mut Rig, on: bool) {
    let spec = aws_sdk_dynamodb::types::StreamSpecification::builder().stream_enabled(on);
    let spec = if on { spec.stream_view_type(aws_sdk_dynamodb::types::StreamViewType::NewAndOldImages) } else { spec };
    let out = rig
        .clients
        .dynamodb
        .update_table()
        .table_name(&rig.table)
        .stream_specification(spec.build().expect("stream specification"))
        .send()
        .await
        .expect("UpdateTable (stream)");
    if on {
        rig.resources.stream_arn =
            out.table_description.and_then(|t| t.latest_stream_arn).expect("the new stream's ARN");
    }
}

/// DynamoDB Local's raw write rate as it is now: 2,000 PutItems (16 in
/// flight) on a scratch table of its own, dropped after. Measured again
/// before each size's moving change, because the engine slows as it fills
/// (docs/benchmarks.md, "A used stack"), and the convergence target is a
/// share of the rate the same engine manages at that moment.
pub(crate) async fn raw_rate_now(clients: &Clients) -> f64 {
    let table = unique("raw");
    beacon_local::setup::ensure_table(&clients.dynamodb, &table).await.expect("scratch table");
    let registry = DynamoTable::new(clients.dynamodb.clone(), &table);
    let n = 2000;
    let started = Instant::now();
    beacon_tests::put_instances(&registry, n, 50).await;
    let rate = n as f64 / started.elapsed().as_secs_f64();
    clients.dynamodb.delete_table().table_name(&table).send().await.expect("dropping the scratch table");
    rate
}

/// BatchWriteItem, 25 a call, 16 calls in flight, unprocessed items again.
pub(crate) async fn load(rig: &Rig, items: Vec<HashMap<String, Av>>) {
    let chunks: Vec<Vec<HashMap<String, Av>>> = items.chunks(25).map(<[_]>::to_vec).collect();
    futures::stream::iter(chunks)
        .map(|chunk| async move {
            let mut requests: Vec<WriteRequest> = chunk
                .into_iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(PutRequest::builder().set_item(Some(item)).build().expect("put"))
                        .build()
                })
                .collect();
            while !requests.is_empty() {
                let out = rig
                    .clients
                    .dynamodb
                    .batch_write_item()
                    .request_items(&rig.resources.table, requests)
                    .send()
                    .await
                    .expect("BatchWriteItem");
                requests = out.unprocessed_items.and_then(|mut u| u.remove(&rig.resources.table)).unwrap_or_default();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

pub(crate) async fn wait(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "bench: {what} did not happen in {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every `step`-th consumer's view of auth, and the last one's, say
/// `healthy` (or not).
pub(crate) async fn sample_converged(rig: &Rig, dependents: usize, healthy: bool) -> bool {
    let step = (dependents / 50).max(1);
    let mut sample: Vec<usize> = (0..dependents).step_by(step).collect();
    sample.extend(dependents.checked_sub(1));
    for c in sample {
        let item = rig.writer.resolved(&format!("c{c:06}")).await.expect("read").expect("a resolved item");
        let text = serde_json::to_string(&item.services["auth"]).expect("json");
        if text.contains("\"resolved\"") != healthy {
            return false;
        }
    }
    true
}
