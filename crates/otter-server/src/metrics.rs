//! Prometheus metrics at `/metrics` (on the main listener, or on its own with
//! `--metrics-listen`).
//!
//! | metric | what |
//! |---|---|
//! | `otter_http_requests_total{route,method,status}` | requests answered |
//! | `otter_http_request_duration_seconds{route,method}` | time to the response head |
//! | `otter_checks_total{protocol,result}` | update checks by protocol (`native`, `ota_backend`, `manifest`, `arduino`, `thinx`) and answer: `offered`, `up_to_date`, `no_path` |
//! | `otter_download_bytes_total` | artifact bytes sent |
//! | `otter_downloads_active` | downloads streaming right now |
//! | `otter_upload_sessions` | resumable upload sessions open |
//! | `otter_sighting_queue_depth`, `otter_sightings_dropped_total` | the batched device-sighting queue |
//! | `otter_store_duration_seconds{op}` | latency of every store call |
//! | `otter_signatures_expiring` | roots and release signatures that expire within 30 days |
//! | `otter_rate_limited_total{scope}` | requests refused by `--rate-limit-address` (`address`) or `--rate-limit-device` (`device`) |

use otter_core::FastMap;
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::ApiError;
use otter_app::App;

/// Latency buckets, seconds: from a cached check answer to a slow store call.
const BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process-wide recorder, installed on first use. Metrics are per process, so several
/// servers in one process (tests) share them.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
            .map(PrometheusBuilder::build_recorder)
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed; /metrics will stay empty");
        }
        handle
    })
}

/// How often histogram samples are folded into their buckets. The recorder keeps every sample
/// until then (or until `/metrics` is scraped): without upkeep a server nobody scrapes would
/// grow by 16 bytes per request. Often, because folding holds a worker thread: every 5 s at
/// 100,000 requests a second it held one for milliseconds, and the checks queued behind it
/// doubled the 99th percentile at 1,000 connections (60 ms against 32 ms).
const UPKEEP_EVERY: Duration = Duration::from_millis(100);

/// Folds recorded samples into the histograms every [`UPKEEP_EVERY`] until the task is aborted.
pub fn upkeep() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tick.tick().await;
            handle().run_upkeep();
        }
    })
}

/// The request counter and latency histogram of one (route, method, status).
type RouteMetrics = (metrics::Counter, metrics::Histogram);

/// Handles by (address of the route template, method, status). axum hands every request of a
/// route the same shared template string, so its address names the route without hashing or
/// copying it; the hot check path then records with no allocation and no registry lookup.
type RouteKey = (usize, Method, u16);

static ROUTES: OnceLock<RwLock<FastMap<RouteKey, RouteMetrics>>> = OnceLock::new();

/// More entries than any real route table needs; past it, handles are built per request rather
/// than cached (a safety net, should template addresses ever stop being stable).
const MAX_CACHED_ROUTES: usize = 4096;

fn route_metrics(route: &str, method: &Method, status: StatusCode) -> RouteMetrics {
    let key = (route.as_ptr() as usize, method.clone(), status.as_u16());
    let cache = ROUTES.get_or_init(Default::default);
    if let Some(found) = cache.read().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return found.clone();
    }
    let made = (
        counter!("otter_http_requests_total", "route" => route.to_owned(),
            "method" => method.as_str().to_owned(), "status" => status.as_u16().to_string()),
        histogram!("otter_http_request_duration_seconds", "route" => route.to_owned(),
            "method" => method.as_str().to_owned()),
    );
    let mut cache = cache.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() < MAX_CACHED_ROUTES {
        cache.insert(key, made.clone());
    }
    made
}

/// Counts an answered request and its latency by route template (never the raw path, which
/// would make every device id its own series).
pub fn record(route: Option<&str>, method: &Method, status: StatusCode, started: Instant) {
    static UNMATCHED: &str = "unmatched";
    let route = route.unwrap_or(UNMATCHED);
    let (requests, latency) = route_metrics(route, method, status);
    latency.record(started.elapsed().as_secs_f64());
    requests.increment(1);
}

/// `GET /metrics` in the Prometheus text format. Gauges that are cheap to read are sampled here
/// rather than kept up to date on every request.
pub async fn render(State(app): State<App>) -> Response {
    let handle = handle();
    gauge!("otter_sighting_queue_depth").set(app.seen.depth() as f64);
    counter!("otter_sightings_dropped_total").absolute(app.seen.dropped());
    counter!("otter_devices_over_limit_total").absolute(app.seen.over_limit());
    match app.store.all_uploads().await {
        Ok(sessions) => gauge!("otter_upload_sessions").set(sessions.len() as f64),
        Err(e) => return ApiError::from(e).into_response(),
    }
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// `otter_download_bytes_total`, counted by [`crate::download::Delivery`].
pub fn download_bytes() -> metrics::Counter {
    counter!("otter_download_bytes_total")
}
