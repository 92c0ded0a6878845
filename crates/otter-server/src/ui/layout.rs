//! The frame every page shares: the head (title, stylesheet, script), the top bar with the
//! sections the signed-in user's role may open, who is signed in and the logout button.

use axum::http::StatusCode;
use axum::response::Response;
use otter_core::model::{Actor, Role};

use super::assets;
use super::html::{Html, esc};

/// The parts of the UI, as the top bar lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Dashboard,
    Products,
    Devices,
    Rollouts,
    Signing,
    Tokens,
    Users,
    Audit,
}

/// Each section's link, title and the least role that may open it (the pages table holds the
/// same roles; this only hides links a user could not follow).
const SECTIONS: [(Section, &str, &str, Role); 8] = [
    (Section::Dashboard, "/ui/", "Dashboard", Role::Viewer),
    (Section::Products, "/ui/products", "Products", Role::Viewer),
    (Section::Devices, "/ui/devices", "Devices", Role::Viewer),
    (Section::Rollouts, "/ui/rollouts", "Rollouts", Role::Viewer),
    (Section::Signing, "/ui/signing", "Signing", Role::Viewer),
    (Section::Tokens, "/ui/tokens", "Tokens", Role::Admin),
    (Section::Users, "/ui/users", "Users", Role::Admin),
    (Section::Audit, "/ui/audit", "Audit log", Role::Admin),
];

/// The `<head>` and the opening of `<body>`.
fn head(title: &str) -> Html {
    let mut h = Html::new();
    h.add(format_args!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · otter</title>\
         <link rel=\"stylesheet\" href=\"{}\">\
         <script src=\"{}\" defer></script></head><body>",
        esc(title),
        assets::url("otter.css"),
        assets::url("otter.js"),
    ));
    h
}

/// A whole page for the signed-in `viewer`: the top bar with `section` marked, then `body` in
/// `<main id="{main_id}">` (the tests' hook for "this page").
pub fn page(viewer: &Actor, section: Section, main_id: &str, title: &str, body: Html) -> Response {
    let mut h = head(title);
    h.raw("<header class=\"top\"><a class=\"brand\" href=\"/ui/\">otter</a><nav>");
    for (each, href, name, role) in SECTIONS {
        if viewer.role < role {
            continue;
        }
        let active = if each == section {
            " class=\"active\""
        } else {
            ""
        };
        h.add(format_args!("<a href=\"{href}\"{active}>{name}</a>"));
    }
    h.raw("<a href=\"/api/docs\">API</a></nav><div class=\"who\">");
    h.add(format_args!(
        "<span title=\"{role}\">{} · {role}</span>",
        esc(&viewer.name),
        role = viewer.role,
    ));
    h.raw(
        "<form data-api=\"DELETE /api/v1/session\" data-then=\"/ui/login\">\
         <button type=\"submit\">Log out</button></form></div></header>",
    );
    h.add(format_args!("<main id=\"{}\">", esc(main_id)));
    h.push(&body);
    h.raw("</main></body></html>");
    h.respond(StatusCode::OK)
}

/// A page without the top bar (the login page), with `status`.
pub fn bare(status: StatusCode, main_id: &str, title: &str, body: Html) -> Response {
    let mut h = head(title);
    h.add(format_args!("<main id=\"{}\">", esc(main_id)));
    h.push(&body);
    h.raw("</main></body></html>");
    h.respond(status)
}

/// A short page saying why the request was refused (a role too low, a product that does not
/// exist), with the status the API would give.
pub fn refusal(viewer: &Actor, status: StatusCode, message: &str) -> Response {
    let mut body = Html::new();
    body.add(format_args!(
        "<h1>{}</h1><p>{}</p><p><a href=\"/ui/\">Back to the dashboard</a></p>",
        status.canonical_reason().unwrap_or("Refused"),
        esc(message)
    ));
    let mut response = page(viewer, Section::Dashboard, "refused", "Refused", body);
    *response.status_mut() = status;
    response
}
