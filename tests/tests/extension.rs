//! The extension binary against the Extensions API stand-in and DynamoDB
//! Local (with the pipeline running, so resolved items are real).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use beacon_domain::ports::{NeedsDeclarations, Registrations};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use beacon_domain::{Registration, Status};
use beacon_local::proxy::{Fault, Matcher, Mix};
use beacon_tests::extensions_api::ExtensionsApi;
use beacon_tests::faults::Outage;
use beacon_tests::wire::Wire;
use beacon_tests::{TestPipeline, now, unique};

fn extension_binary() -> PathBuf {
    // target/debug/deps/extension-… → target/debug/beacon-extension
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("beacon-extension");
    assert!(bin.exists(), "{} is not built: run cargo build --workspace", bin.display());
    bin
}

/// A loopback port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One request to the extension's endpoint: (status, revision header, JSON).
fn get(port: u16, method: &str, path: &str) -> std::io::Result<(u16, Option<String>, serde_json::Value)> {
    let addr = format!("127.0.0.1:{port}");
    let reply = beacon_tests::api::exchange(&addr, method, path, &[("host".into(), addr.clone())], b"")?;
    Ok((reply.status, reply.header("x-beacon-revision").map(str::to_owned), reply.json()))
}

fn spawn(
    api: &ExtensionsApi,
    table: &str,
    needs: &str,
    file: &PathBuf,
    log: &PathBuf,
    dynamodb: &str,
    http_port: u16,
) -> Child {
    Command::new(extension_binary())
        .env("BEACON_HTTP_PORT", http_port.to_string())
        .env("AWS_LAMBDA_RUNTIME_API", &api.addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "orders-web")
        .env("AWS_LAMBDA_LOG_LEVEL", "debug")
        .env("NEEDED_SERVICES", needs)
        .env("BEACON_TABLE", table)
        .env("BEACON_SERVICES_FILE", file)
        .env("BEACON_CHECK_INTERVAL_MS", "300")
        .env("BEACON_INIT_WAIT_MS", "10000")
        .env("AWS_ENDPOINT_URL_DYNAMODB", dynamodb)
        .stdout(Stdio::from(std::fs::File::create(log).unwrap()))
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn version_in(file: &PathBuf, service: &str) -> Option<String> {
    beacon_client::read(file).unwrap().resolved(service).and_then(|e| e.version.clone())
}

fn checks(log: &PathBuf) -> usize {
    std::fs::read_to_string(log).unwrap_or_default().matches("registry check").count()
}

fn reg(version: &str) -> Registration {
    Registration::new_at(
        "orders",
        version,
        "i-1",
        &format!("https://orders-{version}.example"),
        Status::Healthy,
        600,
        now(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_file_is_there_before_the_first_invoke_follows_changes_and_survives_an_outage() {
    let p = TestPipeline::start("ext").await;
    p.registry.put(&reg("1.0.0")).await.unwrap();
    let dir = std::env::temp_dir().join(unique("ext"));
    let (file, log) = (dir.join("services.json"), dir.join("ext.log"));
    std::fs::create_dir_all(&dir).unwrap();
    let real = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let proxy = Outage::start(&real).await;
    let api = ExtensionsApi::start().await;
    let port = free_port();
    let mut child = spawn(&api, &p.table, "orders,payments==1.2.0", &file, &log, &proxy.url(), port);

    // Init: registered under its executable's name, file written before the
    // first INVOKE (Lambda invokes only after every extension calls next).
    api.wait_for_next_call(1, Duration::from_secs(30)).await;
    let (name, events) = api.registered().await.unwrap();
    assert_eq!((name.as_str(), events), ("beacon-extension", vec!["INVOKE".to_string(), "SHUTDOWN".to_string()]));
    let first = beacon_client::read(&file).expect("the file exists before the first INVOKE");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let errors = beacon_tests::errors_against("services-file", &json);
    assert!(errors.is_empty(), "the file does not match its schema: {errors:?}");
    assert_eq!(version_in(&file, "orders").as_deref(), Some("1.0.0"));
    assert_eq!(first.services["payments"][0].reason.as_deref(), Some("no_such_service"));
    assert_eq!(p.registry.needs("orders-web").await.unwrap().unwrap(), ["orders", "payments==1.2.0"], "needs declared");
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The same view on loopback, before the first INVOKE.
    let (status, revision, served) = get(port, "GET", "/services").unwrap();
    assert_eq!(status, 200);
    assert_eq!(served, json, "the endpoint and the file differ");
    assert_eq!(revision, Some(first.revision.to_string()));
    let (status, _, orders) = get(port, "GET", "/services/orders").unwrap();
    assert_eq!((status, orders["entries"][0]["version"].as_str()), (200, Some("1.0.0")));
    assert_eq!(get(port, "GET", "/services/billing").unwrap().0, 404, "a service the function did not declare");
    assert_eq!(get(port, "DELETE", "/services").unwrap().0, 405);
    assert_eq!(get(port, "GET", &format!("/{}", "x".repeat(3000))).unwrap().0, 414);

    // A change lands; INVOKEs pick it up. (How often they read the registry
    // — at most once per interval, never a rewrite for an unchanged
    // revision — is decided on a paused clock in
    // functions/extension/tests/watcher.rs.)
    p.registry.put(&reg("2.0.0")).await.unwrap();
    TestPipeline::eventually(Duration::from_secs(20), "the file to follow the change", || async {
        api.invoke().await;
        version_in(&file, "orders").as_deref() == Some("2.0.0")
    })
    .await;
    let checks_after_change = checks(&log);
    assert!(checks_after_change >= 1, "no registry check was logged");
    let (_, _, served) = get(port, "GET", "/services/orders").unwrap();
    assert_eq!(served["entries"][0]["version"], "2.0.0", "the endpoint follows the change with the file");

    // The registry goes away: the last file stays, whole; one log line.
    proxy.stop();
    p.registry.put(&reg("3.0.0")).await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(350)).await;
        api.invoke().await;
    }
    assert_eq!(version_in(&file, "orders").as_deref(), Some("2.0.0"), "the old file must stay intact");
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.matches("registry unreachable").count(), 1, "log once per outage:\n{text}");
    let (status, _, served) = get(port, "GET", "/services/orders").unwrap();
    assert_eq!(
        (status, served["entries"][0]["version"].as_str()),
        (200, Some("2.0.0")),
        "the last good view is served"
    );

    api.shutdown().await;
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "the extension did not exit on SHUTDOWN");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    assert!(get(port, "GET", "/services").is_err(), "the listener outlived SHUTDOWN");
    let _ = std::fs::remove_dir_all(dir);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_needed_services_is_an_init_error_naming_the_part() {
    let p = TestPipeline::start("ext-bad").await;
    let dir = std::env::temp_dir().join(unique("ext-bad"));
    std::fs::create_dir_all(&dir).unwrap();
    let (file, log) = (dir.join("services.json"), dir.join("ext.log"));
    let api = ExtensionsApi::start().await;
    let real = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let mut child = spawn(&api, &p.table, "orders,payments@1.2", &file, &log, &real, free_port());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "the extension must fail init");
    let errors = api.init_errors().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "Extension.ConfigInvalid");
    let message = errors[0].1["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("NEEDED_SERVICES") && message.contains("payments@1.2"), "{message}");
    assert_eq!(api.next_calls().await, 0, "it went on after a bad config");
    assert!(!file.exists());
    let _ = std::fs::remove_dir_all(dir);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_accounts_function_names_the_registry_by_arn_and_a_bad_arn_is_an_init_error() {
    // A consumer in another account of the Organization must name the table
    // by ARN (DynamoDB resolves a bare name in the caller's own account).
    // DynamoDB Local takes the ARN and ignores its account, so this proves
    // the extension passes the ARN through and resolves from it; that AWS
    // lets the call across accounts is the simulator's part
    // (tests/tests/iam/organization.rs).
    let p = TestPipeline::start("ext-arn").await;
    p.registry.put(&reg("2.0.0")).await.unwrap();
    let dir = std::env::temp_dir().join(unique("ext-arn"));
    std::fs::create_dir_all(&dir).unwrap();
    let real = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap();
    let region = std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into());
    let arn = format!("arn:aws:dynamodb:{region}:222222222222:table/{}", p.table);

    let (file, log) = (dir.join("services.json"), dir.join("ext.log"));
    let api = ExtensionsApi::start().await;
    let mut child = spawn(&api, &arn, "orders", &file, &log, &real, free_port());
    api.wait_for_next_call(1, Duration::from_secs(30)).await;
    assert_eq!(version_in(&file, "orders").as_deref(), Some("2.0.0"), "resolved through the ARN");
    assert_eq!(p.registry.needs("orders-web").await.unwrap().unwrap(), ["orders"], "needs declared through the ARN");
    let _ = child.kill();
    let _ = child.wait();

    // An ARN of something else is refused at init, naming the variable and
    // what is wrong, before anything is read or written.
    let (file, log) = (dir.join("bad.json"), dir.join("bad.log"));
    let api = ExtensionsApi::start().await;
    let bad = format!("arn:aws:sqs:{region}:222222222222:{}", p.table);
    let mut child = spawn(&api, &bad, "orders", &file, &log, &real, free_port());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(!status.success(), "the extension must fail init");
    let errors = api.init_errors().await;
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].1["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("BEACON_TABLE") && message.contains("not of a DynamoDB table"), "{message}");
    assert_eq!(api.next_calls().await, 0, "it went on after a bad table");
    assert!(!file.exists());
    let _ = std::fs::remove_dir_all(dir);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_extension_binary_rides_out_wire_faults() {
    // The real extension binary, its only change the endpoint variable: its
    // registry reads go through the fault proxy. The first five calls meet
    // one of each retryable fault, the rest a seeded mix; the file must be
    // there before the first INVOKE and follow changes all the same.
    let seed = beacon_tests::faults::seed();
    let p = TestPipeline::start("ext-wire").await;
    p.registry.put(&reg("1.0.0")).await.unwrap();
    let dir = std::env::temp_dir().join(unique("ext-wire"));
    let (file, log) = (dir.join("services.json"), dir.join("ext.log"));
    std::fs::create_dir_all(&dir).unwrap();
    let wire = Wire::start().await;
    wire.plan.script(
        Matcher::default(),
        [Fault::Throttle, Fault::ServerError, Fault::Unavailable, Fault::ResetBefore, Fault::ResetAfter],
    );
    wire.plan.set_mix(Some(Mix {
        seed,
        rates: vec![
            (Fault::Throttle, 0.05),
            (Fault::ServerError, 0.05),
            (Fault::ResetAfter, 0.05),
            (Fault::Slow, 0.05),
        ],
        only: Matcher::default(),
    }));
    let api = ExtensionsApi::start().await;
    let mut child = spawn(&api, &p.table, "orders", &file, &log, &wire.dynamodb.url, free_port());
    api.wait_for_next_call(1, Duration::from_secs(30)).await;
    assert_eq!(version_in(&file, "orders").as_deref(), Some("1.0.0"), "the file before the first INVOKE (seed {seed})");
    assert_eq!(wire.plan.pending(), 0, "the scripted faults were all met (seed {seed})");
    for version in ["2.0.0", "3.0.0"] {
        p.registry.put(&reg(version)).await.unwrap();
        TestPipeline::eventually(Duration::from_secs(30), "the file to follow the change", || async {
            api.invoke().await;
            version_in(&file, "orders").as_deref() == Some(version)
        })
        .await;
    }
    let counts = wire.plan.counts();
    eprintln!("extension wire faults (seed {seed}): {counts:?}");
    api.shutdown().await;
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(10), "the extension did not exit on SHUTDOWN");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wire.stop().await;
    let _ = std::fs::remove_dir_all(dir);
    p.stop().await;
}
