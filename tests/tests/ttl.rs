//! A live TTL delete: DynamoDB Local's own TTL process (not the sweeper,
//! which does not run here) removes an expired registration, and the
//! fan-out publishes exactly one `expired` event for it. DynamoDB Local's
//! deleter runs every few seconds and takes any item whose TTL attribute
//! (`expires_at`) is in the past; its stream record carries an `eventName`
//! the SDK does not know and no `userIdentity` (AWS's carries the TTL
//! service's), which is the path this test is for.
//!
//! On engines of its own: the deleter sweeps every table in turn, and on
//! the suite's shared DynamoDB Local, with the hundreds of tables the other
//! tests leave, it did not reach the item in 120 s; on a fresh one it takes
//! about a second.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::time::{Duration, Instant};

use beacon_domain::ports::Registrations as _;
use beacon_domain::{Registration, Status};
use beacon_tests::stack::OwnStack;
use beacon_tests::{Options, TestPipeline, now, of_kind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_locals_ttl_deleter_removes_an_expired_item_and_one_expired_event_follows() {
    let stack = OwnStack::start();
    let p = TestPipeline::start_with("ttl", Options::new().clients(stack.clients())).await;
    let q = p.subscribe(Some(r#"{"kind":["expired","deregistered"]}"#)).await;
    let mut stale =
        Registration::new_at("ttl", "1.0.0", "i-1", "https://i-1.ttl.example", Status::Healthy, 60, now() - 200)
            .unwrap();
    stale.expires_at = now() - 5;
    p.registry.put(&stale).await.unwrap();
    let written = Instant::now();

    let events = q.receive_until(Duration::from_secs(120), |all| !all.is_empty()).await;
    let took = written.elapsed();
    assert_eq!(of_kind(&events, "expired").len(), 1, "one expired event, after {took:?}: {events:#?}");
    assert!(of_kind(&events, "deregistered").is_empty(), "a TTL delete is an expiry: {events:#?}");
    let e = of_kind(&events, "expired")[0];
    assert_eq!(e["instance_id"], "i-1");
    assert_eq!(e["before"]["endpoint_url"], "https://i-1.ttl.example");
    // Exactly once: nothing follows.
    let more = q.receive_for(Duration::from_secs(5)).await;
    assert!(more.is_empty(), "only one event: {more:#?}");
    assert!(p.registry.instances("ttl").await.unwrap().registrations.is_empty(), "the item is gone");
    eprintln!("DynamoDB Local's TTL deleter removed the item {took:?} after it was written");
    p.stop().await;
    drop(stack);
}
