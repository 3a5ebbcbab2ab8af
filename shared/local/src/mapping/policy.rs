//! What the event source mapping does after each invocation, as a pure
//! state machine: no I/O, no clock, so every rule is a row in a table test.
//!
//! The rules follow AWS's DynamoDB event source mapping
//! (<https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html>):
//!
//! - success: the whole batch is done;
//! - `ReportBatchItemFailures`: everything before the lowest failed record
//!   is done; the retry starts at that record. Progress restarts the retry
//!   count (and backoff): only failures without progress grow them, and a
//!   record that keeps failing is always first and still reaches the limit;
//! - function error: with `BisectBatchOnFunctionError` the retry takes the
//!   first half of the batch;
//! - `MaximumRetryAttempts`: past it, the failing records go to the
//!   on-failure destination and the shard moves on (`None` is AWS's -1:
//!   retry until the records expire);
//! - between retries, an exponential backoff: 200 ms, 400 ms, ... 3.2 s.

use std::time::Duration;

/// The mapping's retry settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most records per invocation.
    pub batch_size: usize,
    /// Retries before the on-failure destination; `None` retries forever.
    pub max_retry_attempts: Option<u32>,
    /// Retry a failing batch in halves.
    pub bisect_on_error: bool,
}

/// How an invocation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every record processed.
    Success,
    /// The response named failures; `failed_at` is the lowest failed
    /// record's index in the batch.
    PartialFailure {
        /// Index of the lowest failed record.
        failed_at: usize,
    },
    /// The function failed as a whole.
    FunctionError,
}

/// What to do with the buffer after an invocation, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Leading records of the batch that are finished: drop them and
    /// checkpoint after the last.
    pub completed: usize,
    /// The records right after those whose retries are exhausted: send
    /// their batch metadata to the on-failure destination, then drop and
    /// checkpoint them too.
    pub to_on_failure: usize,
    /// Wait this long before the retry (zero when there is none).
    pub backoff: Duration,
    /// Whether the invocation counts as failed.
    pub failed: bool,
    /// Attempts made on the failing records (for the on-failure record).
    pub attempts: u32,
}

/// The retry state of one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryState {
    attempts: u32,
    limit: usize,
}

/// Base of the exponential backoff between retries.
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// The backoff stops doubling after this many attempts (3.2 s).
const BACKOFF_MAX_DOUBLINGS: u32 = 5;

impl RetryState {
    /// A shard with nothing failing.
    pub fn new(policy: &RetryPolicy) -> Self {
        Self { attempts: 0, limit: policy.batch_size }
    }

    /// How many of `buffered` records the next invocation takes.
    pub fn batch_len(&self, buffered: usize) -> usize {
        buffered.min(self.limit).max(1)
    }

    /// Failed attempts on the record at the head of the buffer.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Applies an invocation of `batch_len` records that ended in `outcome`.
    pub fn after(&mut self, policy: &RetryPolicy, batch_len: usize, outcome: Outcome) -> Decision {
        let (completed, failing) = match outcome {
            Outcome::Success => {
                *self = Self::new(policy);
                return Decision {
                    completed: batch_len,
                    to_on_failure: 0,
                    backoff: Duration::ZERO,
                    failed: false,
                    attempts: 0,
                };
            }
            Outcome::PartialFailure { failed_at } => {
                let failed_at = failed_at.min(batch_len);
                if failed_at > 0 {
                    self.attempts = 0;
                }
                self.attempts += 1;
                (failed_at, batch_len - failed_at)
            }
            Outcome::FunctionError => {
                self.attempts += 1;
                if policy.bisect_on_error && batch_len > 1 {
                    self.limit = batch_len.div_ceil(2);
                }
                (0, batch_len)
            }
        };
        let attempts = self.attempts;
        if policy.max_retry_attempts.is_some_and(|max| attempts > max) {
            *self = Self::new(policy);
            return Decision { completed, to_on_failure: failing, backoff: Duration::ZERO, failed: true, attempts };
        }
        let backoff = BACKOFF_BASE.saturating_mul(1 << attempts.min(BACKOFF_MAX_DOUBLINGS));
        Decision { completed, to_on_failure: 0, backoff, failed: true, attempts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn policy(max: Option<u32>, bisect: bool) -> RetryPolicy {
        RetryPolicy { batch_size: 100, max_retry_attempts: max, bisect_on_error: bisect }
    }

    /// (outcome, batch length) → (completed, to_on_failure, backoff, next batch length of 100 buffered).
    type Step = (Outcome, usize, usize, usize, Duration, usize);

    fn run(policy: RetryPolicy, steps: &[Step]) {
        let mut state = RetryState::new(&policy);
        for (i, &(outcome, len, completed, to_on_failure, backoff, next)) in steps.iter().enumerate() {
            let d = state.after(&policy, len, outcome);
            assert_eq!(
                (d.completed, d.to_on_failure, d.backoff, state.batch_len(100)),
                (completed, to_on_failure, backoff, next),
                "step {i}: {outcome:?} on {len}"
            );
            assert_eq!(d.failed, outcome != Success, "step {i}");
        }
    }

    #[test]
    fn success_completes_the_batch_and_resets() {
        run(policy(Some(5), true), &[(FunctionError, 100, 0, 0, ms(200), 50), (Success, 50, 50, 0, ms(0), 100)]);
    }

    #[test]
    fn function_errors_bisect_and_back_off_exponentially_to_the_cap() {
        run(
            policy(None, true),
            &[
                (FunctionError, 100, 0, 0, ms(200), 50),
                (FunctionError, 50, 0, 0, ms(400), 25),
                (FunctionError, 25, 0, 0, ms(800), 13),
                (FunctionError, 13, 0, 0, ms(1600), 7),
                (FunctionError, 7, 0, 0, ms(3200), 4),
                (FunctionError, 4, 0, 0, ms(3200), 2),
                (FunctionError, 2, 0, 0, ms(3200), 1),
                (FunctionError, 1, 0, 0, ms(3200), 1),
            ],
        );
    }

    #[test]
    fn without_bisect_the_batch_keeps_its_size() {
        run(policy(None, false), &[(FunctionError, 100, 0, 0, ms(200), 100), (FunctionError, 100, 0, 0, ms(400), 100)]);
    }

    #[test]
    fn partial_failure_completes_the_prefix_and_progress_restarts_the_count() {
        run(
            policy(Some(2), true),
            &[
                (PartialFailure { failed_at: 0 }, 100, 0, 0, ms(200), 100),
                (PartialFailure { failed_at: 0 }, 100, 0, 0, ms(400), 100),
                // Progress: 40 done, the count starts again at one.
                (PartialFailure { failed_at: 40 }, 100, 40, 0, ms(200), 100),
                (PartialFailure { failed_at: 0 }, 60, 0, 0, ms(400), 100),
                // Third failure without progress passes max 2: to on-failure.
                (PartialFailure { failed_at: 0 }, 60, 0, 60, ms(0), 100),
            ],
        );
    }

    #[test]
    fn exhausted_function_errors_send_the_whole_attempted_batch() {
        let p = policy(Some(1), true);
        let mut s = RetryState::new(&p);
        assert_eq!(s.after(&p, 100, FunctionError).to_on_failure, 0);
        let d = s.after(&p, 50, FunctionError);
        assert_eq!((d.completed, d.to_on_failure, d.attempts), (0, 50, 2));
        assert_eq!(s, RetryState::new(&p), "the next batch starts afresh");
    }

    #[test]
    fn zero_retries_sends_at_the_first_failure_and_minus_one_never_does() {
        let p = policy(Some(0), true);
        let d = RetryState::new(&p).after(&p, 10, PartialFailure { failed_at: 3 });
        assert_eq!((d.completed, d.to_on_failure, d.attempts), (3, 7, 1));
        let p = policy(None, true);
        let mut s = RetryState::new(&p);
        for _ in 0..1000 {
            assert_eq!(s.after(&p, 1, FunctionError).to_on_failure, 0);
        }
        assert_eq!(s.attempts(), 1000);
    }
}
