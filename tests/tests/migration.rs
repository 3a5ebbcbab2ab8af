//! The move of the fan-out's bookkeeping out of the tenant's partition
//! (docs/architecture.md, "Where the fan-out keeps its state"), against the
//! real engines. A table is brought to the layout before — generation,
//! edges and view groups under `SERVICE#<name>` — by moving the items a
//! running pipeline wrote back where that layout kept them; then changes
//! and needs changes flow through the new code, and no view or event is
//! lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon::keys;
use beacon::ports::Catalog;
use beacon::view::{Needs, Outcome};
use beacon::{Registration, Status, parse_needs};
use beacon_tests::{TestPipeline, now, of_kind};

async fn needs(p: &TestPipeline, consumer: &str, text: &str) {
    p.registry.put_needs(&Needs { consumer: consumer.into(), needs: parse_needs(text).unwrap() }, now()).await.unwrap();
}

fn instance(service: &str, id: &str) -> Registration {
    Registration::new_at(service, "1.0.0", id, &format!("https://{id}.{service}.example"), Status::Healthy, 3600, now())
        .unwrap()
}

/// The instance ids a consumer's view of `service` resolves to.
async fn endpoints(p: &TestPipeline, consumer: &str, service: &str) -> Vec<String> {
    let Some(item) = p.resolved(consumer).await else { return Vec::new() };
    let Some(view) = item.services.get(service) else { return Vec::new() };
    view.requirements
        .iter()
        .flat_map(|r| match &r.outcome {
            Outcome::Resolved(v) => v.endpoints.iter().map(|e| e.instance_id.clone()).collect(),
            Outcome::Unresolved(_) => Vec::new(),
        })
        .collect()
}

async fn partition(p: &TestPipeline, pk: &str) -> Vec<HashMap<String, Av>> {
    p.dynamodb
        .query()
        .table_name(&p.table)
        .consistent_read(true)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", Av::S(pk.into()))
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default()
}

/// Puts `service`'s bookkeeping back where the layout before kept it, as
/// that layout wrote it (no `layout` mark); `generation` replaces the
/// stored count when given. Returns the count the layout before held.
async fn to_legacy_layout(p: &TestPipeline, service: &str, generation: Option<Av>) -> u64 {
    let mut count = 0;
    for mut item in partition(p, &keys::fanout_pk(service)).await {
        let sk = item["sk"].as_s().unwrap().clone();
        p.dynamodb
            .delete_item()
            .table_name(&p.table)
            .set_key(Some(key(&keys::fanout_pk(service), &sk)))
            .send()
            .await
            .unwrap();
        item.insert("pk".into(), Av::S(keys::service_pk(service)));
        if sk == keys::generation_sk() {
            item.remove(keys::LAYOUT);
            count = item["generation"].as_n().unwrap().parse().unwrap();
            if let Some(g) = &generation {
                item.insert("generation".into(), g.clone());
            }
        }
        p.dynamodb.put_item().table_name(&p.table).set_item(Some(item)).send().await.unwrap();
    }
    assert!(count > 0, "{service} had no generation to move back");
    count
}

fn key(pk: &str, sk: &str) -> HashMap<String, Av> {
    HashMap::from([("pk".to_owned(), Av::S(pk.into())), ("sk".to_owned(), Av::S(sk.into()))])
}

async fn generation_item(p: &TestPipeline, service: &str) -> HashMap<String, Av> {
    p.dynamodb
        .get_item()
        .table_name(&p.table)
        .consistent_read(true)
        .set_key(Some(key(&keys::fanout_pk(service), keys::generation_sk())))
        .send()
        .await
        .unwrap()
        .item
        .expect("the moved generation")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_table_in_the_layout_before_is_moved_without_losing_a_view_or_an_event() {
    let mut p = TestPipeline::start("migrate").await;
    let q = p.subscribe(None).await;
    // Two view groups on auth, one consumer of pay.
    for c in 0..5 {
        needs(&p, &format!("c{c}"), if c % 2 == 0 { "auth^1" } else { "auth" }).await;
    }
    needs(&p, "d0", "pay").await;
    p.registry.put(&instance("auth", "a-1")).await.unwrap();
    p.registry.put(&instance("pay", "p-1")).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "every view resolved", || async {
        for c in 0..5 {
            if endpoints(&p, &format!("c{c}"), "auth").await != ["a-1"] {
                return false;
            }
        }
        endpoints(&p, "d0", "pay").await == ["p-1"]
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = q.receive_for(Duration::from_millis(500)).await;

    // The table as the layout before would have left it: auth's count as
    // it was, pay's made unreadable (its writer could put anything there).
    p.stop_poller().await;
    let auth_before = to_legacy_layout(&p, "auth", None).await;
    to_legacy_layout(&p, "pay", Some(Av::S("junk".into()))).await;
    assert!(partition(&p, &keys::fanout_pk("auth")).await.is_empty());

    // While the old layout stands: a consumer joins, one leaves, and both
    // services change.
    needs(&p, "c9", "auth^1").await;
    p.registry.delete_needs("c4").await.unwrap();
    p.registry.put(&instance("auth", "a-2")).await.unwrap();
    p.registry.put(&instance("pay", "p-2")).await.unwrap();
    p.start_poller();

    TestPipeline::eventually(Duration::from_secs(45), "every view has both instances", || async {
        for c in [0, 1, 2, 3, 9] {
            if endpoints(&p, &format!("c{c}"), "auth").await != ["a-1", "a-2"] {
                return false;
            }
        }
        endpoints(&p, "d0", "pay").await == ["p-1", "p-2"]
    })
    .await;
    let events = q
        .receive_until(Duration::from_secs(20), |e| {
            let resolved = of_kind(e, "resolved");
            ["c0", "c1", "c2", "c3", "c9", "d0"].iter().all(|c| resolved.iter().any(|r| r["consumer"] == *c))
        })
        .await;
    let resolved = of_kind(&events, "resolved");
    for c in ["c0", "c1", "c2", "c3", "c9", "d0"] {
        assert!(resolved.iter().any(|r| r["consumer"] == c), "{c} got no resolved event: {resolved:#?}");
    }
    for id in ["a-2", "p-2"] {
        assert_eq!(of_kind(&events, "registered").iter().filter(|e| e["instance_id"] == id).count(), 1, "{id}");
    }
    assert!(p.resolved("c4").await.is_none(), "the consumer that left has a view again");

    // Moved: the counts continue above the old ones, the old items are
    // gone, and the tenants' partitions hold registrations only.
    let auth = generation_item(&p, "auth").await;
    assert_eq!(auth[keys::LAYOUT].as_n().unwrap(), &keys::LAYOUT_FANOUT_PARTITION.to_string());
    assert!(auth["generation"].as_n().unwrap().parse::<u64>().unwrap() > auth_before);
    let pay: u64 = generation_item(&p, "pay").await["generation"].as_n().unwrap().parse().unwrap();
    assert!(pay > 1 << 40, "an unreadable old count starts above any honest one: {pay}");
    for service in ["auth", "pay"] {
        let left: Vec<String> =
            partition(&p, &keys::service_pk(service)).await.iter().map(|i| i["sk"].as_s().unwrap().clone()).collect();
        assert!(left.iter().all(|sk| keys::is_instance_sk(sk)), "{service}: {left:?}");
    }
    assert_eq!(p.stats.failed_invocations.load(Ordering::Relaxed), 0);
    assert_eq!(p.bad_items.load(Ordering::Relaxed), 0);

    // And it keeps working in the new layout.
    p.registry.delete(&beacon::ports::InstanceKey::new("auth", "1.0.0", "a-1")).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "c0 follows a-1's removal", || async {
        endpoints(&p, "c0", "auth").await == ["a-2"]
    })
    .await;
    p.stop().await;
}
