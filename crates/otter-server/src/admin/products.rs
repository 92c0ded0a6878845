//! Products: create, list, get.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_core::Scheme;
use otter_core::model::{Page, Product, validate_name};
use otter_store::{StoreError, now};
use serde::Deserialize;

use super::ListQuery;
use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    name: String,
    #[serde(default = "default_scheme")]
    scheme: Scheme,
}

fn default_scheme() -> Scheme {
    Scheme::Semver
}

/// `POST /api/v1/products`
pub async fn create(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(new): ApiJson<NewProduct>,
) -> ApiResult<(StatusCode, Json<Product>)> {
    validate_name("name", &new.name)?;
    let product = Product {
        name: new.name,
        scheme: new.scheme,
        created_at: now(),
    };
    state
        .store
        .create_product(&product)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "product_exists",
                format!("a product named {:?} already exists", product.name),
            ),
            other => other.into(),
        })?;
    state.index.changed(&*state.store, &product.name).await?;
    tracing::info!(product = %product.name, scheme = %product.scheme, "product created");
    Ok((StatusCode::CREATED, Json(product)))
}

/// `GET /api/v1/products`
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Product>>> {
    Ok(Json(state.store.list_products(&query.page()?).await?))
}

/// `GET /api/v1/products/{product}`
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Product>> {
    Ok(Json(super::product(&state, &name)?.product.clone()))
}
