//! Why a used local stack is slower, measured (./scripts/bench runs it last,
//! on a stack of its own): the fan-out's rate and the engines' own call
//! latencies on a fresh stack, then after DynamoDB Local has taken 20,000
//! writes into another table with a stream (what a long test or benchmark
//! run leaves), and moto's SQS send latency into an empty queue and into one
//! holding 3,000 undelivered messages (a subscriber that stopped reading).
//!
//! `BENCH_WEAR_WRITES` (default 20000) sets the DynamoDB load.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_fanout::FanOut;
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names};
use beacon_tests::{sdk_config, unique};
use futures::StreamExt;

fn median_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples.get(samples.len() / 2).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
}

/// The fan-out's rate draining 1,000 records at batch size 100, on a fresh
/// table and topic.
async fn handler_rate(clients: &Clients) -> f64 {
    let table = unique("wear");
    let names = Names { on_failure_queue: None, ..Names::for_table(&table) };
    let resources = pipeline::create(clients, &names).await.expect("table and topic");
    let writer = DynamoTable::new(clients.dynamodb.clone(), &table);
    let n = 1000;
    beacon_tests::put_instances(&writer, n as usize, 50).await;
    let handled = Arc::new(AtomicU64::new(0));
    let h = handled.clone();
    let fanout = Arc::new(FanOut::new(
        writer.clone(),
        SnsPublisher::new(clients.sns.clone(), &resources.topic_arn),
        resources.refresh_queue(clients),
    ));
    let start = Instant::now();
    let mapping = Mapping::start(
        clients,
        &resources,
        MappingConfig::default(),
        pipeline::fanout_handler(fanout, move |seen| {
            h.fetch_add(seen.records as u64, Ordering::Relaxed);
        }),
    );
    while handled.load(Ordering::Relaxed) < n && start.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = handled.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
    mapping.stop().await;
    rate
}

/// Median PutItem latency over 200 sequential writes to a fresh table.
async fn put_latency(clients: &Clients) -> f64 {
    let table = unique("wear-put");
    beacon_local::setup::ensure_table(&clients.dynamodb, &table).await.expect("table");
    let mut samples = Vec::new();
    for i in 0..200 {
        let start = Instant::now();
        clients
            .dynamodb
            .put_item()
            .table_name(&table)
            .item("pk", Av::S(format!("SERVICE#s{}", i % 20)))
            .item("sk", Av::S(format!("INSTANCE#1.0.0#i{i}")))
            .send()
            .await
            .expect("put");
        samples.push(start.elapsed());
    }
    median_ms(samples)
}

async fn phase(name: &str, clients: &Clients) {
    let rates: Vec<f64> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(handler_rate(clients).await);
        }
        v.sort_by(f64::total_cmp);
        v
    };
    let put = put_latency(clients).await;
    println!("| {name} | {:.0} ({:.0}–{:.0}) | {put:.1} |", rates[1], rates[0], rates[2]);
}

/// Median SendMessageBatch (10 × 2 KB) latency into `url`, over 30 calls.
async fn send_latency(sqs: &aws_sdk_sqs::Client, url: &str) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..30 {
        let start = Instant::now();
        send_ten(sqs, url).await;
        samples.push(start.elapsed());
    }
    median_ms(samples)
}

async fn send_ten(sqs: &aws_sdk_sqs::Client, url: &str) {
    let mut batch = sqs.send_message_batch().queue_url(url);
    for j in 0..10 {
        batch = batch.entries(
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(j.to_string())
                .message_body("x".repeat(2000))
                .build()
                .expect("entry"),
        );
    }
    batch.send().await.expect("send");
}

#[tokio::main]
async fn main() {
    let config = sdk_config().await;
    let clients = Clients::from_config(&config);
    let writes: usize = std::env::var("BENCH_WEAR_WRITES").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);

    println!("## A used stack, measured (`benches/wear.rs`)\n");
    println!("| DynamoDB Local state | handler records/s, batch 100: median (min–max) of 3 | PutItem median ms |");
    println!("|---|---|---|");
    phase("fresh", &clients).await;
    let big = unique("wear-big");
    beacon_local::setup::ensure_table(&clients.dynamodb, &big).await.expect("table");
    let start = Instant::now();
    futures::stream::iter(0..writes)
        .map(|i| {
            let (d, big) = (clients.dynamodb.clone(), big.clone());
            async move {
                d.put_item()
                    .table_name(&big)
                    .item("pk", Av::S(format!("SERVICE#s{}", i % 50)))
                    .item("sk", Av::S(format!("INSTANCE#1.0.0#i{i}")))
                    .item("x", Av::S("y".repeat(500)))
                    .send()
                    .await
                    .expect("put")
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    eprintln!("bench: {writes} writes into another table in {:.0} s", start.elapsed().as_secs_f64());
    phase(&format!("after {writes} writes into another table with a stream"), &clients).await;

    println!("\n| moto SQS queue | SendMessageBatch (10 × 2 KB) median ms |");
    println!("|---|---|");
    let url = |name: String| {
        let sqs = clients.sqs.clone();
        async move { sqs.create_queue().queue_name(name).send().await.expect("queue").queue_url.expect("url") }
    };
    let empty = url(unique("wear-empty")).await;
    println!("| empty | {:.1} |", send_latency(&clients.sqs, &empty).await);
    let full = url(unique("wear-full")).await;
    for _ in 0..300 {
        send_ten(&clients.sqs, &full).await;
    }
    println!("| holding 3,000 undelivered messages | {:.1} |", send_latency(&clients.sqs, &full).await);
}
