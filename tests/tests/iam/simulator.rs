//! The IAM policy simulator (`tests/iam/simulate.mjs`) and the cases it
//! decides.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::ACCOUNT;
use crate::deployed::root;

/// How the policies must decide a request.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Expect {
    Allowed,
    /// Implicitly or explicitly denied.
    Denied,
    /// Denied by a Deny statement, whatever the identity policies allow.
    ExplicitlyDenied,
}
pub(crate) use Expect::{Allowed, Denied, ExplicitlyDenied};

/// One request to evaluate, and what the policies must decide.
pub(crate) struct Case {
    name: String,
    policies: Vec<Value>,
    resource_policy: Option<Value>,
    /// The resource's account (the registry's unless said otherwise).
    account: String,
    /// Service control policies on the principal's account.
    scps: Vec<Value>,
    /// Resource control policies on the resource's account.
    rcps: Vec<Value>,
    principal: String,
    action: &'static str,
    resource: String,
    context: Value,
    expect: Expect,
}

impl Case {
    /// The request is made by `principal` (its `aws:PrincipalArn`, which the
    /// simulator's runner derives from it).
    pub(crate) fn by(mut self, principal: &str) -> Self {
        principal.clone_into(&mut self.principal);
        self
    }

    /// The resource carries this policy (a topic or queue policy).
    pub(crate) fn under(mut self, policy: &Value) -> Self {
        self.resource_policy = Some(policy.clone());
        self
    }

    /// The resource belongs to `account` (a member account's own queue).
    pub(crate) fn owned_by(mut self, account: &str) -> Self {
        account.clone_into(&mut self.account);
        self
    }

    /// The principal's account is under these service control policies.
    pub(crate) fn scps(mut self, scps: &[Value]) -> Self {
        self.scps = scps.to_vec();
        self
    }

    /// The resource's account is under these resource control policies.
    pub(crate) fn rcps(mut self, rcps: &[Value]) -> Self {
        self.rcps = rcps.to_vec();
        self
    }
}

pub(crate) fn case(
    name: &str,
    policies: &[Value],
    action: &'static str,
    resource: &str,
    context: Value,
    allowed: bool,
) -> Case {
    expect(name, policies, action, resource, context, if allowed { Allowed } else { Denied })
}

pub(crate) fn expect(
    name: &str,
    policies: &[Value],
    action: &'static str,
    resource: &str,
    context: Value,
    e: Expect,
) -> Case {
    Case {
        name: name.to_owned(),
        policies: policies.to_vec(),
        resource_policy: None,
        account: ACCOUNT.to_owned(),
        scps: Vec::new(),
        rcps: Vec::new(),
        principal: format!("arn:aws:iam::{ACCOUNT}:role/tested"),
        action,
        resource: resource.to_owned(),
        context,
        expect: e,
    }
}

pub(crate) fn keys(pk: &str) -> Value {
    json!({ "dynamodb:LeadingKeys": [pk] })
}

/// The simulator's answer to each request (`tests/iam/simulate.mjs`), in
/// order: `{ name, result }`.
pub(crate) fn simulate(requests: &[Value]) -> Vec<Value> {
    let mut child = Command::new("node")
        .arg(root().join("tests/iam/simulate.mjs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs the simulator (./scripts/bootstrap installs it)");
    // Written from a thread of its own: a large input would otherwise fill
    // the pipe while the simulator waits to be read.
    let input = serde_json::to_vec(requests).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(out.status.success(), "the simulator failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs the simulator over every case and fails naming each case whose
/// decision differs (or that the simulator refused as input).
pub(crate) fn assert_decisions(cases: &[Case]) {
    let input: Vec<Value> = cases
        .iter()
        .map(|c| {
            let mut v = json!({
                "name": c.name, "principal": c.principal, "action": c.action, "resource": c.resource,
                "account": c.account, "context": c.context, "identityPolicies": c.policies,
            });
            if !c.scps.is_empty() {
                v["scps"] = json!(c.scps);
            }
            if !c.rcps.is_empty() {
                v["rcps"] = json!(c.rcps);
            }
            if let Some(p) = &c.resource_policy {
                v["resourcePolicy"] = p.clone();
            }
            v
        })
        .collect();
    let results = simulate(&input);
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
