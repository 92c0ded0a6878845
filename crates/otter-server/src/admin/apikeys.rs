//! Device API keys of a product (what THiNX devices send in `Authentication`): create (the key
//! is shown once), list, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::{App, tokens};
use otter_core::model::{ApiKey, Page};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiError, ApiPath, ApiResult};

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    label: Option<String>,
}

/// `POST /api/v1/products/{product}/apikeys` with `{"label": …}` → the key, once.
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/apikeys",
    summary = "Create a device API key (shown once)",
    tag = "apikeys",
    request_body(content = Option<NewApiKey>, description = "Optional"),
    responses(
        (status = 201, description = "The key (`key`, shown once) and its `id`, `product`, `label`, `createdAt`", body = serde_json::Value),
    )
)]
pub async fn create(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, AuditNote, Json<Value>)> {
    app.product(&product).await?;
    // The body is optional: no body, no label.
    let new: NewApiKey = if body.is_empty() {
        NewApiKey::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let created = tokens::create_api_key(&app, &product, new.label.unwrap_or_default()).await?;
    let mut body = serde_json::to_value(&created.api_key).map_err(ApiError::internal)?;
    body["key"] = json!(created.key);
    let note = AuditNote::target(format!("{product}/{}", created.api_key.id));
    Ok((StatusCode::CREATED, note, Json(body)))
}

/// `GET /api/v1/products/{product}/apikeys`: ids and labels, never the keys.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/apikeys",
    summary = "List device API keys",
    tag = "apikeys",
    responses(
        (status = 200, body = Page<ApiKey>),
    )
)]
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let keys = tokens::api_keys(&app, &product).await?;
    Ok(Json(json!({ "items": keys, "nextCursor": null })))
}

/// `DELETE /api/v1/products/{product}/apikeys/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/apikeys/{id}",
    summary = "Revoke a device API key",
    tag = "apikeys",
    responses(
        (status = 204, description = "Revoked"),
    )
)]
pub async fn revoke(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    tokens::revoke_api_key(&app, &product, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
