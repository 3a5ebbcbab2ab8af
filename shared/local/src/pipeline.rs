//! The one wiring of the local pipeline — table with stream, topic,
//! on-failure queue, refresh queue, the fan-out behind the local event
//! source mappings (the stream's and the refresh queue's) —
//! that `beacon dev`, the integration tests and the benchmarks all call,
//! plus the schedules AWS would run (the sweeper's `rate(1 minute)`, each
//! registrar's EventBridge rule).

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use beacon_domain::ports::{Catalog, Components, ExpiryIndex, FanOutStore, Publisher, RefreshQueue};
use beacon_fanout::{BatchReport, FanOut, PagesReport};
use beacon_registrar::{RunOutcome, ServiceProperties, run_once};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::mapping::{Handler, MappingConfig, MappingStats, Poller};
use crate::queue::{QueueHandler, QueueMapping, QueueMappingConfig};
use crate::setup::{LOCAL_REGION, SetupError, ensure_refresh_queue, ensure_table, ensure_topic};
use beacon_aws::viewer::ensure_queue;

/// The local refresh queue's visibility timeout: a failed page comes back
/// after this long. AWS's is six times the function's timeout (the
/// template); locally a page of 500 takes a few seconds on a busy DynamoDB
/// Local, so 30 s.
pub const LOCAL_REFRESH_VISIBILITY_SECONDS: u32 = 30;

/// The clients the pipeline talks through, and the region Lambda would
/// report in each record.
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB (the table).
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// DynamoDB Streams (the mapping's reads).
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// SNS (the topic).
    pub sns: aws_sdk_sns::Client,
    /// SQS (the on-failure queue, subscribers).
    pub sqs: aws_sdk_sqs::Client,
    /// The region, from the configuration (never assumed).
    pub region: String,
}

impl Clients {
    /// Every client from one configuration (endpoints from the standard
    /// `AWS_ENDPOINT_URL_*` variables, as the tests and benches use).
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            streams: aws_sdk_dynamodbstreams::Client::new(config),
            sns: aws_sdk_sns::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            region: config.region().map_or_else(|| LOCAL_REGION.to_owned(), ToString::to_string),
        }
    }
}

/// What to create: the table, the topic, and the on-failure queue (if any).
#[derive(Debug, Clone)]
pub struct Names {
    /// The registry table.
    pub table: String,
    /// The change topic.
    pub topic: String,
    /// The mapping's on-failure SQS queue; `None` drops exhausted batches.
    pub on_failure_queue: Option<String>,
    /// The refresh queue's base name (`.fifo` is added; its dead-letter
    /// queue is `<name>-dead.fifo`).
    pub refresh_queue: String,
    /// Its visibility timeout: how long until a failed page comes back.
    pub refresh_visibility_seconds: u32,
}

impl Names {
    /// The usual names for `table`: topic and table alike, a
    /// `<table>-on-failure` queue and a `<table>-refresh` queue.
    pub fn for_table(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            topic: table.to_owned(),
            on_failure_queue: Some(format!("{table}-on-failure")),
            refresh_queue: format!("{table}-refresh"),
            refresh_visibility_seconds: LOCAL_REFRESH_VISIBILITY_SECONDS,
        }
    }
}

/// The created resources.
#[derive(Debug, Clone)]
pub struct Resources {
    /// The table name.
    pub table: String,
    /// Its stream's ARN.
    pub stream_arn: String,
    /// The topic's ARN.
    pub topic_arn: String,
    /// The on-failure queue's URL.
    pub on_failure_url: Option<String>,
    /// The refresh queue's URL.
    pub refresh_url: String,
    /// The refresh queue's ARN.
    pub refresh_arn: String,
    /// The refresh queue's dead-letter queue's URL.
    pub refresh_dead_url: String,
}

/// Creates the table, topic, on-failure queue and refresh queue,
/// idempotently.
pub async fn create(clients: &Clients, names: &Names) -> Result<Resources, SetupError> {
    let stream_arn = ensure_table(&clients.dynamodb, &names.table).await?;
    let topic_arn = ensure_topic(&clients.sns, &names.topic).await?;
    let on_failure_url = match &names.on_failure_queue {
        None => None,
        Some(q) => Some(ensure_queue(&clients.sqs, q).await?),
    };
    let (refresh_url, refresh_arn, refresh_dead_url) =
        ensure_refresh_queue(&clients.sqs, &names.refresh_queue, names.refresh_visibility_seconds).await?;
    Ok(Resources {
        table: names.table.clone(),
        stream_arn,
        topic_arn,
        on_failure_url,
        refresh_url,
        refresh_arn,
        refresh_dead_url,
    })
}

impl Resources {
    /// The refresh queue's adapter.
    pub fn refresh_queue(&self, clients: &Clients) -> beacon_aws::SqsRefreshQueue {
        beacon_aws::SqsRefreshQueue::new(clients.sqs.clone(), &self.refresh_url)
    }
}

/// What a handler saw of one batch, for benchmarks and logs.
#[derive(Debug)]
pub struct BatchSeen<'a> {
    /// Records in the event.
    pub records: usize,
    /// The fan-out's report.
    pub report: &'a BatchReport,
    /// How long the handler took.
    pub elapsed: Duration,
}

/// The fan-out as the mapping's handler: the clock is read once per batch,
/// as the Lambda's `main` does; `observe` sees every batch.
pub fn fanout_handler<R, P, Q>(
    fanout: Arc<FanOut<R, P, Q>>,
    observe: impl Fn(BatchSeen<'_>) + Send + Sync + 'static,
) -> Handler
where
    R: FanOutStore + 'static,
    P: Publisher + 'static,
    Q: RefreshQueue + 'static,
{
    let observe = Arc::new(observe);
    Arc::new(move |event: StreamEvent| {
        let (fanout, observe) = (fanout.clone(), observe.clone());
        Box::pin(async move {
            let start = Instant::now();
            let (response, report) = fanout.handle(&event, beacon_domain::clock::now_seconds()).await;
            observe(BatchSeen { records: event.records.len(), report: &report, elapsed: start.elapsed() });
            Ok(response)
        })
    })
}

/// What the refresh consumer saw of one invocation.
#[derive(Debug)]
pub struct PagesSeen<'a> {
    /// The consumer's report.
    pub report: &'a PagesReport,
    /// How long the invocation took.
    pub elapsed: Duration,
}

/// The fan-out's page consumer as the refresh queue mapping's handler.
pub fn pages_handler<R, P, Q>(
    fanout: Arc<FanOut<R, P, Q>>,
    observe: impl Fn(PagesSeen<'_>) + Send + Sync + 'static,
) -> QueueHandler
where
    R: FanOutStore + 'static,
    P: Publisher + 'static,
    Q: RefreshQueue + 'static,
{
    let observe = Arc::new(observe);
    Arc::new(move |event: SqsEvent| {
        let (fanout, observe) = (fanout.clone(), observe.clone());
        Box::pin(async move {
            let start = Instant::now();
            let (response, report) = fanout.handle_pages(&event, beacon_domain::clock::now_seconds()).await;
            observe(PagesSeen { report: &report, elapsed: start.elapsed() });
            Ok(response)
        })
    })
}

/// Starts the refresh queue's mapping into `handler`.
pub fn start_pages(
    clients: &Clients,
    resources: &Resources,
    config: QueueMappingConfig,
    handler: QueueHandler,
) -> QueueMapping {
    QueueMapping::start(&clients.sqs, &resources.refresh_url, &resources.refresh_arn, &clients.region, config, handler)
}

/// A running event source mapping that can be stopped, killed and
/// restarted (it resumes from its checkpoint, if it persists one).
pub struct Mapping {
    clients: Clients,
    resources: Resources,
    config: MappingConfig,
    handler: Handler,
    stats: Arc<MappingStats>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mapping").field("stream_arn", &self.resources.stream_arn).finish_non_exhaustive()
    }
}

impl Mapping {
    /// Starts the mapping from `resources`' stream to `handler`. The
    /// on-failure destination is `resources.on_failure_url` unless `config`
    /// names one.
    pub fn start(clients: &Clients, resources: &Resources, mut config: MappingConfig, handler: Handler) -> Self {
        if config.on_failure_queue_url.is_none() {
            config.on_failure_queue_url = resources.on_failure_url.clone();
        }
        let (stop, _) = watch::channel(false);
        let mut mapping = Self {
            clients: clients.clone(),
            resources: resources.clone(),
            config,
            handler,
            stats: Arc::default(),
            stop,
            task: tokio::spawn(async {}),
        };
        mapping.resume();
        mapping
    }

    fn poller(&self) -> Poller {
        Poller::new(
            self.clients.streams.clone(),
            Some(self.clients.sqs.clone()),
            self.resources.stream_arn.clone(),
            self.clients.region.clone(),
            self.config.clone(),
            self.handler.clone(),
        )
    }

    /// The current poller's live counters (a restart starts new ones).
    pub fn stats(&self) -> Arc<MappingStats> {
        self.stats.clone()
    }

    /// Starts a new poller; it resumes from the persisted checkpoint.
    pub fn resume(&mut self) {
        let poller = self.poller();
        self.stats = poller.stats();
        let (stop, rx) = watch::channel(false);
        self.stop = stop;
        self.task = tokio::spawn(poller.run(rx));
    }

    /// Stops the poller between batches, as a clean shutdown would.
    pub async fn pause(&mut self) {
        let _ = self.stop.send(true);
        let old = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = tokio::time::timeout(Duration::from_secs(10), old).await;
    }

    /// Kills the poller and the invocation it is running, wherever they
    /// are, as a crash would: no batch finished, no checkpoint written.
    /// (Aborting the task drops its shard workers' `JoinSet`, which aborts
    /// them too.)
    pub async fn kill(&mut self) {
        let old = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        old.abort();
        let _ = old.await;
    }

    /// Stops the poller and waits for it.
    pub async fn stop(mut self) {
        self.pause().await;
    }

    /// Runs until `shutdown` turns true, then stops.
    pub async fn run_until(mut self, mut shutdown: watch::Receiver<bool>) {
        let _ = shutdown.wait_for(|stop| *stop).await;
        self.pause().await;
    }
}

/// Runs `tick` every `period` until `shutdown` turns true (first run after
/// one period). A schedule's stand-in: EventBridge's `rate(...)`.
async fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, first_now: bool, mut tick: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut wait = if first_now { Duration::ZERO } else { period };
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(wait) => {}
        }
        if !tick().await {
            return;
        }
        wait = period;
    }
}

/// The sweeper's schedule, as in AWS: an invocation every `period`
/// (`rate(1 minute)`), each sweeping every `interval` through its period
/// (`beacon_sweeper::sweep_window`, `SweepIntervalMs`), the next one
/// starting as it ends.
pub fn spawn_sweeper<I: ExpiryIndex + 'static>(
    index: I,
    period: Duration,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = beacon_domain::clock::now_millis();
            let window = beacon_sweeper::Window::for_schedule(now, period, Duration::ZERO, interval, i64::MAX);
            let sweeps = beacon_sweeper::sweep_window(&index, beacon_domain::clock::now_millis, window);
            tokio::select! {
                _ = shutdown.wait_for(|stop| *stop) => return,
                swept = sweeps => if swept.report.due > 0 {
                    tracing::info!(expired = swept.report.expired, refreshed = swept.report.refreshed, failed = swept.failed, "sweeps");
                },
            }
            // A window that sweeps once (an interval of a period or more)
            // waits out the rest of its period.
            let left = window.until_millis.max(now + i64::try_from(period.as_millis()).unwrap_or(0))
                - beacon_domain::clock::now_millis();
            if left > 0 {
                tokio::select! {
                    _ = shutdown.wait_for(|stop| *stop) => return,
                    _ = tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap_or(0))) => {}
                }
            }
        }
    })
}

/// A registrar's schedule: it runs at once, then every `period`, until its
/// service is removed (it removes itself, as in AWS) or `shutdown`.
pub fn spawn_registrar<C, K>(
    catalog: C,
    components: K,
    props: ServiceProperties,
    period: Duration,
    shutdown: watch::Receiver<bool>,
) -> JoinHandle<()>
where
    C: Catalog + 'static,
    K: Components + 'static,
{
    let state = Arc::new((catalog, components, props));
    tokio::spawn(every(period, shutdown, true, move || {
        let state = state.clone();
        async move {
            let (catalog, components, props) = state.as_ref();
            match run_once(catalog, components, props, beacon_domain::clock::now_seconds()).await {
                Ok(RunOutcome::Removed) => {
                    tracing::info!(service = %props.service_name, "registrar removed its service and stops");
                    false
                }
                Ok(outcome) => {
                    tracing::info!(service = %props.service_name, ?outcome, "registrar ran");
                    true
                }
                Err(e) => {
                    tracing::warn!(service = %props.service_name, error = %e, "registrar run failed; next run retries");
                    true
                }
            }
        }
    }))
}
