//! ota-backend's `/v1` API (LuKks/ota-backend), as its scripts and devices use it.
//!
//! A "firmware" is an otter product with the `opaque` scheme, named by its random id, whose key
//! is stored hashed. Each upload becomes the product's newest release; devices name what they run
//! by the SHA-1 of the image, and the update decision is otter's own (so yanking a release
//! through the admin API also moves ota-backend devices off it). Device access is the product's
//! admission rules ([`otter_core::access`]), kept in the check index: `/v1/firewall/allow all`
//! makes the product `open`, `/v1/firewall/deny all` puts it back in the `allowlist` mode a new
//! firmware starts in.
//!
//! Compatibility follows the real server's code where it differs from its README
//! (`docs/protocols/ota-backend.md`): `GET` and `POST` both work for check and download,
//! check answers the bare hash as text (or `{"hash":…}` to clients that accept JSON), errors are
//! tiny-error-http's `{"error":<status>,"code":"<CODE>","message":""}`, pretty-printed. Its bugs
//! are not reproduced: earlier uploads stay downloadable by their hash, re-uploading the same
//! bytes is harmless, an upload over `--max-upload` is refused with 413 instead of being
//! truncated, and an unsatisfiable `Range` gets 416.

use axum::Extension;
use axum::Form;
use axum::body::Bytes;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{ConnectInfo, FromRequest, Multipart, Request, State};
use axum::http::header::{ACCEPT, CONTENT_RANGE, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use otter_app::devices::CheckIn;
use otter_app::index::ProductIndex;
use otter_app::settings::OtaCreate;
use otter_app::tokens::{matches_hash, token_hash};
use otter_app::{App, AppError, artifacts, devices, products, registry, releases};
use otter_core::Decision;
use otter_core::access::Access;
use otter_core::model::{DEFAULT_CHANNEL, NewRelease, Role, validate_device_id};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::auth::authenticate;
use crate::body::{reject_oversized, stage_first_file};
use crate::download::serve_proxied;
use crate::error::{ApiError, ApiPath};
use crate::peer::Peer;

/// An error in tiny-error-http's format.
#[derive(Debug)]
pub struct OtaError {
    status: StatusCode,
    code: String,
    message: String,
    /// `Retry-After`, for rate-limit refusals.
    retry_after: Option<HeaderValue>,
}

type OtaResult<T> = Result<T, OtaError>;

impl OtaError {
    fn new(status: StatusCode, code: &str) -> Self {
        OtaError {
            status,
            code: code.to_owned(),
            message: String::new(),
            retry_after: None,
        }
    }

    fn invalid_auth() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "INVALID_AUTH")
    }

    /// A required header or field is missing (the real server's yup validation error).
    fn required(field: &str) -> Self {
        OtaError {
            message: format!("{field} is a required field"),
            ..Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST")
        }
    }
}

/// otter's own errors (a bad upload, a store failure) keep their status; the code becomes
/// tiny-error-http's upper case.
impl From<ApiError> for OtaError {
    fn from(e: ApiError) -> Self {
        let retry_after = e.retry_after();
        let message = if e.status.is_server_error() {
            "Internal error".to_owned()
        } else {
            e.message
        };
        OtaError {
            status: e.status,
            code: e.code.to_ascii_uppercase(),
            message,
            retry_after,
        }
    }
}

impl From<AppError> for OtaError {
    fn from(e: AppError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for OtaError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.status.as_u16(),
            "code": self.code,
            "message": self.message,
        });
        let mut response = (self.status, pretty(&body)).into_response();
        if let Some(wait) = self.retry_after {
            response.headers_mut().insert(RETRY_AFTER, wait);
        }
        response
    }
}

/// JSON the way the real server (Express with `json spaces: 2`) writes it.
fn pretty(body: &Value) -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        serde_json::to_string_pretty(body).unwrap_or_default(),
    )
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> OtaResult<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OtaError::required(name))
}

/// With `--ota-secret` set, every request must carry it in `x-ota-secret`.
fn check_secret(app: &App, headers: &HeaderMap) -> OtaResult<()> {
    let Some(secret) = &app.config.ota_secret else {
        return Ok(());
    };
    if matches_hash(
        header(headers, "x-ota-secret")?,
        &token_hash(secret.expose()),
    ) {
        Ok(())
    } else {
        Err(OtaError::invalid_auth())
    }
}

/// The firmware named by `x-ota-firmware-id`, if `x-ota-firmware-key` is its key.
async fn firmware(app: &App, headers: &HeaderMap) -> OtaResult<Arc<ProductIndex>> {
    check_secret(app, headers)?;
    let id = header(headers, "x-ota-firmware-id")?;
    let key = header(headers, "x-ota-firmware-key")?;
    let index = app
        .find_product(id)
        .await?
        .ok_or_else(OtaError::invalid_auth)?;
    if products::key_opens(app, id, key).await? {
        Ok(index)
    } else {
        Err(OtaError::invalid_auth())
    }
}

/// The firmware named by `x-ota-firmware-id` and the device of `x-ota-device-id`, if the
/// firmware's firewall lets the device in. Answered from the check index.
async fn device(app: &App, headers: &HeaderMap) -> OtaResult<(Arc<ProductIndex>, String)> {
    check_secret(app, headers)?;
    let id = header(headers, "x-ota-firmware-id")?;
    let device = header(headers, "x-ota-device-id")?;
    validate_device_id("x-ota-device-id", device).map_err(|e| OtaError {
        message: e.to_string(),
        ..OtaError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST")
    })?;
    let index = app
        .find_product(id)
        .await?
        .ok_or_else(OtaError::invalid_auth)?;
    if !index.devices.admits(device) {
        return Err(OtaError::invalid_auth());
    }
    Ok((index, device.to_owned()))
}

/// `POST /v1/create` → `{"id","key"}`. With `--ota-secret` set, the secret or an admin token
/// is needed; without, an admin token unless `--ota-create open` lets anyone in.
pub async fn create(
    State(app): State<App>,
    remote: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> OtaResult<Response> {
    // Creating a firmware creates a product: an admin token may, a lesser one counts as none.
    let remote = remote.map(|Extension(ConnectInfo(addr))| addr);
    let admin = authenticate(&app, &headers, remote).is_ok_and(|actor| actor.role == Role::Admin);
    if !admin {
        if app.config.ota_secret.is_none() && app.config.ota_create == OtaCreate::Admin {
            return Err(OtaError {
                message: "creating a firmware needs an admin token (Authorization: Bearer …), \
                          or OTA_SECRET, or otter serve --ota-create open"
                    .to_owned(),
                ..OtaError::new(StatusCode::FORBIDDEN, "CREATE_CLOSED")
            });
        }
        check_secret(&app, &headers)?;
    }
    let id = z_base_32(&random_bytes::<16>());
    let key = z_base_32(&random_bytes::<32>());
    products::create_keyed(&app, &id, &key).await?;
    tracing::info!(product = %id, "ota-backend firmware created");
    Ok(pretty(&json!({ "id": id, "key": key })))
}

#[derive(Debug, Deserialize)]
pub struct FirewallBody {
    device_id: Option<String>,
}

/// `POST /v1/firewall/allow` with `{"device_id": …}` (`all`: any device).
pub async fn allow(
    State(app): State<App>,
    headers: HeaderMap,
    request: Request,
) -> OtaResult<Response> {
    set_access(app, headers, request, Access::Allow).await
}

/// `POST /v1/firewall/deny` with `{"device_id": …}` (`all`: remove the "any device" rule).
pub async fn deny(
    State(app): State<App>,
    headers: HeaderMap,
    request: Request,
) -> OtaResult<Response> {
    set_access(app, headers, request, Access::Deny).await
}

async fn set_access(
    app: App,
    headers: HeaderMap,
    request: Request,
    access: Access,
) -> OtaResult<Response> {
    let index = firmware(&app, &headers).await?;
    let device = device_id_of(request).await?;
    validate_device_id("device_id", &device).map_err(|e| OtaError {
        message: e.to_string(),
        ..OtaError::required("device_id")
    })?;
    registry::set_rule(&app, &index.product.name, &device, Some(access)).await?;
    Ok(pretty(&Value::Null))
}

/// The `device_id` of a JSON or URL-encoded body, as the real server's body parsers accept.
async fn device_id_of(request: Request) -> OtaResult<String> {
    let form = request.headers().get(CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes()
            .starts_with(b"application/x-www-form-urlencoded")
    });
    let body = if form {
        Form::<FirewallBody>::from_request(request, &())
            .await
            .map(|f| f.0)
            .ok()
    } else {
        let bytes = Bytes::from_request(request, &()).await.unwrap_or_default();
        serde_json::from_slice::<FirewallBody>(&bytes).ok()
    };
    body.and_then(|b| b.device_id)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| OtaError::required("device_id"))
}

/// `POST /v1/upload` (multipart, the first file part) → `{"hash":"<sha1>"}`: the image becomes
/// the firmware's newest release. Uploading the bytes of the newest release again changes
/// nothing; uploading an older image again makes it the newest.
pub async fn upload(
    State(app): State<App>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> OtaResult<Response> {
    let index = firmware(&app, &headers).await?;
    reject_oversized(&app, &headers)?;
    let (staged, filename) = stage_first_file(&app, multipart).await?;
    let artifact = artifacts::keep(&app, staged, &filename).await?.artifact;
    let product = &index.product.name;
    let newest = index.latest(DEFAULT_CHANNEL);
    if newest.is_none_or(|r| r.release.artifact.sha256 != artifact.sha256) {
        // Versions are never reused: an image uploaded again gets a suffix.
        let version = (1..)
            .map(|n| match n {
                1 => artifact.sha1.clone(),
                n => format!("{}-{n}", artifact.sha1),
            })
            .find(|v| index.release(v).is_none())
            .unwrap_or_default();
        let new = NewRelease {
            version,
            artifact: artifact.sha256.clone(),
            ..NewRelease::default()
        };
        releases::publish(&app, product, new).await?;
    }
    Ok(pretty(&json!({ "hash": artifact.sha1 })))
}

/// `GET|POST /v1/check`: a device that does not say what it runs.
pub async fn check_unknown(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> OtaResult<Response> {
    check(&app, &headers, None, peer).await
}

/// `GET|POST /v1/check/{hash}`: a device running the image with that SHA-1.
pub async fn check_hash(
    State(app): State<App>,
    Peer(peer): Peer,
    headers: HeaderMap,
    ApiPath(hash): ApiPath<String>,
) -> OtaResult<Response> {
    check(&app, &headers, Some(&hash), peer).await
}

/// 200 with the hash to install, 204 when the device runs it, 404 before any upload.
async fn check(
    app: &App,
    headers: &HeaderMap,
    hash: Option<&str>,
    peer: Option<IpAddr>,
) -> OtaResult<Response> {
    let (index, device) = device(app, headers).await?;
    let check = CheckIn {
        protocol: "ota_backend",
        device: Some(&device),
        channel: DEFAULT_CHANNEL,
        current: hash,
    };
    let decision = devices::decide(app, &index, check).await?;
    app.seen.record(
        index
            .sighting(device, hash, DEFAULT_CHANNEL)
            .via("ota_backend", peer),
    );
    if index.newest(DEFAULT_CHANNEL).is_none() {
        return Err(OtaError::new(
            StatusCode::NOT_FOUND,
            "FIRMWARE_NOT_UPLOADED",
        ));
    }
    let Decision::Offer { index: i, .. } = decision else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let sha1 = &index.releases[i].release.artifact.sha1;
    let wants_json = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    if wants_json {
        return Ok(pretty(&json!({ "hash": sha1 })));
    }
    // As the real server's `res.send(string)`: the bare hash, typed as Express types strings.
    Ok((
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        )],
        sha1.clone(),
    )
        .into_response())
}

/// `GET|HEAD|POST /v1/download/{hash}`: the image of any non-yanked release of the firmware,
/// streamed (devices do not follow redirects), with ranges.
pub async fn download(
    State(app): State<App>,
    ApiPath(hash): ApiPath<String>,
    method: Method,
    headers: HeaderMap,
) -> OtaResult<Response> {
    let (index, _) = device(&app, &headers).await?;
    let artifact = index
        .identify(&hash)
        .filter(|r| !r.facts.yanked)
        .map(|r| r.release.artifact.clone())
        .ok_or_else(|| OtaError::new(StatusCode::NOT_FOUND, "FIRMWARE_NOT_AVAILABLE"))?;
    drop(index);
    let response = serve_proxied(&app, &artifact, &method, &headers).await?;
    if response.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(response);
    }
    // The shared download code answers in otter's format; keep this API's own.
    let mut refused =
        OtaError::new(StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_NOT_SATISFIABLE").into_response();
    if let Some(range) = response.headers().get(CONTENT_RANGE) {
        refused.headers_mut().insert(CONTENT_RANGE, range.clone());
    }
    Ok(refused)
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    bytes
}

/// z-base-32, the encoding of the real server's ids and keys (lower case, no padding).
fn z_base_32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";
    let mut out = String::with_capacity(bytes.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u16, 0u32);
    for &byte in bytes {
        buffer = (buffer << 8) | u16::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[usize::from((buffer >> bits) & 31)]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET[usize::from((buffer << (5 - bits)) & 31)],
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn z_base_32_matches_the_reference_vectors() {
        // From the z-base-32 specification (Zooko O'Whielacronx, 2002).
        assert_eq!(z_base_32(&[0xF0, 0xBF, 0xC7]), "6n9hq");
        assert_eq!(z_base_32(&[0xD4, 0x7A, 0x04]), "4t7ye");
        assert_eq!(z_base_32(&random_bytes::<16>()).len(), 26);
        assert_eq!(z_base_32(&random_bytes::<32>()).len(), 52);
    }
}
