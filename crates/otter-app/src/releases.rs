//! Releases: publishing (the one way releases come to exist, whichever API the image came
//! through), listing, and the flags that may change later (deprecate, yank, mandatory).
//!
//! Publishing runs every [`PublishCheck`] in [`CHECKS`] before anything is written: a product
//! opts into a check by what it declares (an IotaWatt key, an image format, a root of trust).
//! A new publish-time rule is a new hook there, not a branch in [`publish`].

use otter_core::Scheme;
use otter_core::model::{Artifact, NewRelease, Page, Release, ReleasePatch, ReleaseSignatures};
use otter_store::{PageRequest, StoreError, now};
use serde_json::Value;

use crate::index::ProductIndex;
use crate::{App, AppError, AppResult};

/// A release about to be published (or, for [`crate::trust::attach_signature`], signed).
pub struct Candidate<'a> {
    pub index: &'a ProductIndex,
    pub version: &'a str,
    pub channels: &'a [String],
    pub artifact: &'a Artifact,
    /// The signed release manifest (a DSSE envelope) it was published with.
    pub manifest: Option<&'a Value>,
    /// ECDSA P-256 over the image, base64 DER.
    pub binary_signature: Option<&'a str>,
}

/// A check a release must pass before it is published.
#[async_trait::async_trait]
pub trait PublishCheck: Send + Sync {
    /// Refuses `candidate` with a clear error, or lets it through; a check that verifies
    /// signatures records them in `signatures`, to be stored with the release.
    async fn check(
        &self,
        app: &App,
        candidate: &Candidate<'_>,
        signatures: &mut ReleaseSignatures,
    ) -> AppResult<()>;
}

/// Every publish-time check, in order: the cheap refusals of the image first, signatures last.
pub const CHECKS: &[&dyn PublishCheck] = &[
    &crate::iotawatt::BlobCheck,
    &crate::trust::ImageSignature,
    &crate::trust::SignedManifest,
];

/// Publishes a release of `product` and makes it live in the check index.
pub async fn publish(app: &App, product: &str, mut new: NewRelease) -> AppResult<Release> {
    let index = app.product(product).await?;
    let at = now();
    let version = new.validate(index.product.scheme, at)?;
    if let Some(twin) = index
        .releases
        .iter()
        .find(|r| r.facts.version.same_precedence(&version))
    {
        return Err(AppError::conflict(
            "version_exists",
            format!(
                "{product} {} is the same version to SemVer (build metadata does not count)",
                twin.release.version
            ),
        ));
    }
    // Opaque versions have no order, so a minimum can only be enforced against a published one.
    if index.product.scheme == Scheme::Opaque
        && let Some(min) = &new.min_source_version
        && index.release(min).is_none()
    {
        return Err(AppError::invalid(
            "invalid_field",
            format!("minSourceVersion {min:?} is not a published release of {product:?}"),
        ));
    }
    let artifact = app
        .store
        .get_artifact(&new.artifact)
        .await?
        .ok_or_else(|| AppError::artifact_not_found(&new.artifact))?;
    // An empty image is never firmware: a device would flash nothing and report success.
    if artifact.size == 0 {
        return Err(AppError::invalid(
            "empty_artifact",
            format!("artifact {} is empty (0 bytes)", artifact.sha256),
        ));
    }
    let candidate = Candidate {
        index: &index,
        version: &new.version,
        channels: &new.channels,
        artifact: &artifact,
        manifest: new.signature.as_ref(),
        binary_signature: new.binary_signature.as_deref(),
    };
    let mut signatures = ReleaseSignatures::default();
    for check in CHECKS {
        check.check(app, &candidate, &mut signatures).await?;
    }
    // As the store keeps them (a manifest always with a counter and an expiry), which is what
    // the check index holds.
    let signatures = ReleaseSignatures {
        version: new.version.clone(),
        security_counter: signatures
            .manifest
            .as_ref()
            .map(|_| signatures.security_counter.unwrap_or_default()),
        expires_at: signatures
            .manifest
            .as_ref()
            .map(|_| signatures.expires_at.unwrap_or_default()),
        ..signatures
    };
    // Signatures first: if the release insert fails they name nothing; the other way round a
    // crash would leave a signed product's release visible unsigned.
    if let Some(manifest) = &signatures.manifest {
        app.store
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
        app.store
            .set_binary_signature(product, &new.version, binary)
            .await?;
    }
    drop(index);
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
    let release = app
        .store
        .create_release(&release)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => AppError::conflict(
                "version_exists",
                format!(
                    "{product} {} was published before; versions are never reused",
                    release.version
                ),
            ),
            other => other.into(),
        })?;
    let signed = (signatures.manifest.is_some() || signatures.binary_signature.is_some())
        .then_some(signatures);
    app.release_changed(release.clone(), signed).await?;
    tracing::info!(product = %product, version = %release.version, "release published");
    crate::deltas::release_published(app, &release).await;
    Ok(release)
}

/// A product's releases, newest first.
pub async fn list(app: &App, product: &str, page: &PageRequest) -> AppResult<Page<Release>> {
    app.product(product).await?;
    Ok(app.store.list_releases(product, page).await?)
}

/// One release.
pub async fn get(app: &App, product: &str, version: &str) -> AppResult<Release> {
    app.product(product).await?;
    app.store
        .get_release(product, version)
        .await?
        .ok_or_else(|| AppError::release_not_found(product, version))
}

/// Changes a release's flags (deprecated, yanked, mandatory).
pub async fn patch(
    app: &App,
    product: &str,
    version: &str,
    patch: &ReleasePatch,
) -> AppResult<Release> {
    let signatures = app
        .product(product)
        .await?
        .release(version)
        .and_then(|r| r.signatures.clone());
    let release = app
        .store
        .patch_release(product, version, patch)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::release_not_found(product, version),
            other => other.into(),
        })?;
    app.release_changed(release.clone(), signatures).await?;
    if release.yanked {
        crate::rollouts::release_yanked(app, product, version).await?;
    }
    tracing::info!(
        product = %product, version = %version,
        deprecated = release.deprecated, yanked = release.yanked, "release changed"
    );
    Ok(release)
}
