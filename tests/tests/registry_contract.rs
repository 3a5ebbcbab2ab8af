//! One contract for the fan-out's `Registry` (and the `Catalog` beside it),
//! run against both implementations: the DynamoDB adapter on DynamoDB Local,
//! and the in-memory table the fan-out's property test uses
//! (`beacon_domain::memory::MemoryCatalog`). The same cases, the same expected
//! outcomes, conditional-write races included, so the in-memory tests
//! prove something about the real adapter.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_aws::DynamoTable;
use beacon_domain::change::ShardRepair;
use beacon_domain::keys;
use beacon_domain::memory::MemoryCatalog;
use beacon_domain::ports::{Catalog, FanOutStore, InstanceKey, ViewWrite};
use beacon_domain::view::{RequirementView, ServiceView, ViewGroup, group_id};
use beacon_domain::{Registration, Status};
use beacon_local::pipeline::{self, Clients, Names};
use beacon_tests::{sdk_config, unique};

const NOW: i64 = 1_800_000_000;

fn view(generation: u64, tag: &str) -> ServiceView {
    ServiceView::new(
        generation,
        vec![RequirementView {
            requirement: format!("orders=={tag}"),
            outcome: beacon_domain::view::Outcome::from(beacon_domain::resolve(
                &beacon_domain::Requirement::parse("orders").unwrap(),
                &[],
                NOW,
            )),
        }],
    )
}

fn group(generation: u64, tag: &str) -> ViewGroup {
    let requirements = vec!["orders".to_owned()];
    ViewGroup { id: group_id(&requirements), requirements, view: view(generation, tag), pending: true }
}

fn instance(id: &str) -> Registration {
    Registration::new_at("orders", "1.0.0", id, "https://o.example", Status::Healthy, 300, NOW).unwrap()
}

/// The contract. Every assertion names its case, so a failure says which
/// implementation broke which rule.
async fn contract<R: FanOutStore + Catalog>(r: &R, name: &str) {
    let at = |case: &str| format!("{name}: {case}");

    // Generations: one more each bump; a new service starts ungrouped,
    // at 1 or (DynamoDB, where a table may hold views from the layout
    // before) above 2^40. `b + n` is the n-th bump.
    let g1 = r.bump_generation("orders").await.unwrap();
    assert!(g1.value == 1 || g1.value == (1 << 40) + 1, "{}: {}", at("first bump"), g1.value);
    assert!(!g1.grouped, "{}", at("a new service is ungrouped"));
    let b = g1.value - 1;
    let g2 = r.bump_generation("orders").await.unwrap();
    assert_eq!(g2.value, b + 2, "{}", at("second bump"));

    // Claims only at the current generation (a newer refresh owns it).
    assert!(!r.claim_group("orders", &group(b + 1, "a")).await.unwrap(), "{}", at("claim at an old generation"));
    assert!(r.claim_group("orders", &group(b + 2, "a")).await.unwrap(), "{}", at("claim at the current generation"));
    let state = r.read_state("orders").await.unwrap();
    assert_eq!(state.groups.len(), 1, "{}", at("the claimed group is read"));
    assert!(state.groups[0].pending, "{}", at("a claim is pending"));
    assert!(!r.settle_group("orders", &group(b + 2, "a").id, b + 1).await.unwrap(), "{}", at("settle another claim"));
    assert!(r.settle_group("orders", &group(b + 2, "a").id, b + 2).await.unwrap(), "{}", at("settle its claim"));
    assert!(!r.read_state("orders").await.unwrap().groups[0].pending, "{}", at("settled"));
    assert!(!r.settle_group("orders", "no-such-group", b + 2).await.unwrap(), "{}", at("settle a missing group"));
    assert!(!r.mark_grouped("orders", b + 1).await.unwrap(), "{}", at("mark at an old generation"));
    assert!(r.mark_grouped("orders", b + 2).await.unwrap(), "{}", at("mark at the current generation"));
    assert!(r.bump_generation("orders").await.unwrap().grouped, "{}", at("the mark stays"));
    assert!(!r.drop_group("orders", &group(b + 2, "a").id, b + 2).await.unwrap(), "{}", at("drop after a newer bump"));
    assert!(
        r.drop_group("orders", &group(b + 2, "a").id, b + 3).await.unwrap(),
        "{}",
        at("drop at the current generation")
    );
    assert!(r.read_state("orders").await.unwrap().groups.is_empty(), "{}", at("dropped"));

    // Edges: read in consumer order, paged; never by read_state.
    for c in ["c3", "c1", "c2"] {
        r.put_edge("orders", c, &["orders".to_owned()]).await.unwrap();
    }
    let page = r.dependents("orders", None, 2).await.unwrap();
    let names: Vec<&str> = page.dependents.iter().map(|d| d.consumer.as_str()).collect();
    assert_eq!(names, ["c1", "c2"], "{}", at("first page of edges"));
    assert_eq!(page.next.as_deref(), Some("c2"), "{}", at("a full page continues"));
    let page = r.dependents("orders", Some("c2"), 2).await.unwrap();
    assert_eq!(page.dependents.len(), 1, "{}", at("last page"));
    assert_eq!(page.next, None, "{}", at("a short page ends"));
    r.delete_edge("orders", "c2").await.unwrap();
    assert_eq!(r.read_service("orders").await.unwrap().dependents.len(), 2, "{}", at("read_service reads edges"));
    assert!(r.read_state("orders").await.unwrap().dependents.is_empty(), "{}", at("read_state reads no edge"));

    // Registrations: a service's own only.
    r.put(&instance("i-1")).await.unwrap();
    let mut other = instance("i-1");
    other.service = "payments".into();
    r.put(&other).await.unwrap();
    let state = r.read_state("orders").await.unwrap();
    assert_eq!(state.instances.len(), 1, "{}", at("a service's registrations"));
    assert_eq!(r.instances("orders").await.unwrap().registrations.len(), 1, "{}", at("the catalog's lookup"));

    // Views: only while needed; newer generations win; same view moves
    // only the generation; a change id bumps the revision.
    assert_eq!(
        r.write_view("web", "orders", &view(b + 3, "a"), None).await.unwrap(),
        ViewWrite::NotNeeded,
        "{}",
        at("no item")
    );
    r.set_needs_header("web", &["orders".into()], &["orders".into()], &[]).await.unwrap();
    let ViewWrite::Changed(item) = r.write_view("web", "orders", &view(b + 3, "a"), Some("e1")).await.unwrap() else {
        panic!("{}", at("a first view is a change"))
    };
    assert_eq!((item.revision, item.last_change_id.as_deref()), (1, Some("e1")), "{}", at("the revision moved"));
    assert_eq!(
        r.write_view("web", "orders", &view(b + 2, "b"), Some("e0")).await.unwrap(),
        ViewWrite::Stale,
        "{}",
        at("older")
    );
    assert_eq!(
        r.write_view("web", "orders", &view(b + 3, "b"), Some("e0")).await.unwrap(),
        ViewWrite::Stale,
        "{}",
        at("equal")
    );
    let ViewWrite::Unchanged(item) = r.write_view("web", "orders", &view(b + 4, "a"), Some("e2")).await.unwrap() else {
        panic!("{}", at("the same view, newer, is unchanged"))
    };
    assert_eq!((item.revision, item.services["orders"].generation), (1, b + 4), "{}", at("only the generation moved"));
    let ViewWrite::Changed(item) = r.write_view("web", "orders", &view(b + 5, "b"), None).await.unwrap() else {
        panic!("{}", at("a newer, different view is a change"))
    };
    assert_eq!(item.revision, 1, "{}", at("no change id, no revision"));
    assert_eq!(
        r.write_view("web", "payments", &view(b + 9, "a"), None).await.unwrap(),
        ViewWrite::NotNeeded,
        "{}",
        at("not needed")
    );
    let item = r.set_needs_header("web", &["payments".into()], &["payments".into()], &["orders".into()]).await.unwrap();
    assert!(item.services.is_empty(), "{}", at("a dropped service's view goes"));
    assert_eq!(
        r.write_view("web", "orders", &view(b + 6, "a"), None).await.unwrap(),
        ViewWrite::NotNeeded,
        "{}",
        at("dropped")
    );
    assert_eq!(r.bump_revision("web", "e3").await.unwrap().revision, 2, "{}", at("bump"));
    r.delete_resolved("web").await.unwrap();
    assert!(r.get_resolved("web").await.unwrap().is_none(), "{}", at("deleted"));
    assert!(r.bump_revision("web", "e4").await.is_err(), "{}", at("bump a missing item"));

    // Expiry repair: only over the expires_at the record saw.
    let mut hostile = instance("i-2");
    hostile.expires_at = 4_102_444_800;
    r.put(&hostile).await.unwrap();
    let (pk, sk) = (keys::service_pk("orders"), keys::instance_sk("1.0.0", "i-2"));
    let repair = |seen: i64| ShardRepair {
        pk: pk.clone(),
        sk: sk.clone(),
        shard: keys::expiry_shard(&pk, &sk),
        expires_at: seen,
        valid_until: NOW + 300,
    };
    assert!(!r.repair_expiry_shard(&repair(NOW)).await.unwrap(), "{}", at("repair over another expires_at"));
    assert!(r.repair_expiry_shard(&repair(4_102_444_800)).await.unwrap(), "{}", at("repair"));
    let key = InstanceKey::new("orders", "1.0.0", "i-2");
    let stored = r.instances("orders").await.unwrap().registrations.into_iter().find(|x| InstanceKey::of(x) == key);
    assert_eq!(stored.unwrap().expires_at, NOW + 300, "{}", at("expires_at brought back"));

    // Listing: every registration once, through pages of any size, and
    // nothing else (the table also holds edges, groups, needs and views).
    let mut want = std::collections::BTreeSet::new();
    for service in ["auth", "orders", "pay", "users"] {
        for i in 0..3 {
            let mut x = instance(&format!("l-{i}"));
            x.service = service.to_owned();
            r.put(&x).await.unwrap();
        }
    }
    for x in r.list(1_000, None).await.unwrap().registrations {
        want.insert(InstanceKey::of(&x).to_string());
    }
    assert!(want.len() >= 12, "{}: {want:?}", at("listed"));
    for limit in [1, 2, 5, 100] {
        let (mut seen, mut next, mut pages) = (Vec::new(), None, 0);
        loop {
            let page = r.list(limit, next.take()).await.unwrap();
            assert!(page.registrations.len() <= limit as usize, "{}", at("a page holds at most its limit"));
            seen.extend(page.registrations.iter().map(|x| InstanceKey::of(x).to_string()));
            pages += 1;
            assert!(pages < 100, "{}", at("listing ends"));
            match page.next {
                Some(t) => next = Some(t),
                None => break,
            }
        }
        let unique: std::collections::BTreeSet<String> = seen.iter().cloned().collect();
        assert_eq!(unique.len(), seen.len(), "{}: limit {limit}: {seen:?}", at("no registration twice"));
        assert_eq!(unique, want, "{}: limit {limit}", at("every registration"));
    }
}

#[tokio::test]
async fn the_memory_table_keeps_the_registry_contract() {
    contract(&MemoryCatalog::new(), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dynamodb_adapter_keeps_the_registry_contract() {
    let config = sdk_config().await;
    let clients = Clients::from_config(&config);
    let table = unique("contract");
    let names = Names { on_failure_queue: None, ..Names::for_table(&table) };
    pipeline::create(&clients, &names).await.expect("the table");
    let registry = DynamoTable::new(clients.dynamodb.clone(), &table);
    contract(&registry, "dynamodb").await;
    // A listing reads the registrations it returns and the index's keys,
    // however many edges and views the table holds (issue 27).
    for c in 0..200 {
        let needs = beacon_domain::view::Needs {
            consumer: format!("c{c}"),
            needs: beacon_domain::parse_needs("orders").unwrap(),
        };
        beacon_domain::ports::NeedsDeclarations::put_needs(&registry, &needs, NOW).await.unwrap();
    }
    let before = registry.counts().items_read.load(std::sync::atomic::Ordering::Relaxed);
    let listed =
        beacon_domain::ports::Registrations::list(&registry, 100, None).await.unwrap().registrations.len() as u64;
    let read = registry.counts().items_read.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(read, listed, "a listing page read {read} items for {listed} registrations");
}
