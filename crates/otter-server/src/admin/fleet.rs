//! What the fleet runs: devices and their update reports.

use axum::Json;
use axum::extract::State;
use otter_core::model::{Device, Page, UpdateReport};
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::{ApiPath, ApiQuery, ApiResult};
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
