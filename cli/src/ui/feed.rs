//! The page's feed: a temporary queue subscribed to the change topic (with
//! the policy that lets only the topic send), tagged with its owner and a
//! lease kept ahead while the page runs, read by long polls, each event
//! passed on once per `event_id`. On exit the lease is ended, and the
//! sweeper's janitor removes the subscription and the queue.

use std::collections::{HashSet, VecDeque};

use beacon_aws::viewer::{CallError, EventQueue, Released, ViewerLease};
use tokio::sync::{broadcast, watch};

/// The clients the feed uses.
#[derive(Debug, Clone)]
pub struct Clients {
    /// SNS and SQS.
    pub aws: beacon_aws::viewer::Clients,
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
    queue: EventQueue,
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
    pub async fn subscribe(clients: Clients, topic_arn: &str, stop: watch::Receiver<bool>) -> Result<Self, CallError> {
        let name = format!("beacon-ui-{}-{}", std::process::id(), beacon_domain::clock::now_millis());
        let lease = ViewerLease::from_env(clients.owner.clone());
        let queue = EventQueue::viewer(&clients.aws, topic_arn, &name, None, &lease).await?;
        let (sender, _) = broadcast::channel(BACKLOG);
        let reader = tokio::spawn(read(queue.clone(), sender.clone(), stop));
        let kept = queue.clone();
        let lease = tokio::spawn(async move {
            if let Err(e) = kept.keep_lease(&lease).await {
                eprintln!("beacon ui: the live feed stopped: {e}; restart beacon ui");
            }
        });
        Ok(Self { queue, sender, reader, lease })
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
        match self.queue.release().await {
            Ok(Released::Done) => {}
            Ok(Released::EndpointGone) => {
                tracing::debug!(queue = %self.queue.queue().url, "the SQS endpoint is gone, and the queue with it")
            }
            Err(e) => eprintln!(
                "beacon ui: could not end the lease of {} (the janitor removes it once the lease passes): {e}",
                self.queue.queue().url
            ),
        }
    }
}

async fn read(queue: EventQueue, sender: broadcast::Sender<String>, mut stop: watch::Receiver<bool>) {
    let mut seen = Seen::default();
    loop {
        let received = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            r = queue.receive(std::time::Duration::from_secs(20)) => r,
        };
        let bodies = match received {
            Ok(bodies) => bodies,
            Err(e) => {
                tracing::warn!(error = %e, "receiving events failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        for body in bodies {
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
