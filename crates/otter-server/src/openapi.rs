//! The OpenAPI 3.1 document of the admin and native device APIs, served at `/api/openapi.json`,
//! and the Swagger UI that shows it at `/api/docs` (its files are built into the binary: the page
//! loads nothing from anywhere but otter).
//!
//! Each handler describes itself with `#[utoipa::path]` and [`ApiDoc`] lists them. What the
//! routes table knows is added from it, not repeated on the handlers ([`FromRoutes`]): each admin
//! operation's least role (`x-otter-role`, and in its description) and its security schemes.
//! The error answers are described once too: every operation gets the shared 400/404/429 (and,
//! for admin routes, 401/403) responses, and every error response the error body.

use std::sync::LazyLock;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use otter_app::App;
use utoipa::OpenApi;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, Ref, RefOr, Required, Response, Schema};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::admin::{
    apikeys, artifacts, audit, ddi, deltas, fleet, products, releases, rollouts, schedules,
    signing, tokens, uploads, users,
};
use crate::error::{ApiError, ApiResult};
use crate::native::{check, reports};
use crate::router::{AdminRoute, admin_routes};

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";
/// Where Swagger UI is served (its files under it).
pub const DOCS_PATH: &str = "/api/docs";

/// The name of the error body's schema in `components`.
const ERROR_SCHEMA: &str = "Error";

/// The error answers every operation may give, by status: the name of their shared response
/// in `components` and what it means. Admin operations may give all of them, public ones (the
/// device API, downloads) those that are not about credentials.
const COMMON_ERRORS: [(&str, &str, &str, bool); 5] = [
    (
        "400",
        "BadRequest",
        "A malformed request: path, query or body",
        false,
    ),
    ("401", "Unauthorized", "No valid token or session", true),
    (
        "403",
        "Forbidden",
        "The caller's role is below the operation's",
        true,
    ),
    (
        "404",
        "NotFound",
        "No such product, release, device…",
        false,
    ),
    (
        "429",
        "TooManyRequests",
        "Rate limited: wait `Retry-After` seconds (also the body's `retryAfter`)",
        false,
    ),
];

/// Every operation of the document, from the handlers' `#[utoipa::path]`. One line per route:
/// a new route's handler is added here (`tests/http/openapi.rs` names any the document lacks).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "otter",
        description = "The admin API (a bearer token or the `otter_session` cookie, each \
            operation's least role in `x-otter-role`) and the native device API of otter, a \
            firmware update server. Errors are `{\"error\": \"<stable_code>\", \"message\": …}` \
            (docs/api.md lists the codes)."
    ),
    paths(
        crate::admin::status,
        products::list,
        products::create,
        products::get,
        products::iotawatt,
        products::set_iotawatt,
        releases::list,
        releases::publish,
        releases::get,
        releases::patch,
        signing::add_root,
        signing::attach_signature,
        signing::online_key,
        signing::set_image_format,
        fleet::devices,
        fleet::device,
        fleet::patch_device,
        fleet::delete_device,
        fleet::tag,
        fleet::untag,
        fleet::admission,
        fleet::set_admission,
        fleet::set_device_access,
        fleet::clear_device_access,
        fleet::reports,
        apikeys::list,
        apikeys::create,
        apikeys::revoke,
        ddi::target_token,
        ddi::gateway_token,
        ddi::options,
        ddi::set_options,
        artifacts::put_raw,
        artifacts::post_multipart,
        artifacts::get,
        uploads::begin,
        uploads::status,
        uploads::chunk,
        uploads::abort,
        uploads::finalize,
        rollouts::list,
        rollouts::create,
        rollouts::show,
        rollouts::advance,
        rollouts::pause,
        rollouts::resume,
        rollouts::abort,
        rollouts::retry_failed,
        schedules::list_windows,
        schedules::set_window,
        schedules::delete_window,
        schedules::poll_hint,
        schedules::set_poll_hint,
        schedules::delete_poll_hint,
        deltas::policy,
        deltas::set_policy,
        deltas::delete_policy,
        deltas::status,
        tokens::list,
        tokens::create,
        tokens::revoke,
        users::list,
        users::create,
        users::update,
        users::revoke_sessions,
        users::show,
        users::logout,
        audit::list,
        // The native device API and downloads: public.
        users::login,
        check::check,
        reports::create,
        signing::get_root,
        crate::download::by_hash,
        crate::download::by_release,
    ),
    modifiers(&FromRoutes)
)]
pub struct ApiDoc;

/// Adds to the handlers' description what the routes table and the error mapping know (see the
/// module documentation).
struct FromRoutes;

impl utoipa::Modify for FromRoutes {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        shared_components(doc.components.get_or_insert_with(Components::new));
        let admin = admin_routes();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, operation) in operations(item) {
                let route = admin
                    .iter()
                    .find(|route| route.path == path && route.method == method);
                if let Some(route) = route {
                    admin_operation(operation, route);
                }
                describe_responses(operation, route.is_some());
                declare_path_parameters(path, operation);
                // Handler names repeat across modules (`list`, `create`): the tag (the module)
                // makes them unique, as OpenAPI requires.
                if let (Some(tag), Some(id)) = (
                    operation.tags.as_ref().and_then(|t| t.first()),
                    &operation.operation_id,
                ) {
                    operation.operation_id = Some(format!("{tag}_{id}"));
                }
            }
        }
    }
}

/// The error body, the shared error responses and the two security schemes.
fn shared_components(components: &mut Components) {
    components
        .schemas
        .insert(ERROR_SCHEMA.to_owned(), RefOr::T(error_schema()));
    for (_, name, description, _) in COMMON_ERRORS {
        components
            .responses
            .insert(name.to_owned(), RefOr::T(error_response(name, description)));
    }
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An admin API token (`otter token create`)"))
                .build(),
        ),
    );
    components.add_security_scheme(
        "cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            "otter_session",
            "The session of a user logged in to the web UI",
        ))),
    );
}

/// What the routes table says of an admin operation: its least role (in its description and as
/// `x-otter-role`) and that it takes a token or a session.
fn admin_operation(operation: &mut Operation, route: &AdminRoute) {
    let role = route.role.as_str();
    let note = format!("Least role: `{role}`.");
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
        _ => note,
    });
    operation
        .extensions
        .get_or_insert_default()
        .merge(ExtensionsBuilder::new().add("x-otter-role", role).build());
    operation.security = Some(vec![
        SecurityRequirement::new("bearer", Vec::<String>::new()),
        SecurityRequirement::new("cookie", Vec::<String>::new()),
    ]);
}

/// The operations of a path item with their methods.
fn operations(item: &mut PathItem) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| Some((method, operation?)))
}

/// The shared error responses (credentials' only for `admin` operations), the error body on every
/// error response a handler declared without one, and a description on every response.
fn describe_responses(operation: &mut Operation, admin: bool) {
    let responses = &mut operation.responses.responses;
    for (status, name, _, credentials) in COMMON_ERRORS {
        if admin || !credentials {
            responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(name)));
        }
    }
    for (status, response) in responses.iter_mut() {
        let RefOr::T(response) = response else {
            continue;
        };
        if status.starts_with(['4', '5']) && response.content.is_empty() {
            response
                .content
                .insert("application/json".to_owned(), RefOr::T(error_content()));
        }
        // OpenAPI requires one; a handler's answer of the usual kind needs no more than this.
        if response.description.is_empty() {
            response.description = status
                .parse()
                .ok()
                .and_then(|s: StatusCode| s.canonical_reason())
                .unwrap_or_default()
                .to_owned();
        }
    }
}

/// Declares every `{name}` of `path` that the operation does not declare itself, as a string:
/// OpenAPI requires each to be declared, and most are names (products, versions, devices).
fn declare_path_parameters(path: &str, operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_default();
    for name in path
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}'))
    {
        let name = name.0;
        let declared = parameters.iter().any(
            |p| matches!(p, RefOr::T(p) if p.name == name && p.parameter_in == ParameterIn::Path),
        );
        if !declared {
            parameters.push(RefOr::T(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            ));
        }
    }
}

/// `{"error", "message", …}`, as [`crate::error::ApiError`] writes it.
fn error_schema() -> Schema {
    let string = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
    };
    let integer = |description: &str| {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0))
            .description(Some(description))
    };
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some("The body of every error answer"))
        .property("error", string("A stable code to branch on (docs/api.md)"))
        .required("error")
        .property("message", string("What went wrong, for people"))
        .required("message")
        .property(
            "requestId",
            string("A 500's request id, to find its cause in the server log"),
        )
        .property(
            "retryAfter",
            integer("A 429's wait in seconds, as in `Retry-After`"),
        )
        .property(
            "offset",
            integer("An upload session's offset, on errors about its bytes"),
        )
        .into()
}

fn error_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ERROR_SCHEMA)))
        .build()
}

fn error_response(name: &str, description: &str) -> Response {
    let response = ResponseBuilder::new()
        .description(description)
        .content("application/json", error_content());
    if name == "TooManyRequests" {
        let seconds = ObjectBuilder::new().schema_type(Type::Integer);
        response
            .header(
                "Retry-After",
                HeaderBuilder::new().schema(Some(seconds)).build(),
            )
            .build()
    } else {
        response.build()
    }
}

/// `/api/openapi.json` and Swagger UI at `/api/docs` (public).
pub fn routes() -> Router<App> {
    // No validator: Swagger UI would send the document to swagger.io's.
    let config = Config::new([DOCUMENT_PATH]).validator_url("none");
    let ui: Router<App> = SwaggerUi::new(DOCS_PATH).config(config).into();
    ui.route(DOCUMENT_PATH, get(document))
}

/// The document, built and serialised on its first request rather than at start: kept built
/// from the start, it held about 3 MiB of heap in every server (a fresh otter's anonymous memory
/// went from 6.0 to 3.2 MiB), read or not, and was serialised again on every request.
static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| serde_json::to_string(&ApiDoc::openapi()).map_err(|e| e.to_string()));

/// `GET /api/openapi.json`
async fn document() -> ApiResult<axum::response::Response> {
    let json = DOCUMENT.as_deref().map_err(ApiError::internal)?;
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        json,
    )
        .into_response())
}
