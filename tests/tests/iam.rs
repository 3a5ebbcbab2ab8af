//! Who may do what, evaluated by an IAM policy simulator nobody here wrote
//! (npm `@cloud-copilot/iam-simulate`, run by `tests/iam/simulate.mjs`; a
//! test-time tool only). The policies are the ones that ship, as AWS
//! deploys them: each function's role is read from `infra/template.yaml` and
//! `infra/registrar.yaml` after AWS's own SAM translator has transformed
//! them (`tests/iam/sam_transform.py`), inline policies and managed policies
//! alike, intrinsics resolved for one concrete stack; the topic and queue
//! policies likewise; and the ready-to-paste policies in `infra/policies/`
//! that docs/deploy.md shows. docs/security.md lists each rule beside the
//! test here: one test per attack class, each with the legitimate call it
//! must leave allowed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

const ACCOUNT: &str = "123456789012";
const TABLE: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/beacon-dev";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:beacon-changes-dev";
const REFRESH_QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:beacon-refresh-dev.fifo";
const API: &str = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/dev";
const FANOUT_ROLE: &str = "arn:aws:iam::123456789012:role/beacon-dev-FanoutFunctionRole-1A2B3C";
const REFRESH_ROLE: &str = "arn:aws:iam::123456789012:role/beacon-dev-RefreshFunctionRole-4D5E6F";
/// Another role of the same account whose own identity policy is broad.
const UNRELATED_ROLE: &str = "arn:aws:iam::123456789012:role/some-team-admin";
/// The viewer's `aws:userid` (an assumed role's `<role id>:<session>`), and
/// another viewer's.
const ME: &str = "AROAVIEWERROLEID:alice";
const THEM: &str = "AROAVIEWERROLEID:bob";

/// The one managed policy a Beacon role may carry, and what it grants (AWS's
/// `AWSLambdaBasicExecutionRole`: the function's own logs, nothing else).
const BASIC_EXECUTION: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn basic_execution_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*"
        }]
    })
}

/// How the policies must decide a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Expect {
    Allowed,
    /// Implicitly or explicitly denied.
    Denied,
    /// Denied by a Deny statement, whatever the identity policies allow.
    ExplicitlyDenied,
}
use Expect::{Allowed, Denied, ExplicitlyDenied};

/// One request to evaluate, and what the policies must decide.
struct Case {
    name: String,
    policies: Vec<Value>,
    resource_policy: Option<Value>,
    principal: String,
    action: &'static str,
    resource: String,
    context: Value,
    expect: Expect,
}

impl Case {
    /// The request is made by `principal` (its `aws:PrincipalArn`, which the
    /// simulator's runner derives from it).
    fn by(mut self, principal: &str) -> Self {
        principal.clone_into(&mut self.principal);
        self
    }

    /// The resource carries this policy (a topic or queue policy).
    fn under(mut self, policy: &Value) -> Self {
        self.resource_policy = Some(policy.clone());
        self
    }
}

fn case(name: &str, policies: &[Value], action: &'static str, resource: &str, context: Value, allowed: bool) -> Case {
    expect(name, policies, action, resource, context, if allowed { Allowed } else { Denied })
}

fn expect(name: &str, policies: &[Value], action: &'static str, resource: &str, context: Value, e: Expect) -> Case {
    Case {
        name: name.to_owned(),
        policies: policies.to_vec(),
        resource_policy: None,
        principal: format!("arn:aws:iam::{ACCOUNT}:role/tested"),
        action,
        resource: resource.to_owned(),
        context,
        expect: e,
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
            got.starts_with("error")
                || match c.expect {
                    Allowed => got != "Allowed",
                    Denied => got == "Allowed",
                    ExplicitlyDenied => got != "ExplicitlyDenied",
                }
        })
        .map(|(c, r)| format!("{}: expected {:?}, got {}", c.name, c.expect, r["result"]))
        .collect();
    assert!(wrong.is_empty(), "{} of {} decisions wrong:\n{}", wrong.len(), cases.len(), wrong.join("\n"));
}

/// Resolves the intrinsics the templates' policies use, for one concrete
/// stack, in both forms: YAML's short tags (`!Ref`, `!GetAtt`, `!Sub`,
/// `!Join`, `!Split`, `!If`) and the JSON form the SAM translator emits
/// (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::Split`, `Fn::If`).
fn resolve(v: &Yaml, env: &BTreeMap<&str, Value>) -> Value {
    match v {
        Yaml::Tagged(t) => {
            let name = match t.tag.to_string().as_str() {
                "!Ref" => "Ref".to_owned(),
                other => format!("Fn::{}", other.trim_start_matches('!')),
            };
            intrinsic(&name, &t.value, env)
        }
        Yaml::Mapping(m) => {
            if m.len() == 1 {
                let (k, arg) = m.iter().next().unwrap();
                let k = k.as_str().unwrap();
                if k == "Ref" || k.starts_with("Fn::") {
                    return intrinsic(k, arg, env);
                }
            }
            Value::Object(
                m.iter()
                    .map(|(k, v)| (k.as_str().unwrap().to_owned(), resolve(v, env)))
                    .filter(|(_, v)| !v.is_null())
                    .collect(),
            )
        }
        Yaml::Sequence(s) => Value::Array(s.iter().map(|i| resolve(i, env)).filter(|v| !v.is_null()).collect()),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => serde_json::to_value(n).unwrap(),
        Yaml::Null => Value::Null,
    }
}

fn intrinsic(name: &str, arg: &Yaml, env: &BTreeMap<&str, Value>) -> Value {
    let lookup = |key: &str| env.get(key).cloned().unwrap_or_else(|| panic!("no value for {name} {key}"));
    let sub = |text: &str, extra: &BTreeMap<String, Value>| {
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let end = rest[i..].find('}').map(|e| i + e).unwrap();
            let var = &rest[i + 2..end];
            let value = extra.get(var).cloned().unwrap_or_else(|| lookup(var));
            out.push_str(value.as_str().unwrap_or_default());
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Value::String(out)
    };
    match name {
        "Ref" => lookup(arg.as_str().unwrap()),
        "Fn::GetAtt" => match arg {
            Yaml::String(s) => lookup(s),
            Yaml::Sequence(p) => lookup(&format!("{}.{}", p[0].as_str().unwrap(), p[1].as_str().unwrap())),
            other => panic!("GetAtt {other:?}"),
        },
        "Fn::Sub" => match arg {
            Yaml::String(s) => sub(s, &BTreeMap::new()),
            Yaml::Sequence(parts) => {
                let Yaml::Mapping(vars) = &parts[1] else { panic!("Sub variables") };
                let extra = vars.iter().map(|(k, v)| (k.as_str().unwrap().to_owned(), resolve(v, env))).collect();
                sub(parts[0].as_str().unwrap(), &extra)
            }
            other => panic!("Sub {other:?}"),
        },
        "Fn::Join" => {
            let parts = arg.as_sequence().unwrap();
            let sep = resolve(&parts[0], env);
            let items = resolve(&parts[1], env);
            let items: Vec<String> = items.as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_owned()).collect();
            Value::String(items.join(sep.as_str().unwrap()))
        }
        "Fn::Split" => {
            let parts = arg.as_sequence().unwrap();
            let sep = resolve(&parts[0], env);
            let text = resolve(&parts[1], env);
            Value::Array(text.as_str().unwrap().split(sep.as_str().unwrap()).map(|s| json!(s)).collect())
        }
        "Fn::If" => {
            let parts = arg.as_sequence().unwrap();
            let on = env.get(parts[0].as_str().unwrap()).and_then(Value::as_bool).unwrap_or(false);
            resolve(&parts[if on { 1 } else { 2 }], env)
        }
        other => panic!("unhandled intrinsic {other}"),
    }
}

/// The template as AWS deploys it: transformed by AWS's SAM translator
/// (`tests/iam/sam_transform.py`, offline), read back as data.
fn deployed(name: &str) -> Yaml {
    static CACHE: OnceLock<std::sync::Mutex<BTreeMap<String, Yaml>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(t) = cache.lock().unwrap().get(name) {
        return t.clone();
    }
    let out = Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/iam/sam_transform.py"))
        .arg(root().join("infra").join(name))
        .output()
        .expect("the SAM translator runs (./scripts/bootstrap installs aws-sam-translator into .venv)");
    assert!(out.status.success(), "transforming {name}: {}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t: Yaml = serde_yaml::to_value(json).unwrap();
    cache.lock().unwrap().insert(name.to_owned(), t.clone());
    t
}

/// Every policy of a function's deployed role: its inline policies, and the
/// managed ones it carries (only AWSLambdaBasicExecutionRole may be one;
/// tests/tests/template.rs checks every role of both templates).
fn function_policies(t: &Yaml, function: &str, env: &BTreeMap<&str, Value>) -> Vec<Value> {
    let role_ref = &t["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"];
    let role_id = role_ref[0].as_str().unwrap_or_else(|| panic!("{function} has no role of the stack"));
    let role = &t["Resources"][role_id];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"));
    let mut policies: Vec<Value> = role["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|p| resolve(&p["PolicyDocument"], env))
        .collect();
    for arn in role["Properties"]["ManagedPolicyArns"].as_sequence().into_iter().flatten() {
        let arn = resolve(arn, env);
        assert_eq!(arn.as_str(), Some(BASIC_EXECUTION), "{function}'s role carries the managed policy {arn}");
        policies.push(basic_execution_policy());
    }
    policies
}

/// A resource policy of the stack (`TopicPolicy`, `RefreshQueuePolicy`).
fn resource_policy(t: &Yaml, id: &str, env: &BTreeMap<&str, Value>) -> Value {
    resolve(&t["Resources"][id]["Properties"]["PolicyDocument"], env)
}

/// A policy from `infra/policies/`, its `${Name}` placeholders filled in
/// (IAM's own policy variables, `${aws:...}`, stay for the simulator).
fn policy_file(name: &str, vars: &[(&str, &str)]) -> Value {
    let mut text = std::fs::read_to_string(root().join("infra/policies").join(name)).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(!text.replace("${aws:", "").contains("${"), "{name}: a placeholder is left: {text}");
    serde_json::from_str(&text).unwrap()
}

fn main_stack() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("AWS::Partition", json!("aws")),
        ("AWS::Region", json!("us-east-1")),
        ("AWS::AccountId", json!(ACCOUNT)),
        ("Stage", json!("dev")),
        ("Table", json!("beacon-dev")),
        ("Table.Arn", json!(TABLE)),
        ("Table.StreamArn", json!(format!("{TABLE}/stream/2026-11-26T00:00:00.000"))),
        ("Topic", json!(TOPIC)),
        ("OnFailureQueue.Arn", json!("arn:aws:sqs:us-east-1:123456789012:beacon-on-failure-dev")),
        ("RefreshQueue", json!("https://sqs.us-east-1.amazonaws.com/123456789012/beacon-refresh-dev.fifo")),
        ("RefreshQueue.Arn", json!(REFRESH_QUEUE)),
        ("FanoutFunctionRole.Arn", json!(FANOUT_ROLE)),
        ("RefreshFunctionRole.Arn", json!(REFRESH_ROLE)),
        ("SweeperFunction.Arn", json!("arn:aws:lambda:us-east-1:123456789012:function:beacon-sweeper-dev")),
        ("AWS::NoValue", Value::Null),
    ])
}

fn registrar_stack(service: &str) -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        ("AWS::Partition", json!("aws")),
        ("AWS::Region", json!("us-east-1")),
        ("AWS::AccountId", json!(ACCOUNT)),
        ("ServiceName", json!(service)),
        ("BeaconTableName", json!("beacon-dev")),
        ("LambdaFunctions", json!(["hello-fn"])),
        ("RestApiId", json!("r3st")),
        ("HttpApiId", json!("")),
        ("HasRestApi", json!(true)),
        ("HasHttpApi", json!(false)),
        ("AWS::NoValue", Value::Null),
    ])
}

/// The principals of the attack classes, each with its policies as
/// shipped.
struct Principals {
    writer: Vec<Value>,
    registrar: Vec<Value>,
    consumer: Vec<Value>,
    viewer: Vec<Value>,
    catalog: Vec<Value>,
    sweeper: Vec<Value>,
    fanout: Vec<Value>,
    refresh: Vec<Value>,
}

fn principals() -> Principals {
    let t = deployed("template.yaml");
    let env = main_stack();
    Principals {
        writer: vec![policy_file("service-writer.json", &[("TableArn", TABLE), ("Service", "orders")])],
        registrar: function_policies(&deployed("registrar.yaml"), "RegistrarFunction", &registrar_stack("orders")),
        consumer: vec![policy_file("consumer.json", &[("TableArn", TABLE), ("Consumer", "web")])],
        viewer: vec![viewer_policy()],
        catalog: function_policies(&t, "CatalogApiFunction", &env),
        sweeper: function_policies(&t, "SweeperFunction", &env),
        fanout: function_policies(&t, "FanoutFunction", &env),
        refresh: function_policies(&t, "RefreshFunction", &env),
    }
}

fn viewer_policy() -> Value {
    policy_file(
        "registry-viewer.json",
        &[
            ("TableArn", TABLE),
            ("TopicArn", TOPIC),
            ("Partition", "aws"),
            ("Region", "us-east-1"),
            ("Account", ACCOUNT),
        ],
    )
}

fn queue(name: &str) -> String {
    format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}")
}

fn allow_all(action: &str) -> Value {
    json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": action, "Resource": "*" }] })
}

#[test]
fn a_registrar_writes_only_its_own_service() {
    let p = function_policies(&deployed("registrar.yaml"), "RegistrarFunction", &registrar_stack("helloworld"));
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
            "registrar writes its logs",
            &p,
            "logs:PutLogEvents",
            "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/beacon-registrar-helloworld:log-stream:x",
            json!({}),
            true,
        ),
        case(
            "registrar checks its function",
            &p,
            "lambda:GetFunctionConfiguration",
            "arn:aws:lambda:us-east-1:123456789012:function:hello-fn",
            json!({}),
            true,
        ),
        case(
            "registrar checks another function",
            &p,
            "lambda:GetFunctionConfiguration",
            "arn:aws:lambda:us-east-1:123456789012:function:payments-fn",
            json!({}),
            false,
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

/// `dynamodb:LeadingKeys` with `StringEquals` is an exact, case-sensitive
/// match of every key the request touches: no prefix, case, trailing
/// character or second key gets through.
#[test]
fn leading_keys_prefix_tricks_are_refused() {
    let p = principals();
    let mut cases = Vec::new();
    let tenants: [(&str, &[Value], &'static str, &str, &str); 3] = [
        ("service writer", &p.writer, "dynamodb:PutItem", "SERVICE#orders", "SERVICE#payments"),
        ("registrar", &p.registrar, "dynamodb:PutItem", "SERVICE#orders", "SERVICE#payments"),
        ("consumer", &p.consumer, "dynamodb:PutItem", "CONSUMER#web", "CONSUMER#other"),
    ];
    for (who, policies, action, own, foreign) in tenants {
        let (prefix, name) = own.split_once('#').unwrap();
        let upper = format!("{prefix}#{}{}", name[..1].to_uppercase(), &name[1..]);
        cases.push(case(&format!("{who}: its own {own}"), policies, action, TABLE, keys(own), true));
        for (trick, key) in [
            ("a longer name", json!([format!("{own}-evil")])),
            ("another case", json!([upper])),
            ("a trailing space", json!([format!("{own} ")])),
            ("a trailing #", json!([format!("{own}#x")])),
            ("a shorter name", json!([&own[..own.len() - 1]])),
            ("the bare prefix", json!([format!("{prefix}#")])),
            ("its own and a foreign key", json!([own, foreign])),
        ] {
            cases.push(case(
                &format!("{who}: {trick} {key}"),
                policies,
                action,
                TABLE,
                json!({ "dynamodb:LeadingKeys": key }),
                false,
            ));
        }
    }
    assert_decisions(&cases);
}

/// A tenant's writes through batches, transactions and PartiQL stay in its
/// partition. `BatchWriteItem` and the PartiQL actions are IAM actions of
/// their own that no tenant is granted; a `TransactWriteItems` is
/// authorised item by item as `PutItem`, `UpdateItem`, `DeleteItem` and
/// `ConditionCheckItem` (DynamoDB's "Using IAM with DynamoDB transactions"),
/// each with that item's key.
#[test]
fn batch_transaction_and_partiql_writes_stay_in_the_tenants_partition() {
    let p = principals();
    let mut cases = Vec::new();
    let in_transaction =
        |pk: &str| json!({ "dynamodb:LeadingKeys": [pk], "dynamodb:EnclosingOperation": "TransactWriteItems" });
    let tenants: [(&str, &[Value], &str, &str); 3] = [
        ("service writer", &p.writer, "SERVICE#orders", "SERVICE#payments"),
        ("registrar", &p.registrar, "SERVICE#orders", "SERVICE#payments"),
        ("consumer", &p.consumer, "CONSUMER#web", "CONSUMER#other"),
    ];
    for (who, policies, own, foreign) in tenants {
        cases.push(case(&format!("{who}: a put of its own"), policies, "dynamodb:PutItem", TABLE, keys(own), true));
        cases.push(case(
            &format!("{who}: a transaction's put of its own"),
            policies,
            "dynamodb:PutItem",
            TABLE,
            in_transaction(own),
            true,
        ));
        for action in ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"]
        {
            cases.push(case(
                &format!("{who}: a transaction's {action} of {foreign}"),
                policies,
                action,
                TABLE,
                in_transaction(foreign),
                false,
            ));
        }
        for pk in [own, foreign] {
            cases.push(case(
                &format!("{who}: a batch write to {pk}"),
                policies,
                "dynamodb:BatchWriteItem",
                TABLE,
                keys(pk),
                false,
            ));
            for action in
                ["dynamodb:PartiQLInsert", "dynamodb:PartiQLUpdate", "dynamodb:PartiQLDelete", "dynamodb:PartiQLSelect"]
            {
                cases.push(case(&format!("{who}: {action} on {pk}"), policies, action, TABLE, keys(pk), false));
            }
        }
        cases.push(case(
            &format!("{who}: a batch write of the table"),
            policies,
            "dynamodb:BatchWriteItem",
            TABLE,
            json!({}),
            false,
        ));
    }
    assert_decisions(&cases);
}

/// A tenant reads its own items and no other partition: not another
/// service's, not a consumer's, not the fan-out's bookkeeping.
#[test]
fn other_partitions_are_unreadable_by_tenants() {
    let p = principals();
    let mut cases = vec![
        case("service writer: reads its own", &p.writer, "dynamodb:GetItem", TABLE, keys("SERVICE#orders"), true),
        case("consumer: reads its own view", &p.consumer, "dynamodb:GetItem", TABLE, keys("CONSUMER#web"), true),
    ];
    let tenants: [(&str, &[Value], &str); 3] = [
        ("service writer", &p.writer, "SERVICE#orders"),
        ("registrar", &p.registrar, "SERVICE#orders"),
        ("consumer", &p.consumer, "CONSUMER#web"),
    ];
    for (who, policies, own) in tenants {
        for pk in ["SERVICE#payments", "CONSUMER#other", "FANOUT#orders", "FANOUT#payments"] {
            for action in ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"] {
                cases.push(case(&format!("{who}: {action} {pk}"), policies, action, TABLE, keys(pk), false));
            }
        }
        cases.push(case(
            &format!("{who}: queries its own partition"),
            policies,
            "dynamodb:Query",
            TABLE,
            keys(own),
            false,
        ));
        cases.push(case(&format!("{who}: scans"), policies, "dynamodb:Scan", TABLE, json!({}), false));
        cases.push(case(
            &format!("{who}: reads the stream"),
            policies,
            "dynamodb:GetRecords",
            &format!("{TABLE}/stream/x"),
            json!({}),
            false,
        ));
    }
    assert_decisions(&cases);
}

/// The fan-out's bookkeeping about a service (`FANOUT#<name>`: its
/// generation, view groups and dependency edges) is written by the fan-out
/// and the refresh function only. No tenant principal, and no other
/// function, can name it.
#[test]
fn no_tenant_principal_writes_the_fan_outs_bookkeeping() {
    let p = principals();
    let mut cases = Vec::new();
    let writers: [(&str, &[Value]); 6] = [
        ("service writer", &p.writer),
        ("registrar", &p.registrar),
        ("consumer", &p.consumer),
        ("viewer", &p.viewer),
        ("catalog function", &p.catalog),
        ("sweeper", &p.sweeper),
    ];
    for (who, policies) in writers {
        for action in [
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:BatchWriteItem",
            "dynamodb:PartiQLUpdate",
            "dynamodb:PartiQLDelete",
        ] {
            for pk in ["FANOUT#orders", "FANOUT#payments"] {
                cases.push(case(&format!("{who}: {action} {pk}"), policies, action, TABLE, keys(pk), false));
            }
            cases.push(case(
                &format!("{who}: {action} FANOUT#orders beside SERVICE#orders"),
                policies,
                action,
                TABLE,
                json!({ "dynamodb:LeadingKeys": ["SERVICE#orders", "FANOUT#orders"] }),
                false,
            ));
        }
    }
    // The legitimate writers of the bookkeeping keep their calls.
    for action in ["dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"] {
        cases.push(case(
            &format!("fan-out: {action} FANOUT#orders"),
            &p.fanout,
            action,
            TABLE,
            keys("FANOUT#orders"),
            true,
        ));
    }
    cases.push(case(
        "refresh: updates FANOUT#orders",
        &p.refresh,
        "dynamodb:UpdateItem",
        TABLE,
        keys("FANOUT#orders"),
        true,
    ));
    assert_decisions(&cases);
}

/// Each function writes only the partitions its code writes: the catalog
/// function registrations, the sweeper deletes registrations, the refresh
/// function views and bookkeeping. The fan-out keeps its table-wide grants.
#[test]
fn each_function_writes_only_its_own_partitions() {
    let p = principals();
    let mut cases = Vec::new();
    for action in ["dynamodb:PutItem", "dynamodb:DeleteItem"] {
        cases.push(case(
            &format!("catalog: {action} SERVICE#orders"),
            &p.catalog,
            action,
            TABLE,
            keys("SERVICE#orders"),
            true,
        ));
        for pk in ["CONSUMER#web", "FANOUT#orders"] {
            cases.push(case(&format!("catalog: {action} {pk}"), &p.catalog, action, TABLE, keys(pk), false));
        }
        cases.push(case(&format!("catalog: {action} without a key"), &p.catalog, action, TABLE, json!({}), false));
    }
    cases.push(case("catalog: queries", &p.catalog, "dynamodb:Query", TABLE, keys("SERVICE#orders"), true));
    cases.push(case("catalog: scans", &p.catalog, "dynamodb:Scan", TABLE, json!({}), true));
    cases.push(case("catalog: updates", &p.catalog, "dynamodb:UpdateItem", TABLE, keys("SERVICE#orders"), false));

    cases.push(case(
        "sweeper: expires a registration",
        &p.sweeper,
        "dynamodb:DeleteItem",
        TABLE,
        keys("SERVICE#orders"),
        true,
    ));
    for pk in ["CONSUMER#web", "FANOUT#orders"] {
        cases.push(case(&format!("sweeper: deletes {pk}"), &p.sweeper, "dynamodb:DeleteItem", TABLE, keys(pk), false));
    }
    cases.push(case("sweeper: deletes without a key", &p.sweeper, "dynamodb:DeleteItem", TABLE, json!({}), false));

    for pk in ["CONSUMER#web", "FANOUT#orders"] {
        cases.push(case(&format!("refresh: updates {pk}"), &p.refresh, "dynamodb:UpdateItem", TABLE, keys(pk), true));
    }
    cases.push(case(
        "refresh: updates SERVICE#orders",
        &p.refresh,
        "dynamodb:UpdateItem",
        TABLE,
        keys("SERVICE#orders"),
        false,
    ));
    cases.push(case(
        "refresh: updates a view and a registration",
        &p.refresh,
        "dynamodb:UpdateItem",
        TABLE,
        json!({ "dynamodb:LeadingKeys": ["CONSUMER#web", "SERVICE#orders"] }),
        false,
    ));
    cases.push(case("refresh: updates without a key", &p.refresh, "dynamodb:UpdateItem", TABLE, json!({}), false));
    cases.push(case("refresh: puts a view", &p.refresh, "dynamodb:PutItem", TABLE, keys("CONSUMER#web"), false));
    for pk in ["SERVICE#orders", "CONSUMER#web", "FANOUT#orders"] {
        cases.push(case(&format!("fan-out: puts {pk}"), &p.fanout, "dynamodb:PutItem", TABLE, keys(pk), true));
    }
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
    let invoke = |name: &str, path: &str, allowed: bool| {
        case(name, &p, "execute-api:Invoke", &format!("{API}/{path}"), json!({}), allowed)
    };
    assert_decisions(&[
        invoke("register orders", "POST/catalog/services/orders/register", true),
        invoke("deregister orders", "POST/catalog/services/orders/deregister", true),
        invoke("register payments", "POST/catalog/services/payments/register", false),
        invoke("the unscoped route", "POST/catalog/register", false),
        invoke("another route under orders", "POST/catalog/services/orders/anything", false),
        invoke("a deeper path under orders", "POST/catalog/services/orders/register/x", false),
        invoke("orders' register with a suffix", "POST/catalog/services/orders/registerx", false),
        invoke("another method", "DELETE/catalog/services/orders/register", false),
        invoke("a service named like orders", "POST/catalog/services/orders-evil/register", false),
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
    let t = deployed("template.yaml");
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
    // What SAM's AWSLambdaDynamoDBExecutionRole would have added: every
    // other stream of the account.
    let other_stream = "arn:aws:dynamodb:us-east-1:123456789012:table/payroll/stream/2026-01-01T00:00:00.000";
    for action in ["dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:DescribeStream"] {
        cases.push(case(
            &format!("fan-out {action} another table's stream"),
            &fanout,
            action,
            other_stream,
            json!({}),
            false,
        ));
    }

    let refresh = function_policies(&t, "RefreshFunction", &env);
    for action in beacon_fanout::REFRESH_IAM_ACTIONS {
        let resource = match *action {
            a if a.starts_with("dynamodb:") => TABLE,
            a if a.starts_with("sqs:") => REFRESH_QUEUE,
            "sns:Publish" => TOPIC,
            other => panic!("no resource for {other}"),
        };
        cases.push(case(&format!("refresh {action}"), &refresh, action, resource, keys("CONSUMER#web"), true));
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
    cases.push(case("sweeper deletes", &sweeper, "dynamodb:DeleteItem", TABLE, keys("SERVICE#orders"), true));
    cases.push(case("sweeper queries the table", &sweeper, "dynamodb:Query", TABLE, json!({}), false));
    cases.push(case("sweeper writes", &sweeper, "dynamodb:PutItem", TABLE, json!({}), false));
    cases.push(case("sweeper updates", &sweeper, "dynamodb:UpdateItem", TABLE, json!({}), false));
    cases.push(case("sweeper scans", &sweeper, "dynamodb:Scan", TABLE, json!({}), false));
    assert_decisions(&cases);
}

/// The sweeper's janitor removes what registry viewers leave: it may list
/// and remove the topic's subscriptions and read, tag-list and delete
/// viewer queues (`beacon-watch-*`, `beacon-ui-*`), and nothing of the
/// pipeline's or a user's queues.
#[test]
fn the_janitor_reaches_only_viewer_queues_and_the_topics_subscriptions() {
    let t = deployed("template.yaml");
    let sweeper = function_policies(&t, "SweeperFunction", &main_stack());
    let queue = |name: &str| format!("arn:aws:sqs:us-east-1:{ACCOUNT}:{name}");
    let mut cases = vec![
        case("janitor lists the subscriptions", &sweeper, "sns:ListSubscriptionsByTopic", TOPIC, json!({}), true),
        case("janitor unsubscribes", &sweeper, "sns:Unsubscribe", TOPIC, json!({}), true),
        case("janitor lists queues", &sweeper, "sqs:ListQueues", "*", json!({}), true),
        case(
            "janitor lists another topic's subscriptions",
            &sweeper,
            "sns:ListSubscriptionsByTopic",
            "arn:aws:sns:us-east-1:123456789012:other",
            json!({}),
            false,
        ),
        case("janitor publishes", &sweeper, "sns:Publish", TOPIC, json!({}), false),
    ];
    for action in ["sqs:ListQueueTags", "sqs:GetQueueUrl", "sqs:GetQueueAttributes", "sqs:DeleteQueue"] {
        for viewer in ["beacon-watch-1-2", "beacon-ui-3-4"] {
            cases.push(case(&format!("janitor {action} {viewer}"), &sweeper, action, &queue(viewer), json!({}), true));
        }
        for other in ["beacon-fanout-on-failure-dev", "beacon-refresh-dev.fifo", "orders-work"] {
            cases.push(case(&format!("janitor {action} {other}"), &sweeper, action, &queue(other), json!({}), false));
        }
    }
    for action in ["sqs:ReceiveMessage", "sqs:SetQueueAttributes", "sqs:SendMessage", "sqs:TagQueue"] {
        cases.push(case(
            &format!("janitor {action} a viewer queue"),
            &sweeper,
            action,
            &queue("beacon-watch-1"),
            json!({}),
            false,
        ));
    }
    assert_decisions(&cases);
}

/// The topic's policy: only the fan-out's and the refresh function's roles
/// publish. Any other principal of the account is refused by an explicit
/// Deny even when its own identity policy grants `sns:Publish` on "*", so
/// nobody forges a `registered` or `resolved` event.
#[test]
fn only_the_fan_out_and_refresh_roles_publish() {
    let t = deployed("template.yaml");
    let env = main_stack();
    let topic = resource_policy(&t, "TopicPolicy", &env);
    let p = principals();
    let broad = [allow_all("sns:Publish")];
    assert_decisions(&[
        case("the fan-out publishes", &p.fanout, "sns:Publish", TOPIC, json!({}), true).by(FANOUT_ROLE).under(&topic),
        case("the refresh function publishes", &p.refresh, "sns:Publish", TOPIC, json!({}), true)
            .by(REFRESH_ROLE)
            .under(&topic),
        expect("an unrelated role with sns:Publish on *", &broad, "sns:Publish", TOPIC, json!({}), ExplicitlyDenied)
            .by(UNRELATED_ROLE)
            .under(&topic),
        expect(
            "a viewer with sns:Publish on * too",
            &[viewer_policy(), allow_all("sns:Publish")],
            "sns:Publish",
            TOPIC,
            json!({}),
            ExplicitlyDenied,
        )
        .under(&topic),
        expect(
            "the sweeper with sns:Publish on * too",
            &[allow_all("sns:Publish")],
            "sns:Publish",
            TOPIC,
            json!({}),
            ExplicitlyDenied,
        )
        .by("arn:aws:iam::123456789012:role/beacon-dev-SweeperFunctionRole-7G8H9I")
        .under(&topic),
        case("a viewer publishes", &p.viewer, "sns:Publish", TOPIC, json!({}), false).under(&topic),
        case("a consumer publishes", &p.consumer, "sns:Publish", TOPIC, json!({}), false).under(&topic),
        case("a service writer publishes", &p.writer, "sns:Publish", TOPIC, json!({}), false).under(&topic),
        expect("another account's role named like the fan-out's", &broad, "sns:Publish", TOPIC, json!({}), Denied)
            .by("arn:aws:iam::999999999999:role/beacon-dev-FanoutFunctionRole-1A2B3C")
            .under(&topic),
    ]);
}

/// Subscriptions are SQS queues or Lambda functions of the registry's own
/// account and Region: the topic policy denies any other protocol or
/// endpoint to every principal (explicitly, so a broad `sns:Subscribe` grant
/// does not help), and the viewer's own policy allows only its
/// `beacon-watch-*` / `beacon-ui-*` queues.
#[test]
fn only_queues_and_functions_of_the_account_subscribe() {
    let t = deployed("template.yaml");
    let topic = resource_policy(&t, "TopicPolicy", &main_stack());
    let p = principals();
    let broad = [allow_all("sns:Subscribe")];
    let sub = |protocol: &str, endpoint: &str| json!({ "sns:Protocol": protocol, "sns:Endpoint": endpoint });
    let own_queue = queue("beacon-watch-alice-1");
    let mut cases = vec![
        // Controls.
        case("viewer subscribes its queue", &p.viewer, "sns:Subscribe", TOPIC, sub("sqs", &own_queue), true),
        case(
            "viewer subscribes its queue (topic policy)",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            sub("sqs", &queue("beacon-ui-alice-1")),
            true,
        )
        .under(&topic),
        case("a team subscribes its queue", &broad, "sns:Subscribe", TOPIC, sub("sqs", &queue("orders-changes")), true)
            .by(UNRELATED_ROLE)
            .under(&topic),
        case(
            "a team subscribes its function",
            &broad,
            "sns:Subscribe",
            TOPIC,
            sub("lambda", "arn:aws:lambda:us-east-1:123456789012:function:on-change"),
            true,
        )
        .by(UNRELATED_ROLE)
        .under(&topic),
        // The viewer's identity policy alone.
        case(
            "viewer subscribes another queue",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            sub("sqs", &queue("orders-work")),
            false,
        ),
        case(
            "viewer subscribes a function",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            sub("lambda", "arn:aws:lambda:us-east-1:123456789012:function:beacon-watch-x"),
            false,
        ),
        case(
            "viewer subscribes without naming the endpoint",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            json!({ "sns:Protocol": "sqs" }),
            false,
        ),
    ];
    let hostile = [
        ("an https URL", sub("https", "https://collector.example.com/beacon")),
        ("an http URL", sub("http", "http://collector.example.com/beacon")),
        ("an e-mail address", sub("email", "someone@example.com")),
        ("another account's queue", sub("sqs", "arn:aws:sqs:us-east-1:999999999999:beacon-watch-x")),
        ("another Region's queue", sub("sqs", "arn:aws:sqs:eu-west-1:123456789012:beacon-watch-x")),
        ("another account's function", sub("lambda", "arn:aws:lambda:us-east-1:999999999999:function:grab")),
        ("a queue ARN over https", sub("https", &own_queue)),
    ];
    for (what, context) in hostile {
        cases.push(case(
            &format!("viewer subscribes {what}"),
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            context.clone(),
            false,
        ));
        cases.push(
            expect(
                &format!("viewer subscribes {what} (topic policy)"),
                &p.viewer,
                "sns:Subscribe",
                TOPIC,
                context.clone(),
                ExplicitlyDenied,
            )
            .under(&topic),
        );
        cases.push(
            expect(
                &format!("an unrelated role subscribes {what}"),
                &broad,
                "sns:Subscribe",
                TOPIC,
                context.clone(),
                ExplicitlyDenied,
            )
            .by(UNRELATED_ROLE)
            .under(&topic),
        );
        cases.push(
            expect(
                &format!("a consumer subscribes {what}"),
                &p.consumer,
                "sns:Subscribe",
                TOPIC,
                context,
                ExplicitlyDenied,
            )
            .under(&topic),
        );
    }
    assert_decisions(&cases);
}

/// A viewer cannot cut the other subscribers off: it may neither list nor
/// remove subscriptions, nor change one's attributes or the topic's. IAM
/// cannot limit `Unsubscribe` to one's own subscription: `sns:Unsubscribe`
/// and `sns:SetSubscriptionAttributes` are authorised against the
/// subscription's topic (IAM's service reference gives them the resource
/// type `topic` only; a subscription ARN is no resource type), so a viewer
/// is granted neither. The sweeper's janitor removes a viewer's
/// subscription once its queue is gone.
#[test]
fn a_viewer_cannot_cut_subscribers_off() {
    let p = principals();
    let topic = resource_policy(&deployed("template.yaml"), "TopicPolicy", &main_stack());
    let mut cases = vec![
        case(
            "viewer subscribes its queue",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            json!({ "sns:Protocol": "sqs", "sns:Endpoint": queue("beacon-watch-alice-1") }),
            true,
        )
        .under(&topic),
    ];
    for (who, policies) in [("viewer", &p.viewer), ("consumer", &p.consumer), ("service writer", &p.writer)] {
        for action in [
            "sns:Unsubscribe",
            "sns:SetSubscriptionAttributes",
            "sns:ListSubscriptionsByTopic",
            "sns:SetTopicAttributes",
            "sns:DeleteTopic",
            "sns:AddPermission",
        ] {
            cases.push(case(&format!("{who}: {action}"), policies, action, TOPIC, json!({}), false).under(&topic));
        }
        for action in ["sns:Unsubscribe", "sns:SetSubscriptionAttributes"] {
            cases.push(case(&format!("{who}: {action} on any topic"), policies, action, "*", json!({}), false));
        }
        cases.push(case(
            &format!("{who}: lists every subscription"),
            policies,
            "sns:ListSubscriptions",
            "*",
            json!({}),
            false,
        ));
    }
    assert_decisions(&cases);
}

/// A viewer's temporary queues are its own: created tagged
/// `beacon:owner = ${aws:userid}`, and used (read, delete messages, change
/// attributes, delete, renew the lease tag) only while that tag names the
/// caller. Another viewer's queue, or any other queue, is out of reach,
/// including by re-tagging it.
#[test]
fn a_viewer_cannot_take_over_another_viewers_queue() {
    let p = principals();
    let mine = queue("beacon-watch-alice-1");
    let theirs = queue("beacon-ui-bob-1");
    let owned_by = |owner: &str| json!({ "aws:userid": ME, "aws:ResourceTag/beacon:owner": owner });
    let create = |tags: Value, keys: &[&str]| {
        let mut c = json!({ "aws:userid": ME, "aws:TagKeys": keys });
        for (k, v) in tags.as_object().unwrap() {
            c[format!("aws:RequestTag/{k}")] = v.clone();
        }
        c
    };
    let v = &p.viewer;
    let mut cases = vec![
        case(
            "viewer creates its queue tagged as its own",
            v,
            "sqs:CreateQueue",
            &mine,
            create(json!({ "beacon:owner": ME, "beacon:lease": "1780000000" }), &["beacon:owner", "beacon:lease"]),
            true,
        ),
        case(
            "viewer tags its queue as it creates it",
            v,
            "sqs:TagQueue",
            &mine,
            create(json!({ "beacon:owner": ME, "beacon:lease": "1780000000" }), &["beacon:owner", "beacon:lease"]),
            true,
        ),
        case(
            "viewer creates a queue without the owner tag",
            v,
            "sqs:CreateQueue",
            &mine,
            json!({ "aws:userid": ME }),
            false,
        ),
        case(
            "viewer creates a queue tagged as another's",
            v,
            "sqs:CreateQueue",
            &mine,
            create(json!({ "beacon:owner": THEM }), &["beacon:owner"]),
            false,
        ),
        case(
            "viewer creates a queue with another tag",
            v,
            "sqs:CreateQueue",
            &mine,
            create(json!({ "beacon:owner": ME, "team": "x" }), &["beacon:owner", "team"]),
            false,
        ),
        case(
            "viewer creates another queue",
            v,
            "sqs:CreateQueue",
            &queue("orders-work"),
            create(json!({ "beacon:owner": ME }), &["beacon:owner"]),
            false,
        ),
        case(
            "viewer renews its lease",
            v,
            "sqs:TagQueue",
            &mine,
            {
                let mut c = create(json!({ "beacon:lease": "1780000300" }), &["beacon:lease"]);
                c["aws:ResourceTag/beacon:owner"] = json!(ME);
                c
            },
            true,
        ),
        case(
            "viewer re-tags another's queue as its own",
            v,
            "sqs:TagQueue",
            &theirs,
            {
                let mut c = create(json!({ "beacon:owner": ME }), &["beacon:owner"]);
                c["aws:ResourceTag/beacon:owner"] = json!(THEM);
                c
            },
            false,
        ),
        case(
            "viewer extends another's lease",
            v,
            "sqs:TagQueue",
            &theirs,
            {
                let mut c = create(json!({ "beacon:lease": "4102444800" }), &["beacon:lease"]);
                c["aws:ResourceTag/beacon:owner"] = json!(THEM);
                c
            },
            false,
        ),
        case(
            "viewer gives its queue another owner",
            v,
            "sqs:TagQueue",
            &mine,
            {
                let mut c = create(json!({ "beacon:owner": THEM }), &["beacon:owner"]);
                c["aws:ResourceTag/beacon:owner"] = json!(ME);
                c
            },
            false,
        ),
        case("viewer untags its queue", v, "sqs:UntagQueue", &mine, owned_by(ME), false),
    ];
    for action in ["sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"] {
        cases.push(case(&format!("viewer {action} its own queue"), v, action, &mine, owned_by(ME), true));
        cases.push(case(&format!("viewer {action} another viewer's queue"), v, action, &theirs, owned_by(THEM), false));
        cases.push(case(
            &format!("viewer {action} an untagged queue"),
            v,
            action,
            &theirs,
            json!({ "aws:userid": ME }),
            false,
        ));
        cases.push(case(
            &format!("viewer {action} another queue"),
            v,
            action,
            &queue("orders-work"),
            owned_by(ME),
            false,
        ));
    }
    // It never deletes a queue, even its own: on exit it ends its lease and
    // the janitor removes the subscription, then the queue.
    cases.push(case("viewer deletes its own queue", v, "sqs:DeleteQueue", &mine, owned_by(ME), false));
    for action in
        ["sqs:SendMessage", "sqs:PurgeQueue", "sqs:AddPermission", "sqs:ChangeMessageVisibility", "sqs:DeleteQueue"]
    {
        cases.push(case(&format!("viewer {action} another viewer's queue"), v, action, &theirs, owned_by(THEM), false));
    }
    for (who, policies) in [("consumer", &p.consumer), ("service writer", &p.writer)] {
        for action in ["sqs:ReceiveMessage", "sqs:SetQueueAttributes", "sqs:DeleteQueue"] {
            cases.push(case(
                &format!("{who}: {action} a viewer's queue"),
                policies,
                action,
                &theirs,
                owned_by(THEM),
                false,
            ));
        }
    }
    assert_decisions(&cases);
}

/// The refresh queue's policy: only the fan-out and the refresh function
/// send pages; any other principal is refused explicitly, whatever its own
/// identity policy grants.
#[test]
fn only_beacon_sends_into_the_refresh_queue() {
    let t = deployed("template.yaml");
    let env = main_stack();
    let q = resource_policy(&t, "RefreshQueuePolicy", &env);
    let p = principals();
    assert_decisions(&[
        case("the fan-out sends a page", &p.fanout, "sqs:SendMessage", REFRESH_QUEUE, json!({}), true)
            .by(FANOUT_ROLE)
            .under(&q),
        case("the refresh function sends a page", &p.refresh, "sqs:SendMessage", REFRESH_QUEUE, json!({}), true)
            .by(REFRESH_ROLE)
            .under(&q),
        expect(
            "an unrelated role with sqs:SendMessage on *",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            REFRESH_QUEUE,
            json!({}),
            ExplicitlyDenied,
        )
        .by(UNRELATED_ROLE)
        .under(&q),
        expect(
            "a viewer with sqs:SendMessage on * too",
            &[viewer_policy(), allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            REFRESH_QUEUE,
            json!({}),
            ExplicitlyDenied,
        )
        .under(&q),
        case("a viewer sends a page", &p.viewer, "sqs:SendMessage", REFRESH_QUEUE, json!({}), false).under(&q),
        case("a service writer sends a page", &p.writer, "sqs:SendMessage", REFRESH_QUEUE, json!({}), false).under(&q),
    ]);
}

/// The policy Beacon writes on every queue it subscribes
/// (`beacon_aws::viewer::queue_policy`): the topic delivers; another topic
/// does not; and no principal of the account sends into it directly, even
/// with a broad `sqs:SendMessage` grant of its own (an explicit Deny unless
/// `aws:SourceArn` is the topic).
#[test]
fn a_subscribed_queue_denies_every_sender_but_its_topic() {
    let q = queue("beacon-watch-alice-1");
    let policy = beacon_aws::viewer::queue_policy(&q, TOPIC);
    let sns = |name: &str, source: &str, allowed: bool| {
        case(name, &[], "sqs:SendMessage", &q, json!({ "aws:SourceArn": source }), allowed)
            .by("sns.amazonaws.com")
            .under(&policy)
    };
    let other_topic = "arn:aws:sns:us-east-1:123456789012:someone-elses-topic";
    assert_decisions(&[
        sns("the topic delivers", TOPIC, true),
        sns("another topic delivers", other_topic, false),
        expect(
            "an unrelated role with sqs:SendMessage on *",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            &q,
            json!({}),
            ExplicitlyDenied,
        )
        .by(UNRELATED_ROLE)
        .under(&policy),
        expect(
            "the fan-out sends into a subscriber's queue",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            &q,
            json!({}),
            ExplicitlyDenied,
        )
        .by(FANOUT_ROLE)
        .under(&policy),
        expect(
            "another topic's delivery to a role-granted queue",
            &[],
            "sqs:SendMessage",
            &q,
            json!({ "aws:SourceArn": other_topic }),
            Denied,
        )
        .by("sns.amazonaws.com")
        .under(&policy),
    ]);
}

/// Every queue Beacon subscribes gets that policy before it subscribes (AWS
/// drops deliveries otherwise; the local SNS server does not check, so the
/// policy is read back from the queue and evaluated here).
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
    let sns = |name: &str, source: &str, allowed: bool| {
        case(name, &[], "sqs:SendMessage", queue_arn, json!({ "aws:SourceArn": source }), allowed)
            .by("sns.amazonaws.com")
            .under(&policy)
    };
    let other = p.topic_arn.replace(&p.table, "someone-elses-topic");
    let account = queue_arn.split(':').nth(4).unwrap().to_owned();
    assert_decisions(&[
        sns("the topic delivers", &p.topic_arn, true),
        sns("another topic delivers", &other, false),
        expect(
            "a role of the account with sqs:SendMessage on *",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            queue_arn,
            json!({}),
            ExplicitlyDenied,
        )
        .by(&format!("arn:aws:iam::{account}:role/some-team-admin"))
        .under(&policy),
    ]);
    p.stop().await;
}

/// `beacon ui` and `beacon watch` read and follow, and write nothing but
/// their own temporary queues.
#[test]
fn a_registry_viewer_reads_and_follows_but_writes_nothing() {
    let p = [viewer_policy()];
    let own = json!({ "aws:userid": ME, "aws:ResourceTag/beacon:owner": ME });
    assert_decisions(&[
        case("viewer scans", &p, "dynamodb:Scan", TABLE, json!({}), true),
        case("viewer queries", &p, "dynamodb:Query", TABLE, keys("SERVICE#orders"), true),
        case("viewer reads an item", &p, "dynamodb:GetItem", TABLE, keys("CONSUMER#web"), true),
        case(
            "viewer subscribes its queue",
            &p,
            "sns:Subscribe",
            TOPIC,
            json!({ "sns:Protocol": "sqs", "sns:Endpoint": queue("beacon-ui-alice-1") }),
            true,
        ),
        case("viewer reads its queue", &p, "sqs:ReceiveMessage", &queue("beacon-watch-1-2"), own.clone(), true),
        case("viewer puts", &p, "dynamodb:PutItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer updates", &p, "dynamodb:UpdateItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer deletes", &p, "dynamodb:DeleteItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer batch-writes", &p, "dynamodb:BatchWriteItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer PartiQL-updates", &p, "dynamodb:PartiQLUpdate", TABLE, keys("SERVICE#payments"), false),
        case("viewer publishes", &p, "sns:Publish", TOPIC, json!({}), false),
        case("viewer reads another queue", &p, "sqs:ReceiveMessage", &queue("orders-work"), own.clone(), false),
        case("viewer deletes another queue", &p, "sqs:DeleteQueue", &queue("beacon-fanout-on-failure-dev"), own, false),
    ]);
}
