//! Products: create, list, get, and what a product declares about its images (an IotaWatt key).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::{App, iotawatt, products};
use otter_core::Scheme;
use otter_core::model::{Page, Product};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ListQuery;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};

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
    State(app): State<App>,
    ApiJson(new): ApiJson<NewProduct>,
) -> ApiResult<(StatusCode, AuditNote, Json<Product>)> {
    let product = products::create(&app, new.name, new.scheme).await?;
    let note = AuditNote::target(&product.name).with_summary(format!("scheme {}", product.scheme));
    Ok((StatusCode::CREATED, note, Json(product)))
}

/// `GET /api/v1/products`
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Product>>> {
    Ok(Json(products::list(&app, &query.page()?).await?))
}

/// `GET /api/v1/products/{product}`
pub async fn get(
    _: Admin,
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Product>> {
    Ok(Json(app.product(&name).await?.product.clone()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IotawattSettings {
    /// 64 hex digits, or the C array `otter iotawatt keygen` prints.
    public_key: String,
}

/// `PUT /api/v1/products/{product}/iotawatt` with `{"publicKey": …}`: makes the product an
/// IotaWatt product whose release blobs must verify with this key.
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
pub async fn iotawatt(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let key = iotawatt::public_key_hex(&app, &product).await?;
    Ok(Json(json!({ "product": product, "publicKey": key })))
}
