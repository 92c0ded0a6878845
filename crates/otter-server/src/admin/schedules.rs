//! When devices update and when they ask: maintenance windows per channel and the product's poll
//! hint (`docs/windows.md`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::App;
use otter_app::schedules::{self, ChannelWindow};
use otter_core::model::Page;
use otter_core::schedule::{PollHint, WindowSpec};
use serde_json::{Value, json};

use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiResult};

/// `GET /api/v1/products/{product}/windows`
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/windows",
    summary = "List maintenance windows",
    tag = "schedules",
    responses(
        (status = 200, body = Page<ChannelWindow>),
    )
)]
pub async fn list_windows(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let windows = schedules::windows(&app, &product).await?;
    Ok(Json(json!({ "items": windows, "nextCursor": null })))
}

/// `PUT /api/v1/products/{product}/windows/{channel}` with `{"timezone": …, "slots": […]}`.
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/windows/{channel}",
    summary = "Set a channel's maintenance window",
    tag = "schedules",
    request_body = WindowSpec,
    responses(
        (status = 200, body = ChannelWindow),
    )
)]
pub async fn set_window(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, channel)): ApiPath<(String, String)>,
    ApiJson(window): ApiJson<WindowSpec>,
) -> ApiResult<Json<Option<ChannelWindow>>> {
    Ok(Json(
        schedules::set_window(&app, &product, &channel, Some(window)).await?,
    ))
}

/// `DELETE /api/v1/products/{product}/windows/{channel}`: the channel is open at all times.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/windows/{channel}",
    summary = "Remove a channel's maintenance window",
    tag = "schedules",
    responses(
        (status = 204, description = "Removed"),
    )
)]
pub async fn delete_window(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, channel)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    schedules::set_window(&app, &product, &channel, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/products/{product}/poll-hint`: the hint, or `null` without one.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/poll-hint",
    summary = "Get the poll hint",
    tag = "schedules",
    responses(
        (status = 200, description = "The hint, or `null`", body = Option<PollHint>),
    )
)]
pub async fn poll_hint(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Option<PollHint>>> {
    Ok(Json(schedules::poll_hint(&app, &product).await?))
}

/// `PUT /api/v1/products/{product}/poll-hint` with `{"intervalSeconds": …, "jitterPercent": …}`.
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/poll-hint",
    summary = "Set the poll hint",
    tag = "schedules",
    request_body = PollHint,
    responses(
        (status = 200, body = PollHint),
    )
)]
pub async fn set_poll_hint(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(hint): ApiJson<PollHint>,
) -> ApiResult<Json<Option<PollHint>>> {
    Ok(Json(
        schedules::set_poll_hint(&app, &product, Some(hint)).await?,
    ))
}

/// `DELETE /api/v1/products/{product}/poll-hint`: checks answer no `nextCheckSeconds`.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/poll-hint",
    summary = "Remove the poll hint",
    tag = "schedules",
    responses(
        (status = 204, description = "Removed"),
    )
)]
pub async fn delete_poll_hint(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<StatusCode> {
    schedules::set_poll_hint(&app, &product, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
