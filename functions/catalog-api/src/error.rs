//! Everything that can go wrong, and the one place it becomes a status and
//! a JSON body.

use beacon_domain::registration::ValidationError;
use serde_json::{Value, json};

use crate::MAX_BODY;

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    /// The field's name in the request.
    pub field: String,
    /// The rule it broke.
    pub message: String,
}

/// Everything that can go wrong, mapped to a status in one place.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; names each invalid field.
    #[error("invalid request")]
    BadRequest(Vec<FieldError>),
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 404 for a resolution, with the reason.
    #[error("{requirement}: {reason}")]
    Unresolved {
        /// The requirement.
        requirement: String,
        /// Why nothing resolved.
        reason: beacon_domain::Unresolved,
    },
    /// 405, with the methods the route allows (the `Allow` header).
    #[error("{method} is not allowed here")]
    MethodNotAllowed {
        /// The method used.
        method: String,
        /// What the route allows, for the `Allow` header.
        allow: &'static str,
    },
    /// 409: a conditional write found the item in the way.
    #[error("{0}")]
    Conflict(String),
    /// 403: a write without a valid signature (local server only; API
    /// Gateway refuses these itself).
    #[error("{0}")]
    Forbidden(String),
    /// 403: a per-service route whose body names another service.
    #[error("this route writes service `{path}`; the body names `{body}`")]
    ServiceMismatch {
        /// The service the path names (what IAM authorised).
        path: String,
        /// The service the body names.
        body: String,
    },
    /// 413.
    #[error("the body is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// 500/503: the registry failed; retryable ones are 503.
    #[error(transparent)]
    Store(#[from] beacon_domain::ports::StoreError),
}

impl ApiError {
    pub(crate) fn field(field: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(vec![FieldError { field: field.into(), message: message.into() }])
    }

    /// The HTTP status and JSON body for this error.
    pub fn response(&self) -> (u16, Value) {
        match self {
            ApiError::BadRequest(fields) => (400, json!({ "error": "invalid request", "fields": fields })),
            ApiError::NotFound(what) => (404, json!({ "error": what })),
            ApiError::Unresolved { requirement, reason } => (
                404,
                json!({ "error": "Service Not Found", "requirement": requirement, "unresolved": reason, "message": reason.to_string() }),
            ),
            ApiError::MethodNotAllowed { method, allow } => {
                (405, json!({ "error": format!("{method} is not allowed on this route; use {allow}"), "allow": allow }))
            }
            ApiError::Conflict(m) => (409, json!({ "error": m })),
            ApiError::Forbidden(m) => (403, json!({ "error": m })),
            ApiError::ServiceMismatch { body, .. } => (403, json!({ "error": self.to_string(), "service": body })),
            ApiError::TooLarge => (413, json!({ "error": self.to_string() })),
            ApiError::Store(e) => {
                // The cause goes to the log, not to the client.
                tracing::error!(error = %e, "registry call failed");
                if e.is_retryable() {
                    (503, json!({ "error": "the registry is busy; retry" }))
                } else {
                    (500, json!({ "error": "internal error" }))
                }
            }
        }
    }
}

impl From<ValidationError> for FieldError {
    fn from(e: ValidationError) -> Self {
        FieldError { field: e.field.into(), message: e.rule }
    }
}
