//! The requirement and version parsers on any text: `NEEDED_SERVICES`, the
//! CLI's and the API's requirements, stored needs. None may panic; what
//! parses must print back to something that parses to the same.
#![no_main]

#[path = "../cases/requirements.rs"]
mod case;

libfuzzer_sys::fuzz_target!(|data: &[u8]| case::check(data));
