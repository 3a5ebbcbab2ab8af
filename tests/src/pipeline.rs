//! One test's pipeline: its own table, stream, topic and queues, and the
//! in-process mappings driving the real fan-out handler.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use beacon_aws::viewer::subscribe_queue;
use beacon_aws::{DynamoTable, SnsPublisher};
use beacon_domain::ports::{FanOutStore, Publisher, ServiceState, Views};
use beacon_domain::view::{Needs, Outcome, RequirementView};
use beacon_domain::{Requirement, resolve_for};
use beacon_fanout::FanOut;
use beacon_local::mapping::{MappingConfig, MappingStats};
use beacon_local::pipeline::{self, Clients, Mapping, Names};
use beacon_local::queue::{QueueMapping, QueueMappingConfig, QueueStats};

use crate::{Options, Queue, now, sdk_config, unique};

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
        let table = options.region.as_ref().map_or_else(|| unique(name), |(table, _)| table.clone());
        // Tests page a few dependents at a time: a failed page comes back
        // after 5 s.
        let names = Names {
            on_failure_queue: Some(format!("{table}-dlq")),
            refresh_visibility_seconds: 5,
            ..Names::for_table(&table)
        };
        let resources = pipeline::create(&clients, &names).await.expect("creating the table, topic and queues");
        let region = options.region.as_ref().map(|(_, region)| region.clone());
        let scoped = |t: DynamoTable| t.scoped_to(region.clone());
        let registry = scoped(DynamoTable::new(clients.dynamodb.clone(), &table));
        let fan_clients = options.fanout_clients.take().unwrap_or_else(|| clients.clone());
        let fan_registry = scoped(DynamoTable::new(fan_clients.dynamodb.clone(), &table));
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
                            // As the consumer sees it: its slot of a large service.
                            outcome: Outcome::from(resolve_for(&req, &partition.instances, now, Some(consumer))),
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
