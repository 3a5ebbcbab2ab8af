//! Change events on an EventBridge bus beside SNS (`EventBusName`), against
//! the local stack (moto's EventBridge, a rule sending the stack's source to
//! an SQS queue, as a user's rule would): run it with ./scripts/bench.
//!
//! The same N changes (default 300, at 50 a second, services with no
//! dependents) go through two pipelines in turn, one publishing to SNS only
//! and one to SNS and the bus, so the table says what the bus adds: the
//! fan-out handler's time per record, SNS's write → receipt latency, the
//! bus's write → rule target latency, and PutEvents calls per record.
//! `BENCH_CHANGES` sets N.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails by panicking

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use beacon_aws::viewer::subscribe_queue;
use beacon_aws::{ChangePublisher, DynamoTable, EventBridgePublisher, SnsPublisher};
use beacon_domain::ports::Registrations;
use beacon_fanout::FanOut;
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names};
use beacon_tests::bench::{percentile, stamp_receipts};
use beacon_tests::{sdk_config, unique};
use tokio::sync::watch;

/// A `registered` event's instance id (the events these benches count).
fn registered(event: &serde_json::Value) -> Option<String> {
    (event["kind"] == "registered").then(|| event["instance_id"].as_str().map(str::to_owned)).flatten()
}

struct Run {
    sns_ms: Vec<f64>,
    bus_ms: Vec<f64>,
    handler_ms_per_record: f64,
    sns_calls_per_record: f64,
    put_calls_per_record: f64,
}

async fn run(changes: usize, with_bus: bool) -> Run {
    let config = sdk_config().await;
    let clients = Clients::from_config(&config);
    let table = unique("bench-bus");
    let resources =
        pipeline::create(&clients, &Names { on_failure_queue: None, ..Names::for_table(&table) }).await.unwrap();
    let moto = std::env::var("AWS_ENDPOINT_URL_SNS").expect("the local stack's dev.env");
    let events = aws_sdk_eventbridge::Client::from_conf(
        aws_sdk_eventbridge::config::Builder::from(&config).endpoint_url(&moto).build(),
    );
    let (stop, stop_rx) = watch::channel(false);
    let sns_queue = subscribe_queue(&clients.sqs, &clients.sns, &resources.topic_arn, &unique("bench-sns"), None)
        .await
        .unwrap()
        .url;
    let (on_sns, sns_task) = stamp_receipts(clients.sqs.clone(), sns_queue, stop_rx.clone(), registered);
    let sns = SnsPublisher::new(clients.sns.clone(), &resources.topic_arn);
    let mut publisher = ChangePublisher::new(sns.clone());
    let mut bus_side = None;
    if with_bus {
        let name = unique("bench-bus");
        let bus = events.create_event_bus().name(&name).send().await.unwrap().event_bus_arn.unwrap();
        let url = clients.sqs.create_queue().queue_name(unique("bench-bus-q")).send().await.unwrap().queue_url.unwrap();
        let arn_name = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
        let attrs = clients.sqs.get_queue_attributes().queue_url(&url).attribute_names(arn_name.clone()).send();
        let arn = attrs.await.unwrap().attributes.unwrap()[&arn_name].clone();
        let pattern = serde_json::json!({ "source": ["beacon.bench"] }).to_string();
        events.put_rule().name("bench").event_bus_name(&name).event_pattern(pattern).send().await.unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder().id("q").arn(arn).build().unwrap();
        events.put_targets().rule("bench").event_bus_name(&name).targets(target).send().await.unwrap();
        let putter = EventBridgePublisher::new(events.clone(), bus, "beacon.bench");
        publisher = publisher.with_bus(putter.clone());
        bus_side =
            Some((putter, stamp_receipts(clients.sqs.clone(), url, stop_rx.clone(), |v| registered(&v["detail"]))));
    }
    let registry = DynamoTable::new(clients.dynamodb.clone(), &table);
    let fanout = Arc::new(FanOut::new(registry.clone(), publisher, resources.refresh_queue(&clients)));
    let (nanos, records) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (n, r) = (nanos.clone(), records.clone());
    let handler = pipeline::fanout_handler(fanout, move |seen| {
        n.fetch_add(seen.elapsed.as_nanos() as u64, Ordering::Relaxed);
        r.fetch_add(seen.records as u64, Ordering::Relaxed);
    });
    let mapping = Mapping::start(&clients, &resources, MappingConfig::default(), handler);

    let mut written: HashMap<String, Instant> = HashMap::new();
    for i in 0..changes {
        let r = beacon_tests::bench::change(i);
        let id = r.instance_id.clone();
        written.insert(id, Instant::now());
        registry.put(&r).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sns_done = on_sns.lock().await.len() >= changes;
        let bus_done = match &bus_side {
            Some((_, (got, _))) => got.lock().await.len() >= changes,
            None => true,
        };
        if (sns_done && bus_done) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let latencies = |got: &HashMap<String, Instant>| -> Vec<f64> {
        let mut ms: Vec<f64> = written
            .iter()
            .filter_map(|(id, w)| got.get(id).map(|r| r.duration_since(*w).as_secs_f64() * 1000.0))
            .collect();
        ms.sort_by(|a, b| a.total_cmp(b));
        ms
    };
    let handled = records.load(Ordering::Relaxed).max(1) as f64;
    let sns_ms = latencies(&*on_sns.lock().await);
    let (bus_ms, put_calls) = match &bus_side {
        Some((putter, (got, _))) => (latencies(&*got.lock().await), putter.calls()),
        None => (Vec::new(), 0),
    };
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), mapping.stop()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), sns_task).await;
    if let Some((_, (_, task))) = bus_side {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    Run {
        sns_ms,
        bus_ms,
        handler_ms_per_record: nanos.load(Ordering::Relaxed) as f64 / 1e6 / handled,
        sns_calls_per_record: sns.calls() as f64 / handled,
        put_calls_per_record: put_calls as f64 / handled,
    }
}

#[tokio::main]
async fn main() {
    let changes: usize = std::env::var("BENCH_CHANGES").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let off = run(changes, false).await;
    let on = run(changes, true).await;
    let row = |name: &str, ms: &[f64]| {
        format!(
            "| {name} | {} of {changes} | {:.0} | {:.0} | {:.0} |",
            ms.len(),
            percentile(ms, 0.5),
            percentile(ms, 0.95),
            percentile(ms, 0.99)
        )
    };
    println!("## Change events on an EventBridge bus ({changes} changes at 50/s, moto's EventBridge)\n");
    println!("| path | arrived | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|---|");
    println!("{}", row("SNS only: write → SQS receipt", &off.sns_ms));
    println!("{}", row("SNS + bus: write → SQS receipt", &on.sns_ms));
    println!("{}", row("SNS + bus: write → the bus rule's SQS target", &on.bus_ms));
    println!();
    println!("| fan-out, per record | SNS only | SNS + bus |");
    println!("|---|---|---|");
    println!("| handler time | {:.2} ms | {:.2} ms |", off.handler_ms_per_record, on.handler_ms_per_record);
    println!("| SNS PublishBatch calls | {:.2} | {:.2} |", off.sns_calls_per_record, on.sns_calls_per_record);
    println!("| PutEvents calls | — | {:.2} |", on.put_calls_per_record);
    if off.sns_ms.len() < changes || on.sns_ms.len() < changes || on.bus_ms.len() < changes {
        eprintln!("bench: some events did not arrive");
        std::process::exit(1);
    }
}
