//! The SAM templates, read as data: least privilege per function, and the
//! event source mapping's filter equal to the local poller's. (cfn-lint
//! validates them in ./scripts/test.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::Value;

fn template(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra").join(name);
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        other => vec![other.clone()],
    }
}

fn statements(function: &Value) -> Vec<Value> {
    as_list(&function["Properties"]["Policies"]).iter().flat_map(|p| as_list(&p["Statement"])).collect()
}

fn actions(function: &Value) -> BTreeSet<String> {
    statements(function)
        .iter()
        .flat_map(|s| as_list(&s["Action"]))
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}

fn set(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn every_function_is_granted_exactly_what_its_code_calls() {
    let t = template("template.yaml");
    let r = &t["Resources"];
    assert_eq!(actions(&r["FanoutFunction"]), set(beacon_fanout::IAM_ACTIONS));
    assert_eq!(actions(&r["SweeperFunction"]), set(beacon_sweeper::IAM_ACTIONS));
    assert_eq!(actions(&r["CatalogApiFunction"]), set(beacon_catalog_api::IAM_ACTIONS));
    let registrar = template("registrar.yaml");
    assert_eq!(actions(&registrar["Resources"]["RegistrarFunction"]), set(beacon_registrar::IAM_ACTIONS));
}

#[test]
fn no_statement_grants_wildcard_actions_or_resources() {
    for name in ["template.yaml", "registrar.yaml"] {
        let t = template(name);
        let Value::Mapping(resources) = &t["Resources"] else { panic!("{name} has no Resources") };
        for (id, resource) in resources {
            let mut all = statements(resource);
            all.extend(as_list(&resource["Properties"]["PolicyDocument"]["Statement"]));
            for s in all.iter().filter(|s| !s.is_null()) {
                for a in as_list(&s["Action"]) {
                    let a = a.as_str().unwrap_or_default();
                    assert!(!a.contains('*'), "{name} {id:?}: wildcard action {a}");
                }
                for res in as_list(&s["Resource"]) {
                    assert_ne!(res.as_str(), Some("*"), "{name} {id:?}: Resource \"*\"");
                }
            }
        }
    }
}

#[test]
fn the_mapping_filter_equals_the_local_pollers() {
    let t = template("template.yaml");
    let filters =
        &t["Resources"]["FanoutFunction"]["Properties"]["Events"]["Stream"]["Properties"]["FilterCriteria"]["Filters"];
    let from_template: Vec<serde_json::Value> =
        as_list(filters).iter().map(|f| serde_json::from_str(f["Pattern"].as_str().unwrap()).unwrap()).collect();
    let local = beacon_local::filter::FilterCriteria::beacon();
    assert_eq!(from_template, local.patterns());
}

#[test]
fn the_table_is_what_the_code_expects() {
    let t = template("template.yaml");
    let table = &t["Resources"]["Table"]["Properties"];
    assert_eq!(table["StreamSpecification"]["StreamViewType"].as_str(), Some("NEW_AND_OLD_IMAGES"));
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(beacon::keys::EXPIRES_AT));
    let index = &as_list(&table["GlobalSecondaryIndexes"])[0];
    assert_eq!(index["IndexName"].as_str(), Some(beacon::keys::EXPIRY_INDEX));
    assert_eq!(table["SSESpecification"]["SSEEnabled"].as_bool(), Some(true));
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
}
