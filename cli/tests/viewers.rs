//! The real `beacon watch` as a registry viewer on the local stack: its
//! queue carries its owner (GetCallerIdentity's UserId) and a lease; after
//! it exits, one janitor run leaves nothing of it on the topic; killed with
//! SIGKILL, it leaves its queue until the lease passes, and then the janitor
//! removes queue and subscription. Events keep reaching other subscribers.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use beacon_aws::janitor::SnsSqsSubscribers;
use beacon_domain::ports::{LEASE_TAG, OWNER_TAG};
use beacon_sweeper::JanitorReport;
use beacon_tests::{TestPipeline, now, sdk_config};

fn watch(p: &TestPipeline, args: &[&str], lease_seconds: Option<u64>) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_beacon"));
    c.arg("watch")
        .args(args)
        .env("BEACON_TABLE", &p.table)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(s) = lease_seconds {
        c.env("BEACON_VIEWER_LEASE_SECONDS", s.to_string());
    }
    c.spawn().expect("starting beacon watch")
}

async fn janitor(p: &TestPipeline) -> JanitorReport {
    let port = SnsSqsSubscribers::new(p.sns.clone(), p.sqs.clone(), &p.topic_arn);
    beacon_sweeper::janitor::run(&port, &p.topic_arn, now()).await.expect("a janitor run")
}

async fn queues(p: &TestPipeline, pid: u32) -> Vec<String> {
    let out = p.sqs.list_queues().queue_name_prefix(format!("beacon-watch-{pid}-")).send().await.unwrap();
    out.queue_urls.unwrap_or_default()
}

/// The endpoints subscribed to the topic.
async fn endpoints(p: &TestPipeline) -> Vec<String> {
    let out = p.sns.list_subscriptions_by_topic().topic_arn(&p.topic_arn).send().await.unwrap();
    out.subscriptions.unwrap_or_default().into_iter().filter_map(|s| s.endpoint).collect()
}

/// Waits until watch has created and subscribed its queue; its URL.
async fn subscribed(p: &TestPipeline, pid: u32) -> String {
    let start = Instant::now();
    loop {
        if let Some(url) = queues(p, pid).await.pop()
            && endpoints(p).await.iter().any(|e| url.ends_with(e.rsplit(':').next().unwrap_or("-")))
        {
            return url;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "watch created and subscribed no queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn register(p: &TestPipeline, service: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["register", service, "1.0.0", "--endpoint", "https://x.example"])
        .env("BEACON_TABLE", &p.table)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_tags_its_queue_with_its_owner_and_nothing_of_it_is_left_after_one_janitor_run() {
    let p = TestPipeline::start("viewer-watch").await;
    let child = watch(&p, &["--service", "billing", "--count", "1"], None);
    let pid = child.id();
    let url = subscribed(&p, pid).await;

    // (4) The owner is who GetCallerIdentity says the caller is.
    let owner = beacon_aws::janitor::caller_user_id(&sdk_config().await).await.unwrap();
    let tags = p.sqs.list_queue_tags().queue_url(&url).send().await.unwrap().tags.unwrap_or_default();
    assert_eq!(tags.get(OWNER_TAG), Some(&owner), "{tags:?}");
    let lease: i64 = tags[LEASE_TAG].parse().unwrap();
    assert!(lease > now() + 200, "a default lease is five minutes ahead: {lease}");
    // A live viewer is left alone.
    assert_eq!(janitor(&p).await, JanitorReport::default());

    register(&p, "billing");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("billing 1.0.0"));

    // (1) Exited: one janitor run, and neither its subscription nor its
    // queue is left.
    assert_eq!(janitor(&p).await, JanitorReport { unsubscribed: 1, deleted: 1, failed: 0 });
    assert!(queues(&p, pid).await.is_empty(), "watch's queue is left");
    assert!(endpoints(&p).await.is_empty(), "watch's subscription is left");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_killed_with_sigkill_is_removed_once_its_lease_passes() {
    let p = TestPipeline::start("viewer-kill").await;
    let events = p.subscribe(None).await;
    let mut child = watch(&p, &[], Some(3));
    let pid = child.id();
    let url = subscribed(&p, pid).await;
    child.kill().unwrap(); // SIGKILL: no clean-up runs
    child.wait().unwrap();
    let killed_at = now();

    // The queue and its subscription are still there, and while the lease
    // holds the janitor leaves them.
    assert_eq!(queues(&p, pid).await, vec![url.clone()]);
    let lease: i64 =
        p.sqs.list_queue_tags().queue_url(&url).send().await.unwrap().tags.unwrap()[LEASE_TAG].parse().unwrap();
    if lease >= now() {
        assert_eq!(janitor(&p).await, JanitorReport::default(), "a lease that holds was taken for lapsed");
        assert_eq!(endpoints(&p).await.len(), 2);
    }

    // Once it has passed, one run removes the subscription and the queue.
    while now() <= lease {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(now() - killed_at <= 5, "the lease was {} s ahead of the kill", lease - killed_at);
    assert_eq!(janitor(&p).await, JanitorReport { unsubscribed: 1, deleted: 1, failed: 0 });
    assert!(queues(&p, pid).await.is_empty(), "the killed watch's queue is left");
    assert_eq!(endpoints(&p).await, vec![events.arn.clone()], "only the user's subscription is left");

    // Events still flow to the other subscriber.
    register(&p, "afterwards");
    let got = events.receive_until(Duration::from_secs(20), |e| e.iter().any(|e| e["service"] == "afterwards")).await;
    assert!(got.iter().any(|e| e["service"] == "afterwards"), "{got:?}");
    p.stop().await;
}
