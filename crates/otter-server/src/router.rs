//! Every route otter serves, in one place.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, patch, post, put};
use otter_app::App;

use crate::admin::{apikeys, artifacts, fleet, products, releases, rollouts, signing, uploads};
use crate::error::{no_route, wrong_method};
use crate::native::{check, reports};
use crate::protocols::{arduino, iotawatt, manifest, ota_backend, thinx};
use crate::{download, limits, metrics, request_log};

/// The application. `with_metrics` puts `/metrics` on it (unless metrics have their own
/// listener).
pub fn router(app: App, with_metrics: bool) -> Router {
    // Upload routes enforce otter's own limit while streaming; axum's 2 MB default would cut
    // images off.
    let unlimited = DefaultBodyLimit::disable();
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/api/v1/status", get(crate::admin::status))
        .route(
            "/api/v1/products",
            get(products::list).post(products::create),
        )
        .route("/api/v1/products/{product}", get(products::get))
        .route("/api/v1/products/{product}/check", get(check::check))
        .route(
            "/api/v1/products/{product}/releases",
            get(releases::list).post(releases::publish),
        )
        .route(
            "/api/v1/products/{product}/releases/{version}",
            get(releases::get).patch(releases::patch),
        )
        .route(
            "/api/v1/products/{product}/iotawatt",
            get(products::iotawatt).put(products::set_iotawatt),
        )
        .route("/api/v1/products/{product}/devices", get(fleet::devices))
        .route("/api/v1/products/{product}/roots", post(signing::add_root))
        .route(
            "/api/v1/products/{product}/root/{file}",
            get(signing::get_root),
        )
        .route(
            "/api/v1/products/{product}/releases/{version}/signature",
            put(signing::attach_signature),
        )
        .route("/api/v1/online-key", get(signing::online_key))
        .route(
            "/api/v1/products/{product}/image-format",
            put(signing::set_image_format),
        )
        .route(
            "/api/v1/products/{product}/devices/{device}",
            patch(fleet::patch_device),
        )
        .route(
            "/api/v1/products/{product}/apikeys",
            get(apikeys::list).post(apikeys::create),
        )
        .route(
            "/api/v1/products/{product}/apikeys/{id}",
            delete(apikeys::revoke),
        )
        .route(
            "/api/v1/products/{product}/reports",
            get(fleet::reports).post(reports::create),
        )
        // Rollouts (issue 14, part C). Roles: GET viewer; every POST publisher.
        .route(
            "/api/v1/products/{product}/rollouts",
            get(rollouts::list).post(rollouts::create),
        )
        .route(
            "/api/v1/products/{product}/rollouts/{id}",
            get(rollouts::show),
        )
        .route(
            "/api/v1/products/{product}/rollouts/{id}/advance",
            post(rollouts::advance),
        )
        .route(
            "/api/v1/products/{product}/rollouts/{id}/pause",
            post(rollouts::pause),
        )
        .route(
            "/api/v1/products/{product}/rollouts/{id}/resume",
            post(rollouts::resume),
        )
        .route(
            "/api/v1/products/{product}/rollouts/{id}/abort",
            post(rollouts::abort),
        )
        .route(
            "/api/v1/products/{product}/rollouts/{id}/retry-failed",
            post(rollouts::retry_failed),
        )
        .route(
            "/api/v1/artifacts",
            put(artifacts::put_raw)
                .post(artifacts::post_multipart)
                .layer(unlimited),
        )
        .route("/api/v1/artifacts/{sha256}", get(artifacts::get))
        .route("/api/v1/uploads", post(uploads::begin))
        .route(
            "/api/v1/uploads/{id}",
            get(uploads::status)
                .put(uploads::chunk)
                .delete(uploads::abort)
                .layer(unlimited),
        )
        .route("/api/v1/uploads/{id}/finalize", post(uploads::finalize))
        .route("/dl/{sha256}", get(download::by_hash))
        .route(
            "/dl/{product}/{version}/{filename}",
            get(download::by_release),
        )
        // ota-backend (LuKks/ota-backend)
        .route("/v1/create", post(ota_backend::create))
        .route("/v1/firewall/allow", post(ota_backend::allow))
        .route("/v1/firewall/deny", post(ota_backend::deny))
        .route("/v1/upload", post(ota_backend::upload).layer(unlimited))
        .route(
            "/v1/check",
            get(ota_backend::check_unknown).post(ota_backend::check_unknown),
        )
        // Express's optional `:hash?` also matches a trailing slash.
        .route(
            "/v1/check/",
            get(ota_backend::check_unknown).post(ota_backend::check_unknown),
        )
        .route(
            "/v1/check/{hash}",
            get(ota_backend::check_hash).post(ota_backend::check_hash),
        )
        .route(
            "/v1/download/{hash}",
            get(ota_backend::download).post(ota_backend::download),
        )
        // The firmware manifest contract, per product and for --default-product at the root.
        .nest("/m/{product}", manifest_contract())
        .merge(manifest_contract())
        // Arduino HTTPUpdate (ESP8266/ESP32 cores)
        .route("/arduino/{product}/update", get(arduino::update))
        // THiNX devices
        .route("/device/register", post(thinx::register))
        .route(
            "/device/firmware",
            get(thinx::firmware_by_token).post(thinx::firmware),
        )
        // IotaWatt, at its own paths for --iotawatt-product and per product.
        .merge(iotawatt_paths())
        .nest("/iotawatt/{product}", iotawatt_paths())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method);
    let router = if with_metrics {
        router.route("/metrics", get(metrics::render))
    } else {
        router
    };
    router
        .layer(middleware::from_fn_with_state(app.clone(), front))
        .with_state(app)
}

/// What runs in front of every route, outermost first: the request id and access log
/// ([`request_log`]), request metrics ([`metrics`]), the `Host` check ([`download`]) and the
/// per-address rate limit ([`limits`]). One middleware rather than one layer each: every `from_fn`
/// layer clones and boxes the route's whole stack below it on each request, which on the check
/// path cost more than the handler.
async fn front(State(app): State<App>, request: Request, next: Next) -> Response {
    request_log::observe(request, async |request: Request| {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        let refused = download::invalid_host(request.headers())
            .or_else(|| limits::per_address(&app, &request));
        let response = match refused {
            Some(refused) => refused,
            None => next.run(request).await,
        };
        metrics::record(route.as_ref(), &method, response.status(), started);
        response
    })
    .await
}

/// The firmware manifest contract's paths; every answer may be read from any web page.
fn manifest_contract() -> Router<App> {
    Router::new()
        .route("/api/firmware/latest", manifest::route(manifest::latest))
        .route("/api/firmware/check", manifest::route(manifest::check))
        .route(
            "/api/firmware/{version}",
            manifest::route(manifest::by_version),
        )
        .route("/firmware/{file}", manifest::route(manifest::binary))
        .route_layer(middleware::from_fn(manifest::allow_any_origin))
}

/// The paths an IotaWatt asks, with the host pointed at otter.
fn iotawatt_paths() -> Router<App> {
    Router::new()
        .route("/firmware/versions.json", get(iotawatt::versions))
        .route("/firmware/bin/{file}", get(iotawatt::binary))
        .route("/download/tables/{file}", get(iotawatt::tables))
}

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(app)
}
