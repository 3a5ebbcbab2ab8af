use super::*;
use crate::registration::MAX_CLOCK_SKEW_SECONDS;
use crate::registration::{Status, ValidationError};
use crate::requirement::parse_needs;

fn reg() -> Registration {
    Registration::new_at("orders", "1.0", "i-1", "https://o.example", Status::Healthy, 60, 1_000).unwrap()
}

fn key_of(r: &Registration) -> (String, String) {
    (keys::service_pk(&r.service), keys::instance_sk(&r.version.to_string(), &r.instance_id))
}

fn change(name: &str, old: Option<&Registration>, new: Option<&Registration>) -> StreamChange {
    let any = new.or(old).unwrap();
    StreamChange {
        event_id: "e1".into(),
        event_name: name.into(),
        key: Some(key_of(any)),
        old_image: old.cloned().map(Image::Registration),
        new_image: new.cloned().map(Image::Registration),
        user_identity: None,
        created_at: 1_000,
        new_expiry_shard: None,
    }
}

fn kind(c: Classified) -> ChangeKind {
    match c {
        Classified::Registration(r) => r.kind,
        other => panic!("expected a registration change, got {other:?}"),
    }
}

#[test]
fn writes_are_classified() {
    let a = reg();
    assert_eq!(kind(classify(&change("INSERT", None, Some(&a)), 1_001)), ChangeKind::Registered);
    let mut b = a.clone();
    b.status = Status::Draining;
    assert_eq!(kind(classify(&change("MODIFY", Some(&a), Some(&b)), 1_001)), ChangeKind::StatusChanged);
    let mut c = a.clone();
    c.endpoint_url = "https://new.example".into();
    assert_eq!(kind(classify(&change("MODIFY", Some(&a), Some(&c)), 1_001)), ChangeKind::Updated);
    let mut hb = a.clone();
    hb.expires_at += 60;
    hb.updated_at += 60;
    // (Processed after it was written: a heartbeat dated a minute ahead
    // of the fan-out's clock would be refused.)
    assert!(matches!(classify(&change("MODIFY", Some(&a), Some(&hb)), 1_061), Classified::Heartbeat { .. }));
    assert_eq!(classify(&change("MODIFY", Some(&a), Some(&a)), 1_001), Classified::Ignored("identical write"));
}

#[test]
fn removals_are_deregistered_or_expired() {
    let a = reg(); // expires at 1_060
    assert_eq!(kind(classify(&change("REMOVE", Some(&a), None), 1_001)), ChangeKind::Deregistered);
    assert_eq!(kind(classify(&change("REMOVE", Some(&a), None), 1_060)), ChangeKind::Expired);
    let mut ttl = change("REMOVE", Some(&a), None);
    ttl.user_identity = Some(("Service".into(), TTL_PRINCIPAL.into()));
    assert_eq!(kind(classify(&ttl, 1_001)), ChangeKind::Expired);
    // DynamoDB Local's TTL deletes: an event name the SDK does not know.
    let local_ttl = change("UNKNOWN", Some(&a), None);
    assert_eq!(kind(classify(&local_ttl, 1_001)), ChangeKind::Expired);
}

#[test]
fn malformed_items_are_invalid_with_key_and_reason() {
    let a = reg();
    let mut c = change("INSERT", None, Some(&a));
    c.new_image = Some(Image::Invalid(DecodeError::WrongType {
        field: "status",
        expected: "a string (S)",
        found: "a number (N)",
    }));
    match classify(&c, 1_001) {
        Classified::Invalid(i) => {
            assert_eq!(i.pk.as_deref(), Some("SERVICE#orders"));
            assert_eq!(i.service.as_deref(), Some("orders"));
            assert!(i.reason.contains("status"), "{}", i.reason);
        }
        other => panic!("{other:?}"),
    }
    // A removed item that was never valid was never announced: nothing.
    let mut gone = change("REMOVE", Some(&a), None);
    gone.old_image = Some(Image::Invalid(DecodeError::Invalid(ValidationError::new("status", "bad"))));
    assert!(matches!(classify(&gone, 1_001), Classified::Ignored(_)));
    // No key at all.
    let mut keyless = change("INSERT", None, Some(&a));
    keyless.key = None;
    assert!(matches!(classify(&keyless, 1_001), Classified::Invalid(InvalidRecord { pk: None, .. })));
}

#[test]
fn a_registration_outside_the_expiry_index_is_repaired_once() {
    let a = reg();
    let (pk, sk) = key_of(&a);
    let right = keys::expiry_shard(&pk, &sk);
    let mut c = change("INSERT", None, Some(&a));
    let want = ShardRepair { pk, sk, shard: right.clone(), expires_at: a.expires_at, valid_until: a.expires_at };
    assert_eq!(shard_repair(&c, 1_000), Some(want.clone()), "no shard at all");
    c.new_expiry_shard = Some("9".into());
    assert_eq!(shard_repair(&c, 1_000), Some(want), "a shard its key does not hash to");
    c.new_expiry_shard = Some(right.clone());
    assert_eq!(shard_repair(&c, 1_000), None, "already in the index");
    let mut removed = change("REMOVE", Some(&a), None);
    removed.new_expiry_shard = None;
    assert_eq!(shard_repair(&removed, 1_000), None, "nothing to repair on a removal");
    let mut bad = change("INSERT", None, Some(&a));
    bad.new_image = Some(Image::Invalid(DecodeError::Missing("status")));
    assert_eq!(shard_repair(&bad, 1_000), None, "an invalid item is reported, not indexed");
}

#[test]
fn an_expiry_past_the_registrations_own_ttl_is_brought_back() {
    let mut a = reg();
    a.expires_at = 4_102_444_800; // 2100, with ttl_seconds and updated_at honest
    let (pk, sk) = key_of(&a);
    let mut c = change("INSERT", None, Some(&a));
    c.new_expiry_shard = Some(keys::expiry_shard(&pk, &sk));
    let repair = shard_repair(&c, 1_000).expect("an expires_at past updated_at + ttl_seconds is repaired");
    assert_eq!(repair.valid_until, a.updated_at + i64::try_from(a.ttl_seconds).unwrap());
    assert_eq!(repair.expires_at, a.expires_at, "conditional on what the record saw");
    // Once repaired, its own record asks for nothing.
    a.expires_at = repair.valid_until;
    let mut after = change("MODIFY", None, Some(&a));
    after.new_expiry_shard = c.new_expiry_shard.clone();
    assert_eq!(shard_repair(&after, 1_000), None);
}

#[test]
fn a_registration_dated_in_the_future_is_published_and_bounded_by_the_fan_outs_clock() {
    let mut a = reg();
    let now = a.updated_at;
    a.updated_at = now + 3_600;
    a.expires_at = a.updated_at + 60;
    let (pk, sk) = key_of(&a);
    let mut c = change("INSERT", None, Some(&a));
    c.new_expiry_shard = Some(keys::expiry_shard(&pk, &sk));
    // Registered like any other (a writer whose clock runs fast is
    // still running), then heartbeats publish nothing as usual.
    assert!(matches!(classify(&c, now), Classified::Registration(_)));
    let repair = shard_repair(&c, now).expect("a future-dated expiry is brought back");
    assert_eq!(repair.valid_until, now + MAX_CLOCK_SKEW_SECONDS + 60);
    // Within the skew: nothing to repair.
    a.updated_at = now + MAX_CLOCK_SKEW_SECONDS;
    a.expires_at = a.updated_at + 60;
    let mut c = change("INSERT", None, Some(&a));
    c.new_expiry_shard = Some(keys::expiry_shard(&pk, &sk));
    assert_eq!(shard_repair(&c, now), None);
}

#[test]
fn needs_changes_and_own_writes() {
    let n = Needs { consumer: "web".into(), needs: parse_needs("orders").unwrap() };
    let c = StreamChange {
        event_name: "INSERT".into(),
        key: Some((keys::consumer_pk("web"), keys::needs_sk().into())),
        new_image: Some(Image::Needs(n.clone())),
        ..Default::default()
    };
    assert!(matches!(classify(&c, 1), Classified::Needs(NeedsChange { after: Some(_), .. })));
    let same = StreamChange { old_image: Some(Image::Needs(n)), event_name: "MODIFY".into(), ..c };
    assert_eq!(classify(&same, 1), Classified::Ignored("needs unchanged"));
    let own = StreamChange {
        event_name: "MODIFY".into(),
        key: Some((keys::consumer_pk("web"), keys::resolved_sk().into())),
        ..Default::default()
    };
    assert_eq!(classify(&own, 1), Classified::Ignored("the fan-out's own write"));
}
