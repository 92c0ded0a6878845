//! [`TokenStore`] and [`OttStore`] in SQL: admin API tokens and one-time download tokens, both
//! kept as the SHA-256 of the token.

use async_trait::async_trait;
use otter_core::ott::OneTimeToken;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, conflict, timed};
use crate::{OttStore, Result, TokenStore};

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

/// Adds an admin token; one that exists (under any label) stays as it is.
const INSERT_TOKEN: &str = "INSERT INTO admin_tokens (token_sha256, label, created_at) \
     VALUES ($1, $2, $3) ON CONFLICT (token_sha256) DO NOTHING";

#[async_trait]
impl TokenStore for SqlStore {
    async fn add_token(&self, token_sha256: &str, label: &str, created_at: i64) -> Result<()> {
        timed("add_token", async {
            sqlx::query(INSERT_TOKEN)
                .bind(token_sha256)
                .bind(label)
                .bind(created_at)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn replace_token(&self, token_sha256: &str, label: &str, created_at: i64) -> Result<()> {
        timed("replace_token", async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM admin_tokens WHERE label = $1 AND token_sha256 <> $2")
                .bind(label)
                .bind(token_sha256)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_TOKEN)
                .bind(token_sha256)
                .bind(label)
                .bind(created_at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn token_hashes(&self) -> Result<Vec<String>> {
        timed("token_hashes", async {
            let rows = sqlx::query("SELECT token_sha256 FROM admin_tokens")
                .fetch_all(&self.pool)
                .await?;
            rows.iter()
                .map(|r| Ok(r.try_get("token_sha256")?))
                .collect()
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
