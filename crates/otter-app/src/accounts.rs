//! User accounts of the admin web UI and their login sessions.
//!
//! - A user has a name, a role (the same [`Role`]s as API tokens) and a password kept only as an
//!   argon2id PHC string (the `argon2` crate's defaults, OWASP's m=19 MiB, t=2, p=1). Hashing and
//!   verifying take tens of milliseconds of CPU, so they run on the blocking pool, never on a
//!   request's task.
//! - [`login`] answers a wrong password and an unknown (or disabled) user alike, with the same
//!   work: an unknown name is verified against a dummy hash, so timing does not tell which names
//!   exist. Failures are counted per account and per address ([`LoginLimits`]); past
//!   [`MAX_FAILURES`] within [`FAILURE_WINDOW`] a login is refused before any password is checked.
//! - A session is a random 256-bit secret (the cookie's value) of which only the SHA-256 is
//!   stored. It ends when it expires (`--session-lifetime`), at logout, when an admin revokes the
//!   user's sessions, and when the user is disabled or their password changes. Every request
//!   reads it from the database, so a revocation on one node holds on every node at once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use otter_core::model::{Actor, ActorKind, Page, Role, User, validate_name};
use otter_store::{PageRequest, StoreError, StoredSession, StoredUser, UserChange, now, random_id};
use sha2::{Digest, Sha256};

use crate::{App, AppError, AppResult};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
/// Longest password accepted: argon2 hashes any length, but a megabyte "password" is a way to
/// make the server work, not a password.
const MAX_PASSWORD: usize = 1024;
/// Failed logins an account or an address may have within [`FAILURE_WINDOW`] before logins are
/// refused.
pub const MAX_FAILURES: usize = 5;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How often a session's last use is written at most.
const TOUCH_EVERY: i64 = 60;
/// Keys a [`LoginLimits`] map holds before it drops those with no recent failure, so a flood of
/// made-up names or addresses cannot grow memory without bound.
const PRUNE_AT: usize = 10_000;

/// A live login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The SHA-256 hex of the cookie secret.
    pub id: String,
    /// The user, as [`ActorKind::User`] with their role now.
    pub actor: Actor,
    pub expires_at: i64,
}

/// A session just opened: the secret is the cookie's value, handed out this once.
pub struct NewSession {
    pub secret: String,
    pub session: Session,
}

/// What an admin changes about a user; `None` leaves it.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

/// Recent failed logins by key (an account name, an address), in memory on each node.
struct Failures<K> {
    by_key: Mutex<HashMap<K, VecDeque<Instant>>>,
}

impl<K: std::hash::Hash + Eq + Clone> Failures<K> {
    fn new() -> Self {
        Failures {
            by_key: Mutex::default(),
        }
    }

    /// How long until `key` may try again, if it has [`MAX_FAILURES`] within the window.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        let times = by_key.get(key)?;
        let recent: Vec<&Instant> = times
            .iter()
            .filter(|t| now.duration_since(**t) < FAILURE_WINDOW)
            .collect();
        // Let in again when the oldest failure that keeps the count at the limit leaves the window.
        (recent.len() >= MAX_FAILURES)
            .then(|| FAILURE_WINDOW - now.duration_since(*recent[recent.len() - MAX_FAILURES]))
    }

    fn fail(&self, key: K, now: Instant) {
        let mut by_key = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        if by_key.len() >= PRUNE_AT {
            by_key.retain(|_, times| {
                times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) < FAILURE_WINDOW)
            });
        }
        let times = by_key.entry(key).or_default();
        times.push_back(now);
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    fn clear(&self, key: &K) {
        self.by_key
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

/// Failed logins per account and per remote address.
pub struct LoginLimits {
    accounts: Failures<String>,
    addresses: Failures<IpAddr>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            accounts: Failures::new(),
            addresses: Failures::new(),
        }
    }
}

impl LoginLimits {
    /// How long until a login for `name` from `remote` is let in, if it is refused now.
    fn wait(&self, name: &str, remote: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let account = self.accounts.wait(&name.to_owned(), now);
        let address = remote.and_then(|ip| self.addresses.wait(&ip, now));
        account.max(address)
    }

    /// Counts a failure. A name no user can have (too long, bad characters) is counted for the
    /// address only: keeping it would let made-up megabyte names fill memory.
    fn fail(&self, name: &str, remote: Option<IpAddr>, now: Instant) {
        if validate_name("name", name).is_ok() {
            self.accounts.fail(name.to_owned(), now);
        }
        if let Some(ip) = remote {
            self.addresses.fail(ip, now);
        }
    }

    /// A success resets the account's count (not the address's: one address trying many
    /// accounts stays limited).
    fn succeed(&self, name: &str) {
        self.accounts.clear(&name.to_owned());
    }
}

/// The SHA-256 hex of a session secret: the session's id.
fn session_id(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Hashes `password` as an argon2id PHC string, on the blocking pool.
async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
    })
    .await
    .map_err(AppError::internal)?
    .map_err(AppError::internal)
}

/// Whether `password` matches the PHC string `hash`, on the blocking pool.
async fn verify_password(password: String, hash: String) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .verify_password(password.as_bytes(), hash.as_str())
            .is_ok()
    })
    .await
    .map_err(AppError::internal)
}

/// A hash of a random password with the same parameters as real ones: verifying an unknown
/// user's password against it costs what a real verification does.
async fn dummy_hash() -> AppResult<&'static str> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(hash) = DUMMY.get() {
        return Ok(hash);
    }
    let hash = hash_password(random_id()).await?;
    Ok(DUMMY.get_or_init(|| hash))
}

fn check_password(password: &str) -> AppResult<()> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD {
        return Err(AppError::invalid(
            "weak_password",
            format!("a password needs at least {MIN_PASSWORD} characters"),
        ));
    }
    if password.len() > MAX_PASSWORD {
        return Err(AppError::invalid(
            "invalid_field",
            format!("a password may have at most {MAX_PASSWORD} bytes"),
        ));
    }
    Ok(())
}

fn user_not_found(name: &str) -> AppError {
    AppError::not_found("user_not_found", format!("no user named {name:?}"))
}

fn login_failed() -> AppError {
    AppError::new(
        crate::ErrorKind::Unauthorized,
        "login_failed",
        "wrong user name or password",
    )
}

/// Checks `name`'s password and opens a session; `login_failed` for a wrong password, an
/// unknown or a disabled user alike, `rate_limited` after too many failures.
pub async fn login(
    app: &App,
    name: &str,
    password: &str,
    remote: Option<IpAddr>,
) -> AppResult<NewSession> {
    if let Some(wait) = app.logins.wait(name, remote, Instant::now()) {
        return Err(AppError::rate_limited(
            "too many failed logins: try again later",
            wait,
        ));
    }
    let user = app.store.get_user(name).await?;
    let hash = match &user {
        Some(user) => user.password_hash.clone(),
        None => dummy_hash().await?.to_owned(),
    };
    let matches = verify_password(password.to_owned(), hash).await?;
    let user = match user {
        Some(stored) if matches && !stored.user.disabled => stored.user,
        _ => {
            app.logins.fail(name, remote, Instant::now());
            let remote = remote.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            tracing::warn!(user = %name, %remote, "login failed");
            return Err(login_failed());
        }
    };
    app.logins.succeed(name);
    let secret = format!("{}{}", random_id(), random_id());
    let at = now();
    let stored = StoredSession {
        id: session_id(&secret),
        user_name: user.name.clone(),
        created_at: at,
        expires_at: at.saturating_add(app.config.session_lifetime.as_secs() as i64),
        last_seen_at: at,
        revoked_at: None,
        remote: remote.map(|ip| ip.to_string()),
    };
    app.store.add_session(&stored).await?;
    tracing::info!(user = %user.name, "logged in");
    Ok(NewSession {
        secret,
        session: Session {
            id: stored.id,
            actor: Actor {
                kind: ActorKind::User,
                name: user.name,
                role: user.role,
            },
            expires_at: stored.expires_at,
        },
    })
}

/// The live session whose cookie secret is `secret`; `None` if it is unknown, expired, revoked
/// or its user is disabled.
pub async fn session(app: &App, secret: &str) -> AppResult<Option<Session>> {
    let Some((session, stored)) = app.store.get_session(&session_id(secret)).await? else {
        return Ok(None);
    };
    let at = now();
    if session.revoked_at.is_some() || session.expires_at <= at || stored.user.disabled {
        return Ok(None);
    }
    if at - session.last_seen_at >= TOUCH_EVERY {
        app.store.touch_session(&session.id, at).await?;
    }
    Ok(Some(Session {
        id: session.id,
        actor: Actor {
            kind: ActorKind::User,
            name: stored.user.name,
            role: stored.user.role,
        },
        expires_at: session.expires_at,
    }))
}

/// Ends the session whose cookie secret is `secret` (nothing if there is none).
pub async fn logout(app: &App, secret: &str) -> AppResult<()> {
    app.store.revoke_session(&session_id(secret), now()).await?;
    Ok(())
}

/// Creates a user `name` with `role` and `password`.
pub async fn create_user(app: &App, name: &str, role: Role, password: &str) -> AppResult<User> {
    validate_name("name", name)?;
    check_password(password)?;
    let at = now();
    let stored = StoredUser {
        user: User {
            name: name.to_owned(),
            role,
            disabled: false,
            created_at: at,
            password_changed_at: at,
            last_login_at: None,
        },
        password_hash: hash_password(password.to_owned()).await?,
    };
    match app.store.add_user(&stored).await {
        Err(StoreError::Conflict(_)) => {
            return Err(AppError::conflict(
                "user_exists",
                format!("there is a user named {name:?} already"),
            ));
        }
        other => other?,
    }
    tracing::info!(user = %name, role = %role, "user created");
    Ok(stored.user)
}

/// Users by name, disabled ones too.
pub async fn list_users(app: &App, page: &PageRequest) -> AppResult<Page<User>> {
    Ok(app.store.list_users(page).await?)
}

/// Changes a user's role, disabled flag or password. Disabling them or a new password ends
/// every session of theirs.
pub async fn update_user(app: &App, name: &str, update: UserUpdate) -> AppResult<User> {
    let password_hash = match update.password {
        Some(password) => {
            check_password(&password)?;
            Some(hash_password(password).await?)
        }
        None => None,
    };
    let change = UserChange {
        role: update.role,
        disabled: update.disabled,
        password_hash,
    };
    match app.store.update_user(name, &change, now()).await {
        Err(StoreError::NotFound) => Err(user_not_found(name)),
        Ok(user) => {
            tracing::info!(user = %name, "user changed");
            Ok(user)
        }
        Err(e) => Err(e.into()),
    }
}

/// Ends every session of `name`; returns how many were live.
pub async fn revoke_sessions(app: &App, name: &str) -> AppResult<u64> {
    if app.store.get_user(name).await?.is_none() {
        return Err(user_not_found(name));
    }
    let revoked = app.store.revoke_sessions(name, now()).await?;
    tracing::info!(user = %name, revoked, "sessions revoked");
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_refuse_after_the_limit_until_the_oldest_leaves_the_window() {
        let limits = LoginLimits::default();
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        let ip: IpAddr = [192, 0, 2, 1].into();
        for s in 0..MAX_FAILURES as u64 {
            assert_eq!(limits.wait("ann", Some(ip), at(s)), None);
            limits.fail("ann", Some(ip), at(s));
        }
        assert_eq!(
            limits.wait("ann", None, at(10)),
            Some(FAILURE_WINDOW - Duration::from_secs(10))
        );
        // The address is limited for other accounts too.
        assert!(limits.wait("bob", Some(ip), at(10)).is_some());
        assert_eq!(limits.wait("bob", None, at(10)), None);
        // Once the first failure is older than the window, one more try is let in.
        assert_eq!(
            limits.wait("ann", Some(ip), at(FAILURE_WINDOW.as_secs())),
            None
        );
        // A success resets the account's count, not the address's.
        limits.succeed("ann");
        assert_eq!(limits.wait("ann", None, at(10)), None);
        assert!(limits.wait("ann", Some(ip), at(10)).is_some());
        // A name no user can have is not kept.
        let made_up = "x".repeat(10_000);
        for s in 0..MAX_FAILURES as u64 {
            limits.fail(&made_up, None, at(s));
        }
        assert_eq!(limits.wait(&made_up, None, at(10)), None);
        assert!(
            limits
                .accounts
                .by_key
                .lock()
                .unwrap()
                .get(&made_up)
                .is_none()
        );
    }

    #[tokio::test]
    async fn passwords_hash_as_argon2id_and_verify() {
        let hash = hash_password("correct horse battery".to_owned())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(
            verify_password("correct horse battery".to_owned(), hash.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse battery".to_owned(), hash)
                .await
                .unwrap()
        );
        assert_eq!(check_password("short").unwrap_err().code, "weak_password");
    }
}
