//! The sweeper: expires registrations whose heartbeats stopped, within a
//! minute, instead of waiting for DynamoDB's TTL (which deletes "within a few
//! days"). It reads only the sparse expiry index — what is due — never the
//! table, and deletes each item under the condition that it is still
//! expired, so a heartbeat that lands between the read and the delete wins.
//! The deletes reach the stream and become `expired` events.

use async_trait::async_trait;

use crate::keys::EXPIRY_SHARDS;
use crate::store::StoreError;

/// Every IAM action the sweeper's code needs (Query on the expiry index,
/// DeleteItem on the table); `infra/template.yaml` must grant exactly these.
pub const IAM_ACTIONS: &[&str] = &["dynamodb:Query", "dynamodb:DeleteItem"];

/// A registration the index says is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueKey {
    /// The item's pk.
    pub pk: String,
    /// The item's sk.
    pub sk: String,
}

/// The expiry index, as the sweeper uses it.
#[async_trait]
pub trait ExpiryIndex: Send + Sync {
    /// Keys in `shard` whose `expires_at` is at or before `now`.
    async fn due(&self, shard: u32, now: i64) -> Result<Vec<DueKey>, StoreError>;
    /// Deletes the item if its `expires_at` is still at or before `now`;
    /// false when a heartbeat moved it (or it is already gone).
    async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError>;
}

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

/// Sweeps every expiry shard at `now` (injected, so tests fix the clock).
pub async fn sweep(index: &impl ExpiryIndex, now: i64) -> Result<SweepReport, StoreError> {
    let mut report = SweepReport::default();
    for shard in 0..EXPIRY_SHARDS {
        for key in index.due(shard, now).await? {
            report.due += 1;
            if index.delete_if_expired(&key, now).await? {
                tracing::info!(pk = %key.pk, sk = %key.sk, "expired");
                report.expired += 1;
            } else {
                report.refreshed += 1;
            }
        }
    }
    Ok(report)
}
