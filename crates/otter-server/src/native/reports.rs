//! `POST /api/v1/products/{product}/reports`: a device says how an update went (see
//! `otter_app::devices::report`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::App;
use otter_app::devices::{self, Report};
use otter_core::model::UpdateReport;

use crate::error::{ApiJson, ApiPath, ApiResult};

#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/reports",
    summary = "Report how an update went (devices)",
    tag = "device",
    request_body = Report,
    responses(
        (status = 201, body = UpdateReport),
        (status = 403, description = "The device is not admitted"),
    )
)]
pub async fn create(
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(report): ApiJson<Report>,
) -> ApiResult<(StatusCode, Json<UpdateReport>)> {
    let stored = devices::report(&app, &product, report).await?;
    Ok((StatusCode::CREATED, Json(stored)))
}
