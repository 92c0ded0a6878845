//! [`RolloutStore`] in SQL: rollouts and the devices they took in.
//!
//! The concurrency cap and failure counts hold across nodes because each lives in one row and
//! changes only through a conditional UPDATE: taking a slot is
//! `UPDATE rollouts SET in_flight = in_flight + 1 WHERE … AND in_flight < max`, in the same
//! transaction as the device's row, and giving one back happens in the transaction that ends the
//! device's attempt. On PostgreSQL the UPDATE locks the rollout's row and, under READ COMMITTED,
//! re-checks its condition against the newest committed version once the lock is its own; on
//! SQLite there is one writer at a time (these transactions begin IMMEDIATE).

use async_trait::async_trait;
use otter_core::model::Page;
use otter_core::rollout::{DeviceAttempt, DeviceState, Rollout, RolloutState, StageCounts};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

use super::{Backend, SqlStore, conflict, int_cursor, limit, paginate, timed, u32_of};
use crate::{Failure, PageRequest, Result, RolloutMembers, RolloutStore, SlotAnswer, StoreError};

const COLUMNS: &str = "id, product, version, channel, stages, policy, current_stage, state, \
     counted_from, reason, start_at, stage_started_at, in_flight, created_at, updated_at";

/// States as an SQL list of literals (`'a', 'b'`): they are fixed words, never input.
fn states<S: Copy>(states: &[S], name: impl Fn(S) -> &'static str) -> String {
    states
        .iter()
        .map(|&s| format!("'{}'", name(s)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rollout states that are not over.
pub(super) const ACTIVE: &str = "'scheduled', 'running', 'paused'";

fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(e.to_string())
}

fn rollout_from(row: &AnyRow) -> Result<Rollout> {
    let stages: String = row.try_get("stages")?;
    let policy: String = row.try_get("policy")?;
    let state: String = row.try_get("state")?;
    let in_flight: i64 = row.try_get("in_flight")?;
    Ok(Rollout {
        id: row.try_get("id")?,
        product: row.try_get("product")?,
        version: row.try_get("version")?,
        channel: row.try_get("channel")?,
        stages: serde_json::from_str(&stages).map_err(corrupt)?,
        policy: serde_json::from_str(&policy).map_err(corrupt)?,
        current_stage: u32_of(row.try_get("current_stage")?)?,
        state: state.parse().map_err(corrupt)?,
        counted_from: row.try_get("counted_from")?,
        reason: row.try_get("reason")?,
        start_at: row.try_get("start_at")?,
        stage_started_at: row.try_get("stage_started_at")?,
        in_flight: u64::try_from(in_flight).unwrap_or(0),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A transaction that will write, holding this node's turn among rollout writes on SQLite.
struct WriteTx<'a> {
    tx: Transaction<'static, Any>,
    _turn: Option<tokio::sync::MutexGuard<'a, ()>>,
}

impl SqlStore {
    /// Begins a transaction that will write: on SQLite after this node's earlier rollout writes
    /// (see `rollout_writes`), taking the write lock at once so a read inside it can never go
    /// stale before the write (SQLITE_BUSY).
    async fn begin_write(&self) -> Result<WriteTx<'_>> {
        Ok(match self.backend {
            Backend::Sqlite => {
                let turn = self.rollout_writes.lock().await;
                WriteTx {
                    tx: self.pool.begin_with("BEGIN IMMEDIATE").await?,
                    _turn: Some(turn),
                }
            }
            Backend::Postgres => WriteTx {
                tx: self.pool.begin().await?,
                _turn: None,
            },
        })
    }

    async fn device_state(&self, id: i64, device: &str) -> Result<Option<DeviceState>> {
        let row =
            sqlx::query("SELECT state FROM rollout_devices WHERE rollout = $1 AND device = $2")
                .bind(id)
                .bind(device)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let state: String = r.try_get("state")?;
            state.parse().map_err(corrupt)
        })
        .transpose()
    }
}

/// Takes a slot of running rollout `id` if `max` (0: no cap) leaves one; whether it did.
async fn take_slot(tx: &mut Transaction<'static, Any>, id: i64, max: u32) -> Result<bool> {
    let taken = sqlx::query(
        "UPDATE rollouts SET in_flight = in_flight + 1 \
         WHERE id = $1 AND state = 'running' AND ($2 = 0 OR in_flight < $2)",
    )
    .bind(id)
    .bind(i64::from(max))
    .execute(&mut **tx)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Gives a slot of rollout `id` back.
async fn free_slot(tx: &mut Transaction<'static, Any>, id: i64) -> Result<()> {
    sqlx::query("UPDATE rollouts SET in_flight = in_flight - 1 WHERE id = $1 AND in_flight > 0")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[async_trait]
impl RolloutStore for SqlStore {
    async fn create_rollout(&self, rollout: &Rollout) -> Result<Rollout> {
        timed("create_rollout", async {
            let row = sqlx::query(
                "INSERT INTO rollouts (product, version, channel, stages, policy, current_stage, \
                 state, reason, start_at, stage_started_at, in_flight, created_at, updated_at, \
                 counted_from) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0, $11, $12, $13) RETURNING id",
            )
            .bind(&rollout.product)
            .bind(&rollout.version)
            .bind(&rollout.channel)
            .bind(serde_json::to_string(&rollout.stages).map_err(corrupt)?)
            .bind(serde_json::to_string(&rollout.policy).map_err(corrupt)?)
            .bind(i64::from(rollout.current_stage))
            .bind(rollout.state.as_str())
            .bind(&rollout.reason)
            .bind(rollout.start_at)
            .bind(rollout.stage_started_at)
            .bind(rollout.created_at)
            .bind(rollout.updated_at)
            .bind(rollout.counted_from)
            .fetch_one(&self.pool)
            .await
            .map_err(conflict("rollout"))?;
            Ok(Rollout {
                id: row.try_get("id")?,
                in_flight: 0,
                ..rollout.clone()
            })
        })
        .await
    }

    async fn get_rollout(&self, product: &str, id: i64) -> Result<Option<Rollout>> {
        timed("get_rollout", async {
            let sql = format!("SELECT {COLUMNS} FROM rollouts WHERE product = $1 AND id = $2");
            sqlx::query(AssertSqlSafe(sql))
                .bind(product)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(rollout_from)
                .transpose()
        })
        .await
    }

    async fn list_rollouts(&self, product: &str, page: &PageRequest) -> Result<Page<Rollout>> {
        timed("list_rollouts", async {
            let rows = match int_cursor(page)? {
                Some(before) => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM rollouts WHERE product = $1 AND id < $2 \
                     ORDER BY id DESC LIMIT $3"
                )))
                .bind(product)
                .bind(before)
                .bind(limit(page) + 1),
                None => sqlx::query(AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM rollouts WHERE product = $1 ORDER BY id DESC LIMIT $2"
                )))
                .bind(product)
                .bind(limit(page) + 1),
            }
            .fetch_all(&self.pool)
            .await?;
            let items = rows.iter().map(rollout_from).collect::<Result<_>>()?;
            Ok(paginate(items, page, |r: &Rollout| r.id.to_string()))
        })
        .await
    }

    async fn gating_rollouts(&self, product: &str) -> Result<Vec<Rollout>> {
        timed("gating_rollouts", async {
            let sql = format!(
                "SELECT {COLUMNS} FROM rollouts WHERE product = $1 AND state <> 'completed' \
                 ORDER BY id"
            );
            sqlx::query(AssertSqlSafe(sql))
                .bind(product)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rollout_from)
                .collect()
        })
        .await
    }

    async fn active_rollouts(&self) -> Result<Vec<Rollout>> {
        timed("active_rollouts", async {
            let sql =
                format!("SELECT {COLUMNS} FROM rollouts WHERE state IN ({ACTIVE}) ORDER BY id");
            sqlx::query(AssertSqlSafe(sql))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(rollout_from)
                .collect()
        })
        .await
    }

    async fn set_rollout_state(
        &self,
        id: i64,
        from: &[RolloutState],
        to: RolloutState,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        timed("set_rollout_state", async {
            let sql = format!(
                "UPDATE rollouts SET state = $2, reason = $3, updated_at = $4, \
                 stage_started_at = CASE WHEN state = 'scheduled' THEN $4 \
                 ELSE stage_started_at END, \
                 counted_from = CASE WHEN $2 = 'running' THEN $4 ELSE counted_from END \
                 WHERE id = $1 AND state IN ({})",
                states(from, RolloutState::as_str)
            );
            let done = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(to.as_str())
                .bind(reason)
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn advance_rollout(
        &self,
        id: i64,
        from: &[RolloutState],
        stage: u32,
        completed: bool,
        now: i64,
    ) -> Result<bool> {
        timed("advance_rollout", async {
            let sql = format!(
                "UPDATE rollouts SET current_stage = current_stage + $3, \
                 state = CASE WHEN $4 = 1 THEN 'completed' ELSE state END, \
                 stage_started_at = $5, updated_at = $5 \
                 WHERE id = $1 AND current_stage = $2 AND state IN ({})",
                states(from, RolloutState::as_str)
            );
            let done = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(i64::from(stage))
                .bind(i64::from(!completed))
                .bind(i64::from(completed))
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn abort_release_rollouts(
        &self,
        product: &str,
        version: &str,
        reason: &str,
        now: i64,
    ) -> Result<u64> {
        timed("abort_release_rollouts", async {
            let sql = format!(
                "UPDATE rollouts SET state = 'aborted', reason = $3, updated_at = $4 \
                 WHERE product = $1 AND version = $2 AND state IN ({ACTIVE})"
            );
            let done = sqlx::query(AssertSqlSafe(sql))
                .bind(product)
                .bind(version)
                .bind(reason)
                .bind(now)
                .execute(&self.pool)
                .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn admit_device(
        &self,
        id: i64,
        device: &str,
        stage: u32,
        max_concurrent: u32,
        now: i64,
    ) -> Result<SlotAnswer> {
        timed("admit_device", async {
            // Twice at most: a row another node inserted meanwhile is read back the second time.
            for _ in 0..2 {
                let state = self.device_state(id, device).await?;
                let statement = match state {
                    Some(DeviceState::Offered | DeviceState::Downloading) => {
                        return Ok(SlotAnswer::Holding);
                    }
                    Some(DeviceState::Installed) => return Ok(SlotAnswer::Installed),
                    Some(DeviceState::Failed) => return Ok(SlotAnswer::Failed),
                    Some(DeviceState::Retry) => {
                        "UPDATE rollout_devices SET state = 'offered', stage = $3, \
                         updated_at = $4 WHERE rollout = $1 AND device = $2 AND state = 'retry'"
                    }
                    None => {
                        "INSERT INTO rollout_devices (rollout, device, stage, state, failures, \
                         updated_at) VALUES ($1, $2, $3, 'offered', 0, $4) \
                         ON CONFLICT (rollout, device) DO NOTHING"
                    }
                };
                // `_turn` is held until the transaction ends.
                let WriteTx { mut tx, _turn } = self.begin_write().await?;
                if !take_slot(&mut tx, id, max_concurrent).await? {
                    return Ok(SlotAnswer::Refused);
                }
                let written = sqlx::query(statement)
                    .bind(id)
                    .bind(device)
                    .bind(i64::from(stage))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if written.rows_affected() == 1 {
                    tx.commit().await?;
                    return Ok(SlotAnswer::Admitted);
                }
                // Another node got there first: the slot goes back with the rollback.
                tx.rollback().await?;
            }
            Ok(SlotAnswer::Holding)
        })
        .await
    }

    async fn device_downloading(&self, id: i64, device: &str, now: i64) -> Result<bool> {
        timed("device_downloading", async {
            let done = sqlx::query(
                "UPDATE rollout_devices SET state = 'downloading', updated_at = $3 \
                 WHERE rollout = $1 AND device = $2 AND state IN ('offered', 'downloading')",
            )
            .bind(id)
            .bind(device)
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
        .await
    }

    async fn device_installed(&self, id: i64, device: &str, now: i64) -> Result<bool> {
        timed("device_installed", async {
            // `_turn` is held until the transaction ends.
            let WriteTx { mut tx, _turn } = self.begin_write().await?;
            let flying = sqlx::query(
                "UPDATE rollout_devices SET state = 'installed', updated_at = $3 \
                 WHERE rollout = $1 AND device = $2 AND state IN ('offered', 'downloading')",
            )
            .bind(id)
            .bind(device)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if flying.rows_affected() == 1 {
                free_slot(&mut tx, id).await?;
                tx.commit().await?;
                return Ok(true);
            }
            // A device that failed (or was let in again) installed after all: no slot to free.
            let later = sqlx::query(
                "UPDATE rollout_devices SET state = 'installed', updated_at = $3 \
                 WHERE rollout = $1 AND device = $2 AND state IN ('failed', 'retry')",
            )
            .bind(id)
            .bind(device)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(later.rows_affected() == 1)
        })
        .await
    }

    async fn fail_device(
        &self,
        id: i64,
        device: &str,
        from: &[DeviceState],
        penalty_failures: u32,
        penalty_until: i64,
        now: i64,
    ) -> Result<Option<Failure>> {
        timed("fail_device", async {
            // `_turn` is held until the transaction ends.
            let WriteTx { mut tx, _turn } = self.begin_write().await?;
            // Every SET expression reads the row as it was, so `failures + 1` is the new count.
            let sql = format!(
                "UPDATE rollout_devices SET state = 'failed', failures = failures + 1, \
                 penalty_until = CASE WHEN failures + 1 >= $3 THEN $4 ELSE NULL END, \
                 updated_at = $5 WHERE rollout = $1 AND device = $2 AND state IN ({}) \
                 RETURNING stage, failures, penalty_until",
                states(from, DeviceState::as_str)
            );
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(id)
                .bind(device)
                .bind(i64::from(penalty_failures))
                .bind(penalty_until)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                return Ok(None);
            };
            if from.iter().any(|s| s.in_flight()) {
                free_slot(&mut tx, id).await?;
            }
            tx.commit().await?;
            let until: Option<i64> = row.try_get("penalty_until")?;
            Ok(Some(Failure {
                stage: u32_of(row.try_get("stage")?)?,
                failures: u32_of(row.try_get("failures")?)?,
                boxed: until.is_some(),
            }))
        })
        .await
    }

    async fn stale_devices(&self, id: i64, state: DeviceState, before: i64) -> Result<Vec<String>> {
        timed("stale_devices", async {
            let rows = sqlx::query(
                "SELECT device FROM rollout_devices WHERE rollout = $1 AND state = $2 \
                 AND updated_at < $3 ORDER BY device",
            )
            .bind(id)
            .bind(state.as_str())
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows
                .iter()
                .map(|r| r.try_get("device"))
                .collect::<Result<_, _>>()?)
        })
        .await
    }

    async fn drop_offer(&self, id: i64, device: &str, before: i64) -> Result<bool> {
        timed("drop_offer", async {
            // `_turn` is held until the transaction ends.
            let WriteTx { mut tx, _turn } = self.begin_write().await?;
            let gone = sqlx::query(
                "DELETE FROM rollout_devices WHERE rollout = $1 AND device = $2 \
                 AND state = 'offered' AND updated_at < $3",
            )
            .bind(id)
            .bind(device)
            .bind(before)
            .execute(&mut *tx)
            .await?;
            if gone.rows_affected() == 1 {
                free_slot(&mut tx, id).await?;
            }
            tx.commit().await?;
            Ok(gone.rows_affected() == 1)
        })
        .await
    }

    async fn retry_failed(&self, id: i64, now: i64) -> Result<u64> {
        timed("retry_failed", async {
            // A device whose time in the penalty box is over starts counting failures afresh.
            let done = sqlx::query(
                "UPDATE rollout_devices SET state = 'retry', \
                 failures = CASE WHEN penalty_until IS NULL THEN failures ELSE 0 END, \
                 penalty_until = NULL, updated_at = $2 \
                 WHERE rollout = $1 AND state = 'failed' \
                 AND (penalty_until IS NULL OR penalty_until <= $2)",
            )
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn rollout_counts(
        &self,
        id: i64,
        stages: u32,
        now: i64,
        since: i64,
    ) -> Result<Vec<StageCounts>> {
        timed("rollout_counts", async {
            let rows = sqlx::query(
                "SELECT stage, state, \
                 CAST(CASE WHEN penalty_until > $2 THEN 1 ELSE 0 END AS BIGINT) AS boxed, \
                 COUNT(*) AS n FROM rollout_devices WHERE rollout = $1 AND updated_at >= $3 \
                 GROUP BY 1, 2, 3",
            )
            .bind(id)
            .bind(now)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
            let mut counts = vec![StageCounts::default(); stages as usize];
            for row in rows {
                let stage = u32_of(row.try_get("stage")?)? as usize;
                let state: String = row.try_get("state")?;
                let boxed: i64 = row.try_get("boxed")?;
                let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
                let Some(c) = counts.get_mut(stage) else {
                    continue;
                };
                match (state.parse().map_err(corrupt)?, boxed != 0) {
                    (DeviceState::Offered, _) => c.offered += n,
                    (DeviceState::Downloading, _) => c.downloading += n,
                    (DeviceState::Installed, _) => c.installed += n,
                    (DeviceState::Failed, true) => c.penalty += n,
                    (DeviceState::Failed, false) => c.failed += n,
                    // Let in again: no attempt under way yet.
                    (DeviceState::Retry, _) => {}
                }
            }
            Ok(counts)
        })
        .await
    }

    async fn device_attempts(
        &self,
        product: &str,
        device: &str,
        limit: u32,
    ) -> Result<Vec<DeviceAttempt>> {
        timed("device_attempts", async {
            let rows = sqlx::query(
                "SELECT r.id, r.version, r.channel, r.state AS rollout_state, d.stage, d.state, \
                 d.failures, d.penalty_until FROM rollout_devices d \
                 JOIN rollouts r ON r.id = d.rollout \
                 WHERE r.product = $1 AND d.device = $2 ORDER BY r.id DESC LIMIT $3",
            )
            .bind(product)
            .bind(device)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let rollout_state: String = row.try_get("rollout_state")?;
                    let state: String = row.try_get("state")?;
                    Ok(DeviceAttempt {
                        rollout: row.try_get("id")?,
                        version: row.try_get("version")?,
                        channel: row.try_get("channel")?,
                        rollout_state: rollout_state.parse().map_err(StoreError::Corrupt)?,
                        stage: u32_of(row.try_get("stage")?)?,
                        state: state.parse().map_err(StoreError::Corrupt)?,
                        failures: u32_of(row.try_get("failures")?)?,
                        penalty_until: row.try_get("penalty_until")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn rollout_members(&self, id: i64, now: i64) -> Result<RolloutMembers> {
        timed("rollout_members", async {
            let rows = sqlx::query(
                "SELECT device, state, penalty_until FROM rollout_devices WHERE rollout = $1 \
                 AND state IN ('offered', 'downloading', 'failed')",
            )
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            let mut members = RolloutMembers::default();
            for row in rows {
                let device: String = row.try_get("device")?;
                let state: String = row.try_get("state")?;
                let until: Option<i64> = row.try_get("penalty_until")?;
                match (state.as_str(), until) {
                    ("failed", Some(until)) if until > now => members.penalty.push((device, until)),
                    ("failed", _) => members.failed.push(device),
                    ("downloading", _) => members.downloading.push(device),
                    _ => members.offered.push(device),
                }
            }
            Ok(members)
        })
        .await
    }
}
