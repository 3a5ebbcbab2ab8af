//! A service with 10,000 instances and 1,000 dependents against the local
//! stack (run it with ./scripts/bench; `BENCH_LARGE_INSTANCES` and
//! `BENCH_LARGE_CONSUMERS` change the sizes). Issue 27's "10,000 instances
//! per service": register, resolve, fan out, heartbeat and look up, with
//! every consumer's view checked against a fresh resolution of the final
//! table (its slot, docs/architecture.md "Large services"), and:
//!
//! - the balance of the slots (endpoints per slot, consumers per slot,
//!   endpoints that no consumer's slot holds);
//! - the largest resolved item (which a `resolved` event carries), against DynamoDB's
//!   400 KB and SNS's 256 KB;
//! - one round of heartbeats of every instance (nothing is published), and
//!   the write rate the service's partition needs at a given TTL against
//!   DynamoDB's 1,000 write units a second per partition;
//! - what one instance going away costs the fan-out (requests, moved views)
//!   and how long its consumers wait;
//! - `GET /catalog/<name>` with and without `?consumer=`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench fails by panicking

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use beacon_domain::ports::{InstanceKey, NeedsDeclarations, Registrations};
use beacon_domain::subset::{all_slots, slot_of, slots_for};
use beacon_domain::view::{Needs, Outcome};
use beacon_domain::{Registration, Requirement, Status, parse_needs, resolve};
use beacon_tests::{TestPipeline, now};
use futures::StreamExt;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn instance(i: usize, at: i64) -> Registration {
    let url = format!("https://orders-{i}.prod.example.internal:8443/v1");
    let arn = format!("arn:aws:lambda:us-east-1:123456789012:function:orders-{i}");
    let mut r = Registration::new_at("orders", "1.2.0", &format!("i-{i:05}"), &url, Status::Healthy, 3600, at).unwrap();
    r.arn = Some(arn);
    r
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let instances = env("BENCH_LARGE_INSTANCES", 10_000);
    let consumers = env("BENCH_LARGE_CONSUMERS", 1_000);
    let p = TestPipeline::start("bench-large").await;
    let names: Vec<String> = (0..consumers).map(|c| format!("web-{c:04}")).collect();

    // Consumers first (their joins read an empty service), then the fleet.
    let started = Instant::now();
    let registry = &p.registry;
    futures::stream::iter(&names)
        .map(|c| async move {
            let needs = Needs { consumer: c.clone(), needs: parse_needs("orders^1").unwrap() };
            registry.put_needs(&needs, now()).await.unwrap();
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let at = now();
    let (_, fleet_writes0, _) = p.fan_registry.counts().snapshot();
    let started_fleet = Instant::now();
    futures::stream::iter(0..instances)
        .map(|i| async move { registry.put(&instance(i, at)).await.unwrap() })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let fleet_s = started_fleet.elapsed().as_secs_f64();

    // Every consumer holds its slot of the final set.
    let all = registry.instances("orders").await.unwrap().registrations;
    let whole = resolve(&Requirement::parse("orders^1").unwrap(), &all, now()).unwrap();
    let slots = slots_for(whole.endpoints.len());
    let cut = all_slots("orders", &whole.endpoints, slots);
    let mut pending: BTreeSet<&String> = names.iter().collect();
    let mut largest_item = 0;
    let mut per_slot: BTreeMap<u32, usize> = BTreeMap::new();
    let converge_limit = Duration::from_secs(1_800);
    while !pending.is_empty() {
        assert!(started.elapsed() < converge_limit, "bench: {} consumers never got their slot", pending.len());
        let mut done = Vec::new();
        for c in pending.iter().copied() {
            let Some(item) = p.resolved(c).await else { continue };
            let Some(Outcome::Resolved(r)) = item.services.get("orders").map(|v| v.requirements[0].outcome.clone())
            else {
                continue;
            };
            let slot = slot_of("orders", c, slots);
            if r.endpoints == cut[slot as usize] {
                largest_item = largest_item.max(serde_json::to_vec(&item).unwrap().len());
                *per_slot.entry(slot).or_default() += 1;
                done.push(c);
            }
        }
        for c in done {
            pending.remove(c);
        }
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    let converged_s = started.elapsed().as_secs_f64();
    let fleet_writes = p.fan_registry.counts().snapshot().1 - fleet_writes0;
    let sizes: Vec<usize> = cut.iter().map(Vec::len).collect();
    let uncovered: usize =
        cut.iter().enumerate().filter(|(j, _)| !per_slot.contains_key(&(*j as u32))).map(|(_, s)| s.len()).sum();
    let (cmin, cmax) = (per_slot.values().min().copied().unwrap_or(0), per_slot.values().max().copied().unwrap_or(0));
    // Each row as soon as it is measured, so a run cut short keeps them.
    println!("\n## A service with {instances} instances and {consumers} dependents (`benches/large.rs`)\n");
    println!("| measure | value |");
    println!("|---|---|");
    println!("| fleet registered | {fleet_s:.0} s ({:.0} writes/s, 16 in flight) |", instances as f64 / fleet_s);
    println!("| every consumer holds its slot of the final set | {converged_s:.0} s after the first needs |");
    println!(
        "| the fan-out's writes meanwhile | {fleet_writes} ({:.1} per registration; views move in every batch that changes their slot) |",
        fleet_writes as f64 / instances as f64
    );
    println!(
        "| slots | {slots} (endpoints per slot {}–{}) |",
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap()
    );
    println!(
        "| consumers per slot | {cmin}–{cmax}; {} of {slots} slots read by none |",
        slots as usize - per_slot.len()
    );
    println!("| endpoints no consumer's slot holds | {uncovered} of {} |", whole.endpoints.len());
    println!(
        "| largest resolved item (JSON) | {:.1} KB (DynamoDB: 400 KB; SNS: 256 KB for its event) |",
        largest_item as f64 / 1024.0
    );

    // The pipeline goes quiet (the fleet's last pages written) first.
    let quiet = async || {
        let mut last = (u64::MAX, u64::MAX);
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = (
                p.stats.records_delivered.load(Ordering::Relaxed) + p.stats.records_filtered.load(Ordering::Relaxed),
                p.pages.invocations.load(Ordering::Relaxed),
            );
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let (seen0, _) = quiet().await;
    let delivered0 = p.stats.records_delivered.load(Ordering::Relaxed);

    // One round of heartbeats: their records are dropped by the mapping's
    // filter, so the fan-out is not even invoked.
    let started_hb = Instant::now();
    futures::stream::iter(0..instances)
        .map(|i| async move {
            let key = InstanceKey::new("orders", "1.2.0", format!("i-{i:05}"));
            registry.heartbeat(&key, 3600, now()).await.unwrap();
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let heartbeat_s = started_hb.elapsed().as_secs_f64();
    let (seen1, _) = quiet().await;
    let delivered = p.stats.records_delivered.load(Ordering::Relaxed) - delivered0;
    println!(
        "| one round of heartbeats | {heartbeat_s:.0} s ({:.0} writes/s); {} stream records, {delivered} of them delivered to the fan-out |",
        instances as f64 / heartbeat_s,
        seen1 - seen0
    );
    for ttl in [300, 60, 30] {
        let rate = instances as f64 * 3.0 / f64::from(ttl);
        println!(
            "| heartbeats every ttl/3 at ttl {ttl} s | {rate:.0} writes/s on `SERVICE#orders` ({:.0}% of 1,000) |",
            rate / 10.0
        );
    }

    // One instance goes: which consumers move, and at what cost.
    let revisions = async || {
        let mut out = BTreeMap::new();
        for c in &names {
            out.insert(c.clone(), p.resolved(c).await.map_or(0, |i| i.revision));
        }
        out
    };
    let before = revisions().await;
    let gone = whole.endpoints[instances / 2].instance_id.clone();
    let gone_slot = beacon_domain::subset::slot_of_point(beacon_domain::subset::point("orders", &gone), slots);
    let expect: Vec<&String> = names.iter().filter(|c| slot_of("orders", c, slots) == gone_slot).collect();
    let counts = p.fan_registry.counts();
    let (r0, w0, _) = counts.snapshot();
    let items0 = counts.items_read.load(Ordering::Relaxed);
    let started_change = Instant::now();
    registry.delete(&InstanceKey::new("orders", "1.2.0", gone.clone())).await.unwrap();
    let mut waiting: BTreeSet<&String> = expect.iter().copied().collect();
    while !waiting.is_empty() {
        assert!(started_change.elapsed() < Duration::from_secs(120), "bench: the change never reached its slot");
        let mut done = Vec::new();
        for c in waiting.iter().copied() {
            let item = p.resolved(c).await.unwrap();
            if let Some(Outcome::Resolved(r)) = item.services.get("orders").map(|v| v.requirements[0].outcome.clone())
                && r.endpoints.iter().all(|e| e.instance_id != gone)
            {
                done.push(c);
            }
        }
        for c in done {
            waiting.remove(c);
        }
    }
    let change_ms = started_change.elapsed().as_secs_f64() * 1000.0;
    quiet().await;
    let (r1, w1, _) = counts.snapshot();
    let items1 = counts.items_read.load(Ordering::Relaxed);
    let after = revisions().await;
    let moved: Vec<&String> = names.iter().filter(|c| before[*c] != after[*c]).collect();
    assert_eq!(moved, expect, "bench: only the gone instance's slot moves");
    println!("| one instance goes: views moved | {} of {consumers} (its slot's consumers) |", moved.len());
    println!("| … the fan-out's requests | {} writes, {} reads ({} items read) |", w1 - w0, r1 - r0, items1 - items0);
    println!("| … until its last consumer's item moved | {change_ms:.0} ms |");

    // Lookups through the local catalog API.
    let api = beacon_tests::api::LocalApi::start(p.registry.clone(), "unused").await;
    println!("\n| lookup | median | body |");
    println!("|---|---|---|");
    for path in ["/catalog/orders".to_owned(), format!("/catalog/orders?consumer={}", names[0])] {
        let mut ms = Vec::new();
        let mut bytes = 0;
        for _ in 0..20 {
            let t = Instant::now();
            let (status, body) = api.call("GET", &path, Vec::new(), None, &[]).await;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "bench: {path}");
            bytes = body.to_string().len();
        }
        ms.sort_by(f64::total_cmp);
        println!("| `GET {path}` | {:.0} ms | {:.0} KB |", ms[10], bytes as f64 / 1024.0);
    }
    api.stop().await;
    p.stop().await;
}
