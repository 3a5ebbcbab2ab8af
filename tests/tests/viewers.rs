//! Registry viewers and the sweeper's janitor, on the local stack: a
//! viewer's queue (the code `beacon watch` and `beacon ui` call) is tagged
//! with its owner and a lease; once the lease has passed, one janitor run
//! removes its subscription and then the queue; the janitor leaves a live
//! viewer, the pipeline's queues and a user's subscribed queue alone, and
//! events keep flowing to every subscriber throughout. (The real binary,
//! exiting and killed with SIGKILL: `cli/tests/viewers.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::time::Duration;

use beacon_aws::janitor::SnsSqsSubscribers;
use beacon_aws::viewer::{SubscribedQueue, ViewerLease, subscribe_viewer_queue};
use beacon_domain::ports::{LEASE_TAG, OWNER_TAG};
use beacon_sweeper::JanitorReport;
use beacon_tests::{TestPipeline, now, put_instances, sdk_config, unique};

async fn janitor(p: &TestPipeline) -> JanitorReport {
    let port = SnsSqsSubscribers::new(p.sns.clone(), p.sqs.clone(), &p.topic_arn);
    beacon_sweeper::janitor::run(&port, &p.topic_arn, now()).await.expect("a janitor run")
}

/// The topic's subscriptions: (subscription ARN, endpoint).
async fn subscriptions(p: &TestPipeline) -> Vec<(String, String)> {
    let out = p.sns.list_subscriptions_by_topic().topic_arn(&p.topic_arn).send().await.unwrap();
    out.subscriptions
        .unwrap_or_default()
        .into_iter()
        .map(|s| (s.subscription_arn.unwrap_or_default(), s.endpoint.unwrap_or_default()))
        .collect()
}

async fn queue_exists(p: &TestPipeline, name: &str) -> bool {
    p.sqs.get_queue_url().queue_name(name).send().await.is_ok()
}

async fn tags(p: &TestPipeline, url: &str) -> HashMap<String, String> {
    p.sqs.list_queue_tags().queue_url(url).send().await.unwrap().tags.unwrap_or_default()
}

fn name_of(q: &SubscribedQueue) -> String {
    q.url.rsplit('/').next().unwrap().to_owned()
}

async fn viewer(p: &TestPipeline, kind: &str, lease: ViewerLease) -> SubscribedQueue {
    // Named as `beacon watch` / `beacon ui` name theirs.
    let name = format!("beacon-{kind}-{}", unique("t"));
    subscribe_viewer_queue(&p.sqs, &p.sns, &p.topic_arn, &name, None, &lease).await.expect("a viewer's queue")
}

async fn owner() -> String {
    beacon_aws::janitor::caller_user_id(&sdk_config().await).await.expect("GetCallerIdentity on the local stack")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewers_queue_carries_its_owner_and_a_lease_ahead() {
    let p = TestPipeline::start("viewer-tags").await;
    let owner = owner().await;
    assert!(!owner.is_empty());
    let lease = ViewerLease { owner: owner.clone(), length: Duration::from_secs(300) };
    let before = now();
    let q = viewer(&p, "ui", lease.clone()).await;
    let t = tags(&p, &q.url).await;
    assert_eq!(t.get(OWNER_TAG), Some(&owner), "the owner tag is GetCallerIdentity's UserId: {t:?}");
    let until: i64 = t[LEASE_TAG].parse().unwrap();
    assert!((before + 300..=now() + 300).contains(&until), "lease {until}, created at {before}");
    // The queue policy: the topic may send, and nothing else.
    let attrs = p
        .sqs
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .send()
        .await
        .unwrap();
    let policy: serde_json::Value =
        serde_json::from_str(&attrs.attributes.unwrap()[&aws_sdk_sqs::types::QueueAttributeName::Policy]).unwrap();
    assert_eq!(policy, beacon_aws::viewer::queue_policy(&q.arn, &p.topic_arn));
    // Renewing moves it ahead; releasing ends it now.
    q.set_lease(&p.sqs, until + 60).await.unwrap();
    assert_eq!(tags(&p, &q.url).await[LEASE_TAG], (until + 60).to_string());
    q.release(&p.sqs).await.unwrap();
    let ended: i64 = tags(&p, &q.url).await[LEASE_TAG].parse().unwrap();
    assert!(ended < now() + 1, "released: lease {ended}");
    janitor(&p).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_viewer_is_gone_after_one_janitor_run_and_a_live_one_is_left_alone() {
    let p = TestPipeline::start("viewer-janitor").await;
    let owner = owner().await;
    let events = p.subscribe(None).await;
    let long = ViewerLease { owner: owner.clone(), length: Duration::from_secs(300) };
    let live = viewer(&p, "ui", long.clone()).await;
    let leaving = viewer(&p, "watch", long.clone()).await;
    // A user's own queue, named like nothing of Beacon's, subscribed the
    // same way; and one named like a viewer's but without a lease (made by
    // an older beacon: kept until ten minutes after its creation, which the
    // janitor reads).
    let user = p.subscribe(None).await;
    let untagged_name = format!("beacon-watch-{}", unique("untagged"));
    let untagged =
        beacon_aws::viewer::subscribe_queue(&p.sqs, &p.sns, &p.topic_arn, &untagged_name, None).await.unwrap();
    let before = subscriptions(&p).await;
    assert_eq!(before.len(), 5, "{before:?}");

    // Nothing has lapsed: a janitor run removes nothing.
    assert_eq!(janitor(&p).await, JanitorReport::default());
    assert_eq!(subscriptions(&p).await.len(), 5);

    // The viewer exits: its lease ends; one janitor run removes its
    // subscription, then its queue; nothing else.
    leaving.release(&p.sqs).await.unwrap();
    let report = janitor(&p).await;
    assert_eq!(report, JanitorReport { unsubscribed: 1, deleted: 1, failed: 0 });
    assert!(!queue_exists(&p, &name_of(&leaving)).await, "the viewer's queue is left");
    let after = subscriptions(&p).await;
    assert!(after.iter().all(|(_, endpoint)| *endpoint != leaving.arn), "its subscription is left: {after:?}");
    assert_eq!(after.len(), 4, "{after:?}");
    for (q, what) in [(&live, "the live viewer's"), (&untagged, "the untagged queue's")] {
        assert!(queue_exists(&p, &name_of(q)).await, "{what} queue was removed");
        assert!(after.iter().any(|(_, e)| *e == q.arn), "{what} subscription was removed");
    }
    assert!(after.iter().any(|(_, e)| *e == user.arn), "the user's subscription was removed");
    // The pipeline's own queues are still there.
    for url in [&p.on_failure.url, &p.refresh_dead.url] {
        assert!(p.sqs.get_queue_attributes().queue_url(url).send().await.is_ok(), "{url} was removed");
    }

    // Events still reach every subscriber (the local SNS server fails a
    // whole publish when one subscription points at a missing queue).
    put_instances(&p.registry, 1, 1).await;
    for q in [&events, &user] {
        let got = q.receive_until(Duration::from_secs(20), |e| e.iter().any(|e| e["kind"] == "registered")).await;
        assert!(got.iter().any(|e| e["kind"] == "registered"), "no event after the janitor: {got:?}");
    }
    live.release(&p.sqs).await.unwrap();
    janitor(&p).await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_whose_viewer_queue_is_gone_is_removed() {
    let p = TestPipeline::start("viewer-orphan").await;
    let lease = ViewerLease { owner: owner().await, length: Duration::from_secs(300) };
    let q = viewer(&p, "watch", lease).await;
    // The queue deleted under its subscription (an older viewer, or a hand).
    p.sqs.delete_queue().queue_url(&q.url).send().await.unwrap();
    assert_eq!(subscriptions(&p).await.len(), 1);
    assert_eq!(janitor(&p).await, JanitorReport { unsubscribed: 1, deleted: 0, failed: 0 });
    assert!(subscriptions(&p).await.is_empty());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_lease_is_removed_and_a_renewed_one_is_kept() {
    let p = TestPipeline::start("viewer-lapse").await;
    let owner = owner().await;
    let short = ViewerLease { owner, length: Duration::from_secs(2) };
    let kept = viewer(&p, "ui", short.clone()).await;
    let lapsing = viewer(&p, "watch", short.clone()).await;
    // One keeps its lease (as a running viewer does); the other stops, as
    // a killed one would.
    let keeper = tokio::spawn({
        let (sqs, kept, short) = (p.sqs.clone(), kept.clone(), short.clone());
        async move { kept.keep_lease(&sqs, &short).await }
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let report = janitor(&p).await;
    assert_eq!(report, JanitorReport { unsubscribed: 1, deleted: 1, failed: 0 });
    assert!(!queue_exists(&p, &name_of(&lapsing)).await);
    assert!(queue_exists(&p, &name_of(&kept)).await, "a renewed lease was taken for lapsed");
    assert_eq!(subscriptions(&p).await.iter().map(|(_, e)| e.clone()).collect::<Vec<_>>(), vec![kept.arn.clone()]);
    keeper.abort();
    kept.release(&p.sqs).await.unwrap();
    assert_eq!(janitor(&p).await, JanitorReport { unsubscribed: 1, deleted: 1, failed: 0 });
    assert!(subscriptions(&p).await.is_empty());
    p.stop().await;
}
