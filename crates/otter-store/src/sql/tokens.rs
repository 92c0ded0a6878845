//! [`TokenStore`] and [`OttStore`] in SQL: admin API tokens (with their names, roles, expiry,
//! revocation and the token clock) and one-time download tokens, both kept as the SHA-256 of the
//! token.

use async_trait::async_trait;
use otter_core::ott::OneTimeToken;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use otter_core::model::{ApiToken, Page};

use super::{SqlStore, conflict, page_by_name, timed};
use crate::{OttStore, PageRequest, Result, StoreError, StoredToken, TokenStore};

fn ott_from(row: &AnyRow) -> Result<OneTimeToken> {
    Ok(OneTimeToken {
        token_sha256: row.try_get("token_sha256")?,
        product: row.try_get("product")?,
        device: row.try_get("device")?,
        artifact: row.try_get("artifact")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        first_used_at: row.try_get("first_used_at")?,
        spent_at: row.try_get("spent_at")?,
    })
}

const TOKEN_COLUMNS: &str =
    "token_sha256, name, role, created_at, last_used_at, expires_at, revoked_at";

fn token_from(row: &AnyRow) -> Result<StoredToken> {
    let role: String = row.try_get("role")?;
    Ok(StoredToken {
        sha256: row.try_get("token_sha256")?,
        token: ApiToken {
            name: row.try_get("name")?,
            role: role.parse().map_err(StoreError::Corrupt)?,
            created_at: row.try_get("created_at")?,
            last_used_at: row.try_get("last_used_at")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
        },
    })
}

/// Moves the token clock on, inside the transaction that changes a token.
async fn bump_token_clock(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<()> {
    sqlx::query("UPDATE token_clock SET version = version + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn add_token(&self, token_sha256: &str, token: &ApiToken) -> Result<()> {
        timed("add_token", async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO admin_tokens (token_sha256, name, role, created_at, last_used_at, \
                 expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(token_sha256)
            .bind(&token.name)
            .bind(token.role.as_str())
            .bind(token.created_at)
            .bind(token.last_used_at)
            .bind(token.expires_at)
            .bind(token.revoked_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict("token"))?;
            bump_token_clock(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn replace_token(&self, token_sha256: &str, name: &str, created_at: i64) -> Result<()> {
        timed("replace_token", async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM admin_tokens WHERE name = $1 AND token_sha256 <> $2")
                .bind(name)
                .bind(token_sha256)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO admin_tokens (token_sha256, name, role, created_at) \
                 VALUES ($1, $2, 'admin', $3) ON CONFLICT (token_sha256) DO UPDATE \
                 SET name = excluded.name, role = 'admin', expires_at = NULL, revoked_at = NULL",
            )
            .bind(token_sha256)
            .bind(name)
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict("token"))?;
            bump_token_clock(&mut tx).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn all_tokens(&self) -> Result<Vec<StoredToken>> {
        timed("all_tokens", async {
            let rows = sqlx::query(AssertSqlSafe(format!(
                "SELECT {TOKEN_COLUMNS} FROM admin_tokens ORDER BY name"
            )))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(token_from).collect()
        })
        .await
    }

    async fn list_tokens(&self, page: &PageRequest) -> Result<Page<ApiToken>> {
        timed(
            "list_tokens",
            page_by_name(
                &self.pool,
                &format!("SELECT {TOKEN_COLUMNS} FROM admin_tokens"),
                page,
                |r| token_from(r).map(|t| t.token),
                |t: &ApiToken| t.name.clone(),
            ),
        )
        .await
    }

    async fn revoke_token(&self, name: &str, at: i64) -> Result<ApiToken> {
        timed("revoke_token", async {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(AssertSqlSafe(format!(
                "UPDATE admin_tokens SET revoked_at = COALESCE(revoked_at, $2) WHERE name = $1 \
                 RETURNING {TOKEN_COLUMNS}"
            )))
            .bind(name)
            .bind(at)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound)?;
            bump_token_clock(&mut tx).await?;
            tx.commit().await?;
            Ok(token_from(&row)?.token)
        })
        .await
    }

    async fn touch_tokens(&self, used: &[(String, i64)]) -> Result<()> {
        timed("touch_tokens", async {
            let mut tx = self.pool.begin().await?;
            for (name, at) in used {
                sqlx::query(
                    "UPDATE admin_tokens SET last_used_at = $2 WHERE name = $1 \
                     AND (last_used_at IS NULL OR last_used_at < $2)",
                )
                .bind(name)
                .bind(*at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn token_version(&self) -> Result<i64> {
        timed("token_version", async {
            let row = sqlx::query("SELECT version FROM token_clock WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
            Ok(row.try_get("version")?)
        })
        .await
    }
}

#[async_trait]
impl OttStore for SqlStore {
    async fn create_ott(&self, t: &OneTimeToken) -> Result<()> {
        timed("create_ott", async {
            sqlx::query(
                "INSERT INTO one_time_tokens (token_sha256, product, device, artifact, \
                 created_at, expires_at, first_used_at, spent_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(&t.token_sha256)
            .bind(&t.product)
            .bind(&t.device)
            .bind(&t.artifact)
            .bind(t.created_at)
            .bind(t.expires_at)
            .bind(t.first_used_at)
            .bind(t.spent_at)
            .execute(&self.pool)
            .await
            .map_err(conflict("one-time token"))?;
            Ok(())
        })
        .await
    }

    async fn get_ott(&self, token_sha256: &str) -> Result<Option<OneTimeToken>> {
        timed("get_ott", async {
            sqlx::query(
                "SELECT token_sha256, product, device, artifact, created_at, expires_at, \
                 first_used_at, spent_at FROM one_time_tokens WHERE token_sha256 = $1",
            )
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(ott_from)
            .transpose()
        })
        .await
    }

    async fn first_use_ott(&self, token_sha256: &str, at: i64, expires_at: i64) -> Result<()> {
        timed("first_use_ott", async {
            sqlx::query(
                "UPDATE one_time_tokens SET first_used_at = $2, expires_at = $3 \
                 WHERE token_sha256 = $1 AND first_used_at IS NULL",
            )
            .bind(token_sha256)
            .bind(at)
            .bind(expires_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn spend_ott(&self, token_sha256: &str, at: i64) -> Result<bool> {
        timed("spend_ott", async {
            let done = sqlx::query(
                "UPDATE one_time_tokens SET spent_at = $2 \
                 WHERE token_sha256 = $1 AND spent_at IS NULL",
            )
            .bind(token_sha256)
            .bind(at)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn purge_otts(&self, before: i64) -> Result<u64> {
        timed("purge_otts", async {
            let done = sqlx::query("DELETE FROM one_time_tokens WHERE expires_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }
}
