//! The item decoders on any DynamoDB JSON map: a registration, a consumer's
//! needs, a resolved item, a key, and a stream record's images through the
//! classifier. None may panic; a decode error must say something.
//!
//! The check is shared: the cargo-fuzz target (`fuzz/fuzz_targets/`) runs it
//! under libFuzzer, and `tests/tests/fuzz_replay.rs` replays the seeds and
//! every regression through it in the test suite.

use std::collections::HashMap;

use beacon_aws::item::{decode_needs, decode_registration, decode_resolved, item_key};
use beacon_aws::stream::{RecordImages, decode_record};
use beacon_domain::change::StreamChange;
use serde_dynamo::{AttributeValue, Item};

/// One input: must not panic.
pub fn check(data: &[u8]) {
    let Ok(item) = serde_json::from_slice::<Item>(data) else { return };
    if let Err(e) = decode_registration(&item) {
        assert!(!e.to_string().is_empty(), "a decode error says what is wrong");
    }
    if let Err(e) = decode_needs(&item) {
        assert!(!e.to_string().is_empty());
    }
    let _ = decode_resolved(item.clone());
    let _ = item_key(&item);
    let empty = Item::from(HashMap::<String, AttributeValue>::new());
    for (old, new, name) in [(&empty, &item, "INSERT"), (&item, &item, "MODIFY"), (&item, &empty, "REMOVE")] {
        let images = RecordImages { keys: &item, old_image: old, new_image: new };
        let change = decode_record(images, StreamChange { event_name: name.into(), ..Default::default() });
        let _ = beacon_domain::classify(&change, 0);
    }
}
