//! IotaWatt products: a product becomes one once it has an Ed25519 public key. Its releases go
//! to channels named after the update classes (`MAJOR`, `MINOR`, `BETA`, `ALPHA`), the tables
//! file to channel `TABLES`; publishing a blob to a class checks it as the device will (the
//! layout, the release in its header against the version, the signature against the key).

use otter_core::iotawatt::{self, BlobError};
use otter_core::model::{Artifact, ReleaseSignatures};

use crate::index::ProductIndex;
use crate::releases::{Candidate, PublishCheck};
use crate::{App, AppError, AppResult};

/// The kind of signing key IotaWatt products carry.
pub const KEY_KIND: &str = "iotawatt-ed25519";
/// The update classes a device can follow (NONE means it does not update).
pub const CLASSES: [&str; 4] = ["MAJOR", "MINOR", "BETA", "ALPHA"];
/// The channel tables files are published to.
pub const TABLES: &str = "TABLES";
/// The largest blob checked at publish (IotaWatt images are about 1 MiB).
const MAX_BLOB: u64 = 16 * 1024 * 1024;

/// The product's IotaWatt public key, if it is an IotaWatt product.
pub fn public_key(index: &ProductIndex) -> Option<[u8; 32]> {
    index
        .signing_keys
        .iter()
        .find(|(kind, _)| kind == KEY_KIND)
        .and_then(|(_, key)| iotawatt::parse_public_key(key))
}

/// Makes `product` an IotaWatt product whose release blobs must verify with `public_key` (64
/// hex digits, or the C array `otter iotawatt keygen` prints); returns the key as hex.
pub async fn set_public_key(app: &App, product: &str, public_key: &str) -> AppResult<String> {
    app.product(product).await?;
    let key = iotawatt::parse_public_key(public_key).ok_or_else(|| {
        AppError::invalid(
            "invalid_public_key",
            "publicKey must be a 32-byte Ed25519 public key: 64 hex digits or the C array",
        )
    })?;
    let key = hex::encode(key);
    app.store
        .set_signing_key(product, KEY_KIND, &key, otter_store::now())
        .await?;
    app.reindex(product).await?;
    tracing::info!(product = %product, public_key = %key, "IotaWatt signing key set");
    Ok(key)
}

/// `product`'s IotaWatt public key, as hex; `not_iotawatt` for other products.
pub async fn public_key_hex(app: &App, product: &str) -> AppResult<String> {
    let index = app.product(product).await?;
    public_key(&index)
        .map(hex::encode)
        .ok_or_else(|| not_iotawatt(product))
}

pub fn not_iotawatt(product: &str) -> AppError {
    AppError::not_found(
        "not_iotawatt",
        format!("{product:?} is not an IotaWatt product (PUT /api/v1/products/{product}/iotawatt)"),
    )
}

/// The check of [`check_release`] as a publish hook.
pub struct BlobCheck;

#[async_trait::async_trait]
impl PublishCheck for BlobCheck {
    async fn check(
        &self,
        app: &App,
        candidate: &Candidate<'_>,
        _: &mut ReleaseSignatures,
    ) -> AppResult<()> {
        check_release(
            app,
            candidate.index,
            candidate.version,
            candidate.channels,
            candidate.artifact,
        )
        .await
    }
}

/// Checks a release about to be published to an IotaWatt product, as the device will check it.
async fn check_release(
    app: &App,
    index: &ProductIndex,
    version: &str,
    channels: &[String],
    artifact: &Artifact,
) -> AppResult<()> {
    let Some(key) = public_key(index) else {
        return Ok(());
    };
    let classes = channels
        .iter()
        .filter(|c| CLASSES.contains(&c.as_str()))
        .count();
    if channels.iter().any(|c| c == TABLES) {
        if channels.len() > 1 {
            return Err(AppError::invalid(
                "invalid_channel",
                "a tables file goes to channel TABLES alone",
            ));
        }
        return Ok(());
    }
    if classes != channels.len() {
        return Err(AppError::invalid(
            "invalid_channel",
            "IotaWatt releases go to the update classes MAJOR, MINOR, BETA, ALPHA (or TABLES)",
        ));
    }
    if artifact.size > MAX_BLOB {
        return Err(AppError::invalid(
            "invalid_blob",
            format!("an IotaWatt release blob is at most {MAX_BLOB} bytes"),
        ));
    }
    let blob = crate::artifacts::read_whole(app, artifact).await?;
    let unpacked = iotawatt::verify(&blob, &key).map_err(|e| match e {
        BlobError::BadSignature => AppError::invalid(
            "invalid_signature",
            "the blob's signature does not verify with the product's IotaWatt public key",
        ),
        other => AppError::invalid("invalid_blob", other.to_string()),
    })?;
    if unpacked.version != version {
        return Err(AppError::invalid(
            "version_mismatch",
            format!(
                "the blob is release {:?} but is published as {version:?}; the device would refuse it",
                unpacked.version
            ),
        ));
    }
    Ok(())
}
