#![allow(missing_debug_implementations)] // test harness types hold clients and closures
//! The integration-test harness: each test gets its own table, stream,
//! topic and in-process pipeline (the local event source mapping driving the
//! real fan-out handler) on the shared local engines that `./scripts/test`
//! starts. Nothing here is a mock: the engines are DynamoDB Local and the
//! moto SNS/SQS server.

pub mod api;
pub mod extensions_api;
pub mod faults;
pub mod plot;
pub mod stack;
pub mod wire;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use beacon_aws::viewer::subscribe_queue;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::ports::{FanOutStore, Publisher, ServiceState, Views};
use beacon_domain::view::{Needs, Outcome, RequirementView};
use beacon_domain::{Requirement, resolve};
use beacon_fanout::{FanOut, Limits};
use beacon_local::mapping::{MappingConfig, MappingStats};
use beacon_local::pipeline::{self, Clients, Mapping, Names};
use beacon_local::queue::{QueueMapping, QueueMappingConfig, QueueStats};
use serde_json::Value;

/// The local stack's SDK config, from the standard variables that
/// `.beacon/test/dev.env` exports, with the retry and timeout policy every
/// Beacon binary uses. Panics with what to run when absent.
pub async fn sdk_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "the local stack is not running: run the suite with ./scripts/test"
    );
    beacon_aws::config::sdk_config().await
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other test (or earlier run against the same engines) uses.
pub fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// Epoch seconds now.
pub fn now() -> i64 {
    beacon_domain::clock::now_seconds()
}

/// Writes `n` healthy instances (`i0`, `i1`, …) spread over `services`
/// services (`s0`, `s1`, …), 16 writes in flight: the load the benchmarks
/// put on a table.
pub async fn put_instances(catalog: &DynamoTable, n: usize, services: usize) {
    use beacon_domain::ports::Catalog as _;
    use futures::StreamExt as _;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let service = format!("s{}", i % services);
            let r = beacon_domain::Registration::new_at(
                &service,
                "1.0.0",
                &format!("i{i}"),
                "https://x.example",
                beacon_domain::Status::Healthy,
                3600,
                now(),
            )
            .expect("a valid registration");
            catalog.put(&r).await.expect("writing a registration");
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// One test's pipeline.
pub struct TestPipeline {
    /// The table name.
    pub table: String,
    /// The topic ARN.
    pub topic_arn: String,
    /// A registry adapter over the table (for writes and reads).
    pub registry: DynamoTable,
    /// The DynamoDB client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The SNS client.
    pub sns: aws_sdk_sns::Client,
    /// The SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// The mapping's counters.
    pub stats: Arc<MappingStats>,
    /// The on-failure queue.
    pub on_failure: Queue,
    /// The adapter under the fan-out (its own request counts).
    pub fan_registry: DynamoTable,
    /// The refresh queue mapping's counters.
    pub pages: Arc<QueueStats>,
    /// The refresh queue's dead-letter queue.
    pub refresh_dead: Queue,
    /// Records and views the fan-out skipped because a stored item no
    /// write can fix (`BatchReport::bad_items`), over every batch.
    pub bad_items: Arc<std::sync::atomic::AtomicU64>,
    mapping: Mapping,
    pages_mapping: QueueMapping,
}

/// Options for [`TestPipeline::start_with`], built from [`Options::new`].
pub struct Options<P, R> {
    publisher: Box<dyn FnOnce(SnsPublisher) -> P + Send>,
    registry: Box<dyn FnOnce(DynamoTable) -> R + Send>,
    mapping: Box<dyn FnOnce(&mut MappingConfig) + Send>,
    sns_endpoint: Option<String>,
    config: Option<aws_config::SdkConfig>,
    limits: Limits,
    fanout_clients: Option<Clients>,
    clients: Option<Clients>,
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
    /// tests send them through [`wire::Wire`]. The test's own writers and
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

    /// Sends the fan-out's SNS calls to `url` (an [`faults::Outage`] hop)
    /// instead of the server; subscriptions and queues stay direct.
    pub fn sns_endpoint(mut self, url: String) -> Self {
        self.sns_endpoint = Some(url);
        self
    }
}

impl TestPipeline {
    /// A pipeline with the real publisher and AWS's default mapping.
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, Options::new()).await
    }

    /// A pipeline with wrapped ports and/or an adjusted mapping.
    pub async fn start_with<P, R>(name: &str, mut options: Options<P, R>) -> Self
    where
        P: Publisher + 'static,
        R: FanOutStore + 'static,
    {
        // RUST_LOG=beacon=debug shows the pipeline's logs under a failing test.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let config = match options.config.take() {
            Some(config) => config,
            None => sdk_config().await,
        };
        let clients = options.clients.take().unwrap_or_else(|| Clients::from_config(&config));
        let table = unique(name);
        // Tests page a few dependents at a time: a failed page comes back
        // after 5 s.
        let names = Names {
            on_failure_queue: Some(format!("{table}-dlq")),
            refresh_visibility_seconds: 5,
            ..Names::for_table(&table)
        };
        let resources = pipeline::create(&clients, &names).await.expect("creating the table, topic and queues");
        let registry = DynamoTable::new(clients.dynamodb.clone(), &table);
        let fan_clients = options.fanout_clients.take().unwrap_or_else(|| clients.clone());
        let fan_registry = DynamoTable::new(fan_clients.dynamodb.clone(), &table);
        let publishing_sns = match &options.sns_endpoint {
            Some(url) => {
                aws_sdk_sns::Client::from_conf(aws_sdk_sns::config::Builder::from(&config).endpoint_url(url).build())
            }
            None => fan_clients.sns.clone(),
        };
        let publisher = (options.publisher)(SnsPublisher::new(publishing_sns, &resources.topic_arn));
        let queue = resources.refresh_queue(&fan_clients);
        let fanout = Arc::new(
            FanOut::new((options.registry)(fan_registry.clone()), publisher, queue).with_limits(options.limits),
        );
        let mut config = MappingConfig::default();
        (options.mapping)(&mut config);
        let bad_items = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = bad_items.clone();
        let mapping = Mapping::start(
            &clients,
            &resources,
            config,
            pipeline::fanout_handler(fanout.clone(), move |batch| {
                seen.fetch_add(batch.report.bad_items as u64, std::sync::atomic::Ordering::Relaxed);
            }),
        );
        let pages_mapping = pipeline::start_pages(
            &clients,
            &resources,
            QueueMappingConfig::default(),
            pipeline::pages_handler(fanout, |_| {}),
        );
        let refresh_dead =
            Queue { url: resources.refresh_dead_url.clone(), arn: String::new(), sqs: clients.sqs.clone() };
        let on_failure = Queue {
            url: resources.on_failure_url.clone().unwrap_or_default(),
            arn: String::new(),
            sqs: clients.sqs.clone(),
        };
        Self {
            table,
            topic_arn: resources.topic_arn,
            registry,
            dynamodb: clients.dynamodb,
            sns: clients.sns,
            sqs: clients.sqs,
            stats: mapping.stats(),
            on_failure,
            fan_registry,
            pages: pages_mapping.stats(),
            refresh_dead,
            bad_items,
            mapping,
            pages_mapping,
        }
    }

    /// A queue subscribed to the topic (raw delivery), with an optional
    /// filter policy on the message attributes.
    pub async fn subscribe(&self, filter_policy: Option<&str>) -> Queue {
        let q = subscribe_queue(&self.sqs, &self.sns, &self.topic_arn, &unique("q"), filter_policy)
            .await
            .expect("subscribing a queue");
        Queue { url: q.url, arn: q.arn, sqs: self.sqs.clone() }
    }

    /// Stops the poller, as a crash between batches would. Nothing reads
    /// the stream until [`TestPipeline::start_poller`].
    pub async fn stop_poller(&mut self) {
        self.mapping.pause().await;
    }

    /// Kills the poller and the fan-out invocation it is running, wherever
    /// they are, as a crash would: no batch is finished, no checkpoint
    /// written.
    pub async fn kill_poller(&mut self) {
        self.mapping.kill().await;
    }

    /// Starts a new poller with the same mapping; it resumes from the
    /// persisted checkpoint, if the mapping has one.
    pub fn start_poller(&mut self) {
        self.mapping.resume();
        self.stats = self.mapping.stats();
    }

    /// Stops the poller and waits for it.
    pub async fn stop(self) {
        self.mapping.stop().await;
        self.pages_mapping.stop().await;
    }

    /// Waits until `check` holds, polling every 100 ms, or panics after `limit`.
    pub async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = Instant::now();
        while start.elapsed() < limit {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("timed out after {limit:?} waiting for {what}");
    }

    /// Compares every consumer's resolved item with a fresh resolution from the
    /// table; returns the first difference.
    pub async fn first_difference(&self, declared: &BTreeMap<String, Needs>) -> Option<String> {
        let now = now();
        for (consumer, needs) in declared {
            let Some(item) = self.resolved(consumer).await else {
                return Some(format!("{consumer}: no resolved item"));
            };
            let want_needs: Vec<String> = needs.needs.iter().map(ToString::to_string).collect();
            if item.needs != want_needs {
                return Some(format!("{consumer}: needs {:?} != {want_needs:?}", item.needs));
            }
            if item.services.len() != needs.services().len() {
                return Some(format!("{consumer}: views for {:?}, needs {:?}", item.services.keys(), needs.services()));
            }
            for service in needs.services() {
                let partition =
                    ServiceState::read_service(&self.registry, &service).await.expect("reading the partition");
                let fresh: Vec<RequirementView> = needs
                    .requirements_on(&service)
                    .iter()
                    .map(|text| {
                        let req = Requirement::parse(text).expect("a stored requirement parses");
                        RequirementView {
                            requirement: text.clone(),
                            outcome: Outcome::from(resolve(&req, &partition.instances, now)),
                        }
                    })
                    .collect();
                let stored = item.services.get(&service).map(|v| &v.requirements);
                if stored != Some(&fresh) {
                    return Some(format!("{consumer}/{service}: stored {stored:?} != fresh {fresh:?}"));
                }
            }
        }
        None
    }

    /// Reads a consumer's resolved item.
    pub async fn resolved(&self, consumer: &str) -> Option<beacon_domain::view::ResolvedItem> {
        Views::get_resolved(&self.registry, consumer).await.expect("reading the resolved item")
    }
}

/// An SQS queue the tests read events from.
pub struct Queue {
    /// Its URL.
    pub url: String,
    /// Its ARN.
    pub arn: String,
    sqs: aws_sdk_sqs::Client,
}

impl Queue {
    /// Receives what is available now (one short poll of up to 10 messages),
    /// deleting what it receives.
    pub async fn receive_once(&self) -> Vec<Value> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .send()
            .await
            .expect("receiving");
        let mut bodies = Vec::new();
        for m in out.messages.unwrap_or_default() {
            if let Some(handle) = &m.receipt_handle {
                let _ = self.sqs.delete_message().queue_url(&self.url).receipt_handle(handle).send().await;
            }
            if let Some(body) = m.body {
                bodies.push(serde_json::from_str(&body).unwrap_or(Value::String(body)));
            }
        }
        bodies
    }

    /// Receives until `done` holds for everything received so far, or
    /// `limit` passes; returns everything received.
    pub async fn receive_until(&self, limit: Duration, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let start = Instant::now();
        let mut all = Vec::new();
        while start.elapsed() < limit {
            let got = self.receive_once().await;
            let empty = got.is_empty();
            all.extend(got);
            if done(&all) {
                return all;
            }
            if empty {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        all
    }

    /// Receives everything that arrives within `window` (to show that
    /// nothing more arrives).
    pub async fn receive_for(&self, window: Duration) -> Vec<Value> {
        self.receive_until(window, |_| false).await
    }
}

/// Validates an event against the schema for its kind; returns the errors.
pub fn schema_errors(event: &Value) -> Vec<String> {
    let kind = event["kind"].as_str().unwrap_or_default();
    let name = match kind {
        "invalid" => "invalid",
        "resolved" => "resolved",
        _ => "change",
    };
    errors_against(name, event)
}

/// Validates a document against `events/schema/<name>.schema.json`.
pub fn errors_against(name: &str, event: &Value) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../events/schema/{name}.schema.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("compiling the schema");
    validator.iter_errors(event).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

/// Events of one kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}
