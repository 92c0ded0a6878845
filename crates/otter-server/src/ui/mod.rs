//! The web UI at `/ui/`: server-rendered pages for operators, embedded in the binary, needing no
//! network beyond otter (docs/ui.md).
//!
//! One adapter like the others: pages read through `otter_app` use cases, never through
//! another adapter. Pages are GETs declared in [`pages`] (path, least role, handler), which
//! [`crate::router::router`] mounts behind [`guard`]: no session sends the browser to the login
//! page ([`login`]), a role too low gets a 403 page. **Changes go through the admin JSON API**: a form
//! carries `data-api="METHOD /api/v1/…"` and `assets/otter.js` sends it with the session cookie,
//! so every change has the API's role check, CSRF rule and audit entry, said once.
//!
//! - [`html`]: the escaping HTML builder; [`layout`]: the frame of every page; [`svg`]: charts.
//! - [`assets`]: `otter.css` and `otter.js`, served with their content hash in the URL.
//! - [`dashboard`], [`products`], [`releases`], [`signing`]: the dashboard, products, releases
//!   and signing pages.
//! - [`devices`], [`rollouts`], [`admin`] (tokens, users, audit): the fleet pages; [`parts`]: what
//!   the pages share.

pub mod admin;
pub mod assets;
pub mod dashboard;
pub mod devices;
pub mod html;
pub mod layout;
pub mod login;
pub mod parts;
pub mod products;
pub mod releases;
pub mod rollouts;
pub mod signing;
pub mod svg;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::{ACCEPT, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use otter_app::App;
use otter_core::model::{Actor, Role};

use crate::error::ApiError;
use html::url_part;

/// One page as the table declares it: its path, the least role that may open it, its handler.
pub struct UiPage {
    pub path: &'static str,
    pub role: Role,
    pub handler: MethodRouter<App>,
}

impl UiPage {
    fn get<H: axum::handler::Handler<T, App>, T: 'static>(
        path: &'static str,
        role: Role,
        handler: H,
    ) -> Self {
        UiPage {
            path,
            role,
            handler: get(handler),
        }
    }
}

/// Every page of the UI, with the least role that may open it.
pub fn pages() -> Vec<UiPage> {
    use Role::{Admin, Viewer};
    vec![
        UiPage::get("/ui/", Viewer, dashboard::show),
        UiPage::get("/ui/products", Viewer, products::list),
        UiPage::get("/ui/products/{product}", Viewer, products::show),
        UiPage::get(
            "/ui/products/{product}/releases/{version}",
            Viewer,
            releases::show,
        ),
        UiPage::get("/ui/signing", Viewer, signing::show),
        UiPage::get("/ui/devices", Viewer, devices::list),
        UiPage::get(
            "/ui/products/{product}/devices/{device}",
            Viewer,
            devices::show,
        ),
        UiPage::get("/ui/rollouts", Viewer, rollouts::all),
        UiPage::get("/ui/products/{product}/rollouts", Viewer, rollouts::list),
        UiPage::get(
            "/ui/products/{product}/rollouts/{id}",
            Viewer,
            rollouts::show,
        ),
        UiPage::get(
            "/ui/products/{product}/rollouts/{id}/chart",
            Viewer,
            rollouts::chart,
        ),
        UiPage::get("/ui/tokens", Admin, admin::tokens),
        UiPage::get("/ui/users", Admin, admin::users),
        UiPage::get("/ui/audit", Admin, admin::audit),
    ]
}

/// Who is signed in, as the page [`guard`] found them.
pub struct Viewer(pub Actor);

impl FromRequestParts<App> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &App) -> Result<Self, ApiError> {
        match parts.extensions.get::<Actor>() {
            Some(actor) => Ok(Viewer(actor.clone())),
            // Fail closed, as admin handlers do: a page outside the table is a bug.
            None => Err(ApiError::internal(format!(
                "{} reached a page without the sign-in check: declare it in ui::pages",
                parts.uri.path()
            ))),
        }
    }
}

/// What the table declares of one page, for its [`guard`].
#[derive(Clone)]
pub struct PageRule {
    pub app: App,
    pub role: Role,
}

/// In front of every page: a session (else to the login page, coming back here after), and a
/// role at least the page's (else a 403 page).
pub async fn guard(State(rule): State<PageRule>, mut request: Request, next: Next) -> Response {
    let Some(actor) = signed_in(&rule.app, request.headers()).await else {
        let back = request
            .uri()
            .path_and_query()
            .map_or("/ui/", |p| p.as_str());
        return see_other(&format!("/ui/login?next={}", url_part(back)));
    };
    if actor.role < rule.role {
        let message = format!(
            "This page needs the {} role; you have {}.",
            rule.role, actor.role
        );
        return layout::refusal(&actor, StatusCode::FORBIDDEN, &message);
    }
    request.extensions_mut().insert(actor);
    next.run(request).await
}

/// Who the request's session cookie signs in, if anyone.
async fn signed_in(app: &App, headers: &HeaderMap) -> Option<Actor> {
    crate::auth::session(app, headers).await.map(|s| s.actor)
}

/// A 303 to `location` (after a form, or to the login page).
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// `GET /`: a browser is sent to the UI; anything else gets the JSON 404 every unknown path
/// gets.
pub async fn root(headers: HeaderMap) -> Response {
    let wants_html = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html {
        see_other("/ui/")
    } else {
        crate::error::no_route().await.into_response()
    }
}

/// `GET /ui`: the UI lives under `/ui/`.
pub async fn ui_root() -> Response {
    see_other("/ui/")
}
