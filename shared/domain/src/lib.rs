//! Beacon's domain: what a registration is, how versions and requirements
//! resolve, what a stream record means, which events are published, and the
//! ports every adapter implements. No AWS, Lambda or DynamoDB type appears
//! here (`.ci/run` checks the dependency tree), so all of it is tested
//! without a network and with the clock passed in.
//!
//! Map of the modules, in dependency order:
//!
//! - [`validation`] — the per-field rules and [`ValidationError`];
//! - [`version`] — semver with the seed's two-part `1.0` read as `1.0.0`;
//! - [`registration`] — a service instance's registration and its expiry;
//! - [`requirement`] — `name`, `name==1.2.0`, `name^1.2`, ranges, needs lists;
//! - [`resolution`] — choosing a version and its healthy endpoints;
//! - [`subset`] — which slot of a large service's endpoints a consumer gets;
//! - [`view`] — the read models: declared needs, the resolved view;
//! - [`keys`] — the table's key shapes, defined once;
//! - [`decode`] — why a stored item is not a valid Beacon item;
//! - [`change`] — classifying a decoded stream record into what happened;
//! - [`event`] — the published event documents and their SNS attributes;
//! - [`ports`] — the traits the adapters implement (registry, catalog,
//!   expiry index, publisher);
//! - `memory` (feature `memory`) — the table in memory (`MemoryCatalog`: the
//!   catalog, the fan-out's store, the expiry index) for unit tests;
//! - `memory_ports` (feature `memory`) — the other ports in memory: the
//!   topic, the refresh queue, a service's parts, the topic's subscribers;
//! - [`sweep`] — the sweeper's logic over the expiry index port;
//! - [`services_file`] — the file the Lambda extension writes, and a reader;
//! - [`clock`] — the wall clock, read only at the edges (binaries).

pub mod change;
pub mod clock;
pub mod decode;
pub mod event;
pub mod keys;
#[cfg(feature = "memory")]
pub mod memory;
#[cfg(feature = "memory")]
pub mod memory_ports;
#[cfg(feature = "memory")]
mod memory_registry;
pub mod ports;
pub mod registration;
pub mod requirement;
pub mod resolution;
pub mod services_file;
pub mod subset;
pub mod sweep;
pub mod validation;
pub mod version;
pub mod view;

pub use change::{ChangeKind, Classified, Image, ShardRepair, StreamChange, classify, shard_repair};
pub use event::Event;
pub use registration::{MAX_CLOCK_SKEW_SECONDS, Registration, Status};
pub use requirement::{Requirement, parse_needs};
pub use resolution::{Resolution, Unresolved, resolve, resolve_for};
pub use validation::ValidationError;
