//! The topic's and the queues' resource policies: who publishes, who
//! subscribes what, who sends into a queue.

use serde_json::{Value, json};

use crate::deployed::{deployed, main_stack, resource_policy};
use crate::simulator::{Denied, ExplicitlyDenied, assert_decisions, case, expect};
use crate::*;

/// The topic's policy: only the fan-out's and the refresh function's roles
/// publish. Any other principal of the account is refused by an explicit
/// Deny even when its own identity policy grants `sns:Publish` on "*", so
/// nobody forges a `registered` or `resolved` event.
#[test]
fn only_the_fan_out_and_refresh_roles_publish() {
    let t = deployed("template.yaml");
    let env = main_stack();
    let topic = resource_policy(&t, "TopicPolicy", &env);
    let p = principals();
    let broad = [allow_all("sns:Publish")];
    assert_decisions(&[
        case("the fan-out publishes", &p.fanout, "sns:Publish", TOPIC, json!({}), true).by(FANOUT_ROLE).under(&topic),
        case("the refresh function publishes", &p.refresh, "sns:Publish", TOPIC, json!({}), true)
            .by(REFRESH_ROLE)
            .under(&topic),
        expect("an unrelated role with sns:Publish on *", &broad, "sns:Publish", TOPIC, json!({}), ExplicitlyDenied)
            .by(UNRELATED_ROLE)
            .under(&topic),
        expect(
            "a viewer with sns:Publish on * too",
            &[viewer_policy(), allow_all("sns:Publish")],
            "sns:Publish",
            TOPIC,
            json!({}),
            ExplicitlyDenied,
        )
        .under(&topic),
        expect(
            "the sweeper with sns:Publish on * too",
            &[allow_all("sns:Publish")],
            "sns:Publish",
            TOPIC,
            json!({}),
            ExplicitlyDenied,
        )
        .by("arn:aws:iam::123456789012:role/beacon-dev-SweeperFunctionRole-7G8H9I")
        .under(&topic),
        case("a viewer publishes", &p.viewer, "sns:Publish", TOPIC, json!({}), false).under(&topic),
        case("a consumer publishes", &p.consumer, "sns:Publish", TOPIC, json!({}), false).under(&topic),
        case("a service writer publishes", &p.writer, "sns:Publish", TOPIC, json!({}), false).under(&topic),
        expect("another account's role named like the fan-out's", &broad, "sns:Publish", TOPIC, json!({}), Denied)
            .by("arn:aws:iam::999999999999:role/beacon-dev-FanoutFunctionRole-1A2B3C")
            .under(&topic),
    ]);
}

/// Subscriptions are SQS queues or Lambda functions of the registry's own
/// account and Region: the topic policy denies any other protocol or
/// endpoint to every principal (explicitly, so a broad `sns:Subscribe` grant
/// does not help), and the viewer's own policy allows only its
/// `beacon-watch-*` / `beacon-ui-*` queues.
#[test]
fn only_queues_and_functions_of_the_account_subscribe() {
    let t = deployed("template.yaml");
    let topic = resource_policy(&t, "TopicPolicy", &main_stack());
    let p = principals();
    let broad = [allow_all("sns:Subscribe")];
    let sub = |protocol: &str, endpoint: &str| json!({ "sns:Protocol": protocol, "sns:Endpoint": endpoint });
    let own_queue = queue("beacon-watch-alice-1");
    let mut cases = vec![
        // Controls.
        case("viewer subscribes its queue", &p.viewer, "sns:Subscribe", TOPIC, sub("sqs", &own_queue), true),
        case(
            "viewer subscribes its queue (topic policy)",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            sub("sqs", &queue("beacon-ui-alice-1")),
            true,
        )
        .under(&topic),
        case("a team subscribes its queue", &broad, "sns:Subscribe", TOPIC, sub("sqs", &queue("orders-changes")), true)
            .by(UNRELATED_ROLE)
            .under(&topic),
        case(
            "a team subscribes its function",
            &broad,
            "sns:Subscribe",
            TOPIC,
            sub("lambda", "arn:aws:lambda:us-east-1:123456789012:function:on-change"),
            true,
        )
        .by(UNRELATED_ROLE)
        .under(&topic),
        // The viewer's identity policy alone.
        case(
            "viewer subscribes another queue",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            sub("sqs", &queue("orders-work")),
            false,
        ),
        case(
            "viewer subscribes a function",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            sub("lambda", "arn:aws:lambda:us-east-1:123456789012:function:beacon-watch-x"),
            false,
        ),
        case(
            "viewer subscribes without naming the endpoint",
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            json!({ "sns:Protocol": "sqs" }),
            false,
        ),
    ];
    let hostile = [
        ("an https URL", sub("https", "https://collector.example.com/beacon")),
        ("an http URL", sub("http", "http://collector.example.com/beacon")),
        ("an e-mail address", sub("email", "someone@example.com")),
        ("another account's queue", sub("sqs", "arn:aws:sqs:us-east-1:999999999999:beacon-watch-x")),
        ("another Region's queue", sub("sqs", "arn:aws:sqs:eu-west-1:123456789012:beacon-watch-x")),
        ("another account's function", sub("lambda", "arn:aws:lambda:us-east-1:999999999999:function:grab")),
        ("a queue ARN over https", sub("https", &own_queue)),
    ];
    for (what, context) in hostile {
        cases.push(case(
            &format!("viewer subscribes {what}"),
            &p.viewer,
            "sns:Subscribe",
            TOPIC,
            context.clone(),
            false,
        ));
        cases.push(
            expect(
                &format!("viewer subscribes {what} (topic policy)"),
                &p.viewer,
                "sns:Subscribe",
                TOPIC,
                context.clone(),
                ExplicitlyDenied,
            )
            .under(&topic),
        );
        cases.push(
            expect(
                &format!("an unrelated role subscribes {what}"),
                &broad,
                "sns:Subscribe",
                TOPIC,
                context.clone(),
                ExplicitlyDenied,
            )
            .by(UNRELATED_ROLE)
            .under(&topic),
        );
        cases.push(
            expect(
                &format!("a consumer subscribes {what}"),
                &p.consumer,
                "sns:Subscribe",
                TOPIC,
                context,
                ExplicitlyDenied,
            )
            .under(&topic),
        );
    }
    assert_decisions(&cases);
}

/// The refresh queue's policy: only the fan-out and the refresh function
/// send pages; any other principal is refused explicitly, whatever its own
/// identity policy grants.
#[test]
fn only_beacon_sends_into_the_refresh_queue() {
    let t = deployed("template.yaml");
    let env = main_stack();
    let q = resource_policy(&t, "RefreshQueuePolicy", &env);
    let p = principals();
    assert_decisions(&[
        case("the fan-out sends a page", &p.fanout, "sqs:SendMessage", REFRESH_QUEUE, json!({}), true)
            .by(FANOUT_ROLE)
            .under(&q),
        case("the refresh function sends a page", &p.refresh, "sqs:SendMessage", REFRESH_QUEUE, json!({}), true)
            .by(REFRESH_ROLE)
            .under(&q),
        expect(
            "an unrelated role with sqs:SendMessage on *",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            REFRESH_QUEUE,
            json!({}),
            ExplicitlyDenied,
        )
        .by(UNRELATED_ROLE)
        .under(&q),
        expect(
            "a viewer with sqs:SendMessage on * too",
            &[viewer_policy(), allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            REFRESH_QUEUE,
            json!({}),
            ExplicitlyDenied,
        )
        .under(&q),
        case("a viewer sends a page", &p.viewer, "sqs:SendMessage", REFRESH_QUEUE, json!({}), false).under(&q),
        case("a service writer sends a page", &p.writer, "sqs:SendMessage", REFRESH_QUEUE, json!({}), false).under(&q),
    ]);
}

/// The policy Beacon writes on every queue it subscribes
/// (`beacon_aws::viewer::queue_policy`): the topic delivers; another topic
/// does not; and no principal of the account sends into it directly, even
/// with a broad `sqs:SendMessage` grant of its own (an explicit Deny unless
/// `aws:SourceArn` is the topic).
#[test]
fn a_subscribed_queue_denies_every_sender_but_its_topic() {
    let q = queue("beacon-watch-alice-1");
    let policy = beacon_aws::viewer::queue_policy(&q, TOPIC);
    let sns = |name: &str, source: &str, allowed: bool| {
        case(name, &[], "sqs:SendMessage", &q, json!({ "aws:SourceArn": source }), allowed)
            .by("sns.amazonaws.com")
            .under(&policy)
    };
    let other_topic = "arn:aws:sns:us-east-1:123456789012:someone-elses-topic";
    assert_decisions(&[
        sns("the topic delivers", TOPIC, true),
        sns("another topic delivers", other_topic, false),
        expect(
            "an unrelated role with sqs:SendMessage on *",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            &q,
            json!({}),
            ExplicitlyDenied,
        )
        .by(UNRELATED_ROLE)
        .under(&policy),
        expect(
            "the fan-out sends into a subscriber's queue",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            &q,
            json!({}),
            ExplicitlyDenied,
        )
        .by(FANOUT_ROLE)
        .under(&policy),
        expect(
            "another topic's delivery to a role-granted queue",
            &[],
            "sqs:SendMessage",
            &q,
            json!({ "aws:SourceArn": other_topic }),
            Denied,
        )
        .by("sns.amazonaws.com")
        .under(&policy),
    ]);
}

/// Every queue Beacon subscribes gets that policy before it subscribes (AWS
/// drops deliveries otherwise; the local SNS server does not check, so the
/// policy is read back from the queue and evaluated here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribed_queue_accepts_only_its_topic() {
    let p = beacon_tests::TestPipeline::start("qpolicy").await;
    let q = p.subscribe(None).await;
    let attrs = p
        .sqs
        .get_queue_attributes()
        .queue_url(&q.url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::Policy)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let policy: Value = serde_json::from_str(&attrs[&aws_sdk_sqs::types::QueueAttributeName::Policy]).unwrap();
    let queue_arn = &attrs[&aws_sdk_sqs::types::QueueAttributeName::QueueArn];
    let sns = |name: &str, source: &str, allowed: bool| {
        case(name, &[], "sqs:SendMessage", queue_arn, json!({ "aws:SourceArn": source }), allowed)
            .by("sns.amazonaws.com")
            .under(&policy)
    };
    let other = p.topic_arn.replace(&p.table, "someone-elses-topic");
    let account = queue_arn.split(':').nth(4).unwrap().to_owned();
    assert_decisions(&[
        sns("the topic delivers", &p.topic_arn, true),
        sns("another topic delivers", &other, false),
        expect(
            "a role of the account with sqs:SendMessage on *",
            &[allow_all("sqs:SendMessage")],
            "sqs:SendMessage",
            queue_arn,
            json!({}),
            ExplicitlyDenied,
        )
        .by(&format!("arn:aws:iam::{account}:role/some-team-admin"))
        .under(&policy),
    ]);
    p.stop().await;
}
