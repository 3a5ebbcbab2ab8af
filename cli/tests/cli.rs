//! The real `beacon` binary against the local stack (and an in-process
//! pipeline for the commands that need the fan-out).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use beacon_tests::TestPipeline;
use serde_json::Value;

fn beacon(p: &TestPipeline, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(args)
        .env("BEACON_TABLE", &p.table)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .output()
        .expect("running beacon")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_then_list_and_get_show_it() {
    let p = TestPipeline::start("cli-reg").await;
    let out = beacon(
        &p,
        &["register", "orders", "1.2", "--endpoint", "https://orders.example", "--instance", "i-1", "--attr", "zone=a"],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let list = beacon(&p, &["list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let text = stdout(&list);
    assert!(text.contains("orders") && text.contains("1.2.0") && text.contains("https://orders.example"), "{text}");

    let json = beacon(&p, &["list", "--service", "orders", "--json"]);
    let parsed: Value = serde_json::from_slice(&json.stdout).expect("list --json parses");
    assert_eq!(parsed[0]["attributes"]["zone"], "a");

    let get = beacon(&p, &["get", "orders^1", "--json"]);
    assert!(get.status.success(), "{}", stderr(&get));
    let parsed: Value = serde_json::from_slice(&get.stdout).expect("get --json parses");
    assert_eq!(parsed["outcome"]["resolved"]["version"], "1.2.0");

    let missing = beacon(&p, &["get", "orders^2"]);
    assert_eq!(missing.status.code(), Some(3), "nothing resolves → exit 3");
    assert!(stderr(&missing).contains("no registered version matches"), "{}", stderr(&missing));

    let drain = beacon(&p, &["drain", "orders", "1.2.0", "--instance", "i-1"]);
    assert!(drain.status.success(), "{}", stderr(&drain));
    let get = beacon(&p, &["get", "orders"]);
    assert!(stderr(&get).contains("draining"), "{}", stderr(&get));

    let dereg = beacon(&p, &["deregister", "orders", "1.2", "--instance", "i-1"]);
    assert!(dereg.status.success(), "{}", stderr(&dereg));
    let list = beacon(&p, &["list", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&list.stdout).unwrap(), serde_json::json!([]));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_and_resolve_show_the_resolved_view() {
    let p = TestPipeline::start("cli-needs").await;
    assert!(beacon(&p, &["register", "users", "2.1.0", "--endpoint", "https://users.example"]).status.success());
    let out = beacon(&p, &["needs", "web", "users>=2,<3", "payments==1.2.0"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let start = Instant::now();
    // The fan-out writes the item's header (needs, revision 0) before the
    // views; the first revision is the resolved view.
    let view = loop {
        let out = beacon(&p, &["resolve", "web", "--json"]);
        if out.status.success() {
            let view = serde_json::from_slice::<Value>(&out.stdout).expect("resolve --json parses");
            if view["revision"].as_u64() >= Some(1) {
                break view;
            }
        } else {
            assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no resolved item appeared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(view["services"]["users"][0]["resolved"]["version"], "2.1.0", "{view:#}");
    assert_eq!(view["services"]["payments"][0]["unresolved"]["reason"], "no_such_service", "{view:#}");
    let table = beacon(&p, &["resolve", "web"]);
    assert!(stdout(&table).contains("https://users.example"), "{}", stdout(&table));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_events_from_another_process_and_cleans_up() {
    let p = TestPipeline::start("cli-watch").await;
    let watch = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["watch", "--service", "billing", "--count", "1"])
        .env("BEACON_TABLE", &p.table)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting watch");
    let prefix = format!("beacon-watch-{}-", watch.id());
    let queues = |p: &TestPipeline| {
        let sqs = p.sqs.clone();
        let prefix = prefix.clone();
        async move { sqs.list_queues().queue_name_prefix(prefix).send().await.unwrap().queue_urls.unwrap_or_default().len() }
    };
    let start = Instant::now();
    while queues(&p).await == 0 {
        assert!(start.elapsed() < Duration::from_secs(20), "watch created no queue");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A change to another service is filtered out; billing's is printed.
    assert!(beacon(&p, &["register", "other", "1.0.0", "--endpoint", "https://o.example"]).status.success());
    assert!(beacon(&p, &["register", "billing", "3.0.0", "--endpoint", "https://b.example"]).status.success());
    let out = tokio::task::spawn_blocking(move || watch.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("registered") && text.contains("billing 3.0.0"), "{text}");
    assert!(!text.contains("other"), "the filter let another service through: {text}");
    // On exit watch ends its queue's lease; the sweeper's janitor removes
    // it (tests/viewers.rs covers the janitor).
    let port = beacon_aws::janitor::SnsSqsSubscribers::new(p.sns.clone(), p.sqs.clone(), &p.topic_arn);
    beacon_sweeper::janitor::run(&port, &p.topic_arn, beacon_tests::now()).await.unwrap();
    assert_eq!(queues(&p).await, 0, "watch left its queue behind");
    p.stop().await;
}

/// `beacon upgrade` rebuilds an edge from a consumer's needs, and a second
/// run finds nothing to do (docs/deploy.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_rebuilds_edges_from_needs_and_is_idempotent() {
    let p = TestPipeline::start("cli-upgrade").await;
    assert!(beacon(&p, &["needs", "web", "users^2"]).status.success());
    let edge = || async {
        p.dynamodb
            .get_item()
            .table_name(&p.table)
            .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("FANOUT#users".into()))
            .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("DEPENDENT#web".into()))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    };
    let start = Instant::now();
    while edge().await.is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "the fan-out wrote no edge");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // As if the table came from before FANOUT#: the edge is gone.
    p.dynamodb
        .delete_item()
        .table_name(&p.table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("FANOUT#users".into()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("DEPENDENT#web".into()))
        .send()
        .await
        .unwrap();
    let out = beacon(&p, &["upgrade", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("upgrade --json parses");
    assert_eq!((report["consumers"].as_u64(), report["edges_written"].as_u64()), (Some(1), Some(1)), "{report}");
    let written = edge().await.expect("the edge is back");
    assert_eq!(written["requirements"].as_l().unwrap()[0].as_s().unwrap(), "users^2");
    let again = beacon(&p, &["upgrade", "--remove-old"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("0 edges written, 1 kept"), "{}", stdout(&again));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_say_what_is_wrong() {
    let p = TestPipeline::start("cli-bad").await;
    for (args, says) in [
        (vec!["register", "orders", "1.0", "--endpoint", "ftp://x"], "endpoint_url"),
        (vec!["register", "9orders", "1.0", "--endpoint", "https://x"], "service"),
        (vec!["register", "orders", "one", "--endpoint", "https://x"], "version"),
        (vec!["register", "orders", "1.0", "--endpoint", "https://x", "--ttl", "1"], "ttl_seconds"),
        (vec!["register", "orders", "1.0", "--endpoint", "https://x", "--status", "up"], "status"),
        (vec!["register", "orders", "1.0"], "--endpoint"),
        (vec!["needs", "web", "orders,,users"], "empty part"),
        (vec!["get", "orders=1"], "=="),
        (vec!["watch", "--kind", "nope"], "nope"),
        // Hostile values: each refused, naming what is wrong, without a panic.
        (vec!["register", "orders", "1.0", "--endpoint", "https://u:p@x.example"], "endpoint_url"),
        (vec!["register", "orders", "99999999999999999999.0.0", "--endpoint", "https://x"], "version"),
        (vec!["register", "orders", "1.0", "--endpoint", "https://x", "--ttl", "-5"], "-5"),
        (vec!["register", "orders", "1.0", "--endpoint", "https://x", "--ttl", "99999999999999999999"], "--ttl"),
        (vec!["register", "orders", "1.0", "--endpoint", "https://x", "--instance", "i-\u{202e}1"], "instance_id"),
        (vec!["register", "ørders", "1.0", "--endpoint", "https://x"], "service"),
        (vec!["register", "orders", "1.0", "--endpoint", "https://x", "--arn", "arn:aws"], "arn"),
        (vec!["deregister", "orders", "not-a-version"], "version"),
        (vec!["needs", "web", ""], "empty part"),
        (vec!["needs", "9web", "orders"], "consumer"),
        (vec!["get", ">=>"], "service"),
        (vec!["get", "orders>=1,<"], "requirement"),
        (vec!["list", "--service", "9bad"], "service"),
        (vec!["frobnicate"], "frobnicate"),
    ] {
        let out = beacon(&p, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{args:?}: {}", stderr(&out));
    }
    // An argument of 100,000 characters (Linux allows 128 KiB per argument):
    // refused, and not echoed back whole.
    let huge = "a".repeat(100_000);
    let out = beacon(&p, &["register", &huge, "1.0", "--endpoint", "https://x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("service") && stderr(&out).len() < 2_000, "{} bytes", stderr(&out).len());
    // None of it was written.
    let listed = beacon(&p, &["list", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&listed)).unwrap(),
        serde_json::json!([]),
        "a refused command wrote"
    );
    let no_table =
        Command::new(env!("CARGO_BIN_EXE_beacon")).args(["list"]).env_remove("BEACON_TABLE").output().unwrap();
    assert_eq!(no_table.status.code(), Some(1));
    assert!(stderr(&no_table).contains("BEACON_TABLE"), "{}", stderr(&no_table));
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_heartbeat_keeps_it_alive_and_deregisters_on_stop() {
    use beacon_domain::ports::ServiceState as _;
    let p = TestPipeline::start("cli-hb").await;
    let child = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["register", "pulse", "1.0.0", "--endpoint", "https://pulse.example", "--ttl", "10", "--heartbeat"])
        .env("BEACON_TABLE", &p.table)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let expires = |p: &TestPipeline| {
        let registry = p.registry.clone();
        async move { registry.read_service("pulse").await.unwrap().instances.first().map(|r| r.expires_at) }
    };
    let start = Instant::now();
    let first = loop {
        if let Some(e) = expires(&p).await {
            break e;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "never registered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // ttl 10 s → a heartbeat every 3 s moves expires_at.
    let start = Instant::now();
    while expires(&p).await == Some(first) {
        assert!(start.elapsed() < Duration::from_secs(8), "no heartbeat moved expires_at");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(expires(&p).await, None, "stopping --heartbeat did not deregister");
    p.stop().await;
}

/// Reads `export K=V` lines.
fn read_env(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// A `beacon dev up` of its own: free ports, its own state directory,
/// `args` added. Fails the test with the runner's log if it does not start.
struct DevStack {
    state: std::path::PathBuf,
    stopped: std::cell::Cell<bool>,
}

/// A test that panics before its `down` still stops its stack (DynamoDB
/// Local and moto would outlive the suite otherwise).
impl Drop for DevStack {
    fn drop(&mut self) {
        if !self.stopped.get() {
            let _ = self.down();
        }
    }
}

impl DevStack {
    fn up(name: &str, args: &[&str]) -> Self {
        let state = std::env::temp_dir().join(beacon_tests::unique(name));
        let stack = Self { state, stopped: std::cell::Cell::new(false) };
        let up = Command::new(env!("CARGO_BIN_EXE_beacon"))
            .current_dir(Self::root())
            .args(["dev", "up", "--dynamodb-port", "0", "--sns-port", "0", "--api-port", "0"])
            .args(["--state-dir", stack.state.to_str().unwrap()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !up.status.success() {
            let log = stack.log();
            stack.down();
            panic!("dev up {args:?} failed: {}\n{log}", stderr(&up));
        }
        stack
    }

    fn root() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state.join("dev.log")).unwrap_or_default()
    }

    fn down(&self) -> Output {
        self.stopped.set(true);
        Command::new(env!("CARGO_BIN_EXE_beacon"))
            .current_dir(Self::root())
            .args(["dev", "down", "--state-dir", self.state.to_str().unwrap()])
            .output()
            .unwrap()
    }
}

/// `beacon dev up` starts its runner with exactly the flags it was given:
/// the runner says it sweeps every second, and a registration past its
/// `expires_at` is gone within seconds. (The disappearance alone no longer
/// proves the flag: on a fresh engine DynamoDB Local's own TTL process
/// deletes expired items within about a second too; docs/reliability.md, "A
/// live TTL delete".) A stack of its own, on free ports, in its own state
/// directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_up_passes_every_flag_to_the_runner() {
    let bin = env!("CARGO_BIN_EXE_beacon");
    let stack = DevStack::up("dev-up", &["--table", "dev-up", "--sweep-every-seconds", "1"]);
    let (state, down) = (&stack.state, || stack.down());
    let log = stack.log();
    if !log.contains("sweeper every 1 s") {
        down();
        panic!("the runner did not get --sweep-every-seconds 1:\n{log}");
    }
    let env = read_env(&state.join("dev.env"));
    // Every variable a Beacon binary reads from its environment (the
    // fan-out's and refresh function's `from_env`, the catalog API's, the
    // sweeper's) is there, so each starts against the stack from dev.env.
    for var in ["BEACON_TABLE", "BEACON_TOPIC_ARN", "BEACON_REFRESH_QUEUE_URL", "BEACON_API_URL"] {
        let value = env.iter().find(|(k, _)| k == var).map(|(_, v)| v.as_str()).unwrap_or_default();
        assert!(!value.is_empty(), "{var} missing from dev.env: {env:?}");
    }
    // dev serves the registry page too, and says where.
    let ui = env.iter().find(|(k, _)| k == "BEACON_UI_URL").map(|(_, v)| v.clone()).expect("BEACON_UI_URL in dev.env");
    let addr = ui.trim_start_matches("http://").trim_end_matches('/').to_owned();
    let page = beacon_tests::api::exchange(&addr, "GET", "/", &[("host".into(), addr.clone())], b"").unwrap();
    assert!(page.status == 200 && page.body.contains("Beacon registry"), "{page:?}");
    let with_env = |args: &[&str]| {
        let mut c = Command::new(bin);
        c.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &env {
            c.env(k, v);
        }
        c.output().unwrap()
    };
    // A registration that expires in two seconds, written as any SDK would.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            beacon_local::setup::LOCAL_ACCESS_KEY,
            beacon_local::setup::LOCAL_SECRET_KEY,
            None,
            None,
            "test",
        ))
        .endpoint_url(&env.iter().find(|(k, _)| k == "AWS_ENDPOINT_URL_DYNAMODB").unwrap().1)
        .load()
        .await;
    let catalog = beacon_aws::dynamo_table(&config, "dev-up");
    let now = beacon_domain::clock::now_seconds();
    let mut r = beacon_domain::Registration::new_at(
        "brief",
        "1.0",
        "i-1",
        "https://b.example",
        beacon_domain::Status::Healthy,
        10,
        now,
    )
    .unwrap();
    r.expires_at = now + 2;
    beacon_domain::ports::Registrations::put(&catalog, &r).await.unwrap();
    let listed = |out: Output| serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default().len();
    assert_eq!(listed(with_env(&["list", "--json"])), 1, "the registration was written");
    let start = Instant::now();
    let mut gone = false;
    while start.elapsed() < Duration::from_secs(20) {
        if listed(with_env(&["list", "--json"])) == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let stopped = down();
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    assert!(gone, "an expired registration was not deleted within 20 s");
    let _ = std::fs::remove_dir_all(state);
}

/// A service with more healthy endpoints than a view shows (issue 27): each
/// consumer's resolved item holds its slot, and the catalog API
/// (`?consumer=`) and `beacon get --consumer` give the same; an instance
/// that goes moves only the views of its slot's consumers. Grouped (the
/// direct limit at 0), so the view groups' moved slots are what decides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_service_gives_each_consumer_its_slot_on_every_path() {
    use beacon_domain::ports::{NeedsDeclarations as _, Registrations as _};
    use beacon_domain::services_file::ServicesFile;
    use beacon_domain::subset::{SUBSET_SIZE, slot_of, slots_for};
    use beacon_domain::view::{Needs, Outcome};
    use beacon_domain::{Registration, Status, parse_needs};
    use futures::StreamExt as _;

    const INSTANCES: usize = 240;
    const CONSUMERS: usize = 12;
    let options = beacon_tests::Options::new().limits(beacon_fanout::Limits { direct: 0, ..Default::default() });
    let p = TestPipeline::start_with("cli-large", options).await;
    // The fleet first: its records refresh nobody yet.
    let now = beacon_tests::now();
    let registry = &p.registry;
    futures::stream::iter(0..INSTANCES)
        .map(|i| async move {
            let url = format!("https://orders-{i}.example");
            let r =
                Registration::new_at("orders", "1.2.0", &format!("i-{i}"), &url, Status::Healthy, 3600, now).unwrap();
            registry.put(&r).await.unwrap();
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    let q = p.subscribe(None).await;
    let consumers: Vec<String> = (0..CONSUMERS).map(|c| format!("web-{c}")).collect();
    for c in &consumers {
        let needs = Needs { consumer: c.clone(), needs: parse_needs("orders^1").unwrap() };
        p.registry.put_needs(&needs, now).await.unwrap();
    }
    let slots = slots_for(INSTANCES);
    assert_eq!(slots, 4);
    let slot_view =
        |item: &beacon_domain::view::ResolvedItem| match &item.services.get("orders")?.requirements[0].outcome {
            Outcome::Resolved(r) => Some(r.clone()),
            Outcome::Unresolved(_) => None,
        };
    TestPipeline::eventually(Duration::from_secs(60), "every consumer's slot", || async {
        for c in &consumers {
            let Some(item) = p.resolved(c).await else { return false };
            if slot_view(&item).is_none_or(|r| r.subset.is_none()) {
                return false;
            }
        }
        true
    })
    .await;
    let api = beacon_tests::api::LocalApi::start(p.registry.clone(), "unused").await;
    let mut seen = std::collections::BTreeMap::new();
    for c in &consumers {
        let item = p.resolved(c).await.unwrap();
        let held = slot_view(&item).unwrap();
        let subset = held.subset.clone().unwrap();
        assert_eq!(subset.slot, Some(slot_of("orders", c, slots)), "{c}");
        assert_eq!((subset.slots, subset.of), (slots, None), "{c}");
        assert!(held.endpoints.len() < SUBSET_SIZE && !held.endpoints.is_empty(), "{c}: {}", held.endpoints.len());
        // The same slot from the API and from the CLI.
        let (status, body) =
            api.call("GET", &format!("/catalog/orders?requirement=%5E1&consumer={c}"), vec![], None, &[]).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["resolved"], serde_json::to_value(&held).unwrap(), "{c}: the API's slot");
        let get = beacon(&p, &["get", "orders^1", "--consumer", c, "--json"]);
        assert!(get.status.success(), "{}", stderr(&get));
        let parsed: Value = serde_json::from_slice(&get.stdout).unwrap();
        assert_eq!(parsed["outcome"]["resolved"], serde_json::to_value(&held).unwrap(), "{c}: beacon get's slot");
        // The extension's file says it is a subset, in its schema.
        let file = serde_json::to_value(ServicesFile::from_resolved(&item)).unwrap();
        assert_eq!(file["services"]["orders"][0]["subset"]["slots"], slots);
        assert_eq!(beacon_tests::errors_against("services-file", &file), Vec::<String>::new());
        let previous = seen.insert(subset.slot.unwrap(), held.endpoints.clone());
        assert!(previous.is_none_or(|p| p == held.endpoints), "{c}: one slot, one set of endpoints");
    }
    // Without a consumer, every endpoint; and a consumer name is checked.
    let (status, body) = api.call("GET", "/catalog/orders", vec![], None, &[]).await;
    assert_eq!((status, body["resolved"]["endpoints"].as_array().map(Vec::len)), (200, Some(INSTANCES)));
    assert!(body["resolved"].get("subset").is_none());
    let (status, body) = api.call("GET", "/catalog/orders?consumer=no%20such", vec![], None, &[]).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("consumer"), "{body}");
    let bad = beacon(&p, &["get", "orders", "--consumer", "-x"]);
    assert!(!bad.status.success());
    // The needs changes' events are in: collect them, then take one
    // instance away. Only its slot's consumers get a `resolved` event.
    let _ = q.receive_until(Duration::from_secs(30), |e| beacon_tests::of_kind(e, "resolved").len() >= CONSUMERS).await;
    let gone = "i-7";
    let gone_slot = beacon_domain::subset::slot_of_point(beacon_domain::subset::point("orders", gone), slots);
    let expect: std::collections::BTreeSet<String> =
        consumers.iter().filter(|c| slot_of("orders", c, slots) == gone_slot).cloned().collect();
    assert!(!expect.is_empty() && expect.len() < CONSUMERS, "the names chosen put consumers in several slots");
    let key = beacon_domain::ports::InstanceKey::new("orders", "1.2.0", gone);
    let (_, writes_before, _) = p.fan_registry.counts().snapshot();
    p.registry.delete(&key).await.unwrap();
    let events = q
        .receive_until(Duration::from_secs(30), |e| {
            beacon_tests::of_kind(e, "resolved").len() >= expect.len()
                && !beacon_tests::of_kind(e, "deregistered").is_empty()
        })
        .await;
    let mut events = events;
    events.extend(q.receive_for(Duration::from_secs(2)).await);
    let moved: std::collections::BTreeSet<String> = beacon_tests::of_kind(&events, "resolved")
        .iter()
        .filter_map(|e| e["consumer"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(moved, expect, "only the gone instance's slot moved");
    // The bump, the claim (a transaction of two items, billed twice) and its
    // settle, and one write per moved view: the other slots' consumers
    // cost nothing.
    let writes = p.fan_registry.counts().snapshot().1 - writes_before;
    assert_eq!(writes, 1 + 4 + 1 + expect.len() as u64, "{} moved of {CONSUMERS}", expect.len());
    for e in beacon_tests::of_kind(&events, "resolved") {
        assert_eq!(beacon_tests::schema_errors(e), Vec::<String>::new());
        let endpoints = e["services"]["orders"][0]["resolved"]["endpoints"].as_array().unwrap();
        assert!(endpoints.iter().all(|x| x["instance_id"] != gone));
    }
    api.stop().await;
    p.stop().await;
}

/// A member account of an Organization names the registry by ARN (a
/// cross-account DynamoDB call must): the CLI registers and resolves
/// through it, and a refusal names the account and the table that refused
/// and the principal refused, and writes nothing. DynamoDB Local serves a
/// table by its ARN but ignores the account in it, so whether a member may
/// write is the IAM simulator's to prove (tests/tests/iam/organization.rs);
/// the refusal here is the fault proxy's, worded as AWS words one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_named_by_arn_is_used_and_a_refusal_names_its_account_and_resource() {
    use beacon_domain::ports::Registrations as _;
    use beacon_local::proxy::{Fault, Matcher, Service};

    let p = TestPipeline::start("cli-arn").await;
    let arn = format!("arn:aws:dynamodb:us-east-1:111122223333:table/{}", p.table);
    let run = |table: &str, args: &[&str], dynamodb: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_beacon"));
        c.args(args).env("BEACON_TABLE", table).env("BEACON_TOPIC_ARN", &p.topic_arn);
        if let Some(url) = dynamodb {
            c.env("AWS_ENDPOINT_URL_DYNAMODB", url);
        }
        c.output().expect("running beacon")
    };
    let register = |instance: &'static str| {
        ["register", "orders", "1.0.0", "--endpoint", "https://orders.example", "--instance", instance]
    };

    let out = run(&arn, &register("i-1"), None);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        p.registry.instances("orders").await.unwrap().registrations.len(),
        1,
        "written to the table the ARN names"
    );
    let get = run(&arn, &["get", "orders", "--json"], None);
    assert!(get.status.success(), "{}", stderr(&get));
    let parsed: Value = serde_json::from_slice(&get.stdout).expect("get --json parses");
    assert_eq!(parsed["outcome"]["resolved"]["version"], "1.0.0");

    let wire = beacon_tests::wire::Wire::start().await;
    wire.plan.script(Matcher::op(Service::DynamoDb, "PutItem"), [Fault::Denied]);
    let refused = run(&arn, &register("i-2"), Some(&wire.dynamodb.url));
    assert!(!refused.status.success(), "a refused write fails");
    let err = stderr(&refused);
    assert!(
        err.contains(&format!(
            "account 111122223333 refused dynamodb:PutItem to \
             arn:aws:sts::000000000000:assumed-role/beacon-fault-proxy/local on {arn}"
        )),
        "the error leads with who refused what: {err}"
    );
    assert!(err.contains("AccessDeniedException"), "and keeps AWS's words: {err}");
    assert_eq!(p.registry.instances("orders").await.unwrap().registrations.len(), 1, "nothing written");

    // A viewer refused by the registry's topic is told the same way: the
    // topic's account, the principal, the topic.
    wire.plan.script(Matcher::op(Service::Sns, "Subscribe"), [Fault::Denied]);
    let watch = Command::new(env!("CARGO_BIN_EXE_beacon"))
        .args(["watch", "--count", "1"])
        .env("BEACON_TABLE", &arn)
        .env("BEACON_TOPIC_ARN", &p.topic_arn)
        .env("AWS_ENDPOINT_URL_SNS", &wire.sns.url)
        .output()
        .expect("running beacon watch");
    assert!(!watch.status.success(), "a refused subscription fails");
    let err = stderr(&watch);
    let account = p.topic_arn.split(':').nth(4).unwrap();
    assert!(
        err.contains(&format!(
            "account {account} refused SNS:Subscribe to \
             arn:aws:sts::000000000000:assumed-role/beacon-fault-proxy/local on {}",
            p.topic_arn
        )),
        "the error leads with who refused what: {err}"
    );
    wire.stop().await;

    // A table ARN that names something else is refused before any call.
    for (bad, says) in [
        ("arn:aws:dynamodb:us-east-1:1111:table/beacon-dev", "the account is 12 digits"),
        ("arn:aws:sns:us-east-1:111122223333:beacon-dev", "not of a DynamoDB table"),
        (&*format!("{arn}/index/listing"), "not its index"),
    ] {
        let out = run(bad, &register("i-3"), Some("http://127.0.0.1:9"));
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{bad}: {}", stderr(&out));
    }
}

/// `beacon dev --regions` (issue 29): two Regions on one stack, a write in
/// the first is an event in the second's topic and resolves there; bad
/// `--regions` are refused before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_runs_two_regions_and_a_write_in_one_arrives_in_the_other() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bin = env!("CARGO_BIN_EXE_beacon");
    for (bad, says) in [
        ("eu-west-1,us-east-1", "the first Region is the local stack's own"),
        ("us-east-1,us-east-1", "named twice"),
        ("us-east-1,Mars", "is not a Region's name"),
    ] {
        let state = std::env::temp_dir().join(beacon_tests::unique("dev-bad-regions"));
        let out = Command::new(bin)
            .current_dir(&root)
            .args(["dev", "up", "--regions", bad, "--state-dir", state.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "--regions {bad} was accepted");
        assert!(stderr(&out).contains(says), "--regions {bad}: {}", stderr(&out));
        assert!(!state.join("dev.env").exists(), "--regions {bad} started something");
    }

    let stack = DevStack::up(
        "dev-regions",
        &["--ui-port", "0", "--table", "dev-regions", "--regions", "us-east-1,eu-west-1", "--replication-ms", "300"],
    );
    let (state, down) = (&stack.state, || stack.down());
    let env = read_env(&state.join("dev.env"));
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let west_topic = var("BEACON_TOPIC_ARN_EU_WEST_1").expect("the second Region's topic in dev.env");
    assert!(west_topic.contains(":eu-west-1:"), "{west_topic}");
    assert_eq!(var("BEACON_REPLICA_REGION").as_deref(), Some("us-east-1"));
    let command = |args: &[&str], region: &str| {
        let mut c = Command::new(bin);
        c.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in &env {
            c.env(k, v);
        }
        c.env("AWS_REGION", region).env("AWS_DEFAULT_REGION", region).env("BEACON_REPLICA_REGION", region);
        c
    };
    // A watcher in the second Region, on its topic.
    let watch = command(&["watch", "--count", "1", "--json", "--topic-arn", &west_topic], "eu-west-1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // A registration in the first.
    let reg = command(
        &["register", "orders", "1.0.0", "--endpoint", "https://orders.example", "--instance", "i-1"],
        "us-east-1",
    )
    .output()
    .unwrap();
    assert!(reg.status.success(), "{}", stderr(&reg));
    let watched = tokio::task::spawn_blocking(move || watch.wait_with_output()).await.unwrap().unwrap();
    let event: Value =
        serde_json::from_slice(watched.stdout.split(|b| *b == b'\n').find(|l| !l.is_empty()).unwrap_or_default())
            .unwrap_or_else(|_| panic!("no event in the second Region: {}", stderr(&watched)));
    assert_eq!((event["kind"].as_str(), event["service"].as_str()), (Some("registered"), Some("orders")));
    // And the second Region's replica resolves it.
    let get = command(&["get", "orders", "--json"], "eu-west-1").output().unwrap();
    let parsed: Value = serde_json::from_slice(&get.stdout).unwrap_or_default();
    assert_eq!(parsed["outcome"]["resolved"]["version"], "1.0.0", "{}", stderr(&get));
    let stopped = down();
    assert!(stopped.status.success(), "{}", stderr(&stopped));
    let _ = std::fs::remove_dir_all(state);
}

/// `beacon openapi` prints the document as written, and a stack's own with
/// its switches; a client generated from it by a generator nobody here
/// wrote (PyPI's openapi-python-client) registers, looks up, lists and
/// deregisters against `beacon dev`, signed as the README says
/// (tests/api/generated_client.py), and the generator skips nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_beacon_openapi_works_against_beacon_dev() {
    let root = DevStack::root();
    let bin = env!("CARGO_BIN_EXE_beacon");
    let printed = Command::new(bin).arg("openapi").output().unwrap();
    assert!(printed.status.success(), "{}", stderr(&printed));
    assert_eq!(stdout(&printed), std::fs::read_to_string(root.join("infra/openapi.yaml")).unwrap());
    let locked = Command::new(bin)
        .args(["openapi", "--json", "--unscoped-write-routes", "off", "--signed-reads", "on"])
        .output()
        .unwrap();
    let locked: serde_json::Value = serde_json::from_slice(&locked.stdout).unwrap();
    assert!(locked["paths"].get("/catalog/register").is_none(), "the unscoped route is still there");
    assert_eq!(locked["paths"]["/catalog"]["get"]["security"], serde_json::json!([{ "sigv4": [] }]));
    let bad = Command::new(bin).args(["openapi", "--signed-reads", "yes"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("--signed-reads"), "{}", stderr(&bad));

    let dir = std::env::temp_dir().join(beacon_tests::unique("generated-client"));
    std::fs::create_dir_all(&dir).unwrap();
    let document = dir.join("openapi.yaml");
    std::fs::write(&document, printed.stdout).unwrap();
    let generated = Command::new(root.join(".venv/bin/openapi-python-client"))
        .args(["generate", "--meta", "none", "--fail-on-warning", "--config"])
        .arg(root.join("tests/api/openapi-python-client.yaml"))
        .arg("--path")
        .arg(&document)
        .arg("--output-path")
        .arg(dir.join("beacon_catalog_client"))
        .output()
        .expect("openapi-python-client (./scripts/bootstrap installs it)");
    let said = format!("{}{}", stdout(&generated), stderr(&generated));
    assert!(generated.status.success(), "{said}");
    assert!(!said.to_lowercase().contains("warning"), "the generator skipped part of the document:\n{said}");

    let stack = DevStack::up("generated-client", &["--ui-port", "0", "--table", "generated-client"]);
    let env = read_env(&stack.state.join("dev.env"));
    let url = env.iter().find(|(k, _)| k == "BEACON_API_URL").map(|(_, v)| v.clone()).expect("BEACON_API_URL");
    let run = Command::new(root.join(".venv/bin/python"))
        .arg(root.join("tests/api/generated_client.py"))
        .arg(&dir)
        .args([&url, "orders"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    let log = stack.log();
    stack.down();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(run.status.success(), "{}{}\n{log}", stdout(&run), stderr(&run));
    let seen: serde_json::Value = serde_json::from_str(stdout(&run).trim()).unwrap();
    assert_eq!(seen["unsigned"], 403);
    assert_eq!(seen["lookup"]["endpoint_url"], "https://orders-1.example");
    assert_eq!(seen["registered"]["instance_id"], "i-1");
    assert_eq!(seen["registered"]["version"], "1.2.0");
    assert_eq!(seen["listed"], serde_json::json!(["i-1"]));
    assert_eq!(seen["listed_after_seed_register"], serde_json::json!(["i-1", "i-2"]));
    assert_eq!(seen["bad"], serde_json::json!(["endpoint_url"]));
    assert_eq!(seen["after"], 404);
}

/// `beacon dev --event-bus` puts every event on an EventBridge bus as well,
/// as the template's `EventBusName` does: a rule made with the AWS CLI, as
/// the runner's own line says, sends a registration's event to a queue,
/// with `detail-type` its kind and `source` `beacon.dev`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_with_an_event_bus_puts_each_change_on_it() {
    let root = DevStack::root();
    let stack = DevStack::up("dev-bus", &["--ui-port", "0", "--table", "dev-bus", "--event-bus"]);
    let env = read_env(&stack.state.join("dev.env"));
    let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let bus = var("BEACON_EVENT_BUS_ARN").expect("dev.env names the bus");
    assert!(bus.ends_with(":event-bus/dev-bus"), "{bus}");
    assert_eq!(var("BEACON_EVENT_SOURCE").as_deref(), Some("beacon.dev"));
    let run = |program: std::path::PathBuf, args: &[&str]| {
        let out = Command::new(&program)
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        assert!(out.status.success(), "{} {args:?}: {}{}", program.display(), stdout(&out), stderr(&out));
        stdout(&out)
    };
    let aws = root.join(".venv/bin/aws");
    // AWS CLI v1 sends SQS calls in us-east-1 to queue.amazonaws.com
    // whatever AWS_ENDPOINT_URL_SQS says (a customization of its own):
    // they name the endpoint. EventBridge's variable is honoured.
    let sqs_endpoint = var("AWS_ENDPOINT_URL_SQS").expect("dev.env names SQS's endpoint");
    let url = run(
        aws.clone(),
        &[
            "sqs",
            "create-queue",
            "--endpoint-url",
            &sqs_endpoint,
            "--queue-name",
            "on-the-bus",
            "--query",
            "QueueUrl",
            "--output",
            "text",
        ],
    );
    let url = url.trim();
    let arn = run(
        aws.clone(),
        &[
            "sqs",
            "get-queue-attributes",
            "--endpoint-url",
            &sqs_endpoint,
            "--queue-url",
            url,
            "--attribute-names",
            "QueueArn",
            "--query",
            "Attributes.QueueArn",
            "--output",
            "text",
        ],
    );
    run(
        aws.clone(),
        &[
            "events",
            "put-rule",
            "--event-bus-name",
            "dev-bus",
            "--name",
            "mine",
            "--event-pattern",
            r#"{"source":["beacon.dev"]}"#,
        ],
    );
    run(
        aws.clone(),
        &[
            "events",
            "put-targets",
            "--event-bus-name",
            "dev-bus",
            "--rule",
            "mine",
            "--targets",
            &format!("Id=q,Arn={}", arn.trim()),
        ],
    );
    run(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_beacon")),
        &["register", "orders", "1.0.0", "--endpoint", "https://orders.example", "--instance", "i-1"],
    );
    let mut received = Vec::new();
    for _ in 0..20 {
        let body = run(
            aws.clone(),
            &[
                "sqs",
                "receive-message",
                "--endpoint-url",
                &sqs_endpoint,
                "--queue-url",
                url,
                "--wait-time-seconds",
                "1",
                "--query",
                "Messages[].Body",
                "--output",
                "json",
            ],
        );
        let bodies: Vec<String> = serde_json::from_str(body.trim()).unwrap_or_default();
        received.extend(bodies.iter().map(|b| serde_json::from_str::<serde_json::Value>(b).unwrap()));
        if !received.is_empty() {
            break;
        }
    }
    let log = stack.log();
    stack.down();
    let event = received.first().unwrap_or_else(|| panic!("nothing arrived from the bus\n{log}"));
    assert_eq!(event["source"], "beacon.dev", "{event}");
    assert_eq!(event["detail-type"], "registered", "{event}");
    assert_eq!(event["detail"]["service"], "orders", "{event}");
    assert_eq!(event["detail"]["instance_id"], "i-1", "{event}");
}
