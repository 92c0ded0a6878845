//! The audit log over HTTP: `GET /api/v1/audit` with filters, newest first.

use axum::Json;
use axum::extract::State;
use otter_app::{App, audit};
use otter_core::model::{AuditEntry, Page, parse_rfc3339};
use otter_store::AuditFilter;
use serde::Deserialize;
use utoipa::IntoParams;

use super::ListQuery;
use crate::auth::Admin;
use crate::error::{ApiError, ApiQuery, ApiResult};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    /// RFC 3339: entries at or after it.
    since: Option<String>,
    /// RFC 3339: entries before it.
    until: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

fn time(field: &'static str, value: Option<String>) -> ApiResult<Option<i64>> {
    value
        .map(|v| parse_rfc3339(field, &v).map(|t| t.unix_timestamp()))
        .transpose()
        .map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))
}

/// `GET /api/v1/audit?actor=&action=&target=&since=&until=`
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    summary = "List the audit log, newest first",
    tag = "audit",
    params(AuditQuery),
    responses(
        (status = 200, body = Page<AuditEntry>),
    )
)]
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    let page = ListQuery {
        limit: query.limit,
        cursor: query.cursor,
    }
    .page()?;
    let filter = AuditFilter {
        actor: query.actor,
        action: query.action,
        target: query.target,
        since: time("since", query.since)?,
        until: time("until", query.until)?,
    };
    Ok(Json(audit::list(&app, &filter, &page).await?))
}
