//! Property tests for the AWS adapters (proptest): the item codecs, and
//! stream records through decoding and classification.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::HashMap;

use beacon_aws::item::{decode_needs, decode_registration, encode_registration, from_sdk, to_sdk};
use beacon_aws::stream::{RecordImages, decode_record};
use beacon_domain::change::{Classified, StreamChange};
use beacon_domain::classify;
use proptest::prelude::*;
use serde_dynamo::{AttributeValue as Av, Item};

#[path = "../../domain/tests/strategies/mod.rs"]
mod strategies;
use strategies::registration;

proptest! {
    #[test]
    fn heartbeat_only_changes_never_emit(r in registration(), dt in 1i64..10_000) {
        let mut later = r.clone();
        later.expires_at += dt;
        later.updated_at += dt;
        let (old, new) = (encode_registration(&r), encode_registration(&later));
        let images = RecordImages { keys: &old, old_image: &old, new_image: &new };
        let change = decode_record(images, StreamChange { event_name: "MODIFY".into(), ..Default::default() });
        let got = classify(&change, r.updated_at + dt); // processed when the heartbeat was written
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
