//! Expiry benchmark against the local stack (run it with ./scripts/bench):
//! N registrations (`BENCH_EXPIRIES`, default 1,000) whose heartbeats stop
//! so that they all expire in the same second, then the delay from that
//! second to the publication of each one's `expired` event, through the
//! whole pipeline: the sweeper's delete, the stream, the fan-out, SNS; and
//! to its receipt by an SQS subscriber that drains its queue throughout,
//! which is the end-to-end figure a consumer sees.
//!
//! Run twice in one process, each on a fresh table and topic: with the
//! sweeper sweeping every second (the template's default `SweepIntervalMs`)
//! and once a minute (`SweepIntervalMs=60000`, the design before). Also
//! counts the sweeper's requests per minute, for the cost model.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use beacon_aws::viewer::subscribe_queue;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::clock::now_millis;
use beacon_domain::ports::Registrations;
use beacon_domain::{Registration, Status};
use beacon_fanout::FanOut;
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names};
use beacon_tests::bench::percentile;
use beacon_tests::{sdk_config, unique};
use futures::StreamExt;
use tokio::sync::{Mutex, watch};

struct Run {
    interval_ms: u64,
    /// The fan-out's time in the handler over the burst's batches.
    handler_s: f64,
    /// Of which publishing to SNS (the local moto server).
    publishing_s: f64,
    batches: usize,
    last_deleted_s: f64,
    expired: usize,
    /// Expiry → receipt by the SQS subscriber, per event received.
    received_ms: Vec<f64>,
    delays_ms: Vec<f64>,
    sweeps_per_minute: f64,
    queries_per_minute: f64,
}

async fn run(clients: &Clients, n: usize, interval_ms: u64) -> Run {
    let table = unique("bench-exp");
    let names = Names { on_failure_queue: None, ..Names::for_table(&table) };
    let resources = pipeline::create(clients, &names).await.expect("table and topic");
    let publisher = SnsPublisher::new(clients.sns.clone(), &resources.topic_arn);
    let sns = publisher.clone();
    let fanout = Arc::new(FanOut::new(
        DynamoTable::new(clients.dynamodb.clone(), &table),
        publisher,
        resources.refresh_queue(clients),
    ));
    // When each batch's `expired` events went out: the handler returns
    // after its PublishBatch calls succeeded, so this is when they were
    // published (an upper bound, by the batch's own length at most).
    // With each batch's own time in the handler, which tells the fan-out's
    // share of the delay from the local stream's (GetRecords on DynamoDB
    // Local, polled 4 times a second per shard).
    let published: Arc<std::sync::Mutex<Vec<(i64, usize)>>> = Arc::default();
    let handling: Arc<std::sync::Mutex<(Duration, usize)>> = Arc::default();
    let (seen, busy) = (published.clone(), handling.clone());
    let handler = pipeline::fanout_handler(fanout, move |b| {
        if let Some(&k) = b.report.published.get("expired") {
            seen.lock().unwrap().push((now_millis(), k));
            let mut busy = busy.lock().unwrap();
            busy.0 += b.elapsed;
            busy.1 += 1;
        }
    });
    let mapping = Mapping::start(clients, &resources, MappingConfig::default(), handler);
    let queue_url = subscribe_queue(
        &clients.sqs,
        &clients.sns,
        &resources.topic_arn,
        &unique("bench-exp-q"),
        Some(r#"{"kind":["expired"]}"#),
    )
    .await
    .expect("subscribing the queue")
    .url;

    // Every registration expires in second `due`, far enough ahead for the
    // writes (16 at a time) to land first.
    let writer = DynamoTable::new(clients.dynamodb.clone(), &table);
    let now = now_millis() / 1000;
    let due = now + 20 + (n as i64 / 100);
    futures::stream::iter(0..n)
        .map(|i| {
            let writer = &writer;
            async move {
                let r = Registration::new_at(
                    &format!("svc{}", i % 10),
                    "1.0.0",
                    &format!("i-{i}"),
                    "https://x.example",
                    Status::Healthy,
                    u64::try_from(due - now).unwrap(),
                    now,
                )
                .unwrap();
                writer.put(&r).await.expect("a registration");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    // The registrations' own events drain before the sweeper starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A schedule's phase is unrelated to when heartbeats stop: a sweeper
    // of one sweep a minute starts at a random point of the minute before
    // the expiry (one sample; over many, the delay is uniform in 0-60 s).
    if interval_ms >= 60_000 {
        let phase = i64::from(
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() % 60_000,
        );
        let start = due * 1000 - phase;
        if start > now_millis() {
            tokio::time::sleep(Duration::from_millis(u64::try_from(start - now_millis()).unwrap_or(0))).await;
        }
    }
    // The subscriber drains its queue from before the burst, as a live
    // consumer does: 4 receivers, each noting when an instance's `expired`
    // event reached it. (Left to fill, the local SQS slows down: moto
    // counts a queue's messages on every send, so each publish to a queue
    // of 1,000 undrained messages costs a pass over them, and the burst's
    // publication time measured that queue, not the pipeline.)
    let received: Arc<Mutex<HashMap<String, i64>>> = Arc::default();
    let give_up = due * 1000 + 190_000;
    let receivers: Vec<_> = (0..4)
        .map(|_| {
            let (sqs, url, received) = (clients.sqs.clone(), queue_url.clone(), received.clone());
            tokio::spawn(async move {
                while received.lock().await.len() < n && now_millis() < give_up {
                    let Ok(out) = sqs
                        .receive_message()
                        .queue_url(&url)
                        .max_number_of_messages(10)
                        .wait_time_seconds(1)
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let at = now_millis();
                    let mut entries = Vec::new();
                    for (i, m) in out.messages.unwrap_or_default().into_iter().enumerate() {
                        let v: serde_json::Value =
                            serde_json::from_str(m.body.as_deref().unwrap_or("{}")).unwrap_or_default();
                        if let Some(id) = v["instance_id"].as_str() {
                            received.lock().await.entry(id.to_owned()).or_insert(at);
                        }
                        if let Some(h) = m.receipt_handle {
                            entries.push(
                                DeleteMessageBatchRequestEntry::builder()
                                    .id(i.to_string())
                                    .receipt_handle(h)
                                    .build()
                                    .expect("id and handle are set"),
                            );
                        }
                    }
                    if !entries.is_empty() {
                        let _ = sqs.delete_message_batch().queue_url(&url).set_entries(Some(entries)).send().await;
                    }
                }
            })
        })
        .collect();

    let publishing_before = sns.publishing().as_secs_f64();
    let sweeper_table = DynamoTable::new(clients.dynamodb.clone(), &table);
    let counts = sweeper_table.clone();
    let (stop, stop_rx) = watch::channel(false);
    let started = now_millis();
    let sweeper = pipeline::spawn_sweeper(
        sweeper_table,
        Duration::from_secs(60),
        Duration::from_millis(interval_ms),
        stop_rx.clone(),
    );

    let deadline = due * 1000 + 130_000;
    let count = |p: &[(i64, usize)]| p.iter().map(|(_, k)| k).sum::<usize>();
    // When the sweeper's deletes were all done (its adapter's writes).
    let mut deleted_at = None;
    while count(&published.lock().unwrap()) < n && now_millis() < deadline {
        if deleted_at.is_none() && counts.counts().snapshot().1 >= n as u64 {
            deleted_at = Some(now_millis());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let minutes = (now_millis() - started) as f64 / 60_000.0;
    // The registrations' own `registered` events went out before `started`;
    // what the burst added is the time since.
    let publishing_s = sns.publishing().as_secs_f64() - publishing_before;
    stop.send(true).unwrap();
    sweeper.await.unwrap();
    mapping.stop().await;
    let (reads, _, _) = counts.counts().snapshot();
    let queries_per_minute = reads as f64 / minutes;
    let mut delays_ms: Vec<f64> = Vec::new();
    for (at, k) in published.lock().unwrap().iter() {
        delays_ms.extend(std::iter::repeat_n((at - due * 1000) as f64, *k));
    }
    delays_ms.sort_by(f64::total_cmp);
    // The subscriber drains the whole burst (or gives up a minute after
    // the deadline).
    for r in receivers {
        r.await.unwrap();
    }
    let mut received_ms: Vec<f64> = received.lock().await.values().map(|at| (at - due * 1000) as f64).collect();
    received_ms.sort_by(f64::total_cmp);
    let (handler_time, batches) = *handling.lock().unwrap();
    Run {
        handler_s: handler_time.as_secs_f64(),
        publishing_s,
        batches,
        interval_ms,
        last_deleted_s: deleted_at.map_or(f64::NAN, |at| (at - due * 1000) as f64 / 1000.0),
        expired: delays_ms.len(),
        received_ms,
        delays_ms,
        sweeps_per_minute: queries_per_minute / f64::from(beacon_domain::keys::EXPIRY_SHARDS),
        queries_per_minute,
    }
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("BENCH_EXPIRIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let clients = Clients::from_config(&sdk_config().await);
    println!("\n## Expiry (`benches/expiry.rs`, {n} registrations expiring in the same second)\n");
    println!(
        "| sweep interval | `expired` events published | received by an SQS subscriber | expiry → published: p50 (s) | p90 | p99 | max | expiry → received: p50 (s) | p99 | max | last delete done (s) | fan-out handler time over the burst (batches), of which publishing | sweeps / min | expiry-index Queries / min |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for interval_ms in [1_000, 60_000] {
        let r = run(&clients, n, interval_ms).await;
        let s = |v: &[f64], p| percentile(v, p) / 1000.0;
        let max = |v: &[f64]| v.last().copied().unwrap_or(f64::NAN) / 1000.0;
        println!(
            "| {} ms | {} of {n} | {} of {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} s ({}), {:.2} s | {:.1} | {:.0} |",
            r.interval_ms,
            r.expired,
            r.received_ms.len(),
            s(&r.delays_ms, 0.5),
            s(&r.delays_ms, 0.9),
            s(&r.delays_ms, 0.99),
            max(&r.delays_ms),
            s(&r.received_ms, 0.5),
            s(&r.received_ms, 0.99),
            max(&r.received_ms),
            r.last_deleted_s,
            r.handler_s,
            r.batches,
            r.publishing_s,
            r.sweeps_per_minute,
            r.queries_per_minute,
        );
    }
}
