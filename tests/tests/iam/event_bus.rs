//! Change events on an EventBridge bus (`EventBusName`): with the parameter
//! set, the fan-out and refresh functions may put events on that bus, as
//! the stack's source, and nothing else; without it, on no bus.

use serde_json::{Value, json};

use crate::deployed::{deployed, function_policies, main_stack, resolve};
use crate::simulator::{Expect::ExplicitlyDenied, assert_decisions, case, expect};
use crate::{FANOUT_ROLE, REFRESH_ROLE, UNRELATED_ROLE};

const BUS: &str = "arn:aws:events:us-east-1:123456789012:event-bus/platform";

/// The SAM tests' stack with `EventBusName=platform`.
fn bus_stack() -> std::collections::BTreeMap<&'static str, Value> {
    let mut env = main_stack();
    env.insert("EventBusOn", json!(true));
    env.insert("EventBusName", json!("platform"));
    env
}

#[test]
fn the_functions_put_events_on_the_stacks_bus_as_its_source_only() {
    let t = deployed("template.yaml");
    let (on, off) = (bus_stack(), main_stack());
    // One source per entry of the call (IAM's events:source is multi-valued).
    let source = |s: &str| json!({ "events:source": [s] });
    let mut cases = Vec::new();
    for function in ["FanoutFunction", "RefreshFunction"] {
        let with: Vec<Value> = function_policies(&t, function, &on);
        let without: Vec<Value> = function_policies(&t, function, &off);
        let put = "events:PutEvents";
        cases.push(case(&format!("{function} puts on the bus"), &with, put, BUS, source("beacon.dev"), true));
        cases.push(case(&format!("{function} puts as another source"), &with, put, BUS, source("com.payments"), false));
        cases.push(case(
            &format!("{function} puts one entry as another source among its own"),
            &with,
            put,
            BUS,
            json!({ "events:source": ["beacon.dev", "com.payments"] }),
            false,
        ));
        cases.push(case(
            &format!("{function} puts on another bus"),
            &with,
            put,
            "arn:aws:events:us-east-1:123456789012:event-bus/default",
            source("beacon.dev"),
            false,
        ));
        cases.push(case(
            &format!("{function} manages the bus's rules"),
            &with,
            "events:PutRule",
            "arn:aws:events:us-east-1:123456789012:rule/platform/anything",
            json!({}),
            false,
        ));
        cases.push(case(&format!("{function} without a bus"), &without, put, BUS, source("beacon.dev"), false));
    }
    assert_decisions(&cases);
}

/// The bus's policy statement the stack adds: no principal but the two
/// publishing roles puts events as the stack's source, whatever its own
/// identity policy grants (the topic's rule, for the bus); other sources
/// on the bus are the bus owner's business and stay allowed.
#[test]
fn only_the_publishing_roles_put_the_stacks_source_on_the_bus() {
    let t = deployed("template.yaml");
    let env = bus_stack();
    let r = &t["Resources"]["EventBusPolicy"];
    assert_eq!(r["Condition"].as_str(), Some("EventBusOn"));
    let policy = json!({ "Version": "2012-10-17", "Statement": [resolve(&r["Properties"]["Statement"], &env)] });
    let fanout = function_policies(&t, "FanoutFunction", &env);
    let refresh = function_policies(&t, "RefreshFunction", &env);
    let broad = [json!({
        "Version": "2012-10-17",
        "Statement": [{ "Effect": "Allow", "Action": "events:PutEvents", "Resource": "*" }]
    })];
    let put = "events:PutEvents";
    let ours = json!({ "events:source": ["beacon.dev"] });
    assert_decisions(&[
        case("the fan-out puts", &fanout, put, BUS, ours.clone(), true).by(FANOUT_ROLE).under(&policy),
        case("the refresh function puts", &refresh, put, BUS, ours.clone(), true).by(REFRESH_ROLE).under(&policy),
        expect(
            "a role with PutEvents on * forges the stack's source",
            &broad,
            put,
            BUS,
            ours.clone(),
            ExplicitlyDenied,
        )
        .by(UNRELATED_ROLE)
        .under(&policy),
        expect(
            "the same, hiding it among entries of its own",
            &broad,
            put,
            BUS,
            json!({ "events:source": ["com.payments", "beacon.dev"] }),
            ExplicitlyDenied,
        )
        .by(UNRELATED_ROLE)
        .under(&policy),
        case("that role puts its own source", &broad, put, BUS, json!({ "events:source": ["com.payments"] }), true)
            .by(UNRELATED_ROLE)
            .under(&policy),
    ]);
}
