//! hawkBit DDI credentials and options of a product (`docs/protocols/hawkbit-ddi.md`): a
//! device's TargetToken and the product's GatewayToken (each shown once, stored hashed, a new one
//! replacing the old), and whether anonymous polls and token-protected downloads are on.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::{App, ddi};
use otter_store::DdiOptions;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiResult};

/// A product's DDI options.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Options {
    /// Polls without a token are answered (the `{tenant}` names the product, else
    /// `--ddi-default-product`).
    #[serde(default)]
    anonymous: bool,
    /// Artifacts are downloaded under the controller's path with its token, instead of otter's
    /// unauthenticated `/dl/{sha256}`.
    #[serde(default)]
    token_downloads: bool,
}

impl From<DdiOptions> for Options {
    fn from(o: DdiOptions) -> Self {
        Options {
            anonymous: o.anonymous,
            token_downloads: o.token_downloads,
        }
    }
}

/// `POST /api/v1/products/{product}/devices/{device}/ddi-token` → `{"token"}`, once.
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/devices/{device}/ddi-token",
    summary = "Make a device's DDI TargetToken (shown once; replaces the old one)",
    tag = "ddi",
    responses(
        (status = 201, description = "`{\"product\", \"device\", \"token\"}`; the token is shown this once", body = serde_json::Value),
    )
)]
pub async fn target_token(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, device)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, AuditNote, Json<Value>)> {
    let made = ddi::target_token(&app, &product, &device).await?;
    let note = AuditNote::target(format!("{product}/{device}"));
    let body = json!({"product": product, "device": device, "token": made.token});
    Ok((StatusCode::CREATED, note, Json(body)))
}

/// `POST /api/v1/products/{product}/ddi/gateway-token` → `{"token"}`, once.
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/ddi/gateway-token",
    summary = "Make the product's DDI GatewayToken (shown once; replaces the old one)",
    tag = "ddi",
    responses(
        (status = 201, description = "`{\"product\", \"token\"}`; the token is shown this once", body = serde_json::Value),
    )
)]
pub async fn gateway_token(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<(StatusCode, AuditNote, Json<Value>)> {
    let made = ddi::gateway_token(&app, &product).await?;
    let note = AuditNote::target(product.clone());
    let body = json!({"product": product, "token": made.token});
    Ok((StatusCode::CREATED, note, Json(body)))
}

/// `GET /api/v1/products/{product}/ddi`
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/ddi",
    summary = "A product's DDI options",
    tag = "ddi",
    responses((status = 200, body = Options))
)]
pub async fn options(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Options>> {
    Ok(Json(ddi::options(&app, &product).await?.into()))
}

/// `PUT /api/v1/products/{product}/ddi`
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/ddi",
    summary = "Set a product's DDI options",
    tag = "ddi",
    request_body = Options,
    responses((status = 200, body = Options))
)]
pub async fn set_options(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(options): ApiJson<Options>,
) -> ApiResult<Json<Options>> {
    let set = DdiOptions {
        anonymous: options.anonymous,
        token_downloads: options.token_downloads,
    };
    Ok(Json(ddi::set_options(&app, &product, set).await?.into()))
}
