//! Credentials: admin tokens, device API keys (THiNX devices) and one-time download tokens.
//!
//! Every secret otter hands out is a random 256-bit value of which only the SHA-256 is stored.
//! A presented admin token is hashed and compared against every known hash in constant time, so
//! timing reveals nothing about them.

use std::path::Path;
use std::sync::RwLock;

use otter_core::model::{ApiKey, Artifact};
use otter_core::ott::{OneTimeToken, Refusal};
use otter_store::{Store, now, random_id};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{App, AppError, AppResult};

/// The hashes of the tokens that may use the admin API.
#[derive(Default)]
pub struct AdminTokens {
    hashes: RwLock<Vec<[u8; 32]>>,
}

impl AdminTokens {
    pub async fn load(store: &dyn Store) -> otter_store::Result<Self> {
        let hashes = store
            .token_hashes()
            .await?
            .iter()
            .filter_map(|h| hex::decode(h).ok()?.try_into().ok())
            .collect();
        Ok(AdminTokens {
            hashes: RwLock::new(hashes),
        })
    }

    /// Whether `token` is one of ours.
    pub fn verify(&self, token: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let hashes = self.hashes.read().unwrap_or_else(|e| e.into_inner());
        // Fold without short-circuit: every hash is compared whatever matches.
        hashes
            .iter()
            .fold(subtle::Choice::from(0), |acc, h| acc | h.ct_eq(&presented))
            .into()
    }
}

/// Whether `presented` is the secret whose SHA-256 hex is `stored_sha256`, compared in constant
/// time.
pub fn matches_hash(presented: &str, stored_sha256: &str) -> bool {
    let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
    hex::decode(stored_sha256).is_ok_and(|stored| bool::from(presented.ct_eq(&stored[..])))
}

/// SHA-256 hex of a token, as stored.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Outcome of [`ensure_admin_token`].
pub enum Bootstrap {
    /// `OTTER_ADMIN_TOKEN` (or the flag) was registered.
    Configured,
    /// A token existed already.
    Existing,
    /// A new token was generated and written to the returned path; show it once.
    Generated {
        token: String,
        path: std::path::PathBuf,
    },
}

/// The fewest characters a configured admin token may have: a shorter one can be guessed, or
/// found by trying, faster than otter's tokens (a generated one has 38).
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

/// Refuses a configured admin token shorter than [`MIN_ADMIN_TOKEN_CHARS`], before anything is
/// created.
pub fn check_configured_token(token: &str) -> Result<(), crate::StartError> {
    let chars = token.chars().count();
    if chars < MIN_ADMIN_TOKEN_CHARS {
        return Err(crate::StartError::Config(format!(
            "the configured admin token (--admin-token, --admin-token-file or their variables) \
             has {chars} characters; it needs at least {MIN_ADMIN_TOKEN_CHARS}: make one with \
             `openssl rand -hex 32`"
        )));
    }
    Ok(())
}

/// Makes sure some admin token exists: registers `configured` when given; otherwise, on the very
/// first start, generates one and writes it to `<data>/admin-token` with mode 0600.
pub async fn ensure_admin_token(
    store: &dyn Store,
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<Bootstrap, BootstrapError> {
    if let Some(token) = configured {
        // A configured token replaces the one configured before: rotating it revokes the old.
        store
            .replace_token(&token_hash(token), "configured", now())
            .await?;
        return Ok(Bootstrap::Configured);
    }
    if !store.token_hashes().await?.is_empty() {
        return Ok(Bootstrap::Existing);
    }
    let token = format!("otter_{}{}", random_id(), random_id());
    let path = data_dir.join("admin-token");
    write_secret(&path, &token)?;
    store
        .add_token(&token_hash(&token), "generated", now())
        .await?;
    Ok(Bootstrap::Generated { token, path })
}

/// Why the admin token could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] otter_store::StoreError),
    #[error("writing the admin token file: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes a secret to `path`, readable by the owner only.
pub fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = otter_store::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// A device API key just created: the key itself is shown this once.
pub struct NewApiKey {
    pub key: String,
    pub api_key: ApiKey,
}

/// Creates a device API key for `product` (THiNX devices send it in `Authentication`).
pub async fn create_api_key(app: &App, product: &str, label: String) -> AppResult<NewApiKey> {
    app.product(product).await?;
    if label.chars().count() > 100 {
        return Err(AppError::invalid(
            "field_too_long",
            "label is longer than 100 characters",
        ));
    }
    // 256 random bits as 64 hex digits, the shape of THiNX's keys.
    let key = format!("{}{}", random_id(), random_id());
    let hash = token_hash(&key);
    let api_key = ApiKey {
        id: hash[..16].to_owned(),
        product: product.to_owned(),
        label,
        created_at: now(),
    };
    app.store.add_api_key(&api_key, &hash).await?;
    app.reindex(product).await?;
    tracing::info!(product = %product, id = %api_key.id, "device API key created");
    Ok(NewApiKey { key, api_key })
}

/// A product's device API keys: ids and labels, never the keys.
pub async fn api_keys(app: &App, product: &str) -> AppResult<Vec<ApiKey>> {
    app.product(product).await?;
    Ok(app.store.api_keys(product).await?)
}

/// Revokes a device API key.
pub async fn revoke_api_key(app: &App, product: &str, id: &str) -> AppResult<()> {
    app.product(product).await?;
    if !app.store.delete_api_key(product, id).await? {
        return Err(AppError::not_found(
            "api_key_not_found",
            format!("product {product:?} has no API key {id:?}"),
        ));
    }
    app.reindex(product).await?;
    tracing::info!(product = %product, id = %id, "device API key revoked");
    Ok(())
}

/// Issues a one-time token for `device` to download `artifact`; returns the token.
pub async fn issue_ott(
    app: &App,
    product: &str,
    device: &str,
    artifact: &Artifact,
) -> AppResult<String> {
    // 256 random bits (THiNX derives its tokens from the time, so two in one second collide).
    let token = format!("{}{}", random_id(), random_id());
    let issued = OneTimeToken::issue(token_hash(&token), product, device, &artifact.sha256, now());
    app.store.create_ott(&issued).await?;
    Ok(token)
}

/// Why a one-time token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OttRefusal {
    /// No such token (or purged long ago).
    Unknown,
    /// Expired or spent.
    Used,
    /// Its image is no longer a release devices may install (yanked after it was issued).
    Withdrawn,
}

/// A one-time token being used: the image it opens.
pub struct OttUse {
    pub artifact: Artifact,
    token_sha256: String,
}

/// Opens a one-time token. `first_use` marks a request that counts as using it (a `GET`): the
/// token's short after-use expiry starts then.
pub async fn use_ott(
    app: &App,
    token: &str,
    first_use: bool,
) -> AppResult<Result<OttUse, OttRefusal>> {
    let hash = token_hash(token);
    let Some(stored) = app.store.get_ott(&hash).await? else {
        return Ok(Err(OttRefusal::Unknown));
    };
    let at = now();
    match stored.check(at) {
        Ok(()) => {}
        Err(Refusal::Expired | Refusal::Spent) => return Ok(Err(OttRefusal::Used)),
    }
    // The token's image must still be a release devices may install: a yank after the token
    // was issued withdraws it too.
    let Some(artifact) = app.find_product(&stored.product).await?.and_then(|index| {
        index
            .releases
            .iter()
            .find(|r| !r.facts.yanked && r.facts.sha256 == stored.artifact)
            .map(|r| r.release.artifact.clone())
    }) else {
        return Ok(Err(OttRefusal::Withdrawn));
    };
    if first_use && stored.first_used_at.is_none() {
        app.store
            .first_use_ott(&hash, at, stored.expiry_after_use(at))
            .await?;
    }
    Ok(Ok(OttUse {
        artifact,
        token_sha256: hash,
    }))
}

impl OttUse {
    /// Spends the token (its image was sent whole), in the background: the response is gone
    /// already.
    pub fn spend(self, app: &App) {
        let (app, hash) = (app.clone(), self.token_sha256);
        tokio::spawn(async move {
            if let Err(e) = app.store.spend_ott(&hash, now()).await {
                tracing::warn!(error = %e, "could not spend a one-time token");
            }
        });
    }
}

/// Deletes one-time tokens expired for over a day (kept that long so a late device hears
/// "expired", not "unknown").
pub async fn purge_expired_otts(app: &App) -> AppResult<u64> {
    Ok(app.store.purge_otts(now() - 24 * 3600).await?)
}
