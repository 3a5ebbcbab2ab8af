//! A registry used by the member accounts of an AWS Organization (the
//! stack's `OrganizationId`): cross-account requests evaluated with the
//! member's identity policy (`infra/member.yaml`'s roles, or a member
//! administrator's broad one), the registry's resource policies (the
//! table's, the topic's, the API's, the layer's) and, for who may set the
//! `beacon:*` tags, the Organization's SCP (`infra/policies/
//! organization-tags-scp.json`). A cross-account request is allowed only
//! when both sides allow it; the simulator evaluates it that way.

use serde_json::{Value, json};

use crate::deployed::{
    LAYER, ORG, api_policy, deployed, member_role, member_role_tags, organization_stack, policy_file, resource_policy,
    table_policy,
};
use crate::simulator::{Case, Expect, assert_decisions, case, expect, keys};
use crate::*;

/// Member accounts of the Organization, and an account outside it.
const B: &str = "222233334444";
const C: &str = "333344445555";
const OUTSIDE: &str = "999988887777";
const OTHER_ORG: &str = "o-zzzzzzzzzz";

fn role(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:role/{name}")
}

/// The request context of a principal of `org` carrying `tags`, merged
/// with `extra` (the request's own keys).
fn who(org: Option<&str>, tags: &[(String, String)], extra: Value) -> Value {
    let mut c = extra.as_object().cloned().unwrap_or_default();
    if let Some(org) = org {
        c.insert("aws:PrincipalOrgID".into(), json!(org));
    }
    for (k, v) in tags {
        c.insert(format!("aws:PrincipalTag/{k}"), json!(v));
    }
    Value::Object(c)
}

fn tag(k: &str, v: &str) -> Vec<(String, String)> {
    vec![(k.to_owned(), v.to_owned())]
}

fn route(method: &str, path: &str) -> String {
    format!("{API}/{method}/{path}")
}

/// The layer's permission as AWS stores it: `AWS::Lambda::
/// LayerVersionPermission` with an `OrganizationId` is a layer policy
/// allowing `Principal: *` under `aws:PrincipalOrgID`.
fn layer_policy() -> Value {
    let t = deployed("template.yaml");
    let p = &t["Resources"]["ExtensionLayerOrganizationPermission"];
    assert_eq!(p["Condition"].as_str(), Some("OrganizationOn"), "the layer is shared only with OrganizationId");
    assert_eq!(p["Properties"]["Principal"].as_str(), Some("*"));
    assert_eq!(p["Properties"]["Action"].as_str(), Some("lambda:GetLayerVersion"));
    assert_eq!(p["Properties"]["OrganizationId"]["Ref"].as_str(), Some("OrganizationId"));
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": "*", "Action": "lambda:GetLayerVersion", "Resource": LAYER,
            "Condition": { "StringEquals": { "aws:PrincipalOrgID": ORG } }
        }]
    })
}

/// The registry's resource policies with `OrganizationId` set.
struct Registry {
    table: Value,
    topic: Value,
    api: Value,
    api_signed: Value,
    layer: Value,
}

fn registry() -> Registry {
    let t = deployed("template.yaml");
    let env = organization_stack(false);
    Registry {
        table: table_policy(&t, &env),
        topic: resource_policy(&t, "TopicPolicy", &env),
        api: api_policy(&env),
        api_signed: api_policy(&organization_stack(true)),
        layer: layer_policy(),
    }
}

/// A member administrator's identity policy: everything. What it may do to
/// the registry is what the registry's resource policies allow.
fn admin() -> Vec<Value> {
    vec![allow_all("*")]
}

#[test]
fn a_member_services_role_writes_its_own_service_by_every_path_and_no_other() {
    let r = registry();
    let vars = [("ServiceName", "orders")];
    let writer = member_role("ServiceRole", B, &vars);
    let tags = member_role_tags("ServiceRole", &vars);
    assert_eq!(tags, tag("beacon:service", "orders"), "the template tags the role with its service");
    let me = role(B, "beacon-service-orders");
    let ctx = |pk: &str| who(Some(ORG), &tags, keys(pk));
    let item = |name: &str, p: &[Value], action: &'static str, pk: &str, allowed: bool| {
        case(name, p, action, TABLE, ctx(pk), allowed).by(&me).under(&r.table)
    };
    let mut cases: Vec<Case> = Vec::new();
    for action in ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"] {
        cases.push(item(&format!("orders {action} orders"), &writer, action, "SERVICE#orders", true));
        cases.push(item(&format!("orders {action} payments"), &writer, action, "SERVICE#payments", false));
        cases.push(item(&format!("orders (admin) {action} payments"), &admin(), action, "SERVICE#payments", false));
        cases.push(item(&format!("orders (admin) {action} a consumer"), &admin(), action, "CONSUMER#web", false));
        cases.push(item(&format!("orders (admin) {action} fan-out"), &admin(), action, "FANOUT#orders", false));
    }
    // A transaction's items are authorised one by one as the item calls
    // above; batch writes and PartiQL are granted to no member at all.
    for action in [
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
        "dynamodb:Query",
        "dynamodb:Scan",
    ] {
        cases.push(item(&format!("orders (admin) {action} orders"), &admin(), action, "SERVICE#orders", false));
    }
    for (name, keys) in [
        ("two keys", json!(["SERVICE#orders", "SERVICE#payments"])),
        ("a longer name", json!(["SERVICE#orders-evil"])),
        ("another case", json!(["SERVICE#Orders"])),
        ("the bare prefix", json!(["SERVICE#"])),
    ] {
        let c = who(Some(ORG), &tags, json!({ "dynamodb:LeadingKeys": keys }));
        cases.push(
            case(&format!("orders: {name}"), &admin(), "dynamodb:PutItem", TABLE, c, false).by(&me).under(&r.table),
        );
    }
    cases.push(
        case("orders without a key", &admin(), "dynamodb:PutItem", TABLE, who(Some(ORG), &tags, json!({})), false)
            .by(&me)
            .under(&r.table),
    );
    // The catalog API's per-service routes; never the unscoped body routes.
    let call = |name: &str, p: &[Value], path: &str, allowed: bool| {
        case(name, p, "execute-api:Invoke", &route("POST", path), who(Some(ORG), &tags, json!({})), allowed)
            .by(&me)
            .under(&r.api)
    };
    cases.push(call("orders registers orders by the API", &writer, "catalog/services/orders/register", true));
    cases.push(call("orders deregisters orders by the API", &writer, "catalog/services/orders/deregister", true));
    cases.push(call("orders registers payments by the API", &writer, "catalog/services/payments/register", false));
    cases.push(call(
        "orders (admin) registers payments by the API",
        &admin(),
        "catalog/services/payments/register",
        false,
    ));
    cases.push(call("orders (admin) uses the unscoped route", &admin(), "catalog/register", false));
    cases.push(call("orders (admin) uses the unscoped deregister", &admin(), "catalog/deregister", false));
    assert_decisions(&cases);
}

#[test]
fn a_member_consumer_reads_and_writes_only_its_own_view() {
    let r = registry();
    let vars = [("ConsumerId", "web")];
    let fn_role = member_role("ConsumerRole", C, &vars);
    let tags = member_role_tags("ConsumerRole", &vars);
    assert_eq!(tags, tag("beacon:consumer", "web"));
    let me = role(C, "beacon-consumer-web");
    let ctx = |pk: &str| who(Some(ORG), &tags, keys(pk));
    let item = |name: &str, p: &[Value], action: &'static str, pk: &str, allowed: bool| {
        case(name, p, action, TABLE, ctx(pk), allowed).by(&me).under(&r.table)
    };
    assert_decisions(&[
        item("web gets its view", &fn_role, "dynamodb:GetItem", "CONSUMER#web", true),
        item("web puts its needs", &fn_role, "dynamodb:PutItem", "CONSUMER#web", true),
        item("web gets api's view", &fn_role, "dynamodb:GetItem", "CONSUMER#api", false),
        item("web (admin) puts api's needs", &admin(), "dynamodb:PutItem", "CONSUMER#api", false),
        item("web (admin) registers a service", &admin(), "dynamodb:PutItem", "SERVICE#web", false),
        item("web (admin) deletes its view", &admin(), "dynamodb:DeleteItem", "CONSUMER#web", false),
        item("web (admin) updates its view", &admin(), "dynamodb:UpdateItem", "CONSUMER#web", false),
        item("web (admin) queries", &admin(), "dynamodb:Query", "CONSUMER#web", false),
        case("web uses the layer", &fn_role, "lambda:GetLayerVersion", LAYER, who(Some(ORG), &tags, json!({})), true)
            .by(&me)
            .under(&r.layer),
    ]);
}

#[test]
fn principals_outside_the_organization_are_refused_everything() {
    let r = registry();
    let all_tags: Vec<(String, String)> =
        [("beacon:service", "orders"), ("beacon:consumer", "web"), ("beacon:viewer", "true")]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    let mut cases = Vec::new();
    // Another Organization's principal with every tag, and one in none.
    for (label, org) in [("another organization", Some(OTHER_ORG)), ("no organization", None)] {
        let me = role(OUTSIDE, "admin");
        let ctx = |extra: Value| who(org, &all_tags, extra);
        for (action, pk) in [
            ("dynamodb:GetItem", "SERVICE#orders"),
            ("dynamodb:PutItem", "SERVICE#orders"),
            ("dynamodb:UpdateItem", "SERVICE#orders"),
            ("dynamodb:DeleteItem", "SERVICE#orders"),
            ("dynamodb:GetItem", "CONSUMER#web"),
            ("dynamodb:PutItem", "CONSUMER#web"),
            ("dynamodb:Query", "SERVICE#orders"),
            ("dynamodb:Scan", "SERVICE#orders"),
            ("dynamodb:BatchGetItem", "SERVICE#orders"),
            ("dynamodb:BatchWriteItem", "SERVICE#orders"),
        ] {
            cases.push(
                case(&format!("{label}: {action} {pk}"), &admin(), action, TABLE, ctx(keys(pk)), false)
                    .by(&me)
                    .under(&r.table),
            );
        }
        let queue = format!("arn:aws:sqs:us-east-1:{OUTSIDE}:beacon-watch-x");
        cases.push(
            case(
                &format!("{label}: subscribes its queue"),
                &admin(),
                "sns:Subscribe",
                TOPIC,
                ctx(json!({ "sns:Protocol": "sqs", "sns:Endpoint": queue })),
                false,
            )
            .by(&me)
            .under(&r.topic),
        );
        for (api, path) in [(&r.api, "catalog/services/orders/register"), (&r.api, "catalog/register")] {
            cases.push(
                case(
                    &format!("{label}: POST {path}"),
                    &admin(),
                    "execute-api:Invoke",
                    &route("POST", path),
                    ctx(json!({})),
                    false,
                )
                .by(&me)
                .under(api),
            );
        }
        cases.push(
            case(
                &format!("{label}: a signed read"),
                &admin(),
                "execute-api:Invoke",
                &route("GET", "catalog/orders"),
                ctx(json!({})),
                false,
            )
            .by(&me)
            .under(&r.api_signed),
        );
        cases.push(
            case(&format!("{label}: the layer"), &admin(), "lambda:GetLayerVersion", LAYER, ctx(json!({})), false)
                .by(&me)
                .under(&r.layer),
        );
    }
    // Controls: a member's signed read, and an unsigned read of open reads
    // (SignedReads=off keeps lookups public, as in one account).
    let member = role(B, "reader");
    cases.push(
        case(
            "member: a signed read",
            &admin(),
            "execute-api:Invoke",
            &route("GET", "catalog/orders"),
            who(Some(ORG), &[], json!({})),
            true,
        )
        .by(&member)
        .under(&r.api_signed),
    );
    cases.push(
        case("anyone: an open read", &admin(), "execute-api:Invoke", &route("GET", "catalog/orders"), json!({}), true)
            .by(&role(OUTSIDE, "admin"))
            .under(&r.api),
    );
    assert_decisions(&cases);
}

#[test]
fn untagged_and_mismatched_member_principals_are_refused() {
    let r = registry();
    let me = role(B, "team-admin");
    let item = |name: &str, tags: Vec<(String, String)>, action: &'static str, pk: &str| {
        case(name, &admin(), action, TABLE, who(Some(ORG), &tags, keys(pk)), false).by(&me).under(&r.table)
    };
    assert_decisions(&[
        item("untagged puts orders", vec![], "dynamodb:PutItem", "SERVICE#orders"),
        item("untagged gets a view", vec![], "dynamodb:GetItem", "CONSUMER#web"),
        item("untagged scans", vec![], "dynamodb:Scan", "SERVICE#orders"),
        item("payments' role puts orders", tag("beacon:service", "payments"), "dynamodb:PutItem", "SERVICE#orders"),
        item(
            "a consumer tag writes a service of its name",
            tag("beacon:consumer", "web"),
            "dynamodb:PutItem",
            "SERVICE#web",
        ),
        item(
            "a service tag writes a view of its name",
            tag("beacon:service", "web"),
            "dynamodb:PutItem",
            "CONSUMER#web",
        ),
        item("a tag of * puts orders", tag("beacon:service", "*"), "dynamodb:PutItem", "SERVICE#orders"),
        item("a viewer tag of false scans", tag("beacon:viewer", "false"), "dynamodb:Scan", "SERVICE#orders"),
        case(
            "untagged registers by the API",
            &admin(),
            "execute-api:Invoke",
            &route("POST", "catalog/services/orders/register"),
            who(Some(ORG), &[], json!({})),
            false,
        )
        .by(&me)
        .under(&r.api),
    ]);
}

#[test]
fn a_member_accounts_viewer_can_do_no_more_than_the_registry_accounts() {
    let r = registry();
    let member = member_role("ViewerRole", C, &[]);
    let tags = member_role_tags("ViewerRole", &[]);
    assert_eq!(tags, tag("beacon:viewer", "true"));
    // Statement for statement the registry account's viewer policy, with
    // the member's own queues.
    let as_shipped = policy_file(
        "registry-viewer.json",
        &[("TableArn", TABLE), ("TopicArn", TOPIC), ("Partition", "aws"), ("Region", "us-east-1"), ("Account", C)],
    );
    assert_eq!(member, vec![as_shipped], "member.yaml's viewer policy is registry-viewer.json's");

    let home = viewer_policy();
    let requests: Vec<(&'static str, String, Value, bool)> = vec![
        ("dynamodb:Scan", TABLE.into(), json!({}), true),
        ("dynamodb:Query", TABLE.into(), keys("SERVICE#orders"), true),
        ("dynamodb:GetItem", TABLE.into(), keys("CONSUMER#web"), true),
        ("dynamodb:BatchGetItem", TABLE.into(), keys("SERVICE#orders"), true),
        ("dynamodb:Query", format!("{TABLE}/index/listing"), json!({}), true),
        ("dynamodb:Query", format!("{TABLE}/index/expiry"), json!({}), false),
        ("dynamodb:PutItem", TABLE.into(), keys("SERVICE#orders"), false),
        ("dynamodb:UpdateItem", TABLE.into(), keys("CONSUMER#web"), false),
        ("dynamodb:DeleteItem", TABLE.into(), keys("SERVICE#orders"), false),
        ("dynamodb:BatchWriteItem", TABLE.into(), keys("SERVICE#orders"), false),
        ("dynamodb:PartiQLSelect", TABLE.into(), keys("SERVICE#orders"), false),
        ("dynamodb:GetRecords", format!("{TABLE}/stream/2026-11-26T00:00:00.000"), json!({}), false),
        ("sns:Publish", TOPIC.into(), json!({}), false),
        ("sns:Unsubscribe", TOPIC.into(), json!({}), false),
        ("sns:SetTopicAttributes", TOPIC.into(), json!({}), false),
    ];
    let mut cases = Vec::new();
    for (action, resource, extra, allowed) in requests {
        let policy = if action.starts_with("sns:") { &r.topic } else { &r.table };
        cases.push(
            case(
                &format!("home viewer {action} {resource}"),
                std::slice::from_ref(&home),
                action,
                &resource,
                extra.clone(),
                allowed,
            )
            .by(&role(ACCOUNT, "beacon-viewer"))
            .under(policy),
        );
        cases.push(
            case(
                &format!("member viewer {action} {resource}"),
                &member,
                action,
                &resource,
                who(Some(ORG), &tags, extra),
                allowed,
            )
            .by(&role(C, "beacon-viewer"))
            .under(policy),
        );
    }
    // Each follows the registry with a queue of its own account.
    for (label, account, ctx) in [("home", ACCOUNT, json!({})), ("member", C, who(Some(ORG), &tags, json!({})))] {
        let policies = if account == ACCOUNT { vec![home.clone()] } else { member.clone() };
        let mut subscribe = ctx.clone();
        subscribe["sns:Protocol"] = json!("sqs");
        subscribe["sns:Endpoint"] = json!(format!("arn:aws:sqs:us-east-1:{account}:beacon-watch-1"));
        cases.push(
            case(&format!("{label} viewer subscribes its queue"), &policies, "sns:Subscribe", TOPIC, subscribe, true)
                .by(&role(account, "beacon-viewer"))
                .under(&r.topic),
        );
        let mut other = ctx.clone();
        other["sns:Protocol"] = json!("sqs");
        other["sns:Endpoint"] = json!(format!("arn:aws:sqs:us-east-1:{B}:beacon-watch-1"));
        cases.push(
            case(&format!("{label} viewer subscribes B's queue"), &policies, "sns:Subscribe", TOPIC, other, false)
                .by(&role(account, "beacon-viewer"))
                .under(&r.topic),
        );
    }
    assert_decisions(&cases);
}

#[test]
fn a_member_account_subscribes_only_its_own_queues_and_functions() {
    let r = registry();
    let me = role(B, "deployer");
    let sub = |name: &str, protocol: &str, endpoint: String, e: Expect| {
        expect(
            name,
            &admin(),
            "sns:Subscribe",
            TOPIC,
            who(
                Some(ORG),
                &tag("beacon:viewer", "true"),
                json!({ "sns:Protocol": protocol, "sns:Endpoint": endpoint }),
            ),
            e,
        )
        .by(&me)
        .under(&r.topic)
    };
    assert_decisions(&[
        // Events carry every endpoint: only viewers of the Organization follow.
        expect(
            "an untagged member subscribes its own queue",
            &admin(),
            "sns:Subscribe",
            TOPIC,
            who(
                Some(ORG),
                &[],
                json!({ "sns:Protocol": "sqs", "sns:Endpoint": format!("arn:aws:sqs:us-east-1:{B}:q") }),
            ),
            Expect::Denied,
        )
        .by(&me)
        .under(&r.topic),
        sub("B subscribes its queue", "sqs", format!("arn:aws:sqs:us-east-1:{B}:orders-changes"), Expect::Allowed),
        sub(
            "B subscribes its function",
            "lambda",
            format!("arn:aws:lambda:us-east-1:{B}:function:on-change"),
            Expect::Allowed,
        ),
        sub("B subscribes C's queue", "sqs", format!("arn:aws:sqs:us-east-1:{C}:q"), Expect::ExplicitlyDenied),
        sub(
            "B subscribes a registry queue",
            "sqs",
            format!("arn:aws:sqs:us-east-1:{ACCOUNT}:q"),
            Expect::ExplicitlyDenied,
        ),
        sub(
            "B subscribes its queue elsewhere",
            "sqs",
            format!("arn:aws:sqs:eu-west-1:{B}:q"),
            Expect::ExplicitlyDenied,
        ),
        sub("B subscribes a URL", "https", "https://example.com/hook".into(), Expect::ExplicitlyDenied),
        // The registry account's own principals, as before.
        expect(
            "the registry account subscribes its queue",
            &admin(),
            "sns:Subscribe",
            TOPIC,
            json!({ "sns:Protocol": "sqs", "sns:Endpoint": format!("arn:aws:sqs:us-east-1:{ACCOUNT}:q") }),
            Expect::Allowed,
        )
        .by(&role(ACCOUNT, "team"))
        .under(&r.topic),
        // And no member publishes.
        expect("B publishes", &admin(), "sns:Publish", TOPIC, who(Some(ORG), &[], json!({})), Expect::ExplicitlyDenied)
            .by(&me)
            .under(&r.topic),
    ]);
}

#[test]
fn only_the_onboarding_role_sets_beacon_tags_under_the_organizations_scp() {
    // Onboarding by a service-managed StackSet: CloudFormation acts in each
    // member account as a `stacksets-exec-<hash>` role, which AWS creates
    // through a service-linked role (to which no SCP applies).
    let scp =
        policy_file("organization-tags-scp.json", &[("Partition", "aws"), ("OnboardingRole", "stacksets-exec-*")]);
    let target = role(B, "beacon-service-orders");
    let tagging = |name: &str, by: &str, action: &'static str, keys: &[&str], e: Expect| {
        expect(name, &admin(), action, &target, json!({ "aws:TagKeys": keys }), e)
            .by(by)
            .owned_by(B)
            .scps(std::slice::from_ref(&scp))
    };
    let admin_role = role(B, "team-admin");
    let onboarding = role(B, "stacksets-exec-1a2b3c4d");
    assert_decisions(&[
        tagging(
            "a member admin tags a role beacon:service",
            &admin_role,
            "iam:TagRole",
            &["beacon:service"],
            Expect::ExplicitlyDenied,
        ),
        tagging(
            "a member admin creates a role tagged beacon:consumer",
            &admin_role,
            "iam:CreateRole",
            &["beacon:consumer"],
            Expect::ExplicitlyDenied,
        ),
        tagging(
            "a member admin removes beacon:service",
            &admin_role,
            "iam:UntagRole",
            &["beacon:service"],
            Expect::ExplicitlyDenied,
        ),
        tagging(
            "a member admin tags beacon:viewer among others",
            &admin_role,
            "iam:TagRole",
            &["team", "beacon:viewer"],
            Expect::ExplicitlyDenied,
        ),
        tagging("a member admin tags a role otherwise", &admin_role, "iam:TagRole", &["team"], Expect::Allowed),
        // IAM reads ${aws:PrincipalTag/beacon:service} whatever the key's
        // case, so every case of the keys is governed.
        tagging(
            "a member admin tags a role Beacon:Service",
            &admin_role,
            "iam:TagRole",
            &["Beacon:Service"],
            Expect::ExplicitlyDenied,
        ),
        tagging(
            "a member admin creates a role tagged BEACON:CONSUMER",
            &admin_role,
            "iam:CreateRole",
            &["BEACON:CONSUMER"],
            Expect::ExplicitlyDenied,
        ),
        tagging(
            "a session tagged Beacon:Viewer",
            &admin_role,
            "sts:TagSession",
            &["Beacon:Viewer"],
            Expect::ExplicitlyDenied,
        ),
        tagging(
            "the onboarding role tags beacon:service",
            &onboarding,
            "iam:TagRole",
            &["beacon:service"],
            Expect::Allowed,
        ),
        tagging(
            "the onboarding role removes beacon:service",
            &onboarding,
            "iam:UntagRole",
            &["beacon:service"],
            Expect::Allowed,
        ),
        tagging(
            "a session tagged beacon:service",
            &admin_role,
            "sts:TagSession",
            &["beacon:service"],
            Expect::ExplicitlyDenied,
        ),
        tagging(
            "the onboarding role's session tagged beacon:service",
            &onboarding,
            "sts:TagSession",
            &["beacon:service"],
            Expect::ExplicitlyDenied,
        ),
        tagging("a session tagged otherwise", &admin_role, "sts:TagSession", &["project"], Expect::Allowed),
    ]);
    // Nor can a member administrator make an onboarding role of its own,
    // or bend the real one (its trust, its policies, its tags) to its use.
    let changing = |name: &str, by: &str, action: &'static str, on: &str, e: Expect| {
        expect(name, &admin(), action, on, json!({}), e).by(by).owned_by(B).scps(std::slice::from_ref(&scp))
    };
    let look_alike = role(B, "stacksets-exec-mine");
    assert_decisions(&[
        changing(
            "a member admin creates a look-alike",
            &admin_role,
            "iam:CreateRole",
            &look_alike,
            Expect::ExplicitlyDenied,
        ),
        changing(
            "a member admin rewrites the onboarding role's trust",
            &admin_role,
            "iam:UpdateAssumeRolePolicy",
            &onboarding,
            Expect::ExplicitlyDenied,
        ),
        changing(
            "a member admin adds a policy to the onboarding role",
            &admin_role,
            "iam:PutRolePolicy",
            &onboarding,
            Expect::ExplicitlyDenied,
        ),
        changing(
            "a member admin deletes the onboarding role",
            &admin_role,
            "iam:DeleteRole",
            &onboarding,
            Expect::ExplicitlyDenied,
        ),
        changing(
            "a member admin changes a role of its own",
            &admin_role,
            "iam:PutRolePolicy",
            &target,
            Expect::Allowed,
        ),
        changing("the onboarding role updates itself", &onboarding, "iam:PutRolePolicy", &onboarding, Expect::Allowed),
    ]);
    // And the member template's roles trust no one to tag their sessions:
    // a session tag would override the role's beacon:* tag.
    let t = crate::deployed::raw("member.yaml");
    for name in ["ServiceRole", "ConsumerRole", "ViewerRole"] {
        let trust = &t["Resources"][name]["Properties"]["AssumeRolePolicyDocument"]["Statement"];
        for s in trust.as_sequence().unwrap() {
            assert_eq!(s["Action"].as_str(), Some("sts:AssumeRole"), "{name} trusts only sts:AssumeRole");
        }
    }
}

#[test]
fn no_session_anywhere_in_the_organization_carries_a_beacon_tag_under_the_rcp() {
    // An SCP binds only the member's own principals; a federated session
    // (web identity, SAML) is tagged by its identity provider, which a
    // member administrator may create. The RCP binds the roles themselves:
    // no one may tag a session of a member account's role with a beacon:
    // key, in any case, whatever the role's trust policy allows.
    let rcp = policy_file("organization-session-tags-rcp.json", &[]);
    let target = role(B, "federated");
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": { "AWS": "*" }, "Action": ["sts:AssumeRole", "sts:TagSession"],
            "Resource": target
        }]
    });
    let tagging = |name: &str, keys: &[&str], e: Expect| {
        expect(name, &admin(), "sts:TagSession", &target, json!({ "aws:TagKeys": keys }), e)
            .by(&role(B, "team-admin"))
            .owned_by(B)
            .under(&trust)
            .rcps(std::slice::from_ref(&rcp))
    };
    assert_decisions(&[
        tagging("a session tagged beacon:service", &["beacon:service"], Expect::ExplicitlyDenied),
        tagging("a session tagged Beacon:Consumer", &["Beacon:Consumer"], Expect::ExplicitlyDenied),
        tagging("a session tagged BEACON:VIEWER among others", &["team", "BEACON:VIEWER"], Expect::ExplicitlyDenied),
        tagging("a session tagged otherwise", &["team"], Expect::Allowed),
    ]);
}

#[test]
fn an_account_pinned_to_its_names_tags_only_those() {
    // The other way to keep names unique: each member account's own SCP
    // lists the names it owns, and its teams tag their roles themselves
    // (the registrar template tags its role). Here B owns `orders` and the
    // consumer `web`.
    let scp = policy_file("organization-names-scp.json", &[("Service", "orders"), ("Consumer", "web")]);
    let by = role(B, "team-deployer");
    let creating = |name: &str, action: &'static str, tags: Value, e: Expect| {
        let keys: Vec<String> = tags.as_object().unwrap().keys().cloned().collect();
        let mut ctx = json!({ "aws:TagKeys": keys });
        for (k, v) in tags.as_object().unwrap() {
            ctx[format!("aws:RequestTag/{k}")] = v.clone();
        }
        expect(name, &admin(), action, &role(B, "beacon-registrar-role"), ctx, e)
            .by(&by)
            .owned_by(B)
            .scps(std::slice::from_ref(&scp))
    };
    assert_decisions(&[
        creating("B creates a role for orders", "iam:CreateRole", json!({"beacon:service": "orders"}), Expect::Allowed),
        creating("B tags a role for orders", "iam:TagRole", json!({"beacon:service": "orders"}), Expect::Allowed),
        creating(
            "B claims payments",
            "iam:CreateRole",
            json!({"beacon:service": "payments"}),
            Expect::ExplicitlyDenied,
        ),
        creating("B claims Orders", "iam:TagRole", json!({"beacon:service": "Orders"}), Expect::ExplicitlyDenied),
        creating("B tags its consumer web", "iam:CreateRole", json!({"beacon:consumer": "web"}), Expect::Allowed),
        creating(
            "B claims another consumer",
            "iam:TagRole",
            json!({"beacon:consumer": "checkout"}),
            Expect::ExplicitlyDenied,
        ),
        creating(
            "B tags orders and claims a consumer",
            "iam:CreateRole",
            json!({"beacon:service": "orders", "beacon:consumer": "checkout"}),
            Expect::ExplicitlyDenied,
        ),
        creating("B creates an untagged role", "iam:CreateRole", json!({"team": "orders"}), Expect::Allowed),
        creating(
            "a session tagged beacon:service",
            "sts:TagSession",
            json!({"beacon:service": "orders"}),
            Expect::ExplicitlyDenied,
        ),
    ]);
}

#[test]
fn a_single_account_registry_has_no_organization_grants() {
    let t = deployed("template.yaml");
    let env = crate::deployed::main_stack();
    assert!(table_policy(&t, &env).is_null(), "no table policy without OrganizationId");
    assert!(api_policy(&env).is_null(), "no API policy without OrganizationId");
    let topic = resource_policy(&t, "TopicPolicy", &env);
    let sids: Vec<&str> = topic["Statement"].as_array().unwrap().iter().filter_map(|s| s["Sid"].as_str()).collect();
    assert!(!sids.contains(&"OrganizationSubscribes"), "{sids:?}");
    let endpoints = topic["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "OnlyThisAccountsEndpoints")
        .map(|s| s["Condition"]["StringNotLike"]["sns:Endpoint"].clone())
        .unwrap();
    assert_eq!(
        endpoints,
        json!(
            [format!("arn:aws:sqs:us-east-1:{ACCOUNT}:*"), format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:*"),]
        )
    );
}
