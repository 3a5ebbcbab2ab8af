//! What one batch did: counts for the logs, the EMF metrics and the
//! benchmarks.

use std::collections::BTreeMap;

/// What one batch did, for logs, metrics and benchmarks.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchReport {
    /// Records in the batch.
    pub records: usize,
    /// Events published, by kind.
    pub published: BTreeMap<&'static str, usize>,
    /// Malformed records reported.
    pub invalid: usize,
    /// Heartbeat-only records (nothing published).
    pub heartbeats: usize,
    /// Resolved items whose view changed.
    pub views_changed: usize,
    /// Registrations put into the expiry index (written without, or with a
    /// wrong, `expiry_shard`).
    pub shards_repaired: usize,
    /// View groups whose view moved (claimed for rewriting).
    pub groups_claimed: usize,
    /// Pages of dependents handed to the refresh queue.
    pub pages_queued: usize,
    /// Records reported for retry.
    pub failed: usize,
    /// Records, and dependents' views, that failed because of what a
    /// stored item holds (no retry can fix it): reported once, named in
    /// the logs, and not retried, so nothing behind them waits.
    pub bad_items: usize,
    /// The oldest record's approximate creation time (epoch seconds), for
    /// the propagation-lag metric.
    pub oldest_record_at: Option<i64>,
}

impl BatchReport {
    /// The batch's metrics as EMF documents at `now_ms`: totals, and events
    /// published per kind.
    pub fn metrics(&self, now_ms: i64) -> Vec<serde_json::Value> {
        use beacon_aws::metrics::{Metric, document};
        let count = |name, v: usize| Metric { name, value: v as f64, unit: "Count" };
        let mut totals = vec![
            count("Records", self.records),
            count("InvalidRecords", self.invalid),
            count("ResolvedRefreshed", self.views_changed),
            count("ExpiryShardsRepaired", self.shards_repaired),
            count("ViewGroupsClaimed", self.groups_claimed),
            count("RefreshPagesQueued", self.pages_queued),
            count("BatchFailures", self.failed),
            count("BadItemsSkipped", self.bad_items),
        ];
        if let Some(oldest) = self.oldest_record_at {
            // The stream's creation time has one-second (locally one-minute)
            // granularity: the lag is accurate to that.
            let lag = (now_ms - oldest * 1000).max(0);
            totals.push(Metric { name: "PropagationLag", value: lag as f64, unit: "Milliseconds" });
        }
        let mut docs = vec![document(&[("Function", "fanout")], &totals, now_ms)];
        for (kind, n) in &self.published {
            docs.push(document(&[("Function", "fanout"), ("Kind", kind)], &[count("EventsPublished", *n)], now_ms));
        }
        docs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reports_its_metrics_in_emf() {
        let mut report =
            BatchReport { records: 3, invalid: 1, failed: 1, oldest_record_at: Some(100), ..Default::default() };
        report.published.insert("registered", 2);
        let docs = report.metrics(100_250);
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["InvalidRecords"], 1.0);
        assert_eq!(docs[0]["BatchFailures"], 1.0);
        assert_eq!(docs[0]["PropagationLag"], 250.0);
        assert_eq!(docs[1]["Kind"], "registered");
        assert_eq!(docs[1]["EventsPublished"], 2.0);
    }
}
