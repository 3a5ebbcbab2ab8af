//! The sweeper Lambda's handler: one sweep of the expiry index
//! (`beacon::sweep`, over the [`ExpiryIndex`] port) and its metrics.

use beacon::ports::{ExpiryIndex, StoreError};
use beacon::sweep::{SweepReport, sweep};
use beacon_aws::metrics::{Metric, document};

/// Every IAM action the sweeper's code needs (Query on the expiry index,
/// DeleteItem on the table); `infra/template.yaml` must grant exactly these.
pub const IAM_ACTIONS: &[&str] = &["dynamodb:Query", "dynamodb:DeleteItem"];

/// Sweeps at `now` (the schedule's own time: when the sweep was due) and
/// returns the report with its EMF document.
pub async fn handle(index: &impl ExpiryIndex, now: i64) -> Result<(SweepReport, serde_json::Value), StoreError> {
    let report = sweep(index, now).await?;
    tracing::info!(due = report.due, expired = report.expired, refreshed = report.refreshed, "sweep done");
    let count = |name, v: usize| Metric { name, value: v as f64, unit: "Count" };
    let metrics = document(
        &[("Function", "sweeper")],
        &[count("Due", report.due), count("Expired", report.expired), count("RefreshedBeforeSweep", report.refreshed)],
        now * 1000,
    );
    Ok((report, metrics))
}
