//! Request ids and the access log.
//!
//! Every request gets an id: the caller's `X-Request-Id` when it sends a usable one (a proxy's,
//! so one id follows the request through both logs), else one made here. The id is sent back in
//! `X-Request-Id`, carried by every log line written while the request is handled (a `request`
//! span), put into the body of 5xx answers (`requestId`) so a user can quote it, and written in
//! one access-log line per request (target `otter::access`: method, route template, status,
//! latency). `RUST_LOG=info,otter::access=off` silences the access log alone.

use std::future::Future;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method};
use axum::response::Response;
use tracing::Instrument;

/// The header requests and answers carry their id in.
pub const REQUEST_ID: &str = "x-request-id";

/// Longest caller-chosen id kept; longer ones are replaced.
const MAX_ID_LEN: usize = 128;

tokio::task_local! {
    static CURRENT: Arc<str>;
}

/// The id of the request being handled on this task, if any.
pub fn current() -> Option<Arc<str>> {
    CURRENT.try_with(Arc::clone).ok()
}

/// A new id: a random per-process prefix and a counter, so making one costs no system call on
/// the check path and ids from several nodes do not collide.
pub(crate) fn new_id() -> Arc<str> {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let prefix = PREFIX.get_or_init(|| otter_store::random_id()[..12].to_owned());
    // Written by hand rather than with `format!`, which costs more on every request.
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(prefix.len() + 17);
    id.push_str(prefix);
    id.push('-');
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for shift in (0..digits).rev() {
        let nibble = ((n >> (shift * 4)) & 0xf) as u8;
        id.push(char::from(b"0123456789abcdef"[usize::from(nibble)]));
    }
    Arc::from(id)
}

/// The caller's id when it is one a log line can carry safely (visible ASCII, not too long).
fn usable(value: &[u8]) -> Option<Arc<str>> {
    let fits =
        !value.is_empty() && value.len() <= MAX_ID_LEN && value.iter().all(u8::is_ascii_graphic);
    // Visible ASCII is UTF-8.
    std::str::from_utf8(value)
        .ok()
        .filter(|_| fits)
        .map(Arc::from)
}

/// The id of a request that sent `header` as its `X-Request-Id`.
pub(crate) fn id_of(header: Option<&[u8]>) -> Arc<str> {
    header.and_then(usable).unwrap_or_else(new_id)
}

/// Gives the request its id, runs `handle` inside a `request` span, answers with the id and
/// logs the access line.
pub async fn observe<F, Fut>(request: Request, handle: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let id = id_of(request.headers().get(REQUEST_ID).map(HeaderValue::as_bytes));
    // A shared handle on the route template: copied only if the access line is written.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = request.method().clone();
    observed(
        id,
        &method,
        route.as_ref().map(MatchedPath::as_str),
        handle(request),
    )
    .await
}

/// [`observe`] for a request already taken apart: `answer` runs inside the `request` span of
/// `id`, a `method` request of `route`.
pub(crate) async fn observed(
    id: Arc<str>,
    method: &Method,
    route: Option<&str>,
    answer: impl Future<Output = Response>,
) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!("request", id = %id);
    let mut response = CURRENT.scope(id.clone(), answer.instrument(span)).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    tracing::info!(
        target: "otter::access",
        request_id = %id,
        method = %method,
        route = route.unwrap_or("unmatched"),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_prefix_and_hex_counter() {
        let (a, b) = (new_id(), new_id());
        let (prefix, n) = a.split_once('-').unwrap();
        assert_eq!(prefix.len(), 12);
        let n = u64::from_str_radix(n, 16).unwrap();
        assert_eq!(&*b, format!("{prefix}-{:x}", n + 1));
    }
}
