//! The API's errors: `{"error": {"code", "message"}}` with a status that fits.
//!
//! Every error a client can cause is a 4xx whose message says how to fix the request. An
//! [`ApiError`] may also carry an internal cause; it is logged, never sent.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use offstage::ErrorKind;
use serde_json::json;

/// How long a client is told to wait (`Retry-After`) when the store's disk is full.
pub const STORAGE_FULL_RETRY_S: u32 = 5;

/// An error answer: status, a stable machine-readable code, and a message for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    cause: Option<String>,
    /// Seconds for a `Retry-After` header, on answers that say "not now" (503).
    retry_after: Option<u32>,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            cause: None,
            retry_after: None,
        }
    }

    /// The same error, telling the client to retry after `seconds` (`Retry-After`).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The same error, with an internal `cause` that is logged when it is answered, never
    /// sent.
    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl From<offstage::Error> for ApiError {
    fn from(error: offstage::Error) -> Self {
        let (status, code) = match error.kind() {
            ErrorKind::UnknownTaskType => (StatusCode::BAD_REQUEST, "unknown_task_type"),
            ErrorKind::InvalidArgs => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_args"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::InvalidId => (StatusCode::BAD_REQUEST, "invalid_id"),
            ErrorKind::InvalidArgument => (StatusCode::BAD_REQUEST, "invalid_argument"),
            ErrorKind::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
            ErrorKind::LockLost => (StatusCode::CONFLICT, "lock_lost"),
            ErrorKind::StateTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ErrorKind::StorageFull => {
                // The client did nothing wrong and the same request will work once an
                // operator frees space: 503, with when to try again. The message says what
                // the operator must do; the server's log says it too.
                tracing::error!(%error, "the store's disk is full");
                return Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_full",
                    error.message(),
                )
                .retry_after(STORAGE_FULL_RETRY_S);
            }
            // The node was declared dead and is rejoining as a new node: a moment later works.
            ErrorKind::NodeDead => (StatusCode::SERVICE_UNAVAILABLE, "node_rejoining"),
            // The database went away (a PostgreSQL restart, a lost connection) or failed a
            // write: nothing the caller sent was wrong, and the same request may succeed in a
            // moment. The cause is logged, never sent.
            ErrorKind::Store => {
                return Self {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    code: "store_unavailable",
                    message: "the task store (the database) is unavailable or failed this \
                              request (it may not have been carried out): retry in a moment; the \
                              server's log has the cause"
                        .into(),
                    cause: Some(error.to_string()),
                    retry_after: Some(1),
                }
            }
            _ => {
                return Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: "internal",
                    message: "the server failed to handle this request; its log has the cause"
                        .into(),
                    cause: Some(error.to_string()),
                    retry_after: None,
                }
            }
        };
        Self::new(status, code, error.message())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            tracing::error!(code = self.code, %cause, "request failed");
        }
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// The body of every error answer, for the OpenAPI document.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

/// `code` is stable and machine-readable; `message` says how to fix the request.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    code: String,
    message: String,
}
