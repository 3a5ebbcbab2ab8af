//! The SNS adapter for the [`Publisher`] port.
//!
//! SNS's PublishBatch takes at most 10 entries and 256 KiB in all, and can
//! succeed for some entries and fail for others: every entry's result is
//! checked and reported back per event, so the fan-out can retry exactly the
//! records whose events did not go out.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use beacon_domain::event::Event;
use beacon_domain::ports::{PublishError, Publisher};
use futures::StreamExt as _;

/// Most entries in one PublishBatch call (SNS's limit).
pub const MAX_BATCH_ENTRIES: usize = 10;
/// PublishBatch calls in flight at once.
const PUBLISH_CONCURRENCY: usize = 8;
/// Most bytes of messages and attributes in one PublishBatch call.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// The SNS adapter.
#[derive(Debug, Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
    calls: Arc<AtomicU64>,
    /// Wall time spent in `publish`, in microseconds.
    publishing_us: Arc<AtomicU64>,
}

impl SnsPublisher {
    /// A publisher to `topic_arn`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self { client, topic_arn: topic_arn.into(), calls: Arc::default(), publishing_us: Arc::default() }
    }

    /// Wall time spent publishing so far (for the benchmarks: what share of
    /// a handler's time is SNS's).
    pub fn publishing(&self) -> std::time::Duration {
        std::time::Duration::from_micros(self.publishing_us.load(Ordering::Relaxed))
    }

    /// PublishBatch calls made so far (for the benchmarks).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }
}

fn entry_size(body: &str, attrs: &[(&'static str, String)]) -> usize {
    body.len() + attrs.iter().map(|(k, v)| k.len() + v.len() + "String".len()).sum::<usize>()
}

/// Splits events into PublishBatch-sized chunks (count and bytes), as index
/// ranges into the input.
pub fn chunk(sizes: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut chunks = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, size) in sizes.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES || (i > start && bytes + size > MAX_BATCH_BYTES);
        if full {
            chunks.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        chunks.push(start..sizes.len());
    }
    chunks
}

#[async_trait]
impl Publisher for SnsPublisher {
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let started = std::time::Instant::now();
        let results = self.publish_timed(events).await;
        let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.publishing_us.fetch_add(us, Ordering::Relaxed);
        results
    }
}

impl SnsPublisher {
    async fn publish_timed(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let prepared: Vec<(String, Vec<(&'static str, String)>)> =
            events.iter().map(|e| (e.to_json(), e.message_attributes())).collect();
        let sizes: Vec<usize> = prepared.iter().map(|(b, a)| entry_size(b, a)).collect();
        let mut results: Vec<Result<(), PublishError>> = events.iter().map(|_| Ok(())).collect();
        let mut calls = Vec::new();
        for range in chunk(&sizes) {
            let mut entries = Vec::with_capacity(range.len());
            for i in range.clone() {
                let (body, attrs) = &prepared[i];
                let mut entry = PublishBatchRequestEntry::builder().id(i.to_string()).message(body);
                for (name, value) in attrs {
                    let attr = MessageAttributeValue::builder().data_type("String").string_value(value).build();
                    match attr {
                        Ok(a) => entry = entry.message_attributes(*name, a),
                        Err(e) => results[i] = Err(PublishError::Build(Arc::new(e))),
                    }
                }
                match entry.build() {
                    Ok(e) => entries.push(e),
                    Err(e) => results[i] = Err(PublishError::Build(Arc::new(e))),
                }
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            let send =
                self.client.publish_batch().topic_arn(&self.topic_arn).set_publish_batch_request_entries(Some(entries));
            calls.push(async move { (range, send.send().await) });
        }
        // A large refresh publishes hundreds of batches: several calls in
        // flight, each batch's results checked on its own.
        let outcomes: Vec<_> = futures::stream::iter(calls).buffer_unordered(PUBLISH_CONCURRENCY).collect().await;
        for (range, out) in outcomes {
            match out {
                Ok(out) => {
                    for failed in out.failed.unwrap_or_default() {
                        if let Ok(i) = failed.id.parse::<usize>()
                            && let Some(slot) = results.get_mut(i)
                        {
                            *slot = Err(PublishError::Refused {
                                code: failed.code,
                                message: failed.message.unwrap_or_default(),
                            });
                        }
                    }
                    // An entry SNS neither accepted nor refused is not known
                    // to be published: treat it as failed.
                    let ok: std::collections::HashSet<String> =
                        out.successful.unwrap_or_default().into_iter().filter_map(|s| s.id).collect();
                    for i in range {
                        if results[i].is_ok() && !ok.contains(&i.to_string()) {
                            results[i] = Err(PublishError::Unconfirmed);
                        }
                    }
                }
                Err(e) => {
                    let cause: Arc<dyn std::error::Error + Send + Sync> = Arc::new(e);
                    for i in range {
                        results[i] = Err(PublishError::Transport(cause.clone()));
                    }
                }
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_count_and_bytes() {
        let small = vec![100; 25];
        let c = chunk(&small);
        assert_eq!(c, vec![0..10, 10..20, 20..25]);
        let big = vec![100 * 1024; 5];
        assert_eq!(chunk(&big), vec![0..2, 2..4, 4..5]);
        assert!(chunk(&[]).is_empty());
    }
}
