//! Lambda's SQS event source mapping, for the refresh queue (AWS runs it
//! for the refresh function; docs/architecture.md, "Large fan-outs").
//!
//! As AWS does: several pollers each receive up to a batch of messages,
//! invoke the handler with the SQS event Lambda would send, and delete the
//! messages the handler did not name in `batchItemFailures` (none if the
//! invocation failed). A message left undeleted comes back when its
//! visibility timeout ends; after the queue's `maxReceiveCount` receives
//! the SQS server moves it to the dead-letter queue (its redrive policy).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use futures::future::BoxFuture;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::mapping::FunctionError;

/// The function behind the mapping: an SQS event in, a partial batch
/// response out.
pub type QueueHandler =
    Arc<dyn Fn(SqsEvent) -> BoxFuture<'static, Result<SqsBatchResponse, FunctionError>> + Send + Sync>;

/// How the mapping polls.
#[derive(Debug, Clone)]
pub struct QueueMappingConfig {
    /// Messages per invocation (the template's `BatchSize`).
    pub batch_size: i32,
    /// Pollers, each running one invocation at a time: the mapping's
    /// maximum concurrency (the template's `RefreshConcurrency`). Locally
    /// 2: DynamoDB Local is one process, and more pages in flight only
    /// queue there, slowing every other change behind them.
    pub pollers: usize,
    /// Long-poll wait per ReceiveMessage.
    pub wait: Duration,
}

impl Default for QueueMappingConfig {
    fn default() -> Self {
        Self { batch_size: 1, pollers: 2, wait: Duration::from_secs(1) }
    }
}

/// What the mapping has done.
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Handler invocations.
    pub invocations: AtomicU64,
    /// Messages deleted after success.
    pub succeeded: AtomicU64,
    /// Messages left for redelivery (named as failures, or in a failed
    /// invocation).
    pub failed: AtomicU64,
}

/// A running SQS event source mapping.
#[derive(Debug)]
pub struct QueueMapping {
    stats: Arc<QueueStats>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl QueueMapping {
    /// Starts polling `queue_url` (whose ARN is `queue_arn`) into `handler`.
    pub fn start(
        sqs: &aws_sdk_sqs::Client,
        queue_url: &str,
        queue_arn: &str,
        region: &str,
        config: QueueMappingConfig,
        handler: QueueHandler,
    ) -> Self {
        let (stop, rx) = watch::channel(false);
        let stats = Arc::new(QueueStats::default());
        let mut tasks = JoinSet::new();
        for _ in 0..config.pollers.max(1) {
            let poller = Poller {
                sqs: sqs.clone(),
                url: queue_url.to_owned(),
                arn: queue_arn.to_owned(),
                region: region.to_owned(),
                config: config.clone(),
                handler: handler.clone(),
                stats: stats.clone(),
            };
            tasks.spawn(poller.run(rx.clone()));
        }
        Self { stats, stop, tasks }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<QueueStats> {
        self.stats.clone()
    }

    /// Stops the pollers after their current invocation.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let _ =
            tokio::time::timeout(Duration::from_secs(30), async { while self.tasks.join_next().await.is_some() {} })
                .await;
    }

    /// Runs until `shutdown` turns true, then stops.
    pub async fn run_until(self, mut shutdown: watch::Receiver<bool>) {
        let _ = shutdown.wait_for(|stop| *stop).await;
        self.stop().await;
    }
}

struct Poller {
    sqs: aws_sdk_sqs::Client,
    url: String,
    arn: String,
    region: String,
    config: QueueMappingConfig,
    handler: QueueHandler,
    stats: Arc<QueueStats>,
}

impl Poller {
    async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let received = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                r = beacon_aws::sqs::long_poll(
                    self.sqs
                        .receive_message()
                        .queue_url(&self.url)
                        .max_number_of_messages(self.config.batch_size.clamp(1, 10))
                        .message_system_attribute_names(MessageSystemAttributeName::All),
                    self.config.wait,
                )
                .send() => r,
            };
            let messages = match received {
                Ok(out) => out.messages.unwrap_or_default(),
                Err(e) => {
                    tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "ReceiveMessage failed; polling again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if messages.is_empty() {
                // The SQS server may answer a long poll at once.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            self.invoke(messages).await;
        }
    }

    async fn invoke(&self, messages: Vec<aws_sdk_sqs::types::Message>) {
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let outcome = match self.event(&messages) {
            Ok(event) => (self.handler)(event).await,
            Err(e) => Err(FunctionError::from(format!("building the SQS event: {e}"))),
        };
        let failed: Vec<String> = match outcome {
            Ok(response) => response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "refresh invocation failed; its messages come back after their visibility timeout");
                messages.iter().filter_map(|m| m.message_id.clone()).collect()
            }
        };
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .filter(|m| !m.message_id.as_ref().is_some_and(|id| failed.contains(id)))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        self.stats.failed.fetch_add(failed.len() as u64, Ordering::Relaxed);
        self.stats.succeeded.fetch_add(entries.len() as u64, Ordering::Relaxed);
        if entries.is_empty() {
            return;
        }
        if let Err(e) = self.sqs.delete_message_batch().queue_url(&self.url).set_entries(Some(entries)).send().await {
            // As in AWS: the messages come back and are handled again.
            tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "DeleteMessageBatch failed");
        }
    }

    /// The event Lambda would send for these messages.
    fn event(&self, messages: &[aws_sdk_sqs::types::Message]) -> Result<SqsEvent, serde_json::Error> {
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, serde_json::Value> = m
                    .attributes
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), serde_json::Value::String(v.clone())))
                    .collect();
                serde_json::json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "md5OfBody": m.md5_of_body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "eventSource": "aws:sqs",
                    "eventSourceARN": self.arn,
                    "awsRegion": self.region,
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": records }))
    }
}
