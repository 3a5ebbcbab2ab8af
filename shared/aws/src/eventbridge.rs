//! The EventBridge adapter for the [`Publisher`] port, and the publisher
//! the fan-out and refresh functions use: SNS always, and an EventBridge bus
//! beside it when the stack names one (`BEACON_EVENT_BUS_ARN`).
//!
//! Each event goes on the bus as it goes to SNS: `detail` is the same JSON
//! body, `detail-type` its kind (`registered`, `expired`, `resolved`, …),
//! `source` the stack's (`beacon.<stage>`). PutEvents takes at most 10
//! entries and 256 KiB, the limits SNS's PublishBatch has, so the same
//! chunking applies; and it too can accept some entries and refuse others
//! (`ThrottlingException`, `InternalFailure` per entry): every entry's
//! result is checked and reported per event, and an event the bus did not
//! take fails its record, which the stream mapping retries as it does an
//! SNS failure. Nothing is dropped when the bus throttles or is
//! unreachable; a retry may repeat an event (same `event_id`) on both.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use beacon_domain::event::Event;
use beacon_domain::ports::{PublishError, Publisher};
use futures::StreamExt as _;

use crate::sns::{SnsPublisher, chunk};

/// PutEvents calls in flight at once.
const PUT_CONCURRENCY: usize = 8;

/// The EventBridge adapter: events onto one bus, under one source.
#[derive(Debug, Clone)]
pub struct EventBridgePublisher {
    client: Client,
    bus: String,
    source: String,
}

impl EventBridgePublisher {
    /// A publisher onto `bus` (a name or ARN) as `source`.
    pub fn new(client: Client, bus: impl Into<String>, source: impl Into<String>) -> Self {
        Self { client, bus: bus.into(), source: source.into() }
    }

    /// The size PutEvents counts for an entry (AWS's "Calculating PutEvents
    /// event entry size": the time, source, detail type, detail and
    /// resources; the bus name is not counted).
    fn entry_size(&self, kind: &str, detail: &str) -> usize {
        14 + self.source.len() + kind.len() + detail.len()
    }
}

#[async_trait]
impl Publisher for EventBridgePublisher {
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let details: Vec<String> = events.iter().map(Event::to_json).collect();
        let sizes: Vec<usize> = events.iter().zip(&details).map(|(e, d)| self.entry_size(e.kind(), d)).collect();
        let mut results: Vec<Result<(), PublishError>> = events.iter().map(|_| Ok(())).collect();
        let mut calls = Vec::new();
        for range in chunk(&sizes) {
            let entries: Vec<PutEventsRequestEntry> = range
                .clone()
                .map(|i| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(&self.source)
                        .detail_type(events[i].kind())
                        .detail(&details[i])
                        .build()
                })
                .collect();
            let send = self.client.put_events().set_entries(Some(entries));
            calls.push(async move { (range, send.send().await) });
        }
        let outcomes: Vec<_> = futures::stream::iter(calls).buffer_unordered(PUT_CONCURRENCY).collect().await;
        for (range, out) in outcomes {
            match out {
                // PutEvents answers one entry per entry sent, in order: an
                // error code, or the event id it was stored under.
                Ok(out) => {
                    let answered = out.entries.unwrap_or_default();
                    for (n, i) in range.enumerate() {
                        results[i] = match answered.get(n) {
                            Some(e) if e.error_code.is_some() => Err(PublishError::Refused {
                                code: e.error_code.clone().unwrap_or_default(),
                                message: e.error_message.clone().unwrap_or_default(),
                            }),
                            Some(e) if e.event_id.is_some() => Ok(()),
                            _ => Err(PublishError::Unconfirmed),
                        };
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

/// What the fan-out and refresh functions publish through: the topic, and
/// the bus when one is configured. An event is published when both took it;
/// otherwise its record is retried and both may see it again.
#[derive(Debug, Clone)]
pub struct ChangePublisher {
    sns: SnsPublisher,
    bus: Option<EventBridgePublisher>,
}

impl ChangePublisher {
    /// SNS only.
    pub fn new(sns: SnsPublisher) -> Self {
        Self { sns, bus: None }
    }

    /// SNS and `bus` beside it.
    pub fn with_bus(self, bus: EventBridgePublisher) -> Self {
        Self { bus: Some(bus), ..self }
    }

    /// The SNS side (the benchmarks read its counters).
    pub fn sns(&self) -> &SnsPublisher {
        &self.sns
    }
}

#[async_trait]
impl Publisher for ChangePublisher {
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let Some(bus) = &self.bus else {
            return self.sns.publish(events).await;
        };
        let (topic, bus) = futures::join!(self.sns.publish(events), bus.publish(events));
        topic.into_iter().zip(bus).map(|(t, b)| t.and(b)).collect()
    }
}
