//! The sweeper against DynamoDB Local, with a fixed clock; and expiry for
//! registrations written by any SDK, with or without Beacon's shard.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_domain::ports::{Existing, InstanceKey, Registrations};

use beacon_domain::ports::ExpiryIndex;
use beacon_domain::ports::ServiceState;
use beacon_domain::sweep::sweep;
use beacon_domain::{Registration, Status};
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
    for shard in 0..beacon_domain::keys::EXPIRY_SHARDS {
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

/// A registration written with a raw SDK PutItem, as the README's item table
/// allows: no `expiry_shard` at all, or one its key does not hash to.
fn raw_item(service: &str, id: &str, expires_at: i64, shard: Option<&str>) -> HashMap<String, Av> {
    let s = |v: &str| Av::S(v.to_owned());
    let mut item = HashMap::from([
        ("pk".to_owned(), s(&beacon_domain::keys::service_pk(service))),
        ("sk".to_owned(), s(&beacon_domain::keys::instance_sk("1.0.0", id))),
        ("service".to_owned(), s(service)),
        ("version".to_owned(), s("1.0.0")),
        ("instance_id".to_owned(), s(id)),
        ("endpoint_url".to_owned(), s("https://raw.example")),
        ("status".to_owned(), s("healthy")),
        ("ttl_seconds".to_owned(), Av::N("10".into())),
        ("expires_at".to_owned(), Av::N(expires_at.to_string())),
    ]);
    if let Some(shard) = shard {
        item.insert("expiry_shard".to_owned(), s(shard));
    }
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_written_without_beacons_shard_expire_too() {
    let p = TestPipeline::start("raw-expiry").await;
    let q = p.subscribe(Some(r#"{"service":["raw"]}"#)).await;
    let t = now();
    let wrong = |id: &str| {
        let right = beacon_domain::keys::expiry_shard(
            &beacon_domain::keys::service_pk("raw"),
            &beacon_domain::keys::instance_sk("1.0.0", id),
        );
        if right == "0" { "1".to_owned() } else { "0".to_owned() }
    };
    let items = [
        raw_item("raw", "none", t + 2, None),
        raw_item("raw", "wrong", t + 2, Some(&wrong("wrong"))),
        raw_item("raw", "junk", t + 2, Some("not-a-shard")),
    ];
    for item in items {
        p.dynamodb.put_item().table_name(&p.table).set_item(Some(item)).send().await.unwrap();
    }
    // The fan-out puts each into the expiry index, and publishes nothing for
    // doing so: three `registered`, no `updated`.
    let due_at = |now: i64| {
        let registry = &p.registry;
        async move {
            let mut due = 0;
            for shard in 0..beacon_domain::keys::EXPIRY_SHARDS {
                due += registry.due(shard, now).await.unwrap().len();
            }
            due
        }
    };
    TestPipeline::eventually(Duration::from_secs(20), "all three in the expiry index", || async {
        due_at(t + 2).await == 3
    })
    .await;
    let events = q.receive_until(Duration::from_secs(10), |a| a.len() >= 3).await;
    let extra = q.receive_for(Duration::from_secs(1)).await;
    assert_eq!(of_kind(&events, "registered").len(), 3, "{events:#?}");
    assert!(extra.is_empty() && events.len() == 3, "putting items in the index published {extra:#?}");

    // A heartbeat by a raw UpdateItem keeps the shard: nothing to repair,
    // nothing published.
    p.dynamodb
        .update_item()
        .table_name(&p.table)
        .key("pk", Av::S(beacon_domain::keys::service_pk("raw")))
        .key("sk", Av::S(beacon_domain::keys::instance_sk("1.0.0", "none")))
        .update_expression("SET expires_at = :e")
        .expression_attribute_values(":e", Av::N((t + 3).to_string()))
        .send()
        .await
        .unwrap();
    assert!(q.receive_for(Duration::from_secs(2)).await.is_empty(), "a heartbeat published something");

    // One sweep after their expiry deletes all three: published as expired.
    // (The fan-out decides "expired" by its own clock, so the sweep runs
    // once the wall clock has passed every expiry.)
    while now() < t + 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let report = sweep(&p.registry, now()).await.unwrap();
    assert_eq!(report.expired, 3, "{report:?}");
    let events = q.receive_until(Duration::from_secs(20), |a| of_kind(a, "expired").len() >= 3).await;
    assert_eq!(of_kind(&events, "expired").len(), 3, "{events:#?}");
    assert!(p.registry.read_service("raw").await.unwrap().instances.is_empty());
    p.stop().await;
}
