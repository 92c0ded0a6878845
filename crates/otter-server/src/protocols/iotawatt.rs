//! IotaWatt's auto-update, self-hosted (`docs/protocols/iotawatt.md`). An IotaWatt
//! asks, over plain HTTP and with no headers worth reading:
//!
//! - `GET /firmware/versions.json` → `{"classes":{"MAJOR":…,"MINOR":…,"BETA":…,"ALPHA":…},
//!   "tables":…}`, and installs the release of its update class when it differs from what it
//!   runs;
//! - `GET /firmware/bin/{version}.bin` → the signed release blob (streamed: the device's HTTP
//!   client follows no redirects, and any other status makes it delete the download);
//! - `GET /download/tables/{version}.txt` → the tables file, when `tables` is newer than its own.
//!
//! A product becomes an IotaWatt product once it has an Ed25519 public key (`PUT
//! /api/v1/products/{product}/iotawatt`, see `otter_app::iotawatt`). versions.json lists the
//! newest release of each update class channel (`MAJOR`, `MINOR`, `BETA`, `ALPHA`) and of
//! `TABLES`. An IotaWatt does not say who it is, so a release under a rollout is listed only once
//! the rollout's current stage takes every device (docs/rollouts.md).
//!
//! Served at the root for `--iotawatt-product` (the paths the firmware has built in, with the
//! host pointed at otter), and under `/iotawatt/{product}/` for any IotaWatt product.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use otter_app::App;
use otter_app::index::ProductIndex;
use otter_app::iotawatt::{CLASSES, TABLES, not_iotawatt, public_key};
use otter_core::model::Artifact;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::download::serve_proxied;
use crate::error::{ApiError, ApiPath, ApiResult};

#[derive(Debug, Deserialize)]
pub struct Mount {
    product: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FilePath {
    product: Option<String>,
    file: String,
}

/// The IotaWatt product a request is for.
async fn resolve(app: &App, product: Option<&str>) -> ApiResult<Arc<ProductIndex>> {
    let name = match product {
        Some(name) => name,
        None => app.config.iotawatt_product.as_deref().ok_or_else(|| {
            ApiError::not_found(
                "not_found",
                "no IotaWatt product: start otter with --iotawatt-product",
            )
        })?,
    };
    let index = app.product(name).await?;
    public_key(&index).ok_or_else(|| not_iotawatt(name))?;
    Ok(index)
}

/// `GET …/firmware/versions.json`
pub async fn versions(
    State(app): State<App>,
    ApiPath(mount): ApiPath<Mount>,
) -> ApiResult<Response> {
    let index = resolve(&app, mount.product.as_deref()).await?;
    let newest = |channel: &str| {
        otter_app::rollouts::newest_for_anyone(&index, channel)
            .map(|r| Value::String(r.release.version.clone()))
    };
    let classes: Map<String, Value> = CLASSES
        .iter()
        .filter_map(|class| Some((class.to_string(), newest(class)?)))
        .collect();
    let mut body = json!({ "classes": classes });
    if let Some(tables) = newest(TABLES) {
        body["tables"] = tables;
    }
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body.to_string(),
    )
        .into_response())
}

/// A published, not yanked release of `index` on one of `channels`, named by `file` =
/// `{version}{extension}`.
fn release_file(
    index: &ProductIndex,
    file: &str,
    extension: &str,
    channels: &[&str],
) -> ApiResult<Artifact> {
    file.strip_suffix(extension)
        .and_then(|version| index.release(version))
        .filter(|r| !r.facts.yanked)
        .filter(|r| {
            r.release
                .channels
                .iter()
                .any(|c| channels.contains(&c.as_str()))
        })
        .map(|r| r.release.artifact.clone())
        .ok_or_else(|| ApiError::not_found("not_found", format!("no such file {file}")))
}

/// `GET …/firmware/bin/{version}.bin`
pub async fn binary(
    State(app): State<App>,
    ApiPath(path): ApiPath<FilePath>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let index = resolve(&app, path.product.as_deref()).await?;
    let artifact = release_file(&index, &path.file, ".bin", &CLASSES)?;
    drop(index);
    serve_proxied(&app, &artifact, &method, &headers).await
}

/// `GET …/download/tables/{version}.txt`
pub async fn tables(
    State(app): State<App>,
    ApiPath(path): ApiPath<FilePath>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let index = resolve(&app, path.product.as_deref()).await?;
    let artifact = release_file(&index, &path.file, ".txt", &[TABLES])?;
    drop(index);
    let mut response = serve_proxied(&app, &artifact, &method, &headers).await?;
    if response.status().is_success() {
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Ok(response)
}
