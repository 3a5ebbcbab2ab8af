//! The sweeper Lambda's handler: sweeps of the expiry index
//! (`beacon_domain::sweep`, over the [`ExpiryIndex`] port) every second
//! through its invocation ([`sweep_window`]), one run of the [`janitor`]
//! (over the [`Subscribers`] port), and their metrics.

pub mod janitor;

use std::time::Duration;

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

/// Sweeps once at `now` and returns the report with its EMF document.
pub async fn handle(index: &impl ExpiryIndex, now: i64) -> Result<(SweepReport, serde_json::Value), StoreError> {
    let report = sweep(index, now).await?;
    let metrics = metrics(&report, 0, now);
    Ok((report, metrics))
}

/// The EMF document of an invocation's sweeps (`failed`: sweeps that
/// failed and were retried by the next).
pub fn metrics(report: &SweepReport, failed: usize, now: i64) -> serde_json::Value {
    tracing::info!(due = report.due, expired = report.expired, refreshed = report.refreshed, failed, "sweeps done");
    let count = |name, v: usize| Metric { name, value: v as f64, unit: "Count" };
    document(
        &[("Function", "sweeper")],
        &[
            count("Due", report.due),
            count("Expired", report.expired),
            count("RefreshedBeforeSweep", report.refreshed),
            count("FailedSweeps", failed),
        ],
        now * 1000,
    )
}

/// How an invocation sweeps: every `interval`, until `until_millis`.
///
/// EventBridge Scheduler cannot fire more than once a minute, so each
/// one-minute invocation sweeps every second of its minute, and on for
/// `overlap` past it: the next invocation has that long to start before a
/// second goes unswept. Two sweepers at once are harmless (each delete is
/// conditional, so an expiry is deleted, and published, once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Between the starts of two sweeps (`BEACON_SWEEP_INTERVAL_MS`).
    pub interval: Duration,
    /// When the last sweep may start, epoch milliseconds.
    pub until_millis: i64,
}

impl Window {
    /// The window of an invocation scheduled at `scheduled_millis` for a
    /// schedule of `period`, overlapping the next by `overlap`, and ending
    /// no later than `deadline_millis` (the Lambda's own deadline, less a
    /// margin). An interval of at least `period` sweeps once.
    pub fn for_schedule(
        scheduled_millis: i64,
        period: Duration,
        overlap: Duration,
        interval: Duration,
        deadline_millis: i64,
    ) -> Self {
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let until = if interval >= period { i64::MIN } else { scheduled_millis + millis(period) + millis(overlap) };
        Self { interval, until_millis: until.min(deadline_millis) }
    }
}

/// What an invocation's sweeps did.
#[derive(Debug, Default)]
pub struct Swept {
    /// Their counts, summed.
    pub report: SweepReport,
    /// Sweeps that failed (each retried by the next).
    pub failed: usize,
    /// The last sweep's error, if it failed: the sweeper is not sweeping
    /// now, which the invocation reports as its own failure.
    pub last_error: Option<StoreError>,
}

/// Sweeps at once, then at each `interval` until the window ends. Sweeps
/// are aligned just after whole seconds, because expiry is kept in whole
/// seconds: a registration due at second T is swept at T + 0.05 s, not up
/// to a second later. `clock` reads epoch milliseconds (injected: tests run
/// the window on a paused clock). A sweep that fails is logged and counted,
/// and the next one retries. No sweep begins after the window's end, even
/// when one ran long.
pub async fn sweep_window(index: &impl ExpiryIndex, clock: impl Fn() -> i64, window: Window) -> Swept {
    let interval = i64::try_from(window.interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let mut swept = Swept::default();
    loop {
        let started = clock();
        swept.last_error = match sweep(index, started.div_euclid(1000)).await {
            Ok(report) => {
                swept.report.add(&report);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "sweep failed; the next one retries");
                swept.failed += 1;
                Some(e)
            }
        };
        // The next sweep: an interval after this one began or, for whole
        // seconds, an interval after this one's second began, plus 50 ms.
        let next =
            if interval % 1000 == 0 { started.div_euclid(1000) * 1000 + interval + 50 } else { started + interval };
        let now = clock();
        if next.max(now) > window.until_millis {
            return swept;
        }
        tokio::time::sleep(Duration::from_millis(u64::try_from(next - now).unwrap_or(0))).await;
    }
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
