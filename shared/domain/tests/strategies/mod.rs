//! Generators of valid domain values, shared by the domain's property tests
//! and the AWS adapters' (which include this file by path).

#![allow(dead_code, clippy::unwrap_used)] // each test binary uses some; a generator fails by panicking

use beacon_domain::{Registration, Status};
use proptest::prelude::*;
use semver::Version;

pub fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9_-]{0,12}"
}

pub fn version() -> impl Strategy<Value = Version> {
    (0u64..4, 0u64..4, 0u64..4, prop::option::of("(alpha|beta|rc)\\.[0-9]")).prop_map(|(a, b, c, pre)| {
        let mut v = Version::new(a, b, c);
        if let Some(p) = pre {
            v.pre = semver::Prerelease::new(&p).unwrap();
        }
        v
    })
}

pub fn status() -> impl Strategy<Value = Status> {
    prop_oneof![Just(Status::Healthy), Just(Status::Unhealthy), Just(Status::Draining)]
}

prop_compose! {
    pub fn registration_of(service: String)(
        version in version(),
        id in "[a-z0-9]{1,8}",
        host in "[a-z]{1,10}",
        status in status(),
        ttl in 10u64..1000,
        updated in 0i64..1000,
        arn in prop::option::of("[a-z]{1,8}"),
        attributes in prop::collection::btree_map("[a-z]{1,8}", "\\PC{0,20}", 0..4),
    ) -> Registration {
        Registration {
            service: service.clone(),
            version,
            instance_id: id,
            endpoint_url: format!("https://{host}.example/x"),
            arn: arn.map(|a| format!("arn:aws:lambda:us-east-1:123456789012:function:{a}")),
            status,
            attributes,
            ttl_seconds: ttl,
            expires_at: updated + i64::try_from(ttl).unwrap(),
            updated_at: updated,
        }
    }
}

pub fn registration() -> impl Strategy<Value = Registration> {
    name().prop_flat_map(registration_of)
}
