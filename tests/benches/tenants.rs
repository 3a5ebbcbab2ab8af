//! One tenant's records never slow another's (issue 25), measured: a burst
//! of unrelated registrations written right behind a tenant's change that
//! no write can fix, against the same burst with nothing in front of it, in
//! one run, alternating, each on a fresh pipeline of its own.
//!
//! - `clean`: the burst alone;
//! - `broken view`: a change of `orders` whose dependent `evil` has put a
//!   string where its resolved item holds a map (DynamoDB refuses the view
//!   write with `ValidationException` every time);
//! - `forged bookkeeping`: `orders`' writer has put a string in
//!   `SERVICE#orders / GENERATION` (what stalled the stream in the layout
//!   before `FANOUT#`), then `orders` changes.
//!
//! Figure: seconds from the first write to the last of the burst's
//! `registered` events at a subscribed queue. `BENCH_TENANT_BURST` (150)
//! and `BENCH_TENANT_ROUNDS` (3) set the burst and the rounds.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_domain::ports::{NeedsDeclarations, Registrations};
use beacon_domain::view::Needs;
use beacon_domain::{Registration, Status, keys, parse_needs};
use beacon_tests::{TestPipeline, now, of_kind};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Front {
    Clean,
    BrokenView,
    ForgedBookkeeping,
}

impl Front {
    fn name(self) -> &'static str {
        match self {
            Front::Clean => "clean",
            Front::BrokenView => "broken view",
            Front::ForgedBookkeeping => "forged bookkeeping",
        }
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn reg(service: &str, id: &str) -> Registration {
    Registration::new_at(service, "1.0.0", id, "https://x.example", Status::Healthy, 3600, now()).unwrap()
}

/// One round's figures: seconds, failed invocations, bad items skipped.
type Sample = (f64, u64, u64);

/// One round: sets up `front`, then times the burst.
async fn round(front: Front, burst: usize) -> Sample {
    let p = TestPipeline::start("tenantsbench").await;
    let q = p.subscribe(Some(r#"{"service":["other"],"kind":["registered"]}"#)).await;
    for consumer in ["good", "evil"] {
        p.registry
            .put_needs(&Needs { consumer: consumer.into(), needs: parse_needs("orders").unwrap() }, now())
            .await
            .unwrap();
    }
    p.registry.put(&reg("orders", "i-1")).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "both views", || async {
        p.resolved("good").await.is_some_and(|r| r.services.contains_key("orders"))
            && p.resolved("evil").await.is_some_and(|r| r.services.contains_key("orders"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let put = |item: HashMap<String, Av>| p.dynamodb.put_item().table_name(&p.table).set_item(Some(item)).send();
    match front {
        Front::Clean => {}
        Front::BrokenView => {
            put(HashMap::from([
                ("pk".into(), Av::S(keys::consumer_pk("evil"))),
                ("sk".into(), Av::S(keys::resolved_sk().into())),
                ("needed_services".into(), Av::L(vec![Av::S("orders".into())])),
                ("services".into(), Av::S("junk".into())),
            ]))
            .await
            .unwrap();
        }
        Front::ForgedBookkeeping => {
            put(HashMap::from([
                ("pk".into(), Av::S(keys::service_pk("orders"))),
                ("sk".into(), Av::S(keys::generation_sk().into())),
                ("generation".into(), Av::S("junk".into())),
            ]))
            .await
            .unwrap();
        }
    }
    let failed_before = p.stats.failed_invocations.load(Ordering::Relaxed);
    let start = Instant::now();
    if front != Front::Clean {
        p.registry.put(&reg("orders", "i-2")).await.unwrap();
    }
    for i in 0..burst {
        p.registry.put(&reg("other", &format!("o-{i}"))).await.unwrap();
    }
    let events = q.receive_until(Duration::from_secs(120), |e| of_kind(e, "registered").len() >= burst).await;
    let took = start.elapsed().as_secs_f64();
    assert_eq!(of_kind(&events, "registered").len(), burst, "{}: events missing", front.name());
    let failed = p.stats.failed_invocations.load(Ordering::Relaxed) - failed_before;
    let bad = p.bad_items.load(Ordering::Relaxed);
    p.stop().await;
    (took, failed, bad)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let burst = env("BENCH_TENANT_BURST", 150);
    let rounds = env("BENCH_TENANT_ROUNDS", 3);
    let fronts = [Front::Clean, Front::BrokenView, Front::ForgedBookkeeping];
    let mut results: Vec<(Front, Vec<Sample>)> = fronts.iter().map(|f| (*f, Vec::new())).collect();
    for _ in 0..rounds {
        for (front, samples) in &mut results {
            samples.push(round(*front, burst).await);
        }
    }
    println!("\n## One tenant's records never slow another's (`benches/tenants.rs`)\n");
    println!("{burst} unrelated registrations written right behind each front, {rounds} rounds, alternating.\n");
    println!(
        "| in front of the burst | burst published after (s), each round | median | failed invocations | bad items skipped |"
    );
    println!("|---|---|---|---|---|");
    let median = |v: &[Sample]| {
        let mut t: Vec<f64> = v.iter().map(|s| s.0).collect();
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let clean = median(&results[0].1);
    for (front, samples) in &results {
        let each: Vec<String> = samples.iter().map(|s| format!("{:.2}", s.0)).collect();
        let failed: u64 = samples.iter().map(|s| s.1).sum();
        let bad: u64 = samples.iter().map(|s| s.2).sum();
        println!("| {} | {} | {:.2} | {failed} | {bad} |", front.name(), each.join(", "), median(samples));
    }
    for (front, samples) in &results[1..] {
        let delta = median(samples) - clean;
        println!("\n{}: median {delta:+.2} s against clean (target: at most +2 s)", front.name());
    }
}
