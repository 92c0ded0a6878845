//! The admin API under `/api/v1`: every handler here takes the [`crate::auth::Admin`] extractor,
//! and every route is declared with its role in [`crate::router::admin_routes`].

pub mod apikeys;
pub mod artifacts;
pub mod audit;
pub mod ddi;
pub mod deltas;
pub mod fleet;
pub mod products;
pub mod releases;
pub mod rollouts;
pub mod schedules;
pub mod signing;
pub mod tokens;
pub mod uploads;
pub mod users;

use axum::Json;
use axum::extract::State;
use otter_store::PageRequest;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use otter_app::App;

use crate::auth::Admin;
use crate::error::{ApiError, ApiResult};

/// `?limit=&cursor=` of every list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl ListQuery {
    pub fn page(self) -> ApiResult<PageRequest> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_query",
                "limit must be between 1 and 500",
            ));
        }
        Ok(PageRequest {
            limit,
            cursor: self.cursor,
        })
    }
}

/// `GET /api/v1/status`: queue health, counters, and signatures that expire within 30 days.
#[utoipa::path(
    get,
    path = "/api/v1/status",
    summary = "Server status",
    tag = "status",
    responses(
        (status = 200, description = "Queue health, counters, and signatures expiring within 30 days", body = serde_json::Value),
    )
)]
pub async fn status(_: Admin, State(app): State<App>) -> ApiResult<Json<Value>> {
    let expiring = otter_app::trust::expiring(&app, otter_store::now()).await?;
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "seenQueueDepth": app.seen.depth(),
        "seenDropped": app.seen.dropped(),
        "devicesOverLimit": app.seen.over_limit(),
        "expiringSignatures": expiring,
    })))
}
