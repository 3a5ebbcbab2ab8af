//! The fan-out's input: a Lambda DynamoDB stream event, as bytes, decoded
//! and every record classified (what the fan-out does before it touches
//! the table or the topic). None may panic.
#![no_main]

#[path = "../cases/stream_event.rs"]
mod case;

libfuzzer_sys::fuzz_target!(|data: &[u8]| case::check(data));
