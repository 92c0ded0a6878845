//! Artifact uploads in one request: a raw `PUT` body or `multipart/form-data`. Both stream to the
//! staging area while hashing and become visible only once complete.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::header::CONTENT_LENGTH;
use axum::http::{HeaderMap, StatusCode};
use otter_core::model::{Artifact, sanitize_filename};
use otter_store::blob::StagedFile;
use otter_store::now;
use serde::Deserialize;

use crate::auth::Admin;
use crate::error::{ApiError, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    filename: Option<String>,
}

/// 201 for a new artifact, 200 when the same bytes were stored before.
type Stored = (StatusCode, Json<Artifact>);

/// `PUT /api/v1/artifacts?filename=fw.bin` with the image as the body.
pub async fn put_raw(
    _: Admin,
    State(state): State<AppState>,
    ApiQuery(query): ApiQuery<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Stored> {
    reject_oversized(&state, &headers)?;
    let staged = state
        .staging
        .ingest(body.into_data_stream(), state.config.max_upload)
        .await?;
    keep(
        &state,
        staged,
        query.filename.as_deref().unwrap_or_default(),
    )
    .await
}

/// `POST /api/v1/artifacts` as `multipart/form-data`; the first part with a file name is the image.
pub async fn post_multipart(
    _: Admin,
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Stored> {
    let (staged, filename) = ingest_first_file(&state, multipart).await?;
    keep(&state, staged, &filename).await
}

/// Streams the first file part of a `multipart/form-data` body (whatever its field name) into
/// staging; returns it with the file name it was sent under.
pub async fn ingest_first_file(
    state: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StagedFile, String)> {
    let mut multipart =
        multipart.map_err(|r| ApiError::bad_request("invalid_multipart", r.body_text()))?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request("invalid_multipart", e.body_text()))?
            .ok_or_else(|| {
                ApiError::bad_request("invalid_multipart", "the form has no file part")
            })?;
        let Some(filename) = field.file_name().map(str::to_owned) else {
            continue;
        };
        let staged = state.staging.ingest(field, state.config.max_upload).await?;
        return Ok((staged, filename));
    }
}

/// `GET /api/v1/artifacts/{sha256}`
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(sha256): ApiPath<String>,
) -> ApiResult<Json<Artifact>> {
    let sha256 = sha256.to_ascii_lowercase();
    state
        .store
        .get_artifact(&sha256)
        .await?
        .map(Json)
        .ok_or_else(|| artifact_not_found(&sha256))
}

pub fn artifact_not_found(sha256: &str) -> ApiError {
    ApiError::not_found(
        "artifact_not_found",
        format!("no artifact with SHA-256 {sha256}"),
    )
}

/// Refuses a body whose declared length is over the limit before reading any of it.
pub fn reject_oversized(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > state.config.max_upload => {
            Err(ApiError::payload_too_large(state.config.max_upload))
        }
        _ => Ok(()),
    }
}

/// Makes a staged upload an artifact: the bytes are committed first and the row written last, so
/// a crash in between leaves at worst an unreferenced blob, never a row without bytes.
pub async fn keep(state: &AppState, staged: StagedFile, filename: &str) -> ApiResult<Stored> {
    if let Some(existing) = state.store.get_artifact(&staged.digests.sha256).await?
        && state.blobs.exists(&existing.sha256).await?
    {
        state.staging.discard(staged).await;
        return Ok((StatusCode::OK, Json(existing)));
    }
    let artifact = Artifact {
        sha256: staged.digests.sha256.clone(),
        sha1: staged.digests.sha1.clone(),
        md5: staged.digests.md5.clone(),
        size: staged.digests.size,
        filename: sanitize_filename(filename),
        created_at: now(),
    };
    state.blobs.commit(staged).await?;
    let artifact = state.store.put_artifact(&artifact).await?;
    tracing::info!(sha256 = %artifact.sha256, size = artifact.size, "artifact stored");
    Ok((StatusCode::CREATED, Json(artifact)))
}

/// An artifact's bytes in memory, for the publish-time checks of signed image formats (images
/// of a few MiB; callers bound the size first).
pub async fn read_whole(state: &AppState, artifact: &Artifact) -> ApiResult<Vec<u8>> {
    use futures_util::TryStreamExt;
    state
        .blobs
        .open(&artifact.sha256, artifact.size, 0..artifact.size)
        .await?
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .map_err(ApiError::internal)
}
