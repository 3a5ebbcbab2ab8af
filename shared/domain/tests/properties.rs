//! Property tests for the domain (proptest): versions, requirements and
//! resolution, with no carrier at all.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_domain::change::{Classified, Image, StreamChange};
use beacon_domain::keys;
use beacon_domain::requirement::parse_needs;
use beacon_domain::{Registration, Requirement, Status, classify, resolve};
use proptest::prelude::*;

mod strategies;
use strategies::{name, registration, registration_of, version};

fn requirement_text() -> impl Strategy<Value = String> {
    let v = || (0u64..4, 0u64..4, 0u64..4);
    (
        name(),
        prop_oneof![
            Just(String::new()),
            v().prop_map(|(a, b, c)| format!("=={a}.{b}.{c}")),
            v().prop_map(|(a, b, _)| format!("^{a}.{b}")),
            v().prop_map(|(a, b, _)| format!("~{a}.{b}")),
            v().prop_map(|(a, b, c)| format!(">={a}.{b}.{c}")),
            (v(), 1u64..5).prop_map(|((a, b, _), hi)| format!(">={a}.{b},<{}", a + hi)),
        ],
    )
        .prop_map(|(n, c)| format!("{n}{c}"))
}

proptest! {
    #[test]
    fn versions_round_trip_through_text(v in version()) {
        prop_assert_eq!(beacon_domain::version::parse_version(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn requirements_round_trip_through_text(texts in prop::collection::vec(requirement_text(), 1..5)) {
        let joined = texts.join(",");
        let parsed = parse_needs(&joined).unwrap();
        prop_assert_eq!(parsed.len(), texts.len());
        let printed = beacon_domain::requirement::format_needs(&parsed);
        prop_assert_eq!(&printed, &joined);
        prop_assert_eq!(parse_needs(&printed).unwrap(), parsed);
    }

    #[test]
    fn resolution_picks_the_highest_healthy_live_match(
        instances in prop::collection::vec(registration_of("svc".into()), 0..12),
        req in requirement_text().prop_map(|t| {
            let cut = t.find(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-').unwrap_or(t.len());
            format!("svc{}", &t[cut..])
        }),
        now in 0i64..2000,
    ) {
        let req = Requirement::parse(&req).unwrap();
        let eligible = |r: &Registration| r.status == Status::Healthy && !r.is_expired(now) && req.matches(&r.version);
        match resolve(&req, &instances, now) {
            Ok(resolved) => {
                let best = instances.iter().filter(|r| eligible(r)).map(|r| &r.version).max();
                prop_assert_eq!(Some(&resolved.version), best);
                prop_assert!(!resolved.endpoints.is_empty());
                for e in &resolved.endpoints {
                    let r = instances.iter().find(|r| r.instance_id == e.instance_id && r.version == resolved.version && eligible(r));
                    prop_assert!(r.is_some(), "endpoint {:?} is not a healthy live instance", e);
                }
                let mut sorted = resolved.endpoints.clone();
                sorted.sort();
                prop_assert_eq!(sorted, resolved.endpoints);
            }
            Err(_) => prop_assert!(!instances.iter().any(eligible)),
        }
    }
}

proptest! {
    #[test]
    fn heartbeat_only_changes_never_emit(r in registration(), dt in 1i64..10_000) {
        let mut later = r.clone();
        later.expires_at += dt;
        later.updated_at += dt;
        let change = StreamChange {
            event_name: "MODIFY".into(),
            key: Some((keys::service_pk(&r.service), keys::instance_sk(&r.version.to_string(), &r.instance_id))),
            old_image: Some(Image::Registration(r.clone())),
            new_image: Some(Image::Registration(later)),
            ..Default::default()
        };
        let got = classify(&change, r.updated_at + dt); // processed when the heartbeat was written
        prop_assert!(matches!(got, Classified::Heartbeat { .. }), "{:?}", got);
    }
}

proptest! {
    /// Fuzzing by property (cargo-fuzz's nightly toolchain is not available
    /// here): any text at all is either a needs list or an error naming a part.
    #[test]
    fn the_requirement_parser_never_panics(text in "\\PC{0,60}", raw in prop::collection::vec(any::<u8>(), 0..80)) {
        if let Err(e) = parse_needs(&text) {
            prop_assert!(!e.to_string().is_empty());
        }
        let lossy = String::from_utf8_lossy(&raw);
        let _ = parse_needs(&lossy);
        let _ = beacon_domain::version::parse_version(&lossy);
    }
}
