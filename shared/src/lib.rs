//! Beacon's shared library: the domain, the item and event codecs, and the
//! AWS adapters every binary uses.
//!
//! Map of the modules:
//!
//! - Domain (no AWS types; tested without a network):
//!   - [`version`] — semver with the seed's two-part `1.0` read as `1.0.0`;
//!   - [`registration`] — a service instance's registration and its rules;
//!   - [`requirement`] — `name`, `name==1.2.0`, `name^1.2`, ranges, needs lists;
//!   - [`resolution`] — choosing a version and its healthy endpoints;
//!   - [`change`] — classifying a stream record into what happened;
//!   - [`event`] — the published event documents and their SNS attributes.
//! - Codecs: [`keys`] (the table's key shapes), [`item`] (items in both
//!   carriers: SDK maps and stream images) and [`stream`] (Lambda stream
//!   records to the domain's input).
//! - Ports and adapters: [`store`] (the registry trait) with [`dynamo`]
//!   (DynamoDB), [`publish`] (the event bus trait, SNS), [`aws`] (one place
//!   that builds the AWS config and reads Beacon's environment).
//! - [`clock`]: the wall clock, read only by binaries (the domain takes `now`).
//! - [`metrics`]: CloudWatch Embedded Metric Format lines.
//! - [`services_file`]: the file the Lambda extension writes, and a reader.
//! - [`sweep`]: the sweeper's logic over the expiry index port (adapter in
//!   [`dynamo`]).
//! - [`local`]: the local stack's stand-ins for AWS's own machinery (table and
//!   topic set-up, the event source mapping with its filter criteria).

pub mod aws;
pub mod change;
pub mod clock;
pub mod dynamo;
pub mod event;
pub mod item;
pub mod keys;
pub mod local;
pub mod logging;
pub mod metrics;
pub mod publish;
pub mod registration;
pub mod requirement;
pub mod resolution;
pub mod services_file;
pub mod store;
pub mod stream;
pub mod sweep;
pub mod version;

pub use change::{ChangeKind, Classified, StreamChange, classify};
pub use event::Event;
pub use registration::{Registration, Status, ValidationError};
pub use requirement::{Requirement, parse_needs};
pub use resolution::{Resolution, Unresolved, resolve};
