//! `POST /api/v1/products/{product}/reports`: a device says how an update went. The report is
//! written before the answer, never dropped; an `installed` report also records the device's new
//! version, in order behind its earlier check-ins.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_core::model::{DeviceSeen, ReportState, UpdateReport, validate_device_id, validate_name};
use otter_core::version::MAX_VERSION_LEN;
use otter_store::{NewReport, now};
use serde::Deserialize;

use crate::admin::product;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::state::AppState;

/// Longest report message kept.
const MAX_MESSAGE_LEN: usize = 2000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    device: String,
    version: String,
    state: ReportState,
    message: Option<String>,
    channel: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<ReportBody>,
) -> ApiResult<(StatusCode, Json<UpdateReport>)> {
    let index = product(&state, &name)?;
    validate_device_id("device", &body.device)?;
    if body.version.is_empty() || body.version.len() > MAX_VERSION_LEN {
        return Err(ApiError::bad_request(
            "invalid_version",
            format!("version must be 1-{MAX_VERSION_LEN} characters"),
        ));
    }
    if body
        .message
        .as_ref()
        .is_some_and(|m| m.chars().count() > MAX_MESSAGE_LEN)
    {
        return Err(ApiError::bad_request(
            "field_too_long",
            format!("message is longer than {MAX_MESSAGE_LEN} characters"),
        ));
    }
    let at = now();
    let report = state
        .store
        .insert_report(&NewReport {
            product: name.clone(),
            device: body.device.clone(),
            version: body.version.clone(),
            state: body.state,
            message: body.message,
            created_at: at,
        })
        .await?;
    if body.state == ReportState::Installed {
        let channel = body
            .channel
            .unwrap_or_else(|| otter_core::model::DEFAULT_CHANNEL.to_owned());
        validate_name("channel", &channel)?;
        crate::notify::device_changed(&state, &index, &body.device, Some(&body.version), &channel);
        state
            .seen
            .record_in_order(DeviceSeen {
                product: name,
                id: body.device,
                current_version: Some(body.version),
                current_hash: None,
                channel,
                at,
                attributes: None,
            })
            .await;
    }
    Ok((StatusCode::CREATED, Json(report)))
}
