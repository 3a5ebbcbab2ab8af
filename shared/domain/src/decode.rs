//! Why an item read from the table is not a valid Beacon item. The codecs
//! live with the AWS adapters (`beacon_aws::item`); what they report is
//! domain vocabulary, so classification can turn it into an `invalid` event.

use crate::registration::ValidationError;
use crate::requirement::RequirementError;

/// Why an item is not a valid Beacon item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A required attribute is absent.
    #[error("missing attribute `{0}`")]
    Missing(&'static str),
    /// An attribute has the wrong DynamoDB type.
    #[error("attribute `{field}` must be {expected}, found {found}")]
    WrongType {
        /// Attribute name.
        field: &'static str,
        /// The type the schema wants.
        expected: &'static str,
        /// The type the item has.
        found: &'static str,
    },
    /// An attribute has the right type but breaks a rule.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The needs list does not parse.
    #[error("attribute `needs`: {0}")]
    Needs(#[from] RequirementError),
    /// The key disagrees with the attributes (or is not a Beacon key).
    #[error("key mismatch: {0}")]
    Key(String),
    /// Some other shape problem (nested values).
    #[error("{0}")]
    Shape(String),
}
