//! `beacon watch`: a temporary SQS queue subscribed to the change topic,
//! printing events as they arrive. The queue carries its owner and a lease
//! kept ahead while watch runs; on exit (also on Ctrl-C) the lease is ended
//! and the sweeper's janitor removes the subscription and the queue (a
//! viewer may not unsubscribe; docs/architecture.md, "The janitor").

use anyhow::{Context, Result};
use beacon_aws::viewer::{EventQueue, ViewerLease};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::context::Common;

/// Print change events live as they arrive (a temporary queue subscribed
/// to the topic; handed to the sweeper's janitor on exit).
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Only these services (repeatable).
    #[arg(long)]
    service: Vec<String>,
    /// Only these kinds: registered, updated, status_changed, deregistered,
    /// expired, invalid, resolved (repeatable).
    #[arg(long, value_parser = ["registered", "updated", "status_changed", "deregistered", "expired", "invalid", "resolved"])]
    kind: Vec<String>,
    /// Only resolved events of these consumers (repeatable).
    #[arg(long)]
    consumer: Vec<String>,
    /// Stop after this many events (default: until Ctrl-C).
    #[arg(long)]
    count: Option<usize>,
    #[command(flatten)]
    common: Common,
}

/// The SNS filter policy the flags describe, if any.
fn filter_policy(args: &WatchArgs) -> Option<String> {
    let mut policy = Map::new();
    for (name, values) in [("service", &args.service), ("kind", &args.kind), ("consumer", &args.consumer)] {
        if !values.is_empty() {
            policy.insert(name.into(), json!(values));
        }
    }
    (!policy.is_empty()).then(|| Value::Object(policy).to_string())
}

/// Runs `watch`.
pub async fn run(args: WatchArgs) -> Result<()> {
    for s in args.service.iter().chain(&args.consumer) {
        beacon_domain::registration::validate_name("service", s)?;
    }
    let topic = args.common.topic_arn()?.to_owned();
    let config = beacon_aws::config::sdk_config().await;
    let owner =
        beacon_aws::janitor::caller_user_id(&config).await.context("asking STS who this is (GetCallerIdentity)")?;
    let lease = ViewerLease::from_env(owner);
    let name = format!("beacon-watch-{}-{}", std::process::id(), crate::context::now());
    let policy = filter_policy(&args);
    let queue = EventQueue::viewer(
        &beacon_aws::viewer::Clients::for_topic(&config, &topic),
        &topic,
        &name,
        policy.as_deref(),
        &lease,
    )
    .await
    .context("creating the watch queue")?;
    eprintln!(
        "watching {topic}{} (Ctrl-C stops)",
        policy.as_deref().map(|p| format!(" with filter {p}")).unwrap_or_default()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut seen = 0usize;
    let keep_lease = queue.keep_lease(&lease);
    tokio::pin!(keep_lease);
    let result: Result<()> = async {
        loop {
            let receive = queue.receive(std::time::Duration::from_secs(5));
            let bodies = tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                kept = &mut keep_lease => return kept.context("keeping the watch queue"),
                out = receive => out.context("receiving from the watch queue")?,
            };
            for body in bodies {
                if args.common.json {
                    println!("{body}");
                } else {
                    println!("{}", describe(&serde_json::from_str(&body).unwrap_or(Value::String(body.clone()))));
                }
                seen += 1;
                if args.count.is_some_and(|c| seen >= c) {
                    return Ok(());
                }
            }
        }
    }
    .await;

    // Whatever happened above: the janitor takes the queue from here.
    let _ = queue.release().await;
    result
}

fn describe(e: &Value) -> String {
    let s = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
    match e["kind"].as_str() {
        Some("resolved") => format!("resolved       {} revision {}", s("consumer"), e["revision"]),
        Some("invalid") => format!("invalid        {} / {}: {}", s("pk"), s("sk"), s("reason")),
        Some(kind) => format!("{kind:<14} {} {} {} ({})", s("service"), s("version"), s("instance_id"), s("status")),
        None => e.to_string(),
    }
}
