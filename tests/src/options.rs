//! How a [`TestPipeline`](crate::TestPipeline) is built: its ports wrapped
//! for fault injection, its clients, its mapping and its limits.

use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_fanout::Limits;
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::Clients;

/// Options for [`TestPipeline::start_with`](crate::TestPipeline::start_with),
/// built from [`Options::new`].
pub struct Options<P, R> {
    pub(crate) publisher: Box<dyn FnOnce(SnsPublisher) -> P + Send>,
    pub(crate) registry: Box<dyn FnOnce(DynamoTable) -> R + Send>,
    pub(crate) mapping: Box<dyn FnOnce(&mut MappingConfig) + Send>,
    pub(crate) sns_endpoint: Option<String>,
    pub(crate) config: Option<aws_config::SdkConfig>,
    pub(crate) limits: Limits,
    pub(crate) fanout_clients: Option<Clients>,
    pub(crate) clients: Option<Clients>,
    pub(crate) region: Option<(String, String)>,
}

impl Options<SnsPublisher, DynamoTable> {
    /// The real publisher and registry, and AWS's default mapping.
    pub fn new() -> Self {
        Self {
            publisher: Box::new(|p| p),
            registry: Box::new(|r| r),
            mapping: Box::new(|_| {}),
            sns_endpoint: None,
            config: None,
            limits: Limits::default(),
            fanout_clients: None,
            clients: None,
            region: None,
        }
    }
}

impl Default for Options<SnsPublisher, DynamoTable> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P, R> Options<P, R> {
    /// Wraps the real SNS publisher (fault injection).
    pub fn publisher<Q>(self, wrap: impl FnOnce(SnsPublisher) -> Q + Send + 'static) -> Options<Q, R> {
        Options {
            publisher: Box::new(wrap),
            registry: self.registry,
            mapping: self.mapping,
            sns_endpoint: self.sns_endpoint,
            config: self.config,
            limits: self.limits,
            fanout_clients: self.fanout_clients,
            clients: self.clients,
            region: self.region,
        }
    }

    /// Wraps the fan-out's registry adapter (fault injection); the test's own
    /// `registry` stays the real one.
    pub fn registry<S>(self, wrap: impl FnOnce(DynamoTable) -> S + Send + 'static) -> Options<P, S> {
        Options {
            publisher: self.publisher,
            registry: Box::new(wrap),
            mapping: self.mapping,
            sns_endpoint: self.sns_endpoint,
            config: self.config,
            limits: self.limits,
            fanout_clients: self.fanout_clients,
            clients: self.clients,
            region: self.region,
        }
    }

    /// How much of a refresh one invocation does (small pages exercise the
    /// refresh queue with few dependents).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The fan-out's own clients (its registry, publisher and refresh
    /// queue) from `clients` instead of the direct ones: the wire-fault
    /// tests send them through [`wire::Wire`](crate::wire::Wire). The test's own writers and
    /// subscribers, and the mappings (Lambda's pollers), stay direct.
    pub fn fanout_clients(mut self, clients: Clients) -> Self {
        self.fanout_clients = Some(clients);
        self
    }

    /// Every client from `clients` (the engines of another stack) instead
    /// of the environment's.
    pub fn clients(mut self, clients: Clients) -> Self {
        self.clients = Some(clients);
        self
    }

    /// Adjusts the mapping.
    pub fn mapping(mut self, adjust: impl FnOnce(&mut MappingConfig) + Send + 'static) -> Self {
        self.mapping = Box::new(adjust);
        self
    }

    /// Uses `config` for every client instead of the environment's (a test
    /// that must know the exact credentials in play).
    pub fn sdk_config(mut self, config: aws_config::SdkConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// One Region of a multi-Region registry: the replica of `table` in
    /// `region` (DynamoDB Local keeps a table per Region), its own topic and
    /// queues there, and a fan-out keeping its bookkeeping and the resolved
    /// views under this Region's keys, as `BEACON_REPLICA_REGION` makes it.
    pub fn region_of(mut self, table: &str, region: &str, config: &aws_config::SdkConfig) -> Self {
        self.config = Some(config.to_builder().region(aws_config::Region::new(region.to_owned())).build());
        self.region = Some((table.to_owned(), region.to_owned()));
        self
    }

    /// Sends the fan-out's SNS calls to `url` (an [`faults::Outage`](crate::faults::Outage) hop)
    /// instead of the server; subscriptions and queues stay direct.
    pub fn sns_endpoint(mut self, url: String) -> Self {
        self.sns_endpoint = Some(url);
        self
    }
}
