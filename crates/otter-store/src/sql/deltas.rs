//! [`DeltaStore`] in SQL: each product's delta policy and the patches built between releases.

use async_trait::async_trait;
use otter_core::deltas::{Delta, DeltaPolicy};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, timed, to_i64, u32_of};
use crate::{DeltaStore, Result, StoreError};

#[async_trait]
impl DeltaStore for SqlStore {
    async fn set_delta_policy(
        &self,
        product: &str,
        policy: Option<&DeltaPolicy>,
        updated_at: i64,
    ) -> Result<()> {
        timed("set_delta_policy", async {
            match policy {
                Some(policy) => sqlx::query(
                    "INSERT INTO delta_policies (product, format, from_last, from_version, \
                     max_share_percent, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
                     ON CONFLICT (product) DO UPDATE SET format = excluded.format, \
                     from_last = excluded.from_last, from_version = excluded.from_version, \
                     max_share_percent = excluded.max_share_percent, \
                     updated_at = excluded.updated_at",
                )
                .bind(product)
                .bind(&policy.format)
                .bind(policy.from_last.map(i64::from))
                .bind(policy.from_version.as_deref())
                .bind(i64::from(policy.max_share_percent))
                .bind(updated_at),
                None => sqlx::query("DELETE FROM delta_policies WHERE product = $1").bind(product),
            }
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn delta_policy(&self, product: &str) -> Result<Option<DeltaPolicy>> {
        timed("delta_policy", async {
            sqlx::query(
                "SELECT format, from_last, from_version, max_share_percent \
                 FROM delta_policies WHERE product = $1",
            )
            .bind(product)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| policy_of(&row))
            .transpose()
        })
        .await
    }

    async fn all_delta_policies(&self) -> Result<Vec<(String, DeltaPolicy)>> {
        timed("all_delta_policies", async {
            let rows = sqlx::query(
                "SELECT product, format, from_last, from_version, max_share_percent \
                 FROM delta_policies ORDER BY product",
            )
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("product")?, policy_of(row)?)))
                .collect()
        })
        .await
    }

    async fn put_delta(&self, delta: &Delta) -> Result<()> {
        timed("put_delta", async {
            sqlx::query(
                "INSERT INTO deltas (product, to_version, from_version, format, state, size, \
                 sha256, message, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (product, to_version, from_version, format) DO UPDATE SET \
                 state = excluded.state, size = excluded.size, sha256 = excluded.sha256, \
                 message = excluded.message, updated_at = excluded.updated_at",
            )
            .bind(&delta.product)
            .bind(&delta.to)
            .bind(&delta.from)
            .bind(&delta.format)
            .bind(delta.state.as_str())
            .bind(delta.size.map(to_i64).transpose()?)
            .bind(delta.sha256.as_deref())
            .bind(delta.message.as_deref())
            .bind(delta.updated_at)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn deltas(&self, product: &str, to: Option<&str>) -> Result<Vec<Delta>> {
        timed("deltas", async {
            let rows = sqlx::query(
                "SELECT product, to_version, from_version, format, state, size, sha256, message, \
                 updated_at FROM deltas WHERE product = $1 AND ($2 IS NULL OR to_version = $2) \
                 ORDER BY to_version, from_version, format",
            )
            .bind(product)
            .bind(to)
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(delta_of).collect()
        })
        .await
    }
}

fn policy_of(row: &AnyRow) -> Result<DeltaPolicy> {
    Ok(DeltaPolicy {
        format: row.try_get("format")?,
        from_last: row
            .try_get::<Option<i64>, _>("from_last")?
            .map(u32_of)
            .transpose()?,
        from_version: row.try_get("from_version")?,
        max_share_percent: u32_of(row.try_get("max_share_percent")?)?,
    })
}

fn delta_of(row: &AnyRow) -> Result<Delta> {
    let state: String = row.try_get("state")?;
    Ok(Delta {
        product: row.try_get("product")?,
        from: row.try_get("from_version")?,
        to: row.try_get("to_version")?,
        format: row.try_get("format")?,
        state: state.parse().map_err(StoreError::Corrupt)?,
        size: row
            .try_get::<Option<i64>, _>("size")?
            .map(|v| u64::try_from(v).map_err(|_| StoreError::Corrupt("negative size".into())))
            .transpose()?,
        sha256: row.try_get("sha256")?,
        message: row.try_get("message")?,
        updated_at: row.try_get("updated_at")?,
    })
}
