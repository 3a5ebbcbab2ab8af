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
pub(crate) fn resolve(v: &Yaml, env: &BTreeMap<&str, Value>) -> Value {
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
            if let Some(literal) = var.strip_prefix('!') {
                // `${!x}` is CloudFormation's escape for a literal `${x}`
                // (IAM's own policy variables).
                out.push_str(&format!("${{{literal}}}"));
            } else {
                let value = extra.get(var).cloned().unwrap_or_else(|| lookup(var));
                out.push_str(value.as_str().unwrap_or_default());
            }
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
    role_policies(t, role_id, env, true)
}

/// A role's inline policies, and (with `managed`) the managed ones it
/// carries as their statements; only AWSLambdaBasicExecutionRole may be one.
pub(crate) fn role_policies(t: &Yaml, role_id: &str, env: &BTreeMap<&str, Value>, managed: bool) -> Vec<Value> {
    let role = &t["Resources"][role_id];
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"), "{role_id}");
    let mut policies: Vec<Value> = role["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|p| resolve(&p["PolicyDocument"], env))
        .collect();
    for arn in role["Properties"]["ManagedPolicyArns"].as_sequence().into_iter().flatten() {
        let arn = resolve(arn, env);
        assert_eq!(arn.as_str(), Some(BASIC_EXECUTION), "{role_id} carries the managed policy {arn}");
        if managed {
            policies.push(basic_execution_policy());
        }
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
        ("BeaconTableArn", json!("")),
        ("RegistryElsewhere", json!(false)),
        ("LambdaFunctions", json!(["hello-fn"])),
        ("RestApiId", json!("r3st")),
        ("HttpApiId", json!("")),
        ("HasRestApi", json!(true)),
        ("HasHttpApi", json!(false)),
        ("AWS::NoValue", Value::Null),
    ])
}

/// The Organization whose member accounts use the registry.
pub(crate) const ORG: &str = "o-a1b2c3d4e5";
/// The extension layer's version, as the registry's stack outputs it.
pub(crate) const LAYER: &str = "arn:aws:lambda:us-east-1:123456789012:layer:beacon-extension-dev:7";

/// The registry's stack with `OrganizationId` set (and `SignedReads` as given).
pub(crate) fn organization_stack(signed_reads: bool) -> BTreeMap<&'static str, Value> {
    let mut env = main_stack();
    env.insert("OrganizationOn", json!(true));
    env.insert("OrganizationId", json!(ORG));
    env.insert("SignedReadsOn", json!(signed_reads));
    env.insert("ExtensionLayer", json!(LAYER));
    env
}

/// A template read as written (no SAM transform: `infra/member.yaml` is
/// plain CloudFormation, and `infra/api-gateway.json` is included as is).
pub(crate) fn raw(name: &str) -> Yaml {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("infra").join(name)).unwrap()).unwrap()
}

/// The table's resource policy in a stack (`Value::Null` when it has none).
pub(crate) fn table_policy(t: &Yaml, env: &BTreeMap<&str, Value>) -> Value {
    resolve(&t["Resources"]["Table"]["Properties"]["ResourcePolicy"], env)
        .get("PolicyDocument")
        .cloned()
        .unwrap_or(Value::Null)
}

/// The API's resource policy (`x-amazon-apigateway-policy` of
/// `infra/api-gateway.json`, from `infra/api-policy.yaml`), its `execute-api:/` shorthand expanded to the
/// API's ARN as API Gateway does when it attaches it.
pub(crate) fn api_policy(env: &BTreeMap<&str, Value>) -> Value {
    let policy = resolve(&raw("api-gateway.json")["x-amazon-apigateway-policy"], env);
    let api = crate::API.rsplit_once('/').unwrap().0;
    serde_json::from_str(&policy.to_string().replace("execute-api:/", &format!("{api}/"))).unwrap()
}

/// The policies of a role of `infra/member.yaml` deployed in `account`.
pub(crate) fn member_role(role: &str, account: &str, vars: &[(&'static str, &str)]) -> Vec<Value> {
    let mut env = BTreeMap::from([
        ("AWS::Partition", json!("aws")),
        ("AWS::Region", json!("us-east-1")),
        ("AWS::AccountId", json!(account)),
        ("RegistryTableArn", json!(TABLE)),
        ("RegistryTopicArn", json!(TOPIC)),
        ("RegistryApiArn", json!(crate::API)),
        ("RegistryLayerArn", json!(LAYER)),
        ("AWS::NoValue", Value::Null),
    ]);
    for (k, v) in vars {
        env.insert(k, json!(v));
    }
    let t = raw("member.yaml");
    t["Resources"][role]["Properties"]["Policies"]
        .as_sequence()
        .unwrap_or_else(|| panic!("member.yaml has no role {role}"))
        .iter()
        .map(|p| resolve(&p["PolicyDocument"], &env))
        .collect()
}

/// The tags a role of `infra/member.yaml` carries, for its parameters.
pub(crate) fn member_role_tags(role: &str, vars: &[(&'static str, &str)]) -> Vec<(String, String)> {
    let mut env = BTreeMap::from([("AWS::NoValue", Value::Null)]);
    for (k, v) in vars {
        env.insert(k, json!(v));
    }
    let t = raw("member.yaml");
    t["Resources"][role]["Properties"]["Tags"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|tag| {
            let v = resolve(tag, &env);
            (v["Key"].as_str().unwrap().to_owned(), v["Value"].as_str().unwrap().to_owned())
        })
        .collect()
}
