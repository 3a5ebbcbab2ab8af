//! The CDK construct (`infra/cdk`, issue 30) grants what the SAM template
//! grants. Its template is synthesized by `infra/cdk/scripts/synth-json.js`
//! (offline, as `tests/iam/sam_transform.py` transforms the SAM one), its
//! intrinsics resolved for the same concrete stack as the SAM template's
//! (`deployed::main_stack`; a CDK logical id, `BeaconTopicEE914486`, takes
//! the values of its SAM name, `Topic`, found by its construct path). Then,
//! for each function's role and the schedule's role:
//!
//! - the statements, cut into (effect, action, resource, conditions)
//!   atoms with IAM's equivalences applied (a one-element list is its
//!   element, lists are sets, Sids do not count), are the same set;
//! - the IAM simulator decides the same on every request of a matrix that
//!   holds functions.rs's requests (the pipeline's actions and probes, on
//!   the table, its indexes and stream, other tables, the topic, the
//!   pipeline's, viewers' and other queues, with each partition's keys);
//!
//! and likewise for the topic's, the refresh queue's, the table's and the
//! API's resource policies (with and without an Organization), and for the
//! grant helpers against the policies of `infra/policies/` they stand for.
//! The needs and names the construct accepts are the domain's
//! (`the_constructs_needs_are_the_domains`).
//!
//! The control, run by hand and not committed: dropping the `Null`
//! condition from the sweeper's `Expire` statement in
//! `infra/cdk/lib/beacon.ts` makes both `the_functions_roles_are_sams`
//! checks fail (the atoms differ; the simulator allows the sweeper a
//! `DeleteItem` without a key, which SAM's role refuses). Rebuild first:
//! `(cd infra/cdk && npx tsc)`, or let this test do it (it compiles when a
//! source is newer than the build).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use serde_json::{Value, json};
use serde_yaml::Value as Yaml;

use crate::deployed::{
    self, api_policy, deployed, main_stack, organization_stack, policy_file, resolve, resource_policy, root,
    table_policy,
};
use crate::simulator::{keys, simulate};
use crate::*;

const ORGANIZATION: &[&str] = &["OrganizationId=o-a1b2c3d4e5", "SignedReads=on"];
/// The SAM template's own names for the roles compared.
const ROLES: &[&str] = &[
    "FanoutFunctionRole",
    "RefreshFunctionRole",
    "SweeperFunctionRole",
    "CatalogApiFunctionRole",
    "SweeperFunctionEveryMinuteRole",
];

/// The CDK library's package (infra/cdk), compiled when a source is newer
/// than its build (./scripts/test builds it before the suite).
fn built() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = root().join("infra/cdk");
        let tsc = dir.join("node_modules/.bin/tsc");
        assert!(tsc.exists(), "infra/cdk has no node_modules: run ./scripts/bootstrap");
        // A stamp of the last build here: tsc leaves unchanged outputs as they were.
        let stamp = dir.join("dist/.built-for-tests");
        let built = modified(&stamp);
        let newest = ["lib", "scripts", "test", "example", "tsconfig.json"]
            .iter()
            .flat_map(|d| files(&dir.join(d)))
            .filter_map(|f| modified(&f))
            .max();
        // ./scripts/test built it, and runs the CDK checks on that build
        // beside the suite: a rebuild here would rewrite dist/ under them.
        if std::env::var_os("BEACON_CDK_BUILT").is_some() {
            assert!(built.is_some(), "BEACON_CDK_BUILT is set but infra/cdk/dist/.built-for-tests is missing");
            return dir;
        }
        if built.is_none() || newest > built {
            let out = Command::new(tsc).arg("-p").arg(&dir).output().unwrap();
            assert!(out.status.success(), "tsc: {}", String::from_utf8_lossy(&out.stdout));
            std::fs::write(stamp, "").unwrap();
        }
        dir
    })
}

fn modified(f: &Path) -> Option<SystemTime> {
    std::fs::metadata(f).and_then(|m| m.modified()).ok()
}

fn files(dir: &Path) -> Vec<PathBuf> {
    if dir.is_file() {
        return vec![dir.to_owned()];
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() { out.extend(files(&p)) } else { out.push(p) }
    }
    out
}

/// The construct's template for these SAM parameters (`Name=Value`).
fn synthesized(params: &[&str]) -> Yaml {
    static CACHE: OnceLock<Mutex<BTreeMap<String, Yaml>>> = OnceLock::new();
    let key = params.join(" ");
    if let Some(t) = CACHE.get_or_init(Default::default).lock().unwrap().get(&key) {
        return t.clone();
    }
    let dir = built();
    let out = Command::new("node").arg(dir.join("scripts/synth-json.js")).args(params).output().expect("node runs");
    assert!(out.status.success(), "synth-json.js {key}: {}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t: Yaml = serde_yaml::to_value(json).unwrap();
    CACHE.get().unwrap().lock().unwrap().insert(key, t.clone());
    t
}

/// A CDK resource's SAM name, from its construct path under the Beacon
/// (`Topic/Policy` is `TopicPolicy`); outside it, its construct's id
/// (`Writer`, `Web`).
fn sam_name(id: &str, resource: &Yaml) -> String {
    let path = resource["Metadata"]["aws:cdk:path"].as_str().unwrap_or_default();
    // beacon-<stage>/[Beacon/]<construct>[/<child>]/Resource
    let Some((_stack, rest)) = path.split_once('/') else { return id.to_owned() };
    let rest = rest.strip_prefix("Beacon/").unwrap_or(rest);
    let rest = rest.strip_suffix("/Resource").unwrap_or(rest);
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments[segments.len() - 1];
    if ["Policy", "EventInvokeConfig"].contains(&last) { segments.concat() } else { last.to_owned() }
}

/// Logical id by SAM name, over the construct's resources.
fn ids(t: &Yaml) -> BTreeMap<String, String> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(id, r)| (sam_name(id.as_str().unwrap(), r), id.as_str().unwrap().to_owned()))
        .collect()
}

/// `env` (values by SAM name) extended with the same values under the
/// construct's logical ids: `Topic` → `BeaconTopicEE914486`,
/// `Table.StreamArn` → `BeaconTableCEF53026.StreamArn`.
fn cdk_env(t: &Yaml, env: &BTreeMap<&'static str, Value>) -> BTreeMap<&'static str, Value> {
    let mut out = env.clone();
    out.insert("CatalogApi", json!(API.split(':').nth(5).unwrap().split('/').next().unwrap()));
    let base = out.clone();
    for (name, id) in ids(t) {
        for (k, v) in &base {
            if let Some(attr) = k.strip_prefix(name.as_str()).filter(|a| a.is_empty() || a.starts_with('.')) {
                out.insert(Box::leak(format!("{id}{attr}").into_boxed_str()), v.clone());
            }
        }
    }
    out
}

/// Every policy of a role: inline, managed (only AWSLambdaBasicExecutionRole,
/// as its statements), and the AWS::IAM::Policy resources attached to it.
fn role_policies(t: &Yaml, role: &str, env: &BTreeMap<&str, Value>, managed: bool) -> Vec<Value> {
    let mut out = deployed::role_policies(t, role, env, managed);
    for p in t["Resources"].as_mapping().unwrap().values() {
        if p["Type"].as_str() == Some("AWS::IAM::Policy")
            && p["Properties"]["Roles"].as_sequence().into_iter().flatten().any(|r| r["Ref"].as_str() == Some(role))
        {
            out.push(resolve(&p["Properties"]["PolicyDocument"], env));
        }
    }
    out
}

fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// A value as text: a string as itself, anything else as JSON.
fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

/// A condition block as IAM reads it: every value a sorted set.
fn condition(v: &Value) -> Value {
    let Some(ops) = v.as_object() else { return Value::Null };
    let ops: BTreeMap<&String, BTreeMap<&String, BTreeSet<String>>> = ops
        .iter()
        .map(|(op, keys)| {
            let keys = keys.as_object().unwrap().iter().map(|(k, v)| (k, list(v).iter().map(text).collect()));
            (op, keys.collect())
        })
        .collect();
    json!(ops)
}

/// The statements of `policies` as atoms: effect, principal, action,
/// resource, conditions; one per action × resource × principal.
fn atoms(policies: &[Value]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for p in policies {
        for s in list(&p["Statement"]) {
            let principals: Vec<String> = match &s["Principal"] {
                Value::Null => vec![String::new()],
                Value::Object(m) => {
                    m.iter().flat_map(|(k, v)| list(v).into_iter().map(move |p| format!("{k}:{p}"))).collect()
                }
                other => vec![other.to_string()],
            };
            for principal in &principals {
                for action in list(&s["Action"]) {
                    for resource in list(&s["Resource"]) {
                        out.insert(format!(
                            "{} {principal} {} {} {}",
                            s["Effect"],
                            action.as_str().unwrap(),
                            resource.as_str().unwrap(),
                            condition(&s["Condition"])
                        ));
                    }
                }
            }
        }
    }
    out
}

fn assert_same_atoms(what: &str, sam: &[Value], cdk: &[Value]) {
    let (a, b) = (atoms(sam), atoms(cdk));
    assert!(!a.is_empty(), "{what}: SAM's policies are empty");
    let only_sam: Vec<_> = a.difference(&b).collect();
    let only_cdk: Vec<_> = b.difference(&a).collect();
    assert!(
        only_sam.is_empty() && only_cdk.is_empty(),
        "{what}: the statements differ\nonly in SAM's: {only_sam:#?}\nonly in the construct's: {only_cdk:#?}"
    );
}

/// The simulator's decision for each request (`tests/iam/simulate.mjs`).
fn decide(requests: &[Value]) -> Vec<String> {
    simulate(requests).iter().map(|r| r["result"].as_str().unwrap().to_owned()).collect()
}

/// The requests every role is asked about: functions.rs's, and around them.
fn requests() -> Vec<(&'static str, String, Value)> {
    let stream = format!("{TABLE}/stream/2026-11-26T00:00:00.000");
    let other_table = format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/payroll");
    // Item actions under each partition's keys; the table's other actions once.
    let items = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:ConditionCheckItem",
    ];
    let others = [
        "dynamodb:DeleteTable",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ];
    let tables =
        [TABLE.to_owned(), format!("{TABLE}/index/expiry"), format!("{TABLE}/index/listing"), other_table.clone()];
    let streams = [stream, format!("{other_table}/stream/2026-01-01T00:00:00.000"), TABLE.to_owned(), "*".to_owned()];
    let contexts = [
        json!({}),
        keys("SERVICE#orders"),
        keys("CONSUMER#web"),
        keys("FANOUT#orders"),
        json!({ "dynamodb:LeadingKeys": ["CONSUMER#web", "SERVICE#orders"] }),
    ];
    let mut out = Vec::new();
    for action in items {
        for resource in &tables {
            for context in &contexts {
                out.push((action, resource.clone(), context.clone()));
            }
        }
    }
    for action in others {
        for resource in &streams {
            out.push((action, resource.clone(), json!({})));
        }
    }
    let other_topic = format!("arn:aws:sns:us-east-1:{ACCOUNT}:other");
    for action in
        ["sns:Publish", "sns:Subscribe", "sns:Unsubscribe", "sns:ListSubscriptionsByTopic", "sns:GetTopicAttributes"]
    {
        for resource in [TOPIC, &other_topic] {
            out.push((action, resource.to_owned(), json!({})));
        }
    }
    for action in [
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:SetQueueAttributes",
        "sqs:ChangeMessageVisibility",
        "sqs:ListQueues",
        "sqs:ListQueueTags",
        "sqs:GetQueueUrl",
        "sqs:DeleteQueue",
        "sqs:TagQueue",
        "sqs:CreateQueue",
    ] {
        for resource in [
            REFRESH_QUEUE.to_owned(),
            queue("beacon-on-failure-dev"),
            queue("beacon-fanout-on-failure-dev"),
            queue("beacon-watch-1-2"),
            queue("beacon-ui-3-4"),
            queue("orders-work"),
            "*".to_owned(),
        ] {
            out.push((action, resource, json!({})));
        }
    }
    let sweeper = "arn:aws:lambda:us-east-1:123456789012:function:beacon-sweeper-dev";
    for resource in
        [sweeper.to_owned(), format!("{sweeper}:1"), format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:other")]
    {
        out.push(("lambda:InvokeFunction", resource, json!({})));
    }
    for action in ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"] {
        out.push((action, "*".to_owned(), json!({})));
    }
    for route in ["POST/catalog/services/orders/register", "POST/catalog/services/payments/register", "GET/catalog"] {
        out.push(("execute-api:Invoke", format!("{API}/{route}"), json!({})));
    }
    out
}

/// The requests of `requests()` that IAM could make: the simulator refuses
/// an action on a resource type it does not take (GetItem on a stream) or
/// on a resource when it takes none (ListQueues), whatever the policies.
fn valid_requests() -> &'static [(&'static str, String, Value)] {
    static VALID: OnceLock<Vec<(&'static str, String, Value)>> = OnceLock::new();
    VALID.get_or_init(|| {
        let all = requests();
        let cases: Vec<Value> = all.iter().map(|r| request(r, &[])).collect();
        all.into_iter().zip(decide(&cases)).filter(|(_, d)| !d.starts_with("error")).map(|(r, _)| r).collect()
    })
}

fn request((action, resource, context): &(&'static str, String, Value), policies: &[Value]) -> Value {
    json!({ "name": format!("{action} {resource} {context}"), "principal": format!("arn:aws:iam::{ACCOUNT}:role/tested"),
        "action": action, "resource": resource, "account": ACCOUNT, "context": context, "identityPolicies": policies })
}

/// Asserts the simulator decides every request alike for each pair of
/// principals' policies (SAM's, the construct's), and that the requests
/// are not all decided one way.
fn assert_same_decisions(pairs: &[(&str, Vec<Value>, Vec<Value>)]) {
    let reqs = valid_requests();
    assert!(reqs.len() > 200, "{} valid requests", reqs.len());
    let cases: Vec<Value> = pairs
        .iter()
        .flat_map(|(_, sam, cdk)| [sam, cdk])
        .flat_map(|policies| reqs.iter().map(move |r| request(r, policies)))
        .collect();
    let results = decide(&cases);
    let mut wrong = Vec::new();
    for ((what, _, _), results) in pairs.iter().zip(results.chunks(2 * reqs.len())) {
        let (a, b) = results.split_at(reqs.len());
        assert!(!a.iter().chain(b).any(|r| r.starts_with("error")), "{what}: the simulator refused a case");
        assert!(
            a.iter().any(|r| r == "Allowed") && a.iter().any(|r| r != "Allowed"),
            "{what}: every request decided alike"
        );
        for ((action, resource, context), (x, y)) in reqs.iter().zip(a.iter().zip(b)) {
            if x != y {
                wrong.push(format!("{what}: {action} {resource} {context}: SAM's {x}, the construct's {y}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{} decisions differ:\n{}", wrong.len(), wrong.join("\n"));
}

/// Each function's role, and the schedule's, as the construct makes it and
/// as AWS deploys the SAM template's.
fn roles(params: &[&str], env: &BTreeMap<&'static str, Value>) -> Vec<(&'static str, Vec<Value>, Vec<Value>)> {
    let sam = deployed("template.yaml");
    let cdk = synthesized(params);
    let cenv = cdk_env(&cdk, env);
    let ids = ids(&cdk);
    ROLES
        .iter()
        .map(|role| {
            let id = ids.get(*role).unwrap_or_else(|| panic!("the construct makes no {role}"));
            (*role, role_policies(&sam, role, env, true), role_policies(&cdk, id, &cenv, true))
        })
        .collect()
}

#[test]
fn the_functions_roles_are_sams() {
    for (role, sam, cdk) in roles(&[], &main_stack()) {
        assert_same_atoms(role, &sam, &cdk);
    }
}

#[test]
fn the_functions_roles_decide_as_sams() {
    assert_same_decisions(&roles(&[], &main_stack()));
}

/// The topic's and the refresh queue's policies; with an Organization, the
/// table's and the API's too.
#[test]
fn the_resource_policies_are_sams() {
    let sam = deployed("template.yaml");
    for (params, env) in [(&[][..], main_stack()), (ORGANIZATION, organization_stack(true))] {
        let cdk = synthesized(params);
        let cenv = cdk_env(&cdk, &env);
        let ids = ids(&cdk);
        for policy in ["TopicPolicy", "RefreshQueuePolicy"] {
            assert_same_atoms(
                &format!("{policy} {params:?}"),
                &[resource_policy(&sam, policy, &env)],
                &[resource_policy(&cdk, &ids[policy], &cenv)],
            );
        }
        let table = &cdk["Resources"][ids["Table"].as_str()]["Properties"]["ResourcePolicy"]["PolicyDocument"];
        let api = &cdk["Resources"][ids["CatalogApi"].as_str()]["Properties"]["Body"]["x-amazon-apigateway-policy"];
        if params.is_empty() {
            assert!(table.is_null() && api.is_null(), "no Organization, no table or API policy");
            continue;
        }
        assert_same_atoms("the table's policy", &[table_policy(&sam, &env)], &[resolve(table, &cenv)]);
        let api_arn = API.rsplit_once('/').unwrap().0;
        let cdk_api: Value =
            serde_json::from_str(&resolve(api, &cenv).to_string().replace("execute-api:/", &format!("{api_arn}/")))
                .unwrap();
        assert_same_atoms("the API's policy", &[api_policy(&env)], &[cdk_api]);
    }
}

/// The grant helpers grant what the policies of `infra/policies/` they
/// stand for grant: grantRegister("orders") service-writer.json and
/// catalog-writer.json, grantView registry-viewer.json, addConsumer
/// ("web") consumer.json.
#[test]
fn the_grant_helpers_grant_the_policy_files() {
    let cdk = synthesized(&[]);
    let env = cdk_env(&cdk, &main_stack());
    let ids = ids(&cdk);
    let role_of =
        |function: &str| cdk["Resources"][ids[function].as_str()]["Properties"]["Role"]["Fn::GetAtt"][0].clone();
    let web_role = role_of("Web");
    let (api_id, stage) = API.rsplit_once(':').unwrap().1.split_once('/').unwrap();
    let catalog_writer = policy_file(
        "catalog-writer.json",
        &[
            ("Partition", "aws"),
            ("Region", "us-east-1"),
            ("Account", ACCOUNT),
            ("ApiId", api_id),
            ("Stage", stage),
            ("Service", "orders"),
        ],
    );
    let mut pairs = Vec::new();
    for (what, role, files) in [
        (
            "grantRegister",
            ids["Writer"].clone(),
            vec![policy_file("service-writer.json", &[("TableArn", TABLE), ("Service", "orders")]), catalog_writer],
        ),
        ("grantView", ids["Viewer"].clone(), vec![viewer_policy()]),
        (
            "addConsumer",
            web_role.as_str().unwrap().to_owned(),
            vec![policy_file("consumer.json", &[("TableArn", TABLE), ("Consumer", "web")])],
        ),
    ] {
        let granted = role_policies(&cdk, &role, &env, false);
        assert_same_atoms(what, &files, &granted);
        pairs.push((what, files, granted));
    }
    assert_same_decisions(&pairs);
}

/// The needs and names the construct accepts at synth
/// (`infra/cdk/lib/validation.ts`, regexes) are the ones the domain's
/// parser accepts (`beacon_domain::Requirement::parse`, code): the same
/// decision on every need of a corpus built from the grammar's pieces,
/// right and wrong, and on names around each rule.
#[test]
fn the_constructs_needs_are_the_domains() {
    let names = ["orders", "a", "Orders_2-x", "9orders", "-x", &"n".repeat(64), &"n".repeat(65), ""];
    let constraints = ["", "==", "=", "^", "^^", "~", ">=", ">", "<=", "<", "~>", ">==", "@"];
    let versions = [
        "",
        "1",
        "0",
        "1.2",
        "1.2.3",
        "01.2.3",
        "1.02",
        "1.x",
        "1.*.*",
        "1.x.2",
        "1.X.x",
        "1.2.3-rc.1",
        "1.2.3-01",
        "1.2.3-0a",
        "1.2.3-a..b",
        "1.2.3-",
        "1.2.3+b.05",
        "1.2.3+",
        "1.2-rc",
        "1.2+b",
        "1.2.3.4",
        "1..2",
        "v1.2.3",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999",
        "1.2.3-x-y.0",
    ];
    let continuations = ["", ",<2", ",,<2", ",2", ",payments", ",==1.0", ",<2,>=1.5.0", ","];
    let mut corpus: Vec<String> = Vec::new();
    for name in names {
        for c in constraints {
            for v in versions {
                for k in continuations {
                    corpus.push(format!("{name}{c}{v}{k}"));
                }
            }
        }
    }
    // The length limits, around their edges, and the fuzzer's finds.
    for n in [58, 59, 60, 61, 62] {
        corpus.push(format!("orders==1.2-{}", "a".repeat(n)));
        corpus.push(format!("orders==1.2.3-{}", "a".repeat(n)));
    }
    for n in [110, 120, 121, 122, 130] {
        corpus.push(format!("orders>=1.2.3-{}", "a".repeat(n)));
    }
    let regressions = root().join("fuzz/regressions/requirements");
    for f in std::fs::read_dir(regressions).into_iter().flatten().flatten() {
        if let Ok(text) = std::fs::read_to_string(f.path()) {
            corpus.push(text);
        }
    }
    corpus.retain(|c| !c.chars().any(char::is_whitespace));
    corpus.sort();
    corpus.dedup();

    let script = "const v = require(process.argv[1]); const c = JSON.parse(require('fs').readFileSync(0, 'utf8'));\
        process.stdout.write(JSON.stringify({ needs: c.needs.map((n) => v.requirementError(n) === undefined), names: c.names.map((n) => v.NAME.test(n)) }))";
    let mut child = Command::new("node")
        .args(["-e", script])
        .arg(built().join("dist/lib/validation.js"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = serde_json::to_vec(&json!({ "needs": corpus, "names": names })).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let ts: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut wrong = Vec::new();
    for (need, accepted) in corpus.iter().zip(ts["needs"].as_array().unwrap()) {
        let rust = beacon_domain::Requirement::parse(need).is_ok();
        if Some(rust) != accepted.as_bool() {
            wrong.push(format!("{need:?}: the domain {rust}, the construct {accepted}"));
        }
    }
    for (name, accepted) in names.iter().zip(ts["names"].as_array().unwrap()) {
        let rust = beacon_domain::registration::validate_name("service", name).is_ok();
        if Some(rust) != accepted.as_bool() {
            wrong.push(format!("name {name:?}: the domain {rust}, the construct {accepted}"));
        }
    }
    let accepted = ts["needs"].as_array().unwrap().iter().filter(|a| a.as_bool() == Some(true)).count();
    assert!(accepted > 100 && accepted < corpus.len() / 2, "{accepted} of {} accepted", corpus.len());
    assert!(wrong.is_empty(), "{} of {} needs decided otherwise:\n{}", wrong.len(), corpus.len(), wrong.join("\n"));
}
