//! What the fleet runs and what operators set on it: devices (filters, tags, assigned channel,
//! pin, delete), admission, and update reports.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::registry::{self, AdmissionRules, DeviceDetail};
use otter_app::{App, devices};
use otter_core::access::{Access, Admission};
use otter_core::model::{Device, Page, UpdateReport, parse_rfc3339};
use otter_store::{DeviceChange, DeviceFilter};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use super::ListQuery;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};

/// `?device=&tag=&version=&channel=&protocol=&attribute=&seenBefore=&seenAfter=&status=` (times
/// RFC 3339; attribute `key:value`; status one of offered, downloading, installed, failed,
/// penalty, in a rollout that is not over): which devices a list or a tagging means, every
/// parameter given having to match.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FilterQuery {
    device: Option<String>,
    tag: Option<String>,
    version: Option<String>,
    channel: Option<String>,
    protocol: Option<String>,
    attribute: Option<String>,
    seen_before: Option<String>,
    seen_after: Option<String>,
    status: Option<String>,
    // Only lists page; a tagging refuses these like any unknown parameter.
    limit: Option<u32>,
    cursor: Option<String>,
}

impl FilterQuery {
    fn filter(&self) -> ApiResult<DeviceFilter> {
        let time = |field, value: &Option<String>| {
            value
                .as_deref()
                .map(|v| parse_rfc3339(field, v).map(|t| t.unix_timestamp()))
                .transpose()
        };
        Ok(DeviceFilter {
            device: self.device.clone(),
            tag: self.tag.clone(),
            version: self.version.clone(),
            channel: self.channel.clone(),
            protocol: self.protocol.clone(),
            attribute: self
                .attribute
                .as_deref()
                .map(|a| {
                    a.split_once(':')
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .ok_or_else(|| {
                            ApiError::bad_request("invalid_query", "attribute must be key:value")
                        })
                })
                .transpose()?,
            seen_before: time("seenBefore", &self.seen_before)?,
            seen_after: time("seenAfter", &self.seen_after)?,
            status: self
                .status
                .as_deref()
                .map(|s| s.parse().map(|status| (status, otter_store::now())))
                .transpose()
                .map_err(|e: String| ApiError::bad_request("invalid_query", e))?,
        })
    }
}

/// `GET /api/v1/products/{product}/devices` with a [`FilterQuery`] and `limit`/`cursor`.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/devices",
    summary = "List devices, filtered",
    tag = "devices",
    params(FilterQuery),
    responses(
        (status = 200, body = Page<Device>),
    )
)]
pub async fn devices(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<FilterQuery>,
) -> ApiResult<Json<Page<Device>>> {
    let filter = query.filter()?;
    let page = ListQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    Ok(Json(registry::list(&app, &product, &filter, &page).await?))
}

/// `GET /api/v1/products/{product}/devices/{device}`
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/devices/{device}",
    summary = "Get a device and its rollout attempts",
    tag = "devices",
    responses(
        (status = 200, body = DeviceDetail),
    )
)]
pub async fn device(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, id)): ApiPath<(String, String)>,
) -> ApiResult<Json<DeviceDetail>> {
    Ok(Json(registry::get(&app, &product, &id).await?))
}

/// What an operator may change about a device; a field left out stays as it is, `null` clears
/// the assigned channel or the pin.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DevicePatch {
    auto_update: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    assigned_channel: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pinned_version: Option<Option<String>>,
}

/// A field that is present (`null` included) as `Some`, to tell `null` from left out.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// `PATCH /api/v1/products/{product}/devices/{device}` with any of `{"autoUpdate": true,
/// "assignedChannel": "beta", "pinnedVersion": "1.2.0"}`.
#[utoipa::path(
    patch,
    path = "/api/v1/products/{product}/devices/{device}",
    summary = "Change a device (auto-update, assigned channel, pin)",
    tag = "devices",
    request_body = DevicePatch,
    responses(
        (status = 200, body = Device),
        (status = 409, description = "The pinned release is yanked"),
    )
)]
pub async fn patch_device(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, device)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<DevicePatch>,
) -> ApiResult<(AuditNote, Json<Device>)> {
    let shown = |value: &Option<String>| value.clone().unwrap_or_else(|| "none".to_owned());
    let summary: Vec<String> = [
        patch.auto_update.map(|on| format!("autoUpdate={on}")),
        patch
            .assigned_channel
            .as_ref()
            .map(|c| format!("assignedChannel={}", shown(c))),
        patch
            .pinned_version
            .as_ref()
            .map(|v| format!("pinnedVersion={}", shown(v))),
    ]
    .into_iter()
    .flatten()
    .collect();
    let change = DeviceChange {
        auto_update: patch.auto_update,
        assigned_channel: patch.assigned_channel,
        pinned_version: patch.pinned_version,
    };
    let device = registry::update(&app, &product, &device, change).await?;
    Ok((AuditNote::summary(summary.join(", ")), Json(device)))
}

/// `DELETE /api/v1/products/{product}/devices/{device}`
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/devices/{device}",
    summary = "Delete a device",
    tag = "devices",
    responses(
        (status = 204, description = "Deleted"),
    )
)]
pub async fn delete_device(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, device)): ApiPath<(String, String)>,
) -> ApiResult<StatusCode> {
    registry::delete(&app, &product, &device).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/products/{product}/tags/{tag}` with a [`FilterQuery`]: tags every matching
/// device (no filter: every device) → `{"tag", "changed"}`.
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/tags/{tag}",
    summary = "Tag the matching devices",
    tag = "devices",
    params(FilterQuery),
    responses(
        (status = 200, description = "`{tag, changed}`", body = serde_json::Value),
    )
)]
pub async fn tag(
    admin: Admin,
    app: State<App>,
    path: ApiPath<(String, String)>,
    query: ApiQuery<FilterQuery>,
) -> ApiResult<(AuditNote, Json<Value>)> {
    tagging(admin, app, path, query, true).await
}

/// `DELETE /api/v1/products/{product}/tags/{tag}` with a [`FilterQuery`]: untags every matching
/// device → `{"tag", "changed"}`.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/tags/{tag}",
    summary = "Untag the matching devices",
    tag = "devices",
    params(FilterQuery),
    responses(
        (status = 200, description = "`{tag, changed}`", body = serde_json::Value),
    )
)]
pub async fn untag(
    admin: Admin,
    app: State<App>,
    path: ApiPath<(String, String)>,
    query: ApiQuery<FilterQuery>,
) -> ApiResult<(AuditNote, Json<Value>)> {
    tagging(admin, app, path, query, false).await
}

async fn tagging(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, tag)): ApiPath<(String, String)>,
    ApiQuery(query): ApiQuery<FilterQuery>,
    on: bool,
) -> ApiResult<(AuditNote, Json<Value>)> {
    if query.limit.is_some() || query.cursor.is_some() {
        return Err(ApiError::bad_request(
            "invalid_query",
            "a tagging changes every matching device: limit and cursor are for lists",
        ));
    }
    let changed = registry::tag(&app, &product, &query.filter()?, &tag, on).await?;
    let verb = if on { "tagged" } else { "untagged" };
    let note = AuditNote::summary(format!("{verb} {changed} devices"));
    Ok((note, Json(json!({ "tag": tag, "changed": changed }))))
}

/// `GET /api/v1/products/{product}/admission` → `{"mode", "allowed", "denied"}`.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/admission",
    summary = "Get a product's admission rules",
    tag = "admission",
    responses(
        (status = 200, body = AdmissionRules),
    )
)]
pub async fn admission(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<AdmissionRules>> {
    Ok(Json(registry::admission(&app, &product).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdmissionBody {
    /// `open` or `allowlist`.
    mode: String,
}

/// `PUT /api/v1/products/{product}/admission` with `{"mode": "open" | "allowlist"}`.
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/admission",
    summary = "Set a product's admission mode",
    tag = "admission",
    request_body = AdmissionBody,
    responses(
        (status = 200, body = AdmissionRules),
    )
)]
pub async fn set_admission(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(body): ApiJson<AdmissionBody>,
) -> ApiResult<Json<AdmissionRules>> {
    let mode: Admission = body
        .mode
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_admission", e))?;
    registry::set_admission(&app, &product, mode).await?;
    Ok(Json(registry::admission(&app, &product).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessBody {
    /// `allow` or `deny`.
    access: String,
}

/// `PUT /api/v1/products/{product}/admission/{device}` with `{"access": "allow" | "deny"}`.
#[utoipa::path(
    put,
    path = "/api/v1/products/{product}/admission/{device}",
    summary = "Allow or deny a device",
    tag = "admission",
    request_body = AccessBody,
    responses(
        (status = 200, body = AdmissionRules),
    )
)]
pub async fn set_device_access(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, device)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<AccessBody>,
) -> ApiResult<Json<AdmissionRules>> {
    let access: Access = body
        .access
        .parse()
        .map_err(|e: String| ApiError::bad_request("invalid_access", e))?;
    registry::set_device_rule(&app, &product, &device, Some(access)).await?;
    Ok(Json(registry::admission(&app, &product).await?))
}

/// `DELETE /api/v1/products/{product}/admission/{device}`: the device's rule goes, the mode
/// decides.
#[utoipa::path(
    delete,
    path = "/api/v1/products/{product}/admission/{device}",
    summary = "Remove a device's admission rule",
    tag = "admission",
    responses(
        (status = 200, body = AdmissionRules),
    )
)]
pub async fn clear_device_access(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, device)): ApiPath<(String, String)>,
) -> ApiResult<Json<AdmissionRules>> {
    registry::set_device_rule(&app, &product, &device, None).await?;
    Ok(Json(registry::admission(&app, &product).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    device: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/products/{product}/reports?device=ID`, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/reports",
    summary = "List update reports, newest first",
    tag = "devices",
    params(ReportQuery),
    responses(
        (status = 200, body = Page<UpdateReport>),
    )
)]
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
