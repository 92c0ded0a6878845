//! [`ScheduleStore`] in SQL: maintenance windows per channel and poll hints per product.

use async_trait::async_trait;
use otter_core::schedule::{PollHint, WindowSpec};
use sqlx::Row;

use super::{SqlStore, timed};
use crate::{Result, ScheduleStore, StoreError};

#[async_trait]
impl ScheduleStore for SqlStore {
    async fn set_window(
        &self,
        product: &str,
        channel: &str,
        window: Option<&WindowSpec>,
        updated_at: i64,
    ) -> Result<()> {
        timed("set_window", async {
            match window {
                Some(window) => {
                    let spec = serde_json::to_string(window)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    sqlx::query(
                        "INSERT INTO channel_windows (product, channel, spec, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (product, channel) \
                         DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
                    )
                    .bind(product)
                    .bind(channel)
                    .bind(spec)
                    .bind(updated_at)
                    .execute(&self.pool)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM channel_windows WHERE product = $1 AND channel = $2")
                        .bind(product)
                        .bind(channel)
                        .execute(&self.pool)
                        .await?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn windows(&self, product: &str) -> Result<Vec<(String, WindowSpec)>> {
        timed("windows", async {
            let rows = sqlx::query(
                "SELECT channel, spec FROM channel_windows WHERE product = $1 ORDER BY channel",
            )
            .bind(product)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let spec: String = row.try_get("spec")?;
                    let spec = serde_json::from_str(&spec)
                        .map_err(|e| StoreError::Corrupt(format!("window: {e}")))?;
                    Ok((row.try_get("channel")?, spec))
                })
                .collect()
        })
        .await
    }

    async fn set_poll_hint(
        &self,
        product: &str,
        hint: Option<&PollHint>,
        updated_at: i64,
    ) -> Result<()> {
        timed("set_poll_hint", async {
            match hint {
                Some(hint) => sqlx::query(
                    "INSERT INTO poll_hints (product, interval_seconds, jitter_percent, \
                     updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (product) DO UPDATE SET \
                     interval_seconds = excluded.interval_seconds, \
                     jitter_percent = excluded.jitter_percent, updated_at = excluded.updated_at",
                )
                .bind(product)
                .bind(i64::from(hint.interval_seconds))
                .bind(i64::from(hint.jitter_percent))
                .bind(updated_at),
                None => sqlx::query("DELETE FROM poll_hints WHERE product = $1").bind(product),
            }
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn poll_hint(&self, product: &str) -> Result<Option<PollHint>> {
        timed("poll_hint", async {
            let row = sqlx::query(
                "SELECT interval_seconds, jitter_percent FROM poll_hints WHERE product = $1",
            )
            .bind(product)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let corrupt = |col: &str| StoreError::Corrupt(format!("poll hint {col} out of range"));
            let interval: i64 = row.try_get("interval_seconds")?;
            let jitter: i64 = row.try_get("jitter_percent")?;
            Ok(Some(PollHint {
                interval_seconds: interval.try_into().map_err(|_| corrupt("interval"))?,
                jitter_percent: jitter.try_into().map_err(|_| corrupt("jitter"))?,
            }))
        })
        .await
    }
}
