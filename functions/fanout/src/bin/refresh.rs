//! The refresh-queue consumer Lambda: the pages of large refreshes
//! (docs/architecture.md, "Large fan-outs"). Set-up only (docs/architecture.md, "Crates").

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use beacon_fanout::AwsFanOut;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    beacon_aws::logging::init();
    let fanout = AwsFanOut::from_env().await?;
    let fanout = &fanout;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let (response, report) = fanout.handle_pages(&event.payload, beacon_domain::clock::now_seconds()).await;
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
