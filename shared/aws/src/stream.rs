//! From the Lambda DynamoDB stream event (`aws_lambda_events`) to the
//! domain's carrier-neutral [`StreamChange`]: the key is read, and each image
//! is decoded by what the key says the item is, so classification sees
//! registrations and needs, never attribute maps.

use aws_lambda_events::event::dynamodb::EventRecord;
use beacon_domain::change::{Image, StreamChange};
use beacon_domain::keys::{self, KeyKind};
use serde_dynamo::Item;

use crate::item::{decode_needs, decode_registration, item_key};

/// Decodes one image by its key's kind. Registration and needs keys get
/// their codec (a failure becomes [`Image::Invalid`]); other keys are not
/// Beacon's to decode.
pub fn decode_image(kind: &KeyKind, item: &Item) -> Image {
    match kind {
        KeyKind::Instance { .. } => decode_registration(item).map_or_else(Image::Invalid, Image::Registration),
        KeyKind::Needs { .. } => decode_needs(item).map_or_else(Image::Invalid, Image::Needs),
        KeyKind::Own | KeyKind::Stray | KeyKind::Other => Image::Other,
    }
}

/// The parts of a stream record, as carried in DynamoDB JSON.
#[derive(Debug, Clone, Copy)]
pub struct RecordImages<'a> {
    /// The record's `Keys`.
    pub keys: &'a Item,
    /// The old image (empty when absent).
    pub old_image: &'a Item,
    /// The new image (empty when absent).
    pub new_image: &'a Item,
}

/// Reads the key (from `Keys`, else an image) and decodes both images by
/// it. Empty images become `None`.
pub fn decode_record(images: RecordImages<'_>, change: StreamChange) -> StreamChange {
    fn non_empty(i: &Item) -> Option<&Item> {
        (!i.inner().is_empty()).then_some(i)
    }
    let (old, new) = (non_empty(images.old_image), non_empty(images.new_image));
    let key = item_key(images.keys).or_else(|| new.and_then(item_key)).or_else(|| old.and_then(item_key));
    let kind = key.as_ref().map_or(KeyKind::Other, |(pk, sk)| keys::key_kind(pk, sk));
    let new_expiry_shard = new.and_then(|i| match i.inner().get(keys::EXPIRY_SHARD) {
        Some(serde_dynamo::AttributeValue::S(s)) => Some(s.clone()),
        _ => None,
    });
    StreamChange {
        key,
        new_expiry_shard,
        old_image: old.map(|i| decode_image(&kind, i)),
        new_image: new.map(|i| decode_image(&kind, i)),
        ..change
    }
}

/// Converts one Lambda stream record.
pub fn stream_change(record: &EventRecord) -> StreamChange {
    let images = RecordImages {
        keys: &record.change.keys,
        old_image: &record.change.old_image,
        new_image: &record.change.new_image,
    };
    decode_record(
        images,
        StreamChange {
            event_id: record.event_id.clone(),
            event_name: record.event_name.clone(),
            user_identity: record.user_identity.as_ref().map(|u| (u.type_.clone(), u.principal_id.clone())),
            created_at: record.change.approximate_creation_date_time.timestamp(),
            ..StreamChange::default()
        },
    )
}

/// The record's sequence number: what a partial batch response names.
pub fn sequence_number(record: &EventRecord) -> Option<&str> {
    record.change.sequence_number.as_deref()
}
