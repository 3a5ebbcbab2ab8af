//! Who may do what, evaluated by an IAM policy simulator nobody here wrote
//! (npm `@cloud-copilot/iam-simulate`, run by `tests/iam/simulate.mjs`; a
//! test-time tool only). The policies are the ones that ship: each
//! function's statements in `infra/template.yaml`, the registrar's in
//! `infra/registrar.yaml` (intrinsics resolved for one concrete stack), and
//! the ready-to-paste policies in `infra/policies/` that docs/deploy.md
//! shows. docs/security.md lists each rule beside the test here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

const ACCOUNT: &str = "123456789012";
const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/beacon-dev";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:beacon-changes-dev";
const REFRESH_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:beacon-refresh-dev.fifo";
const API: &str = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One request to evaluate, and what the policies must decide.
struct Case {
    name: String,
    policies: Vec<Value>,
    resource_policy: Option<Value>,
    principal: String,
    action: &'static str,
    resource: String,
    context: Value,
    allowed: bool,
}

fn case(name: &str, policies: &[Value], action: &'static str, resource: &str, context: Value, allowed: bool) -> Case {
    Case {
        name: name.to_owned(),
        policies: policies.to_vec(),
        resource_policy: None,
        principal: format!("arn:aws:iam::{ACCOUNT}:role/tested"),
        action,
        resource: resource.to_owned(),
        context,
        allowed,
    }
}

fn keys(pk: &str) -> Value {
    json!({ "dynamodb:LeadingKeys": [pk] })
}

/// Runs the simulator over every case and fails naming each case whose
/// decision differs (or that the simulator refused as input).
fn assert_decisions(cases: &[Case]) {
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut v = json!({
                "name": c.name, "principal": c.principal, "action": c.action, "resource": c.resource,
                "account": ACCOUNT, "context": c.context, "identityPolicies": c.policies,
            });
            if let Some(p) = &c.resource_policy {
                v["resourcePolicy"] = p.clone();
            }
            v
        })
        .collect();
    let mut child = Command::new("node")
        .arg(root().join("tests/iam/simulate.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs the simulator (./scripts/bootstrap installs it)");
    child.stdin.take().unwrap().write_all(serde_json::to_string(&input).unwrap().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the simulator failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(results.len(), cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .zip(&results)
        .filter(|(c, r)| {
            let got = r["result"].as_str().unwrap_or_default();
            got.starts_with("error") || (got == "Allowed") != c.allowed
        })
        .map(|(c, r)| {
            format!("{}: expected {}, got {}", c.name, if c.allowed { "Allowed" } else { "denied" }, r["result"])
        })
        .collect();
    assert!(wrong.is_empty(), "{} of {} decisions wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

/// Resolves the intrinsics the templates' policies use, for one concrete
/// stack: `!Ref`, `!GetAtt`, `!Sub`, `!Join`, `!Split`, `!If`.
fn resolve(v: &Yaml, env: &BTreeMap<&str, Value>) -> Value {
    let sub = |text: &str, extra: &BTreeMap<String, Value>| {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').map(|e| i + e).unwrap();
            let name = &rest[i + 2..end];
            let value = extra
                .get(name)
                .cloned()
                .or_else(|| env.get(name).cloned())
                .unwrap_or_else(|| panic!("no value for ${{{name}}}"));
            out.push_str(value.as_str().unwrap_or_default());
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Value::String(out)
    };
    match v {
        Yaml::Tagged(t) => {
            let tag = t.tag.to_string();
            match tag.as_str() {
                "!Ref" | "!GetAtt" => env
                    .get(t.value.as_str().unwrap())
                    .cloned()
                    .unwrap_or_else(|| panic!("no value for {tag} {:?}", t.value)),
                "!Sub" => match &t.value {
                    Yaml::String(s) => sub(s, &BTreeMap::new()),
                    Yaml::Sequence(parts) => {
                        let Yaml::Mapping(vars) = &parts[1] else { panic!("!Sub variables") };
                        let extra =
                            vars.iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), resolve(v, env))).collect();
                        sub(parts[0].as_str().unwrap(), &extra)
                    }
                    other => panic!("!Sub {other:?}"),
                },
                "!Join" => {
                    let parts = t.value.as_sequence().unwrap();
                    let sep = resolve(&parts[0], env);
                    let items = resolve(&parts[1], env);
                    let items: Vec<String> =
                        items.as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
                    Value::String(items.join(sep.as_str().unwrap()))
                }
                "!Split" => {
                    let parts = t.value.as_sequence().unwrap();
                    let sep = resolve(&parts[0], env);
                    let text = resolve(&parts[1], env);
                    Value::Array(text.as_str().unwrap().split(sep.as_str().unwrap()).map(|s| json!(s)).collect())
                }
                "!If" => {
                    let parts = t.value.as_sequence().unwrap();
                    let on = env.get(parts[0].as_str().unwrap()).and_then(Value::as_bool).unwrap_or(false);
                    resolve(&parts[if on { 1 } else { 2 }], env)
                }
                other => panic!("unhandled intrinsic {other}"),
            }
        }
        Yaml::Mapping(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), resolve(v, env)))
                .filter(|(_, v)| !v.is_null())
                .collect(),
        ),
        Yaml::Sequence(s) => Value::Array(s.iter().map(|i| resolve(i, env)).filter(|v| !v.is_null()).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap(),
        Yaml::Null => Value::Null,
    }
}

fn template(name: &str) -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("infra").join(name)).unwrap()).unwrap()
}

/// The function's policies as the stack would create them.
fn function_policies(t: &Yaml, function: &str, env: &BTreeMap<&str, Value>) -> Vec<Value> {
    let policies = &t["Resources"][function]["Properties"]["Policies"];
    policies.as_sequence().unwrap().iter().map(|p| resolve(p, env)).collect()
}

/// A policy from `infra/policies/`, its `${Name}` placeholders filled in.
fn policy_file(name: &str, vars: &[(&str, &str)]) -> Value {
    let mut text = std::fs::read_to_string(root().join("infra/policies").join(name)).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(!text.contains("${"), "{name}: a placeholder is left: {text}");
    serde_json::from_str(&text).unwrap()
}

fn main_stack() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("AWS::Partition", json!("aws")),
        ("AWS::Region", json!("us-east-1")),
        ("AWS::AccountId", json!(ACCOUNT)),
        ("Stage", json!("dev")),
        ("Table.Arn", json!(TABLE)),
        ("Table.StreamArn", json!(format!("{TABLE}/stream/2026-11-26T00:00:00.000"))),
        ("Topic", json!(TOPIC)),
        ("OnFailureQueue.Arn", json!("arn:aws:sqs:us-east-1:123456789012:beacon-on-failure-dev")),
        ("RefreshQueue", json!("https://sqs.us-east-1.amazonaws.com/123456789012/beacon-refresh-dev.fifo")),
        ("RefreshQueue.Arn", json!(REFRESH_QUEUE)),
    ])
}

#[test]
fn a_registrar_writes_only_its_own_service() {
    let env = BTreeMap::from([
        ("AWS::Partition", json!("aws")),
        ("AWS::Region", json!("us-east-1")),
        ("AWS::AccountId", json!(ACCOUNT)),
        ("ServiceName", json!("helloworld")),
        ("BeaconTableName", json!("beacon-dev")),
        ("LambdaFunctions", json!(["hello-fn"])),
        ("RestApiId", json!("r3st")),
        ("HttpApiId", json!("")),
        ("HasRestApi", json!(true)),
        ("HasHttpApi", json!(false)),
        ("AWS::NoValue", Value::Null),
    ]);
    let p = function_policies(&template("registrar.yaml"), "RegistrarFunction", &env);
    assert_decisions(&[
        case("registrar puts its own", &p, "dynamodb:PutItem", TABLE, keys("SERVICE#helloworld"), true),
        case("registrar deletes its own", &p, "dynamodb:DeleteItem", TABLE, keys("SERVICE#helloworld"), true),
        case("registrar puts payments", &p, "dynamodb:PutItem", TABLE, keys("SERVICE#payments"), false),
        case("registrar deletes payments", &p, "dynamodb:DeleteItem", TABLE, keys("SERVICE#payments"), false),
        case("registrar writes a consumer", &p, "dynamodb:PutItem", TABLE, keys("CONSUMER#web"), false),
        case("registrar without a key", &p, "dynamodb:PutItem", TABLE, json!({}), false),
        case("registrar updates", &p, "dynamodb:UpdateItem", TABLE, keys("SERVICE#helloworld"), false),
        case("registrar scans", &p, "dynamodb:Scan", TABLE, json!({}), false),
        case(
            "registrar checks its function",
            &p,
            "lambda:GetFunctionConfiguration",
            "arn:aws:lambda:us-east-1:123456789012:function:hello-fn",
            json!({}),
            true,
        ),
        case(
            "registrar deletes another function",
            &p,
            "lambda:DeleteFunction",
            "arn:aws:lambda:us-east-1:123456789012:function:payments",
            json!({}),
            false,
        ),
    ]);
}

#[test]
fn a_consumer_reads_and_writes_only_its_own_view() {
    let p = [policy_file("consumer.json", &[("TableArn", TABLE), ("Consumer", "web")])];
    assert_decisions(&[
        case("consumer reads its needs and view", &p, "dynamodb:GetItem", TABLE, keys("CONSUMER#web"), true),
        case("consumer declares its needs", &p, "dynamodb:PutItem", TABLE, keys("CONSUMER#web"), true),
        case("consumer reads another's view", &p, "dynamodb:GetItem", TABLE, keys("CONSUMER#other"), false),
        case("consumer writes another's needs", &p, "dynamodb:PutItem", TABLE, keys("CONSUMER#other"), false),
        case("consumer registers payments", &p, "dynamodb:PutItem", TABLE, keys("SERVICE#payments"), false),
        case("consumer updates payments", &p, "dynamodb:UpdateItem", TABLE, keys("SERVICE#payments"), false),
        case("consumer deletes payments", &p, "dynamodb:DeleteItem", TABLE, keys("SERVICE#payments"), false),
        case("consumer without a key", &p, "dynamodb:PutItem", TABLE, json!({}), false),
    ]);
}

#[test]
fn a_direct_writer_writes_only_its_own_service() {
    let p = [policy_file("service-writer.json", &[("TableArn", TABLE), ("Service", "orders")])];
    let mut cases = Vec::new();
    for action in ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem"] {
        cases.push(case(&format!("orders {action} orders"), &p, action, TABLE, keys("SERVICE#orders"), true));
        cases.push(case(&format!("orders {action} payments"), &p, action, TABLE, keys("SERVICE#payments"), false));
        cases.push(case(&format!("orders {action} a consumer"), &p, action, TABLE, keys("CONSUMER#web"), false));
    }
    cases.push(case("orders scans", &p, "dynamodb:Scan", TABLE, json!({}), false));
    assert_decisions(&cases);
}

#[test]
fn a_catalog_writer_registers_only_its_own_service_through_the_api() {
    let p = [policy_file(
        "catalog-writer.json",
        &[
            ("Partition", "aws"),
            ("Region", "us-east-1"),
            ("Account", ACCOUNT),
            ("ApiId", "a1b2c3d4e5"),
            ("Stage", "dev"),
            ("Service", "orders"),
        ],
    )];
    assert_decisions(&[
        case(
            "register orders",
            &p,
            "execute-api:Invoke",
            &format!("{API}/POST/catalog/services/orders/register"),
            json!({}),
            true,
        ),
        case(
            "deregister orders",
            &p,
            "execute-api:Invoke",
            &format!("{API}/POST/catalog/services/orders/deregister"),
            json!({}),
            true,
        ),
        case(
            "register payments",
            &p,
            "execute-api:Invoke",
            &format!("{API}/POST/catalog/services/payments/register"),
            json!({}),
            false,
        ),
        case("the unscoped route", &p, "execute-api:Invoke", &format!("{API}/POST/catalog/register"), json!({}), false),
        case(
            "another stage",
            &p,
            "execute-api:Invoke",
            "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/prod/POST/catalog/services/orders/register",
            json!({}),
            false,
        ),
    ]);
}

#[test]
fn the_fan_out_and_the_sweeper_may_do_what_their_code_calls_and_nothing_more() {
    let t = template("template.yaml");
    let env = main_stack();
    let fanout = function_policies(&t, "FanoutFunction", &env);
    let stream = env["Table.StreamArn"].as_str().unwrap().to_owned();
    let mut cases = Vec::new();
    for action in beacon_fanout::IAM_ACTIONS {
        let resource = match *action {
            // Wildcard-only: IAM evaluates it on no resource.
            "dynamodb:ListStreams" => "*".to_owned(),
            "dynamodb:DescribeStream" | "dynamodb:GetRecords" | "dynamodb:GetShardIterator" => stream.clone(),
            a if a.starts_with("dynamodb:") => TABLE.to_owned(),
            "sns:Publish" => TOPIC.to_owned(),
            "sqs:SendMessage" => env["OnFailureQueue.Arn"].as_str().unwrap().to_owned(),
            other => panic!("no resource for {other}"),
        };
        cases.push(case(&format!("fan-out {action}"), &fanout, action, &resource, json!({}), true));
    }
    cases.push(case("fan-out sends a page", &fanout, "sqs:SendMessage", REFRESH_QUEUE, json!({}), true));
    cases.push(case("fan-out receives pages", &fanout, "sqs:ReceiveMessage", REFRESH_QUEUE, json!({}), false));
    cases.push(case(
        "fan-out sends elsewhere",
        &fanout,
        "sqs:SendMessage",
        "arn:aws:sqs:us-east-1:123456789012:other",
        json!({}),
        false,
    ));

    let refresh = function_policies(&t, "RefreshFunction", &env);
    for action in beacon_fanout::REFRESH_IAM_ACTIONS {
        let resource = match *action {
            a if a.starts_with("dynamodb:") => TABLE,
            a if a.starts_with("sqs:") => REFRESH_QUEUE,
            "sns:Publish" => TOPIC,
            other => panic!("no resource for {other}"),
        };
        cases.push(case(&format!("refresh {action}"), &refresh, action, resource, json!({}), true));
    }
    for (action, resource) in [
        ("dynamodb:PutItem", TABLE),
        ("dynamodb:DeleteItem", TABLE),
        ("dynamodb:GetItem", TABLE),
        ("dynamodb:Scan", TABLE),
        ("sqs:ReceiveMessage", "arn:aws:sqs:us-east-1:123456789012:other"),
        ("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:beacon-on-failure-dev"),
        ("sns:Publish", "arn:aws:sns:us-east-1:123456789012:other"),
    ] {
        cases.push(case(&format!("refresh {action} on {resource}"), &refresh, action, resource, json!({}), false));
    }
    cases.push(case("fan-out scans", &fanout, "dynamodb:Scan", TABLE, json!({}), false));
    cases.push(case("fan-out batch-writes", &fanout, "dynamodb:BatchWriteItem", TABLE, json!({}), false));
    cases.push(case(
        "fan-out publishes elsewhere",
        &fanout,
        "sns:Publish",
        "arn:aws:sns:us-east-1:123456789012:other",
        json!({}),
        false,
    ));
    cases.push(case("fan-out deletes the table", &fanout, "dynamodb:DeleteTable", TABLE, json!({}), false));

    let sweeper = function_policies(&t, "SweeperFunction", &env);
    cases.push(case(
        "sweeper queries the expiry index",
        &sweeper,
        "dynamodb:Query",
        &format!("{TABLE}/index/expiry"),
        json!({}),
        true,
    ));
    cases.push(case("sweeper deletes", &sweeper, "dynamodb:DeleteItem", TABLE, json!({}), true));
    cases.push(case("sweeper queries the table", &sweeper, "dynamodb:Query", TABLE, json!({}), false));
    cases.push(case("sweeper writes", &sweeper, "dynamodb:PutItem", TABLE, json!({}), false));
    cases.push(case("sweeper updates", &sweeper, "dynamodb:UpdateItem", TABLE, json!({}), false));
    cases.push(case("sweeper scans", &sweeper, "dynamodb:Scan", TABLE, json!({}), false));
    assert_decisions(&cases);
}

/// Every queue Beacon subscribes gets a policy that lets only the topic
/// send (AWS drops deliveries otherwise; the local SNS server does not
/// check, so the policy is read back from the queue and evaluated here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_queue_accepts_only_its_topic() {
    let p = beacon_tests::TestPipeline::start("qpolicy").await;
    let q = p.subscribe(None).await;
    let attrs = p
        .sqs
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let policy: Value = serde_json::from_str(&attrs[&aws_sdk_sqs::types::QueueAttributeName::Policy]).unwrap();
    let queue_arn = &attrs[&aws_sdk_sqs::types::QueueAttributeName::QueueArn];
    let sns = |name: &str, source: &str, allowed: bool| Case {
        name: name.to_owned(),
        policies: Vec::new(),
        resource_policy: Some(policy.clone()),
        principal: "sns.amazonaws.com".to_owned(),
        action: "sqs:SendMessage",
        resource: queue_arn.clone(),
        context: json!({ "aws:SourceArn": source }),
        allowed,
    };
    let other = p.topic_arn.replace(&p.table, "someone-elses-topic");
    assert_decisions(&[sns("the topic delivers", &p.topic_arn, true), sns("another topic delivers", &other, false)]);
    p.stop().await;
}

/// `beacon ui` and `beacon watch` read and follow, and write nothing but
/// their own temporary queues.
#[test]
fn a_registry_viewer_reads_and_follows_but_writes_nothing() {
    let p = [policy_file(
        "registry-viewer.json",
        &[
            ("TableArn", TABLE),
            ("TopicArn", TOPIC),
            ("Partition", "aws"),
            ("Region", "us-east-1"),
            ("Account", ACCOUNT),
        ],
    )];
    let queue = |name: &str| format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}");
    assert_decisions(&[
        case("viewer scans", &p, "dynamodb:Scan", TABLE, json!({}), true),
        case("viewer subscribes", &p, "sns:Subscribe", TOPIC, json!({}), true),
        case("viewer makes its queue", &p, "sqs:CreateQueue", &queue("beacon-ui-1-2"), json!({}), true),
        case("viewer reads its queue", &p, "sqs:ReceiveMessage", &queue("beacon-watch-1-2"), json!({}), true),
        case("viewer puts", &p, "dynamodb:PutItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer deletes", &p, "dynamodb:DeleteItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer publishes", &p, "sns:Publish", TOPIC, json!({}), false),
        case("viewer reads another queue", &p, "sqs:ReceiveMessage", &queue("orders-work"), json!({}), false),
        case(
            "viewer deletes another queue",
            &p,
            "sqs:DeleteQueue",
            &queue("beacon-fanout-on-failure-dev"),
            json!({}),
            false,
        ),
    ]);
}
