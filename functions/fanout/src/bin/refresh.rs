//! The refresh-queue consumer Lambda: the pages of large refreshes
//! (docs/architecture.md, "Large fan-outs"). Set-up only (STYLE.md).

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use beacon_aws::config::{refresh_queue_from_env, sdk_config, table_from_env, topic_from_env};
use beacon_fanout::FanOut;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let table = table_from_env()?;
    let topic = topic_from_env()?;
    let queue = refresh_queue_from_env()?;
    let config = sdk_config().await;
    let fanout = FanOut::new(
        beacon_aws::dynamo_registry(&config, table),
        beacon_aws::sns_publisher(&config, topic),
        beacon_aws::refresh_queue(&config, queue),
    );
    let fanout = &fanout;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let (response, report) = fanout.handle_pages(&event.payload).await;
        tracing::info!(
            pages = report.pages,
            superseded = report.superseded,
            views_changed = report.views_changed,
            published = report.published,
            failed = report.failed,
            "pages done"
        );
        Ok::<SqsBatchResponse, Error>(response)
    }))
    .await
}
