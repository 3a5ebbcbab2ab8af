//! The page's feed: a temporary queue subscribed to the change topic (with
//! the policy that lets only the topic send), tagged with its owner and a
//! lease kept ahead while the page runs, read by long polls, each event
//! passed on once per `event_id`. On exit the lease is ended, and the
//! sweeper's janitor removes the subscription and the queue.

use std::collections::{HashSet, VecDeque};

use beacon_local::setup::{SetupError, SubscribedQueue, ViewerLease, subscribe_viewer_queue};
use tokio::sync::{broadcast, watch};

/// The clients the feed uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// SQS (the queue).
    pub sqs: aws_sdk_sqs::Client,
    /// SNS (the subscription).
    pub sns: aws_sdk_sns::Client,
    /// Who the viewer is (`aws:userid`, from
    /// `beacon_aws::janitor::caller_user_id`): its queue's `beacon:owner`.
    pub owner: String,
}

/// How many recent `event_id`s are remembered to drop re-deliveries.
const REMEMBERED: usize = 10_000;
/// Events waiting for a slow page before it must re-read the snapshot.
const BACKLOG: usize = 1_024;

/// A subscribed queue and the events read from it.
#[derive(Debug)]
pub struct Feed {
    clients: Clients,
    queue: SubscribedQueue,
    sender: broadcast::Sender<String>,
    reader: tokio::task::JoinHandle<()>,
    lease: tokio::task::JoinHandle<()>,
}

/// Remembers recent ids, forgetting the oldest.
#[derive(Debug, Default)]
pub struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// True the first time `id` is seen.
    pub fn first(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == REMEMBERED
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

impl Feed {
    /// Creates the queue, subscribes it, and starts reading (and keeping
    /// its lease) until `stop`.
    pub async fn subscribe(clients: Clients, topic_arn: &str, stop: watch::Receiver<bool>) -> Result<Self, SetupError> {
        let name = format!("beacon-ui-{}-{}", std::process::id(), beacon::clock::now_millis());
        let lease = ViewerLease::from_env(clients.owner.clone());
        let queue = subscribe_viewer_queue(&clients.sqs, &clients.sns, topic_arn, &name, None, &lease).await?;
        let (sender, _) = broadcast::channel(BACKLOG);
        let reader = tokio::spawn(read(clients.sqs.clone(), queue.url.clone(), sender.clone(), stop));
        let (sqs, kept) = (clients.sqs.clone(), queue.clone());
        let lease = tokio::spawn(async move {
            if let Err(e) = kept.keep_lease(&sqs, &lease).await {
                eprintln!("beacon ui: the live feed stopped: {e}; restart beacon ui");
            }
        });
        Ok(Self { clients, queue, sender, reader, lease })
    }

    /// Where new pages subscribe.
    pub fn sender(&self) -> broadcast::Sender<String> {
        self.sender.clone()
    }

    /// Stops reading and ends the queue's lease: the sweeper's janitor
    /// removes the subscription, then the queue, on its next run (a viewer
    /// may not unsubscribe).
    pub async fn remove(self) {
        self.reader.abort();
        self.lease.abort();
        match self.queue.release(&self.clients.sqs).await {
            Ok(_) => {}
            // Nothing answered: under `beacon dev`, Ctrl-C reaches the local
            // SNS/SQS server too, and the queue went with it.
            Err(aws_sdk_sqs::error::SdkError::DispatchFailure(_)) => {
                tracing::debug!(queue = %self.queue.url, "the SQS endpoint is gone, and the queue with it")
            }
            Err(e) => {
                eprintln!(
                    "beacon ui: could not end the lease of {} (the janitor removes it once the lease passes): {}",
                    self.queue.url,
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                )
            }
        }
    }
}

async fn read(
    sqs: aws_sdk_sqs::Client,
    url: String,
    sender: broadcast::Sender<String>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = Seen::default();
    loop {
        let received = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = beacon_aws::sqs::long_poll(
                sqs.receive_message().queue_url(&url).max_number_of_messages(10),
                std::time::Duration::from_secs(20),
            )
            .send() => r,
        };
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "receiving events failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        for m in messages {
            if let Some(handle) = &m.receipt_handle {
                let _ = sqs.delete_message().queue_url(&url).receipt_handle(handle).send().await;
            }
            let Some(body) = m.body else { continue };
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&body) else { continue };
            // At-least-once delivery: the page shows each change once.
            let Some(id) = event.get("event_id").and_then(|v| v.as_str()) else { continue };
            if seen.first(id) {
                let _ = sender.send(event.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn re_deliveries_are_dropped_and_old_ids_forgotten() {
        let mut seen = Seen::default();
        assert!(seen.first("a"));
        assert!(!seen.first("a"));
        for i in 0..REMEMBERED {
            seen.first(&format!("x{i}"));
        }
        assert!(seen.first("a"), "the oldest id is forgotten past the bound");
        assert_eq!(seen.ids.len(), REMEMBERED);
    }
}
