//! The soak: several concurrent writers make random registrations,
//! heartbeats, status changes, endpoint changes, deregistrations, expiries,
//! needs changes and malformed writes, while the pipeline suffers random
//! faults: DynamoDB throttling and failed SNS entries (test doubles, see
//! `beacon_tests::faults`), SNS outages (a real stopped port), kills of
//! the pipeline mid-batch, and faults at the wire (the fault proxy in front
//! of every DynamoDB, SNS and SQS call the fan-out and the sweeper make:
//! throttles in each service's wire format, 500s, 503s, resets before and
//! after the engine answered, slow answers and hangs past the timeout). Refreshes are paged one or two dependents at a
//! time, so the refresh queue's pages meet the same faults. Afterwards every change must be accounted for in
//! the events (at least once, duplicates under one id, nothing extra), and
//! every resolved item must equal a fresh resolution from the table.
//!
//! Bounded by count and time: `BEACON_SOAK_OPS` (default 600 operations)
//! and `BEACON_SOAK_SECONDS` (default 22 s of writing), so CI runs it in
//! about a minute (it was 2,000 and 90 s, then 1,200 and 50 s, then 800 and
//! 30 s, until CI's 15-minute budget needed the time for the multi-Region
//! tests, then issue 30's; docs/reliability.md); raise both for a longer soak. `BEACON_SEED` replays a run.
//! The figures it prints are recorded in docs/reliability.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

// The writers and what they expect (writer.rs), the accounting both soaks
// share (account.rs); the faults and the pipeline are here.
mod account;
mod writer;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use beacon_aws::DynamoTable;
use beacon_domain::view::Needs;
use beacon_tests::faults::{ChaosPublisher, FaultyRegistry, Outage, RegistryFaults, Rng, seed};
use beacon_tests::wire::Wire;
use beacon_tests::{Options, TestPipeline, now, unique};

use account::{drain, env_or};
use writer::{WRITERS, Written, writer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_random_writes_under_random_faults_lose_nothing() {
    let seed = seed();
    let ops = env_or("BEACON_SOAK_OPS", 600);
    let seconds = env_or("BEACON_SOAK_SECONDS", 22);
    eprintln!("soak: seed {seed} (BEACON_SEED={seed} replays), {ops} operations, at most {seconds} s of writing");

    let sns = std::env::var("AWS_ENDPOINT_URL_SNS").expect("the local stack");
    let outage = Outage::start(&sns).await;
    let faults = RegistryFaults::seeded(seed);
    faults.per_mille.store(10, Ordering::Relaxed);
    let publish_faults = Arc::new(AtomicU64::new(0));
    let dir = std::env::temp_dir().join(unique("soak"));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("checkpoint.json");
    let (f, pf) = (faults.clone(), publish_faults.clone());
    // The wire faults: SNS through the proxy, then the outage hop.
    let wire = Wire::start_to(&outage.url()).await;
    let wire_clients = wire.clients(&beacon_tests::sdk_config().await);
    wire.plan.set_mix(Some(account::wire_mix(seed, true)));
    let mut p = TestPipeline::start_with(
        "soak",
        Options::new()
            // Small pages: most refreshes go through the refresh queue, and
            // its pages meet the same faults.
            .limits(beacon_fanout::Limits { inline_dependents: 1, page: 2, direct: 1 })
            .registry(move |r| FaultyRegistry::new(r, f))
            .publisher(move |inner| ChaosPublisher::new(inner, 10, seed.rotate_left(17), pf))
            .fanout_clients(wire_clients.clone())
            .mapping(move |m| {
                m.checkpoint_path = Some(checkpoint);
                // Ride out the soak's own outages, as AWS's -1 does; the
                // on-failure path has its own test.
                m.max_retry_attempts = None;
            }),
    )
    .await;
    let events = Arc::new(Mutex::new(Vec::new()));
    let stop_drain = Arc::new(AtomicBool::new(false));
    let drainer = drain(p.subscribe(Some(account::CHANGE_KINDS)).await, events.clone(), stop_drain.clone());

    // The sweeper, on a short period instead of a minute.
    let stop_sweeper = Arc::new(AtomicBool::new(false));
    let swept = Arc::new(AtomicU64::new(0));
    let sweep_errors = Arc::new(AtomicU64::new(0));
    let sweeper = {
        let registry = DynamoTable::new(wire_clients.dynamodb.clone(), &p.table);
        let (stop, swept, sweep_errors) = (stop_sweeper.clone(), swept.clone(), sweep_errors.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match beacon_domain::sweep::sweep(&registry, now()).await {
                    Ok(report) => swept.fetch_add(report.expired as u64, Ordering::Relaxed),
                    // The next sweep retries; the count of this one is lost.
                    Err(_) => sweep_errors.fetch_add(1, Ordering::Relaxed),
                };
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                w,
                seed,
                p.registry.clone(),
                (p.dynamodb.clone(), p.table.clone()),
                Vec::new(),
                ops / WRITERS,
                deadline,
            ))
        })
        .collect();

    // Pipeline-level faults while the writers run: kill the pipeline mid-
    // whatever, or stop the SNS server's port for a moment.
    let mut chaos = Rng::new(seed.rotate_left(31));
    let (mut kills, mut outages) = (0u64, 0u64);
    while !writers.iter().all(tokio::task::JoinHandle::is_finished) {
        tokio::time::sleep(Duration::from_millis(1_000 + chaos.below(2_000) as u64)).await;
        // Alternate, so even a short soak has both.
        if (kills + outages) % 2 == 0 {
            p.kill_poller().await;
            p.start_poller();
            kills += 1;
        } else {
            outage.stop();
            tokio::time::sleep(Duration::from_millis(500 + chaos.below(1_500) as u64)).await;
            outage.restart().await;
            outages += 1;
        }
    }
    let written = Written::gather(writers).await;
    let writing = started.elapsed();
    eprintln!("soak: writes done in {writing:?}: {:?}", written.ops);

    // Every expected change, at least once.
    let expected: HashSet<(String, String)> = written.changes.iter().cloned().collect();
    assert_eq!(expected.len(), written.changes.len(), "two expected changes share a key");
    let junk: HashSet<&str> = written.junk.iter().map(String::as_str).collect();
    // It fails when nothing owed has arrived for two minutes.
    account::await_owed(&events, &expected, &junk, Duration::from_secs(120), &format!("seed {seed}"), String::new)
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_drain.store(true, Ordering::Relaxed);
    drainer.await.unwrap();
    let events = std::mem::take(&mut *events.lock().unwrap());

    // Nothing extra, and every copy of an event is the same event.
    let distinct = account::assert_accounted(&events, &expected, &junk, &format!("seed {seed}"));

    // Every resolved item equals a fresh resolution; removed needs leave none.
    let declared: BTreeMap<String, Needs> =
        written.needs.iter().filter_map(|(c, n)| n.clone().map(|n| (c.clone(), n))).collect();
    let removed: Vec<&String> = written.needs.iter().filter(|(_, n)| n.is_none()).map(|(c, _)| c).collect();
    let converge = Instant::now();
    loop {
        let mut diff = p.first_difference(&declared).await;
        for c in &removed {
            if diff.is_none() && p.resolved(c).await.is_some() {
                diff = Some(format!("{c}: needs removed, resolved item still there"));
            }
        }
        let Some(diff) = diff else { break };
        assert!(converge.elapsed() < Duration::from_secs(60), "seed {seed}: no convergence after 60 s: {diff}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    stop_sweeper.store(true, Ordering::Relaxed);
    sweeper.await.unwrap();
    let injected_throttles = faults.injected();
    let injected_publish = publish_faults.load(Ordering::Relaxed);
    let on_failure = p.stats.sent_to_on_failure.load(Ordering::Relaxed);
    let failed_invocations = p.stats.failed_invocations.load(Ordering::Relaxed);
    p.stop().await;
    let (wire_faults, wire_requests) = account::stop_wire(wire).await;
    let _ = std::fs::remove_dir_all(dir);
    assert_eq!(on_failure, 0, "seed {seed}: a batch went to the on-failure queue");

    let figures = serde_json::json!({
        "seed": seed,
        "operations": written.ops.values().sum::<u64>(),
        "operations_by_kind": written.ops,
        "writing_seconds": writing.as_secs(),
        "changes_written": expected.len(),
        "malformed_written": junk.len(),
        "faults_injected": {
            "registry_throttles": injected_throttles,
            "publish_failures": injected_publish,
            "sns_outages": outages,
            "pipeline_kills": kills,
            "wire": wire_faults,
            "wire_requests": wire_requests,
        },
        "failed_invocations": failed_invocations,
        "events_delivered": events.len(),
        "distinct_events": distinct,
        "duplicate_copies": events.len() - distinct,
        "changes_lost": 0,
        "resolved_items_checked": declared.len() + removed.len(),
        "expired_by_sweeper": swept.load(Ordering::Relaxed),
        "failed_sweeps": sweep_errors.load(Ordering::Relaxed),
    });
    eprintln!("soak figures: {figures:#}");
    assert!(kills >= 1 && outages >= 1, "the soak ran too briefly to kill the pipeline and stop SNS");
    assert!(injected_throttles >= 1 && injected_publish >= 1, "the soak injected no port faults");
    for kind in ["throttle", "500", "503", "reset before", "reset mid-response"] {
        assert!(wire_faults.get(kind).is_some_and(|n| *n >= 1), "the soak injected no {kind} at the wire");
    }
}
