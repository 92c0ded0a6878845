//! Staged rollouts: create, list, show (with per-stage counts), and the operator's moves.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::App;
use otter_app::rollouts::{self, NewRollout, Retried, RolloutView};
use otter_core::model::Page;
use otter_core::rollout::Rollout;

use super::ListQuery;
use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};

/// `POST /api/v1/products/{product}/rollouts`
pub async fn create(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(new): ApiJson<NewRollout>,
) -> ApiResult<(StatusCode, Json<RolloutView>)> {
    let created = rollouts::create(&app, &product, new).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `GET /api/v1/products/{product}/rollouts`, newest first.
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Rollout>>> {
    Ok(Json(rollouts::list(&app, &product, &query.page()?).await?))
}

/// `GET /api/v1/products/{product}/rollouts/{id}`
pub async fn show(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::show(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/advance`
pub async fn advance(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::advance(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/pause`
pub async fn pause(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::pause(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/resume`
pub async fn resume(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::resume(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/abort`
pub async fn abort(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::abort(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/retry-failed`
pub async fn retry_failed(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Retried>> {
    Ok(Json(rollouts::retry_failed(&app, &product, id).await?))
}
