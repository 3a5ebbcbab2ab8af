//! Change events on an EventBridge bus (`EventBusArn`): with the parameter
//! set, the fan-out and refresh functions may put events on that bus, as
//! the stack's source, and nothing else; without it, on no bus.

use serde_json::{Value, json};

use crate::deployed::{deployed, function_policies, main_stack};
use crate::simulator::{assert_decisions, case};

const BUS: &str = "arn:aws:events:us-east-1:123456789012:event-bus/platform";

#[test]
fn the_functions_put_events_on_the_stacks_bus_as_its_source_only() {
    let t = deployed("template.yaml");
    let mut on = main_stack();
    on.insert("EventBusOn", json!(true));
    on.insert("EventBusArn", json!(BUS));
    let off = main_stack();
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
