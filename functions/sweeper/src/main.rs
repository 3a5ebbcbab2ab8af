//! The sweeper Lambda, on a one-minute schedule: set-up only (docs/architecture.md, "Crates");
//! the handler is `beacon_sweeper::handle` (the logic `beacon_domain::sweep`) and
//! `beacon_sweeper::tidy` (the janitor, `beacon_sweeper::janitor`).

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use beacon_aws::config::{sdk_config, table_from_env, topic_from_env};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let table = table_from_env()?;
    let topic = topic_from_env()?;
    let config = sdk_config().await;
    let registry = beacon_aws::dynamo_table(&config, table);
    let subscribers = beacon_aws::janitor::subscribers(&config, &topic);
    let (registry, subscribers, topic) = (&registry, &subscribers, topic.as_str());
    run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| async move {
        // The schedule's own time is when the sweep was due; the clock is
        // read here, once, and injected.
        let now = event.payload.time.map_or_else(beacon_domain::clock::now_seconds, |t| t.timestamp());
        // Both run every time; either one failing fails the invocation.
        let swept = beacon_sweeper::handle(registry, now).await;
        let tidied = beacon_sweeper::tidy(subscribers, topic, now).await;
        let (report, metrics) = swept?;
        let (janitor, janitor_metrics) = tidied?;
        beacon_aws::metrics::emit(&[metrics, janitor_metrics]);
        Ok::<_, Error>(serde_json::json!({
            "due": report.due,
            "expired": report.expired,
            "refreshed": report.refreshed,
            "viewer_subscriptions_removed": janitor.unsubscribed,
            "viewer_queues_deleted": janitor.deleted,
        }))
    }))
    .await
}
