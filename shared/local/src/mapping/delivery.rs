//! Delivering a batch: invoking the handler as Lambda would (reading its
//! partial batch response), and the on-failure queue's message when the
//! retries run out.

use std::sync::atomic::Ordering;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use serde_json::{Value, json};
use tracing::warn;

use super::{InvokeError, Poller};

impl Poller {
    /// Invokes the handler. `Ok(None)`: all done; `Ok(Some(i))`: the batch
    /// must be retried from its `i`th record; `Err`: the function failed.
    pub(super) async fn invoke(&self, batch: &[(String, Value)]) -> Result<Option<usize>, InvokeError> {
        let records: Vec<Value> = batch.iter().map(|(_, v)| v.clone()).collect();
        let event: StreamEvent = serde_json::from_value(json!({ "Records": records }))?;
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.stats.records_delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
        let response = (self.handler)(event).await.map_err(InvokeError::Function)?;
        let failed: Vec<&str> =
            response.batch_item_failures.iter().filter_map(|f| f.item_identifier.as_deref()).collect();
        if failed.is_empty() {
            return Ok(None);
        }
        // Lambda retries from the lowest failed sequence number; an
        // identifier that names no record in the batch fails the whole batch.
        let lowest = batch.iter().position(|(seq, _)| failed.contains(&seq.as_str()));
        Ok(Some(lowest.unwrap_or(0)))
    }

    pub(super) async fn send_to_on_failure(&self, shard: &str, failed: &[(String, Value)], attempts: u32) {
        self.stats.sent_to_on_failure.fetch_add(1, Ordering::Relaxed);
        let (Some(sqs), Some(url)) = (&self.sqs, &self.config.on_failure_queue_url) else {
            warn!(shard, "no on-failure queue configured; the batch is dropped");
            return;
        };
        let arrival = |v: &Value| v["dynamodb"]["ApproximateCreationDateTime"].clone();
        // The shape AWS sends for stream sources: batch metadata, not records.
        let body = json!({
            "requestContext": { "condition": "RetryAttemptsExhausted", "approximateInvokeCount": attempts },
            "version": "1.0",
            "timestamp": beacon_domain::clock::now_seconds(),
            "DDBStreamBatchInfo": {
                "shardId": shard,
                "startSequenceNumber": failed.first().map(|(s, _)| s.clone()),
                "endSequenceNumber": failed.last().map(|(s, _)| s.clone()),
                "approximateArrivalOfFirstRecord": failed.first().map(|(_, v)| arrival(v)),
                "approximateArrivalOfLastRecord": failed.last().map(|(_, v)| arrival(v)),
                "batchSize": failed.len(),
                "streamArn": self.stream_arn,
            }
        });
        if let Err(e) = sqs.send_message().queue_url(url).message_body(body.to_string()).send().await {
            warn!(shard, error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not send to the on-failure queue");
        }
    }
}
