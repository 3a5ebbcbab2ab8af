//! What the benchmarks share: percentiles, and a subscriber queue drained
//! by a task that stamps when each event arrived.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use tokio::sync::{Mutex, watch};

/// The `p` quantile (0 to 1) of an ascending list, nearest rank; NaN when
/// empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// The benchmarks' `i`-th change: a new healthy instance `i<i>` of one of
/// ten services with no dependents (`svc0`…`svc9`).
pub fn change(i: usize) -> beacon_domain::Registration {
    let (service, id) = (format!("svc{}", i % 10), format!("i{i}"));
    beacon_domain::Registration::new_at(
        &service,
        "1.0.0",
        &id,
        "https://x.example",
        beacon_domain::Status::Healthy,
        3600,
        crate::now(),
    )
    .expect("a valid registration")
}

/// When each event arrived, by the key `key` reads from its body.
pub type Receipts = Arc<Mutex<HashMap<String, Instant>>>;

/// Drains `url` until `stop` turns true, deleting what it receives and
/// stamping each event's first arrival under `key(body)` (events it gives
/// no key are skipped).
pub fn stamp_receipts(
    sqs: aws_sdk_sqs::Client,
    url: String,
    stop: watch::Receiver<bool>,
    key: fn(&Value) -> Option<String>,
) -> (Receipts, tokio::task::JoinHandle<()>) {
    let received: Receipts = Arc::default();
    let seen = received.clone();
    let task = tokio::spawn(async move {
        while !*stop.borrow() {
            let Ok(out) =
                sqs.receive_message().queue_url(&url).max_number_of_messages(10).wait_time_seconds(1).send().await
            else {
                continue;
            };
            let at = Instant::now();
            for m in out.messages.unwrap_or_default() {
                if let Some(h) = &m.receipt_handle {
                    let _ = sqs.delete_message().queue_url(&url).receipt_handle(h).send().await;
                }
                let v: Value = serde_json::from_str(m.body.as_deref().unwrap_or("{}")).unwrap_or_default();
                if let Some(k) = key(&v) {
                    seen.lock().await.entry(k).or_insert(at);
                }
            }
        }
    });
    (received, task)
}
