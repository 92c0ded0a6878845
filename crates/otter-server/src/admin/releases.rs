//! Releases: publish, list, get, and the flags that may change later (deprecate, yank, mandatory).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_app::{App, releases};
use otter_core::deltas::Delta;
use otter_core::model::{NewRelease, Page, Release, ReleasePatch};
use serde::Serialize;

use super::ListQuery;
use crate::audit::AuditNote;
use crate::auth::Admin;
use crate::error::{ApiJson, ApiPath, ApiQuery, ApiResult};

/// `POST /api/v1/products/{product}/releases`
#[utoipa::path(
    post,
    path = "/api/v1/products/{product}/releases",
    summary = "Publish a release",
    tag = "releases",
    request_body = NewRelease,
    responses(
        (status = 201, body = Release),
        (status = 409, description = "The version exists, or the release breaks a rule of the product"),
    )
)]
pub async fn publish(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiJson(new): ApiJson<NewRelease>,
) -> ApiResult<(StatusCode, AuditNote, Json<Release>)> {
    let release = releases::publish(&app, &product, new).await?;
    let mut summary = format!(
        "published {} on {}, artifact {}",
        release.version,
        release.channels.join(", "),
        &release.artifact.sha256[..12.min(release.artifact.sha256.len())]
    );
    if release.mandatory {
        summary.push_str(", mandatory");
    }
    let note = AuditNote::target(format!("{product}/{}", release.version)).with_summary(summary);
    Ok((StatusCode::CREATED, note, Json(release)))
}

/// `GET /api/v1/products/{product}/releases`, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/releases",
    summary = "List releases, newest first",
    tag = "releases",
    params(ListQuery),
    responses(
        (status = 200, body = Page<Release>),
    )
)]
pub async fn list(
    _: Admin,
    State(app): State<App>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Release>>> {
    Ok(Json(releases::list(&app, &product, &query.page()?).await?))
}

/// `GET /api/v1/products/{product}/releases/{version}`
#[utoipa::path(
    get,
    path = "/api/v1/products/{product}/releases/{version}",
    summary = "Get a release",
    tag = "releases",
    responses(
        (status = 200, body = ReleaseView),
    )
)]
pub async fn get(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<ReleaseView>> {
    let release = releases::get(&app, &product, &version).await?;
    let deltas = otter_app::deltas::status(&app, &product, &version)
        .await?
        .deltas;
    Ok(Json(ReleaseView { release, deltas }))
}

/// A release as `GET …/releases/{version}` shows it: with the delta patches built to it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ReleaseView {
    #[serde(flatten)]
    release: Release,
    /// Patches to this release from earlier ones (`docs/deltas.md`), by base; left out when
    /// there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    deltas: Vec<Delta>,
}

/// `PATCH /api/v1/products/{product}/releases/{version}` with any of
/// `{"deprecated","yanked","mandatory"}`.
#[utoipa::path(
    patch,
    path = "/api/v1/products/{product}/releases/{version}",
    summary = "Deprecate, yank or make a release mandatory",
    tag = "releases",
    request_body = ReleasePatch,
    responses(
        (status = 200, body = Release),
    )
)]
pub async fn patch(
    _: Admin,
    State(app): State<App>,
    ApiPath((product, version)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<ReleasePatch>,
) -> ApiResult<(AuditNote, Json<Release>)> {
    let release = releases::patch(&app, &product, &version, &patch).await?;
    let flags: Vec<String> = [
        ("deprecated", patch.deprecated),
        ("yanked", patch.yanked),
        ("mandatory", patch.mandatory),
    ]
    .into_iter()
    .filter_map(|(flag, value)| Some(format!("{flag}={}", value?)))
    .collect();
    Ok((AuditNote::summary(flags.join(", ")), Json(release)))
}
