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
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/rollouts",
    summary = "Start a rollout",
    tag = "rollouts",
    request_body = NewRollout,
    responses(
        (status = 201, body = RolloutView),
        (status = 409, description = "A rollout of that channel is active"),
    )
)]
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
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/rollouts",
    summary = "List rollouts, newest first",
    tag = "rollouts",
    params(ListQuery),
    responses(
        (status = 200, body = Page<Rollout>),
    )
)]
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Rollout>>> {
    Ok(Json(rollouts::list(&app, &product, &query.page()?).await?))
}

/// `GET /api/v1/products/{product}/rollouts/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/rollouts/{id}",
    summary = "Get a rollout with its counts per stage",
    tag = "rollouts",
    params(("id" = i64, Path, description = "The rollout's id")),
    responses(
        (status = 200, body = RolloutView),
    )
)]
pub async fn show(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::show(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/advance`
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/rollouts/{id}/advance",
    summary = "Advance a rollout to its next stage",
    tag = "rollouts",
    params(("id" = i64, Path, description = "The rollout's id")),
    responses(
        (status = 200, body = RolloutView),
        (status = 409, description = "Not in a state that allows it"),
    )
)]
pub async fn advance(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::advance(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/pause`
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/rollouts/{id}/pause",
    summary = "Pause a rollout",
    tag = "rollouts",
    params(("id" = i64, Path, description = "The rollout's id")),
    responses(
        (status = 200, body = RolloutView),
        (status = 409, description = "Not in a state that allows it"),
    )
)]
pub async fn pause(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::pause(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/resume`
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/rollouts/{id}/resume",
    summary = "Resume a rollout",
    tag = "rollouts",
    params(("id" = i64, Path, description = "The rollout's id")),
    responses(
        (status = 200, body = RolloutView),
        (status = 409, description = "Not in a state that allows it"),
    )
)]
pub async fn resume(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::resume(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/abort`
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/rollouts/{id}/abort",
    summary = "Abort a rollout",
    tag = "rollouts",
    params(("id" = i64, Path, description = "The rollout's id")),
    responses(
        (status = 200, body = RolloutView),
        (status = 409, description = "Not in a state that allows it"),
    )
)]
pub async fn abort(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<RolloutView>> {
    Ok(Json(rollouts::abort(&app, &product, id).await?))
}

/// `POST /api/v1/products/{product}/rollouts/{id}/retry-failed`
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/rollouts/{id}/retry-failed",
    summary = "Let a rollout's failed devices try again",
    tag = "rollouts",
    params(("id" = i64, Path, description = "The rollout's id")),
    responses(
        (status = 200, body = Retried),
        (status = 409, description = "Not in a state that allows it"),
    )
)]
pub async fn retry_failed(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, i64)>,
) -> ApiResult<Json<Retried>> {
    Ok(Json(rollouts::retry_failed(&app, &product, id).await?))
}
