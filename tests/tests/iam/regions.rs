//! A Region's stack on a replica of the global table
//! (`ReplicaStreamArn`): it makes no table, reads its replica's stream,
//! keys its bookkeeping and views by its Region, and its roles reach that
//! replica and stream only, as in one Region.

use serde_json::{Value, json};

use crate::TABLE;
use crate::deployed::{deployed, function_policies, main_stack, resolve};

const STREAM: &str = "arn:aws:dynamodb:eu-west-1:123456789012:table/beacon-dev/stream/2026-12-04T00:00:00.000";

fn replica_stack() -> std::collections::BTreeMap<&'static str, Value> {
    let mut env = main_stack();
    env.insert("AWS::Region", json!("eu-west-1"));
    env.insert("ReplicaOfGlobalTable", json!(true));
    env.insert("ReplicaStreamArn", json!(STREAM));
    env.insert("AWS::NoValue", Value::Null);
    env
}

fn actions_on(statements: &[Value], resource: &str) -> Vec<String> {
    let mut out: Vec<String> = statements
        .iter()
        .filter(|s| {
            let r = &s["Resource"];
            r.as_str() == Some(resource) || r.as_array().is_some_and(|a| a.iter().any(|x| x.as_str() == Some(resource)))
        })
        .flat_map(|s| match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
            _ => vec![],
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_regions_stack_runs_its_pipeline_on_its_replica_and_keys_by_its_region() {
    let t = deployed("template.yaml");
    let (one, replica) = (
        {
            let mut env = main_stack();
            env.insert("AWS::NoValue", Value::Null);
            env
        },
        replica_stack(),
    );
    let replica_table = TABLE.replace("us-east-1", "eu-west-1");

    // The stream mapping reads the replica's stream.
    let mapping = resolve(&t["Resources"]["FanoutStream"]["Properties"]["EventSourceArn"], &replica);
    assert_eq!(mapping, json!(STREAM));

    // Every function names the same table, and only on a replica its Region.
    for function in ["FanoutFunction", "RefreshFunction", "SweeperFunction", "CatalogApiFunction"] {
        let vars = &t["Resources"][function]["Properties"]["Environment"]["Variables"];
        let var = |name: &str, env| resolve(&vars[name], env);
        assert_eq!(var("BEACON_TABLE", &one), json!("beacon-dev"), "{function}");
        assert_eq!(var("BEACON_TABLE", &replica), json!("beacon-dev"), "{function}");
        assert_eq!(var("BEACON_REPLICA_REGION", &one), Value::Null, "{function} has a Region in one Region");
        assert_eq!(var("BEACON_REPLICA_REGION", &replica), json!("eu-west-1"), "{function}");
    }

    // The fan-out's role: the same grants as in one Region, on this
    // Region's replica and stream.
    let statements = |env| -> Vec<Value> {
        function_policies(&t, "FanoutFunction", env)
            .iter()
            .flat_map(|p| p["Statement"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let (single, multi) = (statements(&one), statements(&replica));
    let one_stream = format!("{TABLE}/stream/2026-11-26T00:00:00.000");
    assert!(!actions_on(&single, TABLE).is_empty());
    assert_eq!(actions_on(&single, TABLE), actions_on(&multi, &replica_table), "the table grants differ");
    assert_eq!(actions_on(&single, &one_stream), actions_on(&multi, STREAM), "the stream grants differ");
    assert!(actions_on(&multi, TABLE).is_empty(), "a Region's fan-out reaches another Region's replica");
}
