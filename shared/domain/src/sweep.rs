//! The sweeper: expires registrations whose heartbeats stopped, within
//! seconds, instead of waiting for DynamoDB's TTL (which deletes "within a
//! few days"). It reads only the sparse expiry index — what is due — never
//! the table, and deletes each item under the condition that it is still
//! expired, so a heartbeat that lands between the read and the delete wins.
//! The deletes reach the stream and become `expired` events.
//!
//! One sweep reads every shard at once and deletes what is due
//! [`DELETE_CONCURRENCY`] at a time: a thousand registrations that expire in
//! the same second are gone in a few round trips' time, not a thousand. How
//! often a sweep runs is the caller's (the sweeper Lambda sweeps every
//! second through its one-minute invocation; docs/architecture.md,
//! "Expiry").

use futures::{StreamExt, TryStreamExt};

use crate::keys::EXPIRY_SHARDS;
use crate::ports::{ExpiryIndex, StoreError};

/// How many conditional deletes one sweep has in flight.
pub const DELETE_CONCURRENCY: usize = 32;

/// What one sweep did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Keys the index returned (what was read).
    pub due: usize,
    /// Items deleted.
    pub expired: usize,
    /// Items a heartbeat saved between the read and the delete.
    pub refreshed: usize,
}

impl SweepReport {
    /// Adds another sweep's counts (an invocation's sweeps, summed).
    pub fn add(&mut self, other: &SweepReport) {
        self.due += other.due;
        self.expired += other.expired;
        self.refreshed += other.refreshed;
    }
}

/// Sweeps every expiry shard at `now` (injected, so tests fix the clock).
pub async fn sweep(index: &impl ExpiryIndex, now: i64) -> Result<SweepReport, StoreError> {
    // Futures collected before they are polled (not a lazy map over an
    // iterator): the sweep's future stays `Send` for the callers' spawns.
    let mut reads = Vec::new();
    for shard in 0..EXPIRY_SHARDS {
        reads.push(index.due(shard, now));
    }
    let due: Vec<_> = futures::future::try_join_all(reads).await?.into_iter().flatten().collect();
    let mut deletes = Vec::new();
    for key in &due {
        deletes.push(async move {
            let gone = index.delete_if_expired(key, now).await?;
            if gone {
                tracing::info!(pk = %key.pk, sk = %key.sk, "expired");
            }
            Ok::<_, StoreError>(gone)
        });
    }
    let deleted: Vec<bool> = futures::stream::iter(deletes).buffer_unordered(DELETE_CONCURRENCY).try_collect().await?;
    let expired = deleted.iter().filter(|gone| **gone).count();
    Ok(SweepReport { due: due.len(), expired, refreshed: due.len() - expired })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use async_trait::async_trait;

    use super::*;
    use crate::keys::expiry_shard;
    use crate::ports::DueKey;

    /// An in-memory expiry index: key → expires_at. `heartbeat_on_delete`
    /// moves an item's expiry just before its delete is evaluated, as a
    /// heartbeat racing the sweeper would.
    #[derive(Default)]
    struct Index {
        items: Mutex<BTreeMap<(String, String), i64>>,
        heartbeat_on_delete: Option<(String, String)>,
        calls: Mutex<Vec<u32>>,
    }

    #[async_trait]
    impl ExpiryIndex for Index {
        async fn due(&self, shard: u32, now: i64) -> Result<Vec<DueKey>, StoreError> {
            self.calls.lock().unwrap().push(shard);
            let items = self.items.lock().unwrap();
            Ok(items
                .iter()
                .filter(|((pk, sk), exp)| expiry_shard(pk, sk) == shard.to_string() && **exp <= now)
                .map(|((pk, sk), _)| DueKey { pk: pk.clone(), sk: sk.clone() })
                .collect())
        }

        async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError> {
            let mut items = self.items.lock().unwrap();
            let k = (key.pk.clone(), key.sk.clone());
            if self.heartbeat_on_delete.as_ref() == Some(&k)
                && let Some(exp) = items.get_mut(&k)
            {
                *exp = now + 300;
            }
            match items.get(&k) {
                Some(exp) if *exp <= now => {
                    items.remove(&k);
                    Ok(true)
                }
                _ => Ok(false),
            }
        }
    }

    fn key(i: usize) -> (String, String) {
        (format!("SERVICE#s{i}"), format!("INSTANCE#1.0.0#i-{i}"))
    }

    #[tokio::test]
    async fn deletes_exactly_what_is_due_in_every_shard() {
        let index = Index::default();
        for i in 0..40 {
            // Even ones expired at 100, odd ones expire at 200.
            index.items.lock().unwrap().insert(key(i), if i % 2 == 0 { 100 } else { 200 });
        }
        let report = sweep(&index, 150).await.unwrap();
        assert_eq!(report, SweepReport { due: 20, expired: 20, refreshed: 0 });
        let mut calls = index.calls.lock().unwrap().clone();
        calls.sort_unstable();
        assert_eq!(calls, (0..EXPIRY_SHARDS).collect::<Vec<_>>());
        let left = index.items.lock().unwrap();
        assert_eq!(left.len(), 20);
        assert!(left.values().all(|exp| *exp == 200));
    }

    #[tokio::test]
    async fn the_boundary_second_is_expired() {
        let index = Index::default();
        index.items.lock().unwrap().insert(key(1), 150);
        assert_eq!(sweep(&index, 149).await.unwrap().expired, 0);
        assert_eq!(sweep(&index, 150).await.unwrap().expired, 1);
    }

    #[tokio::test]
    async fn a_heartbeat_between_read_and_delete_wins() {
        let index = Index { heartbeat_on_delete: Some(key(3)), ..Default::default() };
        index.items.lock().unwrap().insert(key(3), 100);
        index.items.lock().unwrap().insert(key(4), 100);
        let report = sweep(&index, 150).await.unwrap();
        assert_eq!(report, SweepReport { due: 2, expired: 1, refreshed: 1 });
        assert_eq!(index.items.lock().unwrap().get(&key(3)), Some(&450));
    }
}
