//! What both soaks share: their settings, the wire faults, the
//! subscriber's filter and drain, and the accounting of events against the
//! writes that explain them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use beacon_local::proxy::{Fault, Matcher, Mix};
use beacon_tests::Queue;
use beacon_tests::wire::Wire;
use serde_json::Value;

/// The event kinds a soak's subscriber takes (every kind a write explains).
pub(crate) const CHANGE_KINDS: &str =
    r#"{"kind":["registered","updated","status_changed","deregistered","expired","invalid"]}"#;

/// The soaks' wire faults, rates per request: low enough that a call
/// exhausting its four attempts is rare (the mapping and the refresh queue
/// retry those). `hangs` adds a rarer hang (each costs an attempt timeout);
/// the Regions soak has none, as its two pipelines share the time budget.
pub(crate) fn wire_mix(seed: u64, hangs: bool) -> Mix {
    let mut rates = vec![
        (Fault::Throttle, 0.02),
        (Fault::ServerError, 0.01),
        (Fault::Unavailable, 0.01),
        (Fault::ResetBefore, 0.01),
        (Fault::ResetAfter, 0.01),
        (Fault::Slow, 0.01),
    ];
    if hangs {
        rates.push((Fault::Hang, 0.001));
    }
    Mix { seed: seed.rotate_left(29), rates, only: Matcher::default() }
}

/// A bound from the environment, else its default.
pub(crate) fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Stops injecting and stops the proxies: the faults injected, by name, and
/// every request the proxies saw.
pub(crate) async fn stop_wire(wire: Wire) -> (BTreeMap<&'static str, usize>, usize) {
    wire.plan.set_mix(None);
    let counts = wire.plan.counts();
    wire.stop().await;
    let faults = counts.iter().filter(|(f, _)| **f != Fault::Pass).map(|(f, n)| (f.name(), *n)).collect();
    (faults, counts.values().sum())
}

/// Keeps receiving from `queue` into `into` until `stop`.
pub(crate) fn drain(queue: Queue, into: Arc<Mutex<Vec<Value>>>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let got = queue.receive_once().await;
            if got.is_empty() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            into.lock().unwrap().extend(got);
        }
    })
}

/// The key an event is accounted under: its kind and the op id of the
/// write it reports (the removed write's, for deletions).
pub(crate) fn key_of(e: &Value) -> Option<(String, String)> {
    let kind = e["kind"].as_str()?;
    let image = if matches!(kind, "deregistered" | "expired") { &e["before"] } else { &e["after"] };
    Some((kind.to_owned(), image["attributes"]["op"].as_str()?.to_owned()))
}

/// The expected changes no event has reported yet, and how many malformed
/// writes have no `invalid` report.
fn missing(
    all: &[Value],
    expected: &HashSet<(String, String)>,
    junk: &HashSet<&str>,
) -> (Vec<(String, String)>, usize) {
    let seen: HashSet<(String, String)> = all.iter().filter_map(key_of).collect();
    let seen_junk: HashSet<&str> =
        all.iter().filter(|e| e["kind"] == "invalid").filter_map(|e| e["sk"].as_str()).collect();
    (expected.difference(&seen).cloned().collect(), junk.difference(&seen_junk).count())
}

/// Waits until `events` report every expected change and malformed write.
/// Bounded by progress, not a fixed time, so a longer soak gets longer to
/// drain: it fails, naming `what` and then `context()`, when nothing owed
/// has arrived for `patience`.
pub(crate) async fn await_owed(
    events: &Mutex<Vec<Value>>,
    expected: &HashSet<(String, String)>,
    junk: &HashSet<&str>,
    patience: Duration,
    what: &str,
    context: impl Fn() -> String,
) {
    let (mut last_progress, mut owed) = (std::time::Instant::now(), usize::MAX);
    loop {
        let (lost, lost_junk) = missing(&events.lock().unwrap(), expected, junk);
        if lost.is_empty() && lost_junk == 0 {
            return;
        }
        if lost.len() + lost_junk < owed {
            (last_progress, owed) = (std::time::Instant::now(), lost.len() + lost_junk);
        }
        assert!(
            last_progress.elapsed() < patience,
            "{what}: {} changes and {lost_junk} invalid reports never arrived, e.g. {:?}{}",
            lost.len(),
            &lost[..lost.len().min(5)],
            context()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Nothing extra, and every copy of an event the same event under one id:
/// every event is explained by a write (or reports a malformed one), and
/// each change went out under one id. Returns the distinct ids.
pub(crate) fn assert_accounted(
    events: &[Value],
    expected: &HashSet<(String, String)>,
    junk: &HashSet<&str>,
    what: &str,
) -> usize {
    let mut by_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for e in events {
        by_id.entry(e["event_id"].as_str().unwrap()).or_default().push(e);
    }
    let mut ids_per_key: HashMap<(String, String), HashSet<&str>> = HashMap::new();
    for (id, copies) in &by_id {
        assert!(copies.iter().all(|c| *c == copies[0]), "{what}: copies of {id} differ");
        if let Some(key) = key_of(copies[0]) {
            assert!(expected.contains(&key), "{what}: an event no write explains: {:#}", copies[0]);
            ids_per_key.entry(key).or_default().insert(id);
        } else {
            assert_eq!(copies[0]["kind"], "invalid", "{what}: an unaccountable event {:#}", copies[0]);
            let sk = copies[0]["sk"].as_str().unwrap_or_default();
            assert!(junk.contains(sk), "{what}: an invalid report for a write that was valid: {:#}", copies[0]);
        }
    }
    for (key, ids) in &ids_per_key {
        assert_eq!(ids.len(), 1, "{what}: {key:?} was published under {} ids", ids.len());
    }
    by_id.len()
}
