//! Every route otter serves, in one place.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, patch, post, put};

use crate::admin::{apikeys, artifacts, fleet, products, releases, uploads};
use crate::error::{no_route, wrong_method};
use crate::native::{check, reports};
use crate::state::AppState;
use crate::{download, metrics, protocols, trust};

/// The application. `with_metrics` puts `/metrics` on it (unless metrics have their own
/// listener).
pub fn router(state: AppState, with_metrics: bool) -> Router {
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
        .route("/api/v1/products/{product}/devices", get(fleet::devices))
        .route("/api/v1/products/{product}/roots", post(trust::add_root))
        .route(
            "/api/v1/products/{product}/root/{file}",
            get(trust::get_root),
        )
        .route(
            "/api/v1/products/{product}/releases/{version}/signature",
            put(trust::attach_signature),
        )
        .route("/api/v1/online-key", get(trust::online_key))
        .route(
            "/api/v1/products/{product}/image-format",
            put(trust::set_image_format),
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
        .merge(protocols::ota_backend::routes())
        .merge(protocols::manifest::routes())
        .merge(protocols::arduino::routes())
        .merge(protocols::thinx::routes())
        .merge(protocols::iotawatt::routes())
        .fallback(no_route)
        .method_not_allowed_fallback(wrong_method);
    let router = if with_metrics {
        router.route("/metrics", get(metrics::render))
    } else {
        router
    };
    router
        .layer(axum::middleware::from_fn(metrics::track))
        .with_state(state)
}

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(state)
}
