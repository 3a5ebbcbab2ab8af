//! What a tenant can do to its own partition, against the real engines
//! (docs/security.md, "What a tenant can do to its own partition, and why
//! it cannot hurt others"): a service's writer may write anything under
//! `SERVICE#<its name>`, a consumer anything under `CONSUMER#<its id>`, and
//! neither may slow or break anyone else's discovery.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_aws::item::{encode_registration, to_sdk};
use beacon_domain::ports::{Edges, NeedsDeclarations, Registrations};
use beacon_domain::view::{Needs, Outcome};
use beacon_domain::{MAX_CLOCK_SKEW_SECONDS, Registration, Status, keys, parse_needs};
use beacon_tests::{TestPipeline, now, of_kind};
use serde_json::Value;

fn orders(id: &str, ttl: u64) -> Registration {
    Registration::new_at("orders", "1.2.0", id, &format!("https://{id}.orders.example"), Status::Healthy, ttl, now())
        .unwrap()
}

async fn put_raw(p: &TestPipeline, item: HashMap<String, Av>) {
    p.dynamodb.put_item().table_name(&p.table).set_item(Some(item)).send().await.unwrap();
}

fn item(pk: &str, sk: &str, extra: &[(&str, Av)]) -> HashMap<String, Av> {
    let mut m = HashMap::from([("pk".to_owned(), Av::S(pk.into())), ("sk".to_owned(), Av::S(sk.into()))]);
    for (k, v) in extra {
        m.insert((*k).to_owned(), v.clone());
    }
    m
}

async fn needs(p: &TestPipeline, consumer: &str, text: &str) {
    p.registry.put_needs(&Needs { consumer: consumer.into(), needs: parse_needs(text).unwrap() }, now()).await.unwrap();
}

/// The endpoints a consumer's resolved view of `orders` holds.
async fn endpoints(p: &TestPipeline, consumer: &str) -> Vec<String> {
    let Some(item) = p.resolved(consumer).await else { return Vec::new() };
    let Some(view) = item.services.get("orders") else { return Vec::new() };
    view.requirements
        .iter()
        .flat_map(|r| match &r.outcome {
            Outcome::Resolved(v) => v.endpoints.iter().map(|e| e.instance_id.clone()).collect(),
            Outcome::Unresolved(_) => Vec::new(),
        })
        .collect()
}

/// The layout before `FANOUT#` kept the fan-out's generation, edges and view
/// groups under `SERVICE#<name>`, where that service's writer could write
/// them: a string in `GENERATION` failed every change of the service (and
/// was retried like an outage), fake edges cost writes. Now nothing there is
/// read as bookkeeping.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_cannot_forge_the_fan_outs_bookkeeping_in_its_own_partition() {
    let p = TestPipeline::start("forge").await;
    let q = p.subscribe(None).await;
    needs(&p, "web", "orders").await;
    p.registry.put(&orders("i-1", 3600)).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "web resolves i-1", || async {
        endpoints(&p, "web").await == ["i-1"]
    })
    .await;

    // What `orders`' writer may write (LeadingKeys = SERVICE#orders).
    let pk = keys::service_pk("orders");
    put_raw(&p, item(&pk, keys::generation_sk(), &[("generation", Av::S("junk".into()))])).await;
    put_raw(&p, item(&pk, &keys::dependent_sk("ghost"), &[("requirements", Av::L(vec![Av::S("orders".into())]))]))
        .await;
    put_raw(&p, item(&pk, &keys::view_sk("deadbeef"), &[("view", Av::S("junk".into())), ("pending", Av::Bool(true))]))
        .await;

    // The service's changes still reach its consumers, first time.
    p.registry.put(&orders("i-2", 3600)).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "web resolves i-1 and i-2", || async {
        endpoints(&p, "web").await == ["i-1", "i-2"]
    })
    .await;
    let events = q
        .receive_until(Duration::from_secs(10), |e| of_kind(e, "registered").iter().any(|r| r["instance_id"] == "i-2"))
        .await;
    assert!(of_kind(&events, "registered").iter().any(|e| e["instance_id"] == "i-2"));
    assert_eq!(p.stats.failed_invocations.load(Ordering::Relaxed), 0, "a forged item made the fan-out retry");
    // The ghost edge never became a dependent, and the lookup reads only
    // registrations.
    assert!(p.resolved("ghost").await.is_none());
    assert!(
        p.fan_registry.dependents("orders", None, 100).await.unwrap().dependents.iter().all(|d| d.consumer == "web")
    );
    let looked_up = p.registry.instances("orders").await.unwrap();
    assert_eq!(looked_up.registrations.len(), 2);
    assert_eq!(looked_up.invalid, 0, "bookkeeping-shaped items are not registrations");
    p.stop().await;
}

/// A consumer may write its own partition, resolved item included. A
/// resolved item no write can fix (here `services` is a string, so DynamoDB
/// refuses every `SET services.orders`) is skipped and reported once: the
/// service's other consumers get their views, changes behind it are not
/// held up, and nothing is retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumers_broken_resolved_item_is_skipped_and_holds_up_no_one() {
    let p = TestPipeline::start("poison").await;
    let q = p.subscribe(None).await;
    needs(&p, "good", "orders").await;
    needs(&p, "evil", "orders").await;
    p.registry.put(&orders("i-1", 3600)).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "both resolve i-1", || async {
        endpoints(&p, "good").await == ["i-1"] && endpoints(&p, "evil").await == ["i-1"]
    })
    .await;
    // The joins can resolve i-1 before i-1's own refresh has run; its
    // event is published after that refresh, so once it is here the broken
    // item below meets exactly one refresh (i-2's).
    let events = q.receive_until(Duration::from_secs(30), |e| !of_kind(e, "registered").is_empty()).await;
    assert_eq!(of_kind(&events, "registered").len(), 1, "{events:#?}");
    // What the consumer `evil`'s policy allows (LeadingKeys = CONSUMER#evil).
    put_raw(
        &p,
        item(
            &keys::consumer_pk("evil"),
            keys::resolved_sk(),
            &[
                ("consumer", Av::S("evil".into())),
                ("needed_services", Av::L(vec![Av::S("orders".into())])),
                ("needs", Av::L(vec![Av::S("orders".into())])),
                ("revision", Av::N("1".into())),
                ("services", Av::S("junk".into())),
            ],
        ),
    )
    .await;
    let _ = q.receive_for(Duration::from_millis(500)).await;

    // A change that moves both views, then unrelated registrations behind it.
    p.registry.put(&orders("i-2", 3600)).await.unwrap();
    for i in 0..20 {
        let r = Registration::new_at(
            "other",
            "1.0.0",
            &format!("o-{i}"),
            "https://o.example",
            Status::Healthy,
            3600,
            now(),
        )
        .unwrap();
        p.registry.put(&r).await.unwrap();
    }
    let events = q
        .receive_until(Duration::from_secs(30), |e| {
            of_kind(e, "registered").iter().filter(|r| r["service"] == "other").count() >= 20
                && of_kind(e, "resolved").iter().any(|r| r["consumer"] == "good")
        })
        .await;
    assert_eq!(of_kind(&events, "registered").iter().filter(|r| r["service"] == "other").count(), 20);
    let resolved: Vec<&Value> = of_kind(&events, "resolved");
    assert!(resolved.iter().any(|r| r["consumer"] == "good"), "the other consumer got no event");
    assert!(!resolved.iter().any(|r| r["consumer"] == "evil"));
    assert_eq!(endpoints(&p, "good").await, ["i-1", "i-2"]);
    assert_eq!(p.stats.failed_invocations.load(Ordering::Relaxed), 0, "a broken item was retried like an outage");
    assert_eq!(p.bad_items.load(Ordering::Relaxed), 1, "the broken item is reported once");
    p.stop().await;
}

/// A registration is never resolvable past `updated_at + ttl_seconds`,
/// whatever `expires_at` says; the fan-out brings `expires_at` back so the
/// sweeper (and DynamoDB's TTL) delete it on time; one dated in the future
/// counts as at most the allowed skew ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_bounded_by_the_registrations_own_ttl() {
    let p = TestPipeline::start("ttlbound").await;
    let q = p.subscribe(None).await;
    let t = now();
    let mut r = orders("i-1", 10);
    r.updated_at = t;
    r.expires_at = 4_102_444_800; // the year 2100
    put_raw(&p, to_sdk(encode_registration(&r))).await;
    TestPipeline::eventually(Duration::from_secs(30), "the fan-out brings expires_at back", || async {
        p.registry.instances("orders").await.unwrap().registrations.first().is_some_and(|s| s.expires_at == t + 10)
    })
    .await;
    // Never served past its own ttl, by the same rule every reader uses.
    let stored = p.registry.instances("orders").await.unwrap().registrations.remove(0);
    assert!(!stored.is_expired(t + 9));
    assert!(stored.is_expired(t + 10));
    // The sweeper finds it due at updated_at + ttl (on the real clock: the
    // fan-out tells an expiry from a deregistration by it).
    while now() < t + 10 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (report, _) = beacon_sweeper::handle(&p.registry, now()).await.unwrap();
    assert_eq!(report.expired, 1, "{report:?}");
    let events = q.receive_until(Duration::from_secs(20), |e| !of_kind(e, "expired").is_empty()).await;
    assert_eq!(of_kind(&events, "expired").len(), 1, "{events:#?}");
    assert!(of_kind(&events, "registered").len() == 1 && of_kind(&events, "updated").is_empty());

    // Dated an hour ahead with an expiry in 2100 (a clock running fast, or
    // a writer buying time): published like any registration, and bounded
    // by the fan-out's clock: it gains at most the allowed skew.
    let seen_from = now();
    let mut future = orders("i-9", 300);
    future.updated_at = seen_from + 3_600;
    future.expires_at = 4_102_444_800;
    put_raw(&p, to_sdk(encode_registration(&future))).await;
    let events = q.receive_until(Duration::from_secs(20), |e| !of_kind(e, "registered").is_empty()).await;
    assert_eq!(of_kind(&events, "registered").len(), 1, "{events:#?}");
    TestPipeline::eventually(Duration::from_secs(30), "the fan-out bounds a future-dated expiry", || async {
        let looked_up = p.registry.instances("orders").await.unwrap();
        looked_up.registrations.iter().any(|r| r.instance_id == "i-9" && r.expires_at < 4_102_444_800)
    })
    .await;
    let stored = p.registry.instances("orders").await.unwrap().registrations.remove(0);
    let bound = stored.valid_until();
    assert!(
        (seen_from + 300..=now() + MAX_CLOCK_SKEW_SECONDS + 300).contains(&bound),
        "valid until {bound}, seen from {seen_from}"
    );
    p.stop().await;
}
