//! Artifacts: image bytes addressed by their SHA-256. An upload streams to the staging area while
//! being hashed and becomes visible only once complete.

use std::fmt::Display;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use otter_core::model::{Artifact, sanitize_filename};
use otter_store::blob::StagedFile;
use otter_store::now;

use crate::{App, AppError, AppResult};

/// Refuses an upload whose declared length is over the limit before reading any of it.
pub fn check_declared_size(app: &App, declared: Option<u64>) -> AppResult<()> {
    match declared {
        Some(len) if len > app.config.max_upload => Err(AppError::too_large(app.config.max_upload)),
        _ => Ok(()),
    }
}

/// Streams an upload into staging, hashing it; fails past the upload limit.
pub async fn stage<S, E>(app: &App, body: S) -> AppResult<StagedFile>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Display,
{
    Ok(app.staging.ingest(body, app.config.max_upload).await?)
}

/// An artifact kept by [`keep`].
pub struct Kept {
    pub artifact: Artifact,
    /// `false` when the same bytes were stored before.
    pub new: bool,
}

/// Makes a staged upload an artifact: the bytes are committed first and the row written last, so
/// a crash in between leaves at worst an unreferenced blob, never a row without bytes.
pub async fn keep(app: &App, staged: StagedFile, filename: &str) -> AppResult<Kept> {
    if let Some(existing) = app.store.get_artifact(&staged.digests.sha256).await?
        && app.blobs.exists(&existing.sha256).await?
    {
        app.staging.discard(staged).await;
        return Ok(Kept {
            artifact: existing,
            new: false,
        });
    }
    let artifact = Artifact {
        sha256: staged.digests.sha256.clone(),
        sha1: staged.digests.sha1.clone(),
        md5: staged.digests.md5.clone(),
        size: staged.digests.size,
        filename: sanitize_filename(filename),
        created_at: now(),
    };
    app.blobs.commit(staged).await?;
    let artifact = app.store.put_artifact(&artifact).await?;
    tracing::info!(sha256 = %artifact.sha256, size = artifact.size, "artifact stored");
    Ok(Kept {
        artifact,
        new: true,
    })
}

/// The artifact with this SHA-256 (any case).
pub async fn get(app: &App, sha256: &str) -> AppResult<Artifact> {
    let sha256 = sha256.to_ascii_lowercase();
    app.store
        .get_artifact(&sha256)
        .await?
        .ok_or_else(|| AppError::artifact_not_found(&sha256))
}

/// An artifact's bytes in memory, for the publish-time checks of signed image formats (images
/// of a few MiB; callers bound the size first).
pub async fn read_whole(app: &App, artifact: &Artifact) -> AppResult<Vec<u8>> {
    app.blobs
        .open(&artifact.sha256, artifact.size, 0..artifact.size)
        .await?
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .map_err(AppError::internal)
}
