//! What the fleet runs: devices and their update reports.

use axum::Json;
use axum::extract::State;
use otter_app::{App, devices};
use otter_core::model::{Device, Page, UpdateReport};
use serde::Deserialize;

use super::ListQuery;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};

/// `GET /api/v1/products/{product}/devices`
pub async fn devices(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Device>>> {
    Ok(Json(devices::list(&app, &product, &query.page()?).await?))
}

/// What an operator may change about a device.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevicePatch {
    auto_update: bool,
}

/// `PATCH /api/v1/products/{product}/devices/{device}` with `{"autoUpdate": true}`.
pub async fn patch_device(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, device)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<DevicePatch>,
) -> ApiResult<(AuditNote, Json<Device>)> {
    let device = devices::set_auto_update(&app, &product, &device, patch.auto_update).await?;
    let note = AuditNote::summary(format!("autoUpdate={}", patch.auto_update));
    Ok((note, Json(device)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    device: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/products/{product}/reports?device=ID`, newest first.
pub async fn reports(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Page<UpdateReport>>> {
    let page = ListQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let reports = devices::reports(&app, &product, query.device.as_deref(), &page).await?;
    Ok(Json(reports))
}
