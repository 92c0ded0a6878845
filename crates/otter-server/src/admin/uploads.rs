//! Resumable upload sessions for large images over bad links.
//!
//! Begin with the expected size and SHA-256, send chunks with `?offset=N` (strictly in order; the
//! staged bytes are the authority on the offset), finalize to verify and publish the artifact
//! atomically. A chunk cut off mid-way keeps what arrived. Idle sessions expire.
//!
//! With blobs in a local directory a session is a file in the staging directory. With blobs in
//! an object store the chunks are objects in the bucket and the offset is derived by listing
//! them (see `otter_store::objects::ObjectSessions`), so any node behind a load balancer can
//! take any chunk, status or finalize of any session; [`Busy`] only keeps one node from
//! interleaving two requests of its own.

use std::collections::HashSet;
use std::sync::Mutex;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use otter_core::digest::is_hex_digest;
use otter_core::model::{UploadSession, sanitize_filename};
use otter_store::blob::IngestError;
use otter_store::{now, random_id};
use serde::Deserialize;

use super::artifacts::{keep, reject_oversized};
use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;

/// Sessions a request is working on; a second concurrent request on one session is refused
/// rather than interleaving bytes.
#[derive(Default)]
pub struct Busy(Mutex<HashSet<String>>);

/// Releases a [`Busy`] claim when dropped (also when the client disconnects mid-request).
pub struct Claim<'a> {
    busy: &'a Busy,
    id: String,
}

impl Busy {
    fn claim(&self, id: &str) -> ApiResult<Claim<'_>> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(id.to_owned()) {
            return Err(ApiError::conflict(
                "upload_busy",
                "another request is writing to this upload session",
            ));
        }
        Ok(Claim {
            busy: self,
            id: id.to_owned(),
        })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.busy
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BeginUpload {
    size: u64,
    sha256: String,
    filename: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkQuery {
    offset: Option<u64>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "upload_not_found",
        format!("no upload session {id:?} (finished, aborted or expired)"),
    )
}

/// The session with its offset read from the staged bytes.
async fn session(state: &AppState, id: &str) -> ApiResult<UploadSession> {
    let mut session = state
        .store
        .get_upload(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    session.offset = state.staging.session_len(id).await.map_err(|e| match e {
        otter_store::StoreError::NotFound => not_found(id),
        other => other.into(),
    })?;
    Ok(session)
}

/// `POST /api/v1/uploads`
pub async fn begin(
    _: Admin,
    State(state): State<AppState>,
    ApiJson(req): ApiJson<BeginUpload>,
) -> ApiResult<(StatusCode, Json<UploadSession>)> {
    if req.size > state.config.max_upload {
        return Err(ApiError::payload_too_large(state.config.max_upload));
    }
    if !is_hex_digest(&req.sha256, 64) {
        return Err(ApiError::bad_request(
            "invalid_field",
            "sha256 must be the image's SHA-256 as 64 hex characters",
        ));
    }
    let at = now();
    let session = UploadSession {
        id: random_id(),
        filename: sanitize_filename(req.filename.as_deref().unwrap_or_default()),
        size: req.size,
        sha256: req.sha256.to_ascii_lowercase(),
        offset: 0,
        created_at: at,
        updated_at: at,
    };
    state.staging.create_session(&session.id).await?;
    state.store.create_upload(&session).await?;
    tracing::info!(upload = %session.id, size = session.size, "upload session started");
    Ok((StatusCode::CREATED, Json(session)))
}

/// `GET /api/v1/uploads/{id}`
pub async fn status(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<UploadSession>> {
    Ok(Json(session(&state, &id).await?))
}

/// `PUT /api/v1/uploads/{id}?offset=N` with the chunk as the body.
pub async fn chunk(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(query): ApiQuery<ChunkQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<UploadSession>> {
    reject_oversized(&state, &headers)?;
    let _claim = state.busy_uploads.claim(&id)?;
    let mut session = session(&state, &id).await?;
    let offset = query.offset.ok_or_else(|| {
        ApiError::bad_request("invalid_query", "a chunk needs ?offset=<byte offset>")
    })?;
    if offset != session.offset {
        return Err(ApiError::conflict(
            "offset_mismatch",
            format!(
                "the session holds {} bytes; send the chunk that starts there",
                session.offset
            ),
        )
        .with("offset", session.offset));
    }
    let (len, result) = state
        .staging
        .append(&id, offset, body.into_data_stream(), session.size)
        .await;
    session.offset = len;
    session.updated_at = now();
    state
        .store
        .set_upload_offset(&id, len, session.updated_at)
        .await?;
    match result {
        Ok(()) => Ok(Json(session)),
        Err(IngestError::TooLarge { .. }) => Err(ApiError::bad_request(
            "chunk_too_large",
            format!(
                "the chunk would pass the session's size of {} bytes",
                session.size
            ),
        )
        .with("offset", len)),
        Err(e) => Err(ApiError::from(e).with("offset", len)),
    }
}

/// `POST /api/v1/uploads/{id}/finalize`
pub async fn finalize(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<otter_core::model::Artifact>)> {
    let _claim = state.busy_uploads.claim(&id)?;
    let session = session(&state, &id).await?;
    if session.offset != session.size {
        return Err(ApiError::conflict(
            "upload_incomplete",
            format!("{} of {} bytes received", session.offset, session.size),
        )
        .with("offset", session.offset));
    }
    let staged = state.staging.seal_session(&id).await?;
    state.store.delete_upload(&id).await?;
    // A sealed local session is already out of the way; chunks in a bucket go now.
    state.staging.remove_session(&id).await;
    if staged.digests.sha256 != session.sha256 {
        let actual = staged.digests.sha256.clone();
        state.staging.discard(staged).await;
        return Err(ApiError::bad_request(
            "checksum_mismatch",
            format!(
                "the bytes have SHA-256 {actual}, not {}; the session was discarded",
                session.sha256
            ),
        ));
    }
    keep(&state, staged, &session.filename)
        .await
        .map(|(_, artifact)| (StatusCode::CREATED, artifact))
}

/// `DELETE /api/v1/uploads/{id}`
pub async fn abort(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let _claim = state.busy_uploads.claim(&id)?;
    session(&state, &id).await?;
    state.store.delete_upload(&id).await?;
    state.staging.remove_session(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes sessions idle for longer than the upload TTL, and chunks in the bucket that no
/// session owns any more (left by a node that died mid-way). Runs periodically.
pub async fn expire_idle(state: &AppState) -> otter_store::Result<usize> {
    match state.staging.sweep_objects(&*state.store).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(objects = n, "removed leftovers of interrupted uploads"),
        Err(e) => tracing::warn!(error = %e, "could not sweep upload leftovers in the bucket"),
    }
    let cutoff = now() - state.config.upload_ttl.as_secs() as i64;
    let idle = state.store.idle_uploads(cutoff).await?;
    for id in &idle {
        // A session being written to right now is not idle.
        if let Ok(_claim) = state.busy_uploads.claim(id) {
            state.store.delete_upload(id).await?;
            state.staging.remove_session(id).await;
            tracing::info!(upload = %id, "idle upload session expired");
        }
    }
    Ok(idle.len())
}
