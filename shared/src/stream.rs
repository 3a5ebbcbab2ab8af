//! From the Lambda DynamoDB stream event (`aws_lambda_events`) to the
//! domain's carrier-neutral [`StreamChange`].

use aws_lambda_events::event::dynamodb::EventRecord;

use crate::change::StreamChange;

/// Converts one Lambda stream record. Empty images (absent in the event)
/// become `None`.
pub fn stream_change(record: &EventRecord) -> StreamChange {
    let non_empty = |i: &serde_dynamo::Item| (!i.inner().is_empty()).then(|| i.clone());
    StreamChange {
        event_id: record.event_id.clone(),
        event_name: record.event_name.clone(),
        keys: record.change.keys.clone(),
        old_image: non_empty(&record.change.old_image),
        new_image: non_empty(&record.change.new_image),
        user_identity: record.user_identity.as_ref().map(|u| (u.type_.clone(), u.principal_id.clone())),
        created_at: record.change.approximate_creation_date_time.timestamp(),
    }
}

/// The record's sequence number: what a partial batch response names.
pub fn sequence_number(record: &EventRecord) -> Option<&str> {
    record.change.sequence_number.as_deref()
}
