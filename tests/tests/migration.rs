//! `beacon upgrade` (docs/deploy.md, "Upgrading a registry from before
//! `FANOUT#`"), against the real engines. A table is brought to the layout
//! before — generation, edges and view groups under `SERVICE#<name>` — by
//! moving the items a running pipeline wrote back where that layout kept
//! them, and a service's writer forges what it can there (a count at
//! `u64::MAX`, an edge to a consumer that needs nothing of it, another
//! consumer's requirements changed). The upgrade rebuilds the edges from
//! the consumers' needs only; then changes and needs changes flow through
//! the new code, and no view or event is lost.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_domain::keys;
use beacon_domain::ports::{NeedsDeclarations, Registrations};
use beacon_domain::view::{Needs, Outcome};
use beacon_domain::{Registration, Status, parse_needs};
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
        // The counts as the layout before had them: below the floor the
        // new layout starts from (this pipeline began above it).
        if let Some(Av::N(g)) = item.get("generation") {
            let old = g.parse::<u64>().unwrap() - FLOOR;
            item.insert("generation".into(), Av::N(old.to_string()));
        }
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
    // And so the consumers' views of it.
    let resolved = p.dynamodb.scan().table_name(&p.table).send().await.unwrap().items.unwrap_or_default();
    for item in resolved.iter().filter(|i| i["sk"].as_s().unwrap() == keys::resolved_sk()) {
        let Some(Av::M(view)) = item["services"].as_m().unwrap().get(service) else { continue };
        let old = view["generation"].as_n().unwrap().parse::<u64>().unwrap() - FLOOR;
        p.dynamodb
            .update_item()
            .table_name(&p.table)
            .set_key(Some(key(item["pk"].as_s().unwrap(), keys::resolved_sk())))
            .update_expression("SET services.#s.generation = :g")
            .expression_attribute_names("#s", service)
            .expression_attribute_values(":g", Av::N(old.to_string()))
            .send()
            .await
            .unwrap();
    }
    count
}

/// Where the new layout starts counting.
const FLOOR: u64 = 1 << 40;

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
async fn an_upgraded_table_loses_no_view_and_trusts_nothing_in_the_tenants_partitions() {
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

    // The table as the layout before would have left it, and what the
    // services' writers could have put there: pay's count at the top of
    // u64 (any bump after would overflow), an edge from auth to a consumer
    // that never declared it, c0's requirements on auth changed.
    p.stop_poller().await;
    to_legacy_layout(&p, "auth", None).await;
    to_legacy_layout(&p, "pay", Some(Av::N(u64::MAX.to_string()))).await;
    let forged = |sk: String, requirements: &str| {
        HashMap::from([
            ("pk".to_owned(), Av::S(keys::service_pk("auth"))),
            ("sk".to_owned(), Av::S(sk)),
            ("requirements".to_owned(), Av::L(vec![Av::S(requirements.into())])),
        ])
    };
    for item in [forged(keys::dependent_sk("victim"), "auth"), forged(keys::dependent_sk("c0"), "auth==9.9.9")] {
        p.dynamodb.put_item().table_name(&p.table).set_item(Some(item)).send().await.unwrap();
    }
    assert!(partition(&p, &keys::fanout_pk("auth")).await.is_empty());

    // Before the deploy: the edges, from the consumers' needs alone.
    let report = p.registry.upgrade(false).await.unwrap();
    assert_eq!((report.consumers, report.edges_written, report.unreadable_needs), (6, 6, 0), "{report:?}");
    assert!(report.old_items > 0, "{report:?}");
    let edges: Vec<(String, Vec<String>)> = partition(&p, &keys::fanout_pk("auth"))
        .await
        .iter()
        .map(|i| {
            let requirements = i["requirements"].as_l().unwrap().iter().map(|r| r.as_s().unwrap().clone()).collect();
            (i["consumer"].as_s().unwrap().clone(), requirements)
        })
        .collect();
    let want: Vec<(String, Vec<String>)> = (0..5)
        .map(|c| (format!("c{c}"), vec![if c % 2 == 0 { "auth^1".to_owned() } else { "auth".to_owned() }]))
        .collect();
    assert_eq!(edges, want, "edges come from NEEDS only");

    // While the deploy goes on: a consumer joins, one leaves, and both
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
    assert!(p.resolved("victim").await.is_none(), "a forged edge reached a consumer");

    // Both counts start at the floor, whatever the old ones said.
    for service in ["auth", "pay"] {
        let item = generation_item(&p, service).await;
        assert_eq!(item[keys::LAYOUT].as_n().unwrap(), &keys::LAYOUT_FANOUT_PARTITION.to_string());
        let g: u64 = item["generation"].as_n().unwrap().parse().unwrap();
        assert!((1 << 40..1 << 41).contains(&g), "{service}: {g}");
    }
    assert_eq!(p.stats.failed_invocations.load(Ordering::Relaxed), 0);
    assert_eq!(p.bad_items.load(Ordering::Relaxed), 0);

    // After the deploy: an edge the new fan-out missed (here: deleted, and
    // its group dropped by a change since) is rebuilt, and the service is
    // regrouped at its next change; the old items go.
    p.dynamodb
        .delete_item()
        .table_name(&p.table)
        .set_key(Some(key(&keys::fanout_pk("pay"), &keys::dependent_sk("d0"))))
        .send()
        .await
        .unwrap();
    p.registry.put(&instance("pay", "p-3")).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "pay's empty group dropped", || async {
        let items = partition(&p, &keys::fanout_pk("pay")).await;
        items.iter().all(|i| !i["sk"].as_s().unwrap().starts_with(keys::view_sk_prefix()))
    })
    .await;
    assert_eq!(endpoints(&p, "d0", "pay").await, ["p-1", "p-2"], "d0 has no edge, so no refresh");
    let report = p.registry.upgrade(true).await.unwrap();
    assert_eq!(report.edges_written, 1, "{report:?}");
    assert!(report.services_regrouped.contains("pay"), "{report:?}");
    assert_eq!(report.old_items_deleted, report.old_items);
    for service in ["auth", "pay"] {
        let left: Vec<String> =
            partition(&p, &keys::service_pk(service)).await.iter().map(|i| i["sk"].as_s().unwrap().clone()).collect();
        assert!(left.iter().all(|sk| keys::is_instance_sk(sk)), "{service}: {left:?}");
    }
    p.registry.put(&instance("pay", "p-4")).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "d0 follows pay again", || async {
        endpoints(&p, "d0", "pay").await == ["p-1", "p-2", "p-3", "p-4"]
    })
    .await;

    // And auth keeps working in the new layout.
    p.registry.delete(&beacon_domain::ports::InstanceKey::new("auth", "1.0.0", "a-1")).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(30), "c0 follows a-1's removal", || async {
        endpoints(&p, "c0", "auth").await == ["a-2"]
    })
    .await;
    p.stop().await;
}
