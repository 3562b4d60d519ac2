//! The web crate's one error type, and how it becomes an HTTP reply: JSON with a stable code for
//! the API (`{"error": {"code", "message", "field"}}`). Pages render their own (see `pages`).

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use postern_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A value that does not parse or breaks a rule, naming the field when there is one.
    #[error("{message}")]
    Invalid { field: Option<String>, message: String },
    #[error("{0}")]
    NotFound(String),
    /// The thing exists already.
    #[error("{0}")]
    Duplicate(String),
    /// Well-formed, but the configuration would be inconsistent.
    #[error("{0}")]
    Conflict(String),
    #[error("sign in first: send `Authorization: Bearer <token>`")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    #[error("too many failed attempts; try again in {0} seconds")]
    TooMany(u64),
    /// Too many password checks at once (see `postern_store::auth::HashGate`); worth retrying.
    #[error("too many sign-ins at once; try again in a moment")]
    Busy,
    /// The store cannot be reached; worth retrying.
    #[error("the store is unavailable; try again shortly")]
    Unavailable,
    /// Our fault. The message shown is generic; the detail goes to the log.
    #[error("internal error")]
    Internal(String),
}

/// The body of every API error.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `invalid`, `not_found`, `duplicate`, `conflict`,
    /// `unauthenticated`, `forbidden`, `too_many_attempts`, `unavailable`, `busy`, `internal`.
    pub code: &'static str,
    /// For a person.
    pub message: String,
    /// The input field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl WebError {
    pub fn invalid(field: &str, message: impl Into<String>) -> WebError {
        WebError::Invalid { field: Some(field.to_string()), message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            WebError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Duplicate(_) | WebError::Conflict(_) => StatusCode::CONFLICT,
            WebError::Unauthenticated => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            WebError::Unavailable | WebError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            WebError::Invalid { .. } => "invalid",
            WebError::NotFound(_) => "not_found",
            WebError::Duplicate(_) => "duplicate",
            WebError::Conflict(_) => "conflict",
            WebError::Unauthenticated => "unauthenticated",
            WebError::Forbidden(_) => "forbidden",
            WebError::TooMany(_) => "too_many_attempts",
            WebError::Unavailable => "unavailable",
            WebError::Busy => "busy",
            WebError::Internal(_) => "internal",
        }
    }

    pub fn field(&self) -> Option<&str> {
        match self {
            WebError::Invalid { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// Seconds to wait before trying again, for a `Retry-After` header (RFC 9110 §10.2.3).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            WebError::TooMany(seconds) => Some(*seconds),
            WebError::Busy => Some(1),
            _ => None,
        }
    }

    /// Adds `Retry-After` to `response` when this error has one.
    pub fn add_retry_after(&self, response: &mut Response) {
        if let Some(seconds) = self.retry_after() {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code(),
                message: self.to_string(),
                field: self.field().map(str::to_string),
            },
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> WebError {
        match e {
            StoreError::Invalid { field, message } => {
                WebError::Invalid { field: Some(field.to_string()), message }
            }
            e @ StoreError::Duplicate { .. } => WebError::Duplicate(e.to_string()),
            e @ StoreError::NotFound { .. } => WebError::NotFound(e.to_string()),
            StoreError::Conflict(message) => WebError::Conflict(message),
            e if e.is_unavailable() => WebError::Unavailable,
            other => WebError::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        if let WebError::Internal(detail) = &self {
            tracing::error!(error = %detail, "console request failed");
        }
        let mut response = (self.status(), Json(self.body())).into_response();
        self.add_retry_after(&mut response);
        if matches!(self, WebError::Unauthenticated) {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"postern\""),
            );
        }
        response
    }
}

// Malformed input never reaches a handler as a 500: each extractor's rejection is a 4xx in our
// own shape.
impl From<JsonRejection> for WebError {
    fn from(r: JsonRejection) -> WebError {
        WebError::Invalid { field: None, message: r.body_text() }
    }
}

impl From<QueryRejection> for WebError {
    fn from(r: QueryRejection) -> WebError {
        WebError::Invalid { field: None, message: r.body_text() }
    }
}

impl From<PathRejection> for WebError {
    fn from(r: PathRejection) -> WebError {
        WebError::Invalid { field: None, message: r.body_text() }
    }
}

impl From<FormRejection> for WebError {
    fn from(r: FormRejection) -> WebError {
        WebError::Invalid { field: None, message: r.body_text() }
    }
}
