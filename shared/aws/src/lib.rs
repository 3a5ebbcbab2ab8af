//! Beacon's AWS adapters: the only crate that names an AWS SDK, serde_dynamo
//! or the Lambda event types. Each adapter implements a port of the domain
//! (`beacon_domain::ports`); the function crates wire them up in `main.rs`.
//!
//! Map of the modules:
//!
//! - [`config`] — the one AWS configuration every binary loads, and Beacon's
//!   required environment (fail at start, naming the variable);
//! - [`item`] — item codecs: registrations, needs and resolved items in both
//!   carriers (SDK maps, stream images);
//! - [`stream`] — Lambda stream records to the domain's decoded
//!   `StreamChange`;
//! - [`dynamo`] — the DynamoDB adapter, one module per port (registry,
//!   catalog, expiry index);
//! - [`sns`] — the SNS adapter for the publisher port;
//! - [`sqs`] — the SQS adapter for the refresh-queue port (pages of large
//!   fan-outs);
//! - [`janitor`] — the SNS/SQS adapter for the subscribers port (the
//!   sweeper's janitor of viewers' queues), and a viewer's GetCallerIdentity;
//! - `components` (feature `registrar`) — the registrar's checks of a
//!   service's Lambda functions and APIs, and its self-removal;
//! - [`viewer`] — a queue subscribed to the topic (a registry viewer's, with
//!   its owner tag and lease, or a user's), and reading its events;
//! - [`logging`] — Lambda's log controls, with the SDK's payload logging
//!   capped;
//! - [`metrics`] — CloudWatch Embedded Metric Format lines.

#[cfg(feature = "registrar")]
pub mod components;
pub mod config;
pub mod dynamo;
pub mod eventbridge;
pub mod item;
pub mod janitor;
pub mod logging;
pub mod metrics;
pub mod refusal;
pub mod sns;
pub mod sqs;
pub mod stream;
pub mod table_ref;
pub mod viewer;

pub use dynamo::{DynamoTable, RequestCounts};
pub use eventbridge::{ChangePublisher, EventBridgePublisher};
pub use sns::SnsPublisher;
pub use sqs::SqsRefreshQueue;

/// The table adapter (every DynamoDB port) over `table`, from the shared
/// AWS configuration. A table named by ARN is reached in the ARN's Region
/// (a registry in another account and Region of the Organization); a name
/// in the configured one.
pub fn dynamo_table(config: &aws_config::SdkConfig, table: impl Into<String>) -> DynamoTable {
    let table = table.into();
    let region = table_ref::TableRef::parse(&table).ok().and_then(|t| t.region);
    let client = match region {
        Some(region) if config.region().map(|r| r.as_ref()) != Some(region.as_str()) => {
            aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(config).region(aws_config::Region::new(region)).build(),
            )
        }
        _ => aws_sdk_dynamodb::Client::new(config),
    };
    DynamoTable::new(client, table)
}

/// The registry as a binary is configured to see it: `BEACON_TABLE`, and in
/// a multi-Region registry `BEACON_REPLICA_REGION` (its Region's keys).
pub fn registry_from_env(config: &aws_config::SdkConfig) -> Result<DynamoTable, config::MissingEnv> {
    Ok(dynamo_table(config, config::table_from_env()?).scoped_to(config::replica_region_from_env()?))
}

/// A publisher to `topic_arn`, from the shared AWS configuration.
pub fn sns_publisher(config: &aws_config::SdkConfig, topic_arn: impl Into<String>) -> SnsPublisher {
    SnsPublisher::new(aws_sdk_sns::Client::new(config), topic_arn)
}

/// What the fan-out and refresh functions publish through: the topic, and
/// the bus `BEACON_EVENT_BUS_ARN` names (with `BEACON_EVENT_SOURCE`) when set.
pub fn change_publisher(
    config: &aws_config::SdkConfig,
    topic_arn: impl Into<String>,
    bus: Option<(String, String)>,
) -> ChangePublisher {
    let publisher = ChangePublisher::new(sns_publisher(config, topic_arn));
    match bus {
        Some((bus, source)) => publisher.with_bus(event_bus_publisher(config, &bus, &source)),
        None => publisher,
    }
}

/// A publisher onto the EventBridge bus `bus` as `source`, from the shared
/// AWS configuration.
pub fn event_bus_publisher(config: &aws_config::SdkConfig, bus: &str, source: &str) -> EventBridgePublisher {
    EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(config), bus, source)
}

/// The refresh queue at `url`, from the shared AWS configuration.
pub fn refresh_queue(config: &aws_config::SdkConfig, url: impl Into<String>) -> SqsRefreshQueue {
    SqsRefreshQueue::new(aws_sdk_sqs::Client::new(config), url)
}

/// An error and its causes on one line (`a: b: c`): SDK errors say little
/// at the top and everything in their sources.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        if !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = cause.source();
    }
    text
}
