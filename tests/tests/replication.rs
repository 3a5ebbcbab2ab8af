//! The global-table replication stand-in (`beacon_local::replication`)
//! against DynamoDB Local, holding it to what AWS documents of global
//! tables: per item and asynchronous, last writer wins, every replica's
//! stream carrying replicated writes, and a cut-off Region reconciled on
//! return. The multi-Region tests build on it, so it is tested first.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use beacon_local::replication::{Replica, Replication, ReplicationConfig};
use beacon_tests::regions::replica;
use beacon_tests::unique;

const REGIONS: [&str; 2] = ["us-east-1", "eu-west-1"];

async fn replicas(prefix: &str) -> Vec<Replica> {
    let table = unique(prefix);
    let mut out = Vec::new();
    for r in REGIONS {
        out.push(replica(r, &table).await);
    }
    out
}

fn config(delay_ms: u64) -> ReplicationConfig {
    ReplicationConfig {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(100),
        seed: beacon_tests::faults::seed(),
        poll_interval: Duration::from_millis(50),
    }
}

async fn put(r: &Replica, pk: &str, value: &str) {
    r.dynamodb
        .put_item()
        .table_name(&r.table)
        .item("pk", AttributeValue::S(pk.to_owned()))
        .item("sk", AttributeValue::S("X".to_owned()))
        .item("value", AttributeValue::S(value.to_owned()))
        .send()
        .await
        .expect("put");
}

async fn get(r: &Replica, pk: &str) -> Option<String> {
    let out = r
        .dynamodb
        .get_item()
        .table_name(&r.table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .key("sk", AttributeValue::S("X".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .expect("get");
    out.item.and_then(|i| i.get("value").and_then(|v| v.as_s().ok().cloned()))
}

async fn everything(r: &Replica) -> HashMap<String, String> {
    let out = r.dynamodb.scan().table_name(&r.table).consistent_read(true).send().await.expect("scan");
    out.items
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i["pk"].as_s().unwrap().clone(), i["value"].as_s().unwrap().clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reaches_the_other_region_after_its_delay_and_its_stream_carries_it() {
    let rs = replicas("repl-basic").await;
    let repl = Replication::start(rs.clone(), config(600));
    put(&rs[0], "a", "1").await;
    // Not there at once: replication is asynchronous.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(get(&rs[1], "a").await, None, "copied before its delay");
    assert!(repl.settle(Duration::from_millis(300), Duration::from_secs(20)).await, "replication did not settle");
    assert_eq!(get(&rs[1], "a").await.as_deref(), Some("1"));
    // The copy was seen in eu-west-1's stream (its echo was consumed) and
    // was not copied back.
    assert_eq!(repl.stats().applied.load(Ordering::Relaxed), 1);
    assert_eq!(repl.stats().local_writes.load(Ordering::Relaxed), 1, "a copy was taken for a local write");
    assert_eq!(repl.in_flight().await, 0);

    // A delete replicates as a delete.
    rs[1]
        .dynamodb
        .delete_item()
        .table_name(&rs[1].table)
        .key("pk", AttributeValue::S("a".into()))
        .key("sk", AttributeValue::S("X".into()))
        .send()
        .await
        .unwrap();
    assert!(repl.settle(Duration::from_millis(300), Duration::from_secs(20)).await);
    assert_eq!(get(&rs[0], "a").await, None, "the delete did not reach us-east-1");
    repl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_of_one_item_converge_on_the_last_writer_everywhere() {
    let rs = replicas("repl-lww").await;
    let repl = Replication::start(rs.clone(), config(400));
    for round in 0..5 {
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        tokio::join!(put(&rs[0], "k", &a), put(&rs[1], "k", &b));
    }
    assert!(repl.settle(Duration::from_millis(300), Duration::from_secs(30)).await, "replication did not settle");
    let (east, west) = (everything(&rs[0]).await, everything(&rs[1]).await);
    assert_eq!(east, west, "the replicas disagree");
    assert!(east["k"].ends_with('4'), "an older write came back: {east:?}");
    repl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_region_reconciles_on_return_and_an_older_write_never_comes_back() {
    let rs = replicas("repl-cut").await;
    let repl = Replication::start(rs.clone(), config(200));
    put(&rs[0], "shared", "before").await;
    assert!(repl.settle(Duration::from_millis(200), Duration::from_secs(20)).await);

    repl.pause("eu-west-1").await;
    put(&rs[0], "shared", "east-during").await;
    put(&rs[0], "east-only", "1").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    put(&rs[1], "shared", "west-during-later").await;
    put(&rs[1], "west-only", "1").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Cut off: neither side has the other's writes.
    assert_eq!(get(&rs[1], "east-only").await, None);
    assert_eq!(get(&rs[0], "west-only").await, None);
    assert!(!repl.settle(Duration::from_millis(100), Duration::from_millis(500)).await, "copies must wait");

    repl.resume("eu-west-1").await;
    assert!(repl.settle(Duration::from_millis(300), Duration::from_secs(20)).await, "did not settle after return");
    let (east, west) = (everything(&rs[0]).await, everything(&rs[1]).await);
    assert_eq!(east, west, "the replicas disagree after reconnecting");
    assert_eq!(east["shared"], "west-during-later", "the later write must win: {east:?}");
    assert_eq!(east.len(), 3);
    assert!(repl.stats().superseded.load(Ordering::Relaxed) >= 1, "the older copy was not dropped");
    repl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_items_writes_arrive_in_order_and_every_version_is_applied() {
    let rs = replicas("repl-order").await;
    let mut c = config(200);
    c.jitter = Duration::from_millis(400);
    let repl = Replication::start(rs.clone(), c);
    for v in 0..8 {
        put(&rs[0], "k", &format!("v{v}")).await;
        put(&rs[0], &format!("other{v}"), "x").await;
    }
    assert!(repl.settle(Duration::from_millis(300), Duration::from_secs(20)).await);
    // Every version of `k` was applied in the west (its stream shows each),
    // none dropped as older: one item's copies keep their order.
    assert_eq!(repl.stats().applied.load(Ordering::Relaxed), 16);
    assert_eq!(repl.stats().superseded.load(Ordering::Relaxed), 0);
    assert_eq!(get(&rs[1], "k").await.as_deref(), Some("v7"));
    assert_eq!(everything(&rs[0]).await, everything(&rs[1]).await);
    repl.stop().await;
}
