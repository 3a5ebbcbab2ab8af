//! Creates the table and the topic, idempotently. The SAM template declares
//! the same resources in AWS; this is what `beacon dev` and the tests use.

use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sns::Client as Sns;

use beacon::keys;

type Cause = Box<dyn std::error::Error + Send + Sync>;

/// Set-up failed: which call, and why.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// An AWS call failed.
    #[error("{operation}: {}", crate::error_chain(source.as_ref()))]
    Call {
        /// The call and its target (`CreateTable beacon-dev`).
        operation: String,
        /// The SDK's error, with its context.
        #[source]
        source: Cause,
    },
    /// A call answered without what set-up needs.
    #[error("{0}")]
    Incomplete(String),
}

impl SetupError {
    /// Maps an SDK error of `operation`.
    pub fn call<E: std::error::Error + Send + Sync + 'static>(operation: impl Into<String>) -> impl FnOnce(E) -> Self {
        let operation = operation.into();
        move |e| SetupError::Call { operation, source: Box::new(e) }
    }
}

fn attr(name: &str, t: ScalarAttributeType) -> Result<AttributeDefinition, SetupError> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(t)
        .build()
        .map_err(SetupError::call("AttributeDefinition"))
}

fn key(name: &str, t: KeyType) -> Result<KeySchemaElement, SetupError> {
    KeySchemaElement::builder().attribute_name(name).key_type(t).build().map_err(SetupError::call("KeySchemaElement"))
}

/// The result of a call whose error `already` means it was already done.
fn idempotent<T, E>(result: Result<T, E>, already: &str, operation: String) -> Result<(), SetupError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Err(e) if e.code() != Some(already) => Err(SetupError::call(operation)(e)),
        _ => Ok(()),
    }
}

/// Creates `table` (if absent) with its stream, TTL and expiry index, waits
/// until it is active, and returns its stream ARN.
pub async fn ensure_table(client: &Dynamo, table: &str) -> Result<String, SetupError> {
    let describe = client.describe_table().table_name(table).send().await;
    let exists = match describe {
        Ok(_) => true,
        Err(e) if e.code() == Some("ResourceNotFoundException") => false,
        Err(e) => return Err(SetupError::call(format!("DescribeTable {table}"))(e)),
    };
    if !exists {
        let index = GlobalSecondaryIndex::builder()
            .index_name(keys::EXPIRY_INDEX)
            .key_schema(key(keys::EXPIRY_SHARD, KeyType::Hash)?)
            .key_schema(key(keys::EXPIRES_AT, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(SetupError::call("GlobalSecondaryIndex"))?;
        let created = client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr(keys::PK, ScalarAttributeType::S)?)
            .attribute_definitions(attr(keys::SK, ScalarAttributeType::S)?)
            .attribute_definitions(attr(keys::EXPIRY_SHARD, ScalarAttributeType::S)?)
            .attribute_definitions(attr(keys::EXPIRES_AT, ScalarAttributeType::N)?)
            .key_schema(key(keys::PK, KeyType::Hash)?)
            .key_schema(key(keys::SK, KeyType::Range)?)
            .global_secondary_indexes(index)
            .stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::NewAndOldImages)
                    .build()
                    .map_err(SetupError::call("StreamSpecification"))?,
            )
            .send()
            .await;
        // Created meanwhile by someone else: as good.
        idempotent(created, "ResourceInUseException", format!("CreateTable {table}"))?;
    }
    let ttl = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(keys::EXPIRES_AT)
                .build()
                .map_err(SetupError::call("TimeToLiveSpecification"))?,
        )
        .send()
        .await;
    // Enabling TTL twice is refused with a ValidationException; that means done.
    idempotent(ttl, "ValidationException", format!("UpdateTimeToLive {table}"))?;
    for _ in 0..100 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(SetupError::call(format!("DescribeTable {table}")))?;
        if let Some(t) = out.table
            && t.table_status == Some(aws_sdk_dynamodb::types::TableStatus::Active)
            && let Some(arn) = t.latest_stream_arn
        {
            return Ok(arn);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(SetupError::Incomplete(format!("table {table} did not become active with a stream")))
}

/// Creates the topic (CreateTopic is idempotent) and returns its ARN.
pub async fn ensure_topic(client: &Sns, name: &str) -> Result<String, SetupError> {
    let out = client.create_topic().name(name).send().await.map_err(SetupError::call(format!("CreateTopic {name}")))?;
    out.topic_arn.ok_or_else(|| SetupError::Incomplete(format!("CreateTopic {name} returned no ARN")))
}

/// Where the local engines listen, and the one set of dummy credentials and
/// region every client uses (DynamoDB Local keeps tables per key and region).
#[derive(Debug, Clone)]
pub struct LocalEndpoints {
    /// DynamoDB and DynamoDB Streams (`http://127.0.0.1:P`).
    pub dynamodb: String,
    /// SNS and SQS (the moto server).
    pub sns_sqs: String,
}

/// The dummy access key the local stack uses (the account-wide principal).
pub const LOCAL_ACCESS_KEY: &str = "beaconlocal";
/// The dummy secret the local stack uses.
pub const LOCAL_SECRET_KEY: &str = "beaconlocal";
/// The access key of the second local principal, which may write one
/// service only (`beacon dev --scoped-service`, default `helloworld`).
pub const LOCAL_SCOPED_ACCESS_KEY: &str = "beaconscoped";
/// Its secret.
pub const LOCAL_SCOPED_SECRET_KEY: &str = "beaconscopedsecret";
/// The service it may write unless told otherwise.
pub const DEFAULT_SCOPED_SERVICE: &str = "helloworld";
/// The local stack's region.
pub const LOCAL_REGION: &str = "us-east-1";

impl LocalEndpoints {
    /// An SDK config pointing every service at the local engines, built
    /// explicitly (no process environment is read or changed).
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        let creds =
            aws_sdk_dynamodb::config::Credentials::new(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, None, None, "beacon-local");
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(LOCAL_REGION))
            .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(creds))
            .retry_config(beacon_aws::config::retry_config())
            .timeout_config(beacon_aws::config::timeout_config())
            .build()
    }

    /// An SDK config whose every service goes to the moto server (Lambda,
    /// API Gateway, EventBridge: what the registrar calls).
    pub fn sdk_config_for_moto(&self) -> aws_config::SdkConfig {
        self.sdk_config().to_builder().endpoint_url(&self.sns_sqs).build()
    }

    /// The DynamoDB client.
    pub fn dynamodb(&self) -> Dynamo {
        let conf = aws_sdk_dynamodb::config::Builder::from(&self.sdk_config()).endpoint_url(&self.dynamodb).build();
        Dynamo::from_conf(conf)
    }

    /// The DynamoDB Streams client.
    pub fn streams(&self) -> aws_sdk_dynamodbstreams::Client {
        let conf =
            aws_sdk_dynamodbstreams::config::Builder::from(&self.sdk_config()).endpoint_url(&self.dynamodb).build();
        aws_sdk_dynamodbstreams::Client::from_conf(conf)
    }

    /// The SNS client.
    pub fn sns(&self) -> Sns {
        let conf = aws_sdk_sns::config::Builder::from(&self.sdk_config()).endpoint_url(&self.sns_sqs).build();
        Sns::from_conf(conf)
    }

    /// The SQS client.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let conf = aws_sdk_sqs::config::Builder::from(&self.sdk_config()).endpoint_url(&self.sns_sqs).build();
        aws_sdk_sqs::Client::from_conf(conf)
    }

    /// Every client the pipeline needs, each pointed at its engine.
    pub fn clients(&self) -> crate::pipeline::Clients {
        crate::pipeline::Clients {
            dynamodb: self.dynamodb(),
            streams: self.streams(),
            sns: self.sns(),
            sqs: self.sqs(),
            region: LOCAL_REGION.to_owned(),
        }
    }

    /// The `export` lines a shell, the AWS CLI or boto3 needs.
    pub fn env_lines(&self, table: &str, topic_arn: &str, api_url: Option<&str>, scoped_service: &str) -> String {
        let vars = [
            ("AWS_ACCESS_KEY_ID", LOCAL_ACCESS_KEY),
            ("AWS_SECRET_ACCESS_KEY", LOCAL_SECRET_KEY),
            ("AWS_REGION", LOCAL_REGION),
            ("AWS_DEFAULT_REGION", LOCAL_REGION),
            ("AWS_ENDPOINT_URL_DYNAMODB", &self.dynamodb),
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", &self.dynamodb),
            ("AWS_ENDPOINT_URL_SNS", &self.sns_sqs),
            ("AWS_ENDPOINT_URL_SQS", &self.sns_sqs),
            // GetCallerIdentity: who a registry viewer is (its queue's owner).
            ("AWS_ENDPOINT_URL_STS", &self.sns_sqs),
            // The registrar's checks and self-removal, served by moto too.
            ("AWS_ENDPOINT_URL_LAMBDA", &self.sns_sqs),
            ("AWS_ENDPOINT_URL_API_GATEWAY", &self.sns_sqs),
            ("AWS_ENDPOINT_URL_APIGATEWAYV2", &self.sns_sqs),
            ("AWS_ENDPOINT_URL_EVENTBRIDGE", &self.sns_sqs),
            ("AWS_ENDPOINT_URL_IAM", &self.sns_sqs),
            ("BEACON_TABLE", table),
            ("BEACON_TOPIC_ARN", topic_arn),
        ];
        let mut lines: String = vars.iter().map(|(k, v)| format!("export {k}={v}\n")).collect();
        if let Some(url) = api_url {
            lines.push_str(&format!("export BEACON_API_URL={url}\n"));
            // The second principal: it may write only this service through
            // the catalog API (the local server enforces it).
            lines.push_str(&format!("export BEACON_SCOPED_SERVICE={scoped_service}\n"));
            lines.push_str(&format!("export BEACON_SCOPED_ACCESS_KEY_ID={LOCAL_SCOPED_ACCESS_KEY}\n"));
            lines.push_str(&format!("export BEACON_SCOPED_SECRET_ACCESS_KEY={LOCAL_SCOPED_SECRET_KEY}\n"));
        }
        lines
    }
}

/// A queue subscribed to the topic.
#[derive(Debug, Clone)]
pub struct SubscribedQueue {
    /// The queue's URL.
    pub url: String,
    /// The queue's ARN.
    pub arn: String,
    /// The subscription, as Subscribe returned it.
    pub subscription_arn: Option<String>,
}

/// A registry viewer's lease on its queue (docs/architecture.md, "The
/// janitor"): whose queue it is, and how far ahead `beacon:lease` is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewerLease {
    /// The viewer's `aws:userid` (`beacon:owner`).
    pub owner: String,
    /// How far ahead of now the lease is set.
    pub length: std::time::Duration,
}

/// The lease length when `BEACON_VIEWER_LEASE_SECONDS` does not set one.
pub const DEFAULT_VIEWER_LEASE: std::time::Duration = std::time::Duration::from_secs(300);

impl ViewerLease {
    /// The lease for `owner`, its length from `BEACON_VIEWER_LEASE_SECONDS`
    /// (at least 2 s; tests shorten it) or [`DEFAULT_VIEWER_LEASE`].
    pub fn from_env(owner: impl Into<String>) -> Self {
        let length = std::env::var("BEACON_VIEWER_LEASE_SECONDS")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_VIEWER_LEASE, |s| std::time::Duration::from_secs(s.max(2)));
        Self { owner: owner.into(), length }
    }

    /// The lease's end if it is renewed at `now` (epoch seconds).
    pub fn until(&self, now: i64) -> i64 {
        now.saturating_add(i64::try_from(self.length.as_secs()).unwrap_or(i64::MAX))
    }

    /// How often it is renewed: a fifth of its length (every minute for
    /// five), so four renewals in a row can fail before it lapses.
    pub fn renew_every(&self) -> std::time::Duration {
        (self.length / 5).max(std::time::Duration::from_millis(400))
    }
}

impl SubscribedQueue {
    /// Sets the queue's `beacon:lease` to `until` (TagQueue: the viewer
    /// policy lets a viewer tag only the queues it owns).
    pub async fn set_lease(
        &self,
        sqs: &aws_sdk_sqs::Client,
        until: i64,
    ) -> Result<(), aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::tag_queue::TagQueueError>> {
        sqs.tag_queue().queue_url(&self.url).tags(beacon::ports::LEASE_TAG, until.to_string()).send().await.map(|_| ())
    }

    /// Keeps the lease ahead until the queue is gone (the janitor removed
    /// it: its lease had lapsed), which it returns as an error; a failed
    /// renewal is logged and tried again at the next turn.
    pub async fn keep_lease(&self, sqs: &aws_sdk_sqs::Client, lease: &ViewerLease) -> Result<(), SetupError> {
        loop {
            tokio::time::sleep(lease.renew_every()).await;
            match self.set_lease(sqs, lease.until(beacon::clock::now_seconds())).await {
                Ok(()) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_queue_does_not_exist()) => {
                    return Err(SetupError::Incomplete(format!(
                        "the queue {} was removed (its lease lapsed: was this process suspended?)",
                        self.url
                    )));
                }
                Err(e) => tracing::warn!(
                    queue = %self.url,
                    error = %aws_sdk_sqs::error::DisplayErrorContext(&e),
                    "renewing the queue's lease failed; retrying"
                ),
            }
        }
    }

    /// A viewer's exit: the lease ends, and the sweeper's janitor
    /// removes the subscription and then the queue on its next run (a
    /// viewer may not unsubscribe; and deleting the queue first would leave
    /// a subscription pointing at nothing, which the local SNS server
    /// answers by failing every publish to the topic).
    pub async fn release(
        &self,
        sqs: &aws_sdk_sqs::Client,
    ) -> Result<(), aws_sdk_sqs::error::SdkError<aws_sdk_sqs::operation::tag_queue::TagQueueError>> {
        // Already passed (the janitor removes a lease strictly before its
        // run's time), yet recent: another stack's janitor, which sees the
        // queue but not its subscription, leaves it to this topic's.
        self.set_lease(sqs, beacon::clock::now_seconds() - 1).await
    }
}

/// Creates the queue `name` (CreateQueue is idempotent) and returns its URL.
pub async fn ensure_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> Result<String, SetupError> {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .map_err(SetupError::call(format!("CreateQueue {name}")))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(format!("CreateQueue {name} returned no URL")))
}

/// How many times the refresh queue delivers a page before moving it to
/// its dead-letter queue (the template's `maxReceiveCount`).
pub const REFRESH_MAX_RECEIVES: u32 = 5;

/// Creates (or reuses) the refresh queue `<name>.fifo` and its dead-letter
/// queue `<name>-dead.fifo`, as the template does: FIFO (for its
/// deduplication), a redrive policy after [`REFRESH_MAX_RECEIVES`], and a
/// visibility timeout of `visibility_seconds`. Returns the queue's URL and
/// ARN and the dead-letter queue's URL.
pub async fn ensure_refresh_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    visibility_seconds: u32,
) -> Result<(String, String, String), SetupError> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let fifo = |queue: &str| sqs.create_queue().queue_name(queue.to_owned()).attributes(A::FifoQueue, "true").send();
    let dead_name = format!("{name}-dead.fifo");
    let dead_url = fifo(&dead_name)
        .await
        .map_err(SetupError::call(format!("CreateQueue {dead_name}")))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(format!("CreateQueue {dead_name} returned no URL")))?;
    let dead_arn = queue_arn(sqs, &dead_url).await?;
    let queue_name = format!("{name}.fifo");
    let redrive = serde_json::json!({ "deadLetterTargetArn": dead_arn, "maxReceiveCount": REFRESH_MAX_RECEIVES });
    let url = sqs
        .create_queue()
        .queue_name(&queue_name)
        .attributes(A::FifoQueue, "true")
        .attributes(A::RedrivePolicy, redrive.to_string())
        .attributes(A::VisibilityTimeout, visibility_seconds.to_string())
        .send()
        .await
        .map_err(SetupError::call(format!("CreateQueue {queue_name}")))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(format!("CreateQueue {queue_name} returned no URL")))?;
    let arn = queue_arn(sqs, &url).await?;
    Ok((url, arn, dead_url))
}

/// A queue's ARN.
async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> Result<String, SetupError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(SetupError::call(format!("GetQueueAttributes {url}")))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .ok_or_else(|| SetupError::Incomplete(format!("no ARN for queue {url}")))
}

/// The queue policy SNS needs to deliver to a queue: `sqs:SendMessage` by
/// the SNS service, only for messages from `topic_arn` (`aws:SourceArn`),
/// and an explicit Deny of `sqs:SendMessage` to every principal whose
/// request does not come from `topic_arn`, so no identity policy in the
/// account (a broad `sqs:SendMessage` grant) can forge events into the
/// queue. Without the Allow AWS drops every delivery (the local SNS server
/// does not check, so it is evaluated with an IAM simulator in the tests).
pub fn queue_policy(queue_arn: &str, topic_arn: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "OnlyTheBeaconTopic",
                "Effect": "Allow",
                "Principal": { "Service": "sns.amazonaws.com" },
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnEquals": { "aws:SourceArn": topic_arn } }
            },
            {
                "Sid": "NothingButTheBeaconTopic",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": { "ArnNotEquals": { "aws:SourceArn": topic_arn } }
            }
        ]
    })
}

/// Creates (or reuses) the queue `name`, lets only `topic_arn` send to it
/// ([`queue_policy`]), and subscribes it with raw delivery and an optional
/// filter policy. For a user's queue; a registry viewer's is
/// [`subscribe_viewer_queue`].
pub async fn subscribe_queue(
    sqs: &aws_sdk_sqs::Client,
    sns: &Sns,
    topic_arn: &str,
    name: &str,
    filter_policy: Option<&str>,
) -> Result<SubscribedQueue, SetupError> {
    let url = ensure_queue(sqs, name).await?;
    subscribe_url(sqs, sns, topic_arn, name, url, filter_policy).await
}

/// A registry viewer's queue (`name` must start with one of
/// [`beacon::ports::VIEWER_QUEUE_PREFIXES`]): created with its
/// `beacon:owner` and `beacon:lease` tags (the viewer policy allows a
/// viewer to create a queue only so tagged, and to use only the queues it
/// owns), given [`queue_policy`], then subscribed. Keep the lease with
/// [`SubscribedQueue::keep_lease`]; end it with
/// [`SubscribedQueue::release`].
pub async fn subscribe_viewer_queue(
    sqs: &aws_sdk_sqs::Client,
    sns: &Sns,
    topic_arn: &str,
    name: &str,
    filter_policy: Option<&str>,
    lease: &ViewerLease,
) -> Result<SubscribedQueue, SetupError> {
    let url = sqs
        .create_queue()
        .queue_name(name)
        .tags(beacon::ports::OWNER_TAG, &lease.owner)
        .tags(beacon::ports::LEASE_TAG, lease.until(beacon::clock::now_seconds()).to_string())
        .send()
        .await
        .map_err(SetupError::call(format!("CreateQueue {name}")))?
        .queue_url
        .ok_or_else(|| SetupError::Incomplete(format!("CreateQueue {name} returned no URL")))?;
    let subscribed = subscribe_url(sqs, sns, topic_arn, name, url.clone(), filter_policy).await;
    if subscribed.is_err() {
        // Not subscribed: hand the queue to the janitor at once.
        let queue = SubscribedQueue { url, arn: String::new(), subscription_arn: None };
        let _ = queue.release(sqs).await;
    }
    subscribed
}

async fn subscribe_url(
    sqs: &aws_sdk_sqs::Client,
    sns: &Sns,
    topic_arn: &str,
    name: &str,
    url: String,
    filter_policy: Option<&str>,
) -> Result<SubscribedQueue, SetupError> {
    use aws_sdk_sqs::types::QueueAttributeName;
    let arn = queue_arn(sqs, &url).await?;
    // The policy before the subscription, so no delivery is ever refused.
    sqs.set_queue_attributes()
        .queue_url(&url)
        .attributes(QueueAttributeName::Policy, queue_policy(&arn, topic_arn).to_string())
        .send()
        .await
        .map_err(SetupError::call(format!("SetQueueAttributes {name}")))?;
    let mut subscribe =
        sns.subscribe().topic_arn(topic_arn).protocol("sqs").endpoint(&arn).attributes("RawMessageDelivery", "true");
    if let Some(policy) = filter_policy {
        subscribe = subscribe.attributes("FilterPolicy", policy);
    }
    let subscription_arn =
        subscribe.send().await.map_err(SetupError::call(format!("Subscribe {name}")))?.subscription_arn;
    Ok(SubscribedQueue { url, arn, subscription_arn })
}
