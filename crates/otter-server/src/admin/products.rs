//! Products: create, list, get, and what a product declares about its images (an IotaWatt key).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::{App, iotawatt, products};
use otter_core::Scheme;
use otter_core::model::{Page, Product};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::ListQuery;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewProduct {
    name: String,
    #[serde(default = "default_scheme")]
    #[schema(default = "semver")]
    scheme: Scheme,
}

fn default_scheme() -> Scheme {
    Scheme::Semver
}

/// `POST /api/v1/products`
#[utoipa::path(
    post,
    path = "/api/v1/products",
    summary = "Create a product",
    tag = "products",
    request_body = NewProduct,
    responses(
        (status = 201, body = Product),
        (status = 409, description = "A product of that name exists"),
    )
)]
pub async fn create(
    _: Admin,
    State(app): State<App>,
    ApiJson(new): ApiJson<NewProduct>,
) -> ApiResult<(StatusCode, AuditNote, Json<Product>)> {
    let product = products::create(&app, new.name, new.scheme).await?;
    let note = AuditNote::target(&product.name).with_summary(format!("scheme {}", product.scheme));
    Ok((StatusCode::CREATED, note, Json(product)))
}

/// `GET /api/v1/products`
#[utoipa::path(
    get,
    path = "/api/v1/products",
    summary = "List products",
    tag = "products",
    params(ListQuery),
    responses(
        (status = 200, body = Page<Product>),
    )
)]
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Product>>> {
    Ok(Json(products::list(&app, &query.page()?).await?))
}

/// `GET /api/v1/products/{product}`
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}",
    summary = "Get a product",
    tag = "products",
    responses(
        (status = 200, body = Product),
    )
)]
pub async fn get(
    _: Admin,
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Product>> {
    Ok(Json(app.product(&name).await?.product.clone()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IotawattSettings {
    /// 64 hex digits, or the C array `otter iotawatt keygen` prints.
    public_key: String,
}

/// `PUT /api/v1/products/{product}/iotawatt` with `{"publicKey": …}`: makes the product an
/// IotaWatt product whose release blobs must verify with this key.
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/iotawatt",
    summary = "Make a product an IotaWatt product (its public key)",
    tag = "products",
    request_body = IotawattSettings,
    responses(
        (status = 200, description = "`{product, publicKey}`", body = serde_json::Value),
    )
)]
pub async fn set_iotawatt(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(settings): ApiJson<IotawattSettings>,
) -> ApiResult<Json<Value>> {
    let key = iotawatt::set_public_key(&app, &product, &settings.public_key).await?;
    Ok(Json(json!({ "product": product, "publicKey": key })))
}

/// `GET /api/v1/products/{product}/iotawatt`
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/iotawatt",
    summary = "Get a product's IotaWatt key",
    tag = "products",
    responses(
        (status = 200, description = "`{product, publicKey}`", body = serde_json::Value),
    )
)]
pub async fn iotawatt(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let key = iotawatt::public_key_hex(&app, &product).await?;
    Ok(Json(json!({ "product": product, "publicKey": key })))
}
