//! IotaWatt's auto-update, self-hosted (shared/seeds/003, seed-protocols.md §4). An IotaWatt
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
//! /api/v1/products/{product}/iotawatt`). Its releases go to channels named after the update
//! classes (`MAJOR`, `MINOR`, `BETA`, `ALPHA`), whose newest release each is what versions.json
//! lists; the tables file goes to channel `TABLES`. Publishing a blob to a class checks it as
//! the device will: the layout, the release in its header against the version, and the
//! signature against the product's key; otherwise the release is refused.
//!
//! Served at the root for `--iotawatt-product` (the paths the firmware has built in, with the
//! host pointed at otter), and under `/iotawatt/{product}/` for any IotaWatt product.

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use otter_core::iotawatt::{self, BlobError};
use otter_core::model::Artifact;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::sync::Arc;

use crate::auth::Admin;
use crate::download::serve_proxied;
use crate::error::{ApiError, ApiJson, ApiPath, ApiResult};
use crate::index::ProductIndex;
use crate::state::AppState;

/// The kind of signing key IotaWatt products carry.
pub const KEY_KIND: &str = "iotawatt-ed25519";
/// The update classes a device can follow (NONE means it does not update).
pub const CLASSES: [&str; 4] = ["MAJOR", "MINOR", "BETA", "ALPHA"];
/// The channel tables files are published to.
pub const TABLES: &str = "TABLES";
/// The largest blob checked at publish (IotaWatt images are about 1 MiB).
const MAX_BLOB: u64 = 16 * 1024 * 1024;

pub fn routes() -> Router<AppState> {
    let device_paths = || {
        Router::new()
            .route("/firmware/versions.json", get(versions))
            .route("/firmware/bin/{file}", get(binary))
            .route("/download/tables/{file}", get(tables))
    };
    Router::new()
        .merge(device_paths())
        .nest("/iotawatt/{product}", device_paths())
        .route(
            "/api/v1/products/{product}/iotawatt",
            get(settings).put(configure),
        )
}

/// The product's IotaWatt public key, if it is an IotaWatt product.
pub fn public_key(index: &ProductIndex) -> Option<[u8; 32]> {
    index
        .signing_keys
        .iter()
        .find(|(kind, _)| kind == KEY_KIND)
        .and_then(|(_, key)| iotawatt::parse_public_key(key))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IotawattSettings {
    /// 64 hex digits, or the C array `otter iotawatt keygen` prints.
    public_key: String,
}

/// `PUT /api/v1/products/{product}/iotawatt` with `{"publicKey": …}`: makes the product an
/// IotaWatt product whose release blobs must verify with this key.
async fn configure(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
    ApiJson(settings): ApiJson<IotawattSettings>,
) -> ApiResult<Json<Value>> {
    crate::admin::product(&state, &product)?;
    let key = iotawatt::parse_public_key(&settings.public_key).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_public_key",
            "publicKey must be a 32-byte Ed25519 public key: 64 hex digits or the C array",
        )
    })?;
    let key = hex::encode(key);
    state
        .store
        .set_signing_key(&product, KEY_KIND, &key, otter_store::now())
        .await?;
    state.index.changed(&*state.store, &product).await?;
    tracing::info!(product = %product, public_key = %key, "IotaWatt signing key set");
    Ok(Json(json!({ "product": product, "publicKey": key })))
}

/// `GET /api/v1/products/{product}/iotawatt`
async fn settings(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let index = crate::admin::product(&state, &product)?;
    let key = public_key(&index).ok_or_else(|| not_iotawatt(&product))?;
    Ok(Json(
        json!({ "product": product, "publicKey": hex::encode(key) }),
    ))
}

fn not_iotawatt(product: &str) -> ApiError {
    ApiError::not_found(
        "not_iotawatt",
        format!("{product:?} is not an IotaWatt product (PUT /api/v1/products/{product}/iotawatt)"),
    )
}

/// Checks a release about to be published to an IotaWatt product, as the device will check it.
pub async fn check_release(
    state: &AppState,
    index: &ProductIndex,
    version: &str,
    channels: &[String],
    artifact: &Artifact,
) -> ApiResult<()> {
    let Some(key) = public_key(index) else {
        return Ok(());
    };
    let classes = channels
        .iter()
        .filter(|c| CLASSES.contains(&c.as_str()))
        .count();
    if channels.iter().any(|c| c == TABLES) {
        if channels.len() > 1 {
            return Err(ApiError::bad_request(
                "invalid_channel",
                "a tables file goes to channel TABLES alone",
            ));
        }
        return Ok(());
    }
    if classes != channels.len() {
        return Err(ApiError::bad_request(
            "invalid_channel",
            "IotaWatt releases go to the update classes MAJOR, MINOR, BETA, ALPHA (or TABLES)",
        ));
    }
    if artifact.size > MAX_BLOB {
        return Err(ApiError::bad_request(
            "invalid_blob",
            format!("an IotaWatt release blob is at most {MAX_BLOB} bytes"),
        ));
    }
    let blob = crate::admin::artifacts::read_whole(state, artifact).await?;
    let unpacked = iotawatt::verify(&blob, &key).map_err(|e| match e {
        BlobError::BadSignature => ApiError::bad_request(
            "invalid_signature",
            "the blob's signature does not verify with the product's IotaWatt public key",
        ),
        other => ApiError::bad_request("invalid_blob", other.to_string()),
    })?;
    if unpacked.version != version {
        return Err(ApiError::bad_request(
            "version_mismatch",
            format!(
                "the blob is release {:?} but is published as {version:?}; the device would refuse it",
                unpacked.version
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Mount {
    product: Option<String>,
}

#[derive(Debug, Deserialize)]
struct FilePath {
    product: Option<String>,
    file: String,
}

/// The IotaWatt product a request is for.
fn resolve(state: &AppState, product: Option<&str>) -> ApiResult<Arc<ProductIndex>> {
    let name = match product {
        Some(name) => name,
        None => state.config.iotawatt_product.as_deref().ok_or_else(|| {
            ApiError::not_found(
                "not_found",
                "no IotaWatt product: start otter with --iotawatt-product",
            )
        })?,
    };
    let index = crate::admin::product(state, name)?;
    public_key(&index).ok_or_else(|| not_iotawatt(name))?;
    Ok(index)
}

/// `GET …/firmware/versions.json`
async fn versions(
    State(state): State<AppState>,
    ApiPath(mount): ApiPath<Mount>,
) -> ApiResult<Response> {
    let index = resolve(&state, mount.product.as_deref())?;
    let scheme = index.product.scheme;
    let newest = |channel: &str| {
        otter_core::decision::newest(scheme, &index.releases, channel)
            .map(|i| Value::String(index.releases[i].release.version.clone()))
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
async fn binary(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<FilePath>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let index = resolve(&state, path.product.as_deref())?;
    let artifact = release_file(&index, &path.file, ".bin", &CLASSES)?;
    drop(index);
    serve_proxied(&state, &artifact, &method, &headers).await
}

/// `GET …/download/tables/{version}.txt`
async fn tables(
    State(state): State<AppState>,
    ApiPath(path): ApiPath<FilePath>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let index = resolve(&state, path.product.as_deref())?;
    let artifact = release_file(&index, &path.file, ".txt", &[TABLES])?;
    drop(index);
    let mut response = serve_proxied(&state, &artifact, &method, &headers).await?;
    if response.status().is_success() {
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    Ok(response)
}
