//! `GET /api/v1/products/{product}/check`: the hot path. Answered from the in-memory index with a
//! pre-serialised body (plus a pre-serialised `delta` for a device on the base of a ready patch);
//! the device's sighting is queued, never written inline.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use otter_app::devices::CheckIn;
use otter_app::index::ProductIndex;
use otter_app::{App, answers, devices, schedules};
use otter_core::Decision;
use otter_core::model::{DEFAULT_CHANNEL, validate_device_id, validate_name};
use otter_core::signing::device::CheckRequest;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::download::{request_host, url_base_for};
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::peer::Peer;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckQuery {
    current: Option<String>,
    device: Option<String>,
    channel: Option<String>,
    /// A fresh random value (16-64 hex digits) the signed response must echo.
    nonce: Option<String>,
}

const NO_UPDATE: &str = r#"{"hasUpdate":false}"#;

#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/check",
    summary = "Check for an update (devices)",
    tag = "device",
    params(CheckQuery),
    responses(
        (status = 200, description = "`{\"hasUpdate\": false}`, or the offered release (see docs/api.md)", body = serde_json::Value),
        (status = 403, description = "The device is not admitted"),
    )
)]
pub async fn check(
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<CheckQuery>,
    Peer(peer): Peer,
    // The request rather than a `HeaderMap`, which would be a copy of every header.
    request: Request,
) -> ApiResult<Response> {
    answer(&app, &name, &query, peer, request_host(request.headers())).await
}

/// The answer to a check of product `name`, from `peer`, that named `host` in its `Host` header:
/// what [`check`] answers, and what [`crate::router::Lane`] answers for the checks it takes
/// without the router.
pub(crate) async fn answer(
    app: &App,
    name: &str,
    query: &CheckQuery,
    peer: Option<IpAddr>,
    host: Option<&str>,
) -> ApiResult<Response> {
    let index = app.product(name).await?;
    let channel = query.channel.as_deref().unwrap_or(DEFAULT_CHANNEL);
    validate_name("channel", channel)?;
    let current = query.current.as_deref().filter(|c| !c.is_empty());
    if let Some(device) = &query.device {
        validate_device_id("device", device)?;
    }
    let device = query.device.as_deref();
    let check = CheckIn {
        protocol: "native",
        device,
        channel,
        current,
    };
    let decision = devices::decide(app, &index, check).await?;
    if let Some(device) = device {
        app.seen.record(
            index
                .sighting(device.to_owned(), current, channel)
                .via("native", peer),
        );
    }
    let offered = match decision {
        Decision::Offer {
            index: i,
            stepping_stone,
        } => Some((i, stepping_stone)),
        Decision::UpToDate | Decision::NoPath => None,
    };
    let mut body = match offered {
        Some((i, stepping_stone)) => {
            let base = url_base_for(app, host);
            let mut body = index.releases[i].offer_body(&base, stepping_stone);
            if let Some(delta) = index.delta(current, i, &base) {
                answers::insert_delta(&mut body, 2, &delta);
            }
            body
        }
        None => NO_UPDATE.to_owned(),
    };
    if let Some(seconds) = schedules::next_check_seconds(&index) {
        // Every answer is a JSON object: the hint goes in before its closing brace.
        body.pop();
        body.push_str(&format!(",\"nextCheckSeconds\":{seconds}}}"));
    }
    if let Some(nonce) = &query.nonce {
        body = sign_answer(app, &index, query, nonce, offered.map(|(i, _)| i), body)?;
    }
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response())
}

/// Adds the signed response (and the offered release's signed manifest) to a check answer, for
/// a device that sent a nonce to a product with a root of trust. The pre-serialised answer is
/// reopened: signing is per request anyway.
fn sign_answer(
    app: &App,
    index: &ProductIndex,
    query: &CheckQuery,
    nonce: &str,
    offered: Option<usize>,
    body: String,
) -> ApiResult<String> {
    if !(16..=64).contains(&nonce.len()) || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "invalid_nonce",
            "nonce must be 16-64 hex digits, fresh for every check",
        ));
    }
    let mut answer: Value = serde_json::from_str(&body).map_err(ApiError::internal)?;
    let url = answer["manifest"]["url"].as_str().map(str::to_owned);
    let request = CheckRequest {
        nonce,
        device: query.device.as_deref().unwrap_or_default(),
        current: query.current.as_deref().filter(|c| !c.is_empty()),
        channel: query.channel.as_deref().unwrap_or(DEFAULT_CHANNEL),
    };
    let Some(signed) = otter_app::trust::signed_response(app, index, &request, offered, url)?
    else {
        return Ok(body);
    };
    answer["signedResponse"] = signed;
    if let Some(manifest) = offered
        .and_then(|i| index.releases[i].signatures.as_ref()?.manifest.as_deref())
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
    {
        answer["releaseManifest"] = manifest;
    }
    Ok(answer.to_string())
}
