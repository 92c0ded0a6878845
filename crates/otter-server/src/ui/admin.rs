//! The admin's pages: API tokens (list, create — the new token shown once, in the page — and
//! revoke), user accounts (list, create, disable/enable, end their sessions) and the audit
//! log with its filters. Every change is a `data-api` form to the admin API.

use axum::extract::{Query, State};
use axum::response::Response;
use otter_app::{App, accounts, audit, tokens};
use otter_store::{AuditFilter, now};
use serde::Deserialize;

use super::Viewer;
use super::html::{Html, esc, url_part};
use super::layout::{self, Section};
use super::parts::{self, action, maybe_when, when};

const ROLES: [(&str, &str); 3] = [
    ("viewer", "viewer"),
    ("publisher", "publisher"),
    ("admin", "admin"),
];

#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    cursor: Option<String>,
}

/// `GET /ui/tokens`.
pub async fn tokens(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Query(query): Query<PageQuery>,
) -> Response {
    let listed = match tokens::list_tokens(&app, &parts::page(query.cursor.as_deref())).await {
        Ok(listed) => listed,
        Err(e) => return parts::refused(&viewer, e),
    };
    let mut body = Html::new();
    body.raw("<h1>API tokens</h1>");
    if listed.items.is_empty() {
        body.raw("<p class=\"muted\">No tokens.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table id=\"tokens\"><thead><tr><th>Name</th><th>Role</th>\
             <th>Created</th><th>Last used</th><th>Expires</th><th>Revoked</th><th></th></tr>\
             </thead><tbody>",
        );
        for token in &listed.items {
            body.add(format_args!(
                "<tr data-token=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>",
                esc(&token.name),
                esc(&token.name),
                token.role,
                esc(&when(token.created_at)),
                esc(&maybe_when(token.last_used_at)),
                esc(&token.expires_at.map_or_else(|| "never".to_owned(), when)),
            ));
            match token.revoked_at {
                Some(at) => {
                    body.add(format_args!(
                        "<span class=\"badge bad\">revoked {}</span></td><td>",
                        esc(&when(at))
                    ));
                }
                None => {
                    body.raw("</td><td>");
                    body.push(&action(
                        &format!("DELETE /api/v1/tokens/{}", url_part(&token.name)),
                        &[],
                        &format!("Revoke {}", token.name),
                        Some("Revoke this token? Every client using it is refused from now on."),
                    ));
                }
            }
            body.raw("</td></tr>");
        }
        body.raw("</tbody></table></div>");
    }
    body.push(&parts::pager(
        "/ui/tokens",
        &[],
        listed.next_cursor.as_deref(),
    ));
    // The token is only in the API's answer: otter.js shows it in the page (data-show-token)
    // instead of following a link, so it is never in a URL or the browser's history.
    body.raw(
        "<h2>Create a token</h2><form class=\"panel\" data-api=\"POST /api/v1/tokens\" \
         data-show-token><label>Name<input name=\"name\" required></label>",
    );
    body.push(&parts::select("role", "Role", &ROLES, "viewer"));
    body.raw(
        "<label>Expires after (e.g. 90d, 12h; empty: never)<input name=\"expires\"></label>\
         <button class=\"primary\" type=\"submit\">Create token</button>\
         <div class=\"new-token\" hidden><p>The new token, shown this once: copy it now.</p>\
         <code data-new-token></code></div></form>",
    );
    layout::page(&viewer, Section::Tokens, "tokens", "API tokens", body)
}

/// `GET /ui/users`.
pub async fn users(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Query(query): Query<PageQuery>,
) -> Response {
    let listed = match accounts::list_users(&app, &parts::page(query.cursor.as_deref())).await {
        Ok(listed) => listed,
        Err(e) => return parts::refused(&viewer, e),
    };
    let mut body = Html::new();
    body.raw("<h1>Users</h1>");
    if listed.items.is_empty() {
        body.raw("<p class=\"muted\">No users yet.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table id=\"users\"><thead><tr><th>Name</th><th>Role</th>\
             <th>Created</th><th>Last login</th><th>Status</th><th></th></tr></thead><tbody>",
        );
        for user in &listed.items {
            body.add(format_args!(
                "<tr data-user=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td><div class=\"actions\">",
                esc(&user.name),
                esc(&user.name),
                user.role,
                esc(&when(user.created_at)),
                esc(&maybe_when(user.last_login_at)),
                if user.disabled {
                    "<span class=\"badge bad\">disabled</span>"
                } else {
                    "<span class=\"badge ok\">active</span>"
                },
            ));
            let api = format!("/api/v1/users/{}", url_part(&user.name));
            if user.disabled {
                body.push(&action(
                    &format!("PATCH {api}"),
                    &[("disabled", "false")],
                    &format!("Enable {}", user.name),
                    None,
                ));
            } else {
                body.push(&action(
                    &format!("PATCH {api}"),
                    &[("disabled", "true")],
                    &format!("Disable {}", user.name),
                    Some("Disable this user? They are logged out and cannot log in."),
                ));
            }
            body.push(&action(
                &format!("DELETE {api}/sessions"),
                &[],
                &format!("Log {} out everywhere", user.name),
                None,
            ));
            body.raw("</div></td></tr>");
        }
        body.raw("</tbody></table></div>");
    }
    body.push(&parts::pager(
        "/ui/users",
        &[],
        listed.next_cursor.as_deref(),
    ));
    body.raw(
        "<h2>Create a user</h2><form class=\"panel\" data-api=\"POST /api/v1/users\">\
         <label>Name<input name=\"name\" required autocomplete=\"off\"></label>",
    );
    body.push(&parts::select("role", "Role", &ROLES, "viewer"));
    body.raw(
        "<label>Password (at least 12 characters)<input name=\"password\" type=\"password\" \
         minlength=\"12\" required autocomplete=\"new-password\"></label>\
         <button class=\"primary\" type=\"submit\">Create user</button></form>",
    );
    layout::page(&viewer, Section::Users, "users", "Users", body)
}

/// The audit page's "since" choices: the value in the query, its label, seconds back.
const SINCE: [(&str, &str, i64); 4] = [
    ("hour", "the last hour", 3_600),
    ("day", "the last day", 86_400),
    ("week", "the last week", 7 * 86_400),
    ("month", "the last 30 days", 30 * 86_400),
];

/// `/ui/audit?actor=&action=&target=&since=&cursor=`.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    since: String,
    cursor: Option<String>,
}

/// `GET /ui/audit`.
pub async fn audit(
    Viewer(viewer): Viewer,
    State(app): State<App>,
    Query(query): Query<AuditQuery>,
) -> Response {
    let set = |v: &str| (!v.is_empty()).then(|| v.to_owned());
    let filter = AuditFilter {
        actor: set(&query.actor),
        action: set(&query.action),
        target: set(&query.target),
        since: SINCE
            .iter()
            .find(|(value, ..)| *value == query.since)
            .map(|(_, _, ago)| now() - ago),
        until: None,
    };
    let page = parts::page(query.cursor.as_deref());
    let entries = match audit::list(&app, &filter, &page).await {
        Ok(entries) => entries,
        Err(e) => return parts::refused(&viewer, e),
    };
    let mut body = Html::new();
    body.raw("<h1>Audit log</h1><form class=\"filters\" method=\"get\" action=\"/ui/audit\">");
    body.push(&parts::text_input("actor", "Who", &query.actor));
    body.push(&parts::text_input(
        "action",
        "Action (e.g. release.publish)",
        &query.action,
    ));
    body.push(&parts::text_input(
        "target",
        "Target (or anything under it)",
        &query.target,
    ));
    let mut since: Vec<(&str, &str)> = vec![("", "any time")];
    since.extend(SINCE.iter().map(|(value, label, _)| (*value, *label)));
    body.push(&parts::select("since", "Since", &since, &query.since));
    body.raw("<button class=\"primary\" type=\"submit\">Filter</button></form>");
    if entries.items.is_empty() {
        body.raw("<p class=\"muted\">No entries match.</p>");
    } else {
        body.raw(
            "<div class=\"scroll\"><table id=\"audit\"><thead><tr><th>When</th><th>Who</th>\
             <th>Action</th><th>Target</th><th>What changed</th><th>From</th></tr></thead>\
             <tbody>",
        );
        for entry in &entries.items {
            body.add(format_args!(
                "<tr><td>{}</td><td>{} <span class=\"muted\">({}, {})</span></td><td>{}</td>\
                 <td class=\"mono\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&when(entry.at)),
                esc(&entry.actor),
                entry.actor_kind.as_str(),
                entry.role,
                esc(&entry.action),
                esc(&entry.target),
                esc(entry.summary.as_deref().unwrap_or("")),
                esc(entry.remote.as_deref().unwrap_or("")),
            ));
        }
        body.raw("</tbody></table></div>");
    }
    body.push(&parts::pager(
        "/ui/audit",
        &[
            ("actor", &query.actor),
            ("action", &query.action),
            ("target", &query.target),
            ("since", &query.since),
        ],
        entries.next_cursor.as_deref(),
    ));
    layout::page(&viewer, Section::Audit, "audit", "Audit log", body)
}
