//! The catalog API against a fuzzer that reads its definition (issue 18):
//! schemathesis (PyPI, installed by `./scripts/bootstrap`) runs against
//! `beacon dev`'s catalog server (the same handler as the Lambda, SigV4 on
//! writes) from `infra/openapi.yaml` as rendered for the local stack. Its
//! checks: no server errors; status codes, content types and bodies as
//! defined; data the definition rejects is rejected (4xx), data it accepts
//! is accepted; undocumented methods get 405 with `Allow`; and, from the
//! definition's links (register → lookup → deregister → lookup), a
//! deregistered version's lookup is 404 (`tests/api/beacon_hooks.py`).
//!
//! Bounded: `BEACON_FUZZ_EXAMPLES` examples per operation and phase
//! (default 20) and `BEACON_FUZZ_SECONDS` for the whole run (default 35;
//! 150, then 70, then 50, until CI's 15-minute budget needed the time).
//! A longer run: `BEACON_FUZZ_EXAMPLES=2000 BEACON_FUZZ_SECONDS=3600 cargo
//! test -p beacon-tests --test api_fuzz -- --nocapture` with the stack from
//! `beacon dev up --no-pipeline` and its `dev.env` sourced.
//! `BEACON_SEED` replays a run.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::process::Command;

use beacon_aws::DynamoTable;
use beacon_catalog_api::ApiConfig;
use beacon_domain::ports::Registrations;
use beacon_local::pipeline::{self, Clients, Names};
use beacon_local::setup::LOCAL_SECRET_KEY;
use beacon_tests::api::LocalApi;
use beacon_tests::{sdk_config, unique};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fuzzer_finds_no_request_the_api_answers_against_its_definition() {
    let config = sdk_config().await;
    let clients = Clients::from_config(&config);
    let table = unique("fuzz");
    pipeline::create(&clients, &Names { on_failure_queue: None, ..Names::for_table(&table) }).await.unwrap();
    let registry = DynamoTable::new(clients.dynamodb.clone(), &table);
    let api = LocalApi::start(registry.clone(), LOCAL_SECRET_KEY).await;

    // The definition as the local stack deploys it: seed routes on, open reads.
    let dir = std::env::temp_dir().join(unique("fuzz"));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("openapi.json");
    let document = beacon_catalog_api::definition::rendered(ApiConfig::default(), false);
    std::fs::write(&schema, serde_json::to_vec_pretty(&document).unwrap()).unwrap();

    let examples = env_or("BEACON_FUZZ_EXAMPLES", 20);
    let seconds = env_or("BEACON_FUZZ_SECONDS", 35);
    let seed = env_or("BEACON_SEED", beacon_tests::now() as u64);
    eprintln!("fuzz: seed {seed} (BEACON_SEED={seed} replays), {examples} examples, at most {seconds} s");
    let report = dir.join("report.json");
    let checks = [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "positive_data_acceptance",
        "unsupported_method",
        "deregistered_stays_gone",
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new(root().join(".venv/bin/schemathesis"))
            .arg("--no-color")
            .arg("--config-file")
            .arg(root().join("tests/api/schemathesis.toml"))
            .arg("run")
            .arg(&schema)
            .args(["--url", &format!("http://{}", api.addr)])
            .args(["--checks", &checks.join(",")])
            .args(["--max-examples", &examples.to_string()])
            .args(["--max-time", &seconds.to_string()])
            .args(["--seed", &seed.to_string()])
            .args(["--request-timeout", "10"])
            .args(["--workers", "1"])
            .arg("--report-json-path")
            .arg(&report)
            .env("SCHEMATHESIS_HOOKS", "beacon_hooks")
            .env("PYTHONPATH", root().join("tests/api"))
            .output()
            .map(|o| (o, api))
    })
    .await
    .unwrap()
    .expect("schemathesis runs (./scripts/bootstrap installs it into .venv)");
    let (output, api) = output;
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "schemathesis found failures (seed {seed}); its report is above");

    // Whatever it sent, nothing unreadable was stored, and the server still
    // answers good requests.
    let mut next = None;
    loop {
        let page = registry.list(100, next.take()).await.unwrap();
        assert_eq!(page.invalid, 0, "the fuzzer's requests left an unreadable registration");
        next = page.next;
        if next.is_none() {
            break;
        }
    }
    let body = br#"{"service_version": "1.0.0", "endpoint_url": "https://after.example"}"#.to_vec();
    let (status, reply) = api.call("POST", "/catalog/services/after/register", body, Some(LOCAL_SECRET_KEY), &[]).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = api.call("GET", "/catalog/after/1.0.0", Vec::new(), None, &[]).await;
    assert_eq!(status, 200, "{reply}");
}
