//! The firmware manifest contract (`docs/protocols/manifest.md`), per product under `/m/{product}` and, for
//! the product named by `--default-product`, at the contract's own root paths:
//!
//! - `GET /api/firmware/latest`: the newest release that is neither deprecated nor yanked,
//! - `GET /api/firmware/check?current=…`: `{"hasUpdate":false}` or `{"hasUpdate":true,
//!   "manifest":{…}}`, decided by otter's update rules (so `minSourceVersion` chains hop by hop),
//!   the manifest carrying `delta` when `current` is the base of a ready patch (`docs/deltas.md`),
//! - `GET /api/firmware/{version}`: one release's manifest (yanked ones are gone),
//! - `GET /firmware/{product}-{version}.bin`: the image, streamed with `Content-Length`, `ETag`,
//!   `Last-Modified` and ranges (the contract's device streams it straight into `Update.h`).
//!
//! JSON answers carry `Cache-Control: public, max-age=300` (`private` without `--public-url`,
//! since their URLs then come from the request's `Host`); every answer carries
//! `Access-Control-Allow-Origin: *`, and `OPTIONS` is answered as a CORS preflight. Manifests are
//! serialised when the catalogue changes, not per request.

use axum::extract::{Request, State};
use axum::http::header::{
    ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_MAX_AGE, CACHE_CONTROL, CONTENT_TYPE,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use otter_app::devices::CheckIn;
use otter_app::index::{IndexedRelease, ProductIndex};
use otter_app::{App, answers, devices};
use otter_core::model::DEFAULT_CHANNEL;
use otter_core::{Decision, Scheme, Version};
use serde::Deserialize;

use std::sync::Arc;

use crate::download::{serve_proxied, url_base, url_cache_control};
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};

/// `GET` (and so `HEAD`) plus the CORS preflight.
pub fn route<H, T>(handler: H) -> MethodRouter<App>
where
    H: axum::handler::Handler<T, App>,
    T: 'static,
{
    get(handler).options(preflight)
}

async fn preflight(headers: HeaderMap) -> Response {
    let allow_headers = headers
        .get("access-control-request-headers")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static("*"));
    (
        StatusCode::NO_CONTENT,
        [
            (
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, OPTIONS"),
            ),
            (ACCESS_CONTROL_ALLOW_HEADERS, allow_headers),
            (ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400")),
        ],
    )
        .into_response()
}

/// The contract's read endpoints need no authentication and may be called from any web page.
pub async fn allow_any_origin(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    response
        .headers_mut()
        .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    response
}

/// `{product}` when mounted under `/m/{product}`; nothing at the root paths.
#[derive(Debug, Deserialize)]
pub struct Mount {
    product: Option<String>,
}

/// The product a request is about, and the prefix its `binaryUrl`s get.
async fn resolve(app: &App, mount: &Mount) -> ApiResult<(Arc<ProductIndex>, String)> {
    let (name, prefix) = match &mount.product {
        Some(name) => (name.as_str(), format!("/m/{name}")),
        None => (
            app.config.default_product.as_deref().ok_or_else(|| {
                not_found("No default product: start otter with --default-product")
            })?,
            String::new(),
        ),
    };
    let index = app
        .find_product(name)
        .await?
        .ok_or_else(|| not_found(format!("No firmware product {name}")))?;
    Ok((index, prefix))
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::not_found("not_found", message)
}

fn no_manifest(version: &str) -> ApiError {
    not_found(format!("No firmware manifest for version {version}"))
}

/// A JSON answer with the contract's headers.
fn json_response(app: &App, body: String) -> Response {
    (
        [
            (CONTENT_TYPE, "application/json".to_owned()),
            (CACHE_CONTROL, url_cache_control(app, "max-age=300")),
        ],
        body,
    )
        .into_response()
}

/// The download base of `binaryUrl`s: the public URL (or the request's host) and the mount.
fn base(app: &App, headers: &HeaderMap, prefix: &str) -> String {
    url_base(app, headers) + prefix
}

/// `GET …/api/firmware/latest`
pub async fn latest(
    State(app): State<App>,
    ApiPath(mount): ApiPath<Mount>,
    ApiQuery(channel): ApiQuery<ChannelQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (index, prefix) = resolve(&app, &mount).await?;
    let release = index
        .latest(channel.channel())
        .ok_or_else(|| not_found("No firmware has been released yet"))?;
    Ok(json_response(
        &app,
        release.manifest().render(&base(&app, &headers, &prefix)),
    ))
}

#[derive(Debug, Deserialize)]
pub struct ChannelQuery {
    channel: Option<String>,
}

impl ChannelQuery {
    fn channel(&self) -> &str {
        self.channel.as_deref().unwrap_or(DEFAULT_CHANNEL)
    }
}

#[derive(Debug, Deserialize)]
pub struct CheckQuery {
    current: Option<String>,
    channel: Option<String>,
}

/// `GET …/api/firmware/check?current=…`
pub async fn check(
    State(app): State<App>,
    ApiPath(mount): ApiPath<Mount>,
    ApiQuery(query): ApiQuery<CheckQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (index, prefix) = resolve(&app, &mount).await?;
    let current = query.current.as_deref().unwrap_or_default();
    validate_current(&index, current)?;
    let channel = query.channel.as_deref().unwrap_or(DEFAULT_CHANNEL);
    let check = CheckIn {
        protocol: "manifest",
        device: None,
        channel,
        current: Some(current),
    };
    let decision = devices::decide(&app, &index, check).await?;
    let body = match decision {
        Decision::Offer { index: i, .. } => {
            let mut manifest = index.releases[i]
                .manifest()
                .render(&base(&app, &headers, &prefix));
            // Patches are downloaded from `/dl/{sha256}`, outside the mount.
            if let Some(delta) = index.delta(Some(current), i, &url_base(&app, &headers)) {
                answers::insert_delta(&mut manifest, 1, &delta);
            }
            format!(r#"{{"hasUpdate":true,"manifest":{manifest}}}"#)
        }
        Decision::UpToDate | Decision::NoPath => r#"{"hasUpdate":false}"#.to_owned(),
    };
    Ok(json_response(&app, body))
}

/// Refuses a malformed `current` with the contract's 400, naming the format the product's
/// versions follow.
fn validate_current(index: &ProductIndex, current: &str) -> ApiResult<()> {
    let scheme = index.product.scheme;
    let (valid, expected) = match scheme {
        // The contract's own versions: when a lexical product's releases are all date stamps, a
        // device must report one too.
        Scheme::Lexical
            if index
                .releases
                .iter()
                .all(|r| is_date_stamp(&r.release.version)) =>
        {
            (is_date_stamp(current), "Expected format vYYYYMMDDHHMM")
        }
        Scheme::Semver => (
            Version::parse(scheme, current).is_ok(),
            "Expected format MAJOR.MINOR.PATCH (a semantic version such as 1.4.2)",
        ),
        _ => (
            Version::parse(scheme, current).is_ok(),
            "Expected a version of 1-64 characters from A-Z a-z 0-9 . _ + ~ -",
        ),
    };
    if valid {
        Ok(())
    } else {
        Err(ApiError::bad_request("invalid_version", expected))
    }
}

/// `vYYYYMMDDHHMM`, the contract's version format.
fn is_date_stamp(version: &str) -> bool {
    version
        .strip_prefix('v')
        .is_some_and(|digits| digits.len() == 12 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// A release devices may still fetch: published and not yanked.
fn published<'a>(index: &'a ProductIndex, version: &str) -> Option<&'a IndexedRelease> {
    index.release(version).filter(|r| !r.facts.yanked)
}

#[derive(Debug, Deserialize)]
pub struct VersionPath {
    product: Option<String>,
    version: String,
}

/// `GET …/api/firmware/{version}`
pub async fn by_version(
    State(app): State<App>,
    ApiPath(path): ApiPath<VersionPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mount = Mount {
        product: path.product,
    };
    let (index, prefix) = resolve(&app, &mount).await?;
    let release = published(&index, &path.version).ok_or_else(|| no_manifest(&path.version))?;
    Ok(json_response(
        &app,
        release.manifest().render(&base(&app, &headers, &prefix)),
    ))
}

#[derive(Debug, Deserialize)]
pub struct FilePath {
    product: Option<String>,
    file: String,
}

/// `GET …/firmware/{product}-{version}.bin`, always streamed: the contract's client fetches
/// `binaryUrl` once, without following redirects, and checks `Content-Length`.
pub async fn binary(
    State(app): State<App>,
    ApiPath(path): ApiPath<FilePath>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mount = Mount {
        product: path.product,
    };
    let (index, _) = resolve(&app, &mount).await?;
    let version = path
        .file
        .strip_prefix(&index.product.name)
        .and_then(|rest| rest.strip_prefix('-'))
        .and_then(|rest| rest.strip_suffix(".bin"))
        .ok_or_else(|| not_found(format!("No firmware image {}", path.file)))?;
    let artifact = published(&index, version)
        .map(|r| r.release.artifact.clone())
        .ok_or_else(|| not_found(format!("No firmware image {}", path.file)))?;
    drop(index);
    serve_proxied(&app, &artifact, &method, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_stamps() {
        assert!(is_date_stamp("v202605221130"));
        assert!(!is_date_stamp("v20260522113"));
        assert!(!is_date_stamp("202605221130"));
        assert!(!is_date_stamp("v2026052211a0"));
        assert!(!is_date_stamp("v2026052211300"));
    }
}
