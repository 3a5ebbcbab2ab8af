//! The registrar's decisions over in-memory ports (no local stack): the
//! catalog is `MemoryCatalog`; the service's parts are `MemoryComponents`,
//! a set of names this test adds and removes, recording every removal the
//! registrar asks for. Time is passed in, so expiry is checked at chosen instants.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_domain::Status;
use beacon_domain::memory::MemoryCatalog;
use beacon_domain::memory_ports::MemoryComponents;
use beacon_domain::ports::Registrations;
use beacon_registrar::{RunError, RunOutcome, ServiceProperties, run_once};

fn props() -> ServiceProperties {
    serde_json::from_value(serde_json::json!({
        "service_name": "orders",
        "service_version": "1.0",
        "endpoint_url": "https://orders.example",
        "lambda_functions": ["orders-fn", "orders-worker"],
        "rest_api_id": "abc123",
        "ttl": "300",
        "registrar_name": "orders-registrar"
    }))
    .unwrap()
}

const T0: i64 = 1_700_000_000;

#[tokio::test]
async fn every_part_there_registers_healthy_and_each_run_extends_the_lease() {
    let catalog = MemoryCatalog::new();
    let parts = MemoryComponents::with(&["orders-fn", "orders-worker", "abc123"]);
    assert_eq!(run_once(&catalog, &parts, &props(), T0).await.unwrap(), RunOutcome::Registered(Status::Healthy));
    let r = catalog.instances("orders").await.unwrap().registrations.remove(0);
    assert_eq!((r.version.to_string(), r.status, r.expires_at), ("1.0.0".to_owned(), Status::Healthy, T0 + 300));
    // The next scheduled run, a minute later: still there, a minute more.
    run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap();
    let r = catalog.instances("orders").await.unwrap().registrations.remove(0);
    assert_eq!(r.expires_at, T0 + 360);
    assert!(!r.is_expired(T0 + 359) && r.is_expired(T0 + 360));
    assert!(parts.removed().is_empty());
}

#[tokio::test]
async fn a_missing_part_marks_it_unhealthy_and_its_return_heals_it() {
    let catalog = MemoryCatalog::new();
    let parts = MemoryComponents::with(&["orders-fn", "abc123"]);
    assert_eq!(run_once(&catalog, &parts, &props(), T0).await.unwrap(), RunOutcome::Registered(Status::Unhealthy));
    parts.add("orders-worker");
    assert_eq!(run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap(), RunOutcome::Registered(Status::Healthy));
    assert_eq!(catalog.instances("orders").await.unwrap().registrations[0].status, Status::Healthy);
}

#[tokio::test]
async fn every_part_gone_deregisters_and_removes_the_schedule_then_itself() {
    let catalog = MemoryCatalog::new();
    let parts = MemoryComponents::with(&["orders-fn", "orders-worker", "abc123"]);
    run_once(&catalog, &parts, &props(), T0).await.unwrap();
    parts.remove_all();
    assert_eq!(run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap(), RunOutcome::Removed);
    assert!(catalog.instances("orders").await.unwrap().registrations.is_empty());
    // The seed names the rule like the registrar when none is given.
    assert_eq!(parts.removed(), ["schedule orders-registrar", "function orders-registrar"]);
    // Already gone (a run retried after its own delete) is as good.
    assert_eq!(run_once(&catalog, &parts, &props(), T0 + 120).await.unwrap(), RunOutcome::Removed);
}

#[tokio::test]
async fn a_check_that_cannot_decide_changes_nothing() {
    let catalog = MemoryCatalog::new();
    let parts = MemoryComponents::with(&["orders-fn", "orders-worker", "abc123"]);
    run_once(&catalog, &parts, &props(), T0).await.unwrap();
    parts.fail(Some("abc123"));
    let err = run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap_err();
    assert!(matches!(err, RunError::Check(_)) && err.to_string().contains("abc123"), "{err}");
    // Neither marked unhealthy nor removed: the registration as it was.
    let r = catalog.instances("orders").await.unwrap().registrations.remove(0);
    assert_eq!((r.status, r.expires_at), (Status::Healthy, T0 + 300));
    assert!(parts.removed().is_empty());
}
