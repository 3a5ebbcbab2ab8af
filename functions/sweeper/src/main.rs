//! The sweeper Lambda, invoked once a minute by EventBridge Scheduler: set-up
//! only (docs/architecture.md, "Crates"); the handler is
//! `beacon_sweeper::sweep_window` (the logic `beacon_domain::sweep`) and
//! `beacon_sweeper::tidy` (the janitor, `beacon_sweeper::janitor`).

use std::time::Duration;

use beacon_aws::config::{sdk_config, topic_from_env};
use beacon_sweeper::Window;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

/// The schedule's period (`rate(1 minute)` in infra/template.yaml).
const PERIOD: Duration = Duration::from_secs(60);
/// How long an invocation sweeps past its minute, for the next one to start.
const OVERLAP: Duration = Duration::from_secs(10);
/// What the invocation keeps of its timeout after the last sweep begins
/// (the janitor and the metrics run after it).
const MARGIN: Duration = Duration::from_secs(8);

/// `BEACON_SWEEP_INTERVAL_MS`: between two sweeps (default a second; at
/// 60000 or more, one sweep an invocation, as before expiry took seconds).
fn interval_from_env() -> Result<Duration, Error> {
    match std::env::var("BEACON_SWEEP_INTERVAL_MS") {
        Err(_) => Ok(Duration::from_secs(1)),
        Ok(v) => match v.parse::<u64>() {
            Ok(ms) if ms >= 100 => Ok(Duration::from_millis(ms)),
            _ => Err(format!(
                "BEACON_SWEEP_INTERVAL_MS is {v:?}: it must be a whole number of milliseconds, at least 100"
            )
            .into()),
        },
    }
}

/// The scheduled time the payload carries (`{"time": "<aws.scheduler.scheduled-time>"}`,
/// RFC 3339), in epoch milliseconds; `None` when it carries none.
fn scheduled_millis(payload: &Value) -> Option<i64> {
    let time = payload.get("time")?.as_str()?;
    let at = time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let topic = topic_from_env()?;
    let interval = interval_from_env()?;
    let config = sdk_config().await;
    let registry = beacon_aws::registry_from_env(&config)?;
    let subscribers = beacon_aws::janitor::subscribers(&config, &topic);
    let (registry, subscribers, topic) = (&registry, &subscribers, topic.as_str());
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        // The schedule's own time is when the minute began; without it, now.
        let started = beacon_domain::clock::now_millis();
        let scheduled = scheduled_millis(&event.payload).unwrap_or(started);
        let deadline =
            i64::try_from(event.context.deadline).unwrap_or(i64::MAX) - i64::try_from(MARGIN.as_millis()).unwrap_or(0);
        let window = Window::for_schedule(scheduled, PERIOD, OVERLAP, interval, deadline);
        // Both run every time, and their metrics go out whatever happened;
        // either one failing fails the invocation.
        let swept = beacon_sweeper::sweep_window(registry, beacon_domain::clock::now_millis, window).await;
        let now = beacon_domain::clock::now_seconds();
        let tidied = beacon_sweeper::tidy(subscribers, topic, now).await;
        let mut metrics = vec![beacon_sweeper::metrics(&swept.report, swept.failed, now)];
        if let Ok((_, janitor_metrics)) = &tidied {
            metrics.push(janitor_metrics.clone());
        }
        beacon_aws::metrics::emit(&metrics);
        if let Some(e) = swept.last_error {
            return Err(e.into());
        }
        let (janitor, _) = tidied?;
        Ok::<_, Error>(serde_json::json!({
            "due": swept.report.due,
            "expired": swept.report.expired,
            "refreshed": swept.report.refreshed,
            "failed_sweeps": swept.failed,
            "viewer_subscriptions_removed": janitor.unsubscribed,
            "viewer_queues_deleted": janitor.deleted,
        }))
    }))
    .await
}
