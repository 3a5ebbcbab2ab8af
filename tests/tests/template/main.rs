//! The SAM templates, read as data: least privilege per function, as AWS
//! deploys it (each role read from the template AWS's SAM translator
//! produces, `tests/iam/sam_transform.py`, managed policies included), and
//! the event source mapping's filter equal to the local poller's. (cfn-lint
//! validates them in ./scripts/test.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

// The deployed roles' grants (roles.rs) and the API's definition (api.rs);
// the resources the code depends on are checked here.
mod api;
mod events;
mod roles;

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

/// The root of the project.
fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The fan-out's stream mapping is a plain resource, not a SAM event, with
/// the settings the pipeline depends on.
#[test]
fn the_fan_out_stream_mapping_is_a_plain_resource() {
    let t = template("template.yaml");
    let r = &t["Resources"];
    assert!(r["FanoutFunction"]["Properties"]["Events"].is_null(), "a DynamoDB event would attach SAM's broad policy");
    assert_eq!(r["FanoutStream"]["Type"].as_str(), Some("AWS::Lambda::EventSourceMapping"));
    let m = &r["FanoutStream"]["Properties"];
    assert_eq!(m["StartingPosition"].as_str(), Some("TRIM_HORIZON"));
    assert_eq!(m["BisectBatchOnFunctionError"].as_bool(), Some(true));
    assert_eq!(m["MaximumRecordAgeInSeconds"].as_u64(), Some(86400));
    assert_eq!(as_list(&m["FunctionResponseTypes"]), vec![Value::from("ReportBatchItemFailures")]);
    assert!(!m["DestinationConfig"]["OnFailure"]["Destination"].is_null());
}

/// SAM attaches AWS's broad execution-role policies to a function with an
/// SQS event (AWSLambdaSQSQueueExecutionRole: every queue in the account):
/// the refresh queue's mapping is declared as a plain resource instead.
#[test]
fn the_refresh_queue_is_fifo_with_a_dead_letter_queue_and_a_plain_mapping() {
    let t = template("template.yaml");
    let r = &t["Resources"];
    let q = &r["RefreshQueue"]["Properties"];
    assert_eq!(q["FifoQueue"], Value::Bool(true));
    assert_eq!(
        q["RedrivePolicy"]["maxReceiveCount"].as_u64(),
        Some(u64::from(beacon_local::setup::REFRESH_MAX_RECEIVES))
    );
    assert_eq!(r["RefreshDeadLetterQueue"]["Properties"]["FifoQueue"], Value::Bool(true));
    assert!(r["RefreshFunction"]["Properties"]["Events"].is_null(), "an SQS event would attach SAM's broad policy");
    let mapping = &r["RefreshPages"]["Properties"];
    assert_eq!(r["RefreshPages"]["Type"].as_str(), Some("AWS::Lambda::EventSourceMapping"));
    assert_eq!(mapping["BatchSize"].as_u64(), Some(1));
    assert_eq!(as_list(&mapping["FunctionResponseTypes"]), vec![Value::from("ReportBatchItemFailures")]);
    // The visibility timeout covers several runs of the function, so a page
    // being written is not delivered again.
    let timeout =
        r["RefreshFunction"]["Properties"]["Timeout"].as_u64().or(t["Globals"]["Function"]["Timeout"].as_u64());
    assert!(q["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout.unwrap());
}

#[test]
fn the_mapping_filter_equals_the_local_pollers() {
    let t = template("template.yaml");
    let filters = &t["Resources"]["FanoutStream"]["Properties"]["FilterCriteria"]["Filters"];
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
    assert_eq!(table["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(beacon_domain::keys::EXPIRES_AT));
    let indexes = as_list(&table["GlobalSecondaryIndexes"]);
    let names: Vec<&str> = indexes.iter().filter_map(|i| i["IndexName"].as_str()).collect();
    assert_eq!(names, [beacon_domain::keys::EXPIRY_INDEX, beacon_domain::keys::LISTING_INDEX]);
    // The listing index: by shard, then partition key, keys only.
    let listing = &indexes[1];
    let schema: Vec<String> = as_list(&listing["KeySchema"])
        .iter()
        .map(|k| format!("{} {}", k["AttributeName"].as_str().unwrap_or(""), k["KeyType"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        schema,
        [format!("{} HASH", beacon_domain::keys::EXPIRY_SHARD), format!("{} RANGE", beacon_domain::keys::PK)]
    );
    assert_eq!(listing["Projection"]["ProjectionType"].as_str(), Some("KEYS_ONLY"));
    // The AWS managed key in one account; the AWS owned key for an
    // Organization (DynamoDB refuses cross-account access under the former).
    let sse = match &table["SSESpecification"] {
        Value::Tagged(t) => t.value.as_sequence().unwrap().clone(),
        other => panic!("SSESpecification is not the OrganizationOn choice: {other:?}"),
    };
    assert_eq!(sse[0].as_str(), Some("OrganizationOn"));
    assert_eq!((sse[1]["SSEEnabled"].as_bool(), sse[2]["SSEEnabled"].as_bool()), (Some(false), Some(true)));
    assert_eq!(table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
}

/// The global table (infra/global-table.yaml) is the table
/// infra/template.yaml makes in one Region: same name, keys, indexes,
/// stream, TTL and encryption, so every Region's code reads it unchanged.
#[test]
fn the_global_table_is_the_one_region_table_in_every_region() {
    let one = template("template.yaml");
    let global = template("global-table.yaml");
    let (table, replicated) =
        (&one["Resources"]["Table"]["Properties"], &global["Resources"]["GlobalTable"]["Properties"]);
    for property in [
        "TableName",
        "BillingMode",
        "AttributeDefinitions",
        "KeySchema",
        "StreamSpecification",
        "TimeToLiveSpecification",
    ] {
        assert_eq!(table[property], replicated[property], "{property} differs");
    }
    // Encrypted as the one-Region table is outside an Organization.
    let Value::Tagged(sse) = &table["SSESpecification"] else { panic!("SSESpecification") };
    assert_eq!(sse.value.as_sequence().unwrap()[2], replicated["SSESpecification"]);
    // The indexes, without the comments' difference in layout.
    let strip = |v: &Value| {
        as_list(v)
            .iter()
            .map(|i| (i["IndexName"].clone(), i["KeySchema"].clone(), i["Projection"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&table["GlobalSecondaryIndexes"]), strip(&replicated["GlobalSecondaryIndexes"]));
    // Every replica keeps point-in-time recovery, as the one-Region table does.
    for replica in as_list(&replicated["Replicas"]) {
        let spec = match &replica {
            Value::Tagged(t) => t.value.as_sequence().unwrap()[1].clone(),
            other => other.clone(),
        };
        assert_eq!(spec["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
    }
    // The Region stacks run on a replica instead of making the table.
    assert_eq!(one["Resources"]["Table"]["Condition"].as_str(), Some("OwnTable"));
}
