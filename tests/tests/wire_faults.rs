//! Faults at the wire: the AWS SDK's own retry layer, exercised through the
//! fault proxy (`beacon_local::proxy`) with the retry and timeout policy
//! every Beacon binary uses (`beacon_aws::config`). Nothing here is a test
//! double: the proxy answers as AWS's services do when they fail (a
//! throttle in the service's own wire format, 5xx, a reset, a hang), and
//! the clients are the real ones, pointed at it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use beacon_aws::DynamoTable;
use beacon_aws::config::{ATTEMPT_TIMEOUT, INITIAL_BACKOFF, MAX_ATTEMPTS, MAX_BACKOFF};
use beacon_domain::ports::{InstanceKey, NeedsDeclarations, Registrations};
use beacon_domain::view::Needs;
use beacon_domain::{Registration, Status, parse_needs};
use beacon_local::pipeline::Clients;
use beacon_local::proxy::{Fault, Matcher, Service};
use beacon_local::setup::ensure_table;
use beacon_tests::wire::Wire;
use beacon_tests::{Options, TestPipeline, now, of_kind, sdk_config, unique};

fn registration(service: &str, id: &str) -> Registration {
    Registration::new_at(service, "1.0.0", id, &format!("https://{id}.example"), Status::Healthy, 600, now()).unwrap()
}

/// A table of its own, and a registry on it whose every call goes through
/// the proxy; plus a direct one to look at the table without faults.
async fn registry_through(wire: &Wire) -> (DynamoTable, DynamoTable) {
    let config = sdk_config().await;
    let direct = Clients::from_config(&config);
    let table = unique("wire");
    ensure_table(&direct.dynamodb, &table).await.expect("table");
    (DynamoTable::new(wire.clients(&config).dynamodb, &table), DynamoTable::new(direct.dynamodb, &table))
}

#[tokio::test]
async fn a_throttled_write_is_retried_by_the_sdk_with_backoff() {
    let wire = Wire::start().await;
    let (proxied, direct) = registry_through(&wire).await;
    let put = Matcher::op(Service::DynamoDb, "PutItem");

    // Eight writes, each throttled three times (the wire format AWS sends:
    // a 400 naming ProvisionedThroughputExceededException), each landing on
    // its fourth and last attempt.
    for i in 0..8 {
        wire.plan.script(put.clone(), [Fault::Throttle; 3]);
        proxied.put(&registration("throttled", &format!("i{i}"))).await.expect("the SDK's retries ride it out");
    }
    assert_eq!(wire.plan.pending(), 0);
    assert_eq!(direct.instances("throttled").await.unwrap().registrations.len(), 8, "every write landed once");

    // The retries are the SDK's: one invocation id per write, its attempts
    // numbered 1..=4 in the `amz-sdk-request` header.
    let seen = wire.plan.seen(Service::DynamoDb, "PutItem");
    let mut calls: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for s in &seen {
        calls.entry(s.invocation.clone()).or_default().push(s.clone());
    }
    assert_eq!(calls.len(), 8, "one SDK call per write: {seen:?}");
    let (mut waited, mut most) = (Duration::ZERO, Duration::ZERO);
    for attempts in calls.values() {
        let numbers: Vec<u32> = attempts.iter().map(|s| s.attempt).collect();
        assert_eq!(numbers, (1..=MAX_ATTEMPTS).collect::<Vec<_>>());
        let faults: Vec<Fault> = attempts.iter().map(|s| s.fault).collect();
        assert_eq!(faults, [Fault::Throttle, Fault::Throttle, Fault::Throttle, Fault::Pass]);
        // With backoff: the SDK waits a random time (full jitter) up to
        // base × 2ⁿ before retry n + 1. Each gap is under its cap (plus
        // the request's own time); together they are far from zero (their
        // expected sum is half the caps'; 24 uniform draws summing under a
        // tenth of their maximum does not happen by chance).
        for (n, pair) in attempts.windows(2).enumerate() {
            let gap = pair[1].at - pair[0].at;
            let cap = (INITIAL_BACKOFF * 2u32.pow(n as u32)).min(MAX_BACKOFF);
            assert!(gap <= cap + Duration::from_millis(250), "retry {} after {gap:?}, cap {cap:?}", n + 1);
            waited += gap;
            most += cap;
        }
    }
    assert!(waited >= most / 10, "the retries waited {waited:?} in all, of at most {most:?}: no backoff");

    // Past the attempts, the error is the caller's: retryable, and nothing
    // was written.
    wire.plan.script(put, [Fault::Throttle; MAX_ATTEMPTS as usize]);
    let err = proxied.put(&registration("throttled", "late")).await.expect_err("four throttles exhaust the attempts");
    assert!(err.retryable, "a throttle stays retryable for the caller's retrier: {err}");
    assert!(err.to_string().contains("ProvisionedThroughputExceededException"), "{err}");
    assert_eq!(direct.instances("throttled").await.unwrap().registrations.len(), 8);
    wire.stop().await;
}

#[tokio::test]
async fn a_non_retryable_error_is_not_retried() {
    let wire = Wire::start().await;
    let (proxied, direct) = registry_through(&wire).await;
    wire.plan.script(Matcher::op(Service::DynamoDb, "PutItem"), [Fault::Denied]);
    let err = proxied.put(&registration("denied", "i0")).await.expect_err("access denied is final");
    assert!(!err.retryable, "a refusal is not retryable: {err}");
    assert!(err.to_string().contains("AccessDeniedException"), "the error names the refusal: {err}");
    let attempts = wire.plan.seen(Service::DynamoDb, "PutItem");
    assert_eq!(attempts.len(), 1, "one attempt, no retry: {attempts:?}");
    assert!(direct.instances("denied").await.unwrap().registrations.is_empty(), "nothing was written");
    wire.stop().await;
}

#[tokio::test]
async fn a_hung_request_is_cut_off_by_the_attempt_timeout_and_retried() {
    let wire = Wire::start().await;
    let (proxied, direct) = registry_through(&wire).await;
    direct.put(&registration("hung", "i0")).await.unwrap();

    // A read that hangs: the attempt timeout cuts it off, the retry answers.
    wire.plan.script(Matcher::op(Service::DynamoDb, "Query"), [Fault::Hang]);
    let started = Instant::now();
    let found = proxied.instances("hung").await.expect("the retry answers");
    let took = started.elapsed();
    assert_eq!(found.registrations.len(), 1);
    assert!(took >= ATTEMPT_TIMEOUT, "the hung attempt was waited for until the timeout: {took:?}");
    assert!(took < ATTEMPT_TIMEOUT + Duration::from_secs(3), "and no longer: {took:?}");
    let attempts: Vec<(u32, Fault)> =
        wire.plan.seen(Service::DynamoDb, "Query").iter().map(|s| (s.attempt, s.fault)).collect();
    assert_eq!(attempts, [(1, Fault::Hang), (2, Fault::Pass)]);

    // A write that hangs lands twice (the hung one late, after the retry):
    // a heartbeat is idempotent, so the item is the same either way.
    let key = InstanceKey::new("hung", "1.0.0", "i0");
    wire.plan.script(Matcher::op(Service::DynamoDb, "UpdateItem"), [Fault::Hang]);
    let at = now();
    proxied.heartbeat(&key, 900, at).await.expect("the retry lands");
    tokio::time::sleep(Duration::from_secs(2)).await; // the hung attempt lands too
    let stored = direct.instances("hung").await.unwrap();
    assert_eq!(stored.registrations.len(), 1);
    assert_eq!(stored.registrations[0].expires_at, at + 900);
    let updates: Vec<Fault> = wire.plan.seen(Service::DynamoDb, "UpdateItem").iter().map(|s| s.fault).collect();
    assert_eq!(updates, [Fault::Hang, Fault::Pass]);
    wire.stop().await;
}

#[tokio::test]
async fn a_publish_reset_after_sns_accepted_it_is_a_duplicate_under_the_same_id_never_a_loss() {
    let wire = Wire::start().await;
    let config = sdk_config().await;
    let p = TestPipeline::start_with("wire-publish", Options::new().fanout_clients(wire.clients(&config))).await;
    let q = p.subscribe(None).await;
    // SNS takes the batch; the connection is reset before its answer is
    // read. The SDK cannot know the publish happened, and retries it.
    wire.plan.script(Matcher::op(Service::Sns, "PublishBatch"), [Fault::ResetAfter]);
    p.registry.put(&registration("reset", "i0")).await.unwrap();
    let events = q.receive_until(Duration::from_secs(30), |e| of_kind(e, "registered").len() >= 2).await;
    let registered = of_kind(&events, "registered");
    assert_eq!(registered.len(), 2, "published twice (the reset attempt and its retry): {events:?}");
    assert_eq!(registered[0]["event_id"], registered[1]["event_id"], "under one id");
    assert_eq!(registered[0], registered[1], "the same document");
    let publishes: Vec<(u32, Fault)> =
        wire.plan.seen(Service::Sns, "PublishBatch").iter().map(|s| (s.attempt, s.fault)).collect();
    assert_eq!(publishes[..2], [(1, Fault::ResetAfter), (2, Fault::Pass)], "the SDK retried it: {publishes:?}");
    assert!(p.on_failure.receive_once().await.is_empty(), "nothing went to the on-failure queue");
    p.stop().await;
    wire.stop().await;
}

#[tokio::test]
async fn the_fan_out_loses_nothing_under_random_wire_faults() {
    // Every retryable fault, on every call the fan-out makes (DynamoDB,
    // SNS, SQS), on a seeded schedule; hangs are rarer because each costs
    // an attempt timeout.
    let seed = beacon_tests::faults::seed();
    let wire = Wire::start().await;
    let config = sdk_config().await;
    let p = TestPipeline::start_with("wire-random", Options::new().fanout_clients(wire.clients(&config))).await;
    let q = p.subscribe(None).await;
    let mix = beacon_local::proxy::Mix {
        seed,
        rates: vec![
            (Fault::Throttle, 0.08),
            (Fault::ServerError, 0.05),
            (Fault::Unavailable, 0.05),
            (Fault::ResetBefore, 0.05),
            (Fault::ResetAfter, 0.05),
            (Fault::Slow, 0.04),
            (Fault::Hang, 0.005),
        ],
        only: Matcher::default(),
    };
    wire.plan.set_mix(Some(mix));
    // Three consumers need every service, so each change also refreshes
    // views (reads, claims, view writes, `resolved` events).
    let mut declared = BTreeMap::new();
    for c in 0..3 {
        let needs = Needs { consumer: format!("c{c}"), needs: parse_needs("s0, s1, s2, s3").unwrap() };
        p.registry.put_needs(&needs, now()).await.unwrap();
        declared.insert(needs.consumer.clone(), needs);
    }
    // In waves, so the changes arrive in many batches, not a few.
    let n = 40;
    for i in 0..n {
        p.registry.put(&registration(&format!("s{}", i % 4), &format!("i{i}"))).await.unwrap();
        if i % 4 == 3 {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let events = q
        .receive_until(Duration::from_secs(120), |e| {
            let ids: std::collections::BTreeSet<_> =
                of_kind(e, "registered").iter().map(|e| e["instance_id"].as_str().map(str::to_owned)).collect();
            ids.len() >= n
        })
        .await;
    TestPipeline::eventually(Duration::from_secs(60), "every view converged", || async {
        p.first_difference(&declared).await.is_none()
    })
    .await;
    wire.plan.set_mix(None);
    let mut by_id: BTreeMap<String, Vec<&serde_json::Value>> = BTreeMap::new();
    for e in of_kind(&events, "registered") {
        by_id.entry(e["event_id"].as_str().unwrap().to_owned()).or_default().push(e);
    }
    let instances: std::collections::BTreeSet<_> =
        by_id.values().map(|copies| copies[0]["instance_id"].as_str().map(str::to_owned)).collect();
    assert_eq!(instances.len(), n, "every change published (seed {seed})");
    for copies in by_id.values() {
        assert!(copies.iter().all(|c| c == &copies[0]), "a duplicate is the same document (seed {seed})");
    }
    let counts = wire.plan.counts();
    eprintln!("wire faults (seed {seed}): {counts:?}");
    for kind in [Fault::Throttle, Fault::ServerError, Fault::Unavailable, Fault::ResetBefore, Fault::ResetAfter] {
        assert!(counts.get(&kind).is_some_and(|n| *n > 0), "no {} was injected (seed {seed}): {counts:?}", kind.name());
    }
    assert!(p.on_failure.receive_once().await.is_empty(), "nothing went to the on-failure queue (seed {seed})");
    p.stop().await;
    wire.stop().await;
}

/// A Lambda function in moto (through the AWS CLI, as the registrar's own
/// test makes them): what a registrar checks before it registers.
fn moto_function() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let endpoint = std::env::var("AWS_ENDPOINT_URL_SNS").unwrap();
    let dir = std::env::temp_dir().join(unique("wire-fn"));
    std::fs::create_dir_all(&dir).unwrap();
    let zip = dir.join("fn.zip");
    let made = std::process::Command::new(root.join(".venv/bin/python"))
        .args([
            "-c",
            "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1], 'w'); z.writestr('bootstrap', 'x'); z.close()",
        ])
        .arg(&zip)
        .status()
        .unwrap();
    assert!(made.success());
    let name = unique("wire-fn");
    let aws = |args: &[&str]| {
        std::process::Command::new(root.join(".venv/bin/aws"))
            .args(args)
            .args(["--endpoint-url", &endpoint, "--output", "text"])
            .output()
            .unwrap()
    };
    aws(&["iam", "create-role", "--role-name", "beacon-test", "--assume-role-policy-document", "{}"]);
    let made = aws(&[
        "lambda",
        "create-function",
        "--function-name",
        &name,
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--role",
        "arn:aws:iam::123456789012:role/beacon-test",
        "--zip-file",
        &format!("fileb://{}", zip.display()),
    ]);
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let _ = std::fs::remove_dir_all(dir);
    name
}

#[tokio::test]
async fn the_catalog_api_and_the_registrar_ride_out_wire_faults() {
    // The catalog API's handler and the registrar's run, each on a registry
    // whose every DynamoDB call meets the seeded mix. A request the SDK
    // could not carry through answers 503 (retryable); a client retrying it
    // gets its 200. Nothing else is acceptable: no 500, no lost write.
    let seed = beacon_tests::faults::seed();
    let wire = Wire::start().await;
    let (proxied, direct) = registry_through(&wire).await;
    wire.plan.set_mix(Some(beacon_local::proxy::Mix {
        seed,
        rates: vec![
            (Fault::Throttle, 0.1),
            (Fault::ServerError, 0.05),
            (Fault::Unavailable, 0.05),
            (Fault::ResetBefore, 0.05),
            (Fault::ResetAfter, 0.05),
            (Fault::Slow, 0.05),
        ],
        only: Matcher::default(),
    }));
    let config = beacon_catalog_api::ApiConfig::default();
    // The first request's call is throttled past its four attempts: the
    // API must answer 503, and the client's retry 200.
    let dynamodb = Matcher { service: Some(Service::DynamoDb), operations: Vec::new() };
    wire.plan.script(dynamodb, [Fault::Throttle; MAX_ATTEMPTS as usize]);
    let (mut statuses, n) = (BTreeMap::<u16, usize>::new(), 20);
    for i in 0..n {
        let request = beacon_catalog_api::ApiRequest {
            method: "POST".into(),
            path: "/catalog/services/api/register".into(),
            body: serde_json::json!({
                "service_version": "1.0.0", "instance_id": format!("i{i}"),
                "endpoint_url": format!("https://i{i}.example"), "ttl": 600,
            })
            .to_string()
            .into_bytes(),
            ..Default::default()
        };
        let status = loop {
            let (status, body) = beacon_catalog_api::handle(&proxied, config, &request, now()).await;
            *statuses.entry(status).or_default() += 1;
            assert!(matches!(status, 200 | 503), "only success or a retryable 503 (seed {seed}): {status} {body}");
            if status == 200 {
                break status;
            }
        };
        assert_eq!(status, 200);
    }
    assert_eq!(direct.instances("api").await.unwrap().registrations.len(), n, "every registration stored");
    assert!(statuses.get(&503).is_some_and(|k| *k >= 1), "the exhausted call answered 503: {statuses:?}");

    // The registrar's service: one Lambda function, in moto (its checks
    // are not what is faulted here; its registry writes are).
    let function = moto_function();
    let props: beacon_registrar::ServiceProperties = serde_json::from_value(serde_json::json!({
        "service_name": "registered", "service_version": "1.0", "endpoint_url": "https://registered.example",
        "lambda_functions": [function],
    }))
    .unwrap();
    let components = beacon_aws::components::AwsComponents::new(&sdk_config().await);
    for round in 0..10 {
        let outcome = loop {
            match beacon_registrar::run_once(&proxied, &components, &props, now() + round).await {
                Ok(outcome) => break outcome,
                // A run that fails decides nothing; the next schedule retries.
                Err(e) => eprintln!("registrar run failed (the next one retries): {e}"),
            }
        };
        assert_eq!(outcome, beacon_registrar::RunOutcome::Registered(Status::Healthy));
    }
    assert_eq!(direct.instances("registered").await.unwrap().registrations.len(), 1);
    wire.plan.set_mix(None);
    let counts = wire.plan.counts();
    eprintln!("catalog API statuses {statuses:?}; wire faults (seed {seed}): {counts:?}");
    assert!(counts.iter().any(|(f, n)| *f != Fault::Pass && *n > 0), "faults were injected: {counts:?}");
    wire.stop().await;
}

/// A pipeline whose events also go on an EventBridge bus (the stack's
/// `EventBusName`) through the fault proxy in front of moto's EventBridge,
/// and a rule on that bus sending the stack's source to an SQS queue, as a
/// user's rule would.
struct BusRig {
    wire: Wire,
    events_proxy: beacon_local::proxy::FaultProxy,
    p: TestPipeline,
    on_topic: beacon_tests::Queue,
    on_bus: beacon_tests::Queue,
    source: String,
}

impl BusRig {
    async fn start(name: &str) -> Self {
        use beacon_aws::{ChangePublisher, EventBridgePublisher};
        let wire = Wire::start().await;
        let config = sdk_config().await;
        let moto = std::env::var("AWS_ENDPOINT_URL_SNS").expect("the local stack's dev.env");
        let events_proxy = beacon_local::proxy::FaultProxy::start(&moto, 0, wire.plan.clone()).await.unwrap();
        let client = |url: &str| {
            aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(&config).endpoint_url(url).build(),
            )
        };
        let (direct, through) = (client(&moto), client(&events_proxy.url));
        let bus_name = unique("bus");
        let bus = direct.create_event_bus().name(&bus_name).send().await.unwrap().event_bus_arn.unwrap();
        let source = format!("beacon.{}", unique("stage"));
        let sqs = Clients::from_config(&config).sqs;
        let url = sqs.create_queue().queue_name(unique("bus-q")).send().await.unwrap().queue_url.unwrap();
        let arn_attribute = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
        let attributes = sqs.get_queue_attributes().queue_url(&url).attribute_names(arn_attribute.clone()).send();
        let arn = attributes.await.unwrap().attributes.unwrap()[&arn_attribute].clone();
        let pattern = serde_json::json!({ "source": [source] }).to_string();
        direct.put_rule().name("beacon-changes").event_bus_name(&bus_name).event_pattern(pattern).send().await.unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder().id("queue").arn(&arn).build().unwrap();
        direct.put_targets().rule("beacon-changes").event_bus_name(&bus_name).targets(target).send().await.unwrap();
        let on_bus = beacon_tests::Queue::at(url, arn, sqs);
        let src = source.clone();
        let p = TestPipeline::start_with(
            name,
            Options::new()
                .fanout_clients(wire.clients(&config))
                .publisher(move |sns| ChangePublisher::new(sns).with_bus(EventBridgePublisher::new(through, bus, src))),
        )
        .await;
        let on_topic = p.subscribe(None).await;
        Self { wire, events_proxy, p, on_topic, on_bus, source }
    }

    /// Registers `n` instances of `service`; returns what the topic and the
    /// bus delivered once each has every registration (or a minute passed).
    async fn register(&self, service: &str, n: usize) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
        for i in 0..n {
            self.p.registry.put(&registration(service, &format!("i{i}"))).await.unwrap();
        }
        let topic = self.on_topic.receive_until(Duration::from_secs(60), |e| registered_ids(e).len() == n).await;
        let bus = self
            .on_bus
            .receive_until(Duration::from_secs(60), |e| {
                registered_ids(&e.iter().map(|x| x["detail"].clone()).collect::<Vec<_>>()).len() == n
            })
            .await;
        (topic, bus)
    }

    async fn stop(self) {
        assert!(self.p.on_failure.receive_once().await.is_empty(), "nothing went to the on-failure queue");
        self.p.stop().await;
        self.events_proxy.stop().await;
        self.wire.stop().await;
    }
}

/// The instance ids of the `registered` events among `events`.
fn registered_ids(events: &[serde_json::Value]) -> std::collections::BTreeSet<String> {
    events.iter().filter(|e| e["kind"] == "registered").map(|e| e["instance_id"].as_str().unwrap().to_owned()).collect()
}

/// Change events on an EventBridge bus beside SNS. PutEvents is throttled
/// entry by entry (some entries refused, which the SDK does not retry),
/// the resend of those finds the bus unreachable for every attempt of the
/// call, then a call fails with a 500 and is reset after the bus took the
/// events: the fan-out's record retry puts them again, so every change
/// arrives on the bus, with `detail-type` its kind, `source` the stack's and
/// `detail` the very event SNS carries, each valid against the schema the
/// stack publishes, and nothing is lost on either side.
#[tokio::test]
async fn an_event_bus_beside_sns_gets_every_change_through_throttles_and_faults() {
    let rig = BusRig::start("wire-bus").await;
    let unreachable = vec![Fault::ResetBefore; MAX_ATTEMPTS as usize];
    let script: Vec<Fault> = [vec![Fault::Throttle], unreachable, vec![Fault::ServerError, Fault::ResetAfter]].concat();
    rig.wire.plan.script(Matcher::op(Service::Events, "PutEvents"), script.clone());
    let (topic, bus_events) = rig.register("bus", 3).await;
    assert_eq!(registered_ids(&topic).len(), 3, "SNS: {topic:?}");
    let details: Vec<serde_json::Value> = bus_events.iter().map(|e| e["detail"].clone()).collect();
    assert_eq!(registered_ids(&details).len(), 3, "every change reached the bus: {bus_events:?}");
    // The schema the stack publishes to the schema registry for them
    // (infra/template.yaml, with this test's source for the stage's).
    let template: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml"))
            .unwrap(),
    )
    .unwrap();
    let serde_yaml::Value::Tagged(content) = &template["Resources"]["ChangeEventSchema"]["Properties"]["Content"]
    else {
        panic!("ChangeEventSchema's Content is not a !Sub")
    };
    let schema: serde_json::Value =
        serde_json::from_str(&content.value.as_str().unwrap().replace("beacon.${Stage}", &rig.source)).unwrap();
    let schema = jsonschema::draft4::new(&schema).unwrap();
    for e in &bus_events {
        // moto's delivery leaves out the envelope's `account`, which
        // EventBridge always sets: put it back before checking the rest.
        let mut e = e.clone();
        e.as_object_mut().unwrap().entry("account").or_insert(serde_json::json!("000000000000"));
        let e = &e;
        let errors: Vec<String> = schema.iter_errors(e).map(|x| x.to_string()).collect();
        assert!(errors.is_empty(), "an event on the bus breaks the published schema: {errors:?}\n{e}");
        assert_eq!(e["source"].as_str(), Some(rig.source.as_str()), "{e}");
        assert_eq!(e["detail-type"], e["detail"]["kind"], "{e}");
        let same = topic.iter().find(|t| t["event_id"] == e["detail"]["event_id"]);
        assert_eq!(same, Some(&e["detail"]), "the bus carries the event SNS carries");
    }
    let puts: Vec<Fault> = rig.wire.plan.seen(Service::Events, "PutEvents").iter().map(|s| s.fault).collect();
    assert_eq!(puts[..script.len()], script[..], "{puts:?}");
    rig.stop().await;
}

/// A throttle of some entries costs no record retry: the publisher resends
/// just the refused entries, so the bus gets every event and SNS each
/// exactly once (a record retry would have published them all again).
#[tokio::test]
async fn entries_the_bus_throttled_are_resent_alone() {
    let rig = BusRig::start("wire-bus-resend").await;
    rig.wire.plan.script(Matcher::op(Service::Events, "PutEvents"), [Fault::Throttle, Fault::Throttle]);
    let (topic, bus_events) = rig.register("resend", 3).await;
    let details: Vec<serde_json::Value> = bus_events.iter().map(|e| e["detail"].clone()).collect();
    assert_eq!(registered_ids(&details).len(), 3, "every change reached the bus: {bus_events:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut topic = topic;
    topic.extend(rig.on_topic.receive_once().await);
    let published = topic.iter().filter(|e| e["kind"] == "registered").count();
    assert_eq!(published, 3, "SNS got each event once, no record was retried: {topic:?}");
    let puts = rig.wire.plan.seen(Service::Events, "PutEvents");
    assert!(puts.len() >= 3, "two throttled rounds, then a resend that passed: {puts:?}");
    rig.stop().await;
}
