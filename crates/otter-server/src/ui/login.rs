//! The way in: `GET /ui/login` shows the form, `POST /ui/login` checks it through
//! [`crate::auth::log_in`] (the same login as `POST /api/v1/session`: the login limits, the
//! same-origin rule, the `user.login` audit entry) and hands the browser its session cookie.
//!
//! A plain HTML form that works without JavaScript, so password managers fill it. Logging out
//! is the top bar's form to `DELETE /api/v1/session`.

use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use otter_app::App;
use serde::Deserialize;

use super::html::{Html, esc};
use super::{layout, see_other};

#[derive(Debug, Deserialize)]
pub struct Next {
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Credentials {
    name: String,
    password: String,
    next: Option<String>,
}

/// Where to go after logging in: a page of the UI, never another site (`//evil.example` and
/// `/ui/..//` included), else the dashboard.
fn destination(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with("/ui/")
                && !next.contains("//")
                && !next.contains('\\')
                && !next.contains("/../") =>
        {
            next
        }
        _ => "/ui/",
    }
}

/// The login form, with `message` above it when the last try failed.
fn form(status: StatusCode, next: &str, name: &str, message: Option<&str>) -> Response {
    let mut body = Html::new();
    body.raw("<div class=\"login\"><h1>otter</h1>");
    body.raw("<form class=\"panel\" method=\"post\" action=\"/ui/login\">");
    if let Some(message) = message {
        body.add(format_args!(
            "<p class=\"form-error\" role=\"alert\">{}</p>",
            esc(message)
        ));
    }
    body.add(format_args!(
        "<input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Name<input name=\"name\" value=\"{}\" autocomplete=\"username\" required \
         autofocus></label>\
         <label>Password<input name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required></label>\
         <button class=\"primary\" type=\"submit\">Log in</button></form>\
         <p class=\"muted\">Accounts are made with <code>otter user create</code> \
         (docs/users.md).</p></div>",
        esc(next),
        esc(name),
    ));
    layout::bare(status, "login", "Log in", body)
}

/// `GET /ui/login?next=…`
pub async fn page(Query(query): Query<Next>) -> Response {
    form(StatusCode::OK, destination(query.next.as_deref()), "", None)
}

/// `POST /ui/login`: on success a 303 to the page the user came for, with the session cookie;
/// otherwise the form again with the reason and the API's status (401, 403, 429).
pub async fn submit(
    State(app): State<App>,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(credentials): Form<Credentials>,
) -> Response {
    let remote = remote.map(|Extension(ConnectInfo(addr))| addr);
    let next = destination(credentials.next.as_deref());
    match crate::auth::log_in(
        &app,
        &headers,
        remote,
        &credentials.name,
        &credentials.password,
    )
    .await
    {
        Ok((_, cookie)) => {
            let mut response = see_other(next);
            response.headers_mut().insert(SET_COOKIE, cookie);
            response
        }
        Err(refused) => form(
            refused.status,
            next,
            &credentials.name,
            Some(&refused.message),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn only_pages_of_the_ui_are_destinations() {
        assert_eq!(
            destination(Some("/ui/devices?product=a")),
            "/ui/devices?product=a"
        );
        for foreign in [
            "//evil.example/ui/",
            "https://evil.example/",
            "/ui//evil.example",
            "/ui/\\evil",
            "/api/v1/tokens",
            "/ui/../api",
        ] {
            assert_eq!(destination(Some(foreign)), "/ui/", "{foreign}");
        }
        assert_eq!(destination(None), "/ui/");
    }
}
