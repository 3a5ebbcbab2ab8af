//! Creates the table and the topic, idempotently. The SAM template declares
//! the same resources in AWS; this is what `beacon dev` and the tests use.

use aws_sdk_dynamodb::Client as Dynamo;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sns::Client as Sns;

use beacon_domain::keys;

/// Set-up failed: which call, and why (the adapters' error for an AWS
/// call, so the viewer queue's calls and set-up's read the same).
pub use beacon_aws::viewer::CallError as SetupError;
use beacon_aws::viewer::queue_arn;

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

/// The listing index (`keys::LISTING_INDEX`).
fn listing_index() -> Result<GlobalSecondaryIndex, SetupError> {
    GlobalSecondaryIndex::builder()
        .index_name(keys::LISTING_INDEX)
        .key_schema(key(keys::EXPIRY_SHARD, KeyType::Hash)?)
        .key_schema(key(keys::PK, KeyType::Range)?)
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .map_err(SetupError::call("GlobalSecondaryIndex"))
}

/// Creates `table` (if absent) with its stream, TTL, expiry and listing
/// indexes (adding the listing index to a table made before it), waits
/// until it is active, and returns its stream ARN.
pub async fn ensure_table(client: &Dynamo, table: &str) -> Result<String, SetupError> {
    let describe = client.describe_table().table_name(table).send().await;
    let (exists, listed) = match describe {
        Ok(out) => {
            let indexes = out.table.and_then(|t| t.global_secondary_indexes).unwrap_or_default();
            (true, indexes.iter().any(|i| i.index_name.as_deref() == Some(keys::LISTING_INDEX)))
        }
        Err(e) if e.code() == Some("ResourceNotFoundException") => (false, false),
        Err(e) => return Err(SetupError::call(format!("DescribeTable {table}"))(e)),
    };
    if exists && !listed {
        // A table from before the listing index (a kept `beacon dev` state):
        // DynamoDB builds the new index from the items already there.
        let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
            .index_name(keys::LISTING_INDEX)
            .key_schema(key(keys::EXPIRY_SHARD, KeyType::Hash)?)
            .key_schema(key(keys::PK, KeyType::Range)?)
            .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
            .build()
            .map_err(SetupError::call("CreateGlobalSecondaryIndexAction"))?;
        let updated = client
            .update_table()
            .table_name(table)
            .attribute_definitions(attr(keys::EXPIRY_SHARD, ScalarAttributeType::S)?)
            .attribute_definitions(attr(keys::PK, ScalarAttributeType::S)?)
            .global_secondary_index_updates(
                aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder().create(create).build(),
            )
            .send()
            .await;
        idempotent(updated, "ResourceInUseException", format!("UpdateTable {table} (listing index)"))?;
    }
    if !exists {
        let listing = listing_index()?;
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
            .global_secondary_indexes(listing)
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

/// Creates an EventBridge bus (or finds it, on a second run) and returns
/// its ARN.
pub async fn ensure_event_bus(config: &aws_config::SdkConfig, name: &str) -> Result<String, SetupError> {
    let client = aws_sdk_eventbridge::Client::new(config);
    if let Ok(found) = client.describe_event_bus().name(name).send().await
        && let Some(arn) = found.arn
    {
        return Ok(arn);
    }
    let out = client
        .create_event_bus()
        .name(name)
        .send()
        .await
        .map_err(SetupError::call(format!("CreateEventBus {name}")))?;
    out.event_bus_arn.ok_or_else(|| SetupError::Incomplete(format!("CreateEventBus {name} returned no ARN")))
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
        self.sdk_config_in(LOCAL_REGION)
    }

    /// The same in `region`: DynamoDB Local keeps a table per Region, and
    /// moto a topic and queues per Region, so one engine of each holds
    /// every Region of a multi-Region registry.
    pub fn sdk_config_in(&self, region: &str) -> aws_config::SdkConfig {
        let creds =
            aws_sdk_dynamodb::config::Credentials::new(LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY, None, None, "beacon-local");
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_owned()))
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

    /// Every client the pipeline needs in `region`, each pointed at its
    /// engine.
    pub fn clients_in(&self, region: &str) -> crate::pipeline::Clients {
        let config = self.sdk_config_in(region);
        crate::pipeline::Clients {
            dynamodb: Dynamo::from_conf(
                aws_sdk_dynamodb::config::Builder::from(&config).endpoint_url(&self.dynamodb).build(),
            ),
            streams: aws_sdk_dynamodbstreams::Client::from_conf(
                aws_sdk_dynamodbstreams::config::Builder::from(&config).endpoint_url(&self.dynamodb).build(),
            ),
            sns: Sns::from_conf(aws_sdk_sns::config::Builder::from(&config).endpoint_url(&self.sns_sqs).build()),
            sqs: aws_sdk_sqs::Client::from_conf(
                aws_sdk_sqs::config::Builder::from(&config).endpoint_url(&self.sns_sqs).build(),
            ),
            region: region.to_owned(),
        }
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
