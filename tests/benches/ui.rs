//! The registry page, measured (./scripts/bench): write → row on the page
//! beside write → SQS subscriber over 200 changes, and the first render of
//! a registry of 1,000 instances and 1,000 consumers. Drives a real
//! browser through tests/ui/bench.mjs; needs `scripts/bootstrap --browser`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails by panicking

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use beacon_domain::parse_needs;
use beacon_domain::ports::NeedsDeclarations;
use beacon_domain::view::Needs;
use beacon_tests::{TestPipeline, now};
use futures::StreamExt;

fn node(root: &std::path::Path, phase: &str, url: &str, p: &TestPipeline, beacon: &std::path::Path) {
    let status = Command::new("node")
        .arg(root.join("tests/ui/bench.mjs"))
        .arg(phase)
        .env("UI_URL", url)
        .env("BEACON_BIN", beacon)
        .env("BEACON_TABLE", &p.table)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .status()
        .unwrap();
    assert!(status.success(), "the {phase} measurement failed");
}

#[tokio::main]
async fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let beacon = root.join("target/debug/beacon");
    let p = TestPipeline::start("uibench").await;
    let mut ui = Command::new(&beacon)
        .args(["ui", "--port", "0"])
        .env("BEACON_TABLE", &p.table)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .stderr(Stdio::piped())
        .spawn()
        .expect("beacon ui (./scripts/bench builds it)");
    let mut lines = BufReader::new(ui.stderr.take().unwrap()).lines();
    let url = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("beacon ui: ").and_then(|r| r.split_whitespace().next()).map(str::to_owned))
        .unwrap();
    std::thread::spawn(move || for _ in lines {});
    node(&root, "latency", &url, &p, &beacon);

    // A registry of 1,000 instances and 1,000 consumers, each needing one
    // of 50 services; let the fan-out resolve them all.
    let n = 1000;
    beacon_tests::put_instances(&p.registry, n, 50).await;
    futures::stream::iter(0..n)
        .map(|i| {
            let r = p.registry.clone();
            async move {
                let needs = Needs { consumer: format!("c{i}"), needs: parse_needs(&format!("s{}", i % 50)).unwrap() };
                r.put_needs(&needs, now()).await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    TestPipeline::eventually(Duration::from_secs(600), "every consumer resolved", || async {
        p.resolved(&format!("c{}", n - 1)).await.is_some_and(|r| r.revision > 0)
    })
    .await;
    node(&root, "render", &url, &p, &beacon);
    let _ = Command::new("kill").arg("-TERM").arg(ui.id().to_string()).status();
    let _ = ui.wait();
    p.stop().await;
}
