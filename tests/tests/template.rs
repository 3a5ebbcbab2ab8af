//! The SAM templates, read as data: least privilege per function, as AWS
//! deploys it (each role read from the template AWS's SAM translator
//! produces, `tests/iam/sam_transform.py`, managed policies included), and
//! the event source mapping's filter equal to the local poller's. (cfn-lint
//! validates them in ./scripts/test.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

fn template(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra").join(name);
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        other => vec![other.clone()],
    }
}

fn statements(function: &Value) -> Vec<Value> {
    as_list(&function["Properties"]["Policies"]).iter().flat_map(|p| as_list(&p["Statement"])).collect()
}

/// The root of the project.
fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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

/// Every statement of a function's deployed role's inline policies.
fn role_statements(t: &Value, function: &str) -> Vec<Value> {
    as_list(&role_of(t, function)["Properties"]["Policies"])
        .iter()
        .flat_map(|p| as_list(&p["PolicyDocument"]["Statement"]))
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
/// tests/tests/iam.rs refuses any other resource for them).
const WILDCARD_ONLY: &[&str] = &["dynamodb:ListStreams", "sqs:ListQueues"];

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Read from the deployed roles: what SAM adds for an event (a policy of
/// its own, like the on-failure destination's SendMessage) counts too.
#[test]
fn every_function_is_granted_exactly_what_its_code_calls() {
    let t = deployed("template.yaml");
    assert_eq!(role_actions(&t, "FanoutFunction"), set(beacon_fanout::IAM_ACTIONS));
    assert_eq!(role_actions(&t, "RefreshFunction"), set(beacon_fanout::REFRESH_IAM_ACTIONS));
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

/// The fan-out's stream mapping is a plain resource, not a SAM event, with
/// the settings the pipeline depends on.
#[test]
fn the_fan_out_stream_mapping_is_a_plain_resource() {
    let t = template("template.yaml");
    let r = &t["Resources"];
    assert!(r["FanoutFunction"]["Properties"]["Events"].is_null(), "a DynamoDB event would attach SAM's broad policy");
    assert_eq!(r["FanoutStream"]["Type"].as_str(), Some("AWS::Lambda::EventSourceMapping"));
    let m = &r["FanoutStream"]["Properties"];
    assert_eq!(m["StartingPosition"].as_str(), Some("TRIM_HORIZON"));
    assert_eq!(m["BisectBatchOnFunctionError"].as_bool(), Some(true));
    assert_eq!(m["MaximumRecordAgeInSeconds"].as_u64(), Some(86400));
    assert_eq!(as_list(&m["FunctionResponseTypes"]), vec![Value::from("ReportBatchItemFailures")]);
    assert!(!m["DestinationConfig"]["OnFailure"]["Destination"].is_null());
}

/// Every template parameter that lands in a Resource ARN of a role has an
/// AllowedPattern, and that pattern refuses IAM's wildcards: a `*` there
/// would grant every function, API or table of the account. Checked with
/// Python's `re` (CloudFormation's patterns are plain regular expressions;
/// a CommaDelimitedList's pattern applies to each value).
#[test]
fn parameters_that_name_resources_refuse_wildcards() {
    for name in ["template.yaml", "registrar.yaml"] {
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
            for p in ["LambdaFunctions", "RestApiId", "HttpApiId", "BeaconTableName", "ServiceName"] {
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

/// SAM attaches AWS's broad execution-role policies to a function with an
/// SQS event (AWSLambdaSQSQueueExecutionRole: every queue in the account):
/// the refresh queue's mapping is declared as a plain resource instead.
#[test]
fn the_refresh_queue_is_fifo_with_a_dead_letter_queue_and_a_plain_mapping() {
    let t = template("template.yaml");
    let r = &t["Resources"];
    let q = &r["RefreshQueue"]["Properties"];
    assert_eq!(q["FifoQueue"], Value::Bool(true));
    assert_eq!(
        q["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(u64::from(beacon_local::setup::REFRESH_MAX_RECEIVES))
    );
    assert_eq!(r["RefreshDeadLetterQueue"]["Properties"]["FifoQueue"], Value::Bool(true));
    assert!(r["RefreshFunction"]["Properties"]["Events"].is_null(), "an SQS event would attach SAM's broad policy");
    let mapping = &r["RefreshPages"]["Properties"];
    assert_eq!(r["RefreshPages"]["Type"].as_str(), Some("AWS::Lambda::EventSourceMapping"));
    assert_eq!(mapping["BatchSize"].as_u64(), Some(1));
    assert_eq!(as_list(&mapping["FunctionResponseTypes"]), vec![Value::from("ReportBatchItemFailures")]);
    // The visibility timeout covers several runs of the function, so a page
    // being written is not delivered again.
    let timeout =
        r["RefreshFunction"]["Properties"]["Timeout"].as_u64().or(t["Globals"]["Function"]["Timeout"].as_u64());
    assert!(q["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout.unwrap());
}

#[test]
fn no_statement_grants_wildcard_actions_or_resources() {
    for name in ["template.yaml", "registrar.yaml"] {
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

#[test]
fn the_mapping_filter_equals_the_local_pollers() {
    let t = template("template.yaml");
    let filters = &t["Resources"]["FanoutStream"]["Properties"]["FilterCriteria"]["Filters"];
    let from_template: Vec<serde_json::Value> =
        as_list(filters).iter().map(|f| serde_json::from_str(f["Pattern"].as_str().unwrap()).unwrap()).collect();
    let local = beacon_local::filter::FilterCriteria::beacon();
    assert_eq!(from_template, local.patterns());
}

#[test]
fn the_table_is_what_the_code_expects() {
    let t = template("template.yaml");
    let table = &t["Resources"]["Table"]["Properties"];
    assert_eq!(table["StreamSpecification"]["StreamViewType"].as_str(), Some("NEW_AND_OLD_IMAGES"));
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(beacon_domain::keys::EXPIRES_AT));
    let index = &as_list(&table["GlobalSecondaryIndexes"])[0];
    assert_eq!(index["IndexName"].as_str(), Some(beacon_domain::keys::EXPIRY_INDEX));
    assert_eq!(table["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
}

/// The API is defined by infra/openapi.yaml: every write is signed (IAM),
/// the per-service routes exist, the seed's unscoped routes exist only while
/// `UnscopedWriteRoutes` is on, and the reads are signed exactly when
/// `SignedReads` is on.
#[test]
fn the_api_definition_signs_writes_and_scopes_them_per_service() {
    let t = template("template.yaml");
    let include = &t["Resources"]["CatalogApi"]["Properties"]["DefinitionBody"]["Fn::Transform"];
    assert_eq!(include["Name"].as_str(), Some("AWS::Include"));
    assert_eq!(include["Parameters"]["Location"].as_str(), Some("openapi.yaml"));
    let api = template("openapi.yaml");
    let paths = &api["paths"];
    let signed = |op: &Value| as_list(&op["security"]).iter().any(|s| s.get("sigv4").is_some());
    for route in ["/catalog/services/{name}/register", "/catalog/services/{name}/deregister"] {
        assert!(signed(&paths[route]["post"]), "{route} is not signed");
    }
    for route in ["/catalog/register", "/catalog/deregister"] {
        let branches = as_list(&paths[route]["Fn::If"]);
        assert_eq!(branches[0].as_str(), Some("UnscopedWriteRoutesOn"), "{route} is not behind the parameter");
        assert!(signed(&branches[1]["post"]), "{route} is not signed");
    }
    for route in ["/catalog/{name}/{version}", "/catalog/{name}", "/catalog"] {
        let security = as_list(&paths[route]["get"]["security"]["Fn::If"]);
        assert_eq!(security[0].as_str(), Some("SignedReadsOn"), "{route}");
        assert!(as_list(&security[1]).iter().any(|s| s.get("sigv4").is_some()), "{route} signed when on");
        assert!(as_list(&security[2]).is_empty(), "{route} open when off");
    }
    let conditions = &t["Conditions"];
    assert!(!conditions["UnscopedWriteRoutesOn"].is_null() && !conditions["SignedReadsOn"].is_null());
}

/// The definition as CloudFormation hands it to API Gateway for one setting
/// of the stack's conditions: `Fn::If` picks a branch (`AWS::NoValue`
/// removes the key), `Fn::Sub` becomes a concrete ARN.
fn render(v: &Value, unscoped: bool, signed_reads: bool) -> Option<serde_json::Value> {
    match v {
        Value::Mapping(m) => {
            if let Some(branches) = m.get("Fn::If") {
                let b = as_list(branches);
                let on = match b[0].as_str() {
                    Some("UnscopedWriteRoutesOn") => unscoped,
                    Some("SignedReadsOn") => signed_reads,
                    other => panic!("unknown condition {other:?}"),
                };
                return render(&b[if on { 1 } else { 2 }], unscoped, signed_reads);
            }
            if m.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
                return None;
            }
            if let Some(Value::String(s)) = m.get("Fn::Sub") {
                let arn = "arn:aws:lambda:us-east-1:123456789012:function:beacon-catalog-api-dev";
                let out = s
                    .replace("${AWS::Partition}", "aws")
                    .replace("${AWS::Region}", "us-east-1")
                    .replace("${CatalogApiFunction.Arn}", arn);
                assert!(!out.contains("${"), "unresolved substitution in {s}");
                return Some(serde_json::Value::String(out));
            }
            Some(serde_json::Value::Object(
                m.iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), render(v, unscoped, signed_reads)?)))
                    .collect(),
            ))
        }
        Value::Sequence(s) => {
            Some(serde_json::Value::Array(s.iter().filter_map(|i| render(i, unscoped, signed_reads)).collect()))
        }
        other => Some(serde_json::to_value(other).unwrap()),
    }
}

/// Each way the stack can deploy the definition is a valid OpenAPI 3.0
/// document (openapi-spec-validator, from PyPI, installed by bootstrap), and
/// the README's route table lists exactly its routes.
#[test]
fn the_api_definition_is_valid_openapi_and_the_readme_lists_its_routes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let api = template("openapi.yaml");
    for (unscoped, signed) in [(true, false), (false, true)] {
        let doc = render(&api, unscoped, signed).unwrap();
        let file = std::env::temp_dir().join(format!("beacon-openapi-{unscoped}-{signed}-{}.json", std::process::id()));
        std::fs::write(&file, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
        let out = std::process::Command::new(root.join(".venv/bin/openapi-spec-validator"))
            .arg(&file)
            .output()
            .expect("openapi-spec-validator (./scripts/bootstrap installs it)");
        assert!(
            out.status.success(),
            "unscoped routes {unscoped}, signed reads {signed}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_file(file);
        let paths = doc["paths"].as_object().unwrap();
        assert_eq!(paths.contains_key("/catalog/register"), unscoped, "the unscoped route follows its parameter");
    }
    let doc = render(&api, true, false).unwrap();
    let mut defined: BTreeSet<String> = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            defined.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let listed: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|r| r.starts_with("GET /catalog") || r.starts_with("POST /catalog"))
        .map(|r| r.split('?').next().unwrap_or(r).to_owned())
        .collect();
    assert_eq!(listed, defined, "the README's route table and infra/openapi.yaml differ");
}
