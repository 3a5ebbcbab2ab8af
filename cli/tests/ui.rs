//! `beacon ui` in a real browser (tests/ui/page.mjs: headless Chromium
//! driven by playwright-core) against the local pipeline: registrations
//! appear and disappear live, the graph shows unresolved needs, the feed
//! shows each change once, a lost connection catches up, bad input is a
//! clear 4xx. The screenshots land in docs/img/ (the README shows them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use beacon_tests::TestPipeline;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_page_follows_the_registry_live() {
    let p = TestPipeline::start("ui").await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut ui = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["ui", "--port", "0"])
        .env("BEACON_TABLE", &p.table)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(ui.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("beacon ui: ").and_then(|r| r.split_whitespace().next()).map(str::to_owned))
        .expect("beacon ui printed its address");
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let out = tokio::task::spawn_blocking({
        let (url, table, topic, root) = (url.clone(), p.table.clone(), p.topic_arn.clone(), root.clone());
        move || {
            Command::new("node")
                .arg(root.join("tests/ui/page.mjs"))
                .env("UI_URL", &url)
                .env("BEACON_BIN", env!("CARGO_BIN_EXE_beacon"))
                .env("AWS_CLI", root.join(".venv/bin/aws"))
                .env("SCREENSHOT_DIR", root.join("docs/img"))
                .env("BEACON_TABLE", table)
                .env("BEACON_TOPIC_ARN", topic)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");

    // Stopping the page hands its queue to the janitor.
    let _ = Command::new("kill").arg("-TERM").arg(ui.id().to_string()).status();
    let mut exited = false;
    for _ in 0..100 {
        if ui.try_wait().unwrap().is_some() {
            exited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(out.status.success(), "the page checks failed:\n{stderr}\n{stdout}");
    assert!(exited, "beacon ui did not exit on SIGTERM");
    // It ended its queue's lease; one janitor run removes the queue.
    let port = beacon_aws::janitor::SnsSqsSubscribers::new(p.sns.clone(), p.sqs.clone(), &p.topic_arn);
    beacon_sweeper::janitor::run(&port, &p.topic_arn, beacon_tests::now()).await.unwrap();
    let queues = p.sqs.list_queues().queue_name_prefix(format!("beacon-ui-{}", ui.id())).send().await.unwrap();
    assert!(queues.queue_urls.unwrap_or_default().is_empty(), "the page's queue was left behind");
    p.stop().await;
}
