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

// The simulator and its cases (simulator.rs), the policies as deployed
// (deployed.rs), and the tests by concern: what tenants may write and read
// (tenants.rs), what each function may do (functions.rs), the topic's and
// queues' resource policies (resource_policies.rs), and what a registry
// viewer may do (viewers.rs).
mod cdk;
mod deployed;
mod event_bus;
mod functions;
mod organization;
mod regions;
mod resource_policies;
mod simulator;
mod tenants;
mod viewers;

use serde_json::{Value, json};

use deployed::{deployed, function_policies, main_stack, policy_file, registrar_stack};

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
