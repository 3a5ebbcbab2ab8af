//! A registry in two Regions at once, on the local stack: a pipeline per
//! Region (its own fan-out, topic and resolved views, as
//! `BEACON_REPLICA_REGION` makes them) over replicas joined by the
//! global-table replication stand-in. Each test ends with every Region's
//! resolved items equal and each Region's subscriber holding exactly one
//! event per change.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::time::Duration;

use beacon_domain::ports::{NeedsDeclarations, Registrations};
use beacon_domain::view::{Needs, ResolvedItem};
use beacon_domain::{Registration, Status, parse_needs};
use beacon_local::replication::ReplicationConfig;
use beacon_tests::regions::Regions;
use beacon_tests::{Queue, TestPipeline, now};
use serde_json::Value;

const EAST: &str = "us-east-1";
const WEST: &str = "eu-west-1";
const WAIT: Duration = Duration::from_secs(30);

fn reg(service: &str, id: &str) -> Registration {
    Registration::new_at(service, "1.0.0", id, &format!("https://{id}.{service}.example"), Status::Healthy, 600, now())
        .unwrap()
}

fn config() -> ReplicationConfig {
    ReplicationConfig {
        delay: Duration::from_millis(500),
        jitter: Duration::from_millis(200),
        seed: beacon_tests::faults::seed(),
        poll_interval: Duration::from_millis(100),
    }
}

/// The registration events a queue got, as `kind service/instance`, sorted.
fn changes(events: &[Value]) -> Vec<String> {
    let mut out: Vec<String> = events
        .iter()
        .filter(|e| e["kind"] != "resolved")
        .map(|e| format!("{} {}/{}", e["kind"].as_str().unwrap(), e["service"].as_str().unwrap(), e["instance_id"]))
        .collect();
    out.sort();
    out
}

/// What a consumer's view says, without the Region's own counters.
fn view(item: Option<ResolvedItem>) -> Value {
    let item = item.expect("a resolved item");
    serde_json::to_value(&item.services).unwrap()
}

async fn resolves(p: &TestPipeline, consumer: &str, service: &str, instances: usize) -> bool {
    p.resolved(consumer).await.is_some_and(|i| {
        let v = serde_json::to_value(&i.services).unwrap();
        v[service].to_string().matches("\"instance_id\"").count() == instances
    })
}

async fn drain(q: &Queue) -> Vec<Value> {
    q.receive_for(Duration::from_secs(3)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_one_region_is_one_event_in_each_and_every_region_resolves_it() {
    let regions = Regions::start("regions-one", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    let (east_q, west_q) = (east.subscribe(None).await, west.subscribe(None).await);

    // A consumer declares its needs in the west; the service registers in the east.
    let needs = Needs { consumer: "web".into(), needs: parse_needs("orders^1").unwrap() };
    west.registry.put_needs(&needs, now()).await.unwrap();
    east.registry.put(&reg("orders", "o-1")).await.unwrap();
    east.registry.put(&reg("orders", "o-2")).await.unwrap();

    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region} to resolve web"), || resolves(p, "web", "orders", 2)).await;
    }
    assert!(regions.settle(Duration::from_millis(500), WAIT).await, "replication did not settle");
    let (e, w) = (drain(&east_q).await, drain(&west_q).await);
    let want = vec!["registered orders/\"o-1\"".to_owned(), "registered orders/\"o-2\"".to_owned()];
    assert_eq!(changes(&e), want, "us-east-1's subscriber: {e:#?}");
    assert_eq!(changes(&w), want, "eu-west-1's subscriber: {w:#?}");
    assert_eq!(view(east.resolved("web").await), view(west.resolved("web").await), "the Regions' views differ");

    // A deregistration in the west: one event in each Region, both views follow.
    west.registry
        .delete(&beacon_domain::ports::InstanceKey {
            service: "orders".into(),
            version: "1.0.0".into(),
            instance_id: "o-1".into(),
        })
        .await
        .unwrap();
    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region} to drop o-1"), || resolves(p, "web", "orders", 1)).await;
    }
    assert!(regions.settle(Duration::from_millis(500), WAIT).await);
    let (e, w) = (drain(&east_q).await, drain(&west_q).await);
    let want = vec!["deregistered orders/\"o-1\"".to_owned()];
    assert_eq!(changes(&e), want, "us-east-1's subscriber: {e:#?}");
    assert_eq!(changes(&w), want, "eu-west-1's subscriber: {w:#?}");
    assert_eq!(view(east.resolved("web").await), view(west.resolved("web").await));
    regions.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_cut_off_and_reconnected_converges_with_one_event_per_change_in_each() {
    let regions = Regions::start("regions-cut", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    let (east_q, west_q) = (east.subscribe(None).await, west.subscribe(None).await);
    let needs = Needs { consumer: "web".into(), needs: parse_needs("orders^1,payments^1").unwrap() };
    east.registry.put_needs(&needs, now()).await.unwrap();
    assert!(regions.settle(Duration::from_millis(500), WAIT).await);

    // The west is cut off: its replication paused, writes on both sides.
    regions.replication.pause(WEST).await;
    east.registry.put(&reg("orders", "o-1")).await.unwrap();
    west.registry.put(&reg("payments", "p-1")).await.unwrap();
    TestPipeline::eventually(WAIT, "the east to resolve its own write", || resolves(east, "web", "orders", 1)).await;
    TestPipeline::eventually(WAIT, "the west to resolve its own write", || resolves(west, "web", "payments", 1)).await;
    assert!(!resolves(west, "web", "orders", 1).await, "the west saw the east while cut off");

    regions.replication.resume(WEST).await;
    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region} to converge"), || async {
            resolves(p, "web", "orders", 1).await && resolves(p, "web", "payments", 1).await
        })
        .await;
    }
    assert!(regions.settle(Duration::from_millis(500), WAIT).await);
    let (e, w) = (drain(&east_q).await, drain(&west_q).await);
    let want = vec!["registered orders/\"o-1\"".to_owned(), "registered payments/\"p-1\"".to_owned()];
    assert_eq!(changes(&e), want, "us-east-1's subscriber: {e:#?}");
    assert_eq!(changes(&w), want, "eu-west-1's subscriber: {w:#?}");
    assert_eq!(view(east.resolved("web").await), view(west.resolved("web").await), "the Regions' views differ");
    regions.stop().await;
}
