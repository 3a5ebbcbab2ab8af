//! What the fault proxy injects, and when: the faults, the request a
//! matcher sees, and the plan (scripted, random by a seed, or both).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    /// Forwarded untouched.
    Pass,
    /// A throttling error in the service's wire format.
    Throttle,
    /// HTTP 500 (`InternalServerError` / `InternalError`).
    ServerError,
    /// HTTP 503 (`ServiceUnavailable`).
    Unavailable,
    /// The connection is reset before the request is forwarded.
    ResetBefore,
    /// The request is forwarded; the connection is reset part-way through
    /// the engine's answer.
    ResetAfter,
    /// Held longer than the clients' attempt timeout, then forwarded; the
    /// client has given up on it by then.
    Hang,
    /// Held a little (below the timeout), then forwarded.
    Slow,
    /// A non-retryable refusal: `AccessDeniedException` (JSON) or
    /// `AuthorizationError` (SNS).
    Denied,
}

impl Fault {
    /// Every fault but `Pass`, in a fixed order (for reports).
    pub const ALL: [Fault; 8] = [
        Fault::Throttle,
        Fault::ServerError,
        Fault::Unavailable,
        Fault::ResetBefore,
        Fault::ResetAfter,
        Fault::Hang,
        Fault::Slow,
        Fault::Denied,
    ];

    /// A short name for logs and reports.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Pass => "pass",
            Fault::Throttle => "throttle",
            Fault::ServerError => "500",
            Fault::Unavailable => "503",
            Fault::ResetBefore => "reset before",
            Fault::ResetAfter => "reset mid-response",
            Fault::Hang => "hang past the timeout",
            Fault::Slow => "slow",
            Fault::Denied => "denied",
        }
    }
}

/// Which AWS service a request is for, from its wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// `X-Amz-Target: DynamoDB_20120810.*`.
    DynamoDb,
    /// `X-Amz-Target: DynamoDBStreams_20120810.*`.
    Streams,
    /// `X-Amz-Target: AmazonSQS.*` (SQS's JSON protocol).
    Sqs,
    /// A form body with `Action=...` (SNS's query protocol).
    Sns,
    /// `X-Amz-Target: AWSEvents.*` (EventBridge's JSON protocol).
    Events,
    /// Anything else (passed through, never faulted).
    Other,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    /// Its service.
    pub service: Service,
    /// Its operation (`PutItem`, `Publish`, ...).
    pub operation: String,
    /// What the proxy did.
    pub fault: Fault,
    /// The SDK's attempt number from `amz-sdk-request` (1 for a first try).
    pub attempt: u32,
    /// The SDK's invocation id (`amz-sdk-invocation-id`): the same for every
    /// attempt of one call.
    pub invocation: String,
    /// When it arrived.
    pub at: Instant,
}

/// Which requests a scripted fault applies to.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// Only this service (any if `None`).
    pub service: Option<Service>,
    /// Only these operations (any if empty).
    pub operations: Vec<String>,
}

impl Matcher {
    /// Requests of `operation` on `service`.
    pub fn op(service: Service, operation: &str) -> Self {
        Self { service: Some(service), operations: vec![operation.to_owned()] }
    }

    fn matches(&self, service: Service, operation: &str) -> bool {
        self.service.is_none_or(|s| s == service)
            && (self.operations.is_empty() || self.operations.iter().any(|o| o == operation))
    }
}

/// Random faults: each eligible request gets fault `f` with probability
/// `rates[f]`, else passes.
#[derive(Debug, Clone)]
pub struct Mix {
    /// The schedule's seed: the same seed and request order give the same
    /// faults.
    pub seed: u64,
    /// Probability of each fault per request (their sum at most 1).
    pub rates: Vec<(Fault, f64)>,
    /// Which requests are eligible.
    pub only: Matcher,
}

impl Mix {
    /// Every retryable fault at `rate` each (no `Denied`: a refusal is
    /// permanent, so it belongs in a scripted test, not a soak).
    pub fn retryable(seed: u64, rate: f64, only: Matcher) -> Self {
        let rates = Fault::ALL.iter().filter(|f| **f != Fault::Denied).map(|f| (*f, rate)).collect();
        Self { seed, rates, only }
    }
}

/// SplitMix64: a seeded schedule needs only reproducibility, not quality,
/// and this keeps the proxy free of a random-number crate.
#[derive(Debug)]
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Debug, Default)]
struct PlanState {
    scripted: VecDeque<(Matcher, Fault)>,
    mix: Option<(Mix, SplitMix)>,
    log: Vec<Seen>,
}

/// The faults to inject and the log of what was injected. Shared by the
/// proxies of one stack and the test that drives them.
#[derive(Debug)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
    /// How long a `Hang` holds a request: longer than the clients' attempt
    /// timeout.
    pub hang: Duration,
    /// How long a `Slow` holds a request: shorter than the timeout.
    pub slow: Duration,
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self {
            state: Mutex::default(),
            hang: beacon_aws::config::ATTEMPT_TIMEOUT + Duration::from_secs(1),
            slow: Duration::from_millis(300),
        }
    }
}

impl FaultPlan {
    /// A plan that passes everything until told otherwise.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PlanState> {
        // A panic elsewhere while holding the lock leaves the plan usable.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next requests matching `matcher` get `faults`, in order (before
    /// any random fault).
    pub fn script(&self, matcher: Matcher, faults: impl IntoIterator<Item = Fault>) {
        let mut state = self.lock();
        for f in faults {
            state.scripted.push_back((matcher.clone(), f));
        }
    }

    /// Random faults from now on (`None`: none).
    pub fn set_mix(&self, mix: Option<Mix>) {
        self.lock().mix = mix.map(|m| {
            let rng = SplitMix(m.seed);
            (m, rng)
        });
    }

    /// Every request seen so far.
    pub fn log(&self) -> Vec<Seen> {
        self.lock().log.clone()
    }

    /// Requests seen so far of `operation` on `service`.
    pub fn seen(&self, service: Service, operation: &str) -> Vec<Seen> {
        self.lock().log.iter().filter(|s| s.service == service && s.operation == operation).cloned().collect()
    }

    /// How many of each fault were injected (`Pass` included).
    pub fn counts(&self) -> BTreeMap<Fault, usize> {
        let mut counts = BTreeMap::new();
        for s in &self.lock().log {
            *counts.entry(s.fault).or_default() += 1;
        }
        counts
    }

    /// Scripted faults not yet used.
    pub fn pending(&self) -> usize {
        self.lock().scripted.len()
    }

    pub(super) fn decide(&self, service: Service, operation: &str, attempt: u32, invocation: String) -> Fault {
        let mut state = self.lock();
        let mut fault = Fault::Pass;
        if service != Service::Other {
            if let Some(i) = state.scripted.iter().position(|(m, _)| m.matches(service, operation)) {
                fault = state.scripted.remove(i).map_or(Fault::Pass, |(_, f)| f);
            } else if let Some((mix, rng)) = state.mix.as_mut()
                && mix.only.matches(service, operation)
            {
                let mut roll = rng.unit();
                for (f, rate) in &mix.rates {
                    if roll < *rate {
                        fault = *f;
                        break;
                    }
                    roll -= rate;
                }
            }
        }
        state.log.push(Seen {
            service,
            operation: operation.to_owned(),
            fault,
            attempt,
            invocation,
            at: Instant::now(),
        });
        fault
    }
}
