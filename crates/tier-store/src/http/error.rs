//! Errors as the API shows them: a status, a stable machine code, a human message and, for
//! some codes, more fields (`{"error": "conflict", "message": "...", "current": {...}}`).
//! Internal failures reach the client only as `internal`; their cause goes to stderr.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::error::StoreError;

#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) details: Map<String, Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub(crate) fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.details.insert(name.to_owned(), value.into());
        self
    }

    /// A failure the client cannot fix; its cause is reported here and not sent.
    pub(crate) fn internal(cause: &dyn std::fmt::Display) -> Self {
        eprintln!("tier-store http: internal error: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the store failed to carry out the request; its log has the cause",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::Compacted {
                requested,
                compacted,
            } => ApiError::new(StatusCode::GONE, "compacted", error.to_string())
                .with("requested", requested.0)
                .with("compacted_revision", compacted.0),
            StoreError::FutureRevision { requested, current } => {
                ApiError::bad_request("future_revision", error.to_string())
                    .with("requested", requested.0)
                    .with("revision", current.0)
            }
            StoreError::LeaseNotFound(id) => {
                ApiError::not_found("lease_not_found", error.to_string()).with("lease", id.0)
            }
            StoreError::InvalidKey(_) => ApiError::bad_request("invalid_key", error.to_string()),
            StoreError::InvalidTtl => ApiError::bad_request("invalid_ttl", error.to_string()),
            // The file or the cluster failing: nothing the client can fix.
            _ => ApiError::internal(&error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), Value::from(self.code));
        body.insert("message".into(), Value::from(self.message));
        body.extend(self.details);
        (self.status, Json(Value::Object(body))).into_response()
    }
}
