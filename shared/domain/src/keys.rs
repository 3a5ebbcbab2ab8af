//! The table's key shapes, defined once (single-table design,
//! docs/architecture.md). No other module spells a prefix.
//!
//! | item          | pk                | sk                              | written by |
//! |---------------|-------------------|---------------------------------|------------|
//! | registration  | `SERVICE#<name>`  | `INSTANCE#<version>#<instance>` | the service's writers |
//! | needs         | `CONSUMER#<id>`   | `NEEDS`                         | the consumer |
//! | resolved      | `CONSUMER#<id>`   | `RESOLVED`                      | the fan-out |
//! | generation    | `FANOUT#<name>`   | `GENERATION`                    | the fan-out |
//! | dependency    | `FANOUT#<name>`   | `DEPENDENT#<consumer>`          | the fan-out |
//! | view group    | `FANOUT#<name>`   | `VIEW#<group id>`               | the fan-out |
//!
//! The fan-out's bookkeeping about a service lives in a partition of its
//! own, `FANOUT#<name>`, which no tenant's policy can name: IAM's
//! `dynamodb:LeadingKeys` grants a service's writer `SERVICE#<name>`, so
//! whatever it writes there can only be a registration, checked like any
//! other (docs/security.md, "What a tenant can do to its own partition").
//! Tables written before this layout kept that bookkeeping under
//! `SERVICE#<name>`; the fan-out moves it on a service's first refresh
//! ([`LEGACY_LAYOUT`]).

/// Partition key attribute name.
pub const PK: &str = "pk";
/// Sort key attribute name.
pub const SK: &str = "sk";
/// The sparse index the sweeper queries: only registrations carry
/// [`EXPIRY_SHARD`], so the index holds nothing else.
pub const EXPIRY_INDEX: &str = "expiry";
/// The expiry index's partition key: one of [`EXPIRY_SHARDS`] values, so due
/// registrations spread over several partitions instead of one hot key.
pub const EXPIRY_SHARD: &str = "expiry_shard";
/// How many expiry shards there are.
pub const EXPIRY_SHARDS: u32 = 8;
/// The sparse index listings read: registrations only (they alone carry
/// [`EXPIRY_SHARD`]), by shard and then partition key, keys only. Unlike the
/// expiry index its keys never move (a heartbeat does not write it), so a
/// listing's pages neither skip nor repeat a registration.
pub const LISTING_INDEX: &str = "listing";
/// The table's TTL attribute (DynamoDB's own backstop deletion).
pub const EXPIRES_AT: &str = "expires_at";
/// On a registration in a multi-Region registry: the Region Beacon last
/// wrote it in. That Region's sweeper expires it at once; the others only
/// after [`FOREIGN_EXPIRY_GRACE_SECONDS`], so a Region cut off from
/// replication cannot delete an instance re-registered elsewhere meanwhile
/// (docs/architecture.md, "Every Region at once").
pub const WRITTEN_IN: &str = "written_in";
/// How long past its `expires_at` another Region's registration waits
/// before a Region's sweeper deletes it (its own Region being down).
/// Readers hide it from `expires_at` on in every Region regardless.
pub const FOREIGN_EXPIRY_GRACE_SECONDS: i64 = 300;

const SERVICE: &str = "SERVICE#";
const FANOUT: &str = "FANOUT#";
const CONSUMER: &str = "CONSUMER#";
const INSTANCE: &str = "INSTANCE#";
const DEPENDENT: &str = "DEPENDENT#";
const GENERATION: &str = "GENERATION";
const VIEW: &str = "VIEW#";
const NEEDS: &str = "NEEDS";
const RESOLVED: &str = "RESOLVED";

/// `SERVICE#<name>`.
pub fn service_pk(service: &str) -> String {
    format!("{SERVICE}{service}")
}

/// `FANOUT#<name>`: the fan-out's bookkeeping about a service (its
/// generation, dependency edges and view groups).
pub fn fanout_pk(service: &str) -> String {
    format!("{FANOUT}{service}")
}

/// `FANOUT#<name>`, or in a multi-Region registry `FANOUT#<region>#<name>`:
/// each Region's fan-out keeps its own bookkeeping, which replication
/// copies to the other Regions but no other Region ever writes, so last
/// writer wins can never lose one of its updates or bring an older one
/// back (docs/architecture.md, "Every Region at once"). A service name
/// holds no `#`, so the two shapes never meet.
pub fn fanout_pk_in(region: Option<&str>, service: &str) -> String {
    match region {
        Some(region) => format!("{FANOUT}{region}#{service}"),
        None => fanout_pk(service),
    }
}

/// `RESOLVED`, or in a multi-Region registry `RESOLVED#<region>`: the view
/// a consumer reads in its own Region, written by that Region's fan-out
/// only (the reason is [`fanout_pk_in`]'s).
pub fn resolved_sk_in(region: Option<&str>) -> String {
    match region {
        Some(region) => format!("{RESOLVED}#{region}"),
        None => RESOLVED.to_owned(),
    }
}

/// The layout before the fan-out's bookkeeping had its own partition: the
/// generation, edges and view groups sat under `SERVICE#<name>`, which the
/// service's writer may write. Read only to move them, once per service.
pub const LEGACY_LAYOUT: &str = "SERVICE#<name> / GENERATION, DEPENDENT#…, VIEW#…";

/// The attribute on `FANOUT#<name> / GENERATION` that says the service's
/// bookkeeping has been moved out of `SERVICE#<name>`; its value is the
/// layout's number ([`LAYOUT_FANOUT_PARTITION`]).
pub const LAYOUT: &str = "layout";
/// The layout with the fan-out's bookkeeping under `FANOUT#<name>`.
pub const LAYOUT_FANOUT_PARTITION: u64 = 2;

/// `INSTANCE#<version>#<instance>`.
pub fn instance_sk(version: &str, instance_id: &str) -> String {
    format!("{INSTANCE}{version}#{instance_id}")
}

/// The prefix shared by every registration sort key of a service.
pub fn instance_sk_prefix() -> &'static str {
    INSTANCE
}

/// `DEPENDENT#<consumer>`.
pub fn dependent_sk(consumer: &str) -> String {
    format!("{DEPENDENT}{consumer}")
}

/// `GENERATION`.
pub fn generation_sk() -> &'static str {
    GENERATION
}

/// The prefix shared by every dependency edge's sort key.
pub fn dependent_sk_prefix() -> &'static str {
    DEPENDENT
}

/// `VIEW#<group id>`: one item per distinct set of requirements that
/// consumers have on a service (docs/architecture.md, "View groups").
pub fn view_sk(group: &str) -> String {
    format!("{VIEW}{group}")
}

/// The prefix shared by every view group's sort key.
pub fn view_sk_prefix() -> &'static str {
    VIEW
}

/// The lowest sort key of a service's bookkeeping without its edges. Edges
/// (`DEPENDENT#…`) sort before `GENERATION` and `VIEW#…`, so one Query of
/// `FANOUT#<name>` from here reads the generation and the view groups,
/// however many consumers depend on the service.
pub fn state_sk_from() -> &'static str {
    GENERATION
}

/// `CONSUMER#<id>`.
pub fn consumer_pk(consumer: &str) -> String {
    format!("{CONSUMER}{consumer}")
}

/// The prefix shared by every consumer partition key.
pub fn consumer_pk_prefix() -> &'static str {
    CONSUMER
}

/// `NEEDS`.
pub fn needs_sk() -> &'static str {
    NEEDS
}

/// `RESOLVED`.
pub fn resolved_sk() -> &'static str {
    RESOLVED
}

/// The expiry shard of a registration: stable for its key, so a heartbeat
/// keeps it in place.
pub fn expiry_shard(pk: &str, sk: &str) -> String {
    // FNV-1a: tiny, stable across releases (std's hasher is not).
    let mut h: u32 = 0x811c_9dc5;
    for b in pk.bytes().chain([b'|']).chain(sk.bytes()) {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{}", h % EXPIRY_SHARDS)
}

/// The service a `FANOUT#<name>` partition key names.
pub fn fanout_service_of(pk: &str) -> Option<&str> {
    pk.strip_prefix(FANOUT)
}

/// The service a `SERVICE#<name>` partition key names.
pub fn service_of(pk: &str) -> Option<&str> {
    pk.strip_prefix(SERVICE)
}

/// Whether a key is in the registration key space (`SERVICE#…` /
/// `INSTANCE#…`), even if malformed: such an item is reported, not ignored.
pub fn looks_like_registration(pk: &str, sk: &str) -> bool {
    pk.starts_with(SERVICE) && sk.starts_with(INSTANCE)
}

/// The consumer a `DEPENDENT#<consumer>` sort key names.
pub fn dependent_of(sk: &str) -> Option<&str> {
    sk.strip_prefix(DEPENDENT)
}

/// Whether a sort key is a registration's (`INSTANCE#…`).
pub fn is_instance_sk(sk: &str) -> bool {
    sk.starts_with(INSTANCE)
}

/// What a key says an item is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// A service instance's registration (`version` as written in the key).
    Instance {
        /// Service name from the pk.
        service: String,
        /// Version text from the sk.
        version: String,
        /// Instance id from the sk.
        instance_id: String,
    },
    /// A consumer's declared needs.
    Needs {
        /// Consumer id from the pk.
        consumer: String,
    },
    /// The fan-out's own bookkeeping: dependency edges, generations, view
    /// groups (under `FANOUT#`), resolved items. The fan-out ignores its
    /// own writes.
    Own,
    /// An item under `SERVICE#<name>` that is not a registration: the
    /// bookkeeping of the layout before `FANOUT#` ([`LEGACY_LAYOUT`]), or
    /// anything a service's writer put there. Never read as bookkeeping.
    Stray,
    /// Not a Beacon key shape (or a registration key that is malformed).
    Other,
}

/// Classifies a key.
pub fn key_kind(pk: &str, sk: &str) -> KeyKind {
    if let Some(service) = pk.strip_prefix(SERVICE) {
        if let Some(rest) = sk.strip_prefix(INSTANCE) {
            let mut parts = rest.splitn(2, '#');
            if let (Some(version), Some(instance_id)) = (parts.next(), parts.next()) {
                return KeyKind::Instance {
                    service: service.to_owned(),
                    version: version.to_owned(),
                    instance_id: instance_id.to_owned(),
                };
            }
            return KeyKind::Other;
        }
        return KeyKind::Stray;
    } else if pk.starts_with(FANOUT) {
        return KeyKind::Own;
    } else if let Some(consumer) = pk.strip_prefix(CONSUMER) {
        if sk == NEEDS {
            return KeyKind::Needs { consumer: consumer.to_owned() };
        }
        if sk == RESOLVED || sk.strip_prefix(RESOLVED).is_some_and(|r| r.starts_with('#')) {
            return KeyKind::Own;
        }
    }
    KeyKind::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_key_kind() {
        assert_eq!(
            key_kind(&service_pk("orders"), &instance_sk("1.2.0", "i-1")),
            KeyKind::Instance { service: "orders".into(), version: "1.2.0".into(), instance_id: "i-1".into() }
        );
        assert_eq!(key_kind(&consumer_pk("web"), needs_sk()), KeyKind::Needs { consumer: "web".into() });
        assert_eq!(key_kind(&consumer_pk("web"), resolved_sk()), KeyKind::Own);
        assert_eq!(key_kind(&fanout_pk("orders"), generation_sk()), KeyKind::Own);
        assert_eq!(key_kind(&fanout_pk("orders"), &dependent_sk("web")), KeyKind::Own);
        assert_eq!(key_kind(&fanout_pk_in(Some("eu-west-1"), "orders"), generation_sk()), KeyKind::Own);
        assert_eq!(key_kind(&consumer_pk("web"), &resolved_sk_in(Some("eu-west-1"))), KeyKind::Own);
        assert_eq!(fanout_pk_in(None, "orders"), fanout_pk("orders"));
        assert_eq!(resolved_sk_in(None), resolved_sk());
        assert_eq!(key_kind(&consumer_pk("web"), "RESOLVEDX"), KeyKind::Other);
        assert_eq!(key_kind(&fanout_pk("orders"), &view_sk("0a1b")), KeyKind::Own);
        // A writer's own partition holds registrations and nothing the
        // fan-out reads as bookkeeping.
        assert_eq!(key_kind(&service_pk("orders"), generation_sk()), KeyKind::Stray);
        assert_eq!(key_kind(&service_pk("orders"), &dependent_sk("web")), KeyKind::Stray);
        assert_eq!(key_kind(&service_pk("orders"), &view_sk("0a1b")), KeyKind::Stray);
        assert_eq!(key_kind("junk", "junk"), KeyKind::Other);
    }

    #[test]
    fn a_state_query_from_generation_reads_no_edges() {
        let from = state_sk_from();
        assert!(dependent_sk("~~~~").as_str() < from, "edges must sort before the state");
        assert!(dependent_sk("zzz\u{10ffff}").as_str() < from);
        assert!(view_sk("00").as_str() >= from);
        assert!(generation_sk() >= from);
    }

    #[test]
    fn no_tenant_partition_can_name_the_fan_outs() {
        // LeadingKeys grants exact partitions: a service or consumer name
        // can never spell another prefix.
        for name in ["orders", "FANOUT", "x"] {
            assert!(!service_pk(name).starts_with(FANOUT));
            assert!(!consumer_pk(name).starts_with(FANOUT));
            assert_ne!(fanout_pk(name), service_pk(name));
        }
        assert_eq!(fanout_service_of(&fanout_pk("orders")), Some("orders"));
    }

    #[test]
    fn expiry_shards_are_stable_and_bounded() {
        let a = expiry_shard("SERVICE#a", "INSTANCE#1.0.0#x");
        assert_eq!(a, expiry_shard("SERVICE#a", "INSTANCE#1.0.0#x"));
        let n: u32 = a.parse().unwrap();
        assert!(n < EXPIRY_SHARDS);
    }
}
