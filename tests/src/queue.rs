//! An SQS queue a test reads events from.

use std::time::{Duration, Instant};

use serde_json::Value;

/// An SQS queue the tests read events from.
pub struct Queue {
    /// Its URL.
    pub url: String,
    /// Its ARN.
    pub arn: String,
    pub(crate) sqs: aws_sdk_sqs::Client,
}

impl Queue {
    /// A queue the test made itself (a rule's target, say).
    pub fn at(url: String, arn: String, sqs: aws_sdk_sqs::Client) -> Self {
        Self { url, arn, sqs }
    }

    /// Receives what is available now (one short poll of up to 10 messages),
    /// deleting what it receives.
    pub async fn receive_once(&self) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receiving");
        let mut bodies = Vec::new();
        for m in out.messages.unwrap_or_default() {
            if let Some(handle) = &m.receipt_handle {
                let _ = self.sqs.delete_message().queue_url(&self.url).receipt_handle(handle).send().await;
            }
            if let Some(body) = m.body {
                bodies.push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
            }
        }
        bodies
    }

    /// Receives until `done` holds for everything received so far, or
    /// `limit` passes; returns everything received.
    pub async fn receive_until(&self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        let mut all = Vec::new();
        while start.elapsed() < limit {
            let got = self.receive_once().await;
            let empty = got.is_empty();
            all.extend(got);
            if done(&all) {
                return all;
            }
            if empty {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        all
    }

    /// Receives everything that arrives within `window` (to show that
    /// nothing more arrives).
    pub async fn receive_for(&self, window: Duration) -> Vec<Value> {
        self.receive_until(window, |_| false).await
    }
}
