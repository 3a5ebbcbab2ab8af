//! The soak across two Regions: the soak's writers (the same code,
//! `../soak/writer.rs`), split between us-east-1 and eu-west-1, write at
//! random while every Region's fan-out, refresh pages and sweeper meet the
//! seeded wire faults, pollers are killed, and a Region is cut off from
//! replication for a while; the replicas are joined by the global-table
//! stand-in (`beacon_local::replication`, a test stand-in). Afterwards
//! each Region's subscriber must account for every change, wherever it
//! was written (at least once, duplicates under one id, nothing extra),
//! and every Region's resolved items must equal a fresh resolution of its
//! converged replica.
//!
//! Bounded: `BEACON_REGION_SOAK_OPS` (default 240) and
//! `BEACON_REGION_SOAK_SECONDS` (default 15 s of writing); `BEACON_SEED`
//! replays a run. Figures go to docs/reliability.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

#[path = "../soak/account.rs"]
mod account;
#[path = "../soak/writer.rs"]
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_domain::view::Needs;
use beacon_local::replication::ReplicationConfig;
use beacon_tests::faults::{Rng, seed};
use beacon_tests::now;
use beacon_tests::regions::Regions;
use beacon_tests::wire::Wire;

use account::{drain, env_or};
use writer::{WRITERS, Written, writer};

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_across_two_regions_under_wire_faults_loses_nothing_in_either() {
    let seed = seed();
    let ops = env_or("BEACON_REGION_SOAK_OPS", 240);
    let seconds = env_or("BEACON_REGION_SOAK_SECONDS", 15);
    eprintln!(
        "regions soak: seed {seed} (BEACON_SEED={seed} replays), {ops} operations, at most {seconds} s of writing"
    );

    let wire = Wire::start().await;
    wire.plan.set_mix(Some(account::wire_mix(seed, false)));
    let replication = ReplicationConfig {
        delay: Duration::from_millis(500),
        jitter: Duration::from_millis(300),
        seed: seed.rotate_left(7),
        poll_interval: Duration::from_millis(100),
    };
    let mut regions = Regions::start_with("rsoak", &REGIONS, replication, |_, regional, options| {
        options
            .limits(beacon_fanout::Limits { inline_dependents: 1, page: 2, direct: 1 })
            .fanout_clients(wire.clients(regional))
            .mapping(|m| m.max_retry_attempts = None)
    })
    .await;

    let stop_drain = Arc::new(AtomicBool::new(false));
    let mut events = Vec::new();
    let mut drainers = Vec::new();
    for p in &regions.pipelines {
        let got = Arc::new(Mutex::new(Vec::new()));
        drainers.push(drain(p.subscribe(Some(account::CHANGE_KINDS)).await, got.clone(), stop_drain.clone()));
        events.push(got);
    }

    // Each Region's sweeper, through the wire, on a short period.
    let stop_sweepers = Arc::new(AtomicBool::new(false));
    let swept = Arc::new(AtomicU64::new(0));
    let mut sweepers = Vec::new();
    for (p, region) in regions.pipelines.iter().zip(REGIONS) {
        let conf = beacon_tests::sdk_config().await.to_builder().region(aws_config::Region::new(region)).build();
        let registry = beacon_aws::DynamoTable::new(wire.clients(&conf).dynamodb, &p.table).in_region(region);
        let (stop, swept) = (stop_sweepers.clone(), swept.clone());
        sweepers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(report) = beacon_domain::sweep::sweep(&registry, now()).await {
                    swept.fetch_add(report.expired as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }));
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let home = (w % 2) as usize;
            let p = &regions.pipelines[home];
            let elsewhere = vec![regions.pipelines[1 - home].registry.clone()];
            tokio::spawn(writer(
                w,
                seed,
                p.registry.clone(),
                (p.dynamodb.clone(), p.table.clone()),
                elsewhere,
                ops / WRITERS,
                deadline,
            ))
        })
        .collect();

    // While they write: kill a Region's poller, or cut a Region off.
    let mut chaos = Rng::new(seed.rotate_left(31));
    let (mut kills, mut cuts) = (0u64, 0u64);
    while !writers.iter().all(tokio::task::JoinHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(1_000 + chaos.below(1_500) as u64)).await;
        let region = chaos.below(2);
        if (kills + cuts) % 2 == 0 {
            regions.pipelines[region].kill_poller().await;
            regions.pipelines[region].start_poller();
            kills += 1;
        } else {
            regions.replication.pause(REGIONS[region]).await;
            tokio::time::sleep(Duration::from_millis(500 + chaos.below(1_500) as u64)).await;
            regions.replication.resume(REGIONS[region]).await;
            cuts += 1;
        }
    }
    let written = Written::gather(writers).await;
    let writing = started.elapsed();
    eprintln!("regions soak: writes done in {writing:?}: {:?}", written.ops);

    // Every change, in every Region.
    let expected: HashSet<(String, String)> = written.changes.iter().cloned().collect();
    let junk: HashSet<&str> = written.junk.iter().map(String::as_str).collect();
    for (got, region) in events.iter().zip(REGIONS) {
        let replication = || {
            let stats = regions.replication.stats();
            format!(
                "; replication: {} local writes, {} applied, {} superseded, {} raced, {} retried",
                stats.local_writes.load(Ordering::Relaxed),
                stats.applied.load(Ordering::Relaxed),
                stats.superseded.load(Ordering::Relaxed),
                stats.raced.load(Ordering::Relaxed),
                stats.retried.load(Ordering::Relaxed),
            )
        };
        let what = format!("seed {seed}: {region}");
        account::await_owed(got, &expected, &junk, Duration::from_secs(90), &what, replication).await;
    }
    assert!(regions.settle(Duration::from_secs(1), Duration::from_secs(60)).await, "seed {seed}: no settling");
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_drain.store(true, Ordering::Relaxed);
    for d in drainers {
        d.await.unwrap();
    }

    // Nothing extra in either Region; copies of an event identical.
    let mut figures = serde_json::Map::new();
    for (got, region) in events.iter().zip(REGIONS) {
        let events = std::mem::take(&mut *got.lock().unwrap());
        let distinct = account::assert_accounted(&events, &expected, &junk, &format!("seed {seed}: {region}"));
        figures.insert(
            region.to_owned(),
            serde_json::json!({ "events_delivered": events.len(), "distinct_events": distinct }),
        );
    }

    // Every Region's views: a fresh resolution of its converged replica.
    let declared: BTreeMap<String, Needs> =
        written.needs.iter().filter_map(|(c, n)| n.clone().map(|n| (c.clone(), n))).collect();
    for (p, region) in regions.pipelines.iter().zip(REGIONS) {
        let converge = Instant::now();
        loop {
            let Some(diff) = p.first_difference(&declared).await else { break };
            assert!(
                converge.elapsed() < Duration::from_secs(60),
                "seed {seed}: {region}: no convergence after 60 s: {diff}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    stop_sweepers.store(true, Ordering::Relaxed);
    for s in sweepers {
        s.await.unwrap();
    }
    let stats = regions.replication.stats();
    let replicated = (
        stats.local_writes.load(Ordering::Relaxed),
        stats.applied.load(Ordering::Relaxed),
        stats.superseded.load(Ordering::Relaxed),
        stats.raced.load(Ordering::Relaxed),
    );
    let on_failure: u64 = regions.pipelines.iter().map(|p| p.stats.sent_to_on_failure.load(Ordering::Relaxed)).sum();
    regions.stop().await;
    let (wire_faults, _) = account::stop_wire(wire).await;
    assert_eq!(on_failure, 0, "seed {seed}: a batch went to the on-failure queue");
    let figures = serde_json::json!({
        "seed": seed,
        "operations": written.ops.values().sum::<u64>(),
        "writing_seconds": writing.as_secs(),
        "changes_written": expected.len(),
        "malformed_written": junk.len(),
        "per_region": figures,
        "faults_injected": { "wire": wire_faults, "poller_kills": kills, "region_cut_offs": cuts },
        "replication": { "local_writes": replicated.0, "applied": replicated.1, "superseded": replicated.2, "raced": replicated.3 },
        "expired_by_sweepers": swept.load(Ordering::Relaxed),
        "resolved_items_checked_per_region": declared.len(),
    });
    eprintln!("regions soak figures: {figures:#}");
    assert!(kills >= 1 && cuts >= 1, "the soak ran too briefly to kill a poller and cut a Region off");
}
