//! `beacon watch`: a temporary SQS queue subscribed to the change topic,
//! printing events as they arrive, removed again on exit (also on Ctrl-C).

use anyhow::{Context, Result};
use beacon_local::setup::subscribe_queue;
use clap::Args;
use serde_json::{Map, Value, json};

use crate::context::Common;

/// Print change events live as they arrive (a temporary queue subscribed
/// to the topic; removed on exit).
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
        beacon::registration::validate_name("service", s)?;
    }
    let topic = args.common.topic_arn()?.to_owned();
    let config = beacon_aws::config::sdk_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let sns = aws_sdk_sns::Client::new(&config);
    let name = format!("beacon-watch-{}-{}", std::process::id(), crate::context::now());
    let policy = filter_policy(&args);
    let queue =
        subscribe_queue(&sqs, &sns, &topic, &name, policy.as_deref()).await.context("creating the watch queue")?;
    eprintln!(
        "watching {topic}{} (Ctrl-C stops)",
        policy.as_deref().map(|p| format!(" with filter {p}")).unwrap_or_default()
    );

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut seen = 0usize;
    let result: Result<()> = async {
        loop {
            let receive = beacon_aws::sqs::long_poll(
                sqs.receive_message().queue_url(&queue.url).max_number_of_messages(10),
                std::time::Duration::from_secs(5),
            )
            .send();
            let out = tokio::select! {
                _ = tokio::signal::ctrl_c() => return Ok(()),
                _ = term.recv() => return Ok(()),
                out = receive => out.context("receiving from the watch queue")?,
            };
            for m in out.messages.unwrap_or_default() {
                if let Some(h) = &m.receipt_handle {
                    let _ = sqs.delete_message().queue_url(&queue.url).receipt_handle(h).send().await;
                }
                let body = m.body.unwrap_or_default();
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

    // Clean up whatever happened above.
    let _ = queue.remove(&sqs, &sns).await;
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
