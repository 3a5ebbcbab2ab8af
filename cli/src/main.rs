//! `beacon`: the command line. `main` only parses and dispatches; each
//! subcommand owns its arguments, and their doc comments are the help text.
//!
//! Exit codes: 0 success, 1 failure (the message says what to do), 2 bad
//! arguments (clap's, or a value the domain rules refuse), 3 not found (nothing resolves, no resolved item).

use clap::{Parser, Subcommand};

mod commands;
mod context;
mod demo;
mod dev;
mod ui;

use commands::{deregister, drain, get, list, needs, openapi, register, resolve, upgrade, watch};

/// Beacon: push-based service discovery for serverless systems on AWS.
///
/// Works against AWS (the standard profile, region and credentials chain)
/// and against the local stack (`source .beacon/dev.env`).
#[derive(Debug, Parser)]
#[command(name = "beacon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Register(register::RegisterArgs),
    /// Deregister a service instance (publishes `deregistered`).
    Deregister(commands::InstanceArgs),
    /// Mark an instance draining: never chosen again, not reported missing.
    Drain(commands::InstanceArgs),
    List(list::ListArgs),
    Get(get::GetArgs),
    Needs(needs::NeedsArgs),
    Resolve(resolve::ResolveArgs),
    Watch(watch::WatchArgs),
    Ui(ui::UiArgs),
    Upgrade(upgrade::UpgradeArgs),
    Openapi(openapi::OpenapiArgs),
    /// Run the local stack (DynamoDB Local, the SNS/SQS server) and the
    /// pipeline (stream poller + fan-out + sweeper), with no AWS account.
    Dev(dev::DevArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BEACON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,beacon=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Command::Register(a) => register::run(a).await,
        Command::Deregister(a) => deregister::run(a).await,
        Command::Drain(a) => drain::run(a).await,
        Command::List(a) => list::run(a).await,
        Command::Get(a) => get::run(a).await,
        Command::Needs(a) => needs::run(a).await,
        Command::Resolve(a) => resolve::run(a).await,
        Command::Watch(a) => watch::run(a).await,
        Command::Ui(a) => ui::run(a).await,
        Command::Upgrade(a) => upgrade::run(a).await,
        Command::Openapi(a) => openapi::run(a),
        Command::Dev(a) => dev::run(a).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beacon: {e:#}");
            let bad_input = e.downcast_ref::<beacon_domain::ValidationError>().is_some()
                || e.downcast_ref::<beacon_domain::requirement::RequirementError>().is_some()
                || e.downcast_ref::<beacon_domain::version::VersionError>().is_some();
            let code = e.downcast_ref::<context::Exit>().map_or(if bad_input { 2 } else { 1 }, |x| x.code);
            std::process::ExitCode::from(code)
        }
    }
}
