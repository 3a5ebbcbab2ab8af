//! Property tests for the AWS adapters (proptest): the item codecs, and
//! stream records through decoding and classification.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;

use beacon::change::{Classified, StreamChange};
use beacon::{Registration, Status, classify};
use beacon_aws::item::{decode_needs, decode_registration, encode_registration, from_sdk, to_sdk};
use beacon_aws::stream::{RecordImages, decode_record};
use proptest::prelude::*;
use semver::Version;
use serde_dynamo::{AttributeValue as Av, Item};

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,12}"
}

fn version() -> impl Strategy<Value = Version> {
    (0u64..4, 0u64..4, 0u64..4, prop::option::of("(alpha|beta|rc)\\.[0-9]")).prop_map(|(a, b, c, pre)| {
        let mut v = Version::new(a, b, c);
        if let Some(p) = pre {
            v.pre = semver::Prerelease::new(&p).unwrap();
        }
        v
    })
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Healthy), Just(Status::Unhealthy), Just(Status::Draining)]
}

prop_compose! {
    fn registration_of(service: String)(
        version in version(),
        id in "[a-z0-9]{1,8}",
        host in "[a-z]{1,10}",
        status in status(),
        ttl in 10u64..1000,
        updated in 0i64..1000,
        arn in prop::option::of("[a-z]{1,8}"),
        attributes in prop::collection::btree_map("[a-z]{1,8}", "\\PC{0,20}", 0..4),
    ) -> Registration {
        Registration {
            service: service.clone(),
            version,
            instance_id: id,
            endpoint_url: format!("https://{host}.example/x"),
            arn: arn.map(|a| format!("arn:aws:lambda:us-east-1:123456789012:function:{a}")),
            status,
            attributes,
            ttl_seconds: ttl,
            expires_at: updated + i64::try_from(ttl).unwrap(),
            updated_at: updated,
        }
    }
}

fn registration() -> impl Strategy<Value = Registration> {
    name().prop_flat_map(registration_of)
}

proptest! {
    #[test]
    fn heartbeat_only_changes_never_emit(r in registration(), dt in 1i64..10_000) {
        let mut later = r.clone();
        later.expires_at += dt;
        later.updated_at += dt;
        let (old, new) = (encode_registration(&r), encode_registration(&later));
        let images = RecordImages { keys: &old, old_image: &old, new_image: &new };
        let change = decode_record(images, StreamChange { event_name: "MODIFY".into(), ..Default::default() });
        let got = classify(&change, r.updated_at);
        prop_assert!(matches!(got, Classified::Heartbeat { .. }), "{:?}", got);
    }

    #[test]
    fn registrations_round_trip_through_both_carriers(r in registration()) {
        let item = encode_registration(&r);
        prop_assert_eq!(decode_registration(&item).unwrap(), r.clone());
        prop_assert_eq!(decode_registration(&from_sdk(to_sdk(item))).unwrap(), r);
    }

    #[test]
    fn arbitrary_maps_never_panic_the_decoders(item in arbitrary_item()) {
        let _ = decode_registration(&item);
        let _ = decode_needs(&item);
        let empty = Item::from(HashMap::<String, Av>::new());
        let images = RecordImages { keys: &item, old_image: &empty, new_image: &item };
        let change = decode_record(images, StreamChange { event_name: "INSERT".into(), ..Default::default() });
        let _ = classify(&change, 0);
    }
}

fn attribute_value() -> impl Strategy<Value = Av> {
    let leaf = prop_oneof![
        "\\PC{0,12}".prop_map(Av::S),
        "-?[0-9]{1,25}(\\.[0-9]{1,3})?".prop_map(Av::N),
        any::<bool>().prop_map(Av::Bool),
        any::<bool>().prop_map(Av::Null),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Av::B),
        prop::collection::vec("\\PC{0,6}", 0..3).prop_map(Av::Ss),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Av::L),
            prop::collection::hash_map("[a-z_]{1,8}", inner, 0..4).prop_map(Av::M),
        ]
    })
}

/// Maps that are near misses of real items: real field names, random types.
fn arbitrary_item() -> impl Strategy<Value = Item> {
    let field = prop_oneof![
        Just("pk".to_string()),
        Just("sk".to_string()),
        Just("service".to_string()),
        Just("version".to_string()),
        Just("instance_id".to_string()),
        Just("endpoint_url".to_string()),
        Just("status".to_string()),
        Just("ttl_seconds".to_string()),
        Just("expires_at".to_string()),
        Just("attributes".to_string()),
        Just("needs".to_string()),
        "[a-z]{1,6}",
    ];
    let keyed = (
        prop_oneof![Just("SERVICE#a".to_string()), Just("CONSUMER#a".to_string()), "\\PC{0,10}"],
        prop_oneof![Just("INSTANCE#1.0.0#i".to_string()), Just("NEEDS".to_string()), "\\PC{0,12}"],
    );
    (keyed, prop::collection::hash_map(field, attribute_value(), 0..12)).prop_map(|((pk, sk), mut m)| {
        m.entry("pk".into()).or_insert(Av::S(pk));
        m.entry("sk".into()).or_insert(Av::S(sk));
        Item::from(m.into_iter().collect::<HashMap<_, _>>())
    })
}

proptest! {
    /// Arbitrary bytes and arbitrary JSON never panic the stream event
    /// decoder or the classifier behind it.
    #[test]
    fn the_stream_event_decoder_never_panics(raw in prop::collection::vec(any::<u8>(), 0..200), name in "\\PC{0,12}", item in arbitrary_item()) {
        let _ = serde_json::from_slice::<aws_lambda_events::event::dynamodb::Event>(&raw);
        let record = serde_json::json!({
            "Records": [{
                "eventID": "e", "eventName": name, "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": { "Keys": item.clone(), "NewImage": item, "SequenceNumber": "1", "SizeBytes": 1 }
            }]
        });
        if let Ok(event) = serde_json::from_value::<aws_lambda_events::event::dynamodb::Event>(record) {
            for r in &event.records {
                let _ = classify(&beacon_aws::stream::stream_change(r), 0);
            }
        }
    }
}
