//! Fault injection for the reliability tests.
//!
//! Two kinds of fault live here. [`Outage`] is real: a loopback TCP hop in
//! front of an engine that the test stops (the port refuses connections and
//! open ones are cut) and starts again, so clients see exactly what a dead
//! server gives them while the engine keeps its in-memory state. The others
//! are test doubles, used only because the local engines cannot produce the
//! fault on demand: [`FaultyRegistry`] (DynamoDB throttling: DynamoDB Local
//! never throttles), [`FlakyPublisher`] (one SNS entry failing inside a
//! PublishBatch) and [`PausingPublisher`] (a window to kill the pipeline
//! after its events went out but before the batch was acknowledged).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::event::Event;
use beacon_domain::ports::{
    DependentsPage, Edges, ExpiryRepair, Generation, Generations, PublishError, Publisher, ServicePartition,
    ServiceState, StoreError, ViewGroups, ViewWrite, Views,
};
use beacon_domain::view::{ResolvedItem, ServiceView, ViewGroup};
use tokio::task::AbortHandle;

/// A small deterministic generator (xorshift), so a failing run can be
/// replayed from the seed it prints.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator from `seed` (zero is replaced: xorshift would stay at 0).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next raw value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(per_mille)
    }
}

/// A random needs list over services `s0..s{services}`: one to three
/// distinct services, each with one of `requirements` appended.
pub fn random_needs(rng: &mut Rng, services: usize, requirements: &[&str]) -> String {
    let mut parts = Vec::new();
    let mut used = std::collections::HashSet::new();
    for _ in 0..1 + rng.below(3) {
        let s = rng.below(services);
        if used.insert(s) {
            parts.push(format!("s{s}{}", requirements[rng.below(requirements.len())]));
        }
    }
    parts.join(",")
}

/// The seed a randomised test uses: `BEACON_SEED` when set (to replay a
/// failure), otherwise the clock. The caller prints it.
pub fn seed() -> u64 {
    std::env::var("BEACON_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    })
}

/// A loopback hop in front of a TCP server that can be stopped and started
/// again on the same port. Stopped, the port refuses connections and every
/// open connection through it is cut, as if the server behind had died.
#[derive(Debug)]
pub struct Outage {
    addr: SocketAddr,
    target: String,
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    stops: AtomicU64,
}

impl Outage {
    /// Starts forwarding a loopback port to `target` (`http://host:port`).
    pub async fn start(target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the outage hop");
        let addr = listener.local_addr().expect("the hop's address");
        let outage = Self {
            addr,
            target: target.trim_start_matches("http://").trim_end_matches('/').to_owned(),
            tasks: Arc::default(),
            stops: AtomicU64::new(0),
        };
        outage.serve(listener);
        outage
    }

    /// The URL clients use instead of the server's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many times the hop was stopped.
    pub fn stops(&self) -> u64 {
        self.stops.load(Ordering::Relaxed)
    }

    /// Stops the hop: the port closes and open connections are cut.
    pub fn stop(&self) {
        self.stops.fetch_add(1, Ordering::Relaxed);
        for h in self.tasks.lock().expect("outage tasks").drain(..) {
            h.abort();
        }
    }

    /// Starts the hop again on the same port.
    pub async fn restart(&self) {
        let start = Instant::now();
        loop {
            let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
            socket.set_reuseaddr(true).expect("SO_REUSEADDR");
            // The aborted listener is dropped on its task's next poll; retry
            // briefly until the port is free again.
            match socket.bind(self.addr).and_then(|()| socket.listen(128)) {
                Ok(listener) => return self.serve(listener),
                Err(_) if start.elapsed() < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("re-binding {}: {e}", self.addr),
            }
        }
    }

    fn serve(&self, listener: tokio::net::TcpListener) {
        let target = self.target.clone();
        let tasks = self.tasks.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { continue };
                let target = target.clone();
                let h = tokio::spawn(async move {
                    if let Ok(mut out) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                tasks.lock().expect("outage tasks").push(h.abort_handle());
            }
        });
        self.tasks.lock().expect("outage tasks").push(accept.abort_handle());
    }
}

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

/// What a [`FaultyRegistry`] injects and has injected; shared with the test.
#[derive(Debug, Default)]
pub struct RegistryFaults {
    /// Fail this many calls from now on, one after another.
    pub fail_next: AtomicU32,
    /// Then fail each call with this probability, in thousandths.
    pub per_mille: AtomicU32,
    /// When each injected failure happened.
    pub injected_at: Mutex<Vec<Instant>>,
    /// Only calls whose operation name contains this fail (all if `None`).
    pub only: Mutex<Option<&'static str>>,
    rng: Mutex<Option<Rng>>,
}

impl RegistryFaults {
    /// Faults with random failures seeded by `seed`.
    pub fn seeded(seed: u64) -> Arc<Self> {
        Arc::new(Self { rng: Mutex::new(Some(Rng::new(seed))), ..Self::default() })
    }

    /// How many failures were injected.
    pub fn injected(&self) -> usize {
        self.injected_at.lock().expect("faults").len()
    }

    fn check(&self, operation: &str) -> Result<(), StoreError> {
        if self.only.lock().expect("faults").is_some_and(|only| !operation.contains(only)) {
            return Ok(());
        }
        let forced = self.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        let per_mille = self.per_mille.load(Ordering::Relaxed);
        let random = !forced
            && per_mille > 0
            && self.rng.lock().expect("faults").as_mut().is_some_and(|rng| rng.chance(per_mille));
        if !(forced || random) {
            return Ok(());
        }
        self.injected_at.lock().expect("faults").push(Instant::now());
        // The shape DynamoTable gives a throttled call once the SDK's own
        // retries are spent: retryable, naming the operation.
        Err(StoreError::transient(operation, "ProvisionedThroughputExceededException: injected by the test"))
    }
}

/// Test double (fault injection, DynamoDB Local never throttles): the real
/// DynamoDB adapter behind a gate that fails calls as [`RegistryFaults`] says.
#[derive(Debug, Clone)]
pub struct FaultyRegistry {
    inner: DynamoTable,
    faults: Arc<RegistryFaults>,
}

impl FaultyRegistry {
    /// Wraps `inner`.
    pub fn new(inner: DynamoTable, faults: Arc<RegistryFaults>) -> Self {
        Self { inner, faults }
    }
}

#[async_trait]
impl Generations for FaultyRegistry {
    async fn bump_generation(&self, service: &str) -> Result<Generation, StoreError> {
        self.faults.check("UpdateItem generation")?;
        self.inner.bump_generation(service).await
    }

    async fn mark_grouped(&self, service: &str, generation: u64) -> Result<bool, StoreError> {
        self.faults.check("UpdateItem grouped")?;
        self.inner.mark_grouped(service, generation).await
    }
}

#[async_trait]
impl ServiceState for FaultyRegistry {
    async fn read_service(&self, service: &str) -> Result<ServicePartition, StoreError> {
        self.faults.check("Query service")?;
        self.inner.read_service(service).await
    }

    async fn read_state(&self, service: &str) -> Result<ServicePartition, StoreError> {
        self.faults.check("Query state")?;
        self.inner.read_state(service).await
    }
}

#[async_trait]
impl ViewGroups for FaultyRegistry {
    async fn claim_group(&self, service: &str, group: &ViewGroup) -> Result<bool, StoreError> {
        self.faults.check("TransactWriteItems claim")?;
        self.inner.claim_group(service, group).await
    }

    async fn settle_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError> {
        self.faults.check("UpdateItem settle")?;
        self.inner.settle_group(service, group, generation).await
    }

    async fn drop_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError> {
        self.faults.check("TransactWriteItems drop")?;
        self.inner.drop_group(service, group, generation).await
    }
}

#[async_trait]
impl Edges for FaultyRegistry {
    async fn dependents(&self, service: &str, after: Option<&str>, limit: usize) -> Result<DependentsPage, StoreError> {
        self.faults.check("Query edges")?;
        self.inner.dependents(service, after, limit).await
    }

    async fn put_edge(&self, service: &str, consumer: &str, requirements: &[String]) -> Result<(), StoreError> {
        self.faults.check("PutItem edge")?;
        self.inner.put_edge(service, consumer, requirements).await
    }

    async fn delete_edge(&self, service: &str, consumer: &str) -> Result<(), StoreError> {
        self.faults.check("DeleteItem edge")?;
        self.inner.delete_edge(service, consumer).await
    }
}

#[async_trait]
impl Views for FaultyRegistry {
    async fn write_view(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<ViewWrite, StoreError> {
        self.faults.check("UpdateItem view")?;
        self.inner.write_view(consumer, service, view, change_id).await
    }

    async fn set_needs_header(
        &self,
        consumer: &str,
        needs: &[String],
        services: &[String],
        dropped: &[String],
    ) -> Result<ResolvedItem, StoreError> {
        self.faults.check("UpdateItem header")?;
        self.inner.set_needs_header(consumer, needs, services, dropped).await
    }

    async fn bump_revision(&self, consumer: &str, change_id: &str) -> Result<ResolvedItem, StoreError> {
        self.faults.check("UpdateItem revision")?;
        self.inner.bump_revision(consumer, change_id).await
    }

    async fn delete_resolved(&self, consumer: &str) -> Result<(), StoreError> {
        self.faults.check("DeleteItem resolved")?;
        self.inner.delete_resolved(consumer).await
    }

    async fn get_resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError> {
        self.faults.check("GetItem resolved")?;
        self.inner.get_resolved(consumer).await
    }
}

#[async_trait]
impl ExpiryRepair for FaultyRegistry {
    async fn repair_expiry_shard(&self, repair: &beacon_domain::ShardRepair) -> Result<bool, StoreError> {
        self.faults.check("UpdateItem expiry shard")?;
        self.inner.repair_expiry_shard(repair).await
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
