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

/// The table, noting the paused clock's time of every delete that landed
/// and failing the index reads it is told to (an observer and a fault
/// injector: the in-memory table has neither).
struct Observed {
    table: MemoryCatalog,
    clock: Clock,
    deleted: std::sync::Mutex<Vec<(String, i64)>>,
    sweeps: std::sync::atomic::AtomicUsize,
    fail_sweeps: Vec<usize>,
}

/// Epoch milliseconds on tokio's clock: paused in these tests, so a
/// window of a minute runs in no time and every instant is exact.
#[derive(Clone, Copy)]
struct Clock {
    origin: tokio::time::Instant,
    at: i64,
}

impl Clock {
    fn now(self) -> i64 {
        self.at + i64::try_from(self.origin.elapsed().as_millis()).unwrap()
    }
}

#[async_trait]
impl ExpiryIndex for Observed {
    async fn due(&self, shard: u32, now: i64) -> Result<Vec<DueKey>, StoreError> {
        if shard == 0 {
            let n = self.sweeps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if self.fail_sweeps.contains(&n) {
                return Err(StoreError::transient("Query expiry", "injected"));
            }
        }
        self.table.due(shard, now).await
    }
    async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError> {
        let gone = self.table.delete_if_expired(key, now).await?;
        if gone {
            self.deleted.lock().unwrap().push((key.sk.clone(), self.clock.now()));
        }
        Ok(gone)
    }
}

/// A registration that expires `after` seconds past T0 (written 10 s
/// before that, the shortest TTL).
fn expiring(id: &str, after: i64) -> Registration {
    Registration::new_at("orders", "1.0.0", id, "https://o.example", Status::Healthy, 10, T0 + after - 10).unwrap()
}

fn observed(at: i64, fail_sweeps: Vec<usize>) -> Observed {
    let clock = Clock { origin: tokio::time::Instant::now(), at };
    Observed {
        table: MemoryCatalog::new(),
        clock,
        deleted: Default::default(),
        sweeps: Default::default(),
        fail_sweeps,
    }
}

fn minute(clock: Clock, interval_ms: u64) -> beacon_sweeper::Window {
    use std::time::Duration;
    beacon_sweeper::Window::for_schedule(
        clock.at,
        Duration::from_secs(60),
        Duration::from_secs(10),
        Duration::from_millis(interval_ms),
        i64::MAX,
    )
}

#[tokio::test(start_paused = true)]
async fn a_window_expires_each_registration_within_a_second_of_its_expiry() {
    // The invocation starts 300 ms into a second, as a real one would.
    let o = observed(T0 * 1000 + 300, vec![]);
    // 200 registrations, their expiries spread over the window's 70 s.
    for i in 0..200u64 {
        let after = 1 + i64::try_from((i * 7) % 69).unwrap();
        o.table.put(&expiring(&format!("i-{i}"), after)).await.unwrap();
    }
    let window = minute(o.clock, 1000);
    let swept = beacon_sweeper::sweep_window(&o, || o.clock.now(), window).await;
    assert_eq!((swept.report.expired, swept.failed), (200, 0));
    assert!(swept.last_error.is_none());
    // 71 sweeps: at once, then at each second plus 50 ms up to 70 s in.
    assert_eq!(o.sweeps.load(std::sync::atomic::Ordering::SeqCst), 71);
    for (sk, at) in o.deleted.lock().unwrap().iter() {
        let i: u64 = sk.rsplit("i-").next().unwrap().parse().unwrap();
        let due = (T0 + i64::try_from(1 + (i * 7) % 69).unwrap()) * 1000;
        assert!(*at >= due, "{sk} deleted at {at}, before it was due at {due}");
        assert!(*at - due <= 50, "{sk} deleted {} ms after it was due", *at - due);
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_sweep_is_retried_by_the_next_and_only_a_failed_last_sweep_fails_the_window() {
    let o = observed(T0 * 1000, vec![1, 2]);
    o.table.put(&expiring("gone", 1)).await.unwrap();
    let window = minute(o.clock, 1000);
    let swept = beacon_sweeper::sweep_window(&o, || o.clock.now(), window).await;
    assert_eq!((swept.report.expired, swept.failed), (1, 2));
    assert!(swept.last_error.is_none(), "the last sweep succeeded");
    // Due at 1 s, missed by the sweeps at 1 s and 2 s, taken at 3 s.
    let deleted = o.deleted.lock().unwrap().clone();
    assert_eq!(deleted, [("INSTANCE#1.0.0#gone".to_owned(), T0 * 1000 + 3050)]);

    let last = observed(T0 * 1000, vec![69]);
    let swept = beacon_sweeper::sweep_window(&last, || last.clock.now(), minute(last.clock, 1000)).await;
    let err = swept.last_error.expect("the last sweep failed");
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(swept.failed, 1, "the minute's other sweeps are still counted");
}

#[tokio::test(start_paused = true)]
async fn an_interval_of_a_minute_sweeps_once_and_a_deadline_ends_the_window() {
    let o = observed(T0 * 1000, vec![]);
    beacon_sweeper::sweep_window(&o, || o.clock.now(), minute(o.clock, 60_000)).await;
    assert_eq!(o.sweeps.load(std::sync::atomic::Ordering::SeqCst), 1);

    let o = observed(T0 * 1000, vec![]);
    let window = beacon_sweeper::Window { until_millis: T0 * 1000 + 5_000, ..minute(o.clock, 1000) };
    beacon_sweeper::sweep_window(&o, || o.clock.now(), window).await;
    // At 0, then 1.05 s to 4.05 s: the sweep at 5.05 s would begin past the end.
    assert_eq!(o.sweeps.load(std::sync::atomic::Ordering::SeqCst), 5);
}
