//! Admin authentication: `Authorization: Bearer <token>`, checked against the application's
//! admin tokens (see `otter_app::tokens`).
//!
//! A refusal is a 401 with `WWW-Authenticate: Bearer` (RFC 6750). A token that is not valid is
//! logged with the client's address, at most one line a second with the count since the last
//! line, so that guessing shows in the log without flooding it. A missing token is not logged:
//! ota-backend's `/v1/create` takes one only optionally.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use otter_app::App;

use crate::error::ApiError;

/// The token in `Authorization: Bearer <token>`, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

/// Extractor that admits only requests carrying a valid admin token.
pub struct Admin;

impl FromRequestParts<App> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, Response> {
        let message = match bearer(&parts.headers) {
            Some(t) if app.tokens.verify(t) => return Ok(Admin),
            Some(_) => {
                let remote = parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|ConnectInfo(addr)| *addr);
                if let Some(failures) = FAILURES.record(Instant::now()) {
                    let remote = remote.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
                    tracing::warn!(%remote, failures, "admin authentication failed");
                }
                "the admin token is not valid"
            }
            None => "this endpoint needs `Authorization: Bearer <admin token>`",
        };
        let mut refused =
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
        refused.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"otter\""),
        );
        Err(refused)
    }
}

/// Failed admin authentications since the last log line.
static FAILURES: FailureLog = FailureLog {
    state: Mutex::new(None),
};

/// How often failed authentications are logged at most.
const LOG_EVERY: Duration = Duration::from_secs(1);

struct FailureLog {
    /// When the last line was written, and how many failures it has not told of.
    state: Mutex<Option<(Instant, u64)>>,
}

impl FailureLog {
    /// Counts a failure at `now`; returns how many to log (this one and those not yet told
    /// of) when a line is due.
    fn record(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *state {
            Some((last, unlogged)) if now.duration_since(*last) < LOG_EVERY => {
                *unlogged += 1;
                None
            }
            _ => {
                let count = state.map_or(0, |(_, unlogged)| unlogged) + 1;
                *state = Some((now, 0));
                Some(count)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_logged_at_most_once_a_second_with_a_count() {
        let log = FailureLog {
            state: Mutex::new(None),
        };
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(log.record(at(0)), Some(1));
        assert_eq!(log.record(at(100)), None);
        assert_eq!(log.record(at(999)), None);
        assert_eq!(log.record(at(1000)), Some(3));
        assert_eq!(log.record(at(5000)), Some(1));
    }
}
