//! The sweeper Lambda, on a one-minute schedule: set-up only (STYLE.md);
//! the handler is `beacon_sweeper::handle`, the logic `beacon::sweep`.

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use beacon_aws::config::{sdk_config, table_from_env};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let table = table_from_env()?;
    let config = sdk_config().await;
    let registry = beacon_aws::dynamo_registry(&config, table);
    let registry = &registry;
    run(service_fn(move |event: LambdaEvent<EventBridgeEvent>| async move {
        // The schedule's own time is when the sweep was due; the clock is
        // read here, once, and injected.
        let now = event.payload.time.map_or_else(beacon::clock::now_seconds, |t| t.timestamp());
        let (report, metrics) = beacon_sweeper::handle(registry, now).await?;
        beacon_aws::metrics::emit(&[metrics]);
        Ok::<_, Error>(
            serde_json::json!({ "due": report.due, "expired": report.expired, "refreshed": report.refreshed }),
        )
    }))
    .await
}
