//! The sweeper over the in-memory table (no local stack), at chosen
//! instants: what is due goes, what is not stays, a heartbeat that lands
//! between the index read and the delete wins, and the metrics say so.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use async_trait::async_trait;
use beacon_domain::memory::MemoryCatalog;
use beacon_domain::ports::{DueKey, ExpiryIndex, InstanceKey, Registrations, StoreError};
use beacon_domain::{Registration, Status};

const T0: i64 = 1_700_000_000;

fn instance(id: &str, ttl: u64) -> Registration {
    Registration::new_at("orders", "1.0.0", id, "https://o.example", Status::Healthy, ttl, T0).unwrap()
}

fn metric(doc: &serde_json::Value, name: &str) -> f64 {
    doc[name].as_f64().unwrap_or_else(|| panic!("no {name} in {doc}"))
}

#[tokio::test]
async fn what_is_due_goes_and_what_is_not_stays() {
    let table = MemoryCatalog::new();
    for (id, ttl) in [("short-1", 10), ("short-2", 10), ("long", 600)] {
        table.put(&instance(id, ttl)).await.unwrap();
    }
    // Before anything is due: nothing happens.
    let (report, _) = beacon_sweeper::handle(&table, T0 + 9).await.unwrap();
    assert_eq!((report.due, report.expired), (0, 0));
    let (report, metrics) = beacon_sweeper::handle(&table, T0 + 10).await.unwrap();
    assert_eq!((report.due, report.expired, report.refreshed), (2, 2, 0));
    assert_eq!(metric(&metrics, "Expired"), 2.0);
    let left: Vec<String> =
        table.instances("orders").await.unwrap().registrations.into_iter().map(|r| r.instance_id).collect();
    assert_eq!(left, ["long"]);
    // A second run finds nothing more.
    assert_eq!(beacon_sweeper::handle(&table, T0 + 11).await.unwrap().0.expired, 0);
}

/// The table, with a heartbeat landing right after each index read — the
/// race a real table can produce but not on demand (a test double that
/// injects only that interleaving).
struct HeartbeatAfterRead(MemoryCatalog);

#[async_trait]
impl ExpiryIndex for HeartbeatAfterRead {
    async fn due(&self, shard: u32, now: i64) -> Result<Vec<DueKey>, StoreError> {
        let due = self.0.due(shard, now).await?;
        if !due.is_empty() {
            self.0.heartbeat(&InstanceKey::new("orders", "1.0.0", "beating"), 10, now).await?;
        }
        Ok(due)
    }
    async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError> {
        self.0.delete_if_expired(key, now).await
    }
}

#[tokio::test]
async fn a_heartbeat_between_the_read_and_the_delete_keeps_the_instance() {
    let table = MemoryCatalog::new();
    table.put(&instance("beating", 10)).await.unwrap();
    let racing = HeartbeatAfterRead(table);
    let (report, metrics) = beacon_sweeper::handle(&racing, T0 + 10).await.unwrap();
    assert_eq!((report.due, report.expired, report.refreshed), (1, 0, 1));
    assert_eq!(metric(&metrics, "RefreshedBeforeSweep"), 1.0);
    let r = racing.0.instances("orders").await.unwrap().registrations.remove(0);
    assert_eq!(r.expires_at, T0 + 20, "the heartbeat's expiry stands");
}
