//! [`AppError`]: the one error type of the application layer. Adapters map it once to their
//! wire format (otter-server's `ApiError`, and through it each protocol's own).
//!
//! Every error has a [`ErrorKind`] (what went wrong, which the HTTP layer turns into a status),
//! a stable `code` clients can branch on, and a message for people. Server faults are logged
//! where they are made and carry only a generic message, so no internal detail reaches a client.

use otter_core::model::InvalidField;
use otter_core::{DecisionError, VersionError};
use otter_store::StoreError;
use otter_store::blob::IngestError;

/// What kind of failure an [`AppError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request breaks a rule or is malformed.
    Invalid,
    /// What the request names does not exist.
    NotFound,
    /// The request clashes with the current state (exists already, busy, out of order).
    Conflict,
    /// The credentials presented are wrong (a failed login).
    Unauthorized,
    /// Who asks may not do this (a device the product keeps out, a role too low).
    Forbidden,
    /// More bytes than allowed.
    TooLarge,
    /// Too many requests: a rate limit or a cap ([`AppError::retry_after`] says when to retry).
    TooMany,
    /// otter failed; the cause is in the log.
    Internal,
}

/// An application-layer failure.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct AppError {
    pub kind: ErrorKind,
    /// Stable, snake_case: clients branch on it.
    pub code: &'static str,
    pub message: String,
    /// For upload errors: how many bytes the session holds now, so the client resumes there.
    pub offset: Option<u64>,
    /// For rate-limit refusals: how long until the next request is let in.
    pub retry_after: Option<std::time::Duration>,
}

pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        AppError {
            kind,
            code,
            message: message.into(),
            offset: None,
            retry_after: None,
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, code, message)
    }

    /// Adds the upload offset the client should resume from.
    pub fn at_offset(mut self, offset: u64) -> Self {
        self.offset = Some(offset);
        self
    }

    /// A request over a rate limit, let in again after `wait`.
    pub fn rate_limited(message: impl Into<String>, wait: std::time::Duration) -> Self {
        AppError {
            retry_after: Some(wait),
            ..Self::new(ErrorKind::TooMany, "rate_limited", message)
        }
    }

    pub fn too_large(limit: u64) -> Self {
        Self::new(
            ErrorKind::TooLarge,
            "payload_too_large",
            format!("the upload is larger than the limit of {limit} bytes"),
        )
    }

    pub fn product_not_found(product: &str) -> Self {
        Self::not_found("product_not_found", format!("no product named {product:?}"))
    }

    pub fn release_not_found(product: &str, version: &str) -> Self {
        Self::not_found(
            "release_not_found",
            format!("product {product:?} has no release {version:?}"),
        )
    }

    pub fn artifact_not_found(sha256: &str) -> Self {
        Self::not_found(
            "artifact_not_found",
            format!("no artifact with SHA-256 {sha256}"),
        )
    }

    /// A server fault: the cause is logged here and replaced by a generic message.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorKind::Internal,
            "internal",
            "internal server error (see the server log)",
        )
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => AppError::invalid(
                "invalid_cursor",
                "the cursor is not one this list handed out",
            ),
            StoreError::NotFound => AppError::not_found("not_found", "not found"),
            StoreError::Conflict(what) => {
                AppError::conflict("conflict", format!("{what} already exists"))
            }
            other => AppError::internal(other),
        }
    }
}

impl From<IngestError> for AppError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::TooLarge { limit } => AppError::too_large(limit),
            IngestError::Body(why) => AppError::invalid("upload_interrupted", why),
            IngestError::Store(e) => e.into(),
        }
    }
}

impl From<InvalidField> for AppError {
    fn from(e: InvalidField) -> Self {
        AppError::invalid(e.code(), e.to_string())
    }
}

impl From<VersionError> for AppError {
    fn from(e: VersionError) -> Self {
        InvalidField::from(e).into()
    }
}

impl From<DecisionError> for AppError {
    fn from(e: DecisionError) -> Self {
        match e {
            DecisionError::InvalidVersion(v) => v.into(),
        }
    }
}
