//! `--rate-limit-address`: requests from one remote address without a valid admin token (of any
//! role), held to a token bucket ([`otter_app::limits`]) in front of every route but `/healthz`
//! and `/metrics`
//! (a load balancer's probes and a scraper come from one address). Refusals are 429
//! `rate_limited` with `Retry-After`, counted in `otter_rate_limited_total{scope="address"}`.
//!
//! Every 429, whichever limit gave it, is held back `--rate-limit-hold` before it goes out: a
//! refusal costs little, but a client that floods from keep-alive connections would otherwise
//! get one as fast as it can ask, and answering it takes the cores devices need (at full speed
//! a flood halved well-behaved devices' checks). Held, each of its connections gets one answer
//! per hold, and waiting costs a timer, not CPU; the connections it holds count against
//! `--max-connections` like any other.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use axum::http::header::RETRY_AFTER;
use axum::response::{IntoResponse, Response};
use otter_app::App;

use crate::auth::bearer;
use crate::error::ApiError;

/// The refusal of a request over its address's budget, if it is one.
pub fn per_address(app: &App, req: &Request) -> Option<Response> {
    if app.address_limit.is_off() || matches!(req.uri().path(), "/healthz" | "/metrics") {
        return None;
    }
    // Without connection info (a router served in-process without it) there is no address.
    let ConnectInfo(peer) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied()?;
    // Admins (the CLI publishing, CI uploading chunks) are not devices; a wrong token is.
    let now = otter_store::now();
    let admin = bearer(req.headers()).is_some_and(|t| app.tokens.authenticate(t, now).is_ok());
    if admin {
        return None;
    }
    let wait = app.address_limit.take(peer.ip()).err()?;
    metrics::counter!("otter_rate_limited_total", "scope" => "address").increment(1);
    Some(
        ApiError::rate_limited(format!("too many requests from {}", peer.ip()), wait)
            .into_response(),
    )
}

/// How long to hold `response` back: `--rate-limit-hold` (at most its `Retry-After`) for a 429.
pub fn refusal_hold(app: &App, response: &Response) -> Option<std::time::Duration> {
    let hold = app.config.rate_limit_hold;
    if response.status() != StatusCode::TOO_MANY_REQUESTS || hold.is_zero() {
        return None;
    }
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .map_or(hold, std::time::Duration::from_secs);
    Some(hold.min(retry_after))
}
