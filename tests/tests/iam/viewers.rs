//! What a registry viewer (`beacon ui`, `beacon watch`) may do: read,
//! follow, and use its own temporary queues.

use serde_json::{Value, json};

use crate::deployed::{deployed, main_stack, resource_policy};
use crate::simulator::{assert_decisions, case, keys};
use crate::*;

/// A viewer cannot cut the other subscribers off: it may neither list nor
/// remove subscriptions, nor change one's attributes or the topic's. IAM
/// cannot limit `Unsubscribe` to one's own subscription: `sns:Unsubscribe`
/// and `sns:SetSubscriptionAttributes` are authorised against the
/// subscription's topic (IAM's service reference gives them the resource
/// type `topic` only; a subscription ARN is no resource type), so a viewer
/// is granted neither. The sweeper's janitor removes a viewer's
/// subscription once its queue is gone.
#[test]
fn a_viewer_cannot_cut_subscribers_off() {
    let p = principals();
    let topic = resource_policy(&deployed("template.yaml"), "TopicPolicy", &main_stack());
    let mut cases = vec![
        case(
            "viewer subscribes its queue",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            json!({ "sns:Protocol": "sqs", "sns:Endpoint": queue("beacon-watch-alice-1") }),
            true,
        )
        .under(&topic),
    ];
    for (who, policies) in [("viewer", &p.viewer), ("consumer", &p.consumer), ("service writer", &p.writer)] {
        for action in [
            "sns:Unsubscribe",
            "sns:SetSubscriptionAttributes",
            "sns:ListSubscriptionsByTopic",
            "sns:SetTopicAttributes",
            "sns:DeleteTopic",
            "sns:AddPermission",
        ] {
            cases.push(case(&format!("{who}: {action}"), policies, action, TOPIC, json!({}), false).under(&topic));
        }
        for action in ["sns:Unsubscribe", "sns:SetSubscriptionAttributes"] {
            cases.push(case(&format!("{who}: {action} on any topic"), policies, action, "*", json!({}), false));
        }
        cases.push(case(
            &format!("{who}: lists every subscription"),
            policies,
            "sns:ListSubscriptions",
            "*",
            json!({}),
            false,
        ));
    }
    assert_decisions(&cases);
}

/// A viewer's temporary queues are its own: created tagged
/// `beacon:owner = ${aws:userid}`, and used (read, delete messages, change
/// attributes, delete, renew the lease tag) only while that tag names the
/// caller. Another viewer's queue, or any other queue, is out of reach,
/// including by re-tagging it.
#[test]
fn a_viewer_cannot_take_over_another_viewers_queue() {
    let p = principals();
    let mine = queue("beacon-watch-alice-1");
    let theirs = queue("beacon-ui-bob-1");
    let owned_by = |owner: &str| json!({ "aws:userid": ME, "aws:ResourceTag/beacon:owner": owner });
    let create = |tags: Value, keys: &[&str]| {
        let mut c = json!({ "aws:userid": ME, "aws:TagKeys": keys });
        for (k, v) in tags.as_object().unwrap() {
            c[format!("aws:RequestTag/{k}")] = v.clone();
        }
        c
    };
    let v = &p.viewer;
    let mut cases = vec![
        case(
            "viewer creates its queue tagged as its own",
            v,
            "sqs:CreateQueue",
            &mine,
            create(json!({ "beacon:owner": ME, "beacon:lease": "1780000000" }), &["beacon:owner", "beacon:lease"]),
            true,
        ),
        case(
            "viewer tags its queue as it creates it",
            v,
            "sqs:TagQueue",
            &mine,
            create(json!({ "beacon:owner": ME, "beacon:lease": "1780000000" }), &["beacon:owner", "beacon:lease"]),
            true,
        ),
        case(
            "viewer creates a queue without the owner tag",
            v,
            "sqs:CreateQueue",
            &mine,
            json!({ "aws:userid": ME }),
            false,
        ),
        case(
            "viewer creates a queue tagged as another's",
            v,
            "sqs:CreateQueue",
            &mine,
            create(json!({ "beacon:owner": THEM }), &["beacon:owner"]),
            false,
        ),
        case(
            "viewer creates a queue with another tag",
            v,
            "sqs:CreateQueue",
            &mine,
            create(json!({ "beacon:owner": ME, "team": "x" }), &["beacon:owner", "team"]),
            false,
        ),
        case(
            "viewer creates another queue",
            v,
            "sqs:CreateQueue",
            &queue("orders-work"),
            create(json!({ "beacon:owner": ME }), &["beacon:owner"]),
            false,
        ),
        case(
            "viewer renews its lease",
            v,
            "sqs:TagQueue",
            &mine,
            {
                let mut c = create(json!({ "beacon:lease": "1780000300" }), &["beacon:lease"]);
                c["aws:ResourceTag/beacon:owner"] = json!(ME);
                c
            },
            true,
        ),
        case(
            "viewer re-tags another's queue as its own",
            v,
            "sqs:TagQueue",
            &theirs,
            {
                let mut c = create(json!({ "beacon:owner": ME }), &["beacon:owner"]);
                c["aws:ResourceTag/beacon:owner"] = json!(THEM);
                c
            },
            false,
        ),
        case(
            "viewer extends another's lease",
            v,
            "sqs:TagQueue",
            &theirs,
            {
                let mut c = create(json!({ "beacon:lease": "4102444800" }), &["beacon:lease"]);
                c["aws:ResourceTag/beacon:owner"] = json!(THEM);
                c
            },
            false,
        ),
        case(
            "viewer gives its queue another owner",
            v,
            "sqs:TagQueue",
            &mine,
            {
                let mut c = create(json!({ "beacon:owner": THEM }), &["beacon:owner"]);
                c["aws:ResourceTag/beacon:owner"] = json!(ME);
                c
            },
            false,
        ),
        case("viewer untags its queue", v, "sqs:UntagQueue", &mine, owned_by(ME), false),
    ];
    for action in ["sqs:GetQueueAttributes", "sqs:SetQueueAttributes", "sqs:ReceiveMessage", "sqs:DeleteMessage"] {
        cases.push(case(&format!("viewer {action} its own queue"), v, action, &mine, owned_by(ME), true));
        cases.push(case(&format!("viewer {action} another viewer's queue"), v, action, &theirs, owned_by(THEM), false));
        cases.push(case(
            &format!("viewer {action} an untagged queue"),
            v,
            action,
            &theirs,
            json!({ "aws:userid": ME }),
            false,
        ));
        cases.push(case(
            &format!("viewer {action} another queue"),
            v,
            action,
            &queue("orders-work"),
            owned_by(ME),
            false,
        ));
    }
    // It never deletes a queue, even its own: on exit it ends its lease and
    // the janitor removes the subscription, then the queue.
    cases.push(case("viewer deletes its own queue", v, "sqs:DeleteQueue", &mine, owned_by(ME), false));
    for action in
        ["sqs:SendMessage", "sqs:PurgeQueue", "sqs:AddPermission", "sqs:ChangeMessageVisibility", "sqs:DeleteQueue"]
    {
        cases.push(case(&format!("viewer {action} another viewer's queue"), v, action, &theirs, owned_by(THEM), false));
    }
    for (who, policies) in [("consumer", &p.consumer), ("service writer", &p.writer)] {
        for action in ["sqs:ReceiveMessage", "sqs:SetQueueAttributes", "sqs:DeleteQueue"] {
            cases.push(case(
                &format!("{who}: {action} a viewer's queue"),
                policies,
                action,
                &theirs,
                owned_by(THEM),
                false,
            ));
        }
    }
    assert_decisions(&cases);
}

/// `beacon ui` and `beacon watch` read and follow, and write nothing but
/// their own temporary queues.
#[test]
fn a_registry_viewer_reads_and_follows_but_writes_nothing() {
    let p = [viewer_policy()];
    let own = json!({ "aws:userid": ME, "aws:ResourceTag/beacon:owner": ME });
    assert_decisions(&[
        case("viewer scans", &p, "dynamodb:Scan", TABLE, json!({}), true),
        case("viewer queries", &p, "dynamodb:Query", TABLE, keys("SERVICE#orders"), true),
        case("viewer reads an item", &p, "dynamodb:GetItem", TABLE, keys("CONSUMER#web"), true),
        case(
            "viewer lists (the listing index)",
            &p,
            "dynamodb:Query",
            &format!("{TABLE}/index/listing"),
            json!({}),
            true,
        ),
        case("viewer reads a listing page", &p, "dynamodb:BatchGetItem", TABLE, keys("SERVICE#orders"), true),
        case(
            "viewer queries the expiry index",
            &p,
            "dynamodb:Query",
            &format!("{TABLE}/index/expiry"),
            json!({}),
            false,
        ),
        case(
            "viewer subscribes its queue",
            &p,
            "sns:Subscribe",
            TOPIC,
            json!({ "sns:Protocol": "sqs", "sns:Endpoint": queue("beacon-ui-alice-1") }),
            true,
        ),
        case("viewer reads its queue", &p, "sqs:ReceiveMessage", &queue("beacon-watch-1-2"), own.clone(), true),
        case("viewer puts", &p, "dynamodb:PutItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer updates", &p, "dynamodb:UpdateItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer deletes", &p, "dynamodb:DeleteItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer batch-writes", &p, "dynamodb:BatchWriteItem", TABLE, keys("SERVICE#payments"), false),
        case("viewer PartiQL-updates", &p, "dynamodb:PartiQLUpdate", TABLE, keys("SERVICE#payments"), false),
        case("viewer publishes", &p, "sns:Publish", TOPIC, json!({}), false),
        case("viewer reads another queue", &p, "sqs:ReceiveMessage", &queue("orders-work"), own.clone(), false),
        case("viewer deletes another queue", &p, "sqs:DeleteQueue", &queue("beacon-fanout-on-failure-dev"), own, false),
    ]);
}
