//! Least privilege per function, read from the deployed roles: exactly the
//! actions each function's code calls, no managed policy but basic
//! execution, no wildcard, and no parameter that could widen an ARN.

use std::collections::BTreeSet;

use serde_yaml::Value;

use crate::{as_list, root, template};

fn statements(function: &Value) -> Vec<Value> {
    // A SAM function's policies are documents; an IAM role's are named
    // (`PolicyName`, `PolicyDocument`).
    as_list(&function["Properties"]["Policies"])
        .iter()
        .flat_map(|p| {
            let mut s = as_list(&p["Statement"]);
            s.extend(as_list(&p["PolicyDocument"]["Statement"]));
            s
        })
        .filter(|s| !s.is_null())
        .collect()
}

/// The template as AWS deploys it: transformed by AWS's SAM translator,
/// offline (`tests/iam/sam_transform.py`; ./scripts/bootstrap installs
/// aws-sam-translator into .venv).
fn deployed(name: &str) -> Value {
    let out = std::process::Command::new(root().join(".venv/bin/python"))
        .arg(root().join("tests/iam/sam_transform.py"))
        .arg(root().join("infra").join(name))
        .output()
        .expect("the SAM translator runs (./scripts/bootstrap installs it)");
    assert!(out.status.success(), "transforming {name}: {}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    serde_yaml::to_value(json).unwrap()
}

/// The only managed policy a deployed role may carry: the function's own
/// CloudWatch logs (logs:CreateLogGroup, CreateLogStream, PutLogEvents).
const BASIC_EXECUTION: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

/// The deployed role of a function (in the transformed template).
fn role_of<'a>(t: &'a Value, function: &str) -> &'a Value {
    let id = t["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0].as_str().unwrap();
    &t["Resources"][id]
}

/// Every statement of a function's deployed role's inline policies, those
/// behind a condition (`Fn::If`, say `EventBusOn`) included as if it held.
fn role_statements(t: &Value, function: &str) -> Vec<Value> {
    as_list(&role_of(t, function)["Properties"]["Policies"])
        .iter()
        .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
        .map(|s| match s.get("Fn::If") {
            Some(branches) => as_list(branches)[1].clone(),
            None => s,
        })
        .collect()
}

fn role_actions(t: &Value, function: &str) -> BTreeSet<String> {
    role_statements(t, function)
        .iter()
        .flat_map(|s| as_list(&s["Action"]))
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

/// Actions IAM's service authorization reference defines with no resource
/// type: a policy can grant them only on "*" (the IAM simulator in
/// tests/tests/iam/ refuses any other resource for them).
const WILDCARD_ONLY: &[&str] = &["dynamodb:ListStreams", "sqs:ListQueues"];

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Read from the deployed roles: what SAM adds for an event (a policy of
/// its own, like the on-failure destination's SendMessage) counts too.
#[test]
fn every_function_is_granted_exactly_what_its_code_calls() {
    let t = deployed("template.yaml");
    // With EventBusName set, both publishers put events on the bus too.
    let with_bus = |actions: &[&str]| set(&[actions, beacon_fanout::EVENT_BUS_IAM_ACTIONS].concat());
    assert_eq!(role_actions(&t, "FanoutFunction"), with_bus(beacon_fanout::IAM_ACTIONS));
    assert_eq!(role_actions(&t, "RefreshFunction"), with_bus(beacon_fanout::REFRESH_IAM_ACTIONS));
    assert_eq!(role_actions(&t, "SweeperFunction"), set(beacon_sweeper::IAM_ACTIONS));
    assert_eq!(role_actions(&t, "CatalogApiFunction"), set(beacon_catalog_api::IAM_ACTIONS));
    let registrar = deployed("registrar.yaml");
    assert_eq!(role_actions(&registrar, "RegistrarFunction"), set(beacon_registrar::IAM_ACTIONS));
}

/// SAM attaches AWS managed policies by event type (a DynamoDB event:
/// AWSLambdaDynamoDBExecutionRole, every stream of the account; an SQS
/// event: AWSLambdaSQSQueueExecutionRole, every queue). No role of either
/// deployed template carries any managed policy but
/// AWSLambdaBasicExecutionRole (logs only), and every function has a role
/// of its own.
#[test]
fn no_deployed_role_carries_a_managed_policy_but_basic_execution() {
    for name in ["template.yaml", "registrar.yaml"] {
        let t = deployed(name);
        let Value::Mapping(resources) = &t["Resources"] else { panic!("{name} has no Resources") };
        let mut roles = 0;
        for (id, resource) in resources {
            match resource["Type"].as_str() {
                Some("AWS::IAM::Role") => {
                    roles += 1;
                    for arn in as_list(&resource["Properties"]["ManagedPolicyArns"]).iter().filter(|a| !a.is_null()) {
                        assert_eq!(
                            arn.as_str(),
                            Some(BASIC_EXECUTION),
                            "{name} {id:?} carries the managed policy {arn:?}"
                        );
                    }
                }
                Some("AWS::Lambda::Function") => {
                    let role = &resource["Properties"]["Role"]["Fn::GetAtt"];
                    assert!(role[0].as_str().is_some(), "{name} {id:?} runs with a role from outside the stack");
                }
                _ => {}
            }
        }
        assert!(roles > 0, "{name}: no role found in the transformed template");
    }
}

/// Every template parameter that lands in a Resource ARN of a role has an
/// AllowedPattern, and that pattern refuses IAM's wildcards: a `*` there
/// would grant every function, API or table of the account. Checked with
/// Python's `re` (CloudFormation's patterns are plain regular expressions;
/// a CommaDelimitedList's pattern applies to each value).
#[test]
fn parameters_that_name_resources_refuse_wildcards() {
    for name in ["template.yaml", "registrar.yaml", "member.yaml"] {
        let t = template(name);
        let params = &t["Parameters"];
        let mut used: BTreeSet<String> = BTreeSet::new();
        let Value::Mapping(resources) = &t["Resources"] else { panic!() };
        for resource in resources.values() {
            for s in statements(resource) {
                collect_parameters(&s["Resource"], params, &mut used);
            }
        }
        if name == "registrar.yaml" {
            for p in ["LambdaFunctions", "RestApiId", "HttpApiId", "BeaconTableName", "BeaconTableArn", "ServiceName"] {
                assert!(used.contains(p), "{name}: {p} no longer lands in an ARN? {used:?}");
            }
        }
        if name == "member.yaml" {
            for p in ["RegistryTableArn", "RegistryTopicArn", "RegistryApiArn", "RegistryLayerArn"] {
                assert!(used.contains(p), "{name}: {p} no longer lands in an ARN? {used:?}");
            }
        }
        for p in &used {
            let pattern = params[p.as_str()]["AllowedPattern"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: parameter {p} lands in a Resource ARN and has no AllowedPattern"));
            for bad in ["*", "?", "orders*", "orders-?", "a*b", "*,x"] {
                assert!(!fullmatch(pattern, bad), "{name}: {p}'s pattern {pattern} accepts {bad:?}");
            }
        }
    }
    let registrar = template("registrar.yaml");
    for (p, good) in [("LambdaFunctions", "hello-fn"), ("RestApiId", "a1b2c3d4e5"), ("BeaconTableName", "beacon-dev")] {
        let pattern = registrar["Parameters"][p]["AllowedPattern"].as_str().unwrap();
        assert!(fullmatch(pattern, good), "{p}'s pattern refuses {good:?}");
    }
}

/// Parameter names a policy Resource refers to, by `!Ref` or inside `!Sub`.
fn collect_parameters(v: &Value, params: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Tagged(t) => {
            let tag = t.tag.to_string();
            if tag == "!Ref" {
                if let Some(n) = t.value.as_str().filter(|n| !params[*n].is_null()) {
                    out.insert(n.to_owned());
                }
            } else if tag == "!Sub" {
                let text = match &t.value {
                    Value::Sequence(parts) => {
                        collect_parameters(&parts[1], params, out);
                        parts[0].as_str().unwrap_or_default().to_owned()
                    }
                    other => other.as_str().unwrap_or_default().to_owned(),
                };
                let mut rest = text.as_str();
                while let Some(i) = rest.find("${") {
                    let end = rest[i..].find('}').map_or(rest.len(), |e| i + e);
                    let n = &rest[i + 2..end];
                    if !params[n].is_null() {
                        out.insert(n.to_owned());
                    }
                    rest = &rest[end..];
                }
            } else {
                collect_parameters(&t.value, params, out);
            }
        }
        Value::Sequence(s) => s.iter().for_each(|i| collect_parameters(i, params, out)),
        Value::Mapping(m) => m.values().for_each(|i| collect_parameters(i, params, out)),
        _ => {}
    }
}

fn fullmatch(pattern: &str, text: &str) -> bool {
    let out = std::process::Command::new(root().join(".venv/bin/python"))
        .args(["-c", "import re,sys; sys.exit(0 if re.fullmatch(sys.argv[1], sys.argv[2]) else 1)", pattern, text])
        .status()
        .unwrap();
    out.success()
}

#[test]
fn no_statement_grants_wildcard_actions_or_resources() {
    for name in ["template.yaml", "registrar.yaml", "member.yaml"] {
        // The deployed template: its roles hold every inline policy SAM
        // wrote (the functions' own and those it adds for events).
        let t = deployed(name);
        let Value::Mapping(resources) = &t["Resources"] else { panic!("{name} has no Resources") };
        for (id, resource) in resources {
            let mut all: Vec<Value> = as_list(&resource["Properties"]["Policies"])
                .iter()
                .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
                .collect();
            all.extend(as_list(&resource["Properties"]["PolicyDocument"]["Statement"]));
            for s in all.iter().filter(|s| !s.is_null()) {
                for a in as_list(&s["Action"]) {
                    let a = a.as_str().unwrap_or_default();
                    assert!(!a.contains('*'), "{name} {id:?}: wildcard action {a}");
                }
                // Only an action IAM defines without resources (wildcard-only)
                // may, and must, name "*".
                let wildcard_only =
                    as_list(&s["Action"]).iter().all(|a| WILDCARD_ONLY.contains(&a.as_str().unwrap_or_default()));
                for res in as_list(&s["Resource"]) {
                    if !wildcard_only {
                        assert_ne!(res.as_str(), Some("*"), "{name} {id:?}: Resource \"*\"");
                    }
                }
            }
        }
    }
}
