//! One place that builds the AWS configuration and reads Beacon's
//! environment, so every binary fails at start with the missing variable's
//! name instead of deep inside a handler.
//!
//! Endpoints come from the SDK's standard variables
//! (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SNS`, ...), so the same
//! binary runs against AWS and against the local stack unchanged.

/// A required environment variable is missing or empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} is not set; {1}")]
pub struct MissingEnv(pub &'static str, pub &'static str);

/// Reads a required variable; `hint` says what it should hold.
pub fn require_env(name: &'static str, hint: &'static str) -> Result<String, MissingEnv> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(MissingEnv(name, hint)),
    }
}

/// The table name (`BEACON_TABLE`).
pub fn table_from_env() -> Result<String, MissingEnv> {
    require_env("BEACON_TABLE", "it names the registry's DynamoDB table")
}

/// The topic ARN (`BEACON_TOPIC_ARN`).
pub fn topic_from_env() -> Result<String, MissingEnv> {
    require_env("BEACON_TOPIC_ARN", "it is the ARN of the SNS topic change events are published to")
}

/// The refresh queue's URL (`BEACON_REFRESH_QUEUE_URL`).
pub fn refresh_queue_from_env() -> Result<String, MissingEnv> {
    require_env("BEACON_REFRESH_QUEUE_URL", "it is the URL of the FIFO queue the pages of large refreshes go to")
}

/// Loads the shared AWS configuration: region, credentials and endpoints
/// from the standard chain.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}
