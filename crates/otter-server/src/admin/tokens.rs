//! Admin API tokens: create (the token is shown once), list, revoke.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::{App, tokens};
use otter_core::model::{ApiToken, Page, Role};
use otter_core::units::parse_duration;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::ListQuery;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: Role,
    /// How long the token is valid; none: until revoked.
    expires: Option<Lifetime>,
}

/// A token's lifetime as sent: `"90d"`, `"12h"`, or a number of seconds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
enum Lifetime {
    Seconds(u64),
    Text(String),
}

/// `POST /api/v1/tokens` with `{"name","role","expires"}` → the token, once.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    summary = "Create an admin API token (shown once)",
    tag = "tokens",
    request_body = NewToken,
    responses(
        (status = 201, description = "The token (`token`, shown once) and what `GET /api/v1/tokens` lists of it", body = serde_json::Value),
        (status = 409, description = "A token of that name exists"),
    )
)]
pub async fn create(
    _: Admin,
    State(app): State<App>,
    ApiJson(new): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, AuditNote, Json<Value>)> {
    let expires_in = match new.expires {
        None => None,
        Some(Lifetime::Seconds(seconds)) => Some(Duration::from_secs(seconds)),
        Some(Lifetime::Text(text)) => Some(
            parse_duration(&text)
                .map_err(|why| ApiError::bad_request("invalid_field", format!("expires: {why}")))?,
        ),
    };
    let created = tokens::create_token(&app, &new.name, new.role, expires_in).await?;
    let mut summary = format!("role {}", created.info.role);
    if let Some(at) = created.info.expires_at {
        summary.push_str(&format!(
            ", expires {}",
            otter_core::model::format_rfc3339(at)
        ));
    }
    let mut body = serde_json::to_value(&created.info).map_err(ApiError::internal)?;
    body["token"] = json!(created.token);
    Ok((
        StatusCode::CREATED,
        AuditNote::target(created.info.name).with_summary(summary),
        Json(body),
    ))
}

/// `GET /api/v1/tokens`: names, roles and times, never the tokens.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    summary = "List admin API tokens",
    tag = "tokens",
    params(ListQuery),
    responses(
        (status = 200, body = Page<ApiToken>),
    )
)]
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<ApiToken>>> {
    Ok(Json(tokens::list_tokens(&app, &query.page()?).await?))
}

/// `DELETE /api/v1/tokens/{name}`: revokes the token (it stays listed, revoked).
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{name}",
    summary = "Revoke an admin API token",
    tag = "tokens",
    responses(
        (status = 204, description = "Revoked"),
    )
)]
pub async fn revoke(
    _: Admin,
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(StatusCode, AuditNote, ())> {
    let revoked = tokens::revoke_token(&app, &name).await?;
    let summary = format!("revoked a {} token", revoked.role);
    Ok((StatusCode::NO_CONTENT, AuditNote::summary(summary), ()))
}
