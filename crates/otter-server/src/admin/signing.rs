//! Signed releases over HTTP (`otter_app::trust`): roots of trust, signatures attached after
//! publishing, the server's online key, and a product's declared image format.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use otter_app::{App, trust};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};

/// `POST /api/v1/products/{product}/roots` with a root envelope: the product's first root
/// (version 1, self-signed) or the next one (signed by the current and the new root keys).
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/roots",
    summary = "Add a root of trust (the first or the next)",
    tag = "signing",
    request_body(content = serde_json::Value, description = "A root envelope (DSSE)"),
    responses(
        (status = 201, description = "`{product, version, expires}`", body = serde_json::Value),
        (status = 409, description = "Not the next root of the chain"),
    )
)]
pub async fn add_root(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let root = trust::add_root(&app, &product, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "product": product, "version": root.version, "expires": root.expires })),
    ))
}

/// `GET /api/v1/products/{product}/root/{n}.json` (and `root.json`, the newest): the envelope
/// exactly as uploaded. Public: devices walk the chain from the root they hold.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/root/{file}",
    summary = "Get a root of trust, as uploaded",
    tag = "device",
    responses(
        (status = 200, description = "The root envelope exactly as uploaded (`{n}.json`, or `root.json` for the newest)", body = serde_json::Value),
    )
)]
pub async fn get_root(
    State(app): State<App>,
    ApiPath((product, file)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let envelope = trust::root_file(&app, &product, &file).await?;
    Ok((
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        envelope,
    )
        .into_response())
}

/// `GET /api/v1/online-key`: the public half of the server's online key, to list in roots.
#[utoipa::path(
    get,
    path = "/api/v1/online-key",
    summary = "Get the server's online public key",
    tag = "signing",
    responses(
        (status = 200, description = "The public half of the server's online key", body = serde_json::Value),
    )
)]
pub async fn online_key(_: Admin, State(app): State<App>) -> Json<Value> {
    Json(trust::online_key(&app))
}

/// `PUT /api/v1/products/{product}/releases/{version}/signature` with a manifest envelope:
/// signs a published release, or replaces its signature (re-signing before expiry).
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/releases/{version}/signature",
    summary = "Sign a release (or re-sign it)",
    tag = "signing",
    request_body(content = serde_json::Value, description = "A manifest envelope (DSSE)"),
    responses(
        (status = 200, description = "`{product, version, securityCounter, expires}`", body = serde_json::Value),
    )
)]
pub async fn attach_signature(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, version)): ApiPath<(String, String)>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    app.product(&product).await?;
    let envelope: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?;
    let signed = trust::attach_signature(&app, &product, &version, &envelope).await?;
    Ok(Json(json!({
        "product": product,
        "version": version,
        "securityCounter": signed.security_counter,
        "expires": signed.expires,
    })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageFormat {
    /// `esp8266-rsa` or `esp-idf-sbv2`.
    format: String,
    /// PEM (SubjectPublicKeyInfo): the key the device's bootloader or updater holds.
    public_key: String,
}

/// `PUT /api/v1/products/{product}/image-format` with `{"format","publicKey"}`: every image
/// published to the product from then on must carry a valid signature in that format.
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/image-format",
    summary = "Declare a product's signed image format",
    tag = "signing",
    request_body = ImageFormat,
    responses(
        (status = 200, description = "`{product, format}`", body = serde_json::Value),
    )
)]
pub async fn set_image_format(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(body): ApiJson<ImageFormat>,
) -> ApiResult<Json<Value>> {
    let format = trust::set_image_format(&app, &product, &body.format, &body.public_key).await?;
    Ok(Json(json!({ "product": product, "format": format })))
}
