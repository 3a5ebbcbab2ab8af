//! The SQS adapter for the [`RefreshQueue`] port: the pages of a large
//! refresh go to a FIFO queue (docs/architecture.md, "Large fan-outs").
//!
//! FIFO for its deduplication, not its order: each page is its own message
//! group, so pages are consumed in parallel, and a page sent twice (its
//! sender retried after the send) within the five-minute window is dropped
//! by SQS instead of starting a second copy of the rest of the refresh.

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use beacon_domain::ports::{RefreshPage, RefreshQueue, StoreError};

/// The refresh queue.
#[derive(Debug, Clone)]
pub struct SqsRefreshQueue {
    client: Client,
    url: String,
}

impl SqsRefreshQueue {
    /// A queue at `url`.
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }
}

#[async_trait]
impl RefreshQueue for SqsRefreshQueue {
    async fn send(&self, page: &RefreshPage) -> Result<(), StoreError> {
        let operation = format!("SendMessage refresh page {} g{}", page.service, page.generation);
        let body = serde_json::to_string(page).map_err(|e| StoreError::shape(operation.clone(), e))?;
        let id = page.dedup_id();
        let result = self
            .client
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(&id)
            .message_deduplication_id(&id)
            .send()
            .await;
        result.map(|_| ()).map_err(|e| queue_error(operation, e))
    }
}

fn queue_error<E, R>(operation: String, err: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    // Only a request SQS refused for what it is (a bad queue URL, no
    // permission, a message too large) is final; the rest pass on retry.
    let retryable = match &err {
        SdkError::ServiceError(_) => {
            !matches!(err.code(), Some("AccessDenied" | "QueueDoesNotExist" | "InvalidParameterValue"))
                && !err.code().is_some_and(|c| c.starts_with("AWS.SimpleQueueService.NonExistentQueue"))
        }
        _ => true,
    };
    let message = match err.message() {
        Some(m) => crate::refusal::describe(err.code().unwrap_or_default(), m),
        None => format!("{}", DisplayErrorContext(&err)),
    };
    StoreError { operation, message, retryable, bad_item: false, source: Some(Box::new(err)) }
}

/// The fluent builder of a `ReceiveMessage`, customisable once.
pub type LongPoll = aws_sdk_sqs::client::customize::CustomizableOperation<
    aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput,
    aws_sdk_sqs::operation::receive_message::ReceiveMessageError,
    aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder,
>;

/// `receive` as a long poll of `wait`: `WaitTimeSeconds` set from `wait`,
/// and the attempt and operation timeouts raised by the same `wait`
/// ([`crate::config::long_poll_timeouts`]), so the one duration cannot
/// disagree with itself and an empty poll is not cut off as a hang.
pub fn long_poll(
    receive: aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder,
    wait: std::time::Duration,
) -> LongPoll {
    receive.wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20)).customize().config_override(
        aws_sdk_sqs::config::Builder::default().timeout_config(crate::config::long_poll_timeouts(wait)),
    )
}
