//! `--rate-limit-address`: requests from one remote address without an admin token, held to a
//! token bucket ([`otter_app::limits`]) in front of every route but `/healthz` and `/metrics`
//! (a load balancer's probes and a scraper come from one address). Refusals are 429
//! `rate_limited` with `Retry-After`, counted in `otter_rate_limited_total{scope="address"}`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use otter_app::App;

use crate::auth::bearer;
use crate::error::ApiError;

pub async fn per_address(State(app): State<App>, req: Request, next: Next) -> Response {
    if app.address_limit.is_off() || matches!(req.uri().path(), "/healthz" | "/metrics") {
        return next.run(req).await;
    }
    // Without connection info (a router served in-process without it) there is no address.
    let Some(ConnectInfo(peer)) = req.extensions().get::<ConnectInfo<SocketAddr>>().copied() else {
        return next.run(req).await;
    };
    // Admins (the CLI publishing, CI uploading chunks) are not devices; a wrong token is.
    let admin = bearer(req.headers()).is_some_and(|t| app.tokens.verify(t));
    if !admin && let Err(wait) = app.address_limit.take(peer.ip()) {
        metrics::counter!("otter_rate_limited_total", "scope" => "address").increment(1);
        return ApiError::rate_limited(format!("too many requests from {}", peer.ip()), wait)
            .into_response();
    }
    next.run(req).await
}
