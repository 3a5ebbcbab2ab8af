//! What one change costs by number of dependents, with view groups and the
//! refresh queue (issue 17; docs/benchmarks.md, "A change costs what it
//! changes"). For each size, a fresh table, topic and queues; the
//! dependents are loaded directly (BatchWriteItem: edges, resolved items,
//! their view group and the service's generation, exactly as the fan-out
//! would have left them), then two changes: one that moves no view (an
//! attribute edit) and one that moves every view (healthy → unhealthy).
//!
//! Reported per change: the fan-out's DynamoDB reads, writes and refused
//! writes (stream path and pages together), events published, refresh pages,
//! the longest single invocation of each function, the time until every view
//! has converged (the fan-out's own count of written views, checked on a
//! sample of resolved items), and the delay the refresh adds to an unrelated
//! service's change on the same stream. The raw write ceiling (16 concurrent
//! PutItems) is measured in the same run, on a fresh table at the start and
//! again on the same engine just before each size's moving change.
//!
//! `BENCH_FANOUT_SIZES` (default `0,10,1000,10000,100000`) picks the sizes;
//! `BENCH_REFRESH_POLLERS` the refresh queue mapping's concurrency (default
//! 4: the template lets AWS run up to `RefreshConcurrency` = 10 pages at
//! once; 4 is what this machine's two cores bear, the local stack's own
//! default of 2 leaves DynamoDB Local idle between pages); `BENCH_PAUSE_STREAM=1` stops the stream poller while
//! a refresh's pages run (an experiment on what slows them locally).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue as Av, PutRequest, WriteRequest};
use beacon_aws::item::to_attribute;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::ports::{Catalog, Views};
use beacon_domain::view::{ResolvedItem, ServiceView, ViewCache, group_id};
use beacon_domain::{Registration, Status, keys};
use beacon_fanout::{FanOut, Limits};
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names, Resources};
use beacon_local::queue::{QueueMapping, QueueMappingConfig};
use beacon_tests::{now, sdk_config, unique};
use futures::StreamExt;

const REQUIREMENT: &str = "auth^1";

/// Counters the two handlers feed.
#[derive(Default)]
struct Seen {
    /// Stream records handled.
    records: AtomicU64,
    /// Views written as changed (stream path + pages).
    views: AtomicU64,
    /// Events published (stream path + pages).
    published: AtomicU64,
    /// `registered` events published (the unrelated change).
    registered: AtomicU64,
    /// Refresh pages handled.
    pages: AtomicU64,
    /// Longest stream invocation since reset, in microseconds.
    longest_stream: AtomicU64,
    /// Longest page invocation since reset, in microseconds.
    longest_page: AtomicU64,
}

impl Seen {
    fn reset_longest(&self) {
        self.longest_stream.store(0, Ordering::Relaxed);
        self.longest_page.store(0, Ordering::Relaxed);
    }
}

struct Rig {
    table: String,
    writer: DynamoTable,
    fan: DynamoTable,
    clients: Clients,
    resources: Resources,
    seen: Arc<Seen>,
}

async fn rig(config: &aws_config::SdkConfig) -> Rig {
    let clients = Clients::from_config(config);
    let table = unique("fan");
    let names = Names { on_failure_queue: None, ..Names::for_table(&table) };
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

fn start(rig: &Rig) -> (Mapping, QueueMapping) {
    let publisher = SnsPublisher::new(rig.clients.sns.clone(), &rig.resources.topic_arn);
    let fanout = Arc::new(
        FanOut::new(rig.fan.clone(), publisher, rig.resources.refresh_queue(&rig.clients))
            .with_limits(Limits::default()),
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

fn auth(status: Status, build: &str) -> Registration {
    let mut r = Registration::new_at("auth", "1.4.0", "i-1", "https://auth.example", Status::Healthy, 7200, now())
        .expect("valid");
    r.status = status;
    r.attributes.insert("build".into(), build.into());
    r
}

fn s(v: impl Into<String>) -> Av {
    Av::S(v.into())
}

/// The items the fan-out would have left for `dependents` consumers of
/// `auth^1` at generation 1: the service's generation (grouped), the view
/// group, and per consumer its edge and resolved item.
fn seed_items(dependents: usize, view: &ServiceView) -> Vec<HashMap<String, Av>> {
    let requirements = vec![REQUIREMENT.to_owned()];
    let view_av: Av = to_attribute(view).expect("view").into();
    let mut items = vec![HashMap::from([
        (keys::PK.to_owned(), s(keys::fanout_pk("auth"))),
        (keys::SK.to_owned(), s(keys::generation_sk())),
        ("generation".to_owned(), Av::N("1".into())),
        ("grouped".to_owned(), Av::Bool(true)),
        (keys::LAYOUT.to_owned(), Av::N(keys::LAYOUT_FANOUT_PARTITION.to_string())),
    ])];
    if dependents > 0 {
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
async fn switch_stream(rig: &mut Rig, on: bool) {
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
async fn raw_rate_now(clients: &Clients) -> f64 {
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
async fn load(rig: &Rig, items: Vec<HashMap<String, Av>>) {
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

async fn wait(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "bench: {what} did not happen in {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Every `step`-th consumer's view of auth, and the last one's, say
/// `healthy` (or not).
async fn sample_converged(rig: &Rig, dependents: usize, healthy: bool) -> bool {
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

#[tokio::main]
async fn main() {
    let config = sdk_config().await;
    let sizes: Vec<usize> = std::env::var("BENCH_FANOUT_SIZES")
        .unwrap_or_else(|_| "0,10,1000,10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();

    // The raw write ceiling, measured on this run's own fresh table.
    let ceiling = rig(&config).await;
    let n = 2000;
    let started = Instant::now();
    beacon_tests::put_instances(&ceiling.writer, n, 50).await;
    let raw = n as f64 / started.elapsed().as_secs_f64();
    // The same for the write a refresh makes: an UpdateItem setting one
    // service's view in a resolved item and returning the item.
    let instance = auth(Status::Unhealthy, "z");
    let view = ViewCache::new(std::slice::from_ref(&instance), 2, now()).view(&[REQUIREMENT.to_owned()]);
    load(&ceiling, seed_items(n, &view)).await;
    let view_av: Av = to_attribute(&view).expect("view").into();
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|c| {
            let (client, table, view_av) =
                (ceiling.clients.dynamodb.clone(), ceiling.resources.table.clone(), view_av.clone());
            async move {
                client
                    .update_item()
                    .table_name(table)
                    .key(keys::PK, s(keys::consumer_pk(&format!("c{c:06}"))))
                    .key(keys::SK, s(keys::resolved_sk()))
                    .update_expression("SET services.#s = :v")
                    .expression_attribute_names("#s", "auth")
                    .expression_attribute_values(":v", view_av)
                    .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
                    .send()
                    .await
                    .expect("UpdateItem");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let raw_views = n as f64 / started.elapsed().as_secs_f64();
    // And the refresh's own write, through the port: conditional on the
    // generation and the digest, bumping the revision, returning the item.
    let moved = auth(Status::Healthy, "z");
    let moved_view = ViewCache::new(std::slice::from_ref(&moved), 3, now()).view(&[REQUIREMENT.to_owned()]);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|c| {
            let (writer, view) = (&ceiling.writer, &moved_view);
            async move {
                let w =
                    writer.write_view(&format!("c{c:06}"), "auth", view, Some("ceiling")).await.expect("write_view");
                assert!(matches!(w, beacon_domain::ports::ViewWrite::Changed(_)), "the ceiling's views must change");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let raw_conditional = n as f64 / started.elapsed().as_secs_f64();

    let mut costs = Vec::new();
    let mut delays = Vec::new();
    for dependents in sizes {
        let mut rig = rig(&config).await;
        let instance = auth(Status::Healthy, "a");
        let view = ViewCache::new(std::slice::from_ref(&instance), 1, now()).view(&[REQUIREMENT.to_owned()]);
        let items = seed_items(dependents, &view);
        let seeded = items.len() as u64;
        let load_started = Instant::now();
        switch_stream(&mut rig, false).await;
        load(&rig, items).await;
        switch_stream(&mut rig, true).await;
        eprintln!(
            "bench: {dependents} dependents loaded ({seeded} items in {:.1} s)",
            load_started.elapsed().as_secs_f64()
        );
        rig.writer.put(&instance).await.expect("write");
        let (mut mapping, queue) = start(&rig);
        let pause_stream = std::env::var("BENCH_PAUSE_STREAM").is_ok_and(|v| v == "1");
        wait("the service's first registration", Duration::from_secs(60), || {
            rig.seen.records.load(Ordering::Relaxed) >= 1
        })
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        for (what, change, moves) in [
            ("moves none (attribute)", auth(Status::Healthy, "b"), false),
            ("moves all (→ unhealthy)", auth(Status::Unhealthy, "b"), true),
        ] {
            let raw_now = if moves { Some(raw_rate_now(&rig.clients).await) } else { None };
            let seen = &rig.seen;
            let before = rig.fan.counts().snapshot();
            let (published, pages, views, records) = (
                seen.published.load(Ordering::Relaxed),
                seen.pages.load(Ordering::Relaxed),
                seen.views.load(Ordering::Relaxed),
                seen.records.load(Ordering::Relaxed),
            );
            seen.reset_longest();
            let started = Instant::now();
            rig.writer.put(&change).await.expect("write");
            let target = if moves { views + dependents as u64 } else { views };
            if pause_stream && moves {
                // An experiment: is the local stream poller what slows the
                // pages? Stop it once the change's batch is handled.
                wait("the change's batch", Duration::from_secs(600), || seen.records.load(Ordering::Relaxed) > records)
                    .await;
                mapping.pause().await;
            }
            wait("the views", Duration::from_secs(3600), || {
                seen.records.load(Ordering::Relaxed) > records && seen.views.load(Ordering::Relaxed) >= target
            })
            .await;
            let converged = started.elapsed().as_secs_f64();
            if pause_stream && moves {
                mapping.resume();
            }
            // Let the queue go quiet (a last, empty page may follow) before
            // the requests are counted.
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert!(sample_converged(&rig, dependents, !moves).await, "bench: a sampled view did not converge");
            let after = rig.fan.counts().snapshot();
            let written = seen.views.load(Ordering::Relaxed) - views;
            costs.push(format!(
                "| {dependents} | {what} | {} | {} ({}) | {} | {} | {:.0} ms / {:.0} ms | {:.2} s | {} | {} |",
                after.0 - before.0,
                after.1 - before.1,
                after.2 - before.2,
                seen.published.load(Ordering::Relaxed) - published,
                seen.pages.load(Ordering::Relaxed) - pages,
                seen.longest_stream.load(Ordering::Relaxed) as f64 / 1000.0,
                seen.longest_page.load(Ordering::Relaxed) as f64 / 1000.0,
                converged,
                if written > 0 { format!("{:.0}", written as f64 / converged) } else { "–".into() },
                match raw_now {
                    Some(raw) if written > 0 => format!("{raw:.0} ({:.2})", written as f64 / converged / raw),
                    Some(raw) => format!("{raw:.0}"),
                    None => "–".into(),
                },
            ));
        }
        // The delay a refresh adds to an unrelated service's change just
        // behind it on the stream (a third change, back to healthy).
        let seen = &rig.seen;
        let (views, registered) = (seen.views.load(Ordering::Relaxed), seen.registered.load(Ordering::Relaxed));
        rig.writer.put(&auth(Status::Healthy, "c")).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let unrelated_at = Instant::now();
        let other = Registration::new_at("other", "1.0.0", "o-1", "https://o.example", Status::Healthy, 600, now())
            .expect("valid");
        rig.writer.put(&other).await.expect("write");
        wait("the unrelated change", Duration::from_secs(600), || seen.registered.load(Ordering::Relaxed) > registered)
            .await;
        let delay = unrelated_at.elapsed().as_secs_f64() * 1000.0;
        let behind = seen.views.load(Ordering::Relaxed) - views;
        // The rest of this refresh is not waited for: the table is dropped.
        delays.push(format!("| {dependents} | {delay:.0} ms | {behind} of {dependents} |"));
        mapping.stop().await;
        queue.stop().await;
    }
    println!("## A change costs what it changes (`benches/fanout.rs`)\n");
    println!(
        "Raw write ceilings on a fresh table, 16 requests in flight: {raw:.0} PutItems/s ({n} registrations); \
         {raw_views:.0} view writes/s ({n} UpdateItems setting a view in a resolved item and returning it, \
         unconditionally); {raw_conditional:.0} refresh writes/s (the same through `Views::write_view`: \
         conditional on generation and digest, bumping the revision).\n"
    );
    println!(
        "| dependents | change | DynamoDB reads | DynamoDB writes (refused) | events published | refresh pages | longest invocation: stream / page | converged in | view writes/s | raw PutItems/s just before (ratio) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for row in costs {
        println!("{row}");
    }
    println!("\n### An unrelated change behind a refresh\n");
    println!("| dependents refreshed | unrelated change's event out after | views written by then |");
    println!("|---|---|---|");
    for row in delays {
        println!("{row}");
    }
}
