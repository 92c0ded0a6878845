//! Signed releases on the server: each product's root of trust, the checks a signed release
//! passes at publish, signed check responses, and expiry warnings.
//!
//! The server holds no key that can authorise firmware: roots and release manifests are signed
//! offline (`otter keys`, `otter release sign`) and stored verbatim. Its only key is the
//! `online` one, which signs check responses bound to a device's nonce; a root decides whether
//! devices trust it. A compromised server can therefore withhold updates or pick among genuine,
//! non-older releases, but not make a device install anything else.
//!
//! A product with a root requires every new release to carry a manifest signed by the root's
//! `release` threshold that matches the release exactly (product, version, channel, artifact
//! length and SHA-256), has not expired, and does not lower the channel's security counter.

use std::path::Path;

use base64::Engine;
use otter_core::Version;
use otter_core::model::{Artifact, ReleaseSignatures, format_rfc3339};
use otter_core::signing::SigningError;
use otter_core::signing::device::CheckRequest;
use otter_core::signing::documents::{CheckResponse, RESPONSE_TYPE, ReleaseManifest, Root};
use otter_core::signing::dsse::Envelope;
use otter_core::signing::keys::{PrivateKey, pem_encode};
use serde_json::{Value, json};

use crate::index::ProductIndex;
use crate::releases::{Candidate, PublishCheck};
use crate::{App, AppError, AppResult, StartError};

/// How long before a signature expires the server starts warning.
pub const WARN_BEFORE: i64 = 30 * 24 * 3600;
/// How long a signed check response is valid.
pub const RESPONSE_TTL: i64 = 24 * 3600;

fn refused(code: &'static str, e: SigningError) -> AppError {
    AppError::invalid(code, e.to_string())
}

/// The server's `online` key: `path` if given, else `<data>/online-key.pem`, generated (0600)
/// on first start. Nodes sharing a database must share it.
pub fn load_online_key(data_dir: &Path, path: Option<&Path>) -> Result<PrivateKey, StartError> {
    let default = data_dir.join("online-key.pem");
    let path = path.unwrap_or(&default);
    let config = |e: String| StartError::Config(format!("online key {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => PrivateKey::from_pem(&text).map_err(|e| config(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == default => {
            let (key, der) = PrivateKey::generate(otter_core::signing::keys::Algorithm::Ed25519)
                .map_err(|e| config(e.to_string()))?;
            crate::tokens::write_secret(path, pem_encode("PRIVATE KEY", &der).trim_end())
                .map_err(|e| config(e.to_string()))?;
            tracing::info!(key_id = %key.public_key().key_id(), path = %path.display(),
                "generated the online key (list it in product roots under role online)");
            Ok(key)
        }
        Err(e) => Err(config(e.to_string())),
    }
}

/// The newest root of a stored chain, verified link by link; `None` without roots. A link that
/// does not verify (a hand-edited row) ends the chain there, with a warning.
pub fn verified_root(product: &str, chain: &[(u32, String)]) -> Option<Root> {
    verified_chain(product, chain).pop()
}

/// Every root of a stored chain that verifies, oldest first: the chain up to the first link
/// that does not (a hand-edited row), with a warning.
fn verified_chain(product: &str, chain: &[(u32, String)]) -> Vec<Root> {
    let mut roots: Vec<Root> = Vec::new();
    for (version, text) in chain {
        let opened = Envelope::parse(text.as_bytes()).and_then(|envelope| match roots.last() {
            None => Root::open_first(&envelope),
            Some(previous) => previous.open_next(&envelope),
        });
        match opened {
            Ok(next) => roots.push(next),
            Err(e) => {
                tracing::warn!(product, version, error = %e, "stored root does not verify");
                break;
            }
        }
    }
    roots
}

/// A product's roots of trust, oldest first, each verified along the chain. Read from the store
/// (a page listing many products does not build their check indexes).
pub async fn roots(app: &App, product: &str) -> AppResult<Vec<Root>> {
    if app.store.get_product(product).await?.is_none() {
        return Err(AppError::product_not_found(product));
    }
    Ok(verified_chain(product, &app.store.roots(product).await?))
}

/// What a release's signatures are, as people read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureStatus {
    /// The keys that signed its release manifest, each with the version of the product's
    /// current root when that root lists it as a release key (`None`: it no longer does);
    /// empty without a manifest.
    pub manifest_keys: Vec<(String, Option<u32>)>,
    /// When the manifest's signature expires.
    pub expires_at: Option<i64>,
    pub security_counter: Option<u32>,
    /// Whether it carries an ECDSA signature of the image (`binarySignature`).
    pub binary_signed: bool,
    /// The image format the product declared (its images carry that format's signature).
    pub image_format: Option<&'static str>,
}

impl SignatureStatus {
    /// Signed in any way: a manifest, a binary signature or a declared image format.
    pub fn is_signed(&self) -> bool {
        !self.manifest_keys.is_empty() || self.binary_signed || self.image_format.is_some()
    }
}

/// The signature status of release `version` of the product `index` holds (`None`: no such
/// release). Read from the check index: no query.
pub fn signature_status(index: &ProductIndex, version: &str) -> Option<SignatureStatus> {
    let release = index.release(version)?;
    let image_format = declared_image_format(index).map(|(format, _)| format.name());
    let Some(signatures) = &release.signatures else {
        return Some(SignatureStatus {
            image_format,
            ..SignatureStatus::default()
        });
    };
    let root_of = |keyid: &str| {
        index
            .root
            .as_ref()
            .filter(|root| root.roles.release.keyids.iter().any(|k| k == keyid))
            .map(|root| root.version)
    };
    let manifest_keys = signatures
        .manifest
        .as_deref()
        .and_then(|text| Envelope::parse(text.as_bytes()).ok())
        .map(|envelope| {
            envelope
                .signatures
                .iter()
                .map(|s| (s.keyid.clone(), root_of(&s.keyid)))
                .collect()
        })
        .unwrap_or_default();
    Some(SignatureStatus {
        manifest_keys,
        expires_at: signatures.expires_at,
        security_counter: signatures.security_counter,
        binary_signed: signatures.binary_signature.is_some(),
        image_format,
    })
}

/// A root of trust just added.
pub struct AddedRoot {
    pub version: u32,
    pub expires: String,
}

/// Adds a root envelope to `product`: its first root (version 1, self-signed) or the next one
/// (signed by the current and the new root keys).
pub async fn add_root(app: &App, product: &str, body: &[u8]) -> AppResult<AddedRoot> {
    let index = app.product(product).await?;
    let envelope = Envelope::parse(body).map_err(|e| refused("invalid_root", e))?;
    let root = match &index.root {
        None => Root::open_first(&envelope),
        Some(current) => current.open_next(&envelope),
    }
    .map_err(|e| refused("invalid_root", e))?;
    if root.product != product {
        return Err(AppError::invalid(
            "invalid_root",
            format!("the root is for {:?}, not {product:?}", root.product),
        ));
    }
    let now = otter_store::now();
    root.check_fresh(now)
        .map_err(|e| refused("invalid_root", e))?;
    let expires = otter_core::signing::unix("root expires", &root.expires)
        .map_err(|e| refused("invalid_root", e))?;
    let text = std::str::from_utf8(body)
        .map_err(|_| AppError::invalid("invalid_root", "the envelope is not UTF-8"))?;
    app.store
        .add_root(product, root.version, text, expires, now)
        .await?;
    app.reindex(product).await?;
    tracing::info!(product = %product, version = root.version, "root of trust added");
    Ok(AddedRoot {
        version: root.version,
        expires: root.expires,
    })
}

/// A root envelope exactly as uploaded: `file` is `{n}.json`, or `root.json` for the newest.
pub async fn root_file(app: &App, product: &str, file: &str) -> AppResult<String> {
    app.product(product).await?;
    let chain = app.store.roots(product).await?;
    let wanted = match file.strip_suffix(".json") {
        Some("root") => chain.last(),
        Some(n) => n
            .parse::<u32>()
            .ok()
            .and_then(|n| chain.iter().find(|(v, _)| *v == n)),
        None => None,
    };
    wanted.map(|(_, envelope)| envelope.clone()).ok_or_else(|| {
        AppError::not_found("root_not_found", format!("{product:?} has no root {file}"))
    })
}

/// The public half of the server's online key, to list in roots.
pub fn online_key(app: &App) -> Value {
    let key = app.online_key.public_key();
    json!({
        "keyid": key.key_id(),
        "alg": key.algorithm,
        "public": key.public_hex,
        "pem": key.to_pem(),
    })
}

/// Checks a release's signed manifest (when the product has a root, one is required) and its
/// binary signature; returns what to store with the release.
fn check_signatures(candidate: &Candidate<'_>) -> AppResult<ReleaseSignatures> {
    let index = candidate.index;
    let mut signatures = ReleaseSignatures {
        version: candidate.version.to_owned(),
        ..ReleaseSignatures::default()
    };
    match (&index.root, candidate.manifest) {
        (Some(root), Some(envelope)) => {
            let text = serde_json::to_string(envelope).map_err(AppError::internal)?;
            let (counter, expires) = check_manifest(index, root, candidate, &text)?;
            signatures.manifest = Some(text);
            signatures.security_counter = Some(counter);
            signatures.expires_at = Some(expires);
        }
        (Some(_), None) => {
            return Err(AppError::invalid(
                "signature_required",
                format!(
                    "{} has a root of trust: releases need a manifest signed by its release keys \
                     (otter release sign, then publish with --signature)",
                    index.product.name
                ),
            ));
        }
        (None, Some(_)) => {
            return Err(AppError::invalid(
                "no_root",
                format!(
                    "{} has no root of trust to check the signature against \
                     (POST /api/v1/products/{}/roots)",
                    index.product.name, index.product.name
                ),
            ));
        }
        (None, None) => {}
    }
    if let Some(sig) = candidate.binary_signature {
        let root = index.root.as_ref().ok_or_else(|| {
            AppError::invalid(
                "no_root",
                "a binarySignature is checked against the release keys of the product's root",
            )
        })?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(sig)
            .map_err(|_| AppError::invalid("invalid_signature", "binarySignature is not base64"))?;
        let sha256 = hex::decode(&candidate.artifact.sha256).map_err(AppError::internal)?;
        let valid = root
            .roles
            .release
            .keyids
            .iter()
            .filter_map(|id| root.keys.get(id))
            .any(|key| key.verify_sha256(&sha256, &der));
        if !valid {
            return Err(AppError::invalid(
                "invalid_signature",
                "binarySignature is not an ECDSA P-256 signature of the image by a release key",
            ));
        }
        signatures.binary_signature = Some(sig.to_owned());
    }
    Ok(signatures)
}

/// The manifest's checks; returns its security counter and expiry.
fn check_manifest(
    index: &ProductIndex,
    root: &Root,
    candidate: &Candidate<'_>,
    text: &str,
) -> AppResult<(u32, i64)> {
    let envelope = Envelope::parse(text.as_bytes()).map_err(|e| refused("invalid_signature", e))?;
    let (manifest, _) = ReleaseManifest::open(&envelope, root, otter_store::now())
        .map_err(|e| refused("invalid_signature", e))?;
    let mismatch = |what: &str| {
        AppError::invalid(
            "signature_mismatch",
            format!("the signed manifest's {what} is not the release's"),
        )
    };
    if manifest.product != index.product.name {
        return Err(mismatch("product"));
    }
    if manifest.version != candidate.version {
        return Err(mismatch("version"));
    }
    // Devices refuse a release not signed for their channel: one published on a channel its
    // manifest does not name would be refused by every device there.
    if let Some(unsigned) = candidate
        .channels
        .iter()
        .find(|c| !manifest.is_for_channel(c))
    {
        return Err(AppError::invalid(
            "signature_mismatch",
            format!(
                "the release is published on {unsigned:?}, which its signed manifest does not \
                 name (otter release sign --channel, once per channel)"
            ),
        ));
    }
    if !manifest
        .artifact
        .sha256
        .eq_ignore_ascii_case(&candidate.artifact.sha256)
        || manifest.artifact.length != candidate.artifact.size
    {
        return Err(mismatch("artifact (length or SHA-256)"));
    }
    // Anti-rollback: no release may carry a lower counter than an older one on any of its
    // channels (a device there would refuse it).
    let version = Version::parse(index.product.scheme, candidate.version)?;
    let floor = index
        .releases
        .iter()
        .filter(|r| {
            r.facts
                .channels
                .iter()
                .any(|c| candidate.channels.contains(c))
        })
        .filter(|r| {
            r.release.version != candidate.version
                && r.facts.version.compare(&version).is_none_or(|o| o.is_lt())
        })
        .filter_map(|r| r.signatures.as_ref()?.security_counter)
        .max();
    if let Some(floor) = floor.filter(|&f| manifest.security_counter < f) {
        return Err(AppError::invalid(
            "rollback",
            format!(
                "security counter {} is lower than {floor}, which an older release on one of \
                 its channels ({}) carries",
                manifest.security_counter,
                candidate.channels.join(", ")
            ),
        ));
    }
    let expires = otter_core::signing::unix("manifest expires", &manifest.expires)
        .map_err(|e| refused("invalid_signature", e))?;
    Ok((manifest.security_counter, expires))
}

/// The release manifest that signs `candidate`, as [`SignedManifest`] checks it at publish.
pub struct SignedManifest;

#[async_trait::async_trait]
impl PublishCheck for SignedManifest {
    async fn check(
        &self,
        _: &App,
        candidate: &Candidate<'_>,
        signatures: &mut ReleaseSignatures,
    ) -> AppResult<()> {
        *signatures = check_signatures(candidate)?;
        Ok(())
    }
}

/// A release signed after publishing (or re-signed before its signature expires).
pub struct Attached {
    pub security_counter: Option<u32>,
    pub expires: Option<String>,
}

/// Signs a published release with a manifest envelope, or replaces its signature.
pub async fn attach_signature(
    app: &App,
    product: &str,
    version: &str,
    envelope: &Value,
) -> AppResult<Attached> {
    let index = app.product(product).await?;
    let release = index
        .release(version)
        .ok_or_else(|| AppError::release_not_found(product, version))?;
    let candidate = Candidate {
        index: &index,
        version,
        channels: &release.release.channels,
        artifact: &release.release.artifact,
        manifest: Some(envelope),
        binary_signature: None,
    };
    let signed = check_signatures(&candidate)?;
    app.store
        .set_release_manifest(
            product,
            version,
            signed.manifest.as_deref().unwrap_or_default(),
            signed.security_counter.unwrap_or_default(),
            signed.expires_at.unwrap_or_default(),
        )
        .await?;
    drop(index);
    app.reindex(product).await?;
    Ok(Attached {
        security_counter: signed.security_counter,
        expires: signed.expires_at.map(format_rfc3339),
    })
}

/// The signed answer to a check-in with a nonce: what the device is offered (if anything),
/// bound to its nonce, under the product's current root. `None` without a root.
pub fn signed_response(
    app: &App,
    index: &ProductIndex,
    request: &CheckRequest<'_>,
    offered: Option<usize>,
    download_url: Option<String>,
) -> AppResult<Option<Value>> {
    let Some(root) = &index.root else {
        return Ok(None);
    };
    let now = otter_store::now();
    let release = offered.map(|i| &index.releases[i]);
    let manifest_sha256 = release
        .and_then(|r| r.signatures.as_ref()?.manifest.as_deref())
        .and_then(|text| Envelope::parse(text.as_bytes()).ok()?.payload_bytes().ok())
        .map(|payload| otter_core::digest::sha256_hex(&payload));
    // The decision goes back only to move a device off a yanked release, or to the release an
    // operator pinned it to; say which, or the device refuses the older release.
    let pinned = index.devices.pinned(request.device).is_some();
    let downgrade = release
        .zip(request.current.and_then(|c| index.identify(c)))
        .filter(|(offered, running)| {
            offered
                .facts
                .version
                .compare(&running.facts.version)
                .is_some_and(|o| o.is_lt())
        })
        .map(|_| if pinned { "pinned" } else { "yanked" }.to_owned());
    let response = CheckResponse {
        product: index.product.name.clone(),
        device: request.device.to_owned(),
        nonce: request.nonce.to_owned(),
        current: request.current.map(str::to_owned),
        channel: request.channel.to_owned(),
        server_time: format_rfc3339(now),
        expires: format_rfc3339(now + RESPONSE_TTL),
        root_version: root.version,
        action: if release.is_some() { "install" } else { "none" }.to_owned(),
        version: release.map(|r| r.release.version.clone()),
        manifest_sha256,
        download_url,
        downgrade,
    };
    let payload = serde_json::to_vec(&response).map_err(AppError::internal)?;
    let mut envelope = Envelope::new(RESPONSE_TYPE, &payload);
    envelope.sign(&app.online_key).map_err(AppError::internal)?;
    serde_json::to_value(&envelope)
        .map(Some)
        .map_err(AppError::internal)
}

/// Signatures that expire within [`WARN_BEFORE`] (or have expired): each product's newest root
/// and the manifests of releases not yanked, for `/api/v1/status`, the log and
/// `otter_signatures_expiring`. Asked of the store, which knows every product (the check index
/// holds only those used since start).
pub async fn expiring(app: &App, now: i64) -> AppResult<Vec<Value>> {
    Ok(app
        .store
        .expiring_signatures(now + WARN_BEFORE)
        .await?
        .into_iter()
        .map(|s| {
            let what = if s.release.is_some() { "release manifest" } else { "root" };
            json!({"product": s.product, "what": what, "version": s.version, "expires": format_rfc3339(s.expires_at)})
        })
        .collect())
}

/// Logs and counts what [`expiring`] finds (the janitor runs it).
pub async fn warn_expiring(app: &App) {
    let soon = match expiring(app, otter_store::now()).await {
        Ok(soon) => soon,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for expiring signatures");
            return;
        }
    };
    metrics::gauge!("otter_signatures_expiring").set(soon.len() as f64);
    for item in &soon {
        tracing::warn!(product = %item["product"], what = %item["what"], version = %item["version"],
            expires = %item["expires"], "signature expires within 30 days: re-sign it");
    }
}

/// The signing-key kind under which a product declares its image format; the stored value is
/// `{format}:{base64 SubjectPublicKeyInfo}`, so declaring another format replaces the first.
const IMAGE_FORMAT_KIND: &str = "image-format";

/// The image format a product declared, with the public key (SubjectPublicKeyInfo DER).
fn declared_image_format(index: &ProductIndex) -> Option<(otter_core::formats::Format, Vec<u8>)> {
    let (_, value) = index
        .signing_keys
        .iter()
        .find(|(kind, _)| kind == IMAGE_FORMAT_KIND)?;
    let (format, key) = value.split_once(':')?;
    let der = base64::engine::general_purpose::STANDARD.decode(key).ok()?;
    Some((format.parse().ok()?, der))
}

/// Declares `product`'s image format (`esp8266-rsa` or `esp-idf-sbv2`) with the public key
/// (PEM SubjectPublicKeyInfo) its devices' bootloader or updater holds: every image published to
/// the product from then on must carry a valid signature in that format. Returns the format's
/// name.
pub async fn set_image_format(
    app: &App,
    product: &str,
    format: &str,
    public_key: &str,
) -> AppResult<&'static str> {
    use otter_core::formats::Format;
    app.product(product).await?;
    let format: Format = format
        .parse()
        .ok()
        .filter(|f| matches!(f, Format::Esp8266Rsa | Format::EspIdfSbv2))
        .ok_or_else(|| {
            AppError::invalid(
                "invalid_format",
                "format must be esp8266-rsa or esp-idf-sbv2 (IotaWatt: PUT …/iotawatt; minisign \
             signatures are detached and checked by devices)",
            )
        })?;
    let der = otter_core::signing::keys::pem_decode("PUBLIC KEY", public_key)
        .map_err(|e| AppError::invalid("invalid_public_key", e.to_string()))?;
    // A key the format cannot use is refused now, not at the first publish.
    let usable = match format {
        Format::Esp8266Rsa => aws_lc_rs::signature::RsaSubjectPublicKey::from_der(&der).is_ok(),
        _ => otter_core::formats::esp_idf_sbv2::key_digest(&der).is_ok(),
    };
    if !usable {
        return Err(AppError::invalid(
            "invalid_public_key",
            format!("the public key is not one {format} devices can use"),
        ));
    }
    let value = format!(
        "{}:{}",
        format.name(),
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    app.store
        .set_signing_key(product, IMAGE_FORMAT_KIND, &value, otter_store::now())
        .await?;
    app.reindex(product).await?;
    Ok(format.name())
}

/// The largest image whose native signature is checked at publish.
const MAX_CHECKED_IMAGE: u64 = 64 * 1024 * 1024;

/// An image's native signature, checked at publish when its product declared a format.
pub struct ImageSignature;

#[async_trait::async_trait]
impl PublishCheck for ImageSignature {
    async fn check(
        &self,
        app: &App,
        candidate: &Candidate<'_>,
        _: &mut ReleaseSignatures,
    ) -> AppResult<()> {
        check_image_format(app, candidate.index, candidate.artifact).await
    }
}

async fn check_image_format(app: &App, index: &ProductIndex, artifact: &Artifact) -> AppResult<()> {
    use otter_core::formats::{Format, esp_idf_sbv2, esp8266_rsa};
    let Some((format, public_key)) = declared_image_format(index) else {
        return Ok(());
    };
    if artifact.size > MAX_CHECKED_IMAGE {
        return Err(AppError::invalid(
            "invalid_image_signature",
            format!("images of {format} products are checked up to {MAX_CHECKED_IMAGE} bytes"),
        ));
    }
    let image = crate::artifacts::read_whole(app, artifact).await?;
    let checked = match format {
        Format::Esp8266Rsa => esp8266_rsa::verify(&image, &public_key).map(|_| ()),
        Format::EspIdfSbv2 => esp_idf_sbv2::verify(&image, &public_key).map(|_| ()),
        Format::Minisign | Format::Iotawatt => Ok(()),
    };
    checked.map_err(|e| {
        AppError::invalid(
            "invalid_image_signature",
            format!("the image's {format} signature does not verify: {e}"),
        )
    })
}
