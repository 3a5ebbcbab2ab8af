//! [`Registry`] over [`MemoryCatalog`]'s state: the fan-out's reads and
//! conditional writes as the DynamoDB adapter makes them
//! (`beacon_aws::dynamo::registry`), decided by the same conditions, so the
//! fan-out's convergence can be tested in memory (docs/architecture.md,
//! "Testing the fan-out without the local stack").

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;

use crate::change::ShardRepair;
use crate::keys;
use crate::memory::{MemoryCatalog, lock};
use crate::ports::{
    Conditional, Dependent, DependentsPage, Edges, ExpiryRepair, Generation, Generations, InstanceKey,
    ServicePartition, ServiceState, StoreError, ViewGroups, Views,
};
use crate::view::{ResolvedItem, ServiceView, ViewGroup};

/// The fan-out's bookkeeping about every service.
#[derive(Debug, Default)]
pub(crate) struct Bookkeeping {
    /// Per service: its generation and `grouped` mark.
    generations: BTreeMap<String, (u64, bool)>,
    /// Per service, its view groups by id.
    groups: BTreeMap<String, BTreeMap<String, ViewGroup>>,
    /// Per service, its dependents' requirements by consumer (key order).
    edges: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

/// Returns `Pending` this many times, waking itself each time: lets other
/// futures on the same executor run between two registry calls.
struct Yield(u64);

impl Future for Yield {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 == 0 {
            return Poll::Ready(());
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

impl MemoryCatalog {
    async fn call(&self) {
        use std::sync::atomic::Ordering;
        if let Some(state) = &self.interleave {
            // A linear congruential step: deterministic for the seed.
            let next = state.load(Ordering::Relaxed).wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            state.store(next, Ordering::Relaxed);
            Yield((next >> 33) % 4).await;
        }
    }

    fn generation(&self, service: &str) -> Option<u64> {
        lock(&self.fanout).generations.get(service).map(|g| g.0)
    }

    fn partition(&self, service: &str, with_edges: bool) -> ServicePartition {
        let instances = lock(&self.registrations).values().filter(|r| r.service == service).cloned().collect();
        let state = lock(&self.fanout);
        let groups = state.groups.get(service).map(|g| g.values().cloned().collect()).unwrap_or_default();
        let dependents = if with_edges {
            state
                .edges
                .get(service)
                .map(|e| e.iter().map(|(c, r)| Dependent { consumer: c.clone(), requirements: r.clone() }).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        ServicePartition { instances, invalid: 0, dependents, groups }
    }

    /// What a conditional write refused for a missing item: DynamoDB's
    /// answer to `bump_revision` on a resolved item that is gone.
    fn refused(operation: String) -> StoreError {
        StoreError {
            operation,
            message: "ConditionalCheckFailedException: the item does not exist".into(),
            retryable: false,
            bad_item: false,
            source: None,
        }
    }
}

#[async_trait]
impl Generations for MemoryCatalog {
    async fn bump_generation(&self, service: &str) -> Result<Generation, StoreError> {
        self.call().await;
        let mut state = lock(&self.fanout);
        let g = state.generations.entry(service.to_owned()).or_insert((0, false));
        g.0 += 1;
        Ok(Generation { value: g.0, grouped: g.1 })
    }

    async fn mark_grouped(&self, service: &str, generation: u64) -> Result<bool, StoreError> {
        self.call().await;
        let mut state = lock(&self.fanout);
        match state.generations.get_mut(service) {
            Some(g) if g.0 == generation => {
                g.1 = true;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn current_generation(&self, service: &str) -> Result<u64, StoreError> {
        self.call().await;
        Ok(lock(&self.fanout).generations.get(service).map_or(0, |g| g.0))
    }
}

#[async_trait]
impl ServiceState for MemoryCatalog {
    async fn read_service(&self, service: &str) -> Result<ServicePartition, StoreError> {
        self.call().await;
        Ok(self.partition(service, true))
    }

    async fn read_state(&self, service: &str) -> Result<ServicePartition, StoreError> {
        self.call().await;
        Ok(self.partition(service, false))
    }
}

#[async_trait]
impl ViewGroups for MemoryCatalog {
    async fn claim_group(&self, service: &str, group: &ViewGroup) -> Result<bool, StoreError> {
        self.call().await;
        if self.generation(service) != Some(group.view.generation) {
            return Ok(false);
        }
        let mut state = lock(&self.fanout);
        let stored = ViewGroup { pending: true, ..group.clone() };
        state.groups.entry(service.to_owned()).or_default().insert(group.id.clone(), stored);
        Ok(true)
    }

    async fn settle_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError> {
        self.call().await;
        let mut state = lock(&self.fanout);
        match state.groups.get_mut(service).and_then(|g| g.get_mut(group)) {
            Some(g) if g.view.generation == generation => {
                g.pending = false;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn drop_group(&self, service: &str, group: &str, generation: u64) -> Result<bool, StoreError> {
        self.call().await;
        if self.generation(service) != Some(generation) {
            return Ok(false);
        }
        if let Some(g) = lock(&self.fanout).groups.get_mut(service) {
            g.remove(group);
        }
        Ok(true)
    }
}

#[async_trait]
impl Edges for MemoryCatalog {
    async fn dependents(&self, service: &str, after: Option<&str>, limit: usize) -> Result<DependentsPage, StoreError> {
        self.call().await;
        let state = lock(&self.fanout);
        let limit = limit.max(1);
        let page: Vec<Dependent> = state
            .edges
            .get(service)
            .into_iter()
            .flatten()
            .filter(|(c, _)| after.is_none_or(|a| c.as_str() > a))
            .take(limit)
            .map(|(c, r)| Dependent { consumer: c.clone(), requirements: r.clone() })
            .collect();
        // As DynamoDB: a page that reached its limit carries its last key,
        // even when nothing follows.
        let next = (page.len() == limit).then(|| page.last().map(|d| d.consumer.clone())).flatten();
        Ok(DependentsPage { dependents: page, next })
    }

    async fn put_edge(&self, service: &str, consumer: &str, requirements: &[String]) -> Result<(), StoreError> {
        self.call().await;
        lock(&self.fanout)
            .edges
            .entry(service.to_owned())
            .or_default()
            .insert(consumer.to_owned(), requirements.to_vec());
        Ok(())
    }

    async fn delete_edge(&self, service: &str, consumer: &str) -> Result<(), StoreError> {
        self.call().await;
        if let Some(e) = lock(&self.fanout).edges.get_mut(service) {
            e.remove(consumer);
        }
        Ok(())
    }
}

#[async_trait]
impl Views for MemoryCatalog {
    async fn put_view_if_moved(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<Conditional<ResolvedItem>, StoreError> {
        self.call().await;
        let mut all = lock(&self.resolved);
        let Some(item) = all.get_mut(consumer) else { return Ok(Conditional::Refused(None)) };
        let needed = item.needed_services.iter().any(|s| s == service);
        let moved =
            item.services.get(service).is_none_or(|s| s.generation < view.generation && s.digest != view.digest);
        if !(needed && moved) {
            return Ok(Conditional::Refused(Some(item.clone())));
        }
        item.services.insert(service.to_owned(), view.clone());
        if let Some(id) = change_id {
            item.revision += 1;
            item.last_change_id = Some(id.to_owned());
        }
        Ok(Conditional::Written(item.clone()))
    }

    async fn raise_view_generation(
        &self,
        consumer: &str,
        service: &str,
        generation: u64,
    ) -> Result<Option<ResolvedItem>, StoreError> {
        self.call().await;
        let mut all = lock(&self.resolved);
        let Some(item) = all.get_mut(consumer).filter(|i| i.needed_services.iter().any(|s| s == service)) else {
            return Ok(None);
        };
        match item.services.get_mut(service) {
            Some(stored) if stored.generation < generation => {
                stored.generation = generation;
                Ok(Some(item.clone()))
            }
            _ => Ok(None),
        }
    }

    async fn set_needs_header(
        &self,
        consumer: &str,
        needs: &[String],
        services: &[String],
        dropped: &[String],
    ) -> Result<ResolvedItem, StoreError> {
        self.call().await;
        let mut all = lock(&self.resolved);
        let item = all.entry(consumer.to_owned()).or_insert_with(|| ResolvedItem {
            consumer: consumer.to_owned(),
            revision: 0,
            needs: Vec::new(),
            needed_services: Vec::new(),
            services: BTreeMap::new(),
            last_change_id: None,
        });
        item.needs = needs.to_vec();
        item.needed_services = services.to_vec();
        for d in dropped {
            item.services.remove(d);
        }
        Ok(item.clone())
    }

    async fn bump_revision(&self, consumer: &str, change_id: &str) -> Result<ResolvedItem, StoreError> {
        self.call().await;
        let mut all = lock(&self.resolved);
        let item = all.get_mut(consumer).ok_or_else(|| Self::refused(format!("UpdateItem revision {consumer}")))?;
        item.revision += 1;
        item.last_change_id = Some(change_id.to_owned());
        Ok(item.clone())
    }

    async fn delete_resolved(&self, consumer: &str) -> Result<(), StoreError> {
        self.call().await;
        lock(&self.resolved).remove(consumer);
        Ok(())
    }

    async fn get_resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError> {
        self.call().await;
        Ok(lock(&self.resolved).get(consumer).cloned())
    }
}

#[async_trait]
impl ExpiryRepair for MemoryCatalog {
    async fn repair_expiry_shard(&self, repair: &ShardRepair) -> Result<bool, StoreError> {
        self.call().await;
        let Some(key) = instance_key(&repair.pk, &repair.sk) else { return Ok(false) };
        let mut all = lock(&self.registrations);
        match all.get_mut(&crate::memory::key_of(&key)) {
            // The shard is not held in memory; the expiry bound is.
            Some(r) if r.expires_at == repair.expires_at => {
                r.expires_at = repair.valid_until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

/// The instance a registration key names (its version normalised).
fn instance_key(pk: &str, sk: &str) -> Option<InstanceKey> {
    match keys::key_kind(pk, sk) {
        keys::KeyKind::Instance { service, version, instance_id } => {
            let version = crate::version::parse_version(&version).ok()?.to_string();
            Some(InstanceKey::new(service, version, instance_id))
        }
        _ => None,
    }
}
