//! Hostile items written directly to the table: each is reported as one
//! `invalid` event naming its key, none crashes or blocks the pipeline, and a
//! valid item written after them still flows.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue as Av;
use beacon_aws::item::{encode_registration, to_sdk};
use beacon_domain::{Registration, Status};
use beacon_tests::{TestPipeline, now, of_kind, schema_errors};

fn good(id: &str) -> HashMap<String, Av> {
    to_sdk(encode_registration(
        &Registration::new_at("orders", "1.0.0", id, "https://o.example", Status::Healthy, 600, now()).unwrap(),
    ))
}

fn with(mut item: HashMap<String, Av>, field: &str, value: Option<Av>) -> HashMap<String, Av> {
    match value {
        Some(v) => item.insert(field.into(), v),
        None => item.remove(field),
    };
    item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_items_are_reported_one_by_one_and_block_nothing() {
    let p = TestPipeline::start("hostile").await;
    let q = p.subscribe(None).await;
    let huge = "x".repeat(390 * 1024);
    let cases: Vec<(&str, HashMap<String, Av>, &str)> = vec![
        ("t1", with(good("t1"), "status", Some(Av::N("1".into()))), "status"),
        ("t2", with(good("t2"), "ttl_seconds", Some(Av::S("300".into()))), "ttl_seconds"),
        // (A wrong-typed `expires_at` never reaches the stream: it is the
        // expiry index's sort key, so DynamoDB itself refuses the write.)
        ("t3", with(good("t3"), "updated_at", Some(Av::Bool(true))), "updated_at"),
        ("t4", with(good("t4"), "endpoint_url", None), "endpoint_url"),
        (
            "t5",
            with(good("t5"), "attributes", Some(Av::M(HashMap::from([("blob".into(), Av::S(huge))])))),
            "attributes",
        ),
        ("t6", with(good("t6"), "endpoint_url", Some(Av::S("javascript:alert(1)".into()))), "endpoint_url"),
        ("t7", with(good("t7"), "version", Some(Av::S("99999999999999999999.0.0".into()))), "version"),
        ("t8", with(good("t8"), "arn", Some(Av::S("arn:\u{202e}aws".into()))), "arn"),
        ("t9", with(good("t9"), "service", Some(Av::S("ørders".into()))), "pk names service"),
        ("t10", with(good("t10"), "status", Some(Av::S("up".repeat(50_000)))), "status"),
    ];
    for (_, item, _) in &cases {
        p.dynamodb.put_item().table_name(&p.table).set_item(Some(item.clone())).send().await.unwrap();
    }
    // A needs item that does not parse, and one with a unicode consumer.
    let needs = |consumer: &str, text: &str| {
        HashMap::from([
            ("pk".to_string(), Av::S(format!("CONSUMER#{consumer}"))),
            ("sk".to_string(), Av::S("NEEDS".into())),
            ("needs".to_string(), Av::S(text.into())),
        ])
    };
    p.dynamodb.put_item().table_name(&p.table).set_item(Some(needs("web", "orders,,x"))).send().await.unwrap();
    p.dynamodb.put_item().table_name(&p.table).set_item(Some(needs("wéb", "orders"))).send().await.unwrap();
    p.dynamodb.put_item().table_name(&p.table).set_item(Some(good("fine"))).send().await.unwrap();

    let events = q
        .receive_until(Duration::from_secs(30), |all| {
            of_kind(all, "invalid").len() >= cases.len() + 2 && !of_kind(all, "registered").is_empty()
        })
        .await;
    let invalid = of_kind(&events, "invalid");
    for (id, _, says) in &cases {
        let found: Vec<_> =
            invalid.iter().filter(|e| e["sk"].as_str().is_some_and(|sk| sk.ends_with(&format!("#{id}")))).collect();
        assert_eq!(found.len(), 1, "{id}: {invalid:#?}");
        let reason = found[0]["reason"].as_str().unwrap();
        assert!(reason.contains(says), "{id}: {reason}");
        assert!(reason.len() < 2000, "{id}: the reason echoes the payload ({} bytes)", reason.len());
        assert!(schema_errors(found[0]).is_empty());
    }
    assert!(invalid.iter().any(|e| e["pk"] == "CONSUMER#web" && e["reason"].as_str().unwrap().contains("empty part")));
    assert!(invalid.iter().any(|e| e["pk"] == "CONSUMER#wéb"));
    assert_eq!(of_kind(&events, "registered")[0]["instance_id"], "fine", "the valid item after them did not flow");
    assert_eq!(p.stats.failed_invocations.load(Ordering::Relaxed), 0, "a hostile item was retried");
    p.stop().await;
}
