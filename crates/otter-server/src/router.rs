//! Every route otter serves, in one place: the admin routes in [`admin_routes`], each with the
//! role it needs and the audit action of a change, and the device, download and protocol routes
//! in [`router`]; the web UI's pages are declared in [`crate::ui::pages`] with their roles and
//! mounted here.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, post, put};
use otter_app::App;
use otter_core::model::Role;

use crate::admin::{
    apikeys, artifacts, audit, ddi, deltas, fleet, products, releases, rollouts, schedules,
    signing, tokens, uploads, users,
};
use crate::auth::{Rule, guard};
use crate::error::{no_route, wrong_method};
use crate::native::check::{self, CheckQuery};
use crate::native::reports;
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
        .route(CHECK, get(check::check))
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
/// per-address rate limit and the hold on every 429 ([`limits`]). One middleware rather than
/// one layer each: every `from_fn` layer clones and boxes the route's whole stack below it on
/// each request, which on the check path cost more than the handler.
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
        let route = route.as_ref().map(MatchedPath::as_str);
        after(&app, route, &method, response, started).await
    })
    .await
}

/// What every answer goes through on its way out, the [`Lane`]'s too: the request metrics and
/// the hold on a 429.
async fn after(
    app: &App,
    route: Option<&str>,
    method: &Method,
    response: Response,
    started: Instant,
) -> Response {
    metrics::record(route, method, response.status(), started);
    if let Some(hold) = limits::refusal_hold(app, &response) {
        tokio::time::sleep(hold).await;
    }
    response
}

/// The native check's route, in the table in [`router`]; [`Lane`] answers it too.
const CHECK: &str = "/api/v1/products/{product}/check";

/// The native check, answered without the router for the plain requests devices make: a `GET`
/// of [`CHECK`] whose target is visible ASCII with no `%` in the product's segment, whose
/// query the router would take, and with at most one `Host`, which is `host[:port]`, while
/// `--rate-limit-address` is off. The lane does what [`front`] and the route would do, with
/// the same functions ([`request_log::observed`], [`after`], [`check::answer`]), so its
/// answers, log lines and metrics are the router's. Any other request, and a check it cannot
/// take, goes to the router, before anything is done for it here.
///
/// Why: matching, the middleware's and extractors' machinery and the `http::Request` they take
/// were about 40 % of the instructions a check cost (callgrind: 37,500 a check through the
/// router, 20,900 through the lane).
#[derive(Clone)]
pub struct Lane {
    app: App,
    /// [`CHECK`] before and after its `{product}`.
    around: (&'static str, &'static str),
}

impl Lane {
    pub fn new(app: App) -> Self {
        let around = CHECK.split_once("{product}").unwrap_or((CHECK, ""));
        Lane { app, around }
    }

    /// The answer to a `method` request for `target` (path and query, as sent) from `remote`,
    /// with these `Host` headers and this `X-Request-Id`; `None` when the router must answer it.
    pub(crate) async fn answer<'a>(
        &self,
        method: &Method,
        target: &'a [u8],
        mut hosts: impl Iterator<Item = &'a [u8]> + Clone,
        request_id: Option<&[u8]>,
        remote: SocketAddr,
    ) -> Option<Response> {
        let plain = |b: &u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%?".contains(b);
        if method != Method::GET || !target.iter().all(plain) || !self.app.address_limit.is_off() {
            return None;
        }
        let target = std::str::from_utf8(target).ok()?;
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let (before, after_product) = self.around;
        let product = path.strip_prefix(before)?.strip_suffix(after_product)?;
        if product.is_empty() || product.contains(['/', '%']) {
            return None;
        }
        // The parser the router's query extractor uses; what it refuses, the router answers.
        let query: CheckQuery = serde_urlencoded::from_str(query).ok()?;
        if !download::valid_hosts(hosts.clone()) {
            return None;
        }
        let host = hosts.next().and_then(|h| std::str::from_utf8(h).ok());
        let id = request_log::id_of(request_id);
        let answer = async {
            let started = Instant::now();
            let peer = Some(remote.ip());
            let response = check::answer(&self.app, product, &query, peer, host)
                .await
                .into_response();
            after(&self.app, Some(CHECK), method, response, started).await
        };
        Some(request_log::observed(id, method, Some(CHECK), answer).await)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, to_bytes};
    use axum::extract::ConnectInfo;
    use axum::http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
    use axum::http::{Request, StatusCode};
    use tower_service::Service as _;

    const TOKEN: &str = "a-bootstrap-token-0123456789abcdef0123";
    const HOST_NAME: &[u8] = b"otter.test:8080";

    async fn call(router: &mut Router, request: Request<Body>) -> Response {
        let Ok(response) = router.call(request).await;
        response
    }

    /// An admin request through the router; the answer's JSON.
    async fn admin(
        router: &mut Router,
        method: Method,
        uri: &str,
        body: Body,
    ) -> serde_json::Value {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .unwrap();
        let response = call(router, request).await;
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        assert!(status.is_success(), "{uri}: {status} {body:?}");
        serde_json::from_slice(&body).unwrap()
    }

    /// Everything of an answer but its `Content-Length`, which the HTTP/1 loop writes for the
    /// lane's answers and axum sets on the router's.
    async fn seen(response: Response) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
        let status = response.status();
        let mut headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter(|(name, _)| *name != CONTENT_LENGTH)
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned()))
            .collect();
        headers.sort();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, headers, body.to_vec())
    }

    /// The lane answers the checks it takes exactly as the router does (status, headers, body:
    /// offers, up to date, a device's check, errors from the handler), and leaves every other
    /// request to the router.
    #[tokio::test]
    async fn the_lane_answers_as_the_router_does() {
        let dir = tempfile::tempdir().unwrap();
        let opened = App::open(otter_app::Settings {
            data_dir: dir.path().to_path_buf(),
            admin_token: Some(otter_app::settings::Secret::from(TOKEN)),
            ..otter_app::Settings::default()
        })
        .await
        .unwrap();
        let app = opened.app;
        let mut router = router(app.clone(), false);
        let product = r#"{"name":"door","scheme":"semver"}"#;
        admin(
            &mut router,
            Method::POST,
            "/api/v1/products",
            product.into(),
        )
        .await;
        let uri = "/api/v1/artifacts?filename=door.bin";
        let artifact = admin(&mut router, Method::PUT, uri, vec![7u8; 1000].into()).await;
        let release = format!(r#"{{"version":"1.1.0","artifact":{}}}"#, artifact["sha256"]);
        let uri = "/api/v1/products/door/releases";
        admin(&mut router, Method::POST, uri, release.into()).await;

        let lane = Lane::new(app);
        let remote: SocketAddr = "192.0.2.7:40000".parse().unwrap();
        let hosts = [HOST_NAME];
        let taken = [
            "/api/v1/products/door/check?current=1.0.0",
            "/api/v1/products/door/check?current=1.1.0",
            "/api/v1/products/door/check",
            "/api/v1/products/door/check?current=1.0.0&device=dev-1&unknown=x",
            "/api/v1/products/door/check?device=bad%20id",
            "/api/v1/products/door/check?channel=beta&current=1.0.0",
            "/api/v1/products/door/check?nonce=zz",
            "/api/v1/products/nope/check?current=1.0.0",
        ];
        for target in taken {
            let laned = lane
                .answer(
                    &Method::GET,
                    target.as_bytes(),
                    hosts.into_iter(),
                    Some(b"r-1"),
                    remote,
                )
                .await
                .unwrap_or_else(|| panic!("the lane did not take {target}"));
            let mut request = Request::get(target)
                .header(HOST, HOST_NAME)
                .header(request_log::REQUEST_ID, "r-1")
                .body(Body::empty())
                .unwrap();
            request.extensions_mut().insert(ConnectInfo(remote));
            let routed = call(&mut router, request).await;
            assert_eq!(seen(laned).await, seen(routed).await, "{target}");
        }

        let two_hosts = [HOST_NAME, HOST_NAME];
        let bad_host = [b"evil.example/x?y=".as_slice()];
        let declined: [(Method, &str, &[&[u8]]); 9] = [
            (Method::HEAD, "/api/v1/products/door/check", &hosts),
            (Method::GET, "/api/v1/products/do%6fr/check", &hosts),
            (Method::GET, "/api/v1/products/door/check/", &hosts),
            (Method::GET, "/api/v1/products//check", &hosts),
            (
                Method::GET,
                "/api/v1/products/door/check?current=1&current=2",
                &hosts,
            ),
            (
                Method::GET,
                "/api/v1/products/door/check?current=\"1\"",
                &hosts,
            ),
            (Method::GET, "/healthz", &hosts),
            (Method::GET, "/api/v1/products/door/check", &two_hosts),
            (Method::GET, "/api/v1/products/door/check", &bad_host),
        ];
        for (method, target, hosts) in declined {
            let hosts = hosts.iter().copied();
            let laned = lane
                .answer(&method, target.as_bytes(), hosts, None, remote)
                .await;
            assert!(laned.is_none(), "the lane took {method} {target}");
        }
    }
}
