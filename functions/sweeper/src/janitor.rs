//! The janitor: removes what registry viewers (`beacon watch`, `beacon ui`)
//! leave behind, on each of the sweeper's runs. Viewers may neither list nor
//! remove subscriptions (IAM cannot limit `sns:Unsubscribe` to one's own), so
//! a viewer tags its queue with a lease it keeps pushing ahead, and on exit
//! lets the lease lapse; the janitor then
//!
//! - unsubscribes every subscription of the topic whose endpoint is a viewer
//!   queue (in the topic's account and region) that no longer exists, and
//! - for every viewer queue subscribed to the topic whose lease has passed,
//!   unsubscribes its subscriptions and then deletes it (in that order, so
//!   no subscription ever points at a missing queue; a queue whose
//!   unsubscribe failed is kept for the next run); a viewer queue subscribed
//!   to none of the topic's subscriptions is deleted once its lease has
//!   passed by [`UNSUBSCRIBED_GRACE`] (it may follow another stack's topic,
//!   whose janitor removes it with its subscription first).
//!
//! A viewer queue without a lease tag (made by an older `beacon`; no viewer
//! of this version makes one) counts as leased until [`UNSUBSCRIBED_GRACE`]
//! after its creation.
//!
//! It touches nothing else: not a subscription whose viewer queue exists
//! and whose lease holds, not any queue or subscription that is not a
//! viewer's (the pipeline's queues, users' queues, other protocols, other
//! accounts and regions).
//!
//! What to remove is decided by [`plan`], a pure function; [`run`] carries it
//! out over the [`Subscribers`] port.

use std::collections::BTreeMap;

use beacon_domain::ports::{StoreError, Subscribers, TopicSubscription, VIEWER_QUEUE_PREFIXES, ViewerQueue};

/// Whether `name` is a viewer queue's name.
pub fn is_viewer_queue(name: &str) -> bool {
    VIEWER_QUEUE_PREFIXES.iter().any(|p| name.len() > p.len() && name.starts_with(p))
}

/// The parts of an ARN the janitor compares: partition, region, account
/// and resource (`arn:partition:service:region:account:resource`).
fn arn_parts(arn: &str) -> Option<(&str, &str, &str, &str, &str)> {
    let mut it = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) =
        (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    (prefix == "arn").then_some((partition, service, region, account, resource))
}

/// The viewer queue an `sqs` subscription's endpoint names, if it is one in
/// the topic's partition, region and account (the only ones the janitor
/// lists and may remove).
pub fn viewer_queue_of<'a>(subscription: &'a TopicSubscription, topic_arn: &str) -> Option<&'a str> {
    if subscription.protocol != "sqs" {
        return None;
    }
    let (partition, service, region, account, name) = arn_parts(&subscription.endpoint)?;
    let (t_partition, _, t_region, t_account, _) = arn_parts(topic_arn)?;
    (service == "sqs"
        && (partition, region, account) == (t_partition, t_region, t_account)
        && is_viewer_queue(name)
        && !name.contains(':'))
    .then_some(name)
}

/// Whether a listed subscription ARN can be removed (SNS lists unconfirmed
/// ones as `PendingConfirmation`; they cannot be unsubscribed and lapse).
fn confirmed(subscription: &TopicSubscription) -> bool {
    subscription.arn.starts_with("arn:")
}

/// What one run removes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Subscriptions whose viewer queue was not listed: `(subscription ARN,
    /// queue name)`; each is removed once the queue is confirmed gone.
    pub orphaned: Vec<(String, String)>,
    /// Viewer queues whose lease has passed, each with the subscriptions to
    /// remove before it.
    pub lapsed: Vec<(ViewerQueue, Vec<String>)>,
}

/// Decides what to remove at `now` from the topic's `subscriptions` (listed
/// first) and the viewer `queues` (listed after them, so a queue created
/// before its subscription was listed is in the list).
pub fn plan(topic_arn: &str, subscriptions: &[TopicSubscription], queues: &[ViewerQueue], now: i64) -> Plan {
    let by_name: BTreeMap<&str, &ViewerQueue> = queues.iter().map(|q| (q.name.as_str(), q)).collect();
    let mut subscribed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut plan = Plan::default();
    for s in subscriptions.iter().filter(|s| confirmed(s)) {
        let Some(name) = viewer_queue_of(s, topic_arn) else { continue };
        if by_name.contains_key(name) {
            subscribed.entry(name).or_default().push(s.arn.clone());
        } else {
            plan.orphaned.push((s.arn.clone(), name.to_owned()));
        }
    }
    for q in queues.iter().filter(|q| is_viewer_queue(&q.name)) {
        // A queue without a lease (made by an older `beacon`; no viewer of
        // this version makes one) counts as leased for the grace after its
        // creation.
        let lease = q.lease.or_else(|| q.created.map(|c| c.saturating_add(UNSUBSCRIBED_GRACE)));
        let Some(lease) = lease.filter(|lease| *lease < now) else { continue };
        let subscriptions = subscribed.remove(q.name.as_str()).unwrap_or_default();
        // A queue subscribed to another stack's topic is that stack's
        // janitor's to remove (it also removes the subscription); one
        // subscribed nowhere (its viewer died before subscribing) is
        // removed by any janitor, once the others have had their turn.
        if !subscriptions.is_empty() || lease.saturating_add(UNSUBSCRIBED_GRACE) < now {
            plan.lapsed.push((q.clone(), subscriptions));
        }
    }
    plan
}

/// How long past its lease a viewer queue not subscribed to this topic is
/// left for the janitor of the stack whose topic it follows (seconds).
pub const UNSUBSCRIBED_GRACE: i64 = 600;

/// What one run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JanitorReport {
    /// Subscriptions removed.
    pub unsubscribed: usize,
    /// Viewer queues deleted.
    pub deleted: usize,
    /// Calls that failed (each is tried again by the next run).
    pub failed: usize,
}

/// One run at `now`: lists, plans, removes. A failed removal is logged and
/// counted, and the rest go on; only a failed listing fails the run.
pub async fn run(port: &impl Subscribers, topic_arn: &str, now: i64) -> Result<JanitorReport, StoreError> {
    let subscriptions = port.subscriptions().await?;
    let queues = port.viewer_queues().await?;
    let plan = plan(topic_arn, &subscriptions, &queues, now);
    let mut report = JanitorReport::default();
    for (arn, name) in &plan.orphaned {
        match port.queue_exists(name).await {
            Ok(false) => {
                tracing::info!(subscription = %arn, queue = %name, "janitor: the viewer's queue is gone");
                unsubscribe(port, arn, &mut report).await;
            }
            Ok(true) => {}
            Err(e) => {
                tracing::warn!(queue = %name, error = %e, "janitor: could not tell whether the queue exists");
                report.failed += 1;
            }
        }
    }
    for (queue, arns) in &plan.lapsed {
        tracing::info!(queue = %queue.name, lease = ?queue.lease, "janitor: the viewer's lease has passed");
        let mut all = true;
        for arn in arns {
            all &= unsubscribe(port, arn, &mut report).await;
        }
        if !all {
            continue;
        }
        match port.delete_queue(&queue.url).await {
            Ok(()) => report.deleted += 1,
            Err(e) => {
                tracing::warn!(queue = %queue.name, error = %e, "janitor: delete failed; the next run retries");
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

/// Removes one subscription; false (logged, counted) when that failed.
async fn unsubscribe(port: &impl Subscribers, arn: &str, report: &mut JanitorReport) -> bool {
    match port.unsubscribe(arn).await {
        Ok(()) => {
            report.unsubscribed += 1;
            true
        }
        Err(e) => {
            tracing::warn!(subscription = arn, error = %e, "janitor: unsubscribe failed; the next run retries");
            report.failed += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:beacon-changes-dev";

    fn sub(arn: &str, protocol: &str, endpoint: &str) -> TopicSubscription {
        TopicSubscription { arn: arn.into(), protocol: protocol.into(), endpoint: endpoint.into() }
    }

    fn sqs_sub(n: u32, queue: &str) -> TopicSubscription {
        sub(&format!("{TOPIC}:s{n}"), "sqs", &format!("arn:aws:sqs:us-east-1:123456789012:{queue}"))
    }

    fn queue(name: &str, lease: Option<i64>) -> ViewerQueue {
        ViewerQueue { name: name.into(), url: format!("https://sqs/123456789012/{name}"), lease, created: None }
    }

    #[test]
    fn viewer_queues_are_known_by_their_prefix_only() {
        assert!(is_viewer_queue("beacon-watch-1-2"));
        assert!(is_viewer_queue("beacon-ui-1-2"));
        for other in ["beacon-watch-", "beacon-on-failure-dev", "beacon-refresh-dev.fifo", "mine", "x-beacon-ui-1"] {
            assert!(!is_viewer_queue(other), "{other}");
        }
    }

    #[test]
    fn only_sqs_endpoints_in_the_topics_account_and_region_are_viewers() {
        assert_eq!(viewer_queue_of(&sqs_sub(1, "beacon-ui-1-2"), TOPIC), Some("beacon-ui-1-2"));
        for (protocol, endpoint) in [
            ("sqs", "arn:aws:sqs:us-east-1:123456789012:mine"),
            ("sqs", "arn:aws:sqs:us-east-1:999999999999:beacon-ui-1-2"),
            ("sqs", "arn:aws:sqs:eu-west-1:123456789012:beacon-ui-1-2"),
            ("sqs", "arn:aws-cn:sqs:us-east-1:123456789012:beacon-ui-1-2"),
            ("sqs", "arn:aws:sns:us-east-1:123456789012:beacon-ui-1-2"),
            ("sqs", "beacon-ui-1-2"),
            ("https", "https://example.com/beacon-ui-1-2"),
            ("lambda", "arn:aws:lambda:us-east-1:123456789012:function:beacon-ui-1-2"),
        ] {
            assert_eq!(viewer_queue_of(&sub("arn:s", protocol, endpoint), TOPIC), None, "{protocol} {endpoint}");
        }
    }

    #[test]
    fn a_subscription_whose_viewer_queue_is_gone_is_orphaned() {
        let subs = [sqs_sub(1, "beacon-watch-1-2"), sqs_sub(2, "beacon-ui-3-4")];
        let queues = [queue("beacon-ui-3-4", Some(1_000))];
        let p = plan(TOPIC, &subs, &queues, 500);
        assert_eq!(p.orphaned, vec![(format!("{TOPIC}:s1"), "beacon-watch-1-2".to_owned())]);
        assert!(p.lapsed.is_empty(), "a live lease is left alone");
    }

    #[test]
    fn a_lapsed_queue_goes_with_all_its_subscriptions_and_a_live_one_stays() {
        let subs = [sqs_sub(1, "beacon-watch-1-2"), sqs_sub(2, "beacon-watch-1-2"), sqs_sub(3, "beacon-ui-5-6")];
        let queues = [
            queue("beacon-watch-1-2", Some(9_999)),
            queue("beacon-ui-5-6", Some(10_000)),
            queue("beacon-ui-7-8", Some(10_000 - UNSUBSCRIBED_GRACE - 1)),
            queue("beacon-ui-9-9", Some(10_000 - UNSUBSCRIBED_GRACE)),
        ];
        let p = plan(TOPIC, &subs, &queues, 10_000);
        assert!(p.orphaned.is_empty());
        assert_eq!(
            p.lapsed,
            vec![
                (queues[0].clone(), vec![format!("{TOPIC}:s1"), format!("{TOPIC}:s2")]),
                // Killed between CreateQueue and Subscribe (or following
                // another stack's topic): no subscription here, so only
                // after the grace.
                (queues[2].clone(), vec![]),
            ],
            "a lease at `now` has not passed yet"
        );
    }

    use beacon_domain::memory_ports::MemorySubscribers as Memory;

    #[tokio::test]
    async fn a_queue_missing_from_the_listing_but_there_keeps_its_subscription() {
        let port = Memory {
            subscriptions: vec![sqs_sub(1, "beacon-watch-1-2"), sqs_sub(2, "beacon-ui-3-4")].into(),
            unlisted: vec!["beacon-watch-1-2".into()],
            ..Memory::default()
        };
        let report = run(&port, TOPIC, 500).await.unwrap();
        assert_eq!(report, JanitorReport { unsubscribed: 1, deleted: 0, failed: 0 });
        assert_eq!(*port.subscriptions.lock().unwrap(), vec![sqs_sub(1, "beacon-watch-1-2")]);
    }

    #[tokio::test]
    async fn a_queue_whose_unsubscribe_failed_is_kept_for_the_next_run() {
        let port = Memory {
            subscriptions: vec![sqs_sub(1, "beacon-watch-1-2"), sqs_sub(2, "beacon-ui-3-4")].into(),
            queues: vec![queue("beacon-watch-1-2", Some(1)), queue("beacon-ui-3-4", Some(1))].into(),
            refuse: vec![format!("{TOPIC}:s1")],
            ..Memory::default()
        };
        let report = run(&port, TOPIC, 500).await.unwrap();
        assert_eq!(report, JanitorReport { unsubscribed: 1, deleted: 1, failed: 1 });
        let left: Vec<String> = port.queues.lock().unwrap().iter().map(|q| q.name.clone()).collect();
        assert_eq!(left, vec!["beacon-watch-1-2"], "a queue is never deleted under its subscription");
    }

    #[test]
    fn nothing_else_is_touched() {
        let subs = [
            sqs_sub(1, "mine"),
            sqs_sub(2, "beacon-on-failure-dev"),
            sub("PendingConfirmation", "sqs", "arn:aws:sqs:us-east-1:123456789012:beacon-watch-9-9"),
            sub(&format!("{TOPIC}:s4"), "https", "https://example.com/hook"),
        ];
        // A viewer-named queue without a (numeric) lease whose creation
        // time is unknown: kept.
        let queues = [queue("beacon-watch-3-3", None)];
        assert_eq!(plan(TOPIC, &subs, &queues, i64::MAX), Plan::default());
    }

    #[test]
    fn a_queue_without_a_lease_goes_only_once_the_grace_after_its_creation_has_passed() {
        let old = ViewerQueue { created: Some(1_000), ..queue("beacon-watch-1-2", None) };
        let subs = [sqs_sub(1, "beacon-watch-1-2")];
        let at = |now| plan(TOPIC, &subs, std::slice::from_ref(&old), now).lapsed;
        assert!(at(1_000 + UNSUBSCRIBED_GRACE).is_empty(), "a young one may be a viewer's being tagged");
        assert_eq!(at(1_001 + UNSUBSCRIBED_GRACE), vec![(old.clone(), vec![format!("{TOPIC}:s1")])]);
        // Subscribed to nothing here: another grace on top.
        let alone = |now| plan(TOPIC, &[], std::slice::from_ref(&old), now).lapsed;
        assert!(alone(1_001 + UNSUBSCRIBED_GRACE).is_empty());
        assert_eq!(alone(1_001 + 2 * UNSUBSCRIBED_GRACE), vec![(old.clone(), vec![])]);
    }
}
