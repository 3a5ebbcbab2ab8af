//! The EventBridge adapter for the [`Publisher`] port, and the publisher
//! the fan-out and refresh functions use: SNS always, and an EventBridge bus
//! beside it when the stack names one (`BEACON_EVENT_BUS_ARN`).
//!
//! Each event goes on the bus as it goes to SNS: `detail` is the same JSON
//! body, `detail-type` its kind (`registered`, `expired`, `resolved`, …),
//! `source` the stack's (`beacon.<stage>`). PutEvents takes at most 10
//! entries a call, and SNS's PublishBatch chunking (10 entries, 256 KiB)
//! is kept: EventBridge has allowed larger events since, so it is only
//! conservative. Like PublishBatch, it can accept some entries and refuse
//! others (`ThrottlingException`, `InternalFailure` per entry, which the
//! SDK does not retry): refused entries are resent here a few times with
//! backoff, and an event the bus still did not take fails its record,
//! which the stream mapping retries as it does an SNS failure (and, past
//! its retries, sends to the on-failure queue for redrive). A throttle or
//! an unreachable bus delays events; a retry may repeat one (same
//! `event_id`) on both sides.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    calls: Arc<AtomicU64>,
}

impl EventBridgePublisher {
    /// A publisher onto `bus` (a name or ARN) as `source`.
    pub fn new(client: Client, bus: impl Into<String>, source: impl Into<String>) -> Self {
        Self { client, bus: bus.into(), source: source.into(), calls: Arc::default() }
    }

    /// PutEvents calls made so far, resends included (for the benchmarks).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// The size PutEvents counts for an entry (AWS's "Calculating PutEvents
    /// event entry size": the time, source, detail type, detail and
    /// resources; the bus name is not counted).
    fn entry_size(&self, kind: &str, detail: &str) -> usize {
        14 + self.source.len() + kind.len() + detail.len()
    }
}

/// The entry error codes a resend may clear (AWS's PutEvents guidance:
/// "include them in a subsequent call"). Anything else (a malformed
/// detail, a refusal) is logged and left to the record's retry.
const RESENDABLE: &[&str] = &["ThrottlingException", "InternalFailure", "InternalException"];
/// Resends of refused entries within one publish, after the first call.
const RESENDS: u32 = 3;
/// The first resend's wait; each next one doubles it, with jitter.
const RESEND_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

#[async_trait]
impl Publisher for EventBridgePublisher {
    /// Puts every event; entries the bus refused with a code a resend may
    /// clear are sent again (only they, up to [`RESENDS`] times, backing
    /// off), so a burst of throttling costs a few hundred milliseconds,
    /// not a stream record's retry (which repeats its events on SNS too).
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>> {
        let details: Vec<String> = events.iter().map(Event::to_json).collect();
        let mut results: Vec<Result<(), PublishError>> =
            events.iter().map(|_| Err(PublishError::Unconfirmed)).collect();
        let mut pending: Vec<usize> = (0..events.len()).collect();
        for resend in 0..=RESENDS {
            if resend > 0 {
                // Jitter from the clock's nanoseconds: functions that were
                // throttled together do not come back together.
                let jitter = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::from(d.subsec_nanos()) % 50);
                let wait = RESEND_BACKOFF * 2u32.pow(resend - 1) + std::time::Duration::from_millis(jitter);
                tokio::time::sleep(wait).await;
            }
            for (i, result) in pending.iter().copied().zip(self.put(events, &details, &pending).await) {
                results[i] = result;
            }
            pending.retain(|&i| match &results[i] {
                Err(PublishError::Refused { code, .. }) => RESENDABLE.contains(&code.as_str()),
                _ => false,
            });
            if pending.is_empty() {
                break;
            }
        }
        for result in &results {
            if let Err(PublishError::Refused { code, message }) = result
                && !RESENDABLE.contains(&code.as_str())
            {
                tracing::warn!(bus = %self.bus, code, message, "the bus refused an event for good; its record will be retried and may reach the on-failure queue");
            }
        }
        results
    }
}

impl EventBridgePublisher {
    /// One PutEvents round for the events at `indices`: a result for each,
    /// in that order.
    async fn put(&self, events: &[Event], details: &[String], indices: &[usize]) -> Vec<Result<(), PublishError>> {
        let sizes: Vec<usize> = indices.iter().map(|&i| self.entry_size(events[i].kind(), &details[i])).collect();
        let mut results: Vec<Result<(), PublishError>> = indices.iter().map(|_| Ok(())).collect();
        let mut calls = Vec::new();
        for range in chunk(&sizes) {
            let entries: Vec<PutEventsRequestEntry> = indices[range.clone()]
                .iter()
                .map(|&i| {
                    PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(&self.source)
                        .detail_type(events[i].kind())
                        .detail(&details[i])
                        .build()
                })
                .collect();
            self.calls.fetch_add(1, Ordering::Relaxed);
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
                    for (n, k) in range.enumerate() {
                        results[k] = match answered.get(n) {
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
                    for k in range {
                        results[k] = Err(PublishError::Transport(cause.clone()));
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
