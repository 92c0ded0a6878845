//! [`DdiStore`] in SQL: hawkBit DDI tokens, per-product options and actions.

use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{SqlStore, timed};
use crate::{
    ActionState, DdiAction, DdiHolder, DdiOptions, DdiStore, DeviceActions, Result, StoreError,
};

const ACTION_COLUMNS: &str =
    "id, product, device, version, state, execution, created_at, updated_at";

fn action(row: &AnyRow) -> Result<DdiAction> {
    let state: String = row.try_get("state")?;
    Ok(DdiAction {
        id: row.try_get("id")?,
        product: row.try_get("product")?,
        device: row.try_get("device")?,
        version: row.try_get("version")?,
        state: ActionState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("DDI action state {state:?}")))?,
        execution: row.try_get("execution")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn holder(row: &AnyRow) -> Result<DdiHolder> {
    let product: String = row.try_get("product")?;
    let kind: String = row.try_get("kind")?;
    Ok(match kind.as_str() {
        "target" => DdiHolder::Target {
            product,
            device: row.try_get("device")?,
        },
        "gateway" => DdiHolder::Gateway { product },
        other => return Err(StoreError::Corrupt(format!("DDI token kind {other:?}"))),
    })
}

#[async_trait]
impl DdiStore for SqlStore {
    async fn set_ddi_token(&self, token_sha256: &str, holder: &DdiHolder, at: i64) -> Result<()> {
        timed("set_ddi_token", async {
            let (product, kind, device) = match holder {
                DdiHolder::Target { product, device } => (product, "target", device.as_str()),
                DdiHolder::Gateway { product } => (product, "gateway", ""),
            };
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM ddi_tokens WHERE product = $1 AND kind = $2 AND device = $3")
                .bind(product)
                .bind(kind)
                .bind(device)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO ddi_tokens (token_sha256, product, kind, device, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(token_sha256)
            .bind(product)
            .bind(kind)
            .bind(device)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(super::conflict("token"))?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn ddi_token(&self, token_sha256: &str) -> Result<Option<DdiHolder>> {
        timed("ddi_token", async {
            let row =
                sqlx::query("SELECT product, kind, device FROM ddi_tokens WHERE token_sha256 = $1")
                    .bind(token_sha256)
                    .fetch_optional(&self.pool)
                    .await?;
            row.as_ref().map(holder).transpose()
        })
        .await
    }

    async fn ddi_tokens(&self, product: &str) -> Result<Vec<(String, DdiHolder)>> {
        timed("ddi_tokens", async {
            let rows = sqlx::query(
                "SELECT token_sha256, product, kind, device FROM ddi_tokens WHERE product = $1 \
                 ORDER BY token_sha256",
            )
            .bind(product)
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get("token_sha256")?, holder(row)?)))
                .collect()
        })
        .await
    }

    async fn set_ddi_options(&self, product: &str, options: &DdiOptions, at: i64) -> Result<()> {
        timed("set_ddi_options", async {
            sqlx::query(
                "INSERT INTO ddi_products (product, anonymous, token_downloads, updated_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (product) DO UPDATE SET \
                 anonymous = excluded.anonymous, token_downloads = excluded.token_downloads, \
                 updated_at = excluded.updated_at",
            )
            .bind(product)
            .bind(i64::from(options.anonymous))
            .bind(i64::from(options.token_downloads))
            .bind(at)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
        .await
    }

    async fn ddi_options(&self, product: &str) -> Result<DdiOptions> {
        timed("ddi_options", async {
            let row = sqlx::query(
                "SELECT anonymous, token_downloads FROM ddi_products WHERE product = $1",
            )
            .bind(product)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else {
                return Ok(DdiOptions::default());
            };
            Ok(DdiOptions {
                anonymous: row.try_get::<i64, _>("anonymous")? != 0,
                token_downloads: row.try_get::<i64, _>("token_downloads")? != 0,
            })
        })
        .await
    }

    async fn open_ddi_action(
        &self,
        product: &str,
        device: &str,
        version: &str,
        at: i64,
    ) -> Result<DdiAction> {
        timed("open_ddi_action", async {
            // The partial unique index keeps one open action per device: a racing poll that
            // opened one first wins, and this one answers with it.
            let inserted = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO ddi_actions (product, device, version, state, created_at, \
                 updated_at) VALUES ($1, $2, $3, 'open', $4, $4) \
                 ON CONFLICT (product, device) WHERE state = 'open' DO NOTHING \
                 RETURNING {ACTION_COLUMNS}"
            )))
            .bind(product)
            .bind(device)
            .bind(version)
            .bind(at)
            .fetch_optional(&self.pool)
            .await?;
            match inserted {
                Some(row) => action(&row),
                None => open_action(self, product, device)
                    .await?
                    .ok_or(StoreError::NotFound),
            }
        })
        .await
    }

    async fn device_actions(&self, product: &str, device: &str) -> Result<DeviceActions> {
        timed("device_actions", async {
            // One row whatever exists: the device row and each action joined to a constant,
            // the actions found by walking the (product, device, state, id) index from its end.
            let pick = |state: &str| {
                format!(
                    "(SELECT id FROM ddi_actions WHERE product = $1 AND device = $2 \
                     AND state = '{state}' ORDER BY id DESC LIMIT 1)"
                )
            };
            let columns = |t: &str| {
                ACTION_COLUMNS
                    .split(", ")
                    .map(|c| format!("{t}.{c} AS {t}_{c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let sql = format!(
                "SELECT d.current_version, d.last_seen, d.attributes, {}, {} \
                 FROM (SELECT 1 AS one) x \
                 LEFT JOIN devices d ON d.product = $1 AND d.id = $2 \
                 LEFT JOIN ddi_actions o ON o.id = {} \
                 LEFT JOIN ddi_actions i ON i.id = {}",
                columns("o"),
                columns("i"),
                pick("open"),
                pick("installed"),
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(product)
                .bind(device)
                .fetch_one(&self.pool)
                .await?;
            let attributes: Option<String> = row.try_get("attributes")?;
            Ok(DeviceActions {
                open: joined_action(&row, "o")?,
                installed: joined_action(&row, "i")?,
                current_version: row.try_get("current_version")?,
                last_seen: row.try_get("last_seen")?,
                has_attributes: attributes.is_some_and(|a| a.trim() != "{}"),
            })
        })
        .await
    }

    async fn get_ddi_action(
        &self,
        product: &str,
        device: &str,
        id: i64,
    ) -> Result<Option<DdiAction>> {
        timed("get_ddi_action", async {
            sqlx::query(AssertSqlSafe(format!(
                "SELECT {ACTION_COLUMNS} FROM ddi_actions \
                 WHERE id = $1 AND product = $2 AND device = $3"
            )))
            .bind(id)
            .bind(product)
            .bind(device)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(action)
            .transpose()
        })
        .await
    }

    async fn update_ddi_action(
        &self,
        id: i64,
        state: ActionState,
        execution: &str,
        at: i64,
    ) -> Result<bool> {
        timed("update_ddi_action", async {
            let done = sqlx::query(
                "UPDATE ddi_actions SET state = $1, execution = $2, updated_at = $3 \
                 WHERE id = $4 AND state = 'open'",
            )
            .bind(state.as_str())
            .bind(execution)
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }
}

/// The action whose columns carry the prefix `t_` in a joined row, if the join found one.
fn joined_action(row: &AnyRow, t: &str) -> Result<Option<DdiAction>> {
    let col = |c: &str| format!("{t}_{c}");
    let Some(id) = row.try_get::<Option<i64>, _>(col("id").as_str())? else {
        return Ok(None);
    };
    let state: String = row.try_get(col("state").as_str())?;
    Ok(Some(DdiAction {
        id,
        product: row.try_get(col("product").as_str())?,
        device: row.try_get(col("device").as_str())?,
        version: row.try_get(col("version").as_str())?,
        state: ActionState::parse(&state)
            .ok_or_else(|| StoreError::Corrupt(format!("DDI action state {state:?}")))?,
        execution: row.try_get(col("execution").as_str())?,
        created_at: row.try_get(col("created_at").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
    }))
}

async fn open_action(store: &SqlStore, product: &str, device: &str) -> Result<Option<DdiAction>> {
    sqlx::query(AssertSqlSafe(format!(
        "SELECT {ACTION_COLUMNS} FROM ddi_actions \
         WHERE product = $1 AND device = $2 AND state = 'open'"
    )))
    .bind(product)
    .bind(device)
    .fetch_optional(&store.pool)
    .await?
    .as_ref()
    .map(action)
    .transpose()
}
