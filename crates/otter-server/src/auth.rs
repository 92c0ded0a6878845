//! Admin authentication: `Authorization: Bearer <token>`.
//!
//! Tokens are random 256-bit values; only their SHA-256 is stored. A presented token is hashed and
//! compared against every known hash in constant time, so timing reveals nothing about them.

use std::path::Path;
use std::sync::RwLock;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use otter_store::{Store, now, random_id};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

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

/// Makes sure some admin token exists: registers `configured` when given; otherwise, on the very
/// first start, generates one and writes it to `<data>/admin-token` with mode 0600.
pub async fn ensure_admin_token(
    store: &dyn Store,
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<Bootstrap, BootstrapError> {
    if let Some(token) = configured {
        store
            .add_token(&token_hash(token), "configured", now())
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

pub(crate) fn write_secret(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(secret.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Extractor that admits only requests carrying a valid admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match token {
            Some(t) if state.tokens.verify(t) => Ok(Admin),
            Some(_) => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the admin token is not valid",
            )),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint needs `Authorization: Bearer <admin token>`",
            )),
        }
    }
}
