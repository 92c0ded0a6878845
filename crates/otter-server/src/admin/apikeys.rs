//! Device API keys of a product (what THiNX devices send in `Authentication`): create (the key
//! is shown once), list, revoke.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use otter_core::model::ApiKey;
use otter_store::{now, random_id};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Admin, token_hash};
use crate::error::{ApiError, ApiPath, ApiResult};
use crate::state::AppState;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    label: Option<String>,
}

/// `POST /api/v1/products/{product}/apikeys` with `{"label": …}` → the key, once.
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    super::product(&state, &product)?;
    // The body is optional: no body, no label.
    let new: NewApiKey = if body.is_empty() {
        NewApiKey::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let label = new.label.unwrap_or_default();
    if label.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "field_too_long",
            "label is longer than 100 characters",
        ));
    }
    // 256 random bits as 64 hex digits, the shape of THiNX's keys.
    let key = format!("{}{}", random_id(), random_id());
    let hash = token_hash(&key);
    let api_key = ApiKey {
        id: hash[..16].to_owned(),
        product: product.clone(),
        label,
        created_at: now(),
    };
    state.store.add_api_key(&api_key, &hash).await?;
    state.index.changed(&*state.store, &product).await?;
    tracing::info!(product = %product, id = %api_key.id, "device API key created");
    let mut body = serde_json::to_value(&api_key).map_err(ApiError::internal)?;
    body["key"] = json!(key);
    Ok((StatusCode::CREATED, Json(body)))
}

/// `GET /api/v1/products/{product}/apikeys`: ids and labels, never the keys.
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    super::product(&state, &product)?;
    let keys = state.store.api_keys(&product).await?;
    Ok(Json(json!({ "items": keys, "nextCursor": null })))
}

/// `DELETE /api/v1/products/{product}/apikeys/{id}`
pub async fn revoke(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((product, id)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    super::product(&state, &product)?;
    if !state.store.delete_api_key(&product, &id).await? {
        return Err(ApiError::not_found(
            "api_key_not_found",
            format!("product {product:?} has no API key {id:?}"),
        ));
    }
    state.index.changed(&*state.store, &product).await?;
    tracing::info!(product = %product, id = %id, "device API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
