//! The item decoders on any DynamoDB JSON map: a registration, a consumer's
//! needs, a resolved item, a key, and a stream record's images through the
//! classifier. None may panic; a decode error must say something.
#![no_main]

#[path = "../cases/item_decoders.rs"]
mod case;

libfuzzer_sys::fuzz_target!(|data: &[u8]| case::check(data));
