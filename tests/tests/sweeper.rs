//! The sweeper against DynamoDB Local, with a fixed clock.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon::ports::{Catalog, Existing, InstanceKey};
use std::sync::atomic::Ordering;
use std::time::Duration;

use beacon::ports::ExpiryIndex;
use beacon::ports::Registry;
use beacon::sweep::sweep;
use beacon::{Registration, Status};
use beacon_tests::{TestPipeline, now, of_kind};

fn reg(service: &str, id: &str, expires_at: i64) -> Registration {
    let mut r =
        Registration::new_at(service, "1.0.0", id, "https://x.example", Status::Healthy, 60, expires_at - 60).unwrap();
    r.expires_at = expires_at;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_registrations_are_swept_and_published_as_expired() {
    let p = TestPipeline::start("sweep").await;
    let q = p.subscribe(Some(r#"{"kind":["expired"]}"#)).await;
    // The sweep's clock is fixed at the start; the fan-out, which decides
    // "expired" by its own clock, runs later, so it agrees.
    let t = now();
    for i in 0..3 {
        p.registry.put(&reg("gone", &format!("g{i}"), t - 1)).await.unwrap();
    }
    for i in 0..40 {
        p.registry.put(&reg("alive", &format!("a{i}"), t + 600)).await.unwrap();
    }
    // Refreshed just before the sweep: its expiry moved past the clock.
    let saved = reg("saved", "s1", t - 1);
    p.registry.put(&saved).await.unwrap();
    assert_eq!(p.registry.heartbeat(&InstanceKey::of(&saved), saved.ttl_seconds, t).await.unwrap(), Existing::Done);

    let read_before = p.registry.counts().items_read.load(Ordering::Relaxed);
    let report = sweep(&p.registry, t).await.unwrap();
    let read = p.registry.counts().items_read.load(Ordering::Relaxed) - read_before;
    assert_eq!((report.due, report.expired, report.refreshed), (3, 3, 0), "{report:?}");
    assert_eq!(read, 3, "the sweeper read {read} index items for 3 due ones: it must read only what is due");

    let events = q.receive_until(Duration::from_secs(20), |a| a.len() >= 3).await;
    let extra = q.receive_for(Duration::from_secs(1)).await;
    let expired = of_kind(&events, "expired");
    assert_eq!(expired.len() + extra.len(), 3, "{events:#?} {extra:#?}");
    assert!(expired.iter().all(|e| e["service"] == "gone"));

    let partition = p.registry.read_service("saved").await.unwrap();
    assert_eq!(partition.instances.len(), 1, "the refreshed registration was swept");
    let again = sweep(&p.registry, t).await.unwrap();
    assert_eq!(again.due, 0, "a second sweep found {again:?}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_between_read_and_delete_wins() {
    let p = TestPipeline::start("race").await;
    let t = now();
    let r = reg("racy", "r1", t - 1);
    p.registry.put(&r).await.unwrap();
    let mut due = Vec::new();
    for shard in 0..beacon::keys::EXPIRY_SHARDS {
        due.extend(p.registry.due(shard, t).await.unwrap());
    }
    assert_eq!(due.len(), 1);
    assert_eq!(
        p.registry.heartbeat(&InstanceKey::of(&r), r.ttl_seconds, t).await.unwrap(),
        Existing::Done,
        "heartbeat"
    );
    assert!(!p.registry.delete_if_expired(&due[0], t).await.unwrap(), "the delete ignored the heartbeat");
    assert_eq!(p.registry.read_service("racy").await.unwrap().instances.len(), 1);
    p.stop().await;
}
