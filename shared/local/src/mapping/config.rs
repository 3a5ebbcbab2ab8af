//! The mapping's settings (AWS's defaults) and its live counters.

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use super::policy::RetryPolicy;
use crate::filter::FilterCriteria;

/// The mapping's settings; defaults follow AWS's (and the template's).
#[derive(Debug, Clone)]
pub struct MappingConfig {
    /// Most records per invocation (AWS default 100).
    pub batch_size: usize,
    /// How long to wait for a batch to fill (AWS default 0).
    pub batching_window: Duration,
    /// Time between GetRecords calls on an idle shard (AWS: 250 ms).
    pub poll_interval: Duration,
    /// Retries of a failing batch before it goes to the on-failure queue;
    /// `None` retries until the records expire (AWS's -1).
    pub max_retry_attempts: Option<u32>,
    /// Retry a failing batch in halves.
    pub bisect_on_error: bool,
    /// Where exhausted batches' metadata goes.
    pub on_failure_queue_url: Option<String>,
    /// Where checkpoints persist; `None` keeps them in memory only.
    pub checkpoint_path: Option<PathBuf>,
    /// Which records reach the handler.
    pub filter: FilterCriteria,
}

impl MappingConfig {
    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            batch_size: self.batch_size,
            max_retry_attempts: self.max_retry_attempts,
            bisect_on_error: self.bisect_on_error,
        }
    }
}

impl Default for MappingConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            batching_window: Duration::ZERO,
            poll_interval: Duration::from_millis(250),
            max_retry_attempts: Some(5),
            bisect_on_error: true,
            on_failure_queue_url: None,
            checkpoint_path: None,
            filter: FilterCriteria::beacon(),
        }
    }
}

/// Counters a test or the dev runner can read while the mapping runs.
#[derive(Debug, Default)]
pub struct MappingStats {
    /// Handler invocations.
    pub invocations: AtomicU64,
    /// Records delivered to the handler (re-deliveries count again).
    pub records_delivered: AtomicU64,
    /// Records dropped by the filter.
    pub records_filtered: AtomicU64,
    /// Invocations that reported failures or errored.
    pub failed_invocations: AtomicU64,
    /// Batches sent to the on-failure queue.
    pub sent_to_on_failure: AtomicU64,
}
