//! Artifact uploads in one request: a raw `PUT` body or `multipart/form-data`. Both stream to the
//! staging area while hashing and become visible only once complete.

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use otter_app::App;
use otter_app::artifacts::{self, Kept};
use otter_core::model::Artifact;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::body::{reject_oversized, stage_first_file};
use crate::error::{ApiPath, ApiQuery, ApiResult};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    filename: Option<String>,
}

/// 201 for a new artifact, 200 when the same bytes were stored before.
type Stored = (StatusCode, AuditNote, Json<Artifact>);

fn stored(kept: Kept) -> Stored {
    let status = if kept.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let note = AuditNote::target(&kept.artifact.sha256).with_summary(format!(
        "{} ({} bytes){}",
        kept.artifact.filename,
        kept.artifact.size,
        if kept.new { "" } else { ", stored before" }
    ));
    (status, note, Json(kept.artifact))
}

/// `PUT /api/v1/artifacts?filename=fw.bin` with the image as the body.
#[utoipa::path(
    put,
    path = "/api/v1/artifacts",
    summary = "Upload an image (raw body)",
    tag = "artifacts",
    params(PutQuery),
    request_body(content(("application/octet-stream")), description = "The image"),
    responses(
        (status = 201, description = "Stored", body = Artifact),
        (status = 200, description = "The same bytes were stored before", body = Artifact),
        (status = 413, description = "Larger than --max-artifact-size"),
    )
)]
pub async fn put_raw(
    _: Admin,
    State(app): State<App>,
    ApiQuery(query): ApiQuery<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Stored> {
    reject_oversized(&app, &headers)?;
    let staged = artifacts::stage(&app, body.into_data_stream()).await?;
    let filename = query.filename.unwrap_or_default();
    Ok(stored(artifacts::keep(&app, staged, &filename).await?))
}

/// `POST /api/v1/artifacts` as `multipart/form-data`; the first part with a file name is the image.
#[utoipa::path(
    post,
    path = "/api/v1/artifacts",
    summary = "Upload an image (multipart form)",
    tag = "artifacts",
    request_body(content(("multipart/form-data")), description = "The first part with a file name is the image"),
    responses(
        (status = 201, description = "Stored", body = Artifact),
        (status = 200, description = "The same bytes were stored before", body = Artifact),
        (status = 413, description = "Larger than --max-artifact-size"),
    )
)]
pub async fn post_multipart(
    _: Admin,
    State(app): State<App>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<Stored> {
    let (staged, filename) = stage_first_file(&app, multipart).await?;
    Ok(stored(artifacts::keep(&app, staged, &filename).await?))
}

/// `GET /api/v1/artifacts/{sha256}`
#[utoipa::path(
    get,
    path = "/api/v1/artifacts/{sha256}",
    summary = "Get an artifact",
    tag = "artifacts",
    responses(
        (status = 200, body = Artifact),
    )
)]
pub async fn get(
    _: Admin,
    State(app): State<App>,
    ApiPath(sha256): ApiPath<String>,
) -> ApiResult<Json<Artifact>> {
    Ok(Json(artifacts::get(&app, &sha256).await?))
}
