//! The fan-out's input: a Lambda DynamoDB stream event, as bytes, decoded
//! and every record classified (what the fan-out does before it touches
//! the table or the topic). None may panic.
#![no_main]

use aws_lambda_events::event::dynamodb::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(event) = serde_json::from_slice::<Event>(data) else { return };
    for record in &event.records {
        let change = beacon_aws::stream::stream_change(record);
        let _ = beacon_aws::stream::sequence_number(record);
        let _ = beacon::classify(&change, 0);
        let _ = beacon::classify(&change, i64::MAX);
    }
});
