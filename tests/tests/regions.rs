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

/// What a consumer's view says, without the Region's own counters (each
/// Region's fan-out numbers its refreshes of a service itself: the
/// `generation` and the item's `revision` are per Region).
fn view(item: Option<ResolvedItem>) -> Value {
    let item = item.expect("a resolved item");
    let mut v = serde_json::to_value(&item.services).unwrap();
    for service in v.as_object_mut().unwrap().values_mut() {
        service.as_object_mut().unwrap().remove("generation");
    }
    v
}

async fn resolves(p: &TestPipeline, consumer: &str, service: &str, instances: usize) -> bool {
    p.resolved(consumer).await.is_some_and(|i| {
        let v = serde_json::to_value(&i.services).unwrap();
        v[service].to_string().matches("\"instance_id\"").count() == instances
    })
}

/// What reached a subscriber's queue by now (the Regions have settled
/// before this is called; 2 s catches a late delivery or a duplicate).
async fn drain(q: &Queue) -> Vec<Value> {
    q.receive_for(Duration::from_secs(2)).await
}

/// Declares consumer `web`'s needs (`orders^1`, …) in `p`'s Region.
async fn web_needs(p: &TestPipeline, needs: &str) {
    let needs = Needs { consumer: "web".into(), needs: parse_needs(needs).unwrap() };
    p.registry.put_needs(&needs, now()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_in_one_region_is_one_event_in_each_and_every_region_resolves_it() {
    let regions = Regions::start("regions-one", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    let (east_q, west_q) = (east.subscribe(None).await, west.subscribe(None).await);

    // A consumer declares its needs in the west; the service registers in the east.
    web_needs(west, "orders^1").await;
    east.registry.put(&reg("orders", "o-1")).await.unwrap();
    east.registry.put(&reg("orders", "o-2")).await.unwrap();

    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region} to resolve web"), || resolves(p, "web", "orders", 2)).await;
    }
    assert!(regions.settle(Duration::from_millis(500), WAIT).await, "replication did not settle");
    let (e, w) = tokio::join!(drain(&east_q), drain(&west_q));
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
    let (e, w) = tokio::join!(drain(&east_q), drain(&west_q));
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
    web_needs(east, "orders^1,payments^1").await;
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
    let (e, w) = tokio::join!(drain(&east_q), drain(&west_q));
    let want = vec!["registered orders/\"o-1\"".to_owned(), "registered payments/\"p-1\"".to_owned()];
    assert_eq!(changes(&e), want, "us-east-1's subscriber: {e:#?}");
    assert_eq!(changes(&w), want, "eu-west-1's subscriber: {w:#?}");
    let (e, w) = (view(east.resolved("web").await), view(west.resolved("web").await));
    assert_eq!(e, w, "the Regions' views differ:\n{e:#}\n{w:#}");
    regions.stop().await;
}

/// `id` of `service`, due to expire `in_secs` from now (the least ttl is
/// 10 s, so its heartbeat is dated back).
fn expiring(service: &str, id: &str, in_secs: i64) -> Registration {
    let at = now() - 10 + in_secs;
    Registration::new_at(service, "1.0.0", id, &format!("https://{id}.{service}.example"), Status::Healthy, 10, at)
        .unwrap()
}

/// Every event a queue got, as `kind service/instance`, in order.
fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] != "resolved")
        .map(|e| format!("{} {}/{}", e["kind"].as_str().unwrap(), e["service"].as_str().unwrap(), e["instance_id"]))
        .collect()
}

async fn registrations(p: &TestPipeline, service: &str) -> Vec<String> {
    let mut ids: Vec<String> = p
        .registry
        .instances(service)
        .await
        .unwrap()
        .registrations
        .iter()
        .map(|r| format!("{}@{}", r.instance_id, r.updated_at))
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_sweeping_one_expiry_publish_it_once_in_each() {
    let regions = Regions::start("regions-expiry", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    let (east_q, west_q) = (east.subscribe(None).await, west.subscribe(None).await);
    east.registry.put(&expiring("orders", "o-1", 3)).await.unwrap();
    east.registry.put(&reg("orders", "o-2")).await.unwrap();
    assert!(regions.settle(Duration::from_millis(300), WAIT).await);
    tokio::time::sleep(Duration::from_secs(4)).await;

    // Both Regions' sweepers find o-1 due at once, each in its replica.
    let (a, b) = tokio::join!(
        beacon_domain::sweep::sweep(&east.registry, now()),
        beacon_domain::sweep::sweep(&west.registry, now())
    );
    assert_eq!((a.unwrap().due, b.unwrap().due), (1, 1), "each Region's sweeper sees o-1 due");
    assert!(regions.settle(Duration::from_millis(500), WAIT).await);
    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region} to drop o-1"), || async {
            registrations(p, "orders").await.len() == 1
        })
        .await;
    }
    let (e, w) = tokio::join!(drain(&east_q), drain(&west_q));
    let want = ["registered orders/\"o-1\"", "registered orders/\"o-2\"", "expired orders/\"o-1\""];
    for (events, region) in [(&e, EAST), (&w, WEST)] {
        let mut got = kinds(events);
        got.sort();
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "{region}'s subscriber: {events:#?}");
    }
    regions.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_region_keeps_no_dead_instance_alive_elsewhere_and_hears_of_it_once_back() {
    let regions = Regions::start("regions-down", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    let (east_q, west_q) = (east.subscribe(None).await, west.subscribe(None).await);
    web_needs(east, "orders^1").await;
    west.registry.put(&expiring("orders", "o-1", 3)).await.unwrap();
    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region} to resolve o-1"), || resolves(p, "web", "orders", 1)).await;
    }
    assert!(regions.settle(Duration::from_millis(300), WAIT).await);

    // The west goes down (no replication, no sweeper) before o-1 expires.
    // o-1 was written in the west, so the east sweeps it only once the
    // foreign grace has passed (1 s here, minutes in AWS).
    regions.replication.pause(WEST).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let swept = beacon_domain::sweep::sweep(&east.registry.clone().with_foreign_grace(1), now()).await.unwrap();
    assert_eq!((swept.due, swept.expired), (1, 1));
    TestPipeline::eventually(WAIT, "the east to drop o-1", || resolves(east, "web", "orders", 0)).await;
    assert_eq!(registrations(west, "orders").await.len(), 1, "the west, cut off, still holds it");

    // Back: the delete reaches the west; its sweeper finds nothing more.
    regions.replication.resume(WEST).await;
    TestPipeline::eventually(WAIT, "the west to drop o-1", || resolves(west, "web", "orders", 0)).await;
    assert!(regions.settle(Duration::from_millis(500), WAIT).await);
    assert_eq!(beacon_domain::sweep::sweep(&west.registry, now()).await.unwrap().due, 0);
    let (e, w) = tokio::join!(drain(&east_q), drain(&west_q));
    for (events, region) in [(&e, EAST), (&w, WEST)] {
        assert_eq!(
            kinds(events),
            ["registered orders/\"o-1\"", "expired orders/\"o-1\""],
            "{region}'s subscriber: {events:#?}"
        );
    }
    assert_eq!(view(east.resolved("web").await), view(west.resolved("web").await));
    regions.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_in_one_region_racing_an_expiry_in_another_converges_and_each_region_ends_on_the_outcome() {
    // One round in the suite (CI's time); BEACON_REGION_RACE_ROUNDS runs more,
    // each a little later after the expiry.
    let rounds = std::env::var("BEACON_REGION_RACE_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(1u64);
    for round in 0..rounds {
        let regions = Regions::start("regions-race", &[EAST, WEST], config()).await;
        let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
        let (east_q, west_q) = (east.subscribe(None).await, west.subscribe(None).await);
        web_needs(west, "orders^1").await;
        east.registry.put(&expiring("orders", "o-1", 2)).await.unwrap();
        assert!(regions.settle(Duration::from_millis(300), WAIT).await);
        tokio::time::sleep(Duration::from_millis(2500 + 300 * round)).await;

        // The west heartbeats o-1 as the east's sweeper deletes it.
        let heartbeat = reg("orders", "o-1");
        let (swept, put) =
            tokio::join!(beacon_domain::sweep::sweep(&east.registry, now()), west.registry.put(&heartbeat));
        swept.unwrap();
        put.unwrap();
        assert!(regions.settle(Duration::from_millis(800), WAIT).await, "round {round}: did not settle");
        // Whatever won, both replicas hold the same, and both views say it.
        let (e_regs, w_regs) = (registrations(east, "orders").await, registrations(west, "orders").await);
        assert_eq!(e_regs, w_regs, "round {round}: the replicas differ");
        let alive = e_regs.len();
        for (p, region) in [(east, EAST), (west, WEST)] {
            TestPipeline::eventually(WAIT, &format!("round {round}: {region}'s view to match its replica"), || {
                resolves(p, "web", "orders", alive)
            })
            .await;
        }
        // Each Region's subscriber ends on the converged state, and no
        // event came twice.
        let (e, w) = tokio::join!(drain(&east_q), drain(&west_q));
        for (events, region) in [(e, EAST), (w, WEST)] {
            let told = kinds(&events);
            let last = told.last().cloned().unwrap_or_default();
            if alive == 1 {
                assert!(
                    !last.starts_with("expired"),
                    "round {round}: {region} ends on expired but o-1 lives: {told:?}"
                );
            } else {
                // Where the heartbeat was written, the delete that beat it
                // removed a live item: that Region says `deregistered`
                // (gone before its time), the other `expired`. Both end
                // o-1 (docs/reliability.md, "Every Region at once").
                assert!(
                    last.starts_with("expired") || last.starts_with("deregistered"),
                    "round {round}: {region} never said o-1 is gone: {told:?}"
                );
            }
            let ids: std::collections::HashSet<&str> = events.iter().filter_map(|e| e["event_id"].as_str()).collect();
            assert_eq!(ids.len(), events.len(), "round {round}: {region} got an event twice: {events:#?}");
        }
        regions.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_and_changes_racing_across_regions_end_in_the_same_views_everywhere() {
    let regions = Regions::start("regions-needs", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    east.registry.put(&reg("orders", "o-1")).await.unwrap();
    web_needs(west, "orders^1").await;
    assert!(regions.settle(Duration::from_millis(300), WAIT).await);

    // At once: the consumer's needs change in both Regions (the two
    // declarations conflict), while the services they name change in each.
    let in_east = Needs { consumer: "web".into(), needs: parse_needs("orders^2,payments^1").unwrap() };
    let in_west = Needs { consumer: "web".into(), needs: parse_needs("orders>=1,payments^1").unwrap() };
    let orders_two =
        Registration::new_at("orders", "2.0.0", "o-2", "https://o-2.orders.example", Status::Healthy, 600, now())
            .unwrap();
    let payments = reg("payments", "p-1");
    let (a, b, c, d) = tokio::join!(
        east.registry.put_needs(&in_east, now()),
        west.registry.put_needs(&in_west, now()),
        west.registry.put(&orders_two),
        east.registry.put(&payments),
    );
    for r in [a, b, c, d] {
        r.unwrap();
    }
    assert!(regions.settle(Duration::from_millis(800), WAIT).await, "replication did not settle");

    // One declaration won everywhere; each Region's view is the resolution
    // of its (converged) replica for it.
    let (e_needs, w_needs) = (east.registry.needs("web").await.unwrap(), west.registry.needs("web").await.unwrap());
    assert_eq!(e_needs, w_needs, "the replicas hold different needs");
    let won = e_needs.unwrap();
    assert!(
        [
            in_east.needs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            in_west.needs.iter().map(ToString::to_string).collect()
        ]
        .contains(&won),
        "neither declaration won: {won:?}"
    );
    let declared = std::collections::BTreeMap::from([(
        "web".to_owned(),
        Needs { consumer: "web".into(), needs: parse_needs(&won.join(",")).unwrap() },
    )]);
    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region}'s view to be the table's resolution"), || async {
            p.first_difference(&declared).await.is_none()
        })
        .await;
    }
    let (e, w) = (view(east.resolved("web").await), view(west.resolved("web").await));
    assert_eq!(e, w, "the Regions' views differ:\n{e:#}\n{w:#}");
    regions.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_cut_off_never_sweeps_away_a_registration_renewed_elsewhere() {
    // The race the multi-Region soak found: the cut-off Region still holds
    // the expired version; were it to delete it, the delete would be the
    // last write and remove the re-registration everywhere on reconnection.
    let regions = Regions::start("regions-partition", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    web_needs(west, "orders^1").await;
    east.registry.put(&expiring("orders", "o-1", 3)).await.unwrap();
    assert!(regions.settle(Duration::from_millis(300), WAIT).await);
    regions.replication.pause(WEST).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The east expires it and the instance comes back there.
    assert_eq!(beacon_domain::sweep::sweep(&east.registry, now()).await.unwrap().expired, 1);
    east.registry.put(&reg("orders", "o-1")).await.unwrap();
    // The west, cut off, sees it expired but written in the east: not its
    // to sweep within the grace.
    let west_sweep = beacon_domain::sweep::sweep(&west.registry, now()).await.unwrap();
    assert_eq!((west_sweep.due, west_sweep.expired), (1, 0), "the cut-off Region swept another Region's registration");
    // A second sweep does not even try again (one refused delete per expiry).
    let again = beacon_domain::sweep::sweep(&west.registry, now()).await.unwrap();
    assert_eq!(again.due, 0, "the refused key was tried again within its grace");

    regions.replication.resume(WEST).await;
    assert!(regions.settle(Duration::from_millis(500), WAIT).await);
    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region} to resolve the renewed o-1"), || {
            resolves(p, "web", "orders", 1)
        })
        .await;
        assert_eq!(registrations(p, "orders").await.len(), 1, "{region} lost the renewed registration");
    }
    regions.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_registration_written_in_two_regions_at_once_converges_on_one_endpoint_everywhere() {
    let regions = Regions::start("regions-conflict", &[EAST, WEST], config()).await;
    let (east, west) = (&regions.pipelines[0], &regions.pipelines[1]);
    let (east_q, west_q) = (east.subscribe(None).await, west.subscribe(None).await);
    web_needs(east, "orders^1").await;
    assert!(regions.settle(Duration::from_millis(300), WAIT).await);
    // The same instance, registered in both Regions at once with different endpoints.
    let at = |url: &str| Registration::new_at("orders", "1.0.0", "o-1", url, Status::Healthy, 600, now()).unwrap();
    let (a, b) = (at("https://east.orders.example"), at("https://west.orders.example"));
    let (x, y) = tokio::join!(east.registry.put(&a), west.registry.put(&b));
    x.unwrap();
    y.unwrap();
    assert!(regions.settle(Duration::from_millis(800), WAIT).await);
    // One of them won, in both replicas, and both Regions' views show it.
    let (e, w) = (
        east.registry.instances("orders").await.unwrap().registrations,
        west.registry.instances("orders").await.unwrap().registrations,
    );
    assert_eq!((e.len(), w.len()), (1, 1));
    assert_eq!(e[0].endpoint_url, w[0].endpoint_url, "the replicas disagree");
    let won = e[0].endpoint_url.clone();
    for (p, region) in [(east, EAST), (west, WEST)] {
        TestPipeline::eventually(WAIT, &format!("{region}'s view to show the winner"), || async {
            p.resolved("web").await.is_some_and(|i| serde_json::to_string(&i.services).unwrap().contains(&won))
        })
        .await;
    }
    assert_eq!(view(east.resolved("web").await), view(west.resolved("web").await));
    // Each subscriber's last word on o-1 carries the winner.
    let (ev_e, ev_w) = tokio::join!(drain(&east_q), drain(&west_q));
    for (events, region) in [(ev_e, EAST), (ev_w, WEST)] {
        let last = events.iter().rfind(|e| e["kind"] != "resolved").cloned().unwrap_or_default();
        assert_eq!(last["after"]["endpoint_url"].as_str(), Some(won.as_str()), "{region}: {events:#?}");
    }
    regions.stop().await;
}
