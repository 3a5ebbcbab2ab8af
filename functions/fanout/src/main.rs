//! The fan-out Lambda: set-up only (STYLE.md): tracing, config, clients, run.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use beacon::aws::{sdk_config, table_from_env, topic_from_env};
use beacon::dynamo::DynamoRegistry;
use beacon::publish::SnsPublisher;
use beacon_fanout::FanOut;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon::logging::init();
    let table = table_from_env()?;
    let topic = topic_from_env()?;
    let config = sdk_config().await;
    let fanout = FanOut::new(
        DynamoRegistry::new(aws_sdk_dynamodb::Client::new(&config), table),
        SnsPublisher::new(aws_sdk_sns::Client::new(&config), topic),
    );
    let fanout = &fanout;
    run(service_fn(move |event: LambdaEvent<Event>| async move {
        let now_ms = beacon::clock::now_millis();
        let (response, report) = fanout.handle(&event.payload, now_ms / 1000).await;
        tracing::info!(
            records = report.records,
            failed = report.failed,
            invalid = report.invalid,
            views_changed = report.views_changed,
            "batch done"
        );
        beacon::metrics::emit(&report.metrics(now_ms));
        Ok::<DynamoDbEventResponse, Error>(response)
    }))
    .await
}
