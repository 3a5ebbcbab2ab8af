//! The ports: what each part of Beacon asks of the outside world, as small
//! traits. The adapters live in `beacon_aws` (DynamoDB, SNS); tests that must
//! inject a fault the real engine cannot produce wrap an adapter, and unit
//! tests of a handler use an in-memory port with an injected clock.
//!
//! | port | used by | what |
//! |---|---|---|
//! | [`FanOutStore`] ([`Generations`], [`ServiceState`], [`ViewGroups`], [`Edges`], [`Views`], [`ExpiryRepair`]; in `fanout`) | the fan-out | generations, partition reads, view-group claims, edges, conditional view writes, expiry repair |
//! | [`RefreshQueue`] | the fan-out | pages of large refreshes |
//! | [`Catalog`] ([`Registrations`], [`NeedsDeclarations`], [`ResolvedViews`]) | the catalog API, registrar, extension, CLI | a client's writes and reads of registrations, needs and views |
//! | [`ExpiryIndex`] | the sweeper | what is due, and a delete that a heartbeat wins |
//! | [`Publisher`] | the fan-out | publishing events, one result per event |
//! | [`Components`] | the registrar | whether a service's functions and APIs exist; removing the registrar |
//! | [`Subscribers`] | the sweeper's janitor | the topic's subscriptions and viewer queues, and removing lapsed ones |

use async_trait::async_trait;

use crate::event::Event;
use crate::registration::{Registration, Status};
use crate::view::{Needs, ResolvedItem};

mod fanout;

pub use fanout::{
    Conditional, Dependent, DependentsPage, Edges, ExpiryRepair, FanOutStore, Generation, Generations, RefreshPage,
    RefreshQueue, ServicePartition, ServiceState, ViewGroups, ViewWrite, Views,
};

/// Why a registry call failed: which call, whether a retry can help, and
/// the cause.
#[derive(Debug, thiserror::Error)]
#[error("{operation}: {message}")]
pub struct StoreError {
    /// Which call failed (`Query SERVICE#orders`, ...).
    pub operation: String,
    /// What went wrong, in words.
    pub message: String,
    /// Whether retrying the same call can succeed (throttling, timeouts,
    /// 5xx). A record that failed this way is reported for re-delivery.
    pub retryable: bool,
    /// Whether the call failed because of what a stored item holds (a
    /// value of the wrong type where the write needs a number or a map, an
    /// item that does not decode, an item grown past DynamoDB's size
    /// limit): no retry can fix it, so the fan-out reports it once and
    /// moves on instead of holding up the records behind it
    /// (docs/security.md, "What a tenant can do to its own partition").
    pub bad_item: bool,
    /// The underlying error.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl StoreError {
    /// Whether retrying can help.
    pub fn is_retryable(&self) -> bool {
        self.retryable
    }

    /// A stored value that is not the shape Beacon wrote (never retryable).
    pub fn shape(operation: impl Into<String>, cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            operation: operation.into(),
            message: cause.to_string(),
            retryable: false,
            bad_item: true,
            source: Some(Box::new(cause)),
        }
    }

    /// A failure that can pass (throttling, an outage): retryable, and not
    /// the item's fault.
    pub fn transient(operation: impl Into<String>, message: impl Into<String>) -> Self {
        Self { operation: operation.into(), message: message.into(), retryable: true, bad_item: false, source: None }
    }

    /// Whether no retry can fix it because of a stored item.
    pub fn is_bad_item(&self) -> bool {
        self.bad_item
    }
}

/// One registration's identity: service, version (normalised text) and
/// instance id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct InstanceKey {
    /// The service name.
    pub service: String,
    /// The version, normalised (`1.0` → `1.0.0`).
    pub version: String,
    /// The instance id.
    pub instance_id: String,
}

impl InstanceKey {
    /// A key from its parts (the version as given: normalise it first).
    pub fn new(service: impl Into<String>, version: impl Into<String>, instance_id: impl Into<String>) -> Self {
        Self { service: service.into(), version: version.into(), instance_id: instance_id.into() }
    }

    /// The key of a registration.
    pub fn of(r: &Registration) -> Self {
        Self { service: r.service.clone(), version: r.version.to_string(), instance_id: r.instance_id.clone() }
    }
}

impl std::fmt::Display for InstanceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.service, self.version, self.instance_id)
    }
}

/// What a create-only registration found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// It was written.
    Created,
    /// The instance is already registered; nothing was written.
    AlreadyRegistered,
}

/// What a write to an existing registration found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// It existed and was changed (or removed).
    Done,
    /// It is not registered; nothing was written (a heartbeat never
    /// resurrects a deregistered instance).
    NotRegistered,
}

/// One page of registrations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationPage {
    /// The valid registrations on the page.
    pub registrations: Vec<Registration>,
    /// Registration items on the page that did not decode.
    pub invalid: usize,
    /// Where to continue from; `None` on the last page. Opaque to callers.
    pub next: Option<PageToken>,
}

/// One service's registrations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceInstances {
    /// The valid registrations.
    pub registrations: Vec<Registration>,
    /// Registration items that did not decode (reported when written).
    pub invalid: usize,
}

/// Where the next page starts: the last key read (`pk`, `sk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageToken {
    /// The last partition key read.
    pub pk: String,
    /// The last sort key read.
    pub sk: String,
}

/// What clients do with the registry: the catalog API, the registrar, the
/// extension and the CLI all go through these, never through a raw client.
/// Time is an argument, so every caller can be tested with a fixed clock.
/// One concern per trait; `Catalog` is all three, implemented for whatever
/// implements them (the extension, say, needs only [`NeedsDeclarations`]
/// and [`ResolvedViews`]).
pub trait Catalog: Registrations + NeedsDeclarations + ResolvedViews {}

impl<T: Registrations + NeedsDeclarations + ResolvedViews> Catalog for T {}

/// A client's registrations: writes, heartbeats, status, lookups and listing.
#[async_trait]
pub trait Registrations: Send + Sync {
    /// Writes (creates or replaces) a registration.
    async fn put(&self, r: &Registration) -> Result<(), StoreError>;
    /// Writes a registration only if that instance is not registered.
    async fn create(&self, r: &Registration) -> Result<Created, StoreError>;
    /// Moves only `expires_at` (to `now + ttl_seconds`) and `updated_at`.
    async fn heartbeat(&self, key: &InstanceKey, ttl_seconds: u64, now: i64) -> Result<Existing, StoreError>;
    /// Sets the status (and `updated_at`) of an existing registration.
    async fn set_status(&self, key: &InstanceKey, status: Status, now: i64) -> Result<Existing, StoreError>;
    /// Deletes a registration if it exists.
    async fn delete(&self, key: &InstanceKey) -> Result<Existing, StoreError>;
    /// Every registration of one service (a consistent read; expired ones
    /// included, resolution skips them).
    async fn instances(&self, service: &str) -> Result<ServiceInstances, StoreError>;
    /// One page of every registration. A page may be short.
    async fn list(&self, limit: u32, start: Option<PageToken>) -> Result<RegistrationPage, StoreError>;
}

/// What consumers declare they need.
#[async_trait]
pub trait NeedsDeclarations: Send + Sync {
    /// A consumer's declared needs, as text.
    async fn needs(&self, consumer: &str) -> Result<Option<Vec<String>>, StoreError>;
    /// Declares a consumer's needs.
    async fn put_needs(&self, needs: &Needs, now: i64) -> Result<(), StoreError>;
    /// Removes a consumer's needs (the fan-out then removes its view).
    async fn delete_needs(&self, consumer: &str) -> Result<(), StoreError>;
}

/// Consumers' resolved items as clients read them.
#[async_trait]
pub trait ResolvedViews: Send + Sync {
    /// Only a consumer's resolved `revision`: the cheap "did anything move?".
    async fn revision(&self, consumer: &str) -> Result<Option<u64>, StoreError>;
    /// A consumer's resolved item.
    async fn resolved(&self, consumer: &str) -> Result<Option<ResolvedItem>, StoreError>;
    /// One page of every consumer's declared needs and resolved item (a
    /// consumer's two items may fall on different pages). A page may be short.
    async fn consumers(&self, limit: u32, start: Option<PageToken>) -> Result<ConsumerPage, StoreError>;
}

/// One page of consumers' items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerPage {
    /// Declared needs: consumer and its requirements as text.
    pub needs: Vec<(String, Vec<String>)>,
    /// Resolved items.
    pub resolved: Vec<ResolvedItem>,
    /// Where to continue from; `None` on the last page.
    pub next: Option<PageToken>,
}

/// A registration the expiry index says is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueKey {
    /// The item's pk.
    pub pk: String,
    /// The item's sk.
    pub sk: String,
}

/// The expiry index, as the sweeper uses it.
#[async_trait]
pub trait ExpiryIndex: Send + Sync {
    /// Keys in `shard` whose `expires_at` is at or before `now`.
    async fn due(&self, shard: u32, now: i64) -> Result<Vec<DueKey>, StoreError>;
    /// Deletes the item if its `expires_at` is still at or before `now`;
    /// false when a heartbeat moved it (or it is already gone).
    async fn delete_if_expired(&self, key: &DueKey, now: i64) -> Result<bool, StoreError>;
}

/// Why one event was not published. Causes are shared (`Arc`): one failed
/// call fails every entry it carried.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// The bus refused the entry (SNS's per-entry failure: code and message).
    #[error("publish refused ({code}): {message}")]
    Refused {
        /// The bus's error code.
        code: String,
        /// What it said.
        message: String,
    },
    /// The call itself failed (network, throttling of the whole call, 5xx);
    /// the entry may or may not have been accepted, so a retry may duplicate
    /// it under the same `event_id`.
    #[error("publish call failed: {0}")]
    Transport(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
    /// The bus answered without a result for this entry.
    #[error("publish unconfirmed: no result for the entry")]
    Unconfirmed,
    /// The entry could not be built (an attribute the bus refuses).
    #[error("building the entry: {0}")]
    Build(#[source] std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

/// Publishes events; one result per event, in order.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// Publishes `events`, returning one result per event in the same order.
    async fn publish(&self, events: &[Event]) -> Vec<Result<(), PublishError>>;
}

/// A registrar check that could not decide (anything but "not found").
#[derive(Debug, thiserror::Error)]
#[error("checking {part}: {source}")]
pub struct CheckError {
    /// The part being checked (`Lambda orders-fn`, `schedule r`, ...).
    pub part: String,
    /// The cause.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// A service's parts, as its registrar checks them (seed 1).
#[async_trait]
pub trait Components: Send + Sync {
    /// Whether the Lambda function exists (GetFunctionConfiguration).
    async fn lambda_exists(&self, name: &str) -> Result<bool, CheckError>;
    /// Whether the REST API exists (GetRestApi).
    async fn rest_api_exists(&self, id: &str) -> Result<bool, CheckError>;
    /// Whether the HTTP API exists (GetApi).
    async fn http_api_exists(&self, id: &str) -> Result<bool, CheckError>;
    /// Removes the registrar's schedule (its targets, then the rule).
    async fn remove_schedule(&self, rule: &str) -> Result<(), CheckError>;
    /// Deletes the registrar's own function.
    async fn delete_function(&self, name: &str) -> Result<(), CheckError>;
}

/// The names every registry viewer's queue starts with (`beacon watch`,
/// `beacon ui`): the only queues the janitor may remove.
pub const VIEWER_QUEUE_PREFIXES: &[&str] = &["beacon-watch-", "beacon-ui-"];
/// A viewer queue's tag naming its creator (`aws:userid`, the `UserId`
/// GetCallerIdentity returns); the viewer policy grants a queue's rights
/// only to the principal it names.
pub const OWNER_TAG: &str = "beacon:owner";
/// A viewer queue's tag holding its lease (epoch seconds): the viewer
/// pushes it ahead while it runs; once it has passed, the janitor removes
/// the queue and its subscription.
pub const LEASE_TAG: &str = "beacon:lease";

/// One subscription of the change topic, as ListSubscriptionsByTopic lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSubscription {
    /// The subscription's ARN (`PendingConfirmation` while unconfirmed).
    pub arn: String,
    /// Its protocol (`sqs`, `https`, `lambda`, ...).
    pub protocol: String,
    /// Its endpoint (for `sqs`, the queue's ARN).
    pub endpoint: String,
}

/// A viewer's queue (a name with one of [`VIEWER_QUEUE_PREFIXES`]) in the
/// topic's account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerQueue {
    /// The queue's name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// Its [`LEASE_TAG`], if it has one that is a number.
    pub lease: Option<i64>,
    /// When it was created (epoch seconds), read only for a queue without
    /// a lease (one made by an older `beacon`).
    pub created: Option<i64>,
}

/// The topic's subscriptions and the viewers' queues, as the sweeper's
/// janitor sees them (it removes what viewers leave behind: viewers may
/// neither list nor remove subscriptions).
#[async_trait]
pub trait Subscribers: Send + Sync {
    /// Every subscription of the topic.
    async fn subscriptions(&self) -> Result<Vec<TopicSubscription>, StoreError>;
    /// Every viewer queue, with its lease.
    async fn viewer_queues(&self) -> Result<Vec<ViewerQueue>, StoreError>;
    /// Whether the queue `name` exists (asked before a subscription whose
    /// queue was not listed is removed: listings may lag).
    async fn queue_exists(&self, name: &str) -> Result<bool, StoreError>;
    /// Removes a subscription (one already gone counts as removed).
    async fn unsubscribe(&self, subscription_arn: &str) -> Result<(), StoreError>;
    /// Deletes a queue (one already gone counts as deleted).
    async fn delete_queue(&self, url: &str) -> Result<(), StoreError>;
}
