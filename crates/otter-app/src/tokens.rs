//! Credentials: admin tokens (with their roles), device API keys (THiNX devices) and one-time
//! download tokens.
//!
//! Every secret otter hands out is a random 256-bit value of which only the SHA-256 is stored.
//! A presented admin token is hashed and compared against every known hash in constant time, so
//! timing reveals nothing about them. Admin tokens are held in memory ([`AdminTokens`]): an admin
//! request reads no database, and their last use is written at most once a minute.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use otter_core::model::{Actor, ActorKind, ApiKey, ApiToken, Artifact, Page, Role, validate_name};
use otter_core::ott::{OneTimeToken, Refusal};
use otter_store::{PageRequest, Store, StoreError, now, random_id};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{App, AppError, AppResult};

/// How often the last use of admin tokens is written: at most once a minute per token, so an
/// admin request costs no database write.
pub const LAST_USE_EVERY: Duration = Duration::from_secs(60);

/// The longest lifetime a token may be given (any longer, and leave the expiry out).
const MAX_LIFETIME: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Names a bootstrap token has: nobody may create a token under them.
const BOOTSTRAP_NAMES: [&str; 2] = ["configured", "generated"];

/// One admin token as a node holds it.
struct Known {
    hash: [u8; 32],
    name: String,
    role: Role,
    expires_at: Option<i64>,
    revoked: bool,
}

/// Why a presented admin token opens nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a token of ours.
    Unknown,
    Revoked,
    Expired,
}

/// When tokens were last used, here, and what of that is in the database already.
#[derive(Default)]
struct LastUse {
    at: i64,
    written: i64,
}

/// The admin tokens, in memory: authenticating a request reads no database. They are reloaded
/// when the token clock moves (a change on this node at once, a change on another at the next
/// catalogue poll).
#[derive(Default)]
pub struct AdminTokens {
    known: RwLock<Vec<Known>>,
    /// The token clock when `known` was read.
    version: AtomicI64,
    used: Mutex<HashMap<String, LastUse>>,
}

impl AdminTokens {
    pub async fn load(store: &dyn Store) -> otter_store::Result<Self> {
        let tokens = AdminTokens::default();
        tokens.reload(store).await?;
        Ok(tokens)
    }

    /// Reads every token again (the clock first, so a change made meanwhile is seen next time).
    async fn reload(&self, store: &dyn Store) -> otter_store::Result<()> {
        let version = store.token_version().await?;
        let known = store
            .all_tokens()
            .await?
            .into_iter()
            .filter_map(|t| {
                Some(Known {
                    hash: hex::decode(&t.sha256).ok()?.try_into().ok()?,
                    name: t.token.name,
                    role: t.token.role,
                    expires_at: t.token.expires_at,
                    revoked: t.token.revoked_at.is_some(),
                })
            })
            .collect();
        *self.known.write().unwrap_or_else(|e| e.into_inner()) = known;
        self.version.store(version, Ordering::Release);
        Ok(())
    }

    /// Reloads the tokens when the token clock moved since they were read; whether it did.
    pub async fn sync(&self, store: &dyn Store) -> otter_store::Result<bool> {
        if store.token_version().await? == self.version.load(Ordering::Acquire) {
            return Ok(false);
        }
        self.reload(store).await?;
        Ok(true)
    }

    /// Who `token` is at `now`, and notes the use.
    pub fn authenticate(&self, token: &str, now: i64) -> Result<Actor, Refused> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let known = self.known.read().unwrap_or_else(|e| e.into_inner());
        // Every hash is compared, in constant time each, whatever matches.
        let mut found = None;
        for k in known.iter() {
            if bool::from(k.hash.ct_eq(&presented)) {
                found = Some(k);
            }
        }
        let k = found.ok_or(Refused::Unknown)?;
        if k.revoked {
            return Err(Refused::Revoked);
        }
        if k.expires_at.is_some_and(|at| at <= now) {
            return Err(Refused::Expired);
        }
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.entry(k.name.clone()).or_default().at = now;
        Ok(Actor {
            kind: ActorKind::Token,
            name: k.name.clone(),
            role: k.role,
        })
    }

    /// When this node last saw `name` used, if it has.
    fn last_used(&self, name: &str) -> Option<i64> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        used.get(name).map(|u| u.at)
    }

    /// Writes the last uses not yet written (see [`LAST_USE_EVERY`]).
    pub async fn write_last_use(&self, store: &dyn Store) -> otter_store::Result<()> {
        let due: Vec<(String, i64)> = {
            let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
            used.iter()
                .filter(|(_, u)| u.at > u.written)
                .map(|(name, u)| (name.clone(), u.at))
                .collect()
        };
        if due.is_empty() {
            return Ok(());
        }
        store.touch_tokens(&due).await?;
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        for (name, at) in due {
            if let Some(u) = used.get_mut(&name) {
                u.written = u.written.max(at);
            }
        }
        Ok(())
    }
}

/// An admin token just created: the token itself is shown this once.
pub struct NewToken {
    pub token: String,
    pub info: ApiToken,
}

/// Creates an admin token `name` with `role`, valid for `expires_in` when given.
pub async fn create_token(
    app: &App,
    name: &str,
    role: Role,
    expires_in: Option<Duration>,
) -> AppResult<NewToken> {
    validate_name("name", name)?;
    if BOOTSTRAP_NAMES.contains(&name) {
        return Err(AppError::invalid(
            "invalid_field",
            format!("the token name {name:?} is kept for the bootstrap admin token"),
        ));
    }
    let created_at = now();
    let expires_at = match expires_in {
        Some(d) if d.is_zero() || d > MAX_LIFETIME => {
            return Err(AppError::invalid(
                "invalid_field",
                "expires must be between 1 second and 100 years (leave it out for a token that \
                 does not expire)",
            ));
        }
        Some(d) => Some(created_at + d.as_secs() as i64),
        None => None,
    };
    let token = format!("otter_{}{}", random_id(), random_id());
    let info = ApiToken {
        name: name.to_owned(),
        role,
        created_at,
        last_used_at: None,
        expires_at,
        revoked_at: None,
    };
    match app.store.add_token(&token_hash(&token), &info).await {
        Err(StoreError::Conflict(_)) => {
            return Err(AppError::conflict(
                "token_exists",
                format!("there is a token named {name:?} already (names are never reused)"),
            ));
        }
        other => other?,
    }
    app.tokens.reload(&*app.store).await?;
    tracing::info!(name = %name, role = %role, "admin token created");
    Ok(NewToken { token, info })
}

/// The admin tokens by name, revoked ones too, with the last use this node knows of.
pub async fn list_tokens(app: &App, page: &PageRequest) -> AppResult<Page<ApiToken>> {
    let mut tokens = app.store.list_tokens(page).await?;
    for token in &mut tokens.items {
        token.last_used_at = token.last_used_at.max(app.tokens.last_used(&token.name));
    }
    Ok(tokens)
}

/// Revokes the admin token `name`: refused from then on (on other nodes within a catalogue
/// poll). Revoking a revoked token changes nothing.
pub async fn revoke_token(app: &App, name: &str) -> AppResult<ApiToken> {
    let revoked = match app.store.revoke_token(name, now()).await {
        Err(StoreError::NotFound) => {
            return Err(AppError::not_found(
                "token_not_found",
                format!("no token named {name:?}"),
            ));
        }
        other => other?,
    };
    app.tokens.reload(&*app.store).await?;
    tracing::info!(name = %name, "admin token revoked");
    Ok(revoked)
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
    if !store.all_tokens().await?.is_empty() {
        return Ok(Bootstrap::Existing);
    }
    let token = format!("otter_{}{}", random_id(), random_id());
    let path = data_dir.join("admin-token");
    write_secret(&path, &token)?;
    let generated = ApiToken {
        name: "generated".to_owned(),
        role: Role::Admin,
        created_at: now(),
        last_used_at: None,
        expires_at: None,
        revoked_at: None,
    };
    store.add_token(&token_hash(&token), &generated).await?;
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
