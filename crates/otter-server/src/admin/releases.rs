//! Releases: publish, list, get, and the flags that may change later (deprecate, yank, mandatory).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use otter_core::Scheme;
use otter_core::model::{NewRelease, Page, Release, ReleasePatch};
use otter_store::{StoreError, now};

use super::ListQuery;
use super::artifacts::artifact_not_found;
use crate::auth::Admin;
use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult};
use crate::state::AppState;

fn release_not_found(product: &str, version: &str) -> ApiError {
    ApiError::not_found(
        "release_not_found",
        format!("product {product:?} has no release {version:?}"),
    )
}

/// `POST /api/v1/products/{product}/releases`
pub async fn publish(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
    ApiJson(new): ApiJson<NewRelease>,
) -> ApiResult<(StatusCode, Json<Release>)> {
    let release = publish_release(&state, &product, new).await?;
    Ok((StatusCode::CREATED, Json(release)))
}

/// Publishes a release of `product` and makes it live in the check index: the one way releases
/// come to exist, whichever API the upload came through.
pub async fn publish_release(
    state: &AppState,
    product: &str,
    mut new: NewRelease,
) -> ApiResult<Release> {
    let index = super::product(state, product)?;
    let at = now();
    new.validate(index.product.scheme, at)?;
    // Opaque versions have no order, so a minimum can only be enforced against a published one.
    if index.product.scheme == Scheme::Opaque
        && let Some(min) = &new.min_source_version
        && index.release(min).is_none()
    {
        return Err(ApiError::bad_request(
            "invalid_field",
            format!("minSourceVersion {min:?} is not a published release of {product:?}"),
        ));
    }
    let artifact = state
        .store
        .get_artifact(&new.artifact)
        .await?
        .ok_or_else(|| artifact_not_found(&new.artifact))?;
    crate::protocols::iotawatt::check_release(
        state,
        &index,
        &new.version,
        &new.channels,
        &artifact,
    )
    .await?;
    crate::trust::check_image_format(state, &index, &artifact).await?;
    let candidate = crate::trust::Candidate {
        version: &new.version,
        channels: &new.channels,
        artifact: &artifact,
    };
    let signatures = crate::trust::check_signatures(
        &index,
        &candidate,
        new.signature.as_ref(),
        new.binary_signature.as_deref(),
    )?;
    // Signatures first: if the release insert fails they name nothing; the other way round a
    // crash would leave a signed product's release visible unsigned.
    if let Some(manifest) = &signatures.manifest {
        state
            .store
            .set_release_manifest(
                product,
                &new.version,
                manifest,
                signatures.security_counter.unwrap_or_default(),
                signatures.expires_at.unwrap_or_default(),
            )
            .await?;
    }
    if let Some(binary) = &signatures.binary_signature {
        state
            .store
            .set_binary_signature(product, &new.version, binary)
            .await?;
    }
    let release = Release {
        seq: 0,
        product: product.to_owned(),
        version: new.version,
        artifact,
        channels: new.channels,
        release_date: new.release_date.unwrap_or_default(),
        min_source_version: new.min_source_version,
        mandatory: new.mandatory,
        deprecated: false,
        yanked: false,
        title: new.title,
        summary: new.summary,
        release_notes_url: new.release_notes_url,
        metadata: new.metadata.unwrap_or_default(),
        created_at: at,
    };
    let release = state
        .store
        .create_release(&release)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::conflict(
                "version_exists",
                format!(
                    "{product} {} was published before; versions are never reused",
                    release.version
                ),
            ),
            other => other.into(),
        })?;
    state.index.changed(&*state.store, product).await?;
    crate::notify::product_changed(state, product);
    tracing::info!(product = %product, version = %release.version, "release published");
    Ok(release)
}

/// `GET /api/v1/products/{product}/releases`, newest first.
pub async fn list(
    _: Admin,
    State(state): State<AppState>,
    ApiPath(product): ApiPath<String>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<Release>>> {
    super::product(&state, &product)?;
    Ok(Json(
        state.store.list_releases(&product, &query.page()?).await?,
    ))
}

/// `GET /api/v1/products/{product}/releases/{version}`
pub async fn get(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((product, version)): ApiPath<(String, String)>,
) -> ApiResult<Json<Release>> {
    super::product(&state, &product)?;
    state
        .store
        .get_release(&product, &version)
        .await?
        .map(Json)
        .ok_or_else(|| release_not_found(&product, &version))
}

/// `PATCH /api/v1/products/{product}/releases/{version}` with any of
/// `{"deprecated","yanked","mandatory"}`.
pub async fn patch(
    _: Admin,
    State(state): State<AppState>,
    ApiPath((product, version)): ApiPath<(String, String)>,
    ApiJson(patch): ApiJson<ReleasePatch>,
) -> ApiResult<Json<Release>> {
    super::product(&state, &product)?;
    let release = state
        .store
        .patch_release(&product, &version, &patch)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => release_not_found(&product, &version),
            other => other.into(),
        })?;
    state.index.changed(&*state.store, &product).await?;
    crate::notify::product_changed(&state, &product);
    tracing::info!(
        product = %product, version = %version,
        deprecated = release.deprecated, yanked = release.yanked, "release changed"
    );
    Ok(Json(release))
}
