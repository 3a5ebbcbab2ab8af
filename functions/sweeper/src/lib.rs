//! The sweeper Lambda's handler: one sweep of the expiry index
//! (`beacon_domain::sweep`, over the [`ExpiryIndex`] port), one run of the
//! [`janitor`] (over the [`Subscribers`] port), and their metrics.

pub mod janitor;

use beacon_aws::metrics::{Metric, document};
use beacon_domain::ports::{ExpiryIndex, StoreError, Subscribers};
use beacon_domain::sweep::{SweepReport, sweep};

pub use janitor::JanitorReport;

/// Every IAM action the sweeper's code needs: Query on the expiry index and
/// DeleteItem on the table (the sweep); ListSubscriptionsByTopic and
/// Unsubscribe on the topic, ListQueues (wildcard-only), ListQueueTags,
/// GetQueueUrl, GetQueueAttributes (an untagged queue's creation time) and
/// DeleteQueue on viewer queues (the janitor).
/// `infra/template.yaml` must grant exactly these.
pub const IAM_ACTIONS: &[&str] = &[
    "dynamodb:Query",
    "dynamodb:DeleteItem",
    "sns:ListSubscriptionsByTopic",
    "sns:Unsubscribe",
    "sqs:ListQueues",
    "sqs:ListQueueTags",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "sqs:DeleteQueue",
];

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

/// Runs the janitor at `now` over the topic `topic_arn`'s subscribers and
/// returns the report with its EMF document.
pub async fn tidy(
    subscribers: &impl Subscribers,
    topic_arn: &str,
    now: i64,
) -> Result<(JanitorReport, serde_json::Value), StoreError> {
    let report = janitor::run(subscribers, topic_arn, now).await?;
    if report != JanitorReport::default() {
        tracing::info!(
            unsubscribed = report.unsubscribed,
            deleted = report.deleted,
            failed = report.failed,
            "janitor done"
        );
    }
    let count = |name, v: usize| Metric { name, value: v as f64, unit: "Count" };
    let metrics = document(
        &[("Function", "sweeper")],
        &[
            count("ViewerSubscriptionsRemoved", report.unsubscribed),
            count("ViewerQueuesDeleted", report.deleted),
            count("JanitorFailures", report.failed),
        ],
        now * 1000,
    );
    Ok((report, metrics))
}
