//! `beacon dev`: the local stack and the pipeline on one machine, split by
//! concern:
//!
//! - [`engines`] — DynamoDB Local and the moto SNS/SQS server: start, wait,
//!   stop;
//! - [`namespace`] — the private network namespace DynamoDB Local runs in,
//!   and the loopback forwarding into it;
//! - [`runner`] — the pipeline, schedules and catalog API on the engines;
//! - [`daemon`] — foreground, `up` (background) and `down`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};

mod daemon;
mod engines;
mod namespace;
mod runner;

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

#[derive(Debug, Args, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevOpts {
    /// Loopback port for DynamoDB and DynamoDB Streams (0 picks a free one).
    #[arg(long, default_value_t = 8000, env = "BEACON_DEV_DYNAMODB_PORT", global = true)]
    pub dynamodb_port: u16,
    /// Loopback port for SNS and SQS (0 picks a free one).
    #[arg(long, default_value_t = 4566, env = "BEACON_DEV_SNS_PORT", global = true)]
    pub sns_port: u16,
    /// The registry table's name.
    #[arg(long, default_value = "beacon-dev", global = true)]
    pub table: String,
    /// The change topic's name.
    #[arg(long, default_value = "beacon-changes", global = true)]
    pub topic: String,
    /// Where state lives: dev.env, the pid file, logs, checkpoints.
    #[arg(long, default_value = ".beacon", global = true)]
    pub state_dir: PathBuf,
    /// Start only the engines, table and topic: no poller, no fan-out (the
    /// integration tests run their own pipelines in-process).
    #[arg(long, global = true)]
    pub no_pipeline: bool,
    /// Also put every change event on an EventBridge bus (moto's), named
    /// after the table, as the template's `EventBusName` does in AWS:
    /// `detail-type` the kind, `source` `beacon.dev`. dev.env names it
    /// (`BEACON_EVENT_BUS_ARN`); a rule on it with an SQS target receives
    /// them. The first Region only, with `--regions`.
    #[arg(long, global = true)]
    pub event_bus: bool,
    /// Run the demo once the pipeline is up.
    #[arg(long, global = true)]
    pub demo: bool,
    /// Loopback port for the catalog API (0 picks a free one).
    #[arg(long, default_value_t = 8787, env = "BEACON_DEV_API_PORT", global = true)]
    pub api_port: u16,
    /// Run a registrar agent for this `service_properties.json` (repeatable),
    /// as its EventBridge schedule would.
    #[arg(long = "registrar", global = true)]
    pub registrars: Vec<PathBuf>,
    /// How often registrars run (the seed: every 5 minutes).
    #[arg(long, default_value_t = 300, global = true)]
    pub registrar_every_seconds: u64,
    /// Loopback port for the registry page (0 picks a free one).
    #[arg(long, default_value_t = 8788, env = "BEACON_DEV_UI_PORT", global = true)]
    pub ui_port: u16,
    /// The one service the second local principal (`BEACON_SCOPED_*` in
    /// dev.env) may write through the catalog API.
    #[arg(long, default_value = beacon_local::setup::DEFAULT_SCOPED_SERVICE, global = true)]
    pub scoped_service: String,
    /// Whether the seed's unscoped write routes (`POST /catalog/register`,
    /// `/catalog/deregister`) accept writes, as the template's
    /// `UnscopedWriteRoutes` parameter decides in AWS.
    #[arg(long, default_value = "on", value_parser = ["on", "off"], global = true)]
    pub unscoped_writes: String,
    /// How often the sweeper is invoked, and its janitor runs (AWS: every
    /// minute).
    #[arg(long, default_value_t = 60, global = true)]
    pub sweep_every_seconds: u64,
    /// Between two sweeps of the expiry index within an invocation (the
    /// template's `SweepIntervalMs`: a second).
    #[arg(long, default_value_t = 1000, global = true, value_parser = clap::value_parser!(u64).range(100..))]
    pub sweep_interval_ms: u64,
    /// Puts the fault proxy (beacon_local::proxy) between everything `dev`
    /// runs (fan-out, sweeper, catalog API, registrars, the page) and the
    /// engines: this percentage of requests, for each kind, gets a throttle
    /// in the service's wire format, a 500, a 503, a reset before or after
    /// the engine answered, or a slow answer. dev.env keeps pointing at the
    /// engines themselves, so your own commands are not faulted. Every 10 s
    /// a line says what was injected; nothing may be lost.
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=15), global = true)]
    pub faults: Option<u32>,
    /// The fault schedule's seed: the same seed replays the same schedule.
    #[arg(long, default_value_t = 1, global = true)]
    pub fault_seed: u64,
    /// Runs the registry in these Regions at once, as on a DynamoDB global
    /// table (e.g. us-east-1,eu-west-1; the first is the local stack's own,
    /// us-east-1): a replica, fan-out, sweeper, topic and catalog API per
    /// Region, joined by the replication stand-in (a test stand-in for
    /// global tables' replication). dev.env points at the first Region and
    /// names the others' topics and APIs.
    #[arg(long, value_delimiter = ',', value_parser = parse_region, global = true)]
    pub regions: Vec<String>,
    /// The replication stand-in's delay between Regions (AWS: usually
    /// within a second).
    #[arg(long, default_value_t = 1000, global = true)]
    pub replication_ms: u64,
}

/// A Region's name (`eu-west-1`).
fn parse_region(s: &str) -> std::result::Result<String, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let ok = parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
    if ok { Ok(s.to_owned()) } else { Err(format!("{s:?} is not a Region's name (like eu-west-1)")) }
}

impl DevOpts {
    /// The Regions to run, checked: none or one means one Region as before;
    /// otherwise at most five, distinct, the local stack's own first.
    pub fn multi_region(&self) -> Result<Option<&[String]>> {
        if self.regions.len() <= 1 {
            if let Some(r) = self.regions.first().filter(|r| *r != beacon_local::setup::LOCAL_REGION) {
                anyhow::bail!(
                    "--regions {r}: one Region is the local stack's own, {}",
                    beacon_local::setup::LOCAL_REGION
                );
            }
            return Ok(None);
        }
        if self.regions[0] != beacon_local::setup::LOCAL_REGION {
            anyhow::bail!(
                "--regions: the first Region is the local stack's own, {}, not {}",
                beacon_local::setup::LOCAL_REGION,
                self.regions[0]
            );
        }
        if self.regions.len() > 5 {
            anyhow::bail!("--regions: at most 5 Regions, not {}", self.regions.len());
        }
        let mut seen = std::collections::HashSet::new();
        if let Some(twice) = self.regions.iter().find(|r| !seen.insert(*r)) {
            anyhow::bail!("--regions: {twice} is named twice");
        }
        Ok(Some(&self.regions))
    }
}

#[derive(Debug, Subcommand)]
enum DevAction {
    /// Start everything in the background; return once it answers.
    Up,
    /// Stop every process `up` started.
    Down,
    /// (internal) What `up` starts in the background: the foreground runner
    /// with exactly `up`'s options, as JSON.
    #[command(hide = true)]
    Run {
        #[arg(long)]
        options: String,
    },
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
    // Bad --regions fail here, before anything starts.
    args.opts.multi_region()?;
    match args.action {
        None => daemon::foreground(args.opts).await,
        Some(DevAction::Up) => daemon::up(args.opts).await,
        Some(DevAction::Down) => daemon::down(&args.opts.state_dir).await,
        Some(DevAction::Run { options }) => {
            let opts: DevOpts = serde_json::from_str(&options).context("--options is not what `dev up` writes")?;
            daemon::foreground(opts).await
        }
        Some(DevAction::NsChild { socket, jar_dir }) => namespace::ns_child(&socket, &jar_dir).await,
    }
}
