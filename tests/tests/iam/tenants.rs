//! What a tenant (a service writer, a registrar, a consumer, an API caller)
//! may write and read: its own partition only.

use serde_json::{Value, json};

use crate::deployed::{deployed, function_policies, policy_file, registrar_stack};
use crate::simulator::{assert_decisions, case, keys};
use crate::*;

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
