//! Stream records as Lambda delivers them: the JSON a DynamoDB stream
//! event carries, built from the Streams API's records (or from the raw
//! body, when DynamoDB Local sends what the SDK cannot parse).

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::Record;
use serde_json::{Value, json};

use super::Poller;

beacon_aws::attribute_value_from_sdk!(av_from_stream, aws_sdk_dynamodbstreams::types::AttributeValue);

/// Converts a Streams API image to the carrier Lambda events use.
fn from_stream_sdk(item: HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>) -> serde_dynamo::Item {
    serde_dynamo::Item::from(item.into_iter().map(|(k, v)| (k, av_from_stream(v))).collect::<HashMap<_, _>>())
}

impl Poller {
    /// Parses a raw GetRecords body into Lambda records and the next
    /// iterator, restoring the `M` tag DynamoDB Local drops from empty maps.
    pub(crate) fn records_from_raw(&self, body: &[u8]) -> Option<(Option<String>, Vec<Value>)> {
        let mut doc: Value = serde_json::from_slice(body).ok()?;
        let next = doc.get("NextShardIterator").and_then(Value::as_str).map(str::to_owned);
        let records = doc.get_mut("Records")?.as_array_mut()?;
        let mut out = Vec::with_capacity(records.len());
        for record in records.iter_mut() {
            for image in ["Keys", "NewImage", "OldImage"] {
                if let Some(Value::Object(attrs)) = record.get_mut("dynamodb").and_then(|d| d.get_mut(image)) {
                    attrs.values_mut().for_each(fix_empty_maps);
                }
            }
            record["eventSourceARN"] = Value::String(self.stream_arn.clone());
            record["awsRegion"] = Value::String(self.region.clone());
            out.push(record.take());
        }
        Some((next, out))
    }

    /// The record exactly as Lambda delivers it.
    pub(crate) fn lambda_record(&self, r: &Record) -> Value {
        let d = r.dynamodb.as_ref();
        let image = |img: Option<&HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
            img.map(|m| serde_json::to_value(from_stream_sdk(m.clone())).unwrap_or(Value::Null))
        };
        let mut dynamodb = json!({
            "ApproximateCreationDateTime": d.and_then(|d| d.approximate_creation_date_time).map(|t| t.as_secs_f64()),
            "Keys": image(d.and_then(|d| d.keys.as_ref())),
            "SequenceNumber": d.and_then(|d| d.sequence_number.clone()),
            "SizeBytes": d.and_then(|d| d.size_bytes).unwrap_or_default(),
            "StreamViewType": d.and_then(|d| d.stream_view_type.as_ref()).map(|v| v.as_str().to_owned()),
        });
        if let Some(new) = image(d.and_then(|d| d.new_image.as_ref())) {
            dynamodb["NewImage"] = new;
        }
        if let Some(old) = image(d.and_then(|d| d.old_image.as_ref())) {
            dynamodb["OldImage"] = old;
        }
        let mut record = json!({
            "eventID": r.event_id,
            "eventName": r.event_name.as_ref().map(|n| n.as_str().to_owned()),
            "eventVersion": r.event_version,
            "eventSource": r.event_source.clone().unwrap_or_else(|| "aws:dynamodb".into()),
            // Lambda reports the table's region; DynamoDB Local says "ddblocal".
            "awsRegion": self.region,
            "dynamodb": dynamodb,
            "eventSourceARN": self.stream_arn,
        });
        if let Some(u) = &r.user_identity {
            record["userIdentity"] = json!({ "type": u.r#type, "principalId": u.principal_id });
        }
        record
    }
}

/// In DynamoDB JSON every attribute value is a one-key object naming its
/// type; a bare `{}` can only be an empty map that lost its tag.
fn fix_empty_maps(value: &mut Value) {
    let Value::Object(obj) = value else { return };
    if obj.is_empty() {
        *value = json!({ "M": {} });
        return;
    }
    if let Some(Value::Object(m)) = obj.get_mut("M") {
        m.values_mut().for_each(fix_empty_maps);
    }
    if let Some(Value::Array(l)) = obj.get_mut("L") {
        l.iter_mut().for_each(fix_empty_maps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untagged_empty_maps_get_their_tag_back() {
        let mut v = json!({"M": {"a": {}, "b": {"L": [{}, {"S": "x"}]}}});
        fix_empty_maps(&mut v);
        assert_eq!(v, json!({"M": {"a": {"M": {}}, "b": {"L": [{"M": {}}, {"S": "x"}]}}}));
    }
}
