//! The pipeline end to end against DynamoDB Local and the moto SNS/SQS
//! server: stream → local event source mapping → fan-out → SNS → SQS, and
//! resolved items refreshed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_domain::ports::{Existing, InstanceKey, NeedsDeclarations, Registrations};
use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_aws::item::to_sdk;
use beacon_domain::view::{Needs, Outcome};
use beacon_domain::{Registration, Status, parse_needs};
use beacon_tests::{TestPipeline, now, of_kind, schema_errors};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn reg(service: &str, version: &str, id: &str, status: Status) -> Registration {
    Registration::new_at(service, version, id, &format!("https://{id}.{service}.example"), status, 600, now()).unwrap()
}

async fn wait_kinds(q: &beacon_tests::Queue, kinds: &[&str]) -> Vec<Value> {
    let want: Vec<String> = kinds.iter().map(|k| (*k).to_owned()).collect();
    q.receive_until(WAIT, |all| {
        let mut seen: Vec<String> = all.iter().map(|e| e["kind"].as_str().unwrap_or_default().to_owned()).collect();
        want.iter().all(|k| {
            if let Some(i) = seen.iter().position(|s| s == k) {
                seen.remove(i);
                true
            } else {
                false
            }
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_reaches_subscribers_as_one_registered_event() {
    let p = TestPipeline::start("reg").await;
    let all = p.subscribe(None).await;
    let only_orders = p.subscribe(Some(r#"{"service":["orders"]}"#)).await;

    p.registry.put(&reg("orders", "1.2.0", "i-1", Status::Healthy)).await.unwrap();
    p.registry.put(&reg("users", "2.0.0", "u-1", Status::Healthy)).await.unwrap();

    let events = wait_kinds(&all, &["registered", "registered"]).await;
    let registered = of_kind(&events, "registered");
    assert_eq!(registered.len(), 2, "{events:#?}");
    for e in &registered {
        assert!(schema_errors(e).is_empty(), "{:?}", schema_errors(e));
        assert!(!e["record_id"].as_str().unwrap_or_default().is_empty());
        assert_eq!(e["event_id"], e["record_id"]);
    }
    let orders = registered.iter().find(|e| e["service"] == "orders").unwrap();
    assert_eq!(orders["version"], "1.2.0");
    assert_eq!(orders["after"]["endpoint_url"], "https://i-1.orders.example");

    // Exactly one each: nothing else arrives.
    let extra = all.receive_for(Duration::from_secs(2)).await;
    assert!(of_kind(&extra, "registered").is_empty(), "duplicate events: {extra:#?}");

    let filtered = only_orders.receive_until(WAIT, |a| !a.is_empty()).await;
    let filtered_more = only_orders.receive_for(Duration::from_secs(1)).await;
    let services: Vec<&Value> = filtered.iter().chain(&filtered_more).map(|e| &e["service"]).collect();
    assert_eq!(services, vec!["orders"], "the filter policy let through {services:?}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_written_by_the_aws_cli_is_published() {
    let p = TestPipeline::start("cli").await;
    let q = p.subscribe(None).await;
    let aws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/aws");
    let expires = now() + 300;
    // The seed's two-part version, written as an outside client would.
    let item = format!(
        r#"{{"pk":{{"S":"SERVICE#helloworld"}},"sk":{{"S":"INSTANCE#1.0#default"}},"service":{{"S":"helloworld"}},"version":{{"S":"1.0"}},"instance_id":{{"S":"default"}},"endpoint_url":{{"S":"https://hello.example/dev"}},"status":{{"S":"healthy"}},"ttl_seconds":{{"N":"300"}},"expires_at":{{"N":"{expires}"}}}}"#
    );
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let out = std::process::Command::new(aws)
        .args(["dynamodb", "put-item", "--table-name", &p.table, "--item", &item, "--endpoint-url", &endpoint])
        .output()
        .expect("running the AWS CLI");
    assert!(out.status.success(), "aws put-item failed: {}", String::from_utf8_lossy(&out.stderr));
    let events = wait_kinds(&q, &["registered"]).await;
    let e = of_kind(&events, "registered")[0];
    assert_eq!(e["service"], "helloworld");
    assert_eq!(e["version"], "1.0.0", "the seed's 1.0 is published normalised");
    assert!(schema_errors(e).is_empty(), "{:?}", schema_errors(e));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_are_silent_and_other_changes_are_classified() {
    let p = TestPipeline::start("kinds").await;
    let q = p.subscribe(None).await;
    let r = reg("orders", "1.0.0", "i-1", Status::Healthy);
    p.registry.put(&r).await.unwrap();
    wait_kinds(&q, &["registered"]).await;

    assert_eq!(p.registry.heartbeat(&InstanceKey::of(&r), r.ttl_seconds, now() + 5).await.unwrap(), Existing::Done);
    let after_heartbeat = q.receive_for(Duration::from_secs(2)).await;
    assert!(after_heartbeat.is_empty(), "a heartbeat published {after_heartbeat:#?}");

    let mut unhealthy = r.clone();
    unhealthy.status = Status::Unhealthy;
    p.registry.put(&unhealthy).await.unwrap();
    let events = wait_kinds(&q, &["status_changed"]).await;
    let e = of_kind(&events, "status_changed")[0];
    assert_eq!(e["before"]["status"], "healthy");
    assert_eq!(e["after"]["status"], "unhealthy");
    assert!(schema_errors(e).is_empty());

    p.registry.delete(&InstanceKey::new("orders", "1.0.0", "i-1")).await.unwrap();
    let events = wait_kinds(&q, &["deregistered"]).await;
    assert!(schema_errors(of_kind(&events, "deregistered")[0]).is_empty());

    // An item whose heartbeats stopped, removed (as the sweeper does): expired.
    let mut stale = reg("orders", "1.0.0", "i-2", Status::Healthy);
    stale.updated_at = now() - 700;
    stale.expires_at = now() - 100;
    p.registry.put(&stale).await.unwrap();
    p.registry.delete(&InstanceKey::new("orders", "1.0.0", "i-2")).await.unwrap();
    let events = wait_kinds(&q, &["registered", "expired"]).await;
    let expired = of_kind(&events, "expired");
    assert_eq!(expired.len(), 1, "{events:#?}");
    assert_eq!(expired[0]["instance_id"], "i-2");
    assert!(schema_errors(expired[0]).is_empty());
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_get_a_resolved_item_that_follows_the_services_they_need() {
    let p = TestPipeline::start("needs").await;
    let q = p.subscribe(Some(r#"{"kind":["resolved"]}"#)).await;
    p.registry.put(&reg("orders", "1.0.0", "o-1", Status::Healthy)).await.unwrap();
    p.registry.put(&reg("users", "1.0.0", "u-1", Status::Healthy)).await.unwrap();
    let needs = Needs { consumer: "web".into(), needs: parse_needs("orders^1").unwrap() };
    p.registry.put_needs(&needs, now()).await.unwrap();

    let first = wait_kinds(&q, &["resolved"]).await;
    assert_eq!(of_kind(&first, "resolved").len(), 1, "{first:#?}");
    assert!(schema_errors(&first[0]).is_empty(), "{:?}", schema_errors(&first[0]));
    assert_eq!(first[0]["consumer"], "web");
    let item = p.resolved("web").await.expect("the resolved item exists");
    let Outcome::Resolved(r) = &item.services["orders"].requirements[0].outcome else { panic!("{item:?}") };
    assert_eq!(r.version.to_string(), "1.0.0");
    let revision = item.revision;

    // A change to the needed service: new revision, one resolved event.
    p.registry.put(&reg("orders", "1.5.0", "o-2", Status::Healthy)).await.unwrap();
    let events = wait_kinds(&q, &["resolved"]).await;
    let resolved = of_kind(&events, "resolved");
    assert_eq!(resolved.len(), 1, "{events:#?}");
    assert_eq!(resolved[0]["service"], "orders");
    let item = p.resolved("web").await.unwrap();
    assert_eq!(item.revision, revision + 1);
    assert_eq!(resolved[0]["revision"], item.revision);
    let Outcome::Resolved(r) = &item.services["orders"].requirements[0].outcome else { panic!("{item:?}") };
    assert_eq!(r.version.to_string(), "1.5.0");
    assert_eq!(r.endpoints[0].endpoint_url, "https://o-2.orders.example");

    // A change to a service it does not need touches nothing of it.
    p.registry.put(&reg("users", "2.0.0", "u-2", Status::Healthy)).await.unwrap();
    let quiet = q.receive_for(Duration::from_secs(2)).await;
    assert!(quiet.is_empty(), "{quiet:#?}");
    assert_eq!(p.resolved("web").await.unwrap(), item);

    // A version outside the range changes nothing either.
    p.registry.put(&reg("orders", "2.0.0", "o-3", Status::Healthy)).await.unwrap();
    let quiet = q.receive_for(Duration::from_secs(2)).await;
    assert!(quiet.is_empty(), "{quiet:#?}");
    assert_eq!(p.resolved("web").await.unwrap().revision, item.revision);

    // Needs removed: the resolved item goes too.
    p.registry.delete_needs("web").await.unwrap();
    TestPipeline::eventually(WAIT, "the resolved item to be deleted", || async { p.resolved("web").await.is_none() })
        .await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_item_is_reported_and_does_not_block_the_shard() {
    let p = TestPipeline::start("bad").await;
    let q = p.subscribe(None).await;
    let mut bad: HashMap<String, Av> =
        to_sdk(beacon_aws::item::encode_registration(&reg("orders", "1.0.0", "bad", Status::Healthy)));
    bad.insert("status".into(), Av::N("7".into()));
    bad.insert("endpoint_url".into(), Av::S("ftp://nope".into()));
    p.dynamodb.put_item().table_name(&p.table).set_item(Some(bad)).send().await.unwrap();
    p.registry.put(&reg("orders", "1.0.0", "good", Status::Healthy)).await.unwrap();

    let events = wait_kinds(&q, &["invalid", "registered"]).await;
    let invalid = of_kind(&events, "invalid");
    assert_eq!(invalid.len(), 1, "{events:#?}");
    assert_eq!(invalid[0]["pk"], "SERVICE#orders");
    assert_eq!(invalid[0]["sk"], "INSTANCE#1.0.0#bad");
    assert!(invalid[0]["reason"].as_str().unwrap().contains("status"), "{}", invalid[0]["reason"]);
    assert!(schema_errors(invalid[0]).is_empty());
    let registered = of_kind(&events, "registered");
    assert_eq!(registered[0]["instance_id"], "good");
    assert_eq!(
        p.stats.failed_invocations.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the invalid record was retried"
    );
    p.stop().await;
}
