//! hawkBit's Direct Device Integration API (`docs/protocols/hawkbit-ddi.md`), at hawkBit's own
//! paths so SWUpdate's suricatta, rauc-hawkbit-updater, Zephyr and the `hawkbit` crate need no
//! change but the server URL:
//!
//! - `GET /{tenant}/controller/v1/{controllerId}`: the poll (`config.polling.sleep`, links to
//!   `deploymentBase`, `cancelAction`, `configData`, `installedBase`),
//! - `GET …/deploymentBase/{actionId}` and `POST …/deploymentBase/{actionId}/feedback`,
//! - `GET …/cancelAction/{actionId}` and `POST …/cancelAction/{actionId}/feedback`,
//! - `GET …/installedBase/{actionId}`, `PUT …/configData`,
//! - `GET …/artifacts/{sha256}` (with the product's `tokenDownloads`) and
//!   `GET …/artifacts/{sha256}.MD5SUM`.
//!
//! Only the JSON shapes and the `Authorization` header are read here; who the controller is,
//! its actions and what feedback means are [`otter_app::ddi`]'s. Bodies are read as clients
//! really send them: `id` a number, a string or `""`, `time` in hawkBit's compact form or
//! missing, `mode` null, `details` with blank lines; unknown fields are ignored.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use otter_app::App;
use otter_app::ddi::{
    self, Controller, Credential, Execution, Feedback, Finished, Mode, PollAction,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::download::{serve_proxied, url_base};
use crate::error::{ApiError, ApiPath, ApiResult};
use crate::peer::Peer;

/// `/{tenant}/controller/v1/{controllerId}`
#[derive(Debug, Deserialize)]
pub struct Target {
    tenant: String,
    #[serde(rename = "controllerId")]
    controller_id: String,
}

/// `…/{controllerId}/{kind}/{actionId}`
#[derive(Debug, Deserialize)]
pub struct ActionPath {
    #[serde(flatten)]
    target: Target,
    #[serde(rename = "actionId")]
    action_id: String,
}

/// `…/{controllerId}/artifacts/{file}`
#[derive(Debug, Deserialize)]
pub struct ArtifactPath {
    #[serde(flatten)]
    target: Target,
    file: String,
}

/// The credentials in `Authorization`; an unknown scheme is refused, never taken as anonymous.
fn credential(headers: &HeaderMap) -> ApiResult<Credential<'_>> {
    match headers.get(AUTHORIZATION) {
        None => Ok(Credential::None),
        Some(value) => parse_authorization(value.to_str().unwrap_or_default()),
    }
}

/// Reads `TargetToken <token>` or `GatewayToken <token>` (the scheme in any case); anything else
/// is 401 `ddi_unauthorized`. Fuzzed (`fuzz/fuzz_targets/ddi.rs`).
pub fn parse_authorization(value: &str) -> ApiResult<Credential<'_>> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    match scheme {
        _ if token.is_empty() => Err(unauthorized()),
        s if s.eq_ignore_ascii_case("TargetToken") => Ok(Credential::Target(token)),
        s if s.eq_ignore_ascii_case("GatewayToken") => Ok(Credential::Gateway(token)),
        _ => Err(unauthorized()),
    }
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "ddi_unauthorized",
        "send Authorization: TargetToken <device token> or GatewayToken <product token>",
    )
}

async fn controller(app: &App, target: &Target, headers: &HeaderMap) -> ApiResult<Controller> {
    // The tenant only appears in links otter writes: keep it to what a URL carries as is.
    otter_core::model::validate_name("tenant", &target.tenant)?;
    Ok(ddi::authenticate(
        app,
        &target.tenant,
        &target.controller_id,
        credential(headers)?,
    )
    .await?)
}

/// `{base}/{tenant}/controller/v1/{controllerId}`: what every link starts with.
fn root(app: &App, headers: &HeaderMap, target: &Target) -> String {
    format!(
        "{}/{}/controller/v1/{}",
        url_base(app, headers),
        target.tenant,
        target.controller_id
    )
}

fn json_answer(body: Value) -> Response {
    (
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("application/hal+json"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body.to_string(),
    )
        .into_response()
}

/// hawkBit's `HH:MM:SS`.
fn sleep(seconds: u32) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

/// The `?c=` of a deploymentBase link: changes whenever the action (or its release) does, so a
/// client that caches by URL fetches the new one.
fn change_mark(id: i64, version: &str) -> String {
    let digest = Sha256::digest(format!("{id}/{version}").as_bytes());
    hex::encode(&digest[..8])
}

/// `GET /{tenant}/controller/v1/{controllerId}`
pub async fn poll(
    State(app): State<App>,
    ApiPath(target): ApiPath<Target>,
    Peer(peer): Peer,
    request: Request,
) -> ApiResult<Response> {
    let headers = request.headers();
    let c = controller(&app, &target, headers).await?;
    let poll = ddi::poll(&app, &c, peer).await?;
    let root = root(&app, headers, &target);
    let mut links = Map::new();
    match &poll.action {
        Some(PollAction::Deploy(a)) => {
            let href = format!(
                "{root}/deploymentBase/{}?c={}",
                a.id,
                change_mark(a.id, &a.version)
            );
            links.insert("deploymentBase".into(), json!({ "href": href }));
        }
        Some(PollAction::Cancel(a)) => {
            let href = format!("{root}/cancelAction/{}", a.id);
            links.insert("cancelAction".into(), json!({ "href": href }));
        }
        None => {}
    }
    if poll.wants_config {
        links.insert(
            "configData".into(),
            json!({ "href": format!("{root}/configData") }),
        );
    }
    if let Some(id) = poll.installed {
        links.insert(
            "installedBase".into(),
            json!({ "href": format!("{root}/installedBase/{id}") }),
        );
    }
    Ok(json_answer(json!({
        "config": {"polling": {"sleep": sleep(poll.sleep_seconds)}},
        "_links": links,
    })))
}

/// `GET …/deploymentBase/{actionId}`
pub async fn deployment_base(
    State(app): State<App>,
    ApiPath(path): ApiPath<ActionPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = controller(&app, &path.target, &headers).await?;
    let deployment = ddi::deployment(&app, &c, &path.action_id).await?;
    Ok(json_answer(
        deployment_json(&app, &c, &headers, &path.target, &deployment).await?,
    ))
}

/// `GET …/installedBase/{actionId}`: the same shape, for an installed action.
pub async fn installed_base(
    State(app): State<App>,
    ApiPath(path): ApiPath<ActionPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = controller(&app, &path.target, &headers).await?;
    let deployment = ddi::installed(&app, &c, &path.action_id).await?;
    Ok(json_answer(
        deployment_json(&app, &c, &headers, &path.target, &deployment).await?,
    ))
}

/// A deployment as hawkBit writes it: one chunk, the release's one artifact with all three
/// hashes and both download links.
async fn deployment_json(
    app: &App,
    c: &Controller,
    headers: &HeaderMap,
    target: &Target,
    d: &ddi::Deployment,
) -> ApiResult<Value> {
    let release = &d.release.release;
    let artifact = &release.artifact;
    let root = root(app, headers, target);
    let download = if ddi::options(app, &c.index.product.name)
        .await?
        .token_downloads
    {
        format!("{root}/artifacts/{}", artifact.sha256)
    } else {
        format!("{}/dl/{}", url_base(app, headers), artifact.sha256)
    };
    let handling = if d.forced { "forced" } else { "attempt" };
    let mut deployment = json!({
        "download": handling,
        "update": handling,
        "chunks": [{
            "part": "os",
            "version": release.version,
            "name": release.product,
            "artifacts": [{
                "filename": artifact.filename,
                "size": artifact.size,
                "hashes": {"sha1": artifact.sha1, "md5": artifact.md5, "sha256": artifact.sha256},
                "_links": {
                    "download": {"href": download},
                    "download-http": {"href": download},
                    "md5sum-http": {"href": format!("{root}/artifacts/{}.MD5SUM", artifact.sha256)},
                },
            }],
        }],
    });
    if let Some(open) = d.window_open {
        deployment["maintenanceWindow"] = json!(if open { "available" } else { "unavailable" });
    }
    Ok(json!({
        "id": d.action.id.to_string(),
        "deployment": deployment,
        "actionHistory": {
            "status": d.action.state.as_str(),
            "messages": d.action.execution.iter().collect::<Vec<_>>(),
        },
    }))
}

/// A feedback or configData body's `status`, as clients send it.
#[derive(Debug, Deserialize)]
struct Status {
    execution: Execution,
    result: StatusResult,
    /// Lines of text; SWUpdate sends `[""]`, others numbers now and then.
    #[serde(default)]
    details: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct StatusResult {
    finished: Finished,
}

/// `POST …/feedback`'s body. `id` (a number, a string or `""`) and `time` are read by no one:
/// the path names the action, and otter times what it records itself.
#[derive(Debug, Deserialize)]
struct FeedbackBody {
    status: Status,
}

/// A body that is not the JSON expected: 400 `invalid_json`. The content type is not checked:
/// clients send what they send.
fn invalid_json(e: serde_json::Error) -> ApiError {
    ApiError::bad_request("invalid_json", e.to_string())
}

/// Reads a feedback body (of a deployment or a cancel) as clients send it. Fuzzed
/// (`fuzz/fuzz_targets/ddi.rs`).
pub fn parse_feedback(body: &[u8]) -> ApiResult<Feedback> {
    let body: FeedbackBody = serde_json::from_slice(body).map_err(invalid_json)?;
    Ok(body.status.into())
}

/// Reads a configData body: the attributes and how they change the stored ones. Fuzzed
/// (`fuzz/fuzz_targets/ddi.rs`).
pub fn parse_config_data(body: &[u8]) -> ApiResult<(Map<String, Value>, Mode)> {
    let body: ConfigDataBody = serde_json::from_slice(body).map_err(invalid_json)?;
    Ok((body.data, body.mode.unwrap_or_default()))
}

impl From<Status> for Feedback {
    fn from(status: Status) -> Self {
        Feedback {
            execution: status.execution,
            finished: status.result.finished,
            details: status
                .details
                .into_iter()
                .filter_map(|d| match d {
                    Value::String(s) => Some(s),
                    Value::Null => None,
                    other => Some(other.to_string()),
                })
                .filter(|d| !d.trim().is_empty())
                .collect(),
        }
    }
}

/// `POST …/deploymentBase/{actionId}/feedback`
pub async fn deployment_feedback(
    State(app): State<App>,
    ApiPath(path): ApiPath<ActionPath>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let c = controller(&app, &path.target, &headers).await?;
    ddi::feedback(&app, &c, &path.action_id, parse_feedback(&body)?).await?;
    Ok(StatusCode::OK)
}

/// `GET …/cancelAction/{actionId}`: otter cancels with the action's own id.
pub async fn cancel_action(
    State(app): State<App>,
    ApiPath(path): ApiPath<ActionPath>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = controller(&app, &path.target, &headers).await?;
    let action = ddi::action(&app, &c, &path.action_id).await?;
    let id = action.id.to_string();
    Ok(json_answer(
        json!({"id": id, "cancelAction": {"stopId": id}}),
    ))
}

/// `POST …/cancelAction/{actionId}/feedback`
pub async fn cancel_feedback(
    State(app): State<App>,
    ApiPath(path): ApiPath<ActionPath>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let c = controller(&app, &path.target, &headers).await?;
    ddi::cancel_feedback(&app, &c, &path.action_id, parse_feedback(&body)?).await?;
    Ok(StatusCode::OK)
}

/// `PUT …/configData`'s body; `status` is not needed (configData has no action).
#[derive(Debug, Deserialize)]
struct ConfigDataBody {
    #[serde(default)]
    data: Map<String, Value>,
    /// `merge` when missing or null.
    #[serde(default)]
    mode: Option<Mode>,
}

/// `PUT …/configData`
pub async fn config_data(
    State(app): State<App>,
    ApiPath(target): ApiPath<Target>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let c = controller(&app, &target, &headers).await?;
    let (data, mode) = parse_config_data(&body)?;
    ddi::config_data(&app, &c, data, mode).await?;
    Ok(StatusCode::OK)
}

/// `GET …/artifacts/{sha256}` (the image, with the controller's token) and
/// `…/artifacts/{sha256}.MD5SUM` (`<md5>  <filename>`, as `md5sum` prints it).
pub async fn artifact(
    State(app): State<App>,
    ApiPath(path): ApiPath<ArtifactPath>,
    method: Method,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let c = controller(&app, &path.target, &headers).await?;
    let (sha256, md5sum) = match path.file.strip_suffix(".MD5SUM") {
        Some(sha256) => (sha256, true),
        None => (path.file.as_str(), false),
    };
    let not_found = || ApiError::not_found("artifact_not_found", "no such artifact");
    // Only the artifacts of the controller's own product's releases, never a yanked one.
    let artifact = c
        .index
        .releases
        .iter()
        .filter(|r| !r.release.yanked)
        .map(|r| &r.release.artifact)
        .find(|a| a.sha256.eq_ignore_ascii_case(sha256))
        .ok_or_else(not_found)?;
    if md5sum {
        return Ok((
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}  {}\n", artifact.md5, artifact.filename),
        )
            .into_response());
    }
    // Streamed, never redirected, as in every device protocol.
    serve_proxied(&app, artifact, &method, &headers).await
}
