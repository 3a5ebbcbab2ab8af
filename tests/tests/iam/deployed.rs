//! The policies as AWS deploys them: the templates after AWS's SAM
//! translator, their intrinsics resolved for one concrete stack, and the
//! ready-to-paste policies of `infra/policies/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

use crate::{ACCOUNT, FANOUT_ROLE, REFRESH_QUEUE, REFRESH_ROLE, TABLE, TOPIC};

/// The one managed policy a Beacon role may carry, and what it grants (AWS's
/// `AWSLambdaBasicExecutionRole`: the function's own logs, nothing else).
const BASIC_EXECUTION: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

pub(crate) fn root() -> PathBuf {
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
pub(crate) fn deployed(name: &str) -> Yaml {
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
/// tests/tests/template/roles.rs checks every role of both templates).
pub(crate) fn function_policies(t: &Yaml, function: &str, env: &BTreeMap<&str, Value>) -> Vec<Value> {
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
pub(crate) fn resource_policy(t: &Yaml, id: &str, env: &BTreeMap<&str, Value>) -> Value {
    resolve(&t["Resources"][id]["Properties"]["PolicyDocument"], env)
}

/// A policy from `infra/policies/`, its `${Name}` placeholders filled in
/// (IAM's own policy variables, `${aws:...}`, stay for the simulator).
pub(crate) fn policy_file(name: &str, vars: &[(&str, &str)]) -> Value {
    let mut text = std::fs::read_to_string(root().join("infra/policies").join(name)).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(!text.replace("${aws:", "").contains("${"), "{name}: a placeholder is left: {text}");
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn main_stack() -> BTreeMap<&'static str, Value> {
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

pub(crate) fn registrar_stack(service: &str) -> BTreeMap<&'static str, Value> {
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
