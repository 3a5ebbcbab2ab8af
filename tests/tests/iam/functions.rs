//! What each of Beacon's functions may do: what its code calls, nothing
//! more.

use serde_json::json;

use crate::deployed::{deployed, function_policies, main_stack};
use crate::simulator::{assert_decisions, case, keys};
use crate::*;

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
    // Listing reads the listing index's keys, then those registrations.
    cases.push(case("catalog: scans", &p.catalog, "dynamodb:Scan", TABLE, json!({}), false));
    cases.push(case(
        "catalog: queries the listing index",
        &p.catalog,
        "dynamodb:Query",
        &format!("{TABLE}/index/listing"),
        json!({}),
        true,
    ));
    cases.push(case(
        "catalog: queries the expiry index",
        &p.catalog,
        "dynamodb:Query",
        &format!("{TABLE}/index/expiry"),
        json!({}),
        false,
    ));
    cases.push(case(
        "catalog: batch-reads registrations",
        &p.catalog,
        "dynamodb:BatchGetItem",
        TABLE,
        keys("SERVICE#orders"),
        true,
    ));
    for pk in ["CONSUMER#web", "FANOUT#orders"] {
        cases.push(case(
            &format!("catalog: batch-reads {pk}"),
            &p.catalog,
            "dynamodb:BatchGetItem",
            TABLE,
            keys(pk),
            false,
        ));
    }
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
