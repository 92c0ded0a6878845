//! Resumable upload sessions for large images over bad links.
//!
//! Begin with the expected size and SHA-256 (or give the SHA-256 at finalize, so a client can hash
//! while it sends), append chunks at the session's offset (strictly in order; the staged bytes are
//! the authority on the offset), finalize to verify and keep the artifact atomically. A chunk cut off mid-way keeps what arrived. Idle sessions expire.
//!
//! With blobs in a local directory a session is a file in the staging directory. With blobs in
//! an object store the chunks are objects in the bucket and the offset is derived by listing
//! them (see `otter_store::objects::ObjectSessions`), so any node behind a load balancer can
//! take any chunk, status or finalize of any session; [`Busy`] only keeps one node from
//! interleaving two requests of its own.

use std::collections::HashSet;
use std::fmt::Display;
use std::sync::Mutex;

use bytes::Bytes;
use futures_util::Stream;
use otter_core::digest::is_hex_digest;
use otter_core::model::{UploadSession, sanitize_filename};
use otter_store::blob::IngestError;
use otter_store::{StoreError, now, random_id};

use crate::artifacts::Kept;
use crate::{App, AppError, AppResult};

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
    fn claim(&self, id: &str) -> AppResult<Claim<'_>> {
        let mut set = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(id.to_owned()) {
            return Err(AppError::conflict(
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

fn not_found(id: &str) -> AppError {
    AppError::not_found(
        "upload_not_found",
        format!("no upload session {id:?} (finished, aborted or expired)"),
    )
}

/// The session with its offset read from the staged bytes.
pub async fn status(app: &App, id: &str) -> AppResult<UploadSession> {
    let mut session = app
        .store
        .get_upload(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    session.offset = app.staging.session_len(id).await.map_err(|e| match e {
        StoreError::NotFound => not_found(id),
        other => other.into(),
    })?;
    Ok(session)
}

/// The SHA-256 a client claims, checked and lowercased.
fn claimed_sha256(sha256: &str) -> AppResult<String> {
    if !is_hex_digest(sha256, 64) {
        return Err(AppError::invalid(
            "invalid_field",
            "sha256 must be the image's SHA-256 as 64 hex characters",
        ));
    }
    Ok(sha256.to_ascii_lowercase())
}

/// Starts a session for an image of `size` bytes with this SHA-256; without one (kept as an
/// empty string) finalize must bring it.
pub async fn begin(
    app: &App,
    size: u64,
    sha256: Option<&str>,
    filename: Option<&str>,
) -> AppResult<UploadSession> {
    if size > app.config.max_upload {
        return Err(AppError::too_large(app.config.max_upload));
    }
    let sha256 = sha256.map(claimed_sha256).transpose()?.unwrap_or_default();
    let at = now();
    let session = UploadSession {
        id: random_id(),
        filename: sanitize_filename(filename.unwrap_or_default()),
        size,
        sha256,
        offset: 0,
        created_at: at,
        updated_at: at,
    };
    app.staging.create_session(&session.id).await?;
    app.store.create_upload(&session).await?;
    tracing::info!(upload = %session.id, size = session.size, "upload session started");
    Ok(session)
}

/// Appends a chunk that starts at `offset`, which must be what the session holds. What arrives
/// of a chunk cut off mid-way is kept; the error then says where to resume.
pub async fn append<S, E>(
    app: &App,
    id: &str,
    offset: Option<u64>,
    body: S,
) -> AppResult<UploadSession>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    let _claim = app.busy_uploads.claim(id)?;
    let mut session = status(app, id).await?;
    let offset = offset
        .ok_or_else(|| AppError::invalid("invalid_query", "a chunk needs ?offset=<byte offset>"))?;
    if offset != session.offset {
        return Err(AppError::conflict(
            "offset_mismatch",
            format!(
                "the session holds {} bytes; send the chunk that starts there",
                session.offset
            ),
        )
        .at_offset(session.offset));
    }
    let (len, result) = app.staging.append(id, offset, body, session.size).await;
    session.offset = len;
    session.updated_at = now();
    app.store
        .set_upload_offset(id, len, session.updated_at)
        .await?;
    match result {
        Ok(()) => Ok(session),
        Err(IngestError::TooLarge { .. }) => Err(AppError::invalid(
            "chunk_too_large",
            format!(
                "the chunk would pass the session's size of {} bytes",
                session.size
            ),
        )
        .at_offset(len)),
        Err(e) => Err(AppError::from(e).at_offset(len)),
    }
}

/// Verifies a complete session against its SHA-256 (given at begin, or now as `sha256`) and keeps
/// it as an artifact.
pub async fn finalize(app: &App, id: &str, sha256: Option<&str>) -> AppResult<Kept> {
    let _claim = app.busy_uploads.claim(id)?;
    let mut session = status(app, id).await?;
    let claimed = sha256.map(claimed_sha256).transpose()?;
    match claimed {
        Some(claimed) if session.sha256.is_empty() => session.sha256 = claimed,
        Some(claimed) if claimed != session.sha256 => {
            return Err(AppError::invalid(
                "invalid_field",
                format!(
                    "the session began with SHA-256 {}, not {claimed}",
                    session.sha256
                ),
            ));
        }
        Some(_) => {}
        None if session.sha256.is_empty() => {
            return Err(AppError::invalid(
                "invalid_field",
                "the session began without a sha256: finalize with {\"sha256\": …}",
            ));
        }
        None => {}
    }
    if session.offset != session.size {
        return Err(AppError::conflict(
            "upload_incomplete",
            format!("{} of {} bytes received", session.offset, session.size),
        )
        .at_offset(session.offset));
    }
    let staged = app.staging.seal_session(id).await?;
    app.store.delete_upload(id).await?;
    // A sealed local session is already out of the way; chunks in a bucket go now.
    app.staging.remove_session(id).await;
    if staged.digests.sha256 != session.sha256 {
        let actual = staged.digests.sha256.clone();
        app.staging.discard(staged).await;
        return Err(AppError::invalid(
            "checksum_mismatch",
            format!(
                "the bytes have SHA-256 {actual}, not {}; the session was discarded",
                session.sha256
            ),
        ));
    }
    crate::artifacts::keep(app, staged, &session.filename).await
}

/// Abandons a session and what it holds.
pub async fn abort(app: &App, id: &str) -> AppResult<()> {
    let _claim = app.busy_uploads.claim(id)?;
    status(app, id).await?;
    app.store.delete_upload(id).await?;
    app.staging.remove_session(id).await;
    Ok(())
}

/// Deletes sessions idle for longer than the upload TTL, and chunks in the bucket that no
/// session owns any more (left by a node that died mid-way). Runs periodically.
pub async fn expire_idle(app: &App) -> AppResult<usize> {
    match app.staging.sweep_objects(&*app.store).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(objects = n, "removed leftovers of interrupted uploads"),
        Err(e) => tracing::warn!(error = %e, "could not sweep upload leftovers in the bucket"),
    }
    let cutoff = now() - app.config.upload_ttl.as_secs() as i64;
    let idle = app.store.idle_uploads(cutoff).await?;
    for id in &idle {
        // A session being written to right now is not idle.
        if let Ok(_claim) = app.busy_uploads.claim(id) {
            app.store.delete_upload(id).await?;
            app.staging.remove_session(id).await;
            tracing::info!(upload = %id, "idle upload session expired");
        }
    }
    Ok(idle.len())
}
