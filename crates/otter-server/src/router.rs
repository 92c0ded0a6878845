//! Every route otter serves, in one place: the admin routes in [`admin_routes`], each with the
//! role it needs and the audit action of a change, and the device, download and protocol routes
//! in [`router`]; the web UI's pages are declared in [`crate::ui::pages`] with their roles and
//! mounted here.

use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use otter_app::App;
use otter_core::model::Role;

use crate::admin::{
    apikeys, artifacts, audit, ddi, deltas, fleet, products, releases, rollouts, schedules,
    signing, tokens, uploads, users,
};
use crate::auth::{Rule, guard};
use crate::error::{no_route, wrong_method};
use crate::native::{check, reports};
use crate::protocols::{arduino, hawkbit, iotawatt, manifest, ota_backend, thinx};
use crate::{download, limits, metrics, request_log, ui};

/// One admin route as the table declares it: method and path, the least [`Role`] that may call
/// it, and, for a change, the action its audit entries name. [`router`] puts
/// [`crate::auth::guard`] in front of each, so none can skip authentication, its role check or
/// its audit entry.
pub struct AdminRoute {
    pub method: Method,
    pub path: &'static str,
    pub role: Role,
    /// The audit action of a change (`release.publish`); `None` for a read.
    pub action: Option<&'static str>,
    handler: MethodRouter<App>,
}

impl AdminRoute {
    /// A read: no audit entry.
    fn get<H: Handler<T, App>, T: 'static>(path: &'static str, role: Role, handler: H) -> Self {
        Self::declare(Method::GET, path, role, None, get(handler))
    }

    fn post<H: Handler<T, App>, T: 'static>(
        path: &'static str,
        role: Role,
        action: &'static str,
        handler: H,
    ) -> Self {
        Self::declare(Method::POST, path, role, Some(action), post(handler))
    }

    fn put<H: Handler<T, App>, T: 'static>(
        path: &'static str,
        role: Role,
        action: &'static str,
        handler: H,
    ) -> Self {
        Self::declare(Method::PUT, path, role, Some(action), put(handler))
    }

    fn patch<H: Handler<T, App>, T: 'static>(
        path: &'static str,
        role: Role,
        action: &'static str,
        handler: H,
    ) -> Self {
        Self::declare(Method::PATCH, path, role, Some(action), patch(handler))
    }

    fn delete<H: Handler<T, App>, T: 'static>(
        path: &'static str,
        role: Role,
        action: &'static str,
        handler: H,
    ) -> Self {
        Self::declare(Method::DELETE, path, role, Some(action), delete(handler))
    }

    fn declare(
        method: Method,
        path: &'static str,
        role: Role,
        action: Option<&'static str>,
        handler: MethodRouter<App>,
    ) -> Self {
        AdminRoute {
            method,
            path,
            role,
            action,
            handler,
        }
    }

    /// For uploads: otter enforces its own limit while streaming; axum's 2 MB default would
    /// cut images off.
    fn unlimited(mut self) -> Self {
        self.handler = self.handler.layer(DefaultBodyLimit::disable());
        self
    }
}

/// Every admin route, with its role and audit action: the one place they are declared (see
/// docs/tokens.md for the table in prose). Admin handlers take [`crate::auth::Admin`], which
/// only this table's guard provides.
pub fn admin_routes() -> Vec<AdminRoute> {
    use Role::{Admin, Publisher, Viewer};
    vec![
        AdminRoute::get("/api/v1/status", Viewer, crate::admin::status),
        // Products
        AdminRoute::get("/api/v1/products", Viewer, products::list),
        AdminRoute::post(
            "/api/v1/products",
            Admin,
            "product.create",
            products::create,
        ),
        AdminRoute::get("/api/v1/products/{product}", Viewer, products::get),
        AdminRoute::get(
            "/api/v1/products/{product}/iotawatt",
            Viewer,
            products::iotawatt,
        ),
        AdminRoute::put(
            "/api/v1/products/{product}/iotawatt",
            Admin,
            "product.iotawatt_key",
            products::set_iotawatt,
        ),
        // Releases
        AdminRoute::get(
            "/api/v1/products/{product}/releases",
            Viewer,
            releases::list,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/releases",
            Publisher,
            "release.publish",
            releases::publish,
        ),
        AdminRoute::get(
            "/api/v1/products/{product}/releases/{version}",
            Viewer,
            releases::get,
        ),
        AdminRoute::patch(
            "/api/v1/products/{product}/releases/{version}",
            Publisher,
            "release.flags",
            releases::patch,
        ),
        // Signing
        AdminRoute::post(
            "/api/v1/products/{product}/roots",
            Admin,
            "product.root",
            signing::add_root,
        ),
        AdminRoute::put(
            "/api/v1/products/{product}/releases/{version}/signature",
            Publisher,
            "release.sign",
            signing::attach_signature,
        ),
        AdminRoute::get("/api/v1/online-key", Viewer, signing::online_key),
        AdminRoute::put(
            "/api/v1/products/{product}/image-format",
            Admin,
            "product.image_format",
            signing::set_image_format,
        ),
        // The device registry and admission
        AdminRoute::get("/api/v1/products/{product}/devices", Viewer, fleet::devices),
        AdminRoute::get(
            "/api/v1/products/{product}/devices/{device}",
            Viewer,
            fleet::device,
        ),
        AdminRoute::patch(
            "/api/v1/products/{product}/devices/{device}",
            Publisher,
            "device.update",
            fleet::patch_device,
        ),
        AdminRoute::delete(
            "/api/v1/products/{product}/devices/{device}",
            Admin,
            "device.delete",
            fleet::delete_device,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/tags/{tag}",
            Publisher,
            "device.tag",
            fleet::tag,
        ),
        AdminRoute::delete(
            "/api/v1/products/{product}/tags/{tag}",
            Publisher,
            "device.untag",
            fleet::untag,
        ),
        AdminRoute::get(
            "/api/v1/products/{product}/admission",
            Viewer,
            fleet::admission,
        ),
        AdminRoute::put(
            "/api/v1/products/{product}/admission",
            Admin,
            "admission.set",
            fleet::set_admission,
        ),
        AdminRoute::put(
            "/api/v1/products/{product}/admission/{device}",
            Admin,
            "admission.device",
            fleet::set_device_access,
        ),
        AdminRoute::delete(
            "/api/v1/products/{product}/admission/{device}",
            Admin,
            "admission.clear",
            fleet::clear_device_access,
        ),
        // Reports, device API keys
        AdminRoute::get("/api/v1/products/{product}/reports", Viewer, fleet::reports),
        AdminRoute::get("/api/v1/products/{product}/apikeys", Viewer, apikeys::list),
        AdminRoute::post(
            "/api/v1/products/{product}/apikeys",
            Admin,
            "apikey.create",
            apikeys::create,
        ),
        AdminRoute::delete(
            "/api/v1/products/{product}/apikeys/{id}",
            Admin,
            "apikey.revoke",
            apikeys::revoke,
        ),
        // hawkBit DDI credentials and options
        AdminRoute::post(
            "/api/v1/products/{product}/devices/{device}/ddi-token",
            Admin,
            "ddi.target_token",
            ddi::target_token,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/ddi/gateway-token",
            Admin,
            "ddi.gateway_token",
            ddi::gateway_token,
        ),
        AdminRoute::get("/api/v1/products/{product}/ddi", Viewer, ddi::options),
        AdminRoute::put(
            "/api/v1/products/{product}/ddi",
            Admin,
            "ddi.options",
            ddi::set_options,
        ),
        // Artifacts and resumable uploads
        AdminRoute::put(
            "/api/v1/artifacts",
            Publisher,
            "artifact.upload",
            artifacts::put_raw,
        )
        .unlimited(),
        AdminRoute::post(
            "/api/v1/artifacts",
            Publisher,
            "artifact.upload",
            artifacts::post_multipart,
        )
        .unlimited(),
        AdminRoute::get("/api/v1/artifacts/{sha256}", Viewer, artifacts::get),
        AdminRoute::post("/api/v1/uploads", Publisher, "upload.begin", uploads::begin),
        AdminRoute::get("/api/v1/uploads/{id}", Viewer, uploads::status),
        AdminRoute::put(
            "/api/v1/uploads/{id}",
            Publisher,
            "upload.chunk",
            uploads::chunk,
        )
        .unlimited(),
        AdminRoute::delete(
            "/api/v1/uploads/{id}",
            Publisher,
            "upload.abort",
            uploads::abort,
        ),
        AdminRoute::post(
            "/api/v1/uploads/{id}/finalize",
            Publisher,
            "upload.finalize",
            uploads::finalize,
        ),
        // Rollouts
        AdminRoute::get(
            "/api/v1/products/{product}/rollouts",
            Viewer,
            rollouts::list,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/rollouts",
            Publisher,
            "rollout.create",
            rollouts::create,
        ),
        AdminRoute::get(
            "/api/v1/products/{product}/rollouts/{id}",
            Viewer,
            rollouts::show,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/rollouts/{id}/advance",
            Publisher,
            "rollout.advance",
            rollouts::advance,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/rollouts/{id}/pause",
            Publisher,
            "rollout.pause",
            rollouts::pause,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/rollouts/{id}/resume",
            Publisher,
            "rollout.resume",
            rollouts::resume,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/rollouts/{id}/abort",
            Publisher,
            "rollout.abort",
            rollouts::abort,
        ),
        AdminRoute::post(
            "/api/v1/products/{product}/rollouts/{id}/retry-failed",
            Publisher,
            "rollout.retry_failed",
            rollouts::retry_failed,
        ),
        // Maintenance windows and poll hints
        AdminRoute::get(
            "/api/v1/products/{product}/windows",
            Viewer,
            schedules::list_windows,
        ),
        AdminRoute::put(
            "/api/v1/products/{product}/windows/{channel}",
            Publisher,
            "window.set",
            schedules::set_window,
        ),
        AdminRoute::delete(
            "/api/v1/products/{product}/windows/{channel}",
            Publisher,
            "window.remove",
            schedules::delete_window,
        ),
        AdminRoute::get(
            "/api/v1/products/{product}/poll-hint",
            Viewer,
            schedules::poll_hint,
        ),
        AdminRoute::put(
            "/api/v1/products/{product}/poll-hint",
            Publisher,
            "poll_hint.set",
            schedules::set_poll_hint,
        ),
        AdminRoute::delete(
            "/api/v1/products/{product}/poll-hint",
            Publisher,
            "poll_hint.remove",
            schedules::delete_poll_hint,
        ),
        // Delta updates
        AdminRoute::get(
            "/api/v1/products/{product}/delta-policy",
            Viewer,
            deltas::policy,
        ),
        AdminRoute::put(
            "/api/v1/products/{product}/delta-policy",
            Publisher,
            "delta_policy.set",
            deltas::set_policy,
        ),
        AdminRoute::delete(
            "/api/v1/products/{product}/delta-policy",
            Publisher,
            "delta_policy.remove",
            deltas::delete_policy,
        ),
        AdminRoute::get(
            "/api/v1/products/{product}/releases/{version}/deltas",
            Viewer,
            deltas::status,
        ),
        // Tokens and the audit log
        AdminRoute::get("/api/v1/tokens", Admin, tokens::list),
        AdminRoute::post("/api/v1/tokens", Admin, "token.create", tokens::create),
        AdminRoute::delete(
            "/api/v1/tokens/{name}",
            Admin,
            "token.revoke",
            tokens::revoke,
        ),
        AdminRoute::get("/api/v1/audit", Admin, audit::list),
        // Users of the admin UI and their sessions (logging in is public: see `router`)
        AdminRoute::get("/api/v1/session", Viewer, users::show),
        AdminRoute::delete("/api/v1/session", Viewer, "user.logout", users::logout),
        AdminRoute::get("/api/v1/users", Admin, users::list),
        AdminRoute::post("/api/v1/users", Admin, "user.create", users::create),
        AdminRoute::patch("/api/v1/users/{name}", Admin, "user.update", users::update),
        AdminRoute::delete(
            "/api/v1/users/{name}/sessions",
            Admin,
            "user.sessions_revoke",
            users::revoke_sessions,
        ),
    ]
}

/// The application. `with_metrics` puts `/metrics` on it (unless metrics have their own
/// listener).
pub fn router(app: App, with_metrics: bool) -> Router {
    // Upload routes enforce otter's own limit while streaming; axum's 2 MB default would cut
    // images off.
    let unlimited = DefaultBodyLimit::disable();
    let mut router = Router::new();
    for route in admin_routes() {
        let rule = Rule {
            app: app.clone(),
            role: route.role,
            action: route.action,
        };
        // A route layer: only requests this route matched pay for it, so device routes never do.
        let guarded = route
            .handler
            .route_layer(middleware::from_fn_with_state(rule, guard));
        router = router.route(route.path, guarded);
    }
    // The web UI's pages, each behind the sign-in check and its role (ui::pages).
    for page in ui::pages() {
        let rule = ui::PageRule {
            app: app.clone(),
            role: page.role,
        };
        let guarded = page
            .handler
            .route_layer(middleware::from_fn_with_state(rule, ui::guard));
        router = router.route(page.path, guarded);
    }
    let router = router
        .route("/healthz", get(|| async { "ok" }))
        // Logging in: public (the admin table's guard needs a session or token first).
        .route("/api/v1/session", post(users::login))
        // The web UI's public parts: the way in, and its stylesheet and script.
        .route("/", get(ui::root))
        .route("/ui", get(ui::ui_root))
        .route("/ui/login", get(ui::login::page).post(ui::login::submit))
        .route("/ui/assets/{file}", get(ui::assets::serve))
        // `/api/openapi.json` and `/api/docs`
        .merge(crate::openapi::routes())
        .route("/api/v1/products/{product}/check", get(check::check))
        .route(
            "/api/v1/products/{product}/root/{file}",
            get(signing::get_root),
        )
        .route("/api/v1/products/{product}/reports", post(reports::create))
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
        // hawkBit DDI, at hawkBit's own paths (a tenant segment first, as clients build them).
        .nest("/{tenant}/controller/v1/{controllerId}", hawkbit_ddi())
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
/// ([`request_log`]), request metrics ([`metrics`]), the `Host` check ([`download`]), the
/// per-address rate limit and the hold on every 429 ([`limits`]). One middleware rather than one layer each: every `from_fn`
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
        if let Some(hold) = limits::refusal_hold(&app, &response) {
            tokio::time::sleep(hold).await;
        }
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

/// The hawkBit DDI paths under `/{tenant}/controller/v1/{controllerId}`.
fn hawkbit_ddi() -> Router<App> {
    Router::new()
        .route("/", get(hawkbit::poll))
        .route("/deploymentBase/{actionId}", get(hawkbit::deployment_base))
        .route(
            "/deploymentBase/{actionId}/feedback",
            post(hawkbit::deployment_feedback),
        )
        .route("/cancelAction/{actionId}", get(hawkbit::cancel_action))
        .route(
            "/cancelAction/{actionId}/feedback",
            post(hawkbit::cancel_feedback),
        )
        .route("/installedBase/{actionId}", get(hawkbit::installed_base))
        .route("/configData", put(hawkbit::config_data))
        .route("/artifacts/{file}", get(hawkbit::artifact))
}

/// `/metrics` alone, for `--metrics-listen`.
pub fn metrics_router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics::render))
        .with_state(app)
}
