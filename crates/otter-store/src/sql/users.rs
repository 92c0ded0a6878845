//! [`UserStore`] in SQL: user accounts (role, argon2id password hash, disabled flag) and their
//! login sessions, kept by the SHA-256 of the cookie secret.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use otter_core::model::{Page, User};

use super::{SqlStore, bool_col, conflict, page_by_name, timed};
use crate::{PageRequest, Result, StoreError, StoredSession, StoredUser, UserChange, UserStore};

const USER_COLUMNS: &str =
    "name, role, password_hash, disabled, created_at, password_changed_at, last_login_at";

fn user_from(row: &AnyRow) -> Result<StoredUser> {
    let role: String = row.try_get("role")?;
    Ok(StoredUser {
        user: User {
            name: row.try_get("name")?,
            role: role.parse().map_err(StoreError::Corrupt)?,
            disabled: bool_col(row, "disabled")?,
            created_at: row.try_get("created_at")?,
            password_changed_at: row.try_get("password_changed_at")?,
            last_login_at: row.try_get("last_login_at")?,
        },
        password_hash: row.try_get("password_hash")?,
    })
}

fn session_from(row: &AnyRow) -> Result<StoredSession> {
    Ok(StoredSession {
        id: row.try_get("id")?,
        user_name: row.try_get("user_name")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_seen_at: row.try_get("last_seen_at")?,
        revoked_at: row.try_get("revoked_at")?,
        remote: row.try_get("remote")?,
    })
}

/// Revokes every live session of `user`, inside the caller's transaction.
async fn revoke_all(tx: &mut sqlx::Transaction<'_, sqlx::Any>, user: &str, at: i64) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $2 WHERE user_name = $1 AND revoked_at IS NULL",
    )
    .bind(user)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

impl SqlStore {
    async fn select_user(&self, name: &str) -> Result<Option<StoredUser>> {
        sqlx::query(AssertSqlSafe(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE name = $1"
        )))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(user_from)
        .transpose()
    }
}

#[async_trait]
impl UserStore for SqlStore {
    async fn add_user(&self, stored: &StoredUser) -> Result<()> {
        timed("add_user", async {
            let u = &stored.user;
            sqlx::query(
                "INSERT INTO users (name, role, password_hash, disabled, created_at, \
                 password_changed_at, last_login_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&u.name)
            .bind(u.role.as_str())
            .bind(&stored.password_hash)
            .bind(i64::from(u.disabled))
            .bind(u.created_at)
            .bind(u.password_changed_at)
            .bind(u.last_login_at)
            .execute(&self.pool)
            .await
            .map_err(conflict("user"))?;
            Ok(())
        })
        .await
    }

    async fn get_user(&self, name: &str) -> Result<Option<StoredUser>> {
        timed("get_user", self.select_user(name)).await
    }

    async fn list_users(&self, page: &PageRequest) -> Result<Page<User>> {
        timed(
            "list_users",
            page_by_name(
                &self.pool,
                &format!("SELECT {USER_COLUMNS} FROM users"),
                page,
                |r| user_from(r).map(|u| u.user),
                |u: &User| u.name.clone(),
            ),
        )
        .await
    }

    async fn all_users(&self) -> Result<Vec<StoredUser>> {
        timed("all_users", async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY name"
            )))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(user_from).collect()
        })
        .await
    }

    async fn update_user(&self, name: &str, change: &UserChange, at: i64) -> Result<User> {
        timed("update_user", async {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE users SET role = COALESCE($2, role), \
                 disabled = COALESCE($3, disabled), \
                 password_hash = COALESCE($4, password_hash), \
                 password_changed_at = CASE WHEN $4 IS NULL THEN password_changed_at \
                 ELSE $5 END \
                 WHERE name = $1 RETURNING {USER_COLUMNS}"
            )))
            .bind(name)
            .bind(change.role.map(|r| r.as_str()))
            .bind(change.disabled.map(i64::from))
            .bind(change.password_hash.as_deref())
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            if change.ends_sessions() {
                revoke_all(&mut tx, name, at).await?;
            }
            tx.commit().await?;
            Ok(user_from(&row)?.user)
        })
        .await
    }

    async fn add_session(&self, s: &StoredSession) -> Result<()> {
        timed("add_session", async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO sessions (id, user_name, created_at, expires_at, last_seen_at, \
                 revoked_at, remote) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.id)
            .bind(&s.user_name)
            .bind(s.created_at)
            .bind(s.expires_at)
            .bind(s.last_seen_at)
            .bind(s.revoked_at)
            .bind(s.remote.as_deref())
            .execute(&mut *tx)
            .await
            .map_err(conflict("session"))?;
            sqlx::query("UPDATE users SET last_login_at = $2 WHERE name = $1")
                .bind(&s.user_name)
                .bind(s.created_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn get_session(&self, id: &str) -> Result<Option<(StoredSession, StoredUser)>> {
        timed("get_session", async {
            let Some(row) = sqlx::query(
                "SELECT id, user_name, created_at, expires_at, last_seen_at, revoked_at, remote \
                 FROM sessions WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            else {
                return Ok(None);
            };
            let session = session_from(&row)?;
            let user = self.select_user(&session.user_name).await?.ok_or_else(|| {
                StoreError::Corrupt(format!("session of no user {:?}", session.user_name))
            })?;
            Ok(Some((session, user)))
        })
        .await
    }

    async fn touch_session(&self, id: &str, at: i64) -> Result<()> {
        timed("touch_session", async {
            sqlx::query(
                "UPDATE sessions SET last_seen_at = $2 WHERE id = $1 AND last_seen_at < $2",
            )
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn revoke_session(&self, id: &str, at: i64) -> Result<()> {
        timed("revoke_session", async {
            sqlx::query("UPDATE sessions SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
                .bind(id)
                .bind(at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn revoke_sessions(&self, user: &str, at: i64) -> Result<u64> {
        timed("revoke_sessions", async {
            let mut tx = self.pool.begin().await?;
            let revoked = revoke_all(&mut tx, user, at).await?;
            tx.commit().await?;
            Ok(revoked)
        })
        .await
    }
}
