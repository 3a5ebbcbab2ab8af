//! Faults survived: the SNS/SQS server going away mid-burst, the pipeline
//! killed mid-batch, and DynamoDB throttling the fan-out. Each test counts
//! what was written against what arrived. Where a test double injects the
//! fault (the local engines cannot produce it on demand) the test says so;
//! see `beacon_tests::faults`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_domain::ports::{NeedsDeclarations, Registrations};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use beacon_domain::view::{Needs, Outcome};

use beacon_domain::{Registration, Status, parse_needs};
use beacon_tests::faults::{FaultyRegistry, Outage, PausingPublisher, RegistryFaults};
use beacon_tests::{Options, Queue, TestPipeline, now, of_kind, unique};
use serde_json::Value;

fn instance(service: &str, id: usize) -> Registration {
    Registration::new_at(service, "1.0.0", &format!("i{id}"), "https://x.example", Status::Healthy, 600, now()).unwrap()
}

/// Groups events by `event_id`; asserts every copy of an id is identical
/// (a re-delivery is the same event) and returns how many ids had copies.
fn duplicates(events: &[Value]) -> usize {
    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in events {
        by_id.entry(e["event_id"].as_str().unwrap()).or_default().push(e);
    }
    for copies in by_id.values() {
        assert!(copies.iter().all(|c| *c == copies[0]), "a re-delivery differs from its original: {copies:#?}");
    }
    by_id.values().filter(|c| c.len() > 1).count()
}

/// Receives until `count` distinct instances have been `registered` (and
/// 2 s more, for late copies); asserts none was lost across `fault`.
async fn every_registration(q: &Queue, count: usize, fault: &str) -> Vec<Value> {
    let events = q.receive_until(Duration::from_secs(60), |all| instances_seen(all, "registered").len() >= count).await;
    let extra = q.receive_for(Duration::from_secs(2)).await;
    let events: Vec<Value> = events.into_iter().chain(extra).collect();
    let seen = instances_seen(&events, "registered").len();
    assert_eq!(seen, count, "changes lost across {fault}: {seen} of {count} arrived");
    events
}

fn instances_seen(events: &[Value], kind: &str) -> HashSet<String> {
    of_kind(events, kind).iter().filter_map(|e| e["instance_id"].as_str().map(str::to_owned)).collect()
}

/// How many endpoints a consumer's resolved item lists for `service`.
fn endpoints(item: &beacon_domain::view::ResolvedItem, service: &str) -> usize {
    item.services.get(service).map_or(0, |v| {
        v.requirements
            .iter()
            .map(|r| match &r.outcome {
                Outcome::Resolved(ok) => ok.endpoints.len(),
                Outcome::Unresolved(_) => 0,
            })
            .sum()
    })
}

/// The SNS/SQS server stops answering during a burst (a real outage of the
/// port; moto keeps its state behind the hop), then comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sns_outage_during_a_burst_loses_nothing() {
    let sns = std::env::var("AWS_ENDPOINT_URL_SNS").expect("the local stack");
    let outage = Outage::start(&sns).await;
    // AWS's defaults (and the template's): 5 retries, bisect on error.
    let p = TestPipeline::start_with("outage", Options::new().sns_endpoint(outage.url())).await;
    let q = p.subscribe(Some(r#"{"kind":["registered"]}"#)).await;
    const BURST: usize = 60;
    for i in 0..BURST / 3 {
        p.registry.put(&instance("pay", i)).await.unwrap();
    }
    outage.stop();
    for i in BURST / 3..BURST {
        p.registry.put(&instance("pay", i)).await.unwrap();
    }
    // Wait for the outage to bite: batches failed and are being retried.
    TestPipeline::eventually(Duration::from_secs(60), "publishes to fail during the outage", || async {
        p.stats.failed_invocations.load(Ordering::Relaxed) >= 2
    })
    .await;
    outage.restart().await;

    let events = every_registration(&q, BURST, "the outage").await;
    let dups = duplicates(&events);
    assert_eq!(p.stats.sent_to_on_failure.load(Ordering::Relaxed), 0, "a batch gave up during a short outage");
    eprintln!(
        "sns outage: {BURST} changes written, {} events delivered, {dups} duplicated ids, {} failed invocations",
        events.len(),
        p.stats.failed_invocations.load(Ordering::Relaxed)
    );
    p.stop().await;
}

/// The pipeline is killed (its task aborted, shard worker and fan-out
/// invocation with it) right after a batch's events went out and before
/// the batch was acknowledged, three times during a burst. The restarted
/// pipeline resumes from its checkpoint and re-sends what was not
/// acknowledged, under the same event ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pipeline_killed_mid_batch_resumes_and_replays_under_the_same_ids() {
    let dir = std::env::temp_dir().join(unique("kill"));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoint = dir.join("checkpoint.json");
    let published = Arc::new(tokio::sync::Notify::new());
    let signal = published.clone();
    // Test double: PausingPublisher publishes for real, then holds the call
    // so the kill lands between "events out" and "batch acknowledged".
    let mut p = TestPipeline::start_with(
        "kill",
        Options::new()
            .publisher(move |inner| PausingPublisher::new(inner, Duration::from_millis(400), signal))
            .mapping(move |m| {
                m.checkpoint_path = Some(checkpoint);
                m.batch_size = 10;
            }),
    )
    .await;
    let q = p.subscribe(Some(r#"{"kind":["registered"]}"#)).await;
    const BURST: usize = 50;
    let writer = {
        let registry = p.registry.clone();
        tokio::spawn(async move {
            for i in 0..BURST {
                registry.put(&instance("orders", i)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut kills = 0;
    for _ in 0..3 {
        let wait = published.notified();
        if tokio::time::timeout(Duration::from_secs(30), wait).await.is_err() {
            break;
        }
        p.kill_poller().await;
        kills += 1;
        p.start_poller();
    }
    writer.await.unwrap();
    assert_eq!(kills, 3, "the pipeline published nothing to kill it after");

    let events = every_registration(&q, BURST, &format!("{kills} kills")).await;
    let dups = duplicates(&events);
    assert!(dups >= 1, "a kill after publishing and before acknowledging must replay, under the same id");
    eprintln!(
        "kill mid-batch: {kills} kills, {BURST} changes written, {} events delivered, {dups} replayed ids",
        events.len()
    );
    p.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Test double (FaultyRegistry): DynamoDB throttles the fan-out's first
/// reads and writes. Each failed record is reported, re-delivered after a
/// growing back-off, and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_registry_calls_are_retried_with_backoff_and_lose_nothing() {
    const THROTTLED: u32 = 6;
    let faults = Arc::new(RegistryFaults::default());
    let f = faults.clone();
    // Unlimited retries (AWS's -1): with the default 5, six throttles in six
    // separate attempts would rightly send the batch to the on-failure queue
    // (that path has its own test); this one is about backoff and loss.
    let p = TestPipeline::start_with(
        "throttle",
        Options::new().registry(move |r| FaultyRegistry::new(r, f)).mapping(|m| m.max_retry_attempts = None),
    )
    .await;
    let q = p.subscribe(None).await;
    let needs = Needs { consumer: "web".into(), needs: parse_needs("orders").unwrap() };
    p.registry.put_needs(&needs, now()).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(20), "the consumer's resolved item", || async {
        p.resolved("web").await.is_some()
    })
    .await;

    faults.fail_next.store(THROTTLED, Ordering::SeqCst);
    for i in 0..5 {
        p.registry.put(&instance("orders", i)).await.unwrap();
    }
    let events = q
        .receive_until(Duration::from_secs(60), |all| {
            instances_seen(all, "registered").len() >= 5 && !of_kind(all, "resolved").is_empty()
        })
        .await;
    assert_eq!(instances_seen(&events, "registered").len(), 5, "a throttled change was lost: {events:#?}");
    TestPipeline::eventually(Duration::from_secs(20), "the resolved item to show all five", || async {
        p.resolved("web").await.is_some_and(|item| endpoints(&item, "orders") == 5)
    })
    .await;

    let at = faults.injected_at.lock().unwrap().clone();
    assert_eq!(at.len(), THROTTLED as usize, "not every injected throttle was hit");
    // One invocation can hit more than one throttle; an attempt is a run of
    // throttles under 50 ms apart.
    let attempts: Vec<Instant> = at
        .iter()
        .enumerate()
        .filter(|(i, t)| *i == 0 || **t - at[i - 1] > Duration::from_millis(50))
        .map(|(_, t)| *t)
        .collect();
    assert!(attempts.len() >= 3, "the throttles fell in only {} attempts", attempts.len());
    // The mapping backs off 100 ms × 2^attempt (capped at 3.2 s) between
    // re-deliveries of a batch that fails without progress: the gaps
    // between attempts are at least that, so they grow.
    for (n, pair) in attempts.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        let floor = Duration::from_millis(100 << (n + 1).min(5));
        assert!(gap >= floor, "re-delivery {} came {gap:?} after the last, under the {floor:?} back-off", n + 1);
    }
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    eprintln!(
        "throttling: {THROTTLED} throttled calls in {} attempts, 5 changes written and delivered, re-delivery gaps {gaps:?}",
        attempts.len()
    );
    assert!(p.stats.failed_invocations.load(Ordering::Relaxed) >= attempts.len() as u64);
    assert_eq!(p.stats.sent_to_on_failure.load(Ordering::Relaxed), 0);
    p.stop().await;
}
