//! What `beacon dev` runs on top of the engines: the table, topic and
//! pipeline (the shared wiring in `beacon_local::pipeline`), the sweeper's
//! (with its janitor) and registrars' schedules, and API Gateway's stand-in
//! for the catalog API; then `dev.env` for other shells, and the demo if
//! asked.

use std::time::Duration;

use anyhow::{Context, Result};
use beacon_fanout::FanOut;
use beacon_local::mapping::MappingConfig;
use beacon_local::pipeline::{self, Clients, Mapping, Names, Resources};
use beacon_local::setup::{LOCAL_SECRET_KEY, LocalEndpoints};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::DevOpts;
use super::engines::Stack;

/// What runs on the engines, stopped together.
struct Running {
    resources: Resources,
    api_url: Option<String>,
    ui: Option<crate::ui::Running>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// With `--regions`: the other Regions, and the replication between all.
    others: Vec<OtherRegion>,
    replication: Option<beacon_local::replication::Replication>,
    /// With `--event-bus`: the bus's ARN and the events' source.
    event_bus: Option<(String, String)>,
}

/// The source events carry on `beacon dev`'s bus (the template's is
/// `beacon.<Stage>`).
const DEV_EVENT_SOURCE: &str = "beacon.dev";

/// A Region beyond the first, with `--regions`.
struct OtherRegion {
    region: String,
    resources: Resources,
    api_url: String,
}

impl OtherRegion {
    /// How dev.env names its variables: `BEACON_TOPIC_ARN_EU_WEST_1`.
    fn env_suffix(&self) -> String {
        self.region.to_uppercase().replace('-', "_")
    }
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Creates what the template would (through `direct`, the engines
/// themselves: set-up is CloudFormation's job in AWS, not a component's)
/// and starts every component on `endpoints` (the engines, or the fault
/// proxies in front of them).
async fn start(opts: &DevOpts, direct: &LocalEndpoints, endpoints: &LocalEndpoints) -> Result<Running> {
    let regions = opts.multi_region()?;
    // With several Regions, every Region's fan-out (the first's too) keys
    // its bookkeeping and views by its Region (BEACON_REPLICA_REGION).
    let scope = regions.map(|_| beacon_local::setup::LOCAL_REGION.to_owned());
    let clients: Clients = endpoints.clients();
    let names = Names {
        topic: opts.topic.clone(),
        on_failure_queue: (!opts.no_pipeline).then(|| format!("{}-on-failure", opts.table)),
        ..Names::for_table(&opts.table)
    };
    let resources = pipeline::create(&direct.clients(), &names).await.context("creating the table, topic and queue")?;
    let (stop, stop_rx) = watch::channel(false);
    if opts.no_pipeline {
        return Ok(Running {
            resources,
            api_url: None,
            ui: None,
            stop,
            tasks: Vec::new(),
            others: Vec::new(),
            replication: None,
            event_bus: None,
        });
    }
    // The bus, made as CloudFormation (or its owner) would, on the engine.
    let event_bus = match opts.event_bus {
        true => Some((
            beacon_local::setup::ensure_event_bus(&direct.sdk_config_for_moto(), &opts.table)
                .await
                .context("creating the EventBridge bus (--event-bus)")?,
            DEV_EVENT_SOURCE.to_owned(),
        )),
        false => None,
    };
    let bus = event_bus
        .as_ref()
        .map(|(arn, source)| beacon_aws::event_bus_publisher(&endpoints.sdk_config_for_moto(), arn, source));
    let registry = || beacon_aws::DynamoTable::new(clients.dynamodb.clone(), &opts.table).scoped_to(scope.clone());
    let mut tasks = Vec::new();
    start_pipeline(opts, &clients, &resources, registry, bus, &stop_rx, &mut tasks)?;
    // The sweeper's janitor, on the same schedule (one Lambda in AWS).
    tasks.push(spawn_janitor(
        beacon_aws::janitor::SnsSqsSubscribers::new(clients.sns.clone(), clients.sqs.clone(), &resources.topic_arn),
        resources.topic_arn.clone(),
        Duration::from_secs(opts.sweep_every_seconds.max(1)),
        stop_rx.clone(),
    ));
    // The registrars' checks reach moto's Lambda and API Gateway through the
    // same local endpoints.
    for path in &opts.registrars {
        let props = beacon_registrar::ServiceProperties::from_file(&path.display().to_string())
            .with_context(|| format!("--registrar {}", path.display()))?;
        tasks.push(pipeline::spawn_registrar(
            registry(),
            beacon_aws::components::AwsComponents::new(&endpoints.sdk_config_for_moto()),
            props,
            Duration::from_secs(opts.registrar_every_seconds.max(1)),
            stop_rx.clone(),
        ));
    }
    // API Gateway's stand-in: the catalog handler on loopback, SigV4 on writes.
    let api_listener = TcpListener::bind(("127.0.0.1", opts.api_port))
        .await
        .with_context(|| format!("port {} for the catalog API is busy: pick another with --api-port", opts.api_port))?;
    let api_url = serve_api(opts, api_listener, registry(), &stop_rx, &mut tasks)?;
    // The registry page, subscribed to the topic like any subscriber.
    let ui_listener = TcpListener::bind(("127.0.0.1", opts.ui_port))
        .await
        .with_context(|| format!("port {} for the registry page is busy: pick another with --ui-port", opts.ui_port))?;
    let owner = beacon_aws::janitor::caller_user_id(&endpoints.sdk_config_for_moto())
        .await
        .context("asking the local STS who the page is (GetCallerIdentity)")?;
    let aws = beacon_aws::viewer::Clients { sqs: endpoints.sqs(), sns: endpoints.sns() };
    let clients = crate::ui::feed::Clients { aws, owner };
    let ui = crate::ui::start(ui_listener, registry(), clients, &resources.topic_arn, stop_rx.clone()).await?;
    let (mut others, mut replication) = (Vec::new(), None);
    if let Some(regions) = regions {
        let mut replicas = vec![replica(direct, beacon_local::setup::LOCAL_REGION, &resources)];
        for region in &regions[1..] {
            let other = start_region(opts, direct, endpoints, region, &stop_rx, &mut tasks).await?;
            replicas.push(replica(direct, region, &other.resources));
            others.push(other);
        }
        replication = Some(beacon_local::replication::Replication::start(
            replicas,
            beacon_local::replication::ReplicationConfig {
                delay: Duration::from_millis(opts.replication_ms),
                ..beacon_local::replication::ReplicationConfig::default()
            },
        ));
    }
    Ok(Running { resources, api_url: Some(api_url), ui: Some(ui), stop, tasks, others, replication, event_bus })
}

/// One Region's replica, as the replication stand-in reaches it (the
/// engines themselves: replication is AWS's, never faulted by `--faults`).
fn replica(direct: &LocalEndpoints, region: &str, resources: &Resources) -> beacon_local::replication::Replica {
    let clients = direct.clients_in(region);
    beacon_local::replication::Replica {
        region: region.to_owned(),
        dynamodb: clients.dynamodb,
        streams: clients.streams,
        table: resources.table.clone(),
        stream_arn: resources.stream_arn.clone(),
    }
}

/// A Region beyond the first: its replica, topic and queues, and its own
/// fan-out, refresh pages, sweeper and catalog API (on a free port), as
/// the template deploys in each Region. Registrars and the page run in
/// the first Region only.
async fn start_region(
    opts: &DevOpts,
    direct: &LocalEndpoints,
    endpoints: &LocalEndpoints,
    region: &str,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<OtherRegion> {
    let clients = endpoints.clients_in(region);
    let names = Names {
        topic: opts.topic.clone(),
        on_failure_queue: Some(format!("{}-on-failure", opts.table)),
        ..Names::for_table(&opts.table)
    };
    let resources = pipeline::create(&direct.clients_in(region), &names)
        .await
        .with_context(|| format!("creating {region}'s replica, topic and queues"))?;
    let registry = || beacon_aws::DynamoTable::new(clients.dynamodb.clone(), &opts.table).in_region(region);
    start_pipeline(opts, &clients, &resources, registry, None, stop_rx, tasks)?;
    let api_listener = TcpListener::bind(("127.0.0.1", 0)).await.context("a port for a Region's catalog API")?;
    let api_url = serve_api(opts, api_listener, registry(), stop_rx, tasks)?;
    Ok(OtherRegion { region: region.to_owned(), resources, api_url })
}

/// One Region's pipeline on `clients`: the fan-out behind the stream's
/// event source mapping (checkpointed in the state directory), the
/// refresh pages' queue mapping, and the sweeper's schedule.
fn start_pipeline(
    opts: &DevOpts,
    clients: &Clients,
    resources: &Resources,
    registry: impl Fn() -> beacon_aws::DynamoTable,
    bus: Option<beacon_aws::EventBridgePublisher>,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<()> {
    let publisher =
        beacon_aws::ChangePublisher::new(beacon_aws::SnsPublisher::new(clients.sns.clone(), &resources.topic_arn));
    let publisher = match bus {
        Some(bus) => publisher.with_bus(bus),
        None => publisher,
    };
    let fanout = std::sync::Arc::new(FanOut::new(registry(), publisher, resources.refresh_queue(clients)));
    let handler = pipeline::fanout_handler(fanout.clone(), |seen| {
        tracing::debug!(records = seen.records, published = ?seen.report.published, failed = seen.report.failed, "batch");
    });
    let pages = pipeline::pages_handler(fanout, |seen| {
        tracing::debug!(
            pages = seen.report.pages,
            views_changed = seen.report.views_changed,
            failed = seen.report.failed,
            "refresh pages"
        );
    });
    let checkpoints = opts.state_dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints)?;
    let config = MappingConfig {
        checkpoint_path: Some(checkpoints.join(format!("{}.json", sanitize(&resources.stream_arn)))),
        ..MappingConfig::default()
    };
    let mapping = Mapping::start(clients, resources, config, handler);
    tasks.push(tokio::spawn(mapping.run_until(stop_rx.clone())));
    let pages = pipeline::start_pages(clients, resources, beacon_local::queue::QueueMappingConfig::default(), pages);
    tasks.push(tokio::spawn(pages.run_until(stop_rx.clone())));
    tasks.push(pipeline::spawn_sweeper(
        registry(),
        Duration::from_secs(opts.sweep_every_seconds.max(1)),
        Duration::from_millis(opts.sweep_interval_ms),
        stop_rx.clone(),
    ));
    Ok(())
}

/// API Gateway's stand-in on `listener`: the catalog handler, SigV4 on
/// writes. Returns its URL.
fn serve_api(
    opts: &DevOpts,
    listener: TcpListener,
    registry: beacon_aws::DynamoTable,
    stop_rx: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<String> {
    let url = format!("http://{}", listener.local_addr()?);
    tasks.push(tokio::spawn(beacon_local::api_server::serve(
        listener,
        registry,
        beacon_local::api_server::LocalCredentials::local(LOCAL_SECRET_KEY, &opts.scoped_service),
        beacon_local::api_server::ApiConfig { unscoped_writes: opts.unscoped_writes == "on" },
        stop_rx.clone(),
    )));
    Ok(url)
}

/// The janitor's schedule: every `period` (first after one period), it
/// removes what registry viewers left (`beacon_sweeper::janitor`).
fn spawn_janitor(
    subscribers: beacon_aws::janitor::SnsSqsSubscribers,
    topic_arn: String,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(period) => {}
            }
            match beacon_sweeper::janitor::run(&subscribers, &topic_arn, beacon_domain::clock::now_seconds()).await {
                Ok(r) if r != beacon_sweeper::JanitorReport::default() => {
                    tracing::info!(unsubscribed = r.unsubscribed, deleted = r.deleted, failed = r.failed, "janitor")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "janitor failed; the next run retries"),
            }
        }
    })
}

/// With `--faults`, the fault proxies in front of both engines and the
/// endpoints that reach the engines through them.
async fn faults(opts: &DevOpts, direct: &LocalEndpoints) -> Result<Option<(LocalEndpoints, JoinHandle<()>)>> {
    use beacon_local::proxy::{Fault, FaultPlan, FaultProxy, Matcher, Mix};
    let Some(percent) = opts.faults else { return Ok(None) };
    let rate = f64::from(percent) / 100.0;
    let plan = FaultPlan::new();
    let kinds =
        [Fault::Throttle, Fault::ServerError, Fault::Unavailable, Fault::ResetBefore, Fault::ResetAfter, Fault::Slow];
    let mut rates: Vec<(Fault, f64)> = kinds.iter().map(|f| (*f, rate)).collect();
    rates.push((Fault::Hang, rate / 10.0));
    plan.set_mix(Some(Mix { seed: opts.fault_seed, rates, only: Matcher::default() }));
    let dynamodb = FaultProxy::start(&direct.dynamodb, 0, plan.clone()).await.context("starting the fault proxy")?;
    let sns_sqs = FaultProxy::start(&direct.sns_sqs, 0, plan.clone()).await.context("starting the fault proxy")?;
    let through = LocalEndpoints { dynamodb: dynamodb.url.clone(), sns_sqs: sns_sqs.url.clone() };
    eprintln!(
        "beacon dev: fault proxies at {} (DynamoDB) and {} (SNS/SQS): {percent} % of requests per fault kind, seed {}",
        through.dynamodb, through.sns_sqs, opts.fault_seed
    );
    let report = tokio::spawn(async move {
        // Held here so the proxies live as long as the runner.
        let _proxies = (dynamodb, sns_sqs);
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            let counts = plan.counts();
            let total: usize = counts.values().sum();
            if total == last {
                continue;
            }
            last = total;
            let injected: Vec<String> =
                counts.iter().filter(|(f, _)| **f != Fault::Pass).map(|(f, n)| format!("{} {n}", f.name())).collect();
            eprintln!("beacon dev: faults injected so far, of {total} requests: {}", injected.join(", "));
        }
    });
    Ok(Some((through, report)))
}

/// Runs everything on `stack` until Ctrl-C or SIGTERM.
pub async fn serve(opts: &DevOpts, stack: &Stack) -> Result<()> {
    let faulted = faults(opts, &stack.endpoints).await?;
    let running = start(opts, &stack.endpoints, faulted.as_ref().map_or(&stack.endpoints, |(e, _)| e)).await?;
    let (table, topic_arn) = (&running.resources.table, &running.resources.topic_arn);
    let mut env = stack.endpoints.env_lines(table, topic_arn, running.api_url.as_deref(), &opts.scoped_service);
    // Every variable a Beacon binary reads, so the fan-out's and the
    // refresh function's binaries start against the local stack from
    // dev.env alone.
    env.push_str(&format!("export BEACON_REFRESH_QUEUE_URL={}\n", running.resources.refresh_url));
    if let Some(ui) = &running.ui {
        env.push_str(&format!("export BEACON_UI_URL=http://{}/\n", ui.addr));
    }
    if let Some((bus, source)) = &running.event_bus {
        env.push_str(&format!("export BEACON_EVENT_BUS_ARN={bus}\nexport BEACON_EVENT_SOURCE={source}\n"));
    }
    if !running.others.is_empty() {
        // The first Region's binaries key by their Region too; the others'
        // topics and APIs, for watching a write arrive there.
        env.push_str(&format!("export BEACON_REPLICA_REGION={}\n", beacon_local::setup::LOCAL_REGION));
        env.push_str(&format!("export BEACON_REGIONS={}\n", opts.regions.join(",")));
        for other in &running.others {
            let suffix = other.env_suffix();
            env.push_str(&format!("export BEACON_TOPIC_ARN_{suffix}={}\n", other.resources.topic_arn));
            env.push_str(&format!("export BEACON_API_URL_{suffix}={}\n", other.api_url));
        }
    }
    let env_path = opts.state_dir.join("dev.env");
    std::fs::write(opts.state_dir.join("dev.env.tmp"), &env)?;
    std::fs::rename(opts.state_dir.join("dev.env.tmp"), &env_path)?;
    std::fs::write(opts.state_dir.join("dev.pid"), std::process::id().to_string())?;
    eprintln!(
        "beacon dev: DynamoDB Local at {} (private namespace), SNS/SQS at {}, table {table}, topic {topic_arn}",
        stack.endpoints.dynamodb, stack.endpoints.sns_sqs
    );
    eprintln!("beacon dev: `source {}` points the AWS CLI, boto3 and beacon at it", env_path.display());
    if let Some(url) = &running.api_url {
        eprintln!(
            "beacon dev: the pipeline is running (stream poller at 4 polls/s per shard → fan-out → SNS; sweeper every {} s, each run sweeping every {} ms)",
            opts.sweep_every_seconds.max(1),
            opts.sweep_interval_ms
        );
        eprintln!("beacon dev: catalog API at {url}/catalog (writes need SigV4 with the local credentials)");
        if let Some(ui) = &running.ui {
            eprintln!("beacon dev: the registry page at http://{}/", ui.addr);
        }
        eprintln!(
            "beacon dev: BEACON_SCOPED_* keys may write only `{}` (POST /catalog/services/{}/register)",
            opts.scoped_service, opts.scoped_service
        );
    }
    if let Some((bus, source)) = &running.event_bus {
        eprintln!(
            "beacon dev: every event also goes on the EventBridge bus {bus} (source {source}, detail-type the kind); a rule with an SQS target receives them: `aws events put-rule --event-bus-name {} --name mine --event-pattern '{{\"source\":[\"{source}\"]}}'`",
            opts.table
        );
    }
    for other in &running.others {
        let suffix = other.env_suffix();
        eprintln!(
            "beacon dev: {} too, replicated {} ms behind (a test stand-in for global tables): its own fan-out, sweeper, topic {} and catalog API {}/catalog; watch a write arrive there with `AWS_REGION={} BEACON_REPLICA_REGION={} beacon watch --topic-arn $BEACON_TOPIC_ARN_{suffix}`",
            other.region, opts.replication_ms, other.resources.topic_arn, other.api_url, other.region, other.region,
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let demo = async {
        if opts.demo
            && let Err(e) = crate::demo::run(&stack.endpoints, table, topic_arn).await
        {
            eprintln!("beacon dev: the demo failed: {e:#}");
        }
        std::future::pending::<()>().await
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        _ = demo => {}
    }
    eprintln!("\nbeacon dev: stopping");
    let _ = running.stop.send(true);
    if let Some(replication) = running.replication {
        let _ = tokio::time::timeout(Duration::from_secs(10), replication.stop()).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), futures::future::join_all(running.tasks)).await;
    if let Some((_, report)) = faulted {
        report.abort();
    }
    if let Some(ui) = running.ui {
        let _ = tokio::time::timeout(Duration::from_secs(10), ui.finish()).await;
    }
    Ok(())
}
