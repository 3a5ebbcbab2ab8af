//! Scale benchmark against the local stack (./scripts/bench runs it after the
//! pipeline benchmark):
//!
//! - fan-out throughput at batch sizes 1, 10 and 100, next to the raw write
//!   rate DynamoDB Local sustains on the same machine (the ceiling);
//! - a catalog-polling baseline (seed 1's design) at 1 s, measured, on the
//!   same kind of changes.
//!
//! What a change costs by number of dependents is `benches/fanout.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::ports::{Registrations, ServiceState};
use beacon_domain::{Registration, Status};
use beacon_fanout::FanOut;
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names, Resources};
use beacon_tests::{now, sdk_config, unique};
use tokio::sync::watch;

struct Rig {
    writer: DynamoTable,
    fan: DynamoTable,
    publisher: SnsPublisher,
    clients: Clients,
    resources: Resources,
    handled: Arc<AtomicU64>,
    published: Arc<AtomicU64>,
}

/// A fresh table and topic, with the fan-out's own adapters (so their
/// counts are its requests only).
async fn rig(config: &aws_config::SdkConfig) -> Rig {
    let clients = Clients::from_config(config);
    let table = unique("scale");
    let names = Names { on_failure_queue: None, ..Names::for_table(&table) };
    let resources = pipeline::create(&clients, &names).await.expect("table and topic");
    Rig {
        writer: DynamoTable::new(clients.dynamodb.clone(), &table),
        fan: DynamoTable::new(clients.dynamodb.clone(), &table),
        publisher: SnsPublisher::new(clients.sns.clone(), &resources.topic_arn),
        clients,
        resources,
        handled: Arc::default(),
        published: Arc::default(),
    }
}

/// Starts the local event source mapping with the fan-out at `batch_size`.
fn start_mapping(rig: &Rig, batch_size: usize) -> Mapping {
    let fanout =
        Arc::new(FanOut::new(rig.fan.clone(), rig.publisher.clone(), rig.resources.refresh_queue(&rig.clients)));
    let (h, pb) = (rig.handled.clone(), rig.published.clone());
    let handler = pipeline::fanout_handler(fanout, move |seen| {
        h.fetch_add(seen.records as u64, Ordering::Relaxed);
        pb.fetch_add(seen.report.published.values().sum::<usize>() as u64, Ordering::Relaxed);
    });
    let mapping = MappingConfig { batch_size, ..MappingConfig::default() };
    Mapping::start(&rig.clients, &rig.resources, mapping, handler)
}

/// Writes `n` new instances over 50 services, 16 at a time.
async fn write_many(rig: &Rig, n: usize) {
    beacon_tests::put_instances(&rig.writer, n, 50).await;
}

async fn wait_handled(rig: &Rig, at_least: u64, limit: Duration) -> bool {
    let start = Instant::now();
    while rig.handled.load(Ordering::Relaxed) < at_least {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Median, min and max.
fn spread(samples: &[f64]) -> (f64, f64, f64) {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let median = if s.is_empty() { f64::NAN } else { s[s.len() / 2] };
    (median, s.first().copied().unwrap_or(f64::NAN), s.last().copied().unwrap_or(f64::NAN))
}

fn reg(service: &str, id: &str, status: Status) -> Registration {
    Registration::new_at(service, "1.0.0", id, "https://x.example", status, 3600, now()).expect("valid")
}

#[tokio::main]
async fn main() {
    let config = sdk_config().await;
    let n: usize = std::env::var("BENCH_THROUGHPUT_RECORDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000);
    let rounds: usize = std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);

    // The raw write ceiling and the handler's rate at each batch size,
    // interleaved round by round (raw, 100, 10, 1, raw, ...), each on a fresh
    // table and topic: drift on a shared machine shows as spread instead of
    // landing on one side of a ratio.
    let batches = [100usize, 10, 1];
    let mut raw_rates = Vec::new();
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); batches.len()];
    let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); batches.len()];
    for round in 0..rounds {
        // Raw write ceiling: 16 concurrent PutItems.
        let ceiling = rig(&config).await;
        let start = Instant::now();
        write_many(&ceiling, n).await;
        let raw = n as f64 / start.elapsed().as_secs_f64();
        raw_rates.push(raw);
        for (k, &batch) in batches.iter().enumerate() {
            let r = rig(&config).await;
            write_many(&r, n).await;
            // The mapping drains the stream as fast as the handler allows.
            let start = Instant::now();
            let m = start_mapping(&r, batch);
            let done = wait_handled(&r, n as u64, Duration::from_secs(300)).await;
            let rate = r.handled.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64();
            m.stop().await;
            assert!(done, "round {round}, batch {batch}: the mapping did not drain {n} records in 300 s");
            rates[k].push(rate);
            ratios[k].push(rate / raw);
        }
        eprintln!("bench: throughput round {} of {rounds} done", round + 1);
    }
    let (raw_med, raw_min, raw_max) = spread(&raw_rates);
    println!(
        "## Fan-out throughput ({n} changes with no dependents, written before the mapping starts; {rounds} interleaved rounds)\n"
    );
    println!(
        "Raw write ceiling (16 concurrent PutItems): median {raw_med:.0} writes/s (min {raw_min:.0}, max {raw_max:.0}).\n"
    );
    println!(
        "| batch size | records/s through the handler: median (min–max) | ratio to the same round's ceiling: median (min–max) |"
    );
    println!("|---|---|---|");
    for (k, batch) in batches.iter().enumerate() {
        let (m, lo, hi) = spread(&rates[k]);
        let (rm, rlo, rhi) = spread(&ratios[k]);
        println!("| {batch} | {m:.0} ({lo:.0}–{hi:.0}) | {rm:.2} ({rlo:.2}–{rhi:.2}) |");
    }

    // Polling baseline at 1 s, measured: a client polls each service's
    // catalog entry (one Query per service per poll) while changes land.
    println!("\n## Catalog polling at 1 s (seed 1's design), measured\n");
    let r = rig(&config).await;
    let services = 10;
    let changes = 200;
    let seen: Arc<tokio::sync::Mutex<std::collections::HashMap<String, Instant>>> = Arc::default();
    let requests = Arc::new(AtomicU64::new(0));
    let (pstop, prx) = watch::channel(false);
    let poller = {
        let (reader, seen, requests) = (r.writer.clone(), seen.clone(), requests.clone());
        tokio::spawn(async move {
            while !*prx.borrow() {
                let tick = Instant::now();
                for s in 0..services {
                    requests.fetch_add(1, Ordering::Relaxed);
                    if let Ok(p) = reader.read_service(&format!("p{s}")).await {
                        let at = Instant::now();
                        let mut seen = seen.lock().await;
                        for i in p.instances {
                            seen.entry(i.instance_id).or_insert(at);
                        }
                    }
                }
                tokio::time::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed())).await;
            }
        })
    };
    let mut written = Vec::new();
    for i in 0..changes {
        let id = format!("i{i}");
        written.push((id.clone(), Instant::now()));
        r.writer.put(&reg(&format!("p{}", i % services), &id, Status::Healthy)).await.expect("write");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = pstop.send(true);
    let _ = poller.await;
    let seen = seen.lock().await;
    let mut stale: Vec<f64> = written
        .iter()
        .filter_map(|(id, w)| seen.get(id).map(|s| s.duration_since(*w).as_secs_f64() * 1000.0))
        .collect();
    stale.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| stale[((stale.len() as f64 - 1.0) * p).round() as usize];
    println!("| poll interval | changes seen | staleness p50 | p99 | requests per change |");
    println!("|---|---|---|---|---|");
    println!(
        "| 1 s | {} of {changes} | {:.0} ms | {:.0} ms | {:.1} |",
        stale.len(),
        pct(0.5),
        pct(0.99),
        requests.load(Ordering::Relaxed) as f64 / changes as f64
    );
}
