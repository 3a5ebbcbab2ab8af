//! Two Regions of one registry on the local stack (run it with
//! ./scripts/bench): write → subscriber receipt in the Region the write
//! was made in and in the other, with the global-table replication
//! stand-in (`beacon_local::replication`, a test stand-in) at AWS's typical
//! one second; and what each Region's fan-out does per change.
//!
//! `BENCH_REGION_CHANGES` (default 300) registrations are written in
//! us-east-1, 20 a second; each Region's subscriber stamps when each
//! `registered` event reaches it. `BENCH_REPLICATION_MS` (default 1000) and
//! `BENCH_REPLICATION_JITTER_MS` (default 200) set the stand-in's delay.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails by panicking

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_domain::ports::Registrations;
use beacon_domain::{Registration, Status};
use beacon_local::replication::ReplicationConfig;
use beacon_tests::bench::percentile;
use beacon_tests::regions::Regions;
use beacon_tests::{Queue, now};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn row(name: &str, mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.total_cmp(b));
    format!(
        "| {name} | {} | {:.0} | {:.0} | {:.0} |",
        ms.len(),
        percentile(&ms, 0.5),
        percentile(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    )
}

/// When each instance's event first arrived.
type Receipts = Arc<Mutex<HashMap<String, Instant>>>;

/// Stamps the first receipt of each instance's `registered` event.
fn stamp(queue: Queue, into: Receipts, stop: Arc<std::sync::atomic::AtomicBool>) {
    tokio::spawn(async move {
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for e in queue.receive_once().await {
                if let Some(id) = e["instance_id"].as_str() {
                    into.lock().unwrap().entry(id.to_owned()).or_insert_with(Instant::now);
                }
            }
        }
    });
}

#[tokio::main]
async fn main() {
    let changes = env_or("BENCH_REGION_CHANGES", 300) as usize;
    let config = ReplicationConfig {
        delay: Duration::from_millis(env_or("BENCH_REPLICATION_MS", 1000)),
        jitter: Duration::from_millis(env_or("BENCH_REPLICATION_JITTER_MS", 200)),
        seed: 7,
        poll_interval: Duration::from_millis(250),
    };
    let regions = Regions::start("bench-regions", &["us-east-1", "eu-west-1"], config.clone()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    let filter = Some(r#"{"kind":["registered"]}"#);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (got_east, got_west): (Receipts, Receipts) = Default::default();
    stamp(east.subscribe(filter).await, got_east.clone(), stop.clone());
    stamp(west.subscribe(filter).await, got_west.clone(), stop.clone());

    let before = (east.fan_registry.counts().snapshot(), west.fan_registry.counts().snapshot());
    let mut written: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    for i in 0..changes {
        let id = format!("i-{i}");
        let r = Registration::new_at("orders", "1.0.0", &id, "https://orders.example", Status::Healthy, 600, now())
            .unwrap();
        let at = Instant::now();
        east.registry.put(&r).await.unwrap();
        written.insert(id, at);
        let next = started + Duration::from_millis(50 * (i as u64 + 1));
        tokio::time::sleep(next.saturating_duration_since(Instant::now())).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while (got_east.lock().unwrap().len() < changes || got_west.lock().unwrap().len() < changes)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(regions.settle(Duration::from_millis(500), Duration::from_secs(60)).await);
    let after = (east.fan_registry.counts().snapshot(), west.fan_registry.counts().snapshot());

    let latencies = |got: &HashMap<String, Instant>| -> Vec<f64> {
        written
            .iter()
            .filter_map(|(id, at)| got.get(id).map(|r| r.duration_since(*at).as_secs_f64() * 1000.0))
            .collect()
    };
    let (same, cross) = (latencies(&got_east.lock().unwrap()), latencies(&got_west.lock().unwrap()));
    assert_eq!(same.len(), changes, "us-east-1's subscriber missed events");
    assert_eq!(cross.len(), changes, "eu-west-1's subscriber missed events");
    let per = |a: (u64, u64, u64), b: (u64, u64, u64)| {
        ((b.0 - a.0) as f64 / changes as f64, (b.1 - a.1) as f64 / changes as f64)
    };
    let (east_rw, west_rw) = (per(before.0, after.0), per(before.1, after.1));
    let stats = regions.replication.stats();
    println!(
        "### Two Regions: write → subscriber ({changes} registrations written in us-east-1, 20/s; replication stand-in {} ms + up to {} ms)\n",
        config.delay.as_millis(),
        config.jitter.as_millis()
    );
    println!("| subscriber | events | p50 ms | p99 ms | max ms |\n|---|---|---|---|---|");
    println!("{}", row("us-east-1 (the write's Region)", same));
    println!("{}", row("eu-west-1 (replicated)", cross));
    println!();
    println!("| Region | fan-out DynamoDB reads / change | writes / change |\n|---|---|---|");
    println!("| us-east-1 | {:.2} | {:.2} |", east_rw.0, east_rw.1);
    println!("| eu-west-1 | {:.2} | {:.2} |", west_rw.0, west_rw.1);
    println!(
        "\nreplication: {} local writes copied, {} copies applied, {} superseded, {} raced\n",
        stats.local_writes.load(std::sync::atomic::Ordering::Relaxed),
        stats.applied.load(std::sync::atomic::Ordering::Relaxed),
        stats.superseded.load(std::sync::atomic::Ordering::Relaxed),
        stats.raced.load(std::sync::atomic::Ordering::Relaxed),
    );
    regions.stop().await;
}
