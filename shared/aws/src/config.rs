//! One place that builds the AWS configuration and reads Beacon's
//! environment, so every binary fails at start with the missing variable's
//! name instead of deep inside a handler.
//!
//! Endpoints come from the SDK's standard variables
//! (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SNS`, ...), so the same
//! binary runs against AWS and against the local stack unchanged.

/// A required environment variable is missing, empty or unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MissingEnv {
    /// Not set, or empty; the hint says what it should hold.
    #[error("environment variable {0} is not set; {1}")]
    Unset(&'static str, &'static str),
    /// Set to something no call could use; says why.
    #[error("environment variable {0} is not usable: {1}")]
    Invalid(&'static str, String),
}

/// Reads a required variable; `hint` says what it should hold.
pub fn require_env(name: &'static str, hint: &'static str) -> Result<String, MissingEnv> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(MissingEnv::Unset(name, hint)),
    }
}

/// The table (`BEACON_TABLE`): its name in the registry's own account, or
/// its ARN from a member account of the Organization. Checked here, so a
/// mistyped ARN stops the binary at start with what is wrong with it.
pub fn table_from_env() -> Result<String, MissingEnv> {
    let table = require_env("BEACON_TABLE", "it names the registry's DynamoDB table (its name, or its ARN)")?;
    crate::table_ref::TableRef::parse(&table).map_err(|e| MissingEnv::Invalid("BEACON_TABLE", e.to_string()))?;
    Ok(table)
}

/// This Region, in a registry deployed to several Regions on a global
/// table (`BEACON_REPLICA_REGION`, set by the template only then): each
/// Region's fan-out keeps its bookkeeping and consumers' views under keys
/// of its own Region. Unset in a one-Region registry.
pub fn replica_region_from_env() -> Result<Option<String>, MissingEnv> {
    match std::env::var("BEACON_REPLICA_REGION") {
        Ok(v) if v.trim().is_empty() => Ok(None),
        Ok(v) if crate::table_ref::is_region_name(&v) => Ok(Some(v)),
        Ok(v) => Err(MissingEnv::Invalid("BEACON_REPLICA_REGION", format!("{v:?} is not a Region's name"))),
        Err(_) => Ok(None),
    }
}

/// The topic ARN (`BEACON_TOPIC_ARN`).
pub fn topic_from_env() -> Result<String, MissingEnv> {
    require_env("BEACON_TOPIC_ARN", "it is the ARN of the SNS topic change events are published to")
}

/// The bus change events also go to, and their source:
/// `BEACON_EVENT_BUS_ARN` (unset or empty: none) and `BEACON_EVENT_SOURCE`
/// (default `beacon`). A bus that is not an EventBridge bus ARN, or a
/// source EventBridge would refuse (empty, over 256 characters, or AWS's
/// own `aws.` prefix), stops the binary at start, naming the variable.
pub fn event_bus_from_env() -> Result<Option<(String, String)>, MissingEnv> {
    let var = |name: &str| std::env::var(name).ok();
    event_bus_from(
        var("BEACON_EVENT_BUS_ARN"),
        var("BEACON_EVENT_SOURCE"),
        var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
    )
}

/// [`event_bus_from_env`]'s rules, on the variables' values.
pub fn event_bus_from(
    bus: Option<String>,
    source: Option<String>,
    own_region: Option<String>,
) -> Result<Option<(String, String)>, MissingEnv> {
    let bus = match bus {
        Some(v) if !v.trim().is_empty() => v,
        _ => return Ok(None),
    };
    let parts: Vec<&str> = bus.splitn(6, ':').collect();
    let is_bus = matches!(parts.as_slice(), ["arn", partition, "events", region, account, resource]
        if partition.starts_with("aws")
            && crate::table_ref::is_region_name(region)
            && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
            && resource.strip_prefix("event-bus/").is_some_and(|n| !n.is_empty()));
    if !is_bus {
        return Err(MissingEnv::Invalid(
            "BEACON_EVENT_BUS_ARN",
            format!("{bus:?} is not an EventBridge bus ARN (arn:aws:events:<region>:<account>:event-bus/<name>)"),
        ));
    }
    // PutEvents reaches another Region's bus only through a global
    // endpoint: a bus elsewhere would fail every call, and with it every
    // event. Refused at start instead.
    if let Some(own) = own_region.filter(|r| !r.is_empty())
        && parts[3] != own
    {
        return Err(MissingEnv::Invalid(
            "BEACON_EVENT_BUS_ARN",
            format!(
                "{bus:?} is in another Region than this function's ({own}): put events on a bus here, and forward them with a rule"
            ),
        ));
    }
    let source = source.unwrap_or_else(|| "beacon".to_owned());
    if source.is_empty() || source.len() > 256 || source.starts_with("aws.") {
        return Err(MissingEnv::Invalid(
            "BEACON_EVENT_SOURCE",
            format!("{source:?}: a source is 1 to 256 characters and does not start with \"aws.\""),
        ));
    }
    Ok(Some((bus, source)))
}

/// The refresh queue's URL (`BEACON_REFRESH_QUEUE_URL`).
pub fn refresh_queue_from_env() -> Result<String, MissingEnv> {
    require_env("BEACON_REFRESH_QUEUE_URL", "it is the URL of the FIFO queue the pages of large refreshes go to")
}

// How every Beacon binary's AWS calls retry and time out. One policy, set
// here on purpose rather than left to the SDK's defaults (3 attempts, 1 s
// base backoff, no attempt or operation timeout), because the callers are
// Lambda invocations with a budget of seconds, each behind a retrier of its
// own: the stream mapping (bisection, backoff, on-failure queue), SQS
// redelivery, the registrar's next schedule, the extension's next refresh.
// The SDK's job is to ride out a brief fault quickly; a long one is handed to
// those retriers instead of eating the invocation. docs/reliability.md
// ("Retries and timeouts") has the reasoning and the tests.

/// Attempts per call, the first included: three retries. Throttles and
/// transient faults at AWS clear within a few hundred ms; past that the
/// caller's own retrier is the better place to wait.
pub const MAX_ATTEMPTS: u32 = 4;

/// Base of the exponential backoff (full jitter: a retry waits a random time
/// up to base × 2ⁿ). 100 ms, not the SDK's 1 s: three retries then fit in
/// under a second of a 30 s invocation.
pub const INITIAL_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Cap on one backoff.
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(2);

/// Connecting to a regional endpoint takes milliseconds; a second means the
/// path is broken, and a new attempt gets a new connection.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// One attempt of one call. DynamoDB, SNS and SQS answer Beacon's calls (a
/// one-item write, a Query of one page of 500 edges, a PublishBatch of 10)
/// in tens of ms; an attempt still waiting after 5 s has hung (a dropped
/// response, a stalled connection) and is cut off and retried. Long polls
/// (`ReceiveMessage` with a wait) get [`long_poll_timeouts`] instead.
pub const ATTEMPT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// All attempts of one call together, backoffs included: under the 30 s
/// timeout of the shortest function, so a stuck call fails the invocation's
/// unit of work (a record, a page) with an error rather than timing the
/// whole invocation out.
pub const OPERATION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The retry policy every client uses: standard mode (a retry quota shared
/// by the client, so an outage does not multiply the load by the attempts),
/// [`MAX_ATTEMPTS`], [`INITIAL_BACKOFF`], [`MAX_BACKOFF`].
pub fn retry_config() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::standard()
        .with_max_attempts(MAX_ATTEMPTS)
        .with_initial_backoff(INITIAL_BACKOFF)
        .with_max_backoff(MAX_BACKOFF)
}

/// The timeouts every client uses.
pub fn timeout_config() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

/// The timeouts for a long poll that may legitimately wait `wait` for an
/// answer (SQS `ReceiveMessage` with `WaitTimeSeconds`): the wait on top of
/// the usual attempt timeout.
pub fn long_poll_timeouts(wait: std::time::Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT + wait)
        .operation_timeout(OPERATION_TIMEOUT + wait)
        .build()
}

/// Loads the shared AWS configuration: region, credentials and endpoints
/// from the standard chain, with Beacon's retry and timeout policy.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(retry_config())
        .timeout_config(timeout_config())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_bus_is_a_bus_arn_in_the_functions_own_region_with_a_usable_source() {
        let bus = "arn:aws:events:us-east-1:123456789012:event-bus/platform";
        let s = |v: &str| Some(v.to_owned());
        assert_eq!(event_bus_from(None, None, s("us-east-1")).unwrap(), None);
        assert_eq!(event_bus_from(s(" "), None, None).unwrap(), None);
        assert_eq!(
            event_bus_from(s(bus), s("beacon.dev"), s("us-east-1")).unwrap(),
            Some((bus.to_owned(), "beacon.dev".to_owned()))
        );
        assert_eq!(event_bus_from(s(bus), None, None).unwrap().unwrap().1, "beacon");
        let refused = |bus: Option<String>, source: Option<String>, region: Option<String>, says: &str| {
            let e = event_bus_from(bus, source, region).unwrap_err().to_string();
            assert!(e.contains(says), "{e}");
        };
        refused(s("platform"), None, None, "BEACON_EVENT_BUS_ARN");
        refused(s("arn:aws:sns:us-east-1:123456789012:topic"), None, None, "not an EventBridge bus ARN");
        refused(s("arn:aws:events:us-east-1:123456789012:event-bus/"), None, None, "not an EventBridge bus ARN");
        refused(s("arn:aws:events:us-east-1:12345:event-bus/x"), None, None, "not an EventBridge bus ARN");
        refused(s(bus), None, s("eu-west-1"), "another Region");
        refused(s(bus), s("aws.events"), None, "BEACON_EVENT_SOURCE");
        refused(s(bus), s(""), None, "BEACON_EVENT_SOURCE");
    }
}
