//! Fault injection for the reliability tests.
//!
//! Two kinds of fault live here. [`Outage`] is real: a loopback TCP hop in
//! front of an engine that the test stops (the port refuses connections and
//! open ones are cut) and starts again, so clients see exactly what a dead
//! server gives them while the engine keeps its in-memory state. The others
//! are test doubles, used only because the local engines cannot produce the
//! fault on demand: [`FaultyRegistry`] (DynamoDB throttling: DynamoDB Local
//! never throttles), [`FlakyPublisher`] (one SNS entry failing inside a
//! PublishBatch) and [`PausingPublisher`] (a window to kill the pipeline
//! after its events went out but before the batch was acknowledged).

mod outage;
mod publishers;
mod registry;

pub use outage::Outage;
pub use publishers::{ChaosPublisher, FlakyPublisher, PausingPublisher};
pub use registry::{FaultyRegistry, RegistryFaults};

/// A small deterministic generator (xorshift), so a failing run can be
/// replayed from the seed it prints.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// A generator from `seed` (zero is replaced: xorshift would stay at 0).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next raw value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.next_u64() % 1000 < u64::from(per_mille)
    }
}

/// A random needs list over services `s0..s{services}`: one to three
/// distinct services, each with one of `requirements` appended.
pub fn random_needs(rng: &mut Rng, services: usize, requirements: &[&str]) -> String {
    let mut parts = Vec::new();
    let mut used = std::collections::HashSet::new();
    for _ in 0..1 + rng.below(3) {
        let s = rng.below(services);
        if used.insert(s) {
            parts.push(format!("s{s}{}", requirements[rng.below(requirements.len())]));
        }
    }
    parts.join(",")
}

/// The seed a randomised test uses: `BEACON_SEED` when set (to replay a
/// failure), otherwise the clock. The caller prints it.
pub fn seed() -> u64 {
    std::env::var("BEACON_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    })
}
