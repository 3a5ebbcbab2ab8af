//! Pipeline benchmark against the local stack (run it with ./scripts/bench):
//!
//! - write → subscriber receipt (SQS) latency over N changes, with the local
//!   event source mapping polling at AWS's 4 polls a second per shard;
//! - write → resolved item updated, for a consumer that needs the service;
//! - the fan-out handler's own time per record, and its DynamoDB and SNS
//!   requests per record.
//!
//! `BENCH_CHANGES` (default 500) sets N. Results print as a Markdown table.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use beacon_aws::viewer::subscribe_queue;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::ports::{NeedsDeclarations, Registrations, ServiceState, Views};
use beacon_domain::view::Needs;
use beacon_domain::{Registration, Status, parse_needs};
use beacon_fanout::FanOut;
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names};
use beacon_tests::bench::percentile;
use beacon_tests::{now, sdk_config, unique};
use tokio::sync::watch;

fn summary(name: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.total_cmp(b));
    format!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.95),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

#[tokio::main]
async fn main() {
    let changes: usize = std::env::var("BENCH_CHANGES").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let config = sdk_config().await;
    let clients = Clients::from_config(&config);
    let (dynamodb, sns, sqs) = (clients.dynamodb.clone(), clients.sns.clone(), clients.sqs.clone());
    let table = unique("bench");
    let names = Names { on_failure_queue: None, ..Names::for_table(&table) };
    let resources = pipeline::create(&clients, &names).await.expect("table and topic");
    let topic_arn = resources.topic_arn.clone();

    // The fan-out's own adapters, so their counts are its requests only.
    let fan_registry = DynamoTable::new(dynamodb.clone(), &table);
    let publisher = SnsPublisher::new(sns.clone(), &topic_arn);
    let fanout = Arc::new(FanOut::new(fan_registry.clone(), publisher.clone(), resources.refresh_queue(&clients)));
    let handler_nanos = Arc::new(AtomicU64::new(0));
    let handled_records = Arc::new(AtomicU64::new(0));
    let (h_nanos, h_records) = (handler_nanos.clone(), handled_records.clone());
    let handler = pipeline::fanout_handler(fanout, move |seen| {
        h_nanos.fetch_add(seen.elapsed.as_nanos() as u64, Ordering::Relaxed);
        h_records.fetch_add(seen.records as u64, Ordering::Relaxed);
    });
    let mapping = Mapping::start(&clients, &resources, MappingConfig::default(), handler);

    // A subscriber queue, drained by a task that stamps receipt times.
    let queue_url = subscribe_queue(&sqs, &sns, &topic_arn, &unique("bench-q"), Some(r#"{"kind":["registered"]}"#))
        .await
        .expect("subscribing the queue")
        .url;
    let (rx_stop, rx_stop_rx) = watch::channel(false);
    let (received, receiver) = beacon_tests::bench::stamp_receipts(sqs.clone(), queue_url.clone(), rx_stop_rx, |v| {
        v["instance_id"].as_str().map(str::to_owned)
    });

    // Polling baselines on the same changes (seed 1's design): clients that
    // read every service's catalog entry each interval, from a random phase.
    let poll_intervals: Vec<u64> = std::env::var("BENCH_POLL_INTERVALS")
        .ok()
        .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 30, 300]);
    let (poll_stop, poll_stop_rx) = watch::channel(false);
    let mut pollers = Vec::new();
    let seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(7);
    for (k, &t) in poll_intervals.iter().enumerate() {
        let reader = DynamoTable::new(dynamodb.clone(), &table);
        let mut stop = poll_stop_rx.clone();
        let phase =
            Duration::from_millis(u64::from(seed.wrapping_mul(2_654_435_761).rotate_left(k as u32 * 7)) % (t * 1000));
        pollers.push(tokio::spawn(async move {
            let mut seen: HashMap<String, Instant> = HashMap::new();
            let mut requests = 0u64;
            let mut last_poll_started = Instant::now();
            tokio::select! { _ = stop.changed() => return (t, seen, requests, last_poll_started), _ = tokio::time::sleep(phase) => {} }
            loop {
                last_poll_started = Instant::now();
                for s in 0..10 {
                    requests += 1;
                    if let Ok(p) = reader.read_service(&format!("svc{s}")).await {
                        let at = Instant::now();
                        for i in p.instances {
                            seen.entry(i.instance_id).or_insert(at);
                        }
                    }
                }
                let next = last_poll_started + Duration::from_secs(t);
                tokio::select! {
                    _ = stop.changed() => return (t, seen, requests, last_poll_started),
                    _ = tokio::time::sleep_until(next.into()) => {}
                }
            }
        }));
    }

    // 1. write → SQS receipt: N new instances of services with no dependents,
    //    one every 20 ms (50 changes/s), each write timed from before PutItem.
    let writer = DynamoTable::new(dynamodb.clone(), &table);
    let mut written: HashMap<String, Instant> = HashMap::new();
    let fan_before = fan_registry.counts().snapshot();
    let sns_before = publisher.calls();
    let recs_before = handled_records.load(Ordering::Relaxed);
    let nanos_before = handler_nanos.load(Ordering::Relaxed);
    for i in 0..changes {
        let r = beacon_tests::bench::change(i);
        let id = r.instance_id.clone();
        written.insert(id, Instant::now());
        writer.put(&r).await.expect("write");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while received.lock().await.len() < changes && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let last_write = Instant::now();
    let got = received.lock().await.clone();
    let latencies: Vec<f64> =
        written.iter().filter_map(|(id, w)| got.get(id).map(|r| r.duration_since(*w).as_secs_f64() * 1000.0)).collect();
    let fan_after = fan_registry.counts().snapshot();
    let records = handled_records.load(Ordering::Relaxed) - recs_before;
    let handler_ms = (handler_nanos.load(Ordering::Relaxed) - nanos_before) as f64 / 1e6;
    let per = |v: u64| v as f64 / records.max(1) as f64;

    // 2. write → resolved item updated: one consumer needs `hot`; each change
    //    flips the instance's endpoint, and we poll the item every 5 ms.
    writer
        .put_needs(&Needs { consumer: "reader".into(), needs: parse_needs("hot").expect("needs") }, now())
        .await
        .expect("needs");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut resolved_ms = Vec::new();
    let dep_before = fan_registry.counts().snapshot();
    let dep_recs_before = handled_records.load(Ordering::Relaxed);
    for i in 0..(changes / 5).max(20) {
        let before = writer.get_resolved("reader").await.expect("read").map(|r| r.revision).unwrap_or(0);
        let r =
            Registration::new_at("hot", "1.0.0", "h1", &format!("https://h{i}.example"), Status::Healthy, 3600, now())
                .expect("valid");
        let start = Instant::now();
        writer.put(&r).await.expect("write");
        loop {
            let rev = writer.get_resolved("reader").await.expect("read").map(|r| r.revision).unwrap_or(0);
            if rev > before || start.elapsed() > Duration::from_secs(10) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        resolved_ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let dep_after = fan_registry.counts().snapshot();
    let dep_records = (handled_records.load(Ordering::Relaxed) - dep_recs_before).max(1) as f64;

    // Every poller must complete a poll that started after the last write.
    let longest = poll_intervals.iter().copied().max().unwrap_or(0);
    let wait_until = last_write + Duration::from_secs(longest) + Duration::from_secs(2);
    if longest > 0 {
        eprintln!(
            "bench: waiting {} s for the slowest poller's next cycle",
            wait_until.saturating_duration_since(Instant::now()).as_secs()
        );
    }
    tokio::time::sleep_until(wait_until.into()).await;
    let _ = poll_stop.send(true);
    let mut polled = Vec::new();
    for p in pollers {
        if let Ok(r) = p.await {
            polled.push(r);
        }
    }
    let _ = rx_stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), mapping.stop()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), receiver).await;

    println!("## Pipeline benchmark ({changes} changes, poller at 4 polls/s per shard)\n");
    println!("| path | n | p50 ms | p95 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    println!("{}", summary("write → SQS receipt", latencies.clone()));
    let resolved_for_plot = resolved_ms.clone();
    println!("{}", summary("write → resolved item updated (1 dependent)", resolved_ms));
    println!();
    println!("| fan-out, per record | value |");
    println!("|---|---|");
    println!("| records handled (no dependents) | {records} |");
    println!("| received by the subscriber | {} of {changes} |", latencies.len());
    println!("| handler time per record | {:.2} ms |", handler_ms / records.max(1) as f64);
    println!("| DynamoDB reads per record (no dependents) | {:.2} |", per(fan_after.0 - fan_before.0));
    println!("| DynamoDB writes per record (no dependents) | {:.2} |", per(fan_after.1 - fan_before.1));
    println!("| SNS PublishBatch calls per record | {:.2} |", per(publisher.calls() - sns_before));
    println!("| DynamoDB reads per record (1 dependent) | {:.2} |", (dep_after.0 - dep_before.0) as f64 / dep_records);
    println!("| DynamoDB writes per record (1 dependent) | {:.2} |", (dep_after.1 - dep_before.1) as f64 / dep_records);
    println!();
    println!("| polling (same changes) | seen | staleness p50 ms | p99 ms | requests per change |");
    println!("|---|---|---|---|---|");
    let mut poll_series = Vec::new();
    for (t, seen, requests, _) in &polled {
        let mut stale: Vec<f64> = written
            .iter()
            .filter_map(|(id, w)| seen.get(id).map(|s| s.saturating_duration_since(*w).as_secs_f64() * 1000.0))
            .collect();
        stale.sort_by(|a, b| a.total_cmp(b));
        println!(
            "| every {t} s | {} of {changes} | {:.0} | {:.0} | {:.2} |",
            stale.len(),
            percentile(&stale, 0.5),
            percentile(&stale, 0.99),
            *requests as f64 / changes as f64
        );
        poll_series.push((format!("polling every {t} s"), stale));
    }

    // The latency distribution as a CDF, for docs/benchmarks.md.
    let mut sorted = latencies.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    let cdf = |v: &[f64]| -> Vec<(f64, f64)> {
        v.iter().enumerate().map(|(i, ms)| (*ms, (i + 1) as f64 / v.len() as f64)).collect()
    };
    let mut resolved_sorted = resolved_for_plot.clone();
    resolved_sorted.sort_by(|a, b| a.total_cmp(b));
    let svg = beacon_tests::plot::line_chart(
        "Change → consumer knows (CDF): push vs polling",
        "milliseconds",
        "share of changes",
        &[
            vec![
                beacon_tests::plot::Series { name: "push → SQS receipt".into(), points: cdf(&sorted) },
                beacon_tests::plot::Series { name: "push → resolved item".into(), points: cdf(&resolved_sorted) },
            ],
            poll_series.iter().map(|(n, v)| beacon_tests::plot::Series { name: n.clone(), points: cdf(v) }).collect(),
        ]
        .concat(),
        true,
        false,
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img/latency-cdf.svg");
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = std::fs::write(&path, svg);
    if latencies.len() < changes {
        eprintln!("bench: {} of {changes} events did not arrive", changes - latencies.len());
        std::process::exit(1);
    }
}
