//! The fan-out Lambda: set-up only (docs/architecture.md, "Crates"): tracing, config, clients, run.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use beacon_fanout::AwsFanOut;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let fanout = AwsFanOut::from_env().await?;
    let fanout = &fanout;
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        let now_ms = beacon_domain::clock::now_millis();
        let (response, report) = fanout.handle(&event.payload, now_ms / 1000).await;
        tracing::info!(
            records = report.records,
            failed = report.failed,
            invalid = report.invalid,
            views_changed = report.views_changed,
            pages_queued = report.pages_queued,
            "batch done"
        );
        beacon_aws::metrics::emit(&report.metrics(now_ms));
        Ok::<DynamoDbEventResponse, Error>(response)
    }))
    .await
}
