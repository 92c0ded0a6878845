//! What the fleet runs: devices and their update reports.

use axum::Json;
use axum::extract::State;
use otter_core::model::{Device, Page, UpdateReport};
use otter_store::StoreError;
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;

/// `GET /api/v1/products/{product}/devices`
pub async fn devices(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<super::ListQuery>,
) -> ApiResult<Json<Page<Device>>> {
    super::product(&state, &product)?;
    Ok(Json(
        state.store.list_devices(&product, &query.page()?).await?,
    ))
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
    State(state): State<AppState>,
    ApiPath((product, device)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<DevicePatch>,
) -> ApiResult<Json<Device>> {
    super::product(&state, &product)?;
    let device = state
        .store
        .set_auto_update(&product, &device, patch.auto_update)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => ApiError::not_found(
                "device_not_found",
                format!("product {product:?} has never seen device {device:?}"),
            ),
            other => other.into(),
        })?;
    tracing::info!(product = %product, device = %device.id, auto_update = device.auto_update,
        "device changed");
    Ok(Json(device))
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
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<ReportQuery>,
) -> ApiResult<Json<Page<UpdateReport>>> {
    super::product(&state, &product)?;
    let page = super::ListQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    Ok(Json(
        state
            .store
            .list_reports(&product, query.device.as_deref(), &page)
            .await?,
    ))
}
