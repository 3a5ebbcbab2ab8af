//! Stand-ins for what AWS runs in the cloud, so the same handler code runs
//! end to end on one machine (DESIGN.md, "The local stack"):
//!
//! - [`setup`] creates the table (stream, TTL, expiry index) and the topic,
//!   idempotently — the template declares the same in AWS;
//! - [`filter`] evaluates the event source mapping's filter criteria, read
//!   from the one definition the template also uses;
//! - [`poller`] is the event source mapping: shards, batching, partial batch
//!   failures, bisection, retries, the on-failure queue, checkpoints.

pub mod filter;
pub mod poller;
pub mod setup;
