//! [`AccessStore`] in SQL: product keys, per-device access rules, device API keys and the
//! public keys a product's releases must be signed with.

use async_trait::async_trait;
use otter_core::access::Access;
use otter_core::model::ApiKey;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, conflict, timed};
use crate::{AccessStore, Result, StoreError};

fn api_key_from(row: &AnyRow) -> Result<ApiKey> {
    let hash: String = row.try_get("key_sha256")?;
    Ok(ApiKey {
        id: hash.chars().take(16).collect(),
        product: row.try_get("product")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn set_product_key(
        &self,
        product: &str,
        key_sha256: &str,
        created_at: i64,
    ) -> Result<()> {
        timed("set_product_key", async {
            sqlx::query(
                "INSERT INTO product_keys (product, key_sha256, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (product) DO UPDATE SET key_sha256 = excluded.key_sha256, \
                 created_at = excluded.created_at",
            )
            .bind(product)
            .bind(key_sha256)
            .bind(created_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn product_key(&self, product: &str) -> Result<Option<String>> {
        timed("product_key", async {
            let row = sqlx::query("SELECT key_sha256 FROM product_keys WHERE product = $1")
                .bind(product)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| r.try_get("key_sha256")).transpose()?)
        })
        .await
    }

    async fn set_device_access(
        &self,
        product: &str,
        device: &str,
        access: Option<Access>,
        updated_at: i64,
    ) -> Result<()> {
        timed("set_device_access", async {
            match access {
                Some(access) => sqlx::query(
                    "INSERT INTO device_access (product, device, access, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (product, device) \
                     DO UPDATE SET access = excluded.access, updated_at = excluded.updated_at",
                )
                .bind(product)
                .bind(device)
                .bind(access.as_str())
                .bind(updated_at),
                None => sqlx::query("DELETE FROM device_access WHERE product = $1 AND device = $2")
                    .bind(product)
                    .bind(device),
            }
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn device_access(&self, product: &str) -> Result<Vec<(String, Access)>> {
        timed("device_access", async {
            let rows = sqlx::query(
                "SELECT device, access FROM device_access WHERE product = $1 ORDER BY device",
            )
            .bind(product)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| {
                    let access: String = r.try_get("access")?;
                    Ok((
                        r.try_get("device")?,
                        access.parse().map_err(StoreError::Corrupt)?,
                    ))
                })
                .collect()
        })
        .await
    }

    async fn add_api_key(&self, key: &ApiKey, key_sha256: &str) -> Result<()> {
        timed("add_api_key", async {
            sqlx::query(
                "INSERT INTO api_keys (key_sha256, product, label, created_at) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(key_sha256)
            .bind(&key.product)
            .bind(&key.label)
            .bind(key.created_at)
            .execute(&self.pool)
            .await
            .map_err(conflict("API key"))?;
            Ok(())
        })
        .await
    }

    async fn api_keys(&self, product: &str) -> Result<Vec<ApiKey>> {
        timed("api_keys", async {
            sqlx::query(
                "SELECT key_sha256, product, label, created_at FROM api_keys WHERE product = $1 \
                 ORDER BY created_at, key_sha256",
            )
            .bind(product)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(api_key_from)
            .collect()
        })
        .await
    }

    async fn api_key_hashes(&self, product: &str) -> Result<Vec<String>> {
        timed("api_key_hashes", async {
            let rows = sqlx::query("SELECT key_sha256 FROM api_keys WHERE product = $1")
                .bind(product)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("key_sha256")?)).collect()
        })
        .await
    }

    async fn api_key_product(&self, key_sha256: &str) -> Result<Option<String>> {
        timed("api_key_product", async {
            let row = sqlx::query("SELECT product FROM api_keys WHERE key_sha256 = $1")
                .bind(key_sha256)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| r.try_get("product")).transpose()?)
        })
        .await
    }

    async fn delete_api_key(&self, product: &str, id: &str) -> Result<bool> {
        timed("delete_api_key", async {
            let done = sqlx::query(
                "DELETE FROM api_keys WHERE product = $1 AND substr(key_sha256, 1, 16) = $2",
            )
            .bind(product)
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn set_signing_key(
        &self,
        product: &str,
        kind: &str,
        public_key: &str,
        created_at: i64,
    ) -> Result<()> {
        timed("set_signing_key", async {
            sqlx::query(
                "INSERT INTO product_signing_keys (product, kind, public_key, created_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (product, kind) \
                 DO UPDATE SET public_key = excluded.public_key, created_at = excluded.created_at",
            )
            .bind(product)
            .bind(kind)
            .bind(public_key)
            .bind(created_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn signing_keys(&self, product: &str) -> Result<Vec<(String, String)>> {
        timed("signing_keys", async {
            let rows = sqlx::query(
                "SELECT kind, public_key FROM product_signing_keys WHERE product = $1 \
                 ORDER BY kind",
            )
            .bind(product)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|r| Ok((r.try_get("kind")?, r.try_get("public_key")?)))
                .collect()
        })
        .await
    }
}
