//! What a change costs by what it moves (issue 17), against the real
//! engines: view groups make a change that moves no view cost no dependent
//! write; large fan-outs go through the refresh queue (SQS, consumed by the
//! local event source mapping) and converge, also when a page fails. The
//! only test double is `FaultyRegistry`, which injects a failure into one
//! kind of call, which DynamoDB Local cannot be made to do.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use beacon_domain::ports::{NeedsDeclarations, Registrations};
use beacon_domain::view::{Needs, Outcome};
use beacon_domain::{Registration, Status, parse_needs};
use beacon_fanout::Limits;
use beacon_tests::faults::{FaultyRegistry, RegistryFaults};
use beacon_tests::{Options, TestPipeline, now, of_kind};
use serde_json::Value;

/// `n` consumers of `orders`, alternating between two requirement lists
/// (two view groups).
async fn consumers(p: &TestPipeline, n: usize) {
    for c in 0..n {
        let needs = if c % 2 == 0 { "orders" } else { "orders^1" };
        let needs = Needs { consumer: format!("c{c:03}"), needs: parse_needs(needs).unwrap() };
        p.registry.put_needs(&needs, now()).await.unwrap();
    }
}

fn orders(status: Status, attribute: &str) -> Registration {
    let mut r =
        Registration::new_at("orders", "1.2.0", "i-1", "https://orders.example", Status::Healthy, 3600, now()).unwrap();
    r.status = status;
    r.attributes.insert("build".into(), attribute.into());
    r
}

/// Waits until every consumer's view of `orders` is `resolved` (or not).
async fn all_resolved(p: &TestPipeline, n: usize, resolved: bool, limit: Duration) {
    TestPipeline::eventually(limit, "every consumer's view of orders", || async {
        for c in 0..n {
            let Some(item) = p.resolved(&format!("c{c:03}")).await else { return false };
            let Some(view) = item.services.get("orders") else { return false };
            if view.requirements.iter().any(|r| matches!(r.outcome, Outcome::Resolved(_)) != resolved) {
                return false;
            }
        }
        true
    })
    .await;
}

fn resolved_for(events: &[Value]) -> BTreeSet<String> {
    of_kind(events, "resolved")
        .iter()
        .filter(|e| e["service"] == "orders")
        .filter_map(|e| e["consumer"].as_str().map(str::to_owned))
        .collect()
}

/// A pipeline with `n` consumers of `orders` and its first instance, once
/// every earlier batch finished: each consumer's needs change published its
/// `resolved`, and i-1's refresh its `registered` (a batch publishes after
/// its writes, so the views alone can be seen first). Returns it with a
/// subscriber queue.
async fn settled(name: &str, n: usize) -> (TestPipeline, beacon_tests::Queue) {
    let p = TestPipeline::start(name).await;
    let q = p.subscribe(None).await;
    consumers(&p, n).await;
    p.registry.put(&orders(Status::Healthy, "a")).await.unwrap();
    all_resolved(&p, n, true, Duration::from_secs(30)).await;
    let _ = q
        .receive_until(Duration::from_secs(30), |e| {
            let consumers: BTreeSet<&str> =
                of_kind(e, "resolved").iter().filter_map(|r| r["consumer"].as_str()).collect();
            consumers.len() == n && !of_kind(e, "registered").is_empty()
        })
        .await;
    let _ = q.receive_for(Duration::from_millis(500)).await;
    (p, q)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_that_moves_no_view_writes_no_dependent() {
    const N: usize = 30;
    let (p, q) = settled("groups", N).await;

    // An attribute edit: a real change (one `updated` event), no view moves.
    let before = p.fan_registry.counts().snapshot();
    p.registry.put(&orders(Status::Healthy, "b")).await.unwrap();
    let events = q.receive_until(Duration::from_secs(20), |e| !of_kind(e, "updated").is_empty()).await;
    let events = [events, q.receive_for(Duration::from_secs(1)).await].concat();
    let (reads, writes, refused) = p.fan_registry.counts().snapshot();
    assert_eq!(of_kind(&events, "updated").len(), 1, "{events:#?}");
    assert!(resolved_for(&events).is_empty(), "a view that did not move was published: {events:#?}");
    // One generation bump and two Queries, however many consumers: the
    // service's registrations (`SERVICE#orders`) and the fan-out's state
    // (`FANOUT#orders`, from `GENERATION`: the groups, not the edges). No
    // dependent is read or written.
    assert_eq!((reads - before.0, writes - before.1, refused - before.2), (2, 1, 0));

    // A status change moves both groups' views: two claims (a transaction
    // of two items each, billed twice), one page of edges, a write per
    // dependent, two settles.
    let before = p.fan_registry.counts().snapshot();
    p.registry.put(&orders(Status::Unhealthy, "b")).await.unwrap();
    all_resolved(&p, N, false, Duration::from_secs(30)).await;
    let events = q.receive_until(Duration::from_secs(20), |e| resolved_for(e).len() == N).await;
    let (reads, writes, refused) = p.fan_registry.counts().snapshot();
    assert_eq!(resolved_for(&events).len(), N);
    assert_eq!(reads - before.0, 3, "the registrations, the state and one page of edges");
    assert_eq!(writes - before.1, 1 + 2 * 4 + N as u64 + 2);
    assert_eq!(refused - before.2, 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fan_out_is_paged_through_the_refresh_queue_and_converges() {
    const N: usize = 40;
    let limits = Limits { inline_dependents: 5, page: 7, direct: 0 };
    let p = TestPipeline::start_with("paged", Options::new().limits(limits)).await;
    consumers(&p, N).await;
    p.registry.put(&orders(Status::Healthy, "a")).await.unwrap();
    all_resolved(&p, N, true, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pages_before = p.pages.invocations.load(Ordering::Relaxed);
    let q = p.subscribe(Some(r#"{"service":["orders"]}"#)).await;
    // Moves every view: each consumer gets one `resolved` event naming the
    // service, from a page (40 do not fit in the batch's 5).
    p.registry.put(&orders(Status::Unhealthy, "a")).await.unwrap();
    all_resolved(&p, N, false, Duration::from_secs(60)).await;
    let events = q.receive_until(Duration::from_secs(20), |e| resolved_for(e).len() == N).await;
    assert_eq!(resolved_for(&events).len(), N, "a consumer's `resolved` event is missing");
    // 40 in pages of 7: at least 6 pages (plus a last, empty one when a
    // page ends exactly on the last edge).
    let pages = p.pages.invocations.load(Ordering::Relaxed) - pages_before;
    assert!(pages >= 6, "only {pages} refresh pages ran");
    assert_eq!(p.pages.failed.load(Ordering::Relaxed), 0);

    // A malformed message is reported for redelivery (and so, after the
    // redrive policy's receives, reaches the dead-letter queue), not
    // dropped.
    let event: SqsEvent = serde_json::from_value(serde_json::json!({
        "Records": [{ "messageId": "m-1", "body": "{\"service\": 7}" }]
    }))
    .unwrap();
    let fanout = beacon_fanout::FanOut::new(
        p.fan_registry.clone(),
        beacon_aws::SnsPublisher::new(p.sns.clone(), &p.topic_arn),
        beacon_aws::SqsRefreshQueue::new(p.sqs.clone(), "http://unused"),
    );
    let (response, report) = fanout.handle_pages(&event, beacon_domain::clock::now_seconds()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "m-1");
    assert_eq!(report.failed, 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_fails_is_delivered_again_and_no_view_is_lost() {
    const N: usize = 12;
    let faults = Arc::new(RegistryFaults::default());
    *faults.only.lock().unwrap() = Some("Query edges");
    let f = faults.clone();
    // Nothing inline: every dependent goes through the queue.
    let options = Options::new()
        .limits(Limits { inline_dependents: 0, page: 5, direct: 0 })
        .registry(move |r| FaultyRegistry::new(r, f));
    let p = TestPipeline::start_with("pagefail", options).await;
    consumers(&p, N).await;
    p.registry.put(&orders(Status::Healthy, "a")).await.unwrap();
    all_resolved(&p, N, true, Duration::from_secs(60)).await;
    // Now the first page's read of the edges fails once.
    faults.fail_next.store(1, Ordering::SeqCst);
    p.registry.put(&orders(Status::Unhealthy, "a")).await.unwrap();
    all_resolved(&p, N, false, Duration::from_secs(60)).await;
    assert_eq!(faults.injected(), 1);
    assert!(p.pages.failed.load(Ordering::Relaxed) >= 1, "the failed page was not reported");
    assert_eq!(p.refresh_dead.receive_for(Duration::from_millis(500)).await.len(), 0);
    p.stop().await;
}

/// A service with few dependents is refreshed directly (issue 27): a
/// change that moves the views costs the bump and one write per dependent
/// (a lone dependent: 2, where view groups cost 7), one that moves none
/// costs the bump and no dependent write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_fan_out_costs_the_bump_and_a_write_per_moved_view() {
    for n in [1usize, 10] {
        let (p, q) = settled(&format!("direct{n}"), n).await;

        // Moves every view: the bump, then a write per dependent; reads: the
        // edges, the registrations, the state, each dependent's item, and
        // the generation after the writes.
        let before = p.fan_registry.counts().snapshot();
        p.registry.put(&orders(Status::Unhealthy, "a")).await.unwrap();
        all_resolved(&p, n, false, Duration::from_secs(30)).await;
        let events = q.receive_until(Duration::from_secs(20), |e| resolved_for(e).len() == n).await;
        let (reads, writes, refused) = p.fan_registry.counts().snapshot();
        assert_eq!(resolved_for(&events).len(), n, "{n} dependents");
        assert_eq!(writes - before.1, 1 + n as u64, "{n} dependents: the bump and one write each");
        assert_eq!(reads - before.0, 4 + n as u64, "{n} dependents");
        assert_eq!(refused - before.2, 0);

        // Moves none: the bump only; each dependent's item is read, none written.
        let before = p.fan_registry.counts().snapshot();
        p.registry.put(&orders(Status::Unhealthy, "b")).await.unwrap();
        let events = q.receive_until(Duration::from_secs(20), |e| !of_kind(e, "updated").is_empty()).await;
        let events = [events, q.receive_for(Duration::from_secs(1)).await].concat();
        let (reads, writes, _) = p.fan_registry.counts().snapshot();
        assert!(resolved_for(&events).is_empty(), "a view that did not move was published: {events:#?}");
        assert_eq!(writes - before.1, 1, "{n} dependents: the bump only");
        assert_eq!(reads - before.0, 3 + n as u64, "{n} dependents: no check after writing nothing");
        p.stop().await;
    }
}
