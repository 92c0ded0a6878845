//! [`DeviceStore`] in SQL: devices (upserted from batches of sightings, one multi-row statement
//! per few hundred devices, within a cap per product; auto-update flag) and their update reports.

use std::collections::HashSet;

use async_trait::async_trait;
use otter_core::model::{Device, DeviceSeen, Page, UpdateReport};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use super::{Backend, SqlStore, bool_col, int_cursor, limit, paginate, timed};
use crate::{DeviceStore, NewReport, OverLimit, PageRequest, Result, StoreError};

/// The columns of a device; a macro so `concat!` can build `'static` queries with it.
macro_rules! device_select {
    () => {
        "SELECT product, id, current_version, current_hash, channel, first_seen, last_seen, \
         auto_update, attributes FROM devices"
    };
}

fn device_from(row: &AnyRow) -> Result<Device> {
    let attributes: Option<String> = row.try_get("attributes")?;
    let attributes = match attributes {
        Some(text) => {
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?
        }
        None => serde_json::Value::Object(Default::default()),
    };
    Ok(Device {
        product: row.try_get("product")?,
        id: row.try_get("id")?,
        current_version: row.try_get("current_version")?,
        current_hash: row.try_get("current_hash")?,
        channel: row.try_get("channel")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
        auto_update: bool_col(row, "auto_update")?,
        attributes,
    })
}

fn report_from(row: &AnyRow) -> Result<UpdateReport> {
    let state: String = row.try_get("state")?;
    Ok(UpdateReport {
        id: row.try_get("id")?,
        product: row.try_get("product")?,
        device: row.try_get("device")?,
        version: row.try_get("version")?,
        state: state.parse().map_err(StoreError::Corrupt)?,
        message: row.try_get("message")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Rows per upsert statement (and ids per lookup): with 8 parameters a row, far below SQLite's
/// 32,766 and PostgreSQL's 65,535 parameters a statement, while a large batch still takes few
/// round trips.
const ROWS_PER_STATEMENT: usize = 512;

/// The sightings of a batch folded to one per device, in (product, id) order: one statement may
/// not upsert a row twice (PostgreSQL), and batches written at once by several nodes lock rows in
/// the same order, so they cannot deadlock.
fn coalesce(seen: &[DeviceSeen]) -> Vec<DeviceSeen> {
    let mut ordered: Vec<&DeviceSeen> = seen.iter().collect();
    // Stable: a device's later sightings still come after its earlier ones.
    ordered.sort_by(|a, b| (&a.product, &a.id).cmp(&(&b.product, &b.id)));
    let mut devices: Vec<DeviceSeen> = Vec::with_capacity(ordered.len());
    for s in ordered {
        match devices.last_mut() {
            Some(last) if last.product == s.product && last.id == s.id => last.absorb(s.clone()),
            _ => devices.push(s.clone()),
        }
    }
    devices
}

/// `count` numbered parameters from `$first`, comma-separated.
fn params(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One statement upserting `rows` devices (8 parameters each).
fn upsert_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|row| format!("({})", params(row * 8 + 1, 8)))
        .collect::<Vec<_>>()
        .join(", ");
    // A check-in without `current` keeps what the device said before; one with it replaces both
    // version and hash, so an image the server cannot name (a hash alone) never keeps the
    // version of the image before it. A sighting older than the stored one (a batch from a
    // slower node) changes nothing: last_seen never goes back and an older version never
    // overwrites a newer report.
    format!(
        "INSERT INTO devices (product, id, current_version, current_hash, channel, first_seen, \
         last_seen, attributes) VALUES {values} \
         ON CONFLICT (product, id) DO UPDATE SET \
         attributes = CASE WHEN excluded.last_seen >= devices.last_seen \
           THEN COALESCE(excluded.attributes, devices.attributes) \
           ELSE devices.attributes END, \
         current_version = CASE WHEN excluded.last_seen < devices.last_seen \
           OR (excluded.current_version IS NULL AND excluded.current_hash IS NULL) \
           THEN devices.current_version ELSE excluded.current_version END, \
         current_hash = CASE WHEN excluded.last_seen < devices.last_seen \
           OR (excluded.current_version IS NULL AND excluded.current_hash IS NULL) \
           THEN devices.current_hash ELSE excluded.current_hash END, \
         channel = CASE WHEN excluded.last_seen >= devices.last_seen \
           THEN excluded.channel ELSE devices.channel END, \
         last_seen = CASE WHEN excluded.last_seen > devices.last_seen \
           THEN excluded.last_seen ELSE devices.last_seen END"
    )
}

/// The devices of `devices` (coalesced, in product order) to write under a cap of `max` devices
/// per product: every device the product knows, and new ones while there is room. The new ones
/// left out are added to `over`. Costs a count of the product's devices (which the cap keeps
/// small), and a lookup of the batch's ids only when the batch could take the product past the
/// cap.
async fn within_limit<'a>(
    conn: &mut AnyConnection,
    devices: &'a [DeviceSeen],
    max: u64,
    over: &mut OverLimit,
) -> Result<Vec<&'a DeviceSeen>> {
    let mut kept = Vec::with_capacity(devices.len());
    for group in devices.chunk_by(|a, b| a.product == b.product) {
        let product = &group[0].product;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM devices WHERE product = $1")
            .bind(product)
            .fetch_one(&mut *conn)
            .await?;
        let count = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
        if count + group.len() as u64 <= max {
            kept.extend(group);
            continue;
        }
        let mut known = HashSet::new();
        for ids in group.chunks(ROWS_PER_STATEMENT) {
            // Safe: only numbered placeholders are interpolated; every value is bound.
            let sql = format!(
                "SELECT id FROM devices WHERE product = $1 AND id IN ({})",
                params(2, ids.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(product);
            for s in ids {
                query = query.bind(&s.id);
            }
            for row in query.fetch_all(&mut *conn).await? {
                known.insert(row.try_get::<String, _>("id")?);
            }
        }
        let new = (group.len() - known.len()) as u64;
        let room = max.saturating_sub(count);
        let mut admitted = 0;
        for s in group {
            if known.contains(&s.id) {
                kept.push(s);
            } else if admitted < room {
                admitted += 1;
                kept.push(s);
            }
        }
        if new > admitted {
            over.insert(product.clone(), new - admitted);
        }
    }
    Ok(kept)
}

/// One device (shared by `get_device` and `set_auto_update`, which reads back what it changed
/// without timing a second operation).
async fn fetch_device(pool: &AnyPool, product: &str, id: &str) -> Result<Option<Device>> {
    sqlx::query(concat!(device_select!(), " WHERE product = $1 AND id = $2"))
        .bind(product)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(device_from)
        .transpose()
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn record_seen(
        &self,
        seen: &[DeviceSeen],
        max_devices: Option<u64>,
    ) -> Result<OverLimit> {
        timed("record_seen", async {
            let devices = coalesce(seen);
            // It reads (the cap) before it writes: on SQLite, a deferred transaction could not
            // write once another connection had committed after its read (SQLITE_BUSY), so it
            // takes the write lock first, waiting out the busy timeout.
            let mut tx = match (self.backend, max_devices) {
                (Backend::Sqlite, Some(_)) => self.pool.begin_with("BEGIN IMMEDIATE").await?,
                _ => self.pool.begin().await?,
            };
            let mut over = OverLimit::new();
            let kept = match max_devices {
                Some(max) => within_limit(&mut tx, &devices, max, &mut over).await?,
                None => devices.iter().collect(),
            };
            for rows in kept.chunks(ROWS_PER_STATEMENT) {
                // Safe: only numbered placeholders are interpolated; every value is bound.
                let mut query = sqlx::query(AssertSqlSafe(upsert_sql(rows.len())));
                for s in rows {
                    query = query
                        .bind(&s.product)
                        .bind(&s.id)
                        .bind(&s.current_version)
                        .bind(&s.current_hash)
                        .bind(&s.channel)
                        .bind(s.first_at)
                        .bind(s.at)
                        .bind(s.attributes.as_ref().map(|a| a.to_string()));
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(over)
        })
        .await
    }

    async fn list_devices(&self, product: &str, page: &PageRequest) -> Result<Page<Device>> {
        timed("list_devices", async {
            let rows = match &page.cursor {
                Some(after) => sqlx::query(concat!(
                    device_select!(),
                    " WHERE product = $1 AND id > $2 ORDER BY id LIMIT $3"
                ))
                .bind(product)
                .bind(after)
                .bind(limit(page) + 1),
                None => sqlx::query(concat!(
                    device_select!(),
                    " WHERE product = $1 ORDER BY id LIMIT $2"
                ))
                .bind(product)
                .bind(limit(page) + 1),
            }
            .fetch_all(&self.pool)
            .await?;
            let items = rows.iter().map(device_from).collect::<Result<_>>()?;
            Ok(paginate(items, page, |d: &Device| d.id.clone()))
        })
        .await
    }

    async fn get_device(&self, product: &str, id: &str) -> Result<Option<Device>> {
        timed("get_device", fetch_device(&self.pool, product, id)).await
    }

    async fn set_auto_update(&self, product: &str, id: &str, on: bool) -> Result<Device> {
        timed("set_auto_update", async {
            let done =
                sqlx::query("UPDATE devices SET auto_update = $3 WHERE product = $1 AND id = $2")
                    .bind(product)
                    .bind(id)
                    .bind(i64::from(on))
                    .execute(&self.pool)
                    .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            fetch_device(&self.pool, product, id)
                .await?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn insert_report(&self, r: &NewReport) -> Result<UpdateReport> {
        timed("insert_report", async {
            let row = sqlx::query(
                "INSERT INTO update_reports (product, device, version, state, message, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(&r.product)
            .bind(&r.device)
            .bind(&r.version)
            .bind(r.state.as_str())
            .bind(&r.message)
            .bind(r.created_at)
            .fetch_one(&self.pool)
            .await?;
            Ok(UpdateReport {
                id: row.try_get("id")?,
                product: r.product.clone(),
                device: r.device.clone(),
                version: r.version.clone(),
                state: r.state,
                message: r.message.clone(),
                created_at: r.created_at,
            })
        })
        .await
    }

    async fn list_reports(
        &self,
        product: &str,
        device: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<UpdateReport>> {
        timed("list_reports", async {
            let before = int_cursor(page)?.unwrap_or(i64::MAX);
            macro_rules! cols {
                () => {
                    "SELECT id, product, device, version, state, message, created_at \
                     FROM update_reports"
                };
            }
            let query = match device {
                Some(device) => sqlx::query(concat!(
                    cols!(),
                    " WHERE product = $1 AND device = $2 AND id < $3 ORDER BY id DESC LIMIT $4"
                ))
                .bind(product)
                .bind(device),
                None => sqlx::query(concat!(
                    cols!(),
                    " WHERE product = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
                ))
                .bind(product),
            };
            let rows = query
                .bind(before)
                .bind(limit(page) + 1)
                .fetch_all(&self.pool)
                .await?;
            let items = rows.iter().map(report_from).collect::<Result<_>>()?;
            Ok(paginate(items, page, |r: &UpdateReport| r.id.to_string()))
        })
        .await
    }
}
