//! Resumable upload sessions (`otter_app::uploads`) over HTTP: begin, status, chunks with
//! `?offset=N`, finalize, abort. Errors about the session's bytes carry its current `offset`.

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use otter_app::{App, uploads};
use otter_core::model::{Artifact, UploadSession};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::body::reject_oversized;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BeginUpload {
    size: u64,
    /// May wait for finalize, so a client can hash the image while sending it.
    sha256: Option<String>,
    filename: Option<String>,
}

/// The optional body of a finalize: the SHA-256 the client computed while sending, when the
/// session began without one.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinalizeUpload {
    sha256: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ChunkQuery {
    offset: Option<u64>,
}

/// `POST /api/v1/uploads`
#[utoipa::path(
    post,
    path = "/api/v1/uploads",
    summary = "Begin a resumable upload",
    tag = "uploads",
    request_body = BeginUpload,
    responses(
        (status = 201, body = UploadSession),
        (status = 413, description = "Larger than --max-artifact-size"),
    )
)]
pub async fn begin(
    _: Admin,
    State(app): State<App>,
    ApiJson(req): ApiJson<BeginUpload>,
) -> ApiResult<(StatusCode, AuditNote, Json<UploadSession>)> {
    let session = uploads::begin(
        &app,
        req.size,
        req.sha256.as_deref(),
        req.filename.as_deref(),
    )
    .await?;
    let note = AuditNote::target(&session.id)
        .with_summary(format!("{} ({} bytes)", session.filename, session.size));
    Ok((StatusCode::CREATED, note, Json(session)))
}

/// `GET /api/v1/uploads/{id}`
#[utoipa::path(
    get,
    path = "/api/v1/uploads/{id}",
    summary = "Get a resumable upload's state",
    tag = "uploads",
    responses(
        (status = 200, body = UploadSession),
    )
)]
pub async fn status(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<UploadSession>> {
    Ok(Json(uploads::status(&app, &id).await?))
}

/// `PUT /api/v1/uploads/{id}?offset=N` with the chunk as the body.
#[utoipa::path(
    put,
    path = "/api/v1/uploads/{id}",
    summary = "Send the next bytes of a resumable upload",
    tag = "uploads",
    params(ChunkQuery),
    request_body(content(("application/octet-stream")), description = "The next bytes"),
    responses(
        (status = 200, body = UploadSession),
        (status = 409, description = "The offset is not the session's (the body's `offset` says where to go on)"),
    )
)]
pub async fn chunk(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ChunkQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadSession>> {
    reject_oversized(&app, &headers)?;
    let session = uploads::append(&app, &id, query.offset, body.into_data_stream()).await?;
    Ok(Json(session))
}

/// `POST /api/v1/uploads/{id}/finalize`, with no body or `{"sha256": …}`.
#[utoipa::path(
    post,
    path = "/api/v1/uploads/{id}/finalize",
    summary = "Finish a resumable upload",
    tag = "uploads",
    request_body(content = Option<FinalizeUpload>, description = "Optional"),
    responses(
        (status = 201, body = Artifact),
        (status = 409, description = "Bytes missing, or the SHA-256 does not match"),
    )
)]
pub async fn finalize(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Artifact>)> {
    let req: FinalizeUpload = if body.is_empty() {
        FinalizeUpload::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_json", e.to_string()))?
    };
    let kept = uploads::finalize(&app, &id, req.sha256.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(kept.artifact)))
}

/// `DELETE /api/v1/uploads/{id}`
#[utoipa::path(
    delete,
    path = "/api/v1/uploads/{id}",
    summary = "Abort a resumable upload",
    tag = "uploads",
    responses(
        (status = 204, description = "Aborted"),
    )
)]
pub async fn abort(
    _: Admin,
    State(app): State<App>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    uploads::abort(&app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
