//! The registry port: what the fan-out (and the CLI, tests, benchmarks) ask
//! of the table, as a small trait, with the DynamoDB adapter in
//! [`crate::dynamo`]. Tests that must inject a fault the real engine cannot
//! produce wrap the adapter; everything else uses DynamoDB Local.

use async_trait::async_trait;

use crate::item::{ResolvedItem, ServiceView};
use crate::registration::Registration;

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct StoreError {
    /// Which call failed (`Query SERVICE#orders`, ...).
    pub operation: String,
    /// What went wrong, in words.
    pub message: String,
    /// Whether retrying the same call can succeed (throttling, timeouts,
    /// 5xx). A record that failed this way is reported for re-delivery.
    pub retryable: bool,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// Whether retrying can help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }
}

/// A consumer that depends on a service, from its dependency edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependent {
    /// The consumer id.
    pub consumer: String,
    /// Its requirements on the service, as text.
    pub requirements: Vec<String>,
}

/// Everything in one service's partition, read consistently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServicePartition {
    /// Valid registrations (expired ones included; resolution skips them).
    pub instances: Vec<Registration>,
    /// Registration items that did not decode (already reported on write).
    pub invalid: usize,
    /// Consumers that need the service.
    pub dependents: Vec<Dependent>,
}

/// What writing one service view into a resolved item did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewWrite {
    /// The view changed; `revision` was bumped. Carries the item after.
    Changed(Box<ResolvedItem>),
    /// The view was already this; only its generation moved. Carries the item.
    Unchanged(Box<ResolvedItem>),
    /// A newer generation is already stored: a later read won.
    Stale,
    /// The consumer no longer needs the service (or has no resolved item).
    NotNeeded,
}

/// The registry, as the fan-out and tools use it.
#[async_trait]
pub trait Registry: Send + Sync {
    /// Atomically adds one to the service's generation and returns the new
    /// value (DESIGN.md, convergence: bump, then read, then write).
    async fn bump_generation(&self, service: &str) -> Result<u64, StoreError>;

    /// Reads the service's partition with a consistent Query.
    async fn read_service(&self, service: &str) -> Result<ServicePartition, StoreError>;

    /// Writes `view` for `service` into `consumer`'s resolved item, only if
    /// the stored generation is older and the consumer still needs the
    /// service. When `change_id` is given and the view changed, `revision` is
    /// bumped and `last_change_id` set in the same write.
    async fn write_view(
        &self,
        consumer: &str,
        service: &str,
        view: &ServiceView,
        change_id: Option<&str>,
    ) -> Result<ViewWrite, StoreError>;

    /// Creates or updates a consumer's resolved item header: its needs and
    /// needed services; drops views of services no longer needed. Returns
    /// the item after the update.
    async fn set_needs_header(
        &self,
        consumer: &str,
        needs: &[String],
        services: &[String],
        dropped: &[String],
    ) -> Result<ResolvedItem, StoreError>;

    /// Bumps a consumer's revision and records the change id.
    async fn bump_revision(&self, consumer: &str, change_id: &str) -> Result<ResolvedItem, StoreError>;

    /// Deletes a consumer's resolved item (its needs were removed).
    async fn delete_resolved(&self, consumer: &str) -> Result<(), StoreError>;

    /// Reads a consumer's resolved item (consistent).
    async fn get_resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError>;

    /// Writes the dependency edge `service → consumer`.
    async fn put_edge(&self, service: &str, consumer: &str, requirements: &[String]) -> Result<(), StoreError>;

    /// Deletes the dependency edge `service → consumer`.
    async fn delete_edge(&self, service: &str, consumer: &str) -> Result<(), StoreError>;
}
