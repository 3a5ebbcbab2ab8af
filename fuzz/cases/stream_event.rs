//! The fan-out's input: a Lambda DynamoDB stream event, as bytes, decoded
//! and every record classified (what the fan-out does before it touches
//! the table or the topic). None may panic.
//!
//! The check is shared: the cargo-fuzz target (`fuzz/fuzz_targets/`) runs it
//! under libFuzzer, and `tests/tests/fuzz_replay.rs` replays the seeds and
//! every regression through it in the test suite.

use aws_lambda_events::event::dynamodb::Event;

/// One input: must not panic.
pub fn check(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<Event>(data) else { return };
    for record in &event.records {
        let change = beacon_aws::stream::stream_change(record);
        let _ = beacon_aws::stream::sequence_number(record);
        let _ = beacon_domain::classify(&change, 0);
        let _ = beacon_domain::classify(&change, i64::MAX);
    }
}
