//! Delta updates (`docs/deltas.md`): a product's policy, and the patches built for a release.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::App;
use otter_app::deltas::{self, DeltaStatus};
use otter_core::deltas::DeltaPolicy;

use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiResult};

/// `GET /api/v1/products/{product}/delta-policy`: the policy, or `null` without one.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/delta-policy",
    summary = "Get the delta policy",
    tag = "deltas",
    responses(
        (status = 200, description = "The policy, or `null`", body = Option<DeltaPolicy>),
    )
)]
pub async fn policy(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Option<DeltaPolicy>>> {
    Ok(Json(deltas::policy(&app, &product).await?))
}

/// `PUT /api/v1/products/{product}/delta-policy` with `{"format": …, "fromLast"|"fromVersion":
/// …, "maxSharePercent": …}`.
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/delta-policy",
    summary = "Set the delta policy",
    tag = "deltas",
    request_body = DeltaPolicy,
    responses(
        (status = 200, description = "The policy, defaults filled in", body = DeltaPolicy),
    )
)]
pub async fn set_policy(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(policy): ApiJson<DeltaPolicy>,
) -> ApiResult<Json<Option<DeltaPolicy>>> {
    Ok(Json(
        deltas::set_policy(&app, &product, Some(policy)).await?,
    ))
}

/// `DELETE /api/v1/products/{product}/delta-policy`: no more patches are built or offered.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/delta-policy",
    summary = "Remove the delta policy",
    tag = "deltas",
    responses(
        (status = 204, description = "Removed"),
    )
)]
pub async fn delete_policy(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<StatusCode> {
    deltas::set_policy(&app, &product, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/products/{product}/releases/{version}/deltas`: the release's patches and how far
/// the builder got.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/releases/{version}/deltas",
    summary = "The delta patches to a release",
    tag = "deltas",
    responses(
        (status = 200, body = DeltaStatus),
    )
)]
pub async fn status(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeltaStatus>> {
    Ok(Json(deltas::status(&app, &product, &version).await?))
}
