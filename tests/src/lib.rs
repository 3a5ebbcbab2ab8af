#![allow(missing_debug_implementations)] // test harness types hold clients and closures
//! The integration-test harness: each test gets its own table, stream,
//! topic and in-process pipeline (the local event source mapping driving the
//! real fan-out handler) on the shared local engines that `./scripts/test`
//! starts. Nothing here is a mock: the engines are DynamoDB Local and the
//! moto SNS/SQS server.

pub mod api;
pub mod bench;
pub mod extensions_api;
pub mod faults;
pub mod plot;
pub mod regions;
pub mod stack;
pub mod wire;

mod options;
mod pipeline;
mod queue;

pub use options::Options;
pub use pipeline::TestPipeline;
pub use queue::Queue;

use std::sync::atomic::{AtomicU64, Ordering};

use beacon_aws::DynamoTable;
use serde_json::Value;

/// The local stack's SDK config, from the standard variables that
/// `.beacon/test/dev.env` exports, with the retry and timeout policy every
/// Beacon binary uses. Panics with what to run when absent.
pub async fn sdk_config() -> aws_config::SdkConfig {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "the local stack is not running: run the suite with ./scripts/test"
    );
    beacon_aws::config::sdk_config().await
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A name no other test (or earlier run against the same engines) uses.
pub fn unique(prefix: &str) -> String {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), UNIQUE.fetch_add(1, Ordering::Relaxed))
}

/// Epoch seconds now.
pub fn now() -> i64 {
    beacon_domain::clock::now_seconds()
}

/// Writes `n` healthy instances (`i0`, `i1`, …) spread over `services`
/// services (`s0`, `s1`, …), 16 writes in flight: the load the benchmarks
/// put on a table.
pub async fn put_instances(catalog: &DynamoTable, n: usize, services: usize) {
    use beacon_domain::ports::Registrations as _;
    use futures::StreamExt as _;
    futures::stream::iter(0..n)
        .map(|i| async move {
            let service = format!("s{}", i % services);
            let r = beacon_domain::Registration::new_at(
                &service,
                "1.0.0",
                &format!("i{i}"),
                "https://x.example",
                beacon_domain::Status::Healthy,
                3600,
                now(),
            )
            .expect("a valid registration");
            catalog.put(&r).await.expect("writing a registration");
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

/// Validates an event against the schema for its kind; returns the errors.
pub fn schema_errors(event: &Value) -> Vec<String> {
    let kind = event["kind"].as_str().unwrap_or_default();
    let name = match kind {
        "invalid" => "invalid",
        "resolved" => "resolved",
        _ => "change",
    };
    errors_against(name, event)
}

/// Validates a document against `events/schema/<name>.schema.json`.
pub fn errors_against(name: &str, event: &Value) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../events/schema/{name}.schema.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema file")).expect("schema JSON");
    let validator = jsonschema::validator_for(&schema).expect("compiling the schema");
    validator.iter_errors(event).map(|e| format!("{e} at {}", e.instance_path())).collect()
}

/// Events of one kind.
pub fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}
