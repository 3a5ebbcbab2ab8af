//! Where the fan-out meets Lambda's types: a DynamoDB stream event decoded
//! into the domain's records, and the partial batch response built from
//! what [`FanOut::handle_records`] says to retry. Nothing else in the crate
//! names a Lambda stream type (the refresh function's SQS event is
//! `pages`').

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use beacon_aws::stream::{sequence_number, stream_change};
use beacon_domain::ports::{FanOutStore, Publisher, RefreshQueue};

use crate::{BatchReport, FanOut, Record};

/// Decodes a Lambda DynamoDB stream event (the only place the handler
/// meets the Lambda type).
pub fn decode(event: &StreamEvent) -> Vec<Record> {
    event
        .records
        .iter()
        .map(|r| Record {
            change: stream_change(r),
            item_identifier: sequence_number(r).unwrap_or(&r.event_id).to_owned(),
        })
        .collect()
}

impl<R: FanOutStore, P: Publisher, Q: RefreshQueue> FanOut<R, P, Q> {
    /// Handles one stream batch at `now` (epoch seconds).
    pub async fn handle(&self, event: &StreamEvent, now: i64) -> (DynamoDbEventResponse, BatchReport) {
        let records = decode(event);
        let (failed, report) = self.handle_records(&records, now).await;
        let mut response = DynamoDbEventResponse::default();
        response.batch_item_failures = failed
            .into_iter()
            .map(|id| {
                let mut f = DynamoDbBatchItemFailure::default();
                f.item_identifier = Some(id);
                f
            })
            .collect();
        (response, report)
    }
}
