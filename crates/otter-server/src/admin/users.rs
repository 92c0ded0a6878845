//! User accounts of the admin UI (create, list, change, revoke their sessions) and the session
//! itself: log in (`POST /api/v1/session`, the one public route here), who am I, log out.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::{Extension, Json};
use otter_app::{App, accounts};
use otter_core::model::{ActorKind, Page, Role, User, format_rfc3339};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::ListQuery;
use crate::audit::AuditNote;
use crate::auth::{self, Admin};
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    name: String,
    password: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/session",
    summary = "Log in: sets the session cookie `otter_session`",
    tag = "users",
    request_body = Credentials,
    responses(
        (status = 200, body = serde_json::Value, description = "Who is logged in: `{name, role, kind, expiresAt}`"),
        (status = 401, description = "`login_failed`: a wrong password, an unknown or a disabled user"),
        (status = 403, description = "`cross_origin`: sent from another site's page"),
    )
)]
/// `POST /api/v1/session` with `{"name","password"}`: logs in (see [`auth::log_in`]), sets the
/// session cookie and answers who is logged in.
pub async fn login(
    State(app): State<App>,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> ApiResult<([(HeaderName, HeaderValue); 1], Json<Value>)> {
    let remote = remote.map(|Extension(ConnectInfo(addr))| addr);
    let (new, cookie) = auth::log_in(
        &app,
        &headers,
        remote,
        &credentials.name,
        &credentials.password,
    )
    .await?;
    let actor = new.session.actor;
    let body = whoami(
        &actor.name,
        actor.role,
        actor.kind,
        Some(new.session.expires_at),
    );
    Ok(([(SET_COOKIE, cookie)], Json(body)))
}

fn whoami(name: &str, role: Role, kind: ActorKind, expires_at: Option<i64>) -> Value {
    json!({
        "name": name,
        "role": role,
        "kind": kind,
        "expiresAt": expires_at.map(format_rfc3339),
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/session",
    summary = "Who is asking (a session or a token)",
    tag = "users",
    responses(
        (status = 200, body = serde_json::Value, description = "Who is logged in: `{name, role, kind, expiresAt}`"),
    )
)]
/// `GET /api/v1/session`: who is asking (`{name, role, kind, expiresAt}`), for a session or a
/// token (a token's `expiresAt` is `null`).
pub async fn show(
    Admin(actor): Admin,
    State(app): State<App>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let expires_at = match actor.kind {
        ActorKind::User => auth::session(&app, &headers).await.map(|s| s.expires_at),
        ActorKind::Token => None,
    };
    Ok(Json(whoami(
        &actor.name,
        actor.role,
        actor.kind,
        expires_at,
    )))
}

#[utoipa::path(
    delete,
    path = "/api/v1/session",
    summary = "Log out: ends the session and clears its cookie",
    tag = "users",
    responses(
        (status = 204, description = "Logged out"),
    )
)]
/// `DELETE /api/v1/session`: ends the request's session and clears its cookie; 400
/// `no_session` for a request authenticated by a token.
pub async fn logout(
    Admin(actor): Admin,
    State(app): State<App>,
    headers: HeaderMap,
) -> ApiResult<(StatusCode, [(HeaderName, HeaderValue); 1], AuditNote, ())> {
    let secret = match (actor.kind, auth::cookie_secret(&headers)) {
        (ActorKind::User, Some(secret)) => secret,
        _ => {
            return Err(ApiError::bad_request(
                "no_session",
                "this request is authenticated by a token, not a session: there is nothing to \
                 log out",
            ));
        }
    };
    accounts::logout(&app, secret).await?;
    let clear = auth::clear_session_cookie(auth::secure_cookies(&app, &headers));
    Ok((
        StatusCode::NO_CONTENT,
        [(SET_COOKIE, clear)],
        AuditNote::target(actor.name),
        (),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    role: Role,
    password: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/users",
    summary = "Create a user of the web UI",
    tag = "users",
    request_body = NewUser,
    responses(
        (status = 201, body = User),
        (status = 409, description = "`user_exists`"),
    )
)]
/// `POST /api/v1/users` with `{"name","role","password"}` → the user.
pub async fn create(
    _: Admin,
    State(app): State<App>,
    ApiJson(new): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, AuditNote, Json<User>)> {
    let user = accounts::create_user(&app, &new.name, new.role, &new.password).await?;
    let note = AuditNote::target(&user.name).with_summary(format!("role {}", user.role));
    Ok((StatusCode::CREATED, note, Json(user)))
}

#[utoipa::path(
    get,
    path = "/api/v1/users",
    summary = "List the users",
    tag = "users",
    params(ListQuery),
    responses(
        (status = 200, body = Page<User>),
    )
)]
/// `GET /api/v1/users`: names, roles, whether disabled, and times; never a password.
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<User>>> {
    Ok(Json(accounts::list_users(&app, &query.page()?).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    role: Option<Role>,
    disabled: Option<bool>,
    password: Option<String>,
}

#[utoipa::path(
    patch,
    path = "/api/v1/users/{name}",
    summary = "Change a user's role, password, or disable them",
    tag = "users",
    request_body = UserPatch,
    responses(
        (status = 200, body = User),
    )
)]
/// `PATCH /api/v1/users/{name}` with any of `role`, `disabled`, `password` → the user.
/// Disabling a user or a new password ends their sessions.
pub async fn update(
    _: Admin,
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<(AuditNote, Json<User>)> {
    let mut summary = Vec::new();
    if let Some(role) = patch.role {
        summary.push(format!("role {role}"));
    }
    if let Some(disabled) = patch.disabled {
        summary.push((if disabled { "disabled" } else { "enabled" }).to_owned());
    }
    if patch.password.is_some() {
        summary.push("new password".to_owned());
    }
    if summary.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_field",
            "nothing to change: send role, disabled or password",
        ));
    }
    let update = accounts::UserUpdate {
        role: patch.role,
        disabled: patch.disabled,
        password: patch.password,
    };
    let user = accounts::update_user(&app, &name, update).await?;
    Ok((AuditNote::summary(summary.join(", ")), Json(user)))
}

#[utoipa::path(
    delete,
    path = "/api/v1/users/{name}/sessions",
    summary = "End every session of a user",
    tag = "users",
    responses(
        (status = 200, body = serde_json::Value, description = "`{\"revoked\": n}`"),
    )
)]
/// `DELETE /api/v1/users/{name}/sessions`: ends every session of the user → `{"revoked": n}`.
pub async fn revoke_sessions(
    _: Admin,
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(AuditNote, Json<Value>)> {
    let revoked = accounts::revoke_sessions(&app, &name).await?;
    Ok((
        AuditNote::summary(format!("revoked {revoked} sessions")),
        Json(json!({ "revoked": revoked })),
    ))
}
