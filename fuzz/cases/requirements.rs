//! The requirement and version parsers on any text: `NEEDED_SERVICES`, the
//! CLI's and the API's requirements, stored needs. None may panic; what
//! parses must print back to something that parses to the same.
//!
//! The check is shared: the cargo-fuzz target (`fuzz/fuzz_targets/`) runs it
//! under libFuzzer, and `tests/tests/fuzz_replay.rs` replays the seeds and
//! every regression through it in the test suite.

/// One input: must not panic.
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match beacon_domain::parse_needs(&text) {
        Ok(parsed) => {
            let printed = beacon_domain::requirement::format_needs(&parsed);
            assert_eq!(
                beacon_domain::parse_needs(&printed).ok().as_ref(),
                Some(&parsed),
                "{text:?} printed as {printed:?}"
            );
        }
        Err(e) => assert!(!e.to_string().is_empty(), "an error says what is wrong"),
    }
    if let Ok(v) = beacon_domain::version::parse_version(&text) {
        assert_eq!(beacon_domain::version::parse_version(&v.to_string()).ok(), Some(v));
    }
    let _ = beacon_domain::Requirement::parse(&text);
}
