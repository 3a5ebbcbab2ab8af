//! Subsetting: what a consumer gets of a requirement that resolves to more
//! endpoints than one view should hold (docs/architecture.md, "Large
//! services").
//!
//! A consumer's resolved item holds every service it needs, and an item is
//! limited to 400 KB (a `resolved` event, which carries the view, to SNS's
//! 256 KB). So a requirement whose chosen version has more than
//! [`SUBSET_SIZE`] healthy endpoints gives each consumer one *slot* of them:
//!
//! - every endpoint and every consumer has a point on a 64-bit ring: the
//!   first 8 bytes (big-endian) of SHA-256 of `<service>/<instance_id>` or
//!   `<service>/<consumer>`, so any language can compute it;
//! - the ring is cut into `slots` equal arcs, a power of two: the smallest
//!   with `endpoints / slots <= SUBSET_SIZE`, so a slot holds about 50–100;
//! - an endpoint is in the slot its point falls in, and a consumer reads the
//!   slot its point falls in (the top `log2(slots)` bits of each point).
//!
//! So every endpoint is in exactly one slot; each slot is read by the
//! consumers whose point falls in it (the consumers of a service spread over
//! its slots as their hashes do); an endpoint that comes or goes changes
//! one slot, and only the views of that slot's consumers; and when the
//! slot count doubles, each slot splits in two and its consumers keep half
//! of their endpoints. The function is pure, so the fan-out, the catalog API
//! (`?consumer=`) and `beacon get --consumer` give the same subset.

use serde::{Deserialize, Serialize};

use crate::resolution::Endpoint;

/// Most endpoints a requirement shows whole; past it, consumers get a slot.
pub const SUBSET_SIZE: usize = 100;

/// Most endpoints one slot shows. Slots hold at most [`SUBSET_SIZE`] on
/// average; this bounds an item even when instance ids are chosen to land
/// in one slot (endpoints past it, in ring order, are left out).
pub const MAX_SLOT_SIZE: usize = 2 * SUBSET_SIZE;

/// Most bytes of endpoints (ids, URLs and ARNs) one slot shows: ordinary
/// endpoints (~150 bytes) never reach it; endpoints at the registration
/// limits (2 KB URLs and ARNs) are cut at about 15, so one view of a large
/// service stays under a sixth of an item.
pub const MAX_SLOT_BYTES: usize = 64 * 1024;

/// Which part of a requirement's endpoints a view shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subset {
    /// The consumer's slot (absent in a view group's own view, which stands
    /// for every slot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// How many slots the endpoints are cut into.
    pub slots: u32,
    /// How many healthy endpoints the chosen version has in all: only in a
    /// view group's own view. A consumer's view leaves it out, or every
    /// endpoint that came or went would move every consumer's view, where
    /// only its slot's should move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<usize>,
    /// A view group's own view: a digest of each slot's endpoints, so a
    /// change can tell which slots moved. Empty in a consumer's view.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub digests: Vec<String>,
}

impl Subset {
    /// What a consumer's view says of its slot.
    pub fn slot(slot: u32, slots: u32) -> Self {
        Self { slot: Some(slot), slots, of: None, digests: Vec::new() }
    }
}

/// The ring point of `id` (an instance id or a consumer) in `service`.
pub fn point(service: &str, id: &str) -> u64 {
    use sha2::Digest as _;
    let mut h = sha2::Sha256::new();
    h.update(service.as_bytes());
    h.update(b"/");
    h.update(id.as_bytes());
    let d = h.finalize();
    u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// How many slots `endpoints` endpoints are cut into: 1 (no subsetting) up
/// to [`SUBSET_SIZE`], else the smallest power of two that brings the
/// average slot to at most [`SUBSET_SIZE`].
pub fn slots_for(endpoints: usize) -> u32 {
    if endpoints <= SUBSET_SIZE {
        return 1;
    }
    let needed = endpoints.div_ceil(SUBSET_SIZE);
    u32::try_from(needed.next_power_of_two()).unwrap_or(1 << 31)
}

/// The slot a ring point falls in, of `slots` (a power of two).
pub fn slot_of_point(point: u64, slots: u32) -> u32 {
    if slots <= 1 {
        return 0;
    }
    // The top bits: halving an arc keeps each point in one of its halves.
    (point >> (64 - slots.trailing_zeros())) as u32
}

/// The slot `consumer` reads of `service`, of `slots`.
pub fn slot_of(service: &str, consumer: &str, slots: u32) -> u32 {
    slot_of_point(point(service, consumer), slots)
}

/// The endpoints of one slot, in instance order, at most [`MAX_SLOT_SIZE`].
/// `endpoints` are all of a version's healthy endpoints.
pub fn slot_endpoints(service: &str, endpoints: &[Endpoint], slot: u32, slots: u32) -> Vec<Endpoint> {
    let inside: Vec<(u64, &Endpoint)> = endpoints
        .iter()
        .map(|e| (point(service, &e.instance_id), e))
        .filter(|(p, _)| slot_of_point(*p, slots) == slot)
        .collect();
    bounded(inside)
}

/// A slot's endpoints in instance order, cut (in ring order) at
/// [`MAX_SLOT_SIZE`] endpoints and [`MAX_SLOT_BYTES`].
fn bounded(mut inside: Vec<(u64, &Endpoint)>) -> Vec<Endpoint> {
    let bytes = |e: &Endpoint| e.instance_id.len() + e.endpoint_url.len() + e.arn.as_ref().map_or(0, String::len);
    let total: usize = inside.iter().map(|(_, e)| bytes(e)).sum();
    if inside.len() > MAX_SLOT_SIZE || total > MAX_SLOT_BYTES {
        inside.sort_by_key(|(p, _)| *p);
        let mut used = 0;
        let keep = inside
            .iter()
            .take(MAX_SLOT_SIZE)
            .take_while(|(_, e)| {
                used += bytes(e);
                used <= MAX_SLOT_BYTES
            })
            .count();
        inside.truncate(keep);
    }
    let mut out: Vec<Endpoint> = inside.into_iter().map(|(_, e)| e.clone()).collect();
    out.sort();
    out
}

/// Every slot's endpoints at once (one hash per endpoint), slot by slot.
pub fn all_slots(service: &str, endpoints: &[Endpoint], slots: u32) -> Vec<Vec<Endpoint>> {
    let mut by_slot: Vec<Vec<(u64, &Endpoint)>> = vec![Vec::new(); slots as usize];
    for e in endpoints {
        let p = point(service, &e.instance_id);
        by_slot[slot_of_point(p, slots) as usize].push((p, e));
    }
    by_slot.into_iter().map(bounded).collect()
}

/// A short digest of a slot's endpoints.
pub fn digest(endpoints: &[Endpoint]) -> String {
    use sha2::Digest as _;
    let json = serde_json::to_vec(endpoints).unwrap_or_default();
    hex::encode(&sha2::Sha256::digest(&json)[..8])
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn endpoints(ids: impl IntoIterator<Item = usize>) -> Vec<Endpoint> {
        let mut v: Vec<Endpoint> = ids
            .into_iter()
            .map(|i| Endpoint { instance_id: format!("i-{i:05}"), endpoint_url: format!("https://{i}.x"), arn: None })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn slot_counts_are_powers_of_two_that_bring_slots_under_the_size() {
        assert_eq!(slots_for(0), 1);
        assert_eq!(slots_for(SUBSET_SIZE), 1);
        assert_eq!(slots_for(SUBSET_SIZE + 1), 2);
        assert_eq!(slots_for(10_000), 128);
        assert_eq!(slots_for(12_800), 128);
        assert_eq!(slots_for(12_801), 256);
        for n in [101, 999, 5_000, 10_000, 77_777] {
            let s = slots_for(n) as usize;
            assert!(s.is_power_of_two() && n.div_ceil(s) <= SUBSET_SIZE && n.div_ceil(s / 2) > SUBSET_SIZE, "{n}");
        }
    }

    #[test]
    fn the_ring_point_is_sha256_of_service_slash_id() {
        // Written out so other languages can check their own: SHA-256 of
        // "orders/web" begins with these 8 bytes.
        use sha2::Digest as _;
        let d = sha2::Sha256::digest(b"orders/web");
        assert_eq!(point("orders", "web").to_be_bytes(), d[..8]);
        assert_eq!(slot_of("orders", "web", 1), 0);
        assert_eq!(slot_of("orders", "web", 2), u32::from(d[0] >> 7));
        assert_eq!(slot_of("orders", "web", 256), u32::from(d[0]));
    }

    #[test]
    fn every_endpoint_is_in_exactly_one_slot_and_slots_are_balanced() {
        let all = endpoints(0..10_000);
        let slots = slots_for(all.len());
        let cut = all_slots("orders", &all, slots);
        let mut seen = BTreeSet::new();
        for (slot, inside) in cut.iter().enumerate() {
            assert_eq!(inside, &slot_endpoints("orders", &all, slot as u32, slots));
            for e in inside {
                assert!(seen.insert(e.instance_id.clone()), "{} in two slots", e.instance_id);
            }
        }
        assert_eq!(seen.len(), all.len(), "every endpoint in a slot");
        let sizes: Vec<usize> = cut.iter().map(Vec::len).collect();
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        // 10,000 over 128 slots: 78 on average; SHA-256 spreads them as a
        // fair die would (binomial, σ ≈ 8.8).
        assert!(*min >= 40 && *max <= 120, "slot sizes {min}..{max}");
    }

    #[test]
    fn an_endpoint_that_comes_or_goes_moves_one_slot() {
        let before = endpoints(0..5_000);
        let mut after = before.clone();
        after.retain(|e| e.instance_id != "i-00042");
        after.extend(endpoints([9_999]));
        after.sort();
        let slots = slots_for(before.len());
        assert_eq!(slots, slots_for(after.len()));
        let (a, b) = (all_slots("s", &before, slots), all_slots("s", &after, slots));
        let moved = a.iter().zip(&b).filter(|(x, y)| x != y).count();
        assert!((1..=2).contains(&moved), "one slot loses, one gains: {moved}");
    }

    #[test]
    fn doubling_the_slots_splits_each_in_two_and_consumers_keep_half() {
        let all = endpoints(0..6_000);
        let (small, big) = (all_slots("s", &all, 64), all_slots("s", &all, 128));
        for (j, inside) in small.iter().enumerate() {
            let mut halves: Vec<Endpoint> = big[2 * j].iter().chain(&big[2 * j + 1]).cloned().collect();
            halves.sort();
            assert_eq!(&halves, inside, "slot {j} of 64 is slots {} and {} of 128", 2 * j, 2 * j + 1);
        }
        for consumer in ["web", "api", "batch"] {
            assert_eq!(slot_of("s", consumer, 128) / 2, slot_of("s", consumer, 64));
        }
    }

    #[test]
    fn consumers_spread_over_slots_as_a_fair_hash_does() {
        let slots = 128;
        let mut per_slot: BTreeMap<u32, usize> = BTreeMap::new();
        for c in 0..1_000 {
            *per_slot.entry(slot_of("orders", &format!("consumer-{c}"), slots)).or_default() += 1;
        }
        // 1,000 consumers over 128 slots: 7.8 each on average; a slot with
        // none has probability e^-7.8 ≈ 0.04%.
        assert!(per_slot.len() >= 124, "{} slots read", per_slot.len());
        assert!(per_slot.values().all(|n| *n <= 25));
    }

    #[test]
    fn a_slot_packed_on_purpose_is_cut_at_its_bound() {
        // Ids chosen to land in slot 0 of 2: more than MAX_SLOT_SIZE of them.
        let packed: Vec<Endpoint> = endpoints(0..2_000)
            .into_iter()
            .filter(|e| slot_of_point(point("s", &e.instance_id), 2) == 0)
            .take(MAX_SLOT_SIZE + 50)
            .collect();
        let got = slot_endpoints("s", &packed, 0, 2);
        assert_eq!(got.len(), MAX_SLOT_SIZE);
        assert_eq!(all_slots("s", &packed, 2)[0], got);
    }

    #[test]
    fn a_slot_of_endpoints_at_the_registration_limits_is_cut_at_its_bytes() {
        let long: Vec<Endpoint> = (0..400)
            .map(|i| Endpoint {
                instance_id: format!("i-{i:05}"),
                endpoint_url: format!("https://{i}.example/{}", "a".repeat(2_000)),
                arn: Some(format!("arn:aws:lambda:us-east-1:123456789012:function:{}", "f".repeat(1_990))),
            })
            .collect();
        let slots = slots_for(long.len());
        for inside in all_slots("s", &long, slots) {
            let bytes: usize = inside.iter().map(|e| serde_json::to_vec(e).unwrap().len()).sum();
            assert!(
                !inside.is_empty() && bytes <= MAX_SLOT_BYTES + 400 * 64,
                "{} endpoints, {bytes} bytes",
                inside.len()
            );
        }
    }
}
