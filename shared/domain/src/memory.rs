//! An in-memory [`Catalog`]: the same contract as the DynamoDB adapter, held
//! in maps, so handlers over the port (the catalog API, the extension, the
//! registrar) are unit-tested without a network and with a fixed clock.
//! Behind the `memory` feature: test code enables it; no binary ships it.
//!
//! It keeps what DynamoDB would: registrations by key (version normalised),
//! needs by consumer, resolved items by consumer, the fan-out's bookkeeping
//! (generations, view groups, edges), and keys in the table's order for
//! paging. It is also the fan-out's [`crate::ports::Registry`]
//! (`memory_registry`), over the same state, with the same conditional
//! writes, so the fan-out is tested in memory too.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::keys;
use crate::ports::{
    ConsumerPage, Created, DueKey, Existing, ExpiryIndex, InstanceKey, NeedsDeclarations, PageToken, RegistrationPage,
    Registrations, ResolvedViews, ServiceInstances, StoreError,
};
use crate::registration::{Registration, Status, expires_after};
use crate::view::{Needs, ResolvedItem};

/// The table, in memory.
#[derive(Debug, Default)]
pub struct MemoryCatalog {
    /// Registrations by (pk, sk), so iteration is the table's key order.
    pub(crate) registrations: Mutex<BTreeMap<(String, String), Registration>>,
    needs: Mutex<BTreeMap<String, Vec<String>>>,
    pub(crate) resolved: Mutex<BTreeMap<String, ResolvedItem>>,
    /// The fan-out's bookkeeping (`FANOUT#<service>` in the table).
    pub(crate) fanout: Mutex<crate::memory_registry::Bookkeeping>,
    /// When set, every registry call first yields to the executor 0–3
    /// times, drawn from this seed's sequence, so concurrent refreshes
    /// interleave between calls, and finish out of order, as they do
    /// against a real table.
    pub(crate) interleave: Option<std::sync::atomic::AtomicU64>,
}

pub(crate) fn key_of(key: &InstanceKey) -> (String, String) {
    (keys::service_pk(&key.service), keys::instance_sk(&key.version, &key.instance_id))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking test thread poisons the lock; the data is still whole.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl MemoryCatalog {
    /// An empty catalog.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty catalog whose registry calls each yield 0–3 times (drawn
    /// from `seed`) before they run, so futures driven together (two
    /// shards' batches, a batch and a refresh page) interleave at every
    /// call and overtake one another.
    pub fn interleaving(seed: u64) -> Self {
        Self { interleave: Some(std::sync::atomic::AtomicU64::new(seed)), ..Self::default() }
    }

    /// Sets a consumer's resolved item, as the fan-out would.
    pub fn set_resolved(&self, item: ResolvedItem) {
        lock(&self.resolved).insert(item.consumer.clone(), item);
    }

    /// Every registration held, in key order.
    pub fn registrations(&self) -> Vec<Registration> {
        lock(&self.registrations).values().cloned().collect()
    }

    fn update(&self, key: &InstanceKey, change: impl FnOnce(&mut Registration)) -> Existing {
        match lock(&self.registrations).get_mut(&key_of(key)) {
            Some(r) => {
                change(r);
                Existing::Done
            }
            None => Existing::NotRegistered,
        }
    }
}

/// The sweeper's sparse index, over the same registrations: every one is
/// in it (the fan-out's expiry repair puts any that arrive without a shard
/// there), in the shard its key hashes to.
#[async_trait]
impl ExpiryIndex for MemoryCatalog {
    async fn due(&self, shard: u32, now: i64) -> Result<Vec<DueKey>, StoreError> {
        let shard = shard.to_string();
        Ok(lock(&self.registrations)
            .iter()
            .filter(|((pk, sk), r)| keys::expiry_shard(pk, sk) == shard && r.expires_at <= now)
            .map(|((pk, sk), _)| DueKey { pk: pk.clone(), sk: sk.clone() })
            .collect())
    }

    async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError> {
        let mut registrations = lock(&self.registrations);
        let k = (key.pk.clone(), key.sk.clone());
        if registrations.get(&k).is_some_and(|r| r.expires_at <= now) {
            registrations.remove(&k);
            return Ok(true);
        }
        Ok(false)
    }
}

#[async_trait]
impl Registrations for MemoryCatalog {
    async fn put(&self, r: &Registration) -> Result<(), StoreError> {
        lock(&self.registrations).insert(key_of(&InstanceKey::of(r)), r.clone());
        Ok(())
    }

    async fn create(&self, r: &Registration) -> Result<Created, StoreError> {
        let mut all = lock(&self.registrations);
        let key = key_of(&InstanceKey::of(r));
        if all.contains_key(&key) {
            return Ok(Created::AlreadyRegistered);
        }
        all.insert(key, r.clone());
        Ok(Created::Created)
    }

    async fn heartbeat(&self, key: &InstanceKey, ttl_seconds: u64, now: i64) -> Result<Existing, StoreError> {
        Ok(self.update(key, |r| {
            r.expires_at = expires_after(now, ttl_seconds);
            r.updated_at = now;
        }))
    }

    async fn set_status(&self, key: &InstanceKey, status: Status, now: i64) -> Result<Existing, StoreError> {
        Ok(self.update(key, |r| {
            r.status = status;
            r.updated_at = now;
        }))
    }

    async fn delete(&self, key: &InstanceKey) -> Result<Existing, StoreError> {
        Ok(match lock(&self.registrations).remove(&key_of(key)) {
            Some(_) => Existing::Done,
            None => Existing::NotRegistered,
        })
    }

    async fn instances(&self, service: &str) -> Result<ServiceInstances, StoreError> {
        let registrations = lock(&self.registrations).values().filter(|r| r.service == service).cloned().collect();
        Ok(ServiceInstances { registrations, invalid: 0 })
    }

    async fn list(&self, limit: u32, start: Option<PageToken>) -> Result<RegistrationPage, StoreError> {
        let all = lock(&self.registrations);
        let after = start.map(|t| (t.pk, t.sk));
        let mut page: Vec<(&(String, String), &Registration)> =
            all.iter().filter(|(k, _)| after.as_ref().is_none_or(|a| *k > a)).collect();
        let more = page.len() > limit as usize;
        page.truncate(limit as usize);
        let next =
            more.then(|| page.last().map(|((pk, sk), _)| PageToken { pk: pk.clone(), sk: sk.clone() })).flatten();
        Ok(RegistrationPage { registrations: page.into_iter().map(|(_, r)| r.clone()).collect(), invalid: 0, next })
    }
}

#[async_trait]
impl NeedsDeclarations for MemoryCatalog {
    async fn needs(&self, consumer: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(lock(&self.needs).get(consumer).cloned())
    }

    async fn put_needs(&self, needs: &Needs, _now: i64) -> Result<(), StoreError> {
        lock(&self.needs).insert(needs.consumer.clone(), needs.needs.iter().map(ToString::to_string).collect());
        Ok(())
    }

    async fn delete_needs(&self, consumer: &str) -> Result<(), StoreError> {
        lock(&self.needs).remove(consumer);
        Ok(())
    }
}

#[async_trait]
impl ResolvedViews for MemoryCatalog {
    async fn revision(&self, consumer: &str) -> Result<Option<u64>, StoreError> {
        Ok(lock(&self.resolved).get(consumer).map(|i| i.revision))
    }

    async fn resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError> {
        Ok(lock(&self.resolved).get(consumer).cloned())
    }

    async fn consumers(&self, _limit: u32, _start: Option<PageToken>) -> Result<ConsumerPage, StoreError> {
        // One page holds them all: the memory catalog is for tests.
        Ok(ConsumerPage {
            needs: lock(&self.needs).iter().map(|(c, n)| (c.clone(), n.clone())).collect(),
            resolved: lock(&self.resolved).values().cloned().collect(),
            next: None,
        })
    }
}
