//! [`ApiError`]: the one error type of the HTTP layer, mapped to a response in one place; the
//! application layer's [`AppError`] becomes one in one place too.
//!
//! Every error body is `{"error":"<stable_code>","message":"<human text>"}` (plus extra fields
//! some codes carry, like the current `offset` of an upload). Client mistakes are 4xx with a code
//! clients can branch on; server faults are a 500 `internal` whose cause is logged, never sent:
//! the body carries the request's id (`requestId`) to find it in the log.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::RETRY_AFTER;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use otter_app::{AppError, ErrorKind};
use otter_core::model::InvalidField;
use otter_core::{DecisionError, VersionError};
use otter_store::StoreError;
use otter_store::blob::IngestError;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use std::time::Duration;

/// An error answer: status, stable code, message, and optional extra fields.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Map<String, Value>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: Map::new(),
        }
    }

    /// Adds a field to the error body.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.to_owned(), value.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 429 `rate_limited`, with the time until the next request is let in (rounded up to whole
    /// seconds, as `Retry-After` counts them) in `Retry-After` and as `retryAfter`.
    pub fn rate_limited(message: impl Into<String>, wait: Duration) -> Self {
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .with("retryAfter", seconds)
    }

    /// The `Retry-After` header of a [`ApiError::rate_limited`] (kept in the body's `retryAfter`
    /// rather than a field of its own, so the error stays small on every `Result`).
    pub fn retry_after(&self) -> Option<HeaderValue> {
        self.extra
            .get("retryAfter")
            .and_then(Value::as_u64)
            .map(HeaderValue::from)
    }

    /// A server fault: the cause is logged and replaced by a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::internal(cause).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after();
        let mut body = self.extra;
        body.insert("error".into(), json!(self.code));
        body.insert("message".into(), json!(self.message));
        // The id finds the cause in the server log, which the body never carries.
        if self.status.is_server_error()
            && let Some(id) = crate::request_log::current()
        {
            body.insert("requestId".into(), json!(&*id));
        }
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if let Some(wait) = retry_after {
            response.headers_mut().insert(RETRY_AFTER, wait);
        }
        response
    }
}

/// The one mapping of application errors to HTTP.
impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        let status = match e.kind {
            ErrorKind::Invalid => StatusCode::BAD_REQUEST,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::TooMany => StatusCode::TOO_MANY_REQUESTS,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if let Some(wait) = e.retry_after {
            return ApiError::rate_limited(e.message, wait);
        }
        let error = ApiError::new(status, e.code, e.message);
        match e.offset {
            Some(offset) => error.with("offset", offset),
            None => error,
        }
    }
}

/// Lower layers' errors reach HTTP through [`AppError`], so each is mapped in one place.
macro_rules! through_app_error {
    ($($error:ty),*) => {$(
        impl From<$error> for ApiError {
            fn from(e: $error) -> Self {
                AppError::from(e).into()
            }
        }
    )*};
}

through_app_error!(
    StoreError,
    IngestError,
    InvalidField,
    VersionError,
    DecisionError
);

/// `Json` whose rejections (bad JSON, wrong content type, body too large) answer in the house
/// error format.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    // axum answers well-formed JSON of the wrong shape with 422; otter keeps to 400 for every
    // malformed body so clients have one status to handle.
    let (status, code) = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
        }
        _ => (StatusCode::BAD_REQUEST, "invalid_json"),
    };
    ApiError::new(status, code, rejection.body_text())
}

/// `Query` with house-format rejections.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|r: QueryRejection| ApiError::bad_request("invalid_query", r.body_text()))
    }
}

/// `Path` with house-format rejections.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r: PathRejection| ApiError::bad_request("invalid_path", r.body_text()))
    }
}

/// Answer for routes that do not exist.
pub async fn no_route() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

/// Answer for an existing route called with the wrong method.
pub async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}
