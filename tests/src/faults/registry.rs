//! The test double of the DynamoDB adapter: every port call behind a gate
//! that throttles as the test says (DynamoDB Local never throttles).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use beacon_aws::DynamoTable;
use beacon_domain::ports::{
    Conditional, DependentsPage, Edges, ExpiryRepair, Generation, Generations, ServicePartition, ServiceState,
    StoreError, ViewGroups, Views,
};
use beacon_domain::view::{ResolvedItem, ServiceView, ViewGroup};

use super::Rng;

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

    async fn current_generation(&self, service: &str) -> Result<u64, StoreError> {
        self.faults.check("GetItem generation")?;
        self.inner.current_generation(service).await
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
    async fn put_view_if_moved(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<Conditional<ResolvedItem>, StoreError> {
        self.faults.check("UpdateItem view")?;
        self.inner.put_view_if_moved(consumer, service, view, change_id).await
    }

    async fn raise_view_generation(
        &self,
        consumer: &str,
        service: &str,
        generation: u64,
    ) -> Result<Option<ResolvedItem>, StoreError> {
        self.faults.check("UpdateItem view generation")?;
        self.inner.raise_view_generation(consumer, service, generation).await
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
