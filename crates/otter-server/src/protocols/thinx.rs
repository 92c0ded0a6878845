//! THiNX's device API (suculent/thinx-device-api), as its ESP8266/ESP32 client library speaks it:
//!
//! - `POST /device/register` (`Authentication: <api key>`, `{"registration":{mac, version, udid,
//!   owner, alias, platform, …}}`) registers or updates the device and answers `status: "OK"`,
//!   or `status: "FIRMWARE_UPDATE"` with a one-time token when an update is available and the
//!   device has auto-update on, or the request says `"forced": true`;
//! - `GET /device/firmware?ott=…` downloads the image with the token, no other credentials (the
//!   client fetches it with ESP8266httpUpdate, so it is always streamed, never redirected);
//! - `POST /device/firmware` (`{mac, udid, owner, forced?, use?}`, bare or inside
//!   `registration`) answers the image right away, or `{"ott","url"}` with `"use":"ott"`.
//!
//! The product is the one the API key belongs to; the device id is the UDID (assigned at the
//! first registration when the device has none: derived from its MAC, so a device that lost its
//! UDID gets the same one back). One-time tokens follow [`otter_core::ott`]. Errors keep THiNX's
//! strings (`{"success":false,"response":"<string>"}`, a few raw) but with honest 4xx statuses
//! where THiNX answers 200.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::header::{
    CONNECTION, CONTENT_DISPOSITION, CONTENT_RANGE, CONTENT_TYPE, RETRY_AFTER,
};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use otter_app::devices::CheckIn;
use otter_app::index::{IndexedRelease, ProductIndex};
use otter_app::tokens::{self, OttRefusal};
use otter_app::{App, AppError, devices};
use otter_core::Decision;
use otter_core::model::{Artifact, DEFAULT_CHANNEL, Device, validate_device_id};
use otter_core::version::MAX_VERSION_LEN;
use otter_store::now;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use crate::download::{Delivery, serve_proxied, url_base};
use crate::error::{ApiError, ApiQuery};
use crate::peer::Peer;

/// A THiNX error: `{"success":false,"response":"<string>"}`, or the bare string where THiNX
/// sends one (its own tests assert those bodies).
#[derive(Debug)]
pub struct ThinxError {
    status: StatusCode,
    response: String,
    raw: bool,
    /// `Retry-After`, for rate-limit refusals.
    retry_after: Option<HeaderValue>,
}

type ThinxResult<T> = Result<T, ThinxError>;

impl ThinxError {
    fn new(status: StatusCode, response: &str) -> Self {
        ThinxError {
            status,
            response: response.to_owned(),
            raw: false,
            retry_after: None,
        }
    }

    fn raw(status: StatusCode, response: &str) -> Self {
        ThinxError {
            raw: true,
            ..Self::new(status, response)
        }
    }
}

/// otter's own refusals (a bad version, a store failure) keep their status and code.
impl From<ApiError> for ThinxError {
    fn from(e: ApiError) -> Self {
        ThinxError {
            retry_after: e.retry_after(),
            ..ThinxError::new(e.status, e.code)
        }
    }
}

impl From<AppError> for ThinxError {
    fn from(e: AppError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for ThinxError {
    fn into_response(self) -> Response {
        if self.raw {
            return (
                self.status,
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                self.response,
            )
                .into_response();
        }
        let body = json!({ "success": false, "response": self.response });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, wait);
        }
        response
    }
}

/// The product whose API key is in `Authentication` (THiNX's header name; not
/// `Authorization`).
async fn product_of_key(
    app: &App,
    headers: &HeaderMap,
    refusal: &str,
) -> ThinxResult<Arc<ProductIndex>> {
    let key = headers
        .get("authentication")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let index = match key {
        Some(key) => app.product_for_api_key(key).await?,
        None => None,
    };
    index.ok_or_else(|| ThinxError::new(StatusCode::UNAUTHORIZED, refusal))
}

/// The fields of a registration (or a firmware request) otter uses; the rest is ignored.
#[derive(Debug, Default, Deserialize)]
pub struct Registration {
    mac: Option<String>,
    udid: Option<String>,
    version: Option<String>,
    firmware: Option<String>,
    owner: Option<String>,
    alias: Option<String>,
    platform: Option<String>,
    /// A digest of the running image, when the client sends one.
    checksum: Option<String>,
    /// `true` or `"true"`: install even without auto-update (and reinstall when up to date).
    forced: Option<Value>,
    /// `"ott"`: answer a token instead of the image (`POST /device/firmware`).
    #[serde(rename = "use")]
    use_: Option<String>,
}

/// Longest MAC address kept (THiNX sends 12-17 characters; room for other notations).
const MAX_MAC_LEN: usize = 64;
/// Longest free-text field kept (`alias`, `owner`, `platform`, `firmware`).
const MAX_TEXT_LEN: usize = 256;
/// Longest digest: SHA-512 in hex.
const MAX_CHECKSUM_LEN: usize = 128;

impl Registration {
    /// Refuses fields longer than otter keeps (they end up in the device list), 400
    /// `field_too_long` in THiNX's format; the UDID is held to device-id rules where it is used.
    fn check_lengths(&self) -> ThinxResult<()> {
        let limits = [
            (&self.mac, MAX_MAC_LEN),
            (&self.version, MAX_VERSION_LEN),
            (&self.firmware, MAX_TEXT_LEN),
            (&self.owner, MAX_TEXT_LEN),
            (&self.alias, MAX_TEXT_LEN),
            (&self.platform, MAX_TEXT_LEN),
            (&self.checksum, MAX_CHECKSUM_LEN),
            (&self.use_, MAX_TEXT_LEN),
        ];
        if limits
            .iter()
            .any(|(field, max)| field.as_ref().is_some_and(|f| f.chars().count() > *max))
        {
            return Err(ThinxError::new(StatusCode::BAD_REQUEST, "field_too_long"));
        }
        Ok(())
    }

    fn forced(&self) -> bool {
        matches!(&self.forced, Some(Value::Bool(true)))
            || matches!(&self.forced, Some(Value::String(s)) if s == "true")
    }

    fn mac(&self) -> Option<&str> {
        self.mac.as_deref().map(str::trim).filter(|m| !m.is_empty())
    }

    /// The device's UDID: the one it sent, else one derived from its MAC (stable across
    /// registrations), else a new random one.
    fn udid(&self, product: &str) -> String {
        if let Some(udid) = self
            .udid
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
        {
            return udid.to_owned();
        }
        let seed: [u8; 16] = match self.mac() {
            Some(mac) => {
                let digest =
                    Sha256::digest(format!("thinx:{product}:{}", mac.to_ascii_uppercase()));
                digest[..16].try_into().unwrap_or_default()
            }
            None => {
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
                bytes
            }
        };
        uuid(seed)
    }

    /// What the device says about itself, kept as the device's attributes.
    fn attributes(&self) -> Value {
        let fields = [
            ("mac", &self.mac),
            ("alias", &self.alias),
            ("owner", &self.owner),
            ("platform", &self.platform),
            ("firmware", &self.firmware),
        ];
        Value::Object(
            fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), Value::String(v.clone()?))))
                .collect::<Map<_, _>>(),
        )
    }
}

/// A UUID (version 4 layout) from 16 bytes: THiNX UDIDs are 36-character UUIDs.
fn uuid(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The request's fields inside `registration`, or (unless `wrapped` is required) bare.
fn parse_body(body: Result<Bytes, BytesRejection>, wrapped: bool) -> ThinxResult<Registration> {
    // axum's own refusal (a body over its 2 MB limit) would be plain text; a THiNX client
    // reads JSON.
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ThinxError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
        }
        _ => ThinxError::new(StatusCode::BAD_REQUEST, "request_invalid"),
    })?;
    parse_registration(&body, wrapped)
}

/// A registration (or firmware request) body as a device sent it, fields within otter's caps;
/// the pure half of [`parse_body`], which `fuzz/` checks on its own.
pub fn parse_registration(body: &[u8], wrapped: bool) -> ThinxResult<Registration> {
    let invalid = || ThinxError::new(StatusCode::BAD_REQUEST, "request_invalid");
    if body.is_empty() {
        return Err(ThinxError::new(StatusCode::BAD_REQUEST, "no_body"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| invalid())?;
    let fields = match value.get("registration") {
        Some(inner) if inner.as_object().is_some_and(|o| !o.is_empty()) => inner.clone(),
        _ if wrapped => return Err(invalid()),
        _ => value,
    };
    let reg: Registration = serde_json::from_value(fields).map_err(|_| invalid())?;
    reg.check_lengths()?;
    Ok(reg)
}

/// What the device runs, as the update decision reads it: a checksum naming a release, else the
/// version it reports.
fn current<'a>(index: &ProductIndex, reg: &'a Registration) -> Option<&'a str> {
    reg.checksum
        .as_deref()
        .filter(|c| index.identify(c).is_some())
        .or(reg.version.as_deref().filter(|v| !v.is_empty()))
}

/// The release to install: the offer, or with `forced` the newest release even when the device
/// runs it already.
async fn target<'a>(
    app: &App,
    index: &'a ProductIndex,
    udid: &str,
    current: Option<&str>,
    forced: bool,
) -> ThinxResult<Option<&'a IndexedRelease>> {
    let check = CheckIn {
        protocol: "thinx",
        device: Some(udid),
        channel: DEFAULT_CHANNEL,
        current,
    };
    let decision = devices::decide(app, index, check).await?;
    Ok(match decision {
        Decision::Offer { index: i, .. } => Some(&index.releases[i]),
        _ if forced => index.latest(DEFAULT_CHANNEL),
        _ => None,
    })
}

fn token_url(app: &App, headers: &HeaderMap, token: &str) -> String {
    format!("{}/device/firmware?ott={token}", url_base(app, headers))
}

/// `POST /device/register`
pub async fn register(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ThinxResult<Response> {
    let reg = parse_body(body, true)?;
    let index = product_of_key(&app, &headers, "authentication_error").await?;
    let product = index.product.name.clone();
    let udid = reg.udid(&product);
    validate_device_id("udid", &udid).map_err(ApiError::from)?;
    let current = current(&index, &reg);
    let forced = reg.forced();
    let target = target(&app, &index, &udid, current, forced).await?;
    let device = devices::get(&app, &product, &udid).await?;
    let auto_update = device.as_ref().is_some_and(|d| d.auto_update);
    app.device_changed(&index, &udid, current, DEFAULT_CHANNEL);
    let mut seen = index
        .sighting(udid.clone(), current, DEFAULT_CHANNEL)
        .via("thinx", peer);
    seen.attributes = Some(reg.attributes());
    app.seen.record(seen);

    let target = target.filter(|_| auto_update || forced);
    let timestamp = now();
    let registration = match target {
        Some(target) => {
            let release = &target.release;
            let token = tokens::issue_ott(&app, &product, &udid, &release.artifact).await?;
            tracing::info!(product = %product, device = %udid, version = %release.version, "THiNX update offered");
            json!({
                "status": "FIRMWARE_UPDATE",
                "auto_update": auto_update,
                "alias": reg.alias,
                "mesh_ids": [],
                "udid": udid,
                "timestamp": timestamp,
                "ott": token,
                "url": token_url(&app, &headers, &token),
                "mac": reg.mac,
                "version": release.version,
            })
        }
        None => json!({
            "success": true,
            "status": "OK",
            "auto_update": auto_update,
            "owner": reg.owner,
            "alias": reg.alias,
            "mesh_ids": [],
            "udid": udid,
            "timestamp": timestamp,
        }),
    };
    Ok(axum::Json(json!({ "registration": registration })).into_response())
}

#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    ott: Option<String>,
}

/// `GET /device/firmware?ott=…`: the image, for the holder of a valid token. Every request
/// (ranges included) counts as a use; the token is spent once a response has sent the image's
/// last byte.
pub async fn firmware_by_token(
    State(app): State<App>,
    ApiQuery(query): ApiQuery<TokenQuery>,
    method: Method,
    headers: HeaderMap,
) -> ThinxResult<Response> {
    let token = query
        .ott
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ThinxError::new(StatusCode::BAD_REQUEST, "OTT_MISSING"))?;
    let opened = match tokens::use_ott(&app, &token, method == Method::GET).await? {
        Ok(opened) => opened,
        Err(OttRefusal::Unknown) => {
            return Err(ThinxError::raw(
                StatusCode::NOT_FOUND,
                "OTT_UPDATE_NOT_FOUND",
            ));
        }
        Err(OttRefusal::Used) => {
            return Err(ThinxError::raw(StatusCode::GONE, "OTT_UPDATE_NOT_FOUND"));
        }
        Err(OttRefusal::Withdrawn) => {
            return Err(ThinxError::new(
                StatusCode::NOT_FOUND,
                "OTT_UPDATE_NOT_AVAILABLE",
            ));
        }
    };
    let size = opened.artifact.size;
    let response = image(&app, &opened.artifact, &method, &headers).await?;
    if method != Method::GET || !reaches_the_end(&response, size) {
        return Ok(response);
    }
    // Spend the token once the answer's last byte has gone to the connection; a download cut
    // short leaves it usable (within its hour) to resume or retry.
    if let Some(delivery) = response.extensions().get::<Delivery>() {
        delivery.when_sent(move || opened.spend(&app));
    }
    Ok(response)
}

/// Whether a download answer carries the image's last byte.
fn reaches_the_end(response: &Response, size: u64) -> bool {
    match response.status() {
        StatusCode::OK => true,
        StatusCode::PARTIAL_CONTENT => response
            .headers()
            .get(CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split_once('/'))
            .and_then(|(range, _)| range.split_once('-'))
            .and_then(|(_, end)| end.parse::<u64>().ok())
            .is_some_and(|end| end + 1 == size),
        _ => false,
    }
}

/// The image as THiNX serves it: streamed, `firmware.bin`, with `x-MD5`.
async fn image(
    app: &App,
    artifact: &Artifact,
    method: &Method,
    headers: &HeaderMap,
) -> ThinxResult<Response> {
    let mut response = serve_proxied(app, artifact, method, headers).await?;
    let h = response.headers_mut();
    h.insert(
        CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=firmware.bin"),
    );
    if let Ok(md5) = HeaderValue::from_str(&artifact.md5) {
        h.insert("x-MD5", md5);
    }
    Ok(response)
}

/// `POST /device/firmware`: the image now, or with `"use":"ott"` a token for it.
pub async fn firmware(
    State(app): State<App>,
    method: Method,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ThinxResult<Response> {
    let reg = parse_body(body, false)?;
    if reg.mac().is_none() {
        return Err(ThinxError::new(StatusCode::BAD_REQUEST, "missing_mac"));
    }
    let index = product_of_key(&app, &headers, "authentication").await?;
    let product = index.product.name.clone();
    let udid = reg.udid(&product);
    let device: Device = devices::get(&app, &product, &udid)
        .await?
        .ok_or_else(|| ThinxError::raw(StatusCode::NOT_FOUND, "no_such_device"))?;
    let current = device
        .current_hash
        .as_deref()
        .filter(|h| index.identify(h).is_some())
        .or(device.current_version.as_deref());
    let Some(target) = target(&app, &index, &udid, current, reg.forced()).await? else {
        // THiNX's "nothing to install" answer.
        return Ok(axum::Json(json!({"success": false, "status": "OK"})).into_response());
    };
    let artifact = target.release.artifact.clone();
    drop(index);
    if reg.use_.as_deref() == Some("ott") {
        let token = tokens::issue_ott(&app, &product, &udid, &artifact).await?;
        let url = token_url(&app, &headers, &token);
        return Ok(axum::Json(json!({ "ott": token, "url": url })).into_response());
    }
    let mut response = image(&app, &artifact, &method, &headers).await?;
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udids_are_uuids_stable_per_mac() {
        let reg = |mac: Option<&str>| Registration {
            mac: mac.map(str::to_owned),
            ..Registration::default()
        };
        let a = reg(Some("5c:cf:7f:12:34:56")).udid("p");
        assert_eq!(a.len(), 36);
        assert_eq!(a.as_bytes()[14], b'4', "version 4 layout: {a}");
        assert_eq!(
            a,
            reg(Some("5C:CF:7F:12:34:56")).udid("p"),
            "MAC case does not matter"
        );
        assert_ne!(a, reg(Some("5C:CF:7F:12:34:57")).udid("p"));
        assert_ne!(a, reg(Some("5C:CF:7F:12:34:56")).udid("q"));
        assert_ne!(reg(None).udid("p"), reg(None).udid("p"));
    }
}
