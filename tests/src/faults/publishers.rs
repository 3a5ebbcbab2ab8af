//! Test doubles of the SNS publisher: an entry failing inside a
//! PublishBatch, on demand or at random, and a pause after publishing.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use beacon_aws::SnsPublisher;
use beacon_domain::event::Event;
use beacon_domain::ports::{PublishError, Publisher};

use super::Rng;

/// Test double (fault injection, SNS cannot fail one entry on demand):
/// fails every event about `service` for the first `failures` publish calls
/// that include one, passing the rest of each batch to the real publisher.
#[derive(Debug)]
pub struct FlakyPublisher {
    inner: SnsPublisher,
    service: String,
    failures: AtomicU32,
}

impl FlakyPublisher {
    /// Fails events about `service` in the next `failures` calls.
    pub fn new(inner: SnsPublisher, service: &str, failures: u32) -> Self {
        Self { inner, service: service.into(), failures: AtomicU32::new(failures) }
    }
}

#[async_trait]
impl Publisher for FlakyPublisher {
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let hit = |e: &Event| e.message_attributes().iter().any(|(k, v)| *k == "service" && *v == self.service);
        let inject = events.iter().any(hit)
            && self.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if !inject {
            return self.inner.publish(events).await;
        }
        let fail: Vec<bool> = events.iter().map(hit).collect();
        publish_all_but(&self.inner, events, &fail).await
    }
}

/// Publishes the events not marked in `fail` through `inner`, and answers
/// an injected failure for each marked one, in the events' order.
async fn publish_all_but(inner: &SnsPublisher, events: &[Event], fail: &[bool]) -> Vec<Result<(), PublishError>> {
    let passed: Vec<Event> = events.iter().zip(fail).filter(|(_, f)| !**f).map(|(e, _)| e.clone()).collect();
    let mut passed_results = inner.publish(&passed).await.into_iter();
    fail.iter()
        .map(|f| {
            if *f {
                Err(PublishError::Refused { code: "Injected".into(), message: "test fault".into() })
            } else {
                passed_results.next().unwrap_or(Ok(()))
            }
        })
        .collect()
}

/// Test double (fault injection): publishes for real, then signals and holds
/// the call for `pause`, so a test can kill the pipeline at the worst moment:
/// the events are out, the batch is not yet acknowledged.
#[derive(Debug)]
pub struct PausingPublisher {
    inner: SnsPublisher,
    pause: Duration,
    published: Arc<tokio::sync::Notify>,
}

impl PausingPublisher {
    /// Wraps `inner`; `published` is notified after each real publish.
    pub fn new(inner: SnsPublisher, pause: Duration, published: Arc<tokio::sync::Notify>) -> Self {
        Self { inner, pause, published }
    }
}

#[async_trait]
impl Publisher for PausingPublisher {
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let results = self.inner.publish(events).await;
        self.published.notify_waiters();
        tokio::time::sleep(self.pause).await;
        results
    }
}

/// Test double (fault injection, SNS cannot fail entries at random): fails
/// each event with probability `per_mille / 1000`, passing the rest of each
/// batch to the real publisher.
#[derive(Debug)]
pub struct ChaosPublisher {
    inner: SnsPublisher,
    per_mille: u32,
    rng: Mutex<Rng>,
    injected: Arc<AtomicU64>,
}

impl ChaosPublisher {
    /// Wraps `inner`, seeded by `seed`; `injected` counts the failures.
    pub fn new(inner: SnsPublisher, per_mille: u32, seed: u64, injected: Arc<AtomicU64>) -> Self {
        Self { inner, per_mille, rng: Mutex::new(Rng::new(seed)), injected }
    }
}

#[async_trait]
impl Publisher for ChaosPublisher {
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let fail: Vec<bool> = {
            let mut rng = self.rng.lock().expect("chaos rng");
            events.iter().map(|_| rng.chance(self.per_mille)).collect()
        };
        self.injected.fetch_add(fail.iter().filter(|f| **f).count() as u64, Ordering::Relaxed);
        publish_all_but(&self.inner, events, &fail).await
    }
}
