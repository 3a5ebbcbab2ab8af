//! `beacon`: the command line. `main` only parses and dispatches; each
//! subcommand owns its arguments, and their doc comments are the help text.

use clap::{Parser, Subcommand};

mod demo;
mod dev;

/// Beacon: push-based service discovery for serverless systems on AWS.
#[derive(Debug, Parser)]
#[command(name = "beacon", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the local stack (DynamoDB Local, the SNS/SQS server) and the
    /// pipeline (stream poller + fan-out), with no AWS account.
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
        Command::Dev(args) => dev::run(args).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("beacon: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
