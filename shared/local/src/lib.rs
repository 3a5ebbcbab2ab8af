//! The local stack: stand-ins for what AWS runs in the cloud, so the same
//! handler code runs end to end on one machine. Used only by the CLI
//! (`beacon dev`), the integration tests and the benchmarks; no function
//! crate depends on it (`.ci/run` checks).
//!
//! Map of the modules:
//!
//! - [`setup`] — creates the table (stream, TTL, expiry index), the topic
//!   and subscribed queues, idempotently (the template declares the same in
//!   AWS); the local endpoints and credentials;
//! - [`filter`] — the event source mapping's filter criteria, read from the
//!   one definition the template also uses;
//! - [`mapping`] — the event source mapping: shards, batching, partial batch
//!   failures, bisection, retries, the on-failure queue, checkpoints; its
//!   retry rules are a pure state machine ([`mapping::policy`]);
//! - [`queue`] — the SQS event source mapping (the refresh queue's pages
//!   of large fan-outs): pollers, partial batch responses, redelivery;
//! - [`pipeline`] — the one wiring of table, topic, queues, fan-out and
//!   mappings that `beacon dev`, the tests and the benches share, and the
//!   sweeper's and registrars' schedules;
//! - [`proxy`] — a fault proxy in front of the engines: AWS's wire faults
//!   (throttles in each service's format, 5xx, resets, hangs) by a seeded
//!   schedule, for the tests and `beacon dev --faults`;
//! - [`replication`] — a test stand-in for DynamoDB global tables'
//!   replication between Regions' replicas (per item, delayed, reordered,
//!   last writer wins, pausable);
//! - [`api_server`] — API Gateway's stand-in: the catalog API on loopback,
//!   with [`sigv4`] verification of writes.

pub mod api_server;
pub mod filter;
pub mod mapping;
pub mod pipeline;
pub mod proxy;
pub mod queue;
pub mod replication;
pub mod setup;
pub mod sigv4;

pub use beacon_aws::error_chain;
