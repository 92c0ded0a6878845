//! The stock Arduino OTA clients: ESP8266httpUpdate (ESP8266 core) and HTTPUpdate (ESP32 core),
//! at `GET /arduino/{product}/update`.
//!
//! The client sends what it runs in headers (`x-ESP8266-*` or `x-ESP32-*`: STA MAC, version when
//! the sketch passes one, sketch MD5, on the ESP32 also the sketch SHA-256, free sketch space,
//! mode) and understands only the status: 304 means nothing to do, 200 is the image itself, 403
//! and 404 are refusals it names, anything else is "wrong HTTP code". It does not follow
//! redirects unless the sketch asks, needs `Content-Length` (a chunked answer fails), and checks
//! the optional `x-MD5` (32 lower-case hex digits) after flashing. So the image is always
//! streamed from here, never redirected to.
//!
//! The device is identified by its sketch's MD5 (or SHA-256) when that names a release, else by
//! the version it sends (header, or `?version=` in the URL for sketches that put it there); the
//! update decision is otter's. The MAC becomes the device id in the device list.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use otter_app::devices::CheckIn;
use otter_app::{App, devices};
use otter_core::Decision;
use otter_core::digest::is_hex_digest;
use otter_core::model::{DEFAULT_CHANNEL, validate_device_id};
use serde::Deserialize;

use crate::download::serve_proxied;
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::peer::Peer;

#[derive(Debug, Deserialize)]
pub struct UpdateQuery {
    version: Option<String>,
    channel: Option<String>,
}

/// A header the ESP8266 core sends as `x-ESP8266-{name}` and the ESP32 core as `x-ESP32-{name}`.
fn esp_header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    ["x-ESP8266-", "x-ESP32-"]
        .into_iter()
        .find_map(|prefix| headers.get(format!("{prefix}{name}")))
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// What a device says about itself in its `x-ESP8266-*`/`x-ESP32-*` headers, checked.
#[derive(Debug, PartialEq, Eq)]
pub struct DeviceHeaders<'a> {
    /// The version it runs (header, else `?version=`).
    pub version: Option<&'a str>,
    /// The sketch's MD5 and SHA-256, when they are well-formed hex digests.
    pub md5: Option<&'a str>,
    pub sha256: Option<&'a str>,
    /// The STA MAC, a valid device id.
    pub mac: Option<&'a str>,
    /// Whether it asks for a sketch (not a filesystem image).
    pub sketch_mode: bool,
    /// Free sketch space, in bytes.
    pub free: Option<u64>,
}

/// Reads a request's device headers (outside input, so `fuzz/` checks this on its own); an
/// invalid MAC is a 400.
pub fn device_headers<'a>(
    headers: &'a HeaderMap,
    query_version: Option<&'a str>,
) -> ApiResult<DeviceHeaders<'a>> {
    let mac = esp_header(headers, "STA-MAC");
    if let Some(mac) = mac {
        validate_device_id("STA-MAC", mac)?;
    }
    Ok(DeviceHeaders {
        version: esp_header(headers, "version").or(query_version),
        md5: esp_header(headers, "sketch-md5").filter(|d| is_hex_digest(d, 32)),
        sha256: esp_header(headers, "sketch-sha256").filter(|d| is_hex_digest(d, 64)),
        mac,
        sketch_mode: esp_header(headers, "mode").is_none_or(|m| m == "sketch"),
        free: esp_header(headers, "free-space").and_then(|f| f.parse::<u64>().ok()),
    })
}

/// `GET /arduino/{product}/update`
pub async fn update(
    State(app): State<App>,
    ApiPath(name): ApiPath<String>,
    ApiQuery(query): ApiQuery<UpdateQuery>,
    method: Method,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let index = app.product(&name).await?;
    let channel = query.channel.as_deref().unwrap_or(DEFAULT_CHANNEL);
    let device = device_headers(&headers, query.version.as_deref())?;
    let DeviceHeaders {
        version,
        md5,
        sha256,
        mac,
        ..
    } = device;
    // The image's digest pins the release exactly; a version string is the sketch's own claim.
    let current = [md5, sha256]
        .into_iter()
        .flatten()
        .find(|digest| index.identify(digest).is_some())
        .or(version);
    let check = CheckIn {
        protocol: "arduino",
        device: mac,
        channel,
        current,
    };
    let decision = devices::decide(&app, &index, check).await?;
    if let Some(mac) = mac {
        let mut seen = index
            .sighting(mac.to_owned(), current, channel)
            .via("arduino", peer);
        if seen.current_version.is_none() {
            seen.current_version = version.map(str::to_owned);
        }
        seen.current_hash = seen.current_hash.or(md5.map(str::to_ascii_lowercase));
        app.seen.record(seen);
    }
    let Decision::Offer { index: i, .. } = decision else {
        return Ok(StatusCode::NOT_MODIFIED.into_response());
    };
    let artifact = index.releases[i].release.artifact.clone();
    drop(index);
    if let Some(free) = device
        .free
        .filter(|&free| device.sketch_mode && artifact.size > free)
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "insufficient_space",
            format!(
                "the update is {} bytes and the device has {free} bytes of free sketch space",
                artifact.size
            ),
        )
        .with("size", artifact.size)
        .with("freeSpace", free));
    }
    let mut response = serve_proxied(&app, &artifact, &method, &headers).await?;
    if let Ok(md5) = HeaderValue::from_str(&artifact.md5) {
        response.headers_mut().insert("x-MD5", md5);
    }
    Ok(response)
}
