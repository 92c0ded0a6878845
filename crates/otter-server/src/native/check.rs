//! `GET /api/v1/products/{product}/check`: the hot path. Answered from the in-memory index with a
//! pre-serialised body; the device's sighting is queued, never written inline.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use otter_core::model::{DEFAULT_CHANNEL, validate_device_id, validate_name};
use otter_core::{Current, Decision, decide};
use serde::Deserialize;

use crate::admin::product;
use crate::error::{ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    current: Option<String>,
    device: Option<String>,
    channel: Option<String>,
}

const NO_UPDATE: &str = r#"{"hasUpdate":false}"#;

/// The scheme and host download URLs start with: the configured public URL, else the request's
/// `Host`.
pub fn url_base(state: &AppState, headers: &HeaderMap) -> String {
    match &state.config.public_url {
        Some(url) => url.clone(),
        None => {
            let host = headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    }
}

pub async fn check(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<CheckQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let index = product(&state, &name)?;
    let channel = query.channel.as_deref().unwrap_or(DEFAULT_CHANNEL);
    validate_name("channel", channel)?;
    let current = query.current.as_deref().filter(|c| !c.is_empty());
    let decision = decide(
        index.product.scheme,
        &index.releases,
        channel,
        current.map_or(Current::Unknown, Current::Reported),
    )?;
    if let Some(device) = query.device {
        validate_device_id("device", &device)?;
        state.seen.record(index.sighting(device, current, channel));
    }
    crate::metrics::count_check("native", &decision);
    let body = match decision {
        Decision::Offer {
            index: i,
            stepping_stone,
        } => index.releases[i].offer_body(&url_base(&state, &headers), stepping_stone),
        Decision::UpToDate | Decision::NoPath => NO_UPDATE.to_owned(),
    };
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}
