//! The demo `beacon dev --demo` runs once the pipeline is up: the seed's
//! `helloworld` 1.0 registers, a consumer that needs it gets its resolved
//! item, a subscriber queue receives the events, then a status change and a
//! deregistration arrive. Everything printed is read back from the engines.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use beacon_aws::DynamoTable;
use beacon_aws::viewer::EventQueue;
use beacon_domain::ports::{InstanceKey, NeedsDeclarations, Registrations, ResolvedViews};
use beacon_domain::registration::DEFAULT_INSTANCE_ID;
use beacon_domain::view::{Needs, Outcome, ResolvedItem};
use beacon_domain::{Registration, Status, parse_needs};
use beacon_local::setup::LocalEndpoints;
use serde_json::Value;

const CONSUMER: &str = "hello-client";
/// The seed's endpoint shape (an API Gateway stage URL).
const ENDPOINT: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/dev";

struct Subscriber {
    queue: EventQueue,
}

impl Subscriber {
    async fn create(endpoints: &LocalEndpoints, topic_arn: &str) -> Result<Self> {
        let clients = beacon_aws::viewer::Clients { sqs: endpoints.sqs(), sns: endpoints.sns() };
        let queue = EventQueue::user(&clients, topic_arn, "beacon-demo-subscriber", None)
            .await
            .context("subscribing the demo queue")?;
        // Drain what an earlier demo left behind.
        let _ = queue.purge().await;
        Ok(Self { queue })
    }

    /// Prints events as they arrive until one of `kind` has; returns it.
    async fn wait_for(&self, kind: &str, since: Instant) -> Result<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let bodies = self.queue.receive(Duration::from_secs(1)).await?;
            let mut found = None;
            for body in bodies {
                let event: Value = serde_json::from_str(&body)?;
                print_event(&event, since.elapsed());
                if event["kind"] == kind && found.is_none() {
                    found = Some(event);
                }
            }
            if let Some(e) = found {
                return Ok(e);
            }
        }
        bail!("no `{kind}` event arrived within 30 s")
    }
}

fn print_event(e: &Value, after: Duration) {
    let ms = after.as_millis();
    match e["kind"].as_str().unwrap_or_default() {
        "resolved" => println!(
            "   ← resolved    consumer {} now at revision {}   (+{ms} ms)",
            e["consumer"].as_str().unwrap_or("?"),
            e["revision"]
        ),
        kind => println!(
            "   ← {kind:<11} {} {} {} ({})   record {}   (+{ms} ms)",
            e["service"].as_str().unwrap_or("?"),
            e["version"].as_str().unwrap_or("?"),
            e["instance_id"].as_str().unwrap_or("?"),
            e["status"].as_str().unwrap_or("?"),
            e["record_id"].as_str().unwrap_or("?"),
        ),
    }
}

fn describe(item: &ResolvedItem) -> String {
    let mut lines = Vec::new();
    for (service, view) in &item.services {
        for r in &view.requirements {
            let what = match &r.outcome {
                Outcome::Resolved(ok) => format!(
                    "{} → {}",
                    ok.version,
                    ok.endpoints.iter().map(|e| e.endpoint_url.as_str()).collect::<Vec<_>>().join(", ")
                ),
                Outcome::Unresolved(why) => format!("unresolved: {why}"),
            };
            lines.push(format!("{service} [{}]: {what}", r.requirement));
        }
    }
    format!("revision {}: {}", item.revision, lines.join("; "))
}

async fn wait_revision(registry: &DynamoTable, at_least: u64) -> Result<ResolvedItem> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(item) = registry.resolved(CONSUMER).await?
            && item.revision >= at_least
        {
            return Ok(item);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the resolved item of {CONSUMER} did not reach revision {at_least}")
}

/// Runs the demo.
pub async fn run(endpoints: &LocalEndpoints, table: &str, topic_arn: &str) -> Result<()> {
    let registry = DynamoTable::new(endpoints.dynamodb(), table);
    println!("\n== Beacon demo: push-based discovery on the local stack ==\n");
    println!("1. A subscriber: SQS queue beacon-demo-subscriber, subscribed to the change topic.");
    let subscriber = Subscriber::create(endpoints, topic_arn).await?;

    println!("2. Consumer `{CONSUMER}` declares what it needs: helloworld (item CONSUMER#{CONSUMER} / NEEDS).");
    let start = Instant::now();
    registry
        .put_needs(&Needs { consumer: CONSUMER.into(), needs: parse_needs("helloworld")? }, crate::context::now())
        .await?;
    subscriber.wait_for("resolved", start).await?;
    let item = wait_revision(&registry, 1).await?;
    println!("   → its resolved item: {}", describe(&item));

    println!("\n3. helloworld 1.0 registers, as the seed's registrar does (healthy, ttl 300 s).");
    let mut hello = Registration::new_at(
        "helloworld",
        "1.0",
        DEFAULT_INSTANCE_ID,
        ENDPOINT,
        Status::Healthy,
        300,
        crate::context::now(),
    )?;
    let start = Instant::now();
    registry.put(&hello).await?;
    subscriber.wait_for("registered", start).await?;
    let item = wait_revision(&registry, item.revision + 1).await?;
    println!("   → resolved item refreshed by the fan-out: {}", describe(&item));

    println!("\n4. A heartbeat (only expires_at moves): nothing is published.");
    registry.heartbeat(&InstanceKey::of(&hello), hello.ttl_seconds, crate::context::now() + 1).await?;

    println!("\n5. helloworld turns unhealthy.");
    hello.status = Status::Unhealthy;
    hello.updated_at = crate::context::now();
    let start = Instant::now();
    registry.put(&hello).await?;
    subscriber.wait_for("status_changed", start).await?;
    let item = wait_revision(&registry, item.revision + 1).await?;
    println!("   → resolved item: {}", describe(&item));

    println!("\n6. helloworld deregisters.");
    let start = Instant::now();
    registry.delete(&InstanceKey::of(&hello)).await?;
    subscriber.wait_for("deregistered", start).await?;
    let item = wait_revision(&registry, item.revision + 1).await?;
    println!("   → resolved item: {}", describe(&item));

    println!("\n== The stack keeps running. In another shell: ==");
    println!("   source .beacon/dev.env");
    println!("   aws dynamodb scan --table-name $BEACON_TABLE --endpoint-url $AWS_ENDPOINT_URL_DYNAMODB");
    println!("   (README, \"Play with it\", has registration, subscription and boto3 examples.)");
    println!("Ctrl-C stops everything.\n");
    Ok(())
}
