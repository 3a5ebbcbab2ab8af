//! Every sample under `events/` decodes as Lambda would deliver it, and
//! every event the code can emit validates against its JSON Schema.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;

use aws_lambda_events::event::apigw::ApiGatewayProxyRequest;
use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use beacon_aws::item::decode_resolved;
use beacon_aws::stream::stream_change;
use beacon_domain::change::{ChangeKind, Classified};
use beacon_domain::event::Event;
use beacon_domain::view::ResolvedItem;
use beacon_domain::{classify, resolve};

fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

fn load<T: serde::de::DeserializeOwned>(rel: &str) -> T {
    let text = std::fs::read_to_string(events_dir().join(rel)).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn validator(name: &str) -> jsonschema::Validator {
    let schema: serde_json::Value = load(&format!("schema/{name}.schema.json"));
    jsonschema::validator_for(&schema).unwrap()
}

/// Validates an event against the schema for its kind.
fn assert_valid(event: &Event) {
    let name = match event {
        Event::Change(_) => "change",
        Event::Invalid(_) => "invalid",
        Event::Resolved(_) => "resolved",
    };
    let json: serde_json::Value = serde_json::from_str(&event.to_json()).unwrap();
    let v = validator(name);
    let errors: Vec<String> = v.iter_errors(&json).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{name} event does not match its schema: {errors:?}\n{json:#}");
}

/// Stands in for an event where the record publishes none.
fn placeholder() -> beacon_domain::change::InvalidRecord {
    beacon_domain::change::InvalidRecord { pk: None, sk: None, service: None, reason: "publishes nothing".into() }
}

fn classify_sample(rel: &str, now: i64) -> (Classified, Event) {
    let event: StreamEvent = load(rel);
    assert_eq!(event.records.len(), 1, "{rel}");
    let record = &event.records[0];
    let change = stream_change(record);
    // A record is processed after it was written.
    let classified = classify(&change, now.max(change.created_at));
    let published = match &classified {
        Classified::Registration(c) => Event::change(&change.event_id, c, change.created_at),
        Classified::Invalid(i) => Event::invalid(&change.event_id, i, change.created_at),
        other => return (other.clone(), Event::invalid(&change.event_id, &placeholder(), change.created_at)),
    };
    (classified, published)
}

#[test]
fn stream_samples_classify_as_named_and_validate() {
    let now = 1_795_000_000;
    for (rel, want) in [
        ("stream/insert.json", ChangeKind::Registered),
        ("stream/status-change-modify.json", ChangeKind::StatusChanged),
        ("stream/remove.json", ChangeKind::Deregistered),
        ("stream/ttl-remove.json", ChangeKind::Expired),
    ] {
        let (classified, event) = classify_sample(rel, now);
        match classified {
            Classified::Registration(c) => assert_eq!(c.kind, want, "{rel}"),
            other => panic!("{rel}: {other:?}"),
        }
        assert_valid(&event);
        assert_eq!(event.event_id().len(), 32, "{rel}: event id is the stream record's eventID");
    }
}

#[test]
fn heartbeat_sample_publishes_nothing() {
    let (classified, _) = classify_sample("stream/heartbeat-modify.json", 1_795_000_000);
    assert_eq!(classified, Classified::Heartbeat { service: "helloworld".into() });
}

#[test]
fn malformed_sample_is_an_invalid_event_naming_the_key() {
    let (classified, event) = classify_sample("stream/malformed.json", 1_795_000_000);
    let Classified::Invalid(invalid) = classified else { panic!("{classified:?}") };
    assert_eq!(invalid.sk.as_deref(), Some("INSTANCE#1.0.0#default"));
    assert!(invalid.reason.contains("status") || invalid.reason.contains("endpoint_url"), "{}", invalid.reason);
    assert_valid(&event);
}

#[test]
fn needs_sample_is_a_needs_change() {
    let (classified, _) = classify_sample("stream/needs-insert.json", 1_795_000_000);
    let Classified::Needs(n) = classified else { panic!("{classified:?}") };
    assert_eq!(n.consumer, "web");
    assert_eq!(n.after.unwrap().services(), ["helloworld", "payments"]);
}

#[test]
fn stream_samples_round_trip_through_the_lambda_types() {
    for entry in std::fs::read_dir(events_dir().join("stream")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed: StreamEvent = serde_json::from_str(&text).unwrap();
        let again: StreamEvent = serde_json::from_str(&serde_json::to_string(&parsed).unwrap()).unwrap();
        assert_eq!(parsed, again, "{}", path.display());
    }
}

#[test]
fn scheduled_and_api_samples_decode() {
    let scheduled: EventBridgeEvent = load("scheduled.json");
    assert_eq!(scheduled.detail_type, "Scheduled Event");
    for rel in ["api/register.json", "api/deregister.json", "api/lookup.json", "api/resolve.json", "api/list.json"] {
        let request: ApiGatewayProxyRequest = load(rel);
        assert!(request.path.as_deref().unwrap_or_default().starts_with("/catalog"), "{rel}");
    }
}

#[test]
fn resolved_events_validate() {
    use beacon_domain::view::{Outcome, RequirementView, ServiceView};
    let reg = beacon_domain::Registration::new_at(
        "orders",
        "1.0",
        "i-1",
        "https://o.example",
        beacon_domain::Status::Healthy,
        60,
        0,
    )
    .unwrap();
    let mut services = std::collections::BTreeMap::new();
    let mut requirements = Vec::new();
    for text in ["orders", "orders^2", "orders==1.0.0"] {
        let req = beacon_domain::Requirement::parse(text).unwrap();
        requirements.push(RequirementView {
            requirement: text.into(),
            outcome: Outcome::from(resolve(&req, std::slice::from_ref(&reg), 1)),
        });
    }
    services.insert("orders".to_string(), ServiceView::new(4, requirements));
    let item = ResolvedItem {
        consumer: "web".into(),
        revision: 3,
        needs: vec!["orders".into()],
        needed_services: vec!["orders".into()],
        services,
        last_change_id: None,
    };
    let event = Event::resolved("rec-1", Some("orders"), &item, 10);
    assert_valid(&event);
    assert_eq!(event.event_id(), "rec-1/web");
    let attrs = event.message_attributes();
    assert!(attrs.contains(&("consumer", "web".to_string())));
    // The item codec keeps everything the event needs.
    let round = decode_resolved(serde_dynamo::to_item(&item).unwrap()).unwrap();
    assert_eq!(round, item);
}
