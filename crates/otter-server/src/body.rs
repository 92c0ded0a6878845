//! Upload bodies, shared by every API that takes an image: a declared length checked before
//! reading, and the first file of a `multipart/form-data` form.

use axum::extract::Multipart;
use axum::extract::multipart::MultipartRejection;
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use otter_app::App;
use otter_store::blob::StagedFile;

use crate::error::{ApiError, ApiResult};

/// Refuses a body whose declared length is over the upload limit before reading any of it.
pub fn reject_oversized(app: &App, headers: &HeaderMap) -> ApiResult<()> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    Ok(otter_app::artifacts::check_declared_size(app, declared)?)
}

/// Streams the first file part of a `multipart/form-data` body (whatever its field name) into
/// staging; returns it with the file name it was sent under.
pub async fn stage_first_file(
    app: &App,
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
        let staged = otter_app::artifacts::stage(app, field).await?;
        return Ok((staged, filename));
    }
}
