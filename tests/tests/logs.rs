//! What the components log: a subscriber captures every line the pipeline
//! and the catalog API write while they handle items and requests full of
//! secrets (a token in attributes, a large blob, the signing secret, the AWS
//! secret key) and hit their failure paths (a malformed item, a throttled
//! read, a failed publish, a wrongly signed write). None of the secrets and
//! no item payload may appear. The doubles only force the failure paths'
//! log lines; see `beacon_tests::faults`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_domain::ports::{NeedsDeclarations, Registrations};
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing_subscriber::util::SubscriberInitExt as _;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_aws::item::{encode_registration, to_sdk};
use beacon_domain::view::Needs;
use beacon_domain::{Registration, Status, parse_needs};
use beacon_local::setup::LOCAL_ACCESS_KEY;
use beacon_tests::api::LocalApi;
use beacon_tests::faults::{FaultyRegistry, FlakyPublisher, RegistryFaults};
use beacon_tests::{Options, TestPipeline, now, of_kind};
use serde_json::json;

const AWS_SECRET: &str = "AWS-SECRET-2f1c9e7d-never-log-me";
const API_SECRET: &str = "API-SECRET-8a4b2c6e-never-log-me";
const TOKEN: &str = "TOKEN-5d3e1f0a-never-log-me";
const BLOB_MARK: &str = "BLOB-9c7b5a3d";

/// Every byte any span or event writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn registration(id: &str) -> Registration {
    let mut r =
        Registration::new_at("orders", "1.0.0", id, "https://o.example/v1", Status::Healthy, 600, now()).unwrap();
    r.attributes.insert("api_token".into(), TOKEN.into());
    r.attributes.insert("blob".into(), format!("{BLOB_MARK}{}", "x".repeat(900)));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_no_secret_and_no_item_payload() {
    let captured = Captured::default();
    let sink = captured.clone();
    // The functions' own logging set-up, at the most an operator can turn on
    // (the template's LogLevel TRACE), in the JSON format Lambda gets.
    beacon_aws::logging::subscriber(Some("TRACE"), true, move || sink.clone()).init();

    let credentials = aws_credential_types::Credentials::new(LOCAL_ACCESS_KEY, AWS_SECRET, None, None, "log-test");
    let config =
        aws_config::defaults(aws_config::BehaviorVersion::latest()).credentials_provider(credentials).load().await;
    let faults = Arc::new(RegistryFaults::default());
    let f = faults.clone();
    let p = TestPipeline::start_with(
        "logs",
        Options::new()
            .sdk_config(config)
            .registry(move |r| FaultyRegistry::new(r, f))
            .publisher(|inner| FlakyPublisher::new(inner, "orders", 1)),
    )
    .await;
    let q = p.subscribe(None).await;
    p.registry
        .put_needs(&Needs { consumer: "web".into(), needs: parse_needs("orders").unwrap() }, now())
        .await
        .unwrap();
    faults.fail_next.store(1, Ordering::SeqCst);
    p.registry.put(&registration("i-1")).await.unwrap();
    // A malformed item carrying the same secrets in its valid fields.
    let mut bad = to_sdk(encode_registration(&registration("i-2")));
    bad.insert("status".into(), Av::S("sideways".into()));
    p.dynamodb.put_item().table_name(&p.table).set_item(Some(bad)).send().await.unwrap();

    let events = q
        .receive_until(Duration::from_secs(30), |all| {
            !of_kind(all, "registered").is_empty()
                && !of_kind(all, "invalid").is_empty()
                && !of_kind(all, "resolved").is_empty()
        })
        .await;
    assert!(!of_kind(&events, "registered").is_empty() && !of_kind(&events, "invalid").is_empty(), "{events:#?}");
    assert!(faults.injected() >= 1 && p.stats.failed_invocations.load(Ordering::Relaxed) >= 1, "no failure path ran");

    // The catalog API: a wrongly signed write and a good one, both with the
    // token in their bodies.
    let api = LocalApi::start(p.registry.clone(), API_SECRET).await;
    let body = serde_json::to_vec(&json!({
        "service_name": "orders", "service_version": "1.0", "endpoint_url": "https://o.example/v1",
        "instance_id": "i-3", "attributes": {"api_token": TOKEN}
    }))
    .unwrap();
    let (status, _) = api.call("POST", "/catalog/register", body.clone(), Some("not-the-secret"), &[]).await;
    assert_eq!(status, 403);
    let (status, resp) = api.call("POST", "/catalog/register", body, Some(API_SECRET), &[]).await;
    assert_eq!(status, 200, "{resp}");
    api.stop().await;
    p.stop().await;

    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    // The capture works and the failure paths did log.
    for expected in ["invalid item", "record will be retried", "refused an unsigned or wrongly signed write"] {
        assert!(logs.contains(expected), "no `{expected}` line was captured");
    }
    for secret in [AWS_SECRET, API_SECRET, TOKEN, BLOB_MARK] {
        let at = logs.find(secret).map(|i| &logs[i.saturating_sub(300)..(i + 100).min(logs.len())]);
        assert!(at.is_none(), "`{secret}` was logged: …{}…", at.unwrap_or_default());
    }
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 4096, "a {longest}-byte log line: payloads are being logged");
    eprintln!("log capture: {} lines, {} bytes, longest line {longest} bytes", logs.lines().count(), logs.len());
}
