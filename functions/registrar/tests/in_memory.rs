//! The registrar's decisions over in-memory ports (no local stack): the
//! catalog is `MemoryCatalog`; the service's parts are a set of names this
//! test adds and removes, and every removal the registrar asks for is
//! recorded. Time is passed in, so expiry is checked at chosen instants.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::sync::Mutex;

use async_trait::async_trait;
use beacon_domain::Status;
use beacon_domain::memory::MemoryCatalog;
use beacon_domain::ports::{CheckError, Components, Registrations};
use beacon_registrar::{RunError, RunOutcome, ServiceProperties, run_once};

/// The parts that exist, what the registrar removed, and a part whose
/// check fails (an API that answers 5xx: not "gone").
#[derive(Default)]
struct Parts {
    present: Mutex<BTreeSet<String>>,
    removed: Mutex<Vec<String>>,
    failing: Mutex<Option<String>>,
}

impl Parts {
    fn with(names: &[&str]) -> Self {
        let parts = Self::default();
        parts.present.lock().unwrap().extend(names.iter().map(|n| (*n).to_owned()));
        parts
    }

    fn exists(&self, name: &str) -> Result<bool, CheckError> {
        if self.failing.lock().unwrap().as_deref() == Some(name) {
            return Err(CheckError { part: name.to_owned(), source: "503 Service Unavailable".into() });
        }
        Ok(self.present.lock().unwrap().contains(name))
    }
}

#[async_trait]
impl Components for Parts {
    async fn lambda_exists(&self, name: &str) -> Result<bool, CheckError> {
        self.exists(name)
    }
    async fn rest_api_exists(&self, id: &str) -> Result<bool, CheckError> {
        self.exists(id)
    }
    async fn http_api_exists(&self, id: &str) -> Result<bool, CheckError> {
        self.exists(id)
    }
    async fn remove_schedule(&self, rule: &str) -> Result<(), CheckError> {
        self.removed.lock().unwrap().push(format!("schedule {rule}"));
        Ok(())
    }
    async fn delete_function(&self, name: &str) -> Result<(), CheckError> {
        self.removed.lock().unwrap().push(format!("function {name}"));
        Ok(())
    }
}

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
    let parts = Parts::with(&["orders-fn", "orders-worker", "abc123"]);
    assert_eq!(run_once(&catalog, &parts, &props(), T0).await.unwrap(), RunOutcome::Registered(Status::Healthy));
    let r = catalog.instances("orders").await.unwrap().registrations.remove(0);
    assert_eq!((r.version.to_string(), r.status, r.expires_at), ("1.0.0".to_owned(), Status::Healthy, T0 + 300));
    // The next scheduled run, a minute later: still there, a minute more.
    run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap();
    let r = catalog.instances("orders").await.unwrap().registrations.remove(0);
    assert_eq!(r.expires_at, T0 + 360);
    assert!(!r.is_expired(T0 + 359) && r.is_expired(T0 + 360));
    assert!(parts.removed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_part_marks_it_unhealthy_and_its_return_heals_it() {
    let catalog = MemoryCatalog::new();
    let parts = Parts::with(&["orders-fn", "abc123"]);
    assert_eq!(run_once(&catalog, &parts, &props(), T0).await.unwrap(), RunOutcome::Registered(Status::Unhealthy));
    parts.present.lock().unwrap().insert("orders-worker".into());
    assert_eq!(run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap(), RunOutcome::Registered(Status::Healthy));
    assert_eq!(catalog.instances("orders").await.unwrap().registrations[0].status, Status::Healthy);
}

#[tokio::test]
async fn every_part_gone_deregisters_and_removes_the_schedule_then_itself() {
    let catalog = MemoryCatalog::new();
    let parts = Parts::with(&["orders-fn", "orders-worker", "abc123"]);
    run_once(&catalog, &parts, &props(), T0).await.unwrap();
    parts.present.lock().unwrap().clear();
    assert_eq!(run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap(), RunOutcome::Removed);
    assert!(catalog.instances("orders").await.unwrap().registrations.is_empty());
    // The seed names the rule like the registrar when none is given.
    assert_eq!(*parts.removed.lock().unwrap(), ["schedule orders-registrar", "function orders-registrar"]);
    // Already gone (a run retried after its own delete) is as good.
    assert_eq!(run_once(&catalog, &parts, &props(), T0 + 120).await.unwrap(), RunOutcome::Removed);
}

#[tokio::test]
async fn a_check_that_cannot_decide_changes_nothing() {
    let catalog = MemoryCatalog::new();
    let parts = Parts::with(&["orders-fn", "orders-worker", "abc123"]);
    run_once(&catalog, &parts, &props(), T0).await.unwrap();
    *parts.failing.lock().unwrap() = Some("abc123".into());
    let err = run_once(&catalog, &parts, &props(), T0 + 60).await.unwrap_err();
    assert!(matches!(err, RunError::Check(_)) && err.to_string().contains("abc123"), "{err}");
    // Neither marked unhealthy nor removed: the registration as it was.
    let r = catalog.instances("orders").await.unwrap().registrations.remove(0);
    assert_eq!((r.status, r.expires_at), (Status::Healthy, T0 + 300));
    assert!(parts.removed.lock().unwrap().is_empty());
}
