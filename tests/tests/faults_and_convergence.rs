//! Failure handling and convergence of the pipeline, against the real
//! engines. The only test double is `FlakyPublisher`, which injects a
//! publish failure the moto server cannot be made to produce per message.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_domain::ports::{InstanceKey, NeedsDeclarations, Registrations};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use beacon_domain::view::Needs;
use beacon_domain::{Registration, Status, parse_needs};
use beacon_tests::faults::{FlakyPublisher, Rng, random_needs};
use beacon_tests::{Options, TestPipeline, now, of_kind};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_is_retried_without_blocking_or_losing_others() {
    let p = TestPipeline::start_with(
        "flaky",
        Options::new()
            .publisher(|inner| FlakyPublisher::new(inner, "svc-c", 2))
            // A window so the five writes arrive as one batch.
            .mapping(|m| m.batching_window = Duration::from_millis(500)),
    )
    .await;
    let q = p.subscribe(None).await;
    for name in ["svc-a", "svc-b", "svc-c", "svc-d", "svc-e"] {
        let r = Registration::new_at(name, "1.0.0", "i-1", "https://x.example", Status::Healthy, 600, now()).unwrap();
        p.registry.put(&r).await.unwrap();
    }
    let events = q
        .receive_until(Duration::from_secs(30), |all| {
            all.iter().map(|e| e["event_id"].as_str().unwrap_or_default()).collect::<HashSet<_>>().len() >= 5
        })
        .await;
    let extra = q.receive_for(Duration::from_secs(1)).await;
    let all: Vec<&Value> = events.iter().chain(&extra).collect();
    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in &all {
        by_id.entry(e["event_id"].as_str().unwrap()).or_default().push(e);
    }
    let services: HashSet<&str> = all.iter().map(|e| e["service"].as_str().unwrap()).collect();
    assert_eq!(services.len(), 5, "every change published at least once: {services:?}");
    assert_eq!(by_id.len(), 5, "re-deliveries carry the same event id: {by_id:#?}");
    for copies in by_id.values() {
        assert!(copies.iter().all(|c| *c == copies[0]), "a duplicate differs from its original");
    }
    assert!(p.stats.failed_invocations.load(Ordering::Relaxed) >= 2, "the fault was not hit");
    assert_eq!(p.stats.sent_to_on_failure.load(Ordering::Relaxed), 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_keeps_failing_goes_to_the_on_failure_queue_and_the_shard_moves_on() {
    let p = TestPipeline::start_with(
        "dlq",
        Options::new()
            .publisher(|inner| FlakyPublisher::new(inner, "doomed", 1000))
            .mapping(|m| m.max_retry_attempts = Some(2)),
    )
    .await;
    let q = p.subscribe(None).await;
    let doomed =
        Registration::new_at("doomed", "1.0.0", "i-1", "https://x.example", Status::Healthy, 600, now()).unwrap();
    p.registry.put(&doomed).await.unwrap();
    let after = Registration::new_at("fine", "1.0.0", "i-1", "https://x.example", Status::Healthy, 600, now()).unwrap();
    p.registry.put(&after).await.unwrap();

    let dlq = p.on_failure.receive_until(Duration::from_secs(30), |a| !a.is_empty()).await;
    assert_eq!(dlq.len(), 1, "{dlq:#?}");
    let info = &dlq[0]["DDBStreamBatchInfo"];
    assert!(info["startSequenceNumber"].is_string() && info["batchSize"].as_u64() >= Some(1), "{info:#}");
    assert_eq!(dlq[0]["requestContext"]["condition"], "RetryAttemptsExhausted");
    let events = q.receive_until(Duration::from_secs(30), |a| a.iter().any(|e| e["service"] == "fine")).await;
    assert!(events.iter().any(|e| e["service"] == "fine"), "the shard did not move on: {events:#?}");
    p.stop().await;
}

const SERVICES: usize = 10;
const CONSUMERS: usize = 20;
const REQUIREMENTS: &[&str] = &["", "^1", "==1.1.0", ">=1.1,<2", "~2.0"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_writes_converge_to_a_fresh_resolution() {
    converge(TestPipeline::start("conv").await).await;
}

/// The same with every refresh paged through the refresh queue, 2
/// dependents a page and 1 inline per batch: pages of one refresh race
/// each other, newer refreshes and needs changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_random_writes_converge_through_the_refresh_queue() {
    let limits = beacon_fanout::Limits { inline_dependents: 1, page: 2, direct: 1 };
    converge(TestPipeline::start_with("convq", Options::new().limits(limits)).await).await;
}

async fn converge(p: TestPipeline) {
    let p = Arc::new(p);
    let seed = now() as u64 | 1;
    eprintln!("convergence seed: {seed}");
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let p = p.clone();
        writers.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed.wrapping_mul(w + 7) | 1);
            let versions = ["1.0.0", "1.1.0", "2.0.0"];
            let statuses = [Status::Healthy, Status::Healthy, Status::Unhealthy, Status::Draining];
            for _ in 0..60 {
                let op = rng.below(10);
                let service = format!("s{}", rng.below(SERVICES));
                let version = versions[rng.below(versions.len())];
                let instance = format!("i{}", rng.below(3));
                if op < 6 {
                    let mut r = Registration::new_at(
                        &service,
                        version,
                        &instance,
                        "https://x.example",
                        Status::Healthy,
                        3600,
                        now(),
                    )
                    .unwrap();
                    r.status = statuses[rng.below(statuses.len())];
                    r.endpoint_url = format!("https://{instance}.{service}.example/{}", rng.below(4));
                    p.registry.put(&r).await.unwrap();
                } else if op < 8 {
                    p.registry.delete(&InstanceKey::new(&service, version, &instance)).await.unwrap();
                } else {
                    let consumer = format!("c{}", rng.below(CONSUMERS));
                    let needs = Needs {
                        consumer,
                        needs: parse_needs(&random_needs(&mut rng, SERVICES, REQUIREMENTS)).unwrap(),
                    };
                    p.registry.put_needs(&needs, now()).await.unwrap();
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    // Every consumer declares needs at least once so every one is checked.
    let mut rng = Rng::new(seed);
    let mut declared = BTreeMap::new();
    for c in 0..CONSUMERS {
        let needs = Needs {
            consumer: format!("c{c}"),
            needs: parse_needs(&random_needs(&mut rng, SERVICES, REQUIREMENTS)).unwrap(),
        };
        p.registry.put_needs(&needs, now()).await.unwrap();
        declared.insert(needs.consumer.clone(), needs);
    }

    let started = std::time::Instant::now();
    loop {
        let Some(diff) = p.first_difference(&declared).await else { break };
        assert!(started.elapsed() < Duration::from_secs(60), "no convergence after 60 s (seed {seed}): {diff}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(p.stats.sent_to_on_failure.load(Ordering::Relaxed), 0);
    if let Ok(p) = Arc::try_unwrap(p) {
        p.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolved_events_carry_their_consumer_for_filtering() {
    let p = TestPipeline::start("mine").await;
    let mine = p.subscribe(Some(r#"{"consumer":["web"]}"#)).await;
    for consumer in ["web", "batch"] {
        let needs = Needs { consumer: consumer.into(), needs: parse_needs("orders").unwrap() };
        p.registry.put_needs(&needs, now()).await.unwrap();
    }
    let r = Registration::new_at("orders", "1.0.0", "i-1", "https://o.example", Status::Healthy, 600, now()).unwrap();
    p.registry.put(&r).await.unwrap();
    let events = mine.receive_until(Duration::from_secs(20), |a| a.iter().any(|e| e["service"] == "orders")).await;
    let extra = mine.receive_for(Duration::from_secs(1)).await;
    let resolved: Vec<&Value> = events.iter().chain(&extra).collect();
    assert!(!resolved.is_empty());
    assert!(resolved.iter().all(|e| e["consumer"] == "web"), "{resolved:#?}");
    assert_eq!(of_kind(&events, "registered").len(), 0, "the filter let a change event through");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_poller_resumes_from_its_checkpoint_and_loses_nothing() {
    let dir = std::env::temp_dir().join(beacon_tests::unique("ckpt"));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("checkpoint.json");
    let path = checkpoint.clone();
    let mut p =
        TestPipeline::start_with("restart", Options::new().mapping(move |m| m.checkpoint_path = Some(path))).await;
    let q = p.subscribe(Some(r#"{"kind":["registered"]}"#)).await;
    let write = |i: usize| {
        Registration::new_at("svc", "1.0.0", &format!("i{i}"), "https://x.example", Status::Healthy, 600, now())
            .unwrap()
    };
    for i in 0..10 {
        p.registry.put(&write(i)).await.unwrap();
    }
    let first = q.receive_until(Duration::from_secs(20), |a| a.len() >= 10).await;
    assert!(checkpoint.exists(), "no checkpoint was written");
    // Stop, write while nothing reads the stream, start again.
    p.stop_poller().await;
    for i in 10..20 {
        p.registry.put(&write(i)).await.unwrap();
    }
    p.start_poller();
    let second = q
        .receive_until(Duration::from_secs(20), |a| {
            a.iter().filter_map(|e| e["instance_id"].as_str()).collect::<HashSet<_>>().len() >= 10
        })
        .await;
    let ids: HashSet<&str> = first.iter().chain(&second).filter_map(|e| e["instance_id"].as_str()).collect();
    assert_eq!(ids.len(), 20, "lost changes across the restart: {ids:?}");
    let replayed = second.iter().filter(|e| first.iter().any(|f| f["event_id"] == e["event_id"])).count();
    assert_eq!(replayed, 0, "the checkpoint did not hold: {replayed} events were replayed");
    p.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
