//! The sweeper Lambda, on a one-minute schedule: set-up only (STYLE.md);
//! the logic is `beacon::sweep`.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use beacon::aws::{sdk_config, table_from_env};
use beacon::dynamo::DynamoRegistry;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon::logging::init();
    let table = table_from_env()?;
    let config = sdk_config().await;
    let registry = DynamoRegistry::new(aws_sdk_dynamodb::Client::new(&config), table);
    let registry = &registry;
    run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| async move {
        // The schedule's own time is when the sweep was due; the clock is
        // read here, once, and injected.
        let now = event.payload.time.map_or_else(beacon::clock::now_seconds, |t| t.timestamp());
        let report = beacon::sweep::sweep(registry, now).await?;
        tracing::info!(due = report.due, expired = report.expired, refreshed = report.refreshed, "sweep done");
        let count = |name, v: usize| beacon::metrics::Metric { name, value: v as f64, unit: "Count" };
        beacon::metrics::emit(&[beacon::metrics::document(
            &[("Function", "sweeper")],
            &[
                count("Due", report.due),
                count("Expired", report.expired),
                count("RefreshedBeforeSweep", report.refreshed),
            ],
            now * 1000,
        )]);
        Ok::<_, Error>(
            serde_json::json!({ "due": report.due, "expired": report.expired, "refreshed": report.refreshed }),
        )
    }))
    .await
}
