//! CloudWatch Embedded Metric Format (EMF): a metric is a JSON log line on
//! stdout that CloudWatch Logs turns into a metric, with no API call and no
//! extra latency in the function
//! (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).

use serde_json::{Map, Value, json};

/// Beacon's metric namespace.
pub const NAMESPACE: &str = "Beacon";

/// One metric value.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Metric name.
    pub name: &'static str,
    /// Value.
    pub value: f64,
    /// CloudWatch unit (`Count`, `Milliseconds`, ...).
    pub unit: &'static str,
}

/// Builds one EMF document with `dimensions` (name, value) at `timestamp_ms`.
pub fn document(dimensions: &[(&str, &str)], metrics: &[Metric], timestamp_ms: i64) -> Value {
    let mut doc = Map::new();
    doc.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                "Metrics": metrics.iter().map(|m| json!({ "Name": m.name, "Unit": m.unit })).collect::<Vec<_>>(),
            }]
        }),
    );
    for (k, v) in dimensions {
        doc.insert((*k).to_owned(), json!(v));
    }
    for m in metrics {
        doc.insert(m.name.to_owned(), json!(m.value));
    }
    Value::Object(doc)
}

/// Writes documents to stdout, one line each (where Lambda's log capture
/// picks them up).
pub fn emit(documents: &[Value]) {
    for d in documents {
        println!("{d}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_follow_the_emf_shape() {
        let d =
            document(&[("Function", "fanout")], &[Metric { name: "InvalidRecords", value: 2.0, unit: "Count" }], 1_000);
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Beacon");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0], "Function");
        assert_eq!(d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"], "InvalidRecords");
        assert_eq!(d["InvalidRecords"], 2.0);
        assert_eq!(d["Function"], "fanout");
        assert_eq!(d["_aws"]["Timestamp"], 1_000);
    }
}
