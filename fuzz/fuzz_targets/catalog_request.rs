//! The catalog API's request handling (definition check, routing, body and
//! parameter parsing) on any request. The input is a request as text: a
//! first line `METHOD /path?query`, optionally `If-None-Match: value` on the
//! second, then the body. The catalog behind it is empty and accepts every
//! write: the fuzzer's throughput needs an in-memory one (DynamoDB Local
//! answers in milliseconds), and what is fuzzed is everything the API does
//! before and after it asks the registry. Nothing may panic, every answer
//! must be a status the API documents with a JSON object body, and a 400
//! must say what is wrong.
#![no_main]

#[path = "../cases/catalog_request.rs"]
mod case;

libfuzzer_sys::fuzz_target!(|data: &[u8]| case::check(data));
