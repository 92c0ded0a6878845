//! [`DeviceStore`] in SQL: devices (upserted from batches of sightings, auto-update flag) and
//! their update reports.

use async_trait::async_trait;
use otter_core::model::{Device, DeviceSeen, Page, UpdateReport};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{SqlStore, bool_col, int_cursor, limit, paginate, timed};
use crate::{DeviceStore, NewReport, PageRequest, Result, StoreError};

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
    async fn record_seen(&self, seen: &[DeviceSeen]) -> Result<()> {
        timed("record_seen", async {
            // Upsert in (product, id) order, so batches written at once by several nodes lock
            // rows in the same order and cannot deadlock (PostgreSQL). The sort is stable: a
            // device's later sightings still come after its earlier ones.
            let mut ordered: Vec<&DeviceSeen> = seen.iter().collect();
            ordered.sort_by(|a, b| (&a.product, &a.id).cmp(&(&b.product, &b.id)));
            let mut tx = self.pool.begin().await?;
            for s in ordered {
                // A check-in without `current` keeps what the device said before; one with it
                // replaces both version and hash, so an image the server cannot name (a hash
                // alone) never keeps the version of the image before it. A sighting
                // older than the stored one (a batch from a slower node) changes nothing:
                // last_seen never goes back and an older version never overwrites a newer
                // report.
                sqlx::query(
                    "INSERT INTO devices (product, id, current_version, current_hash, channel, \
                     first_seen, last_seen, attributes) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
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
                       THEN excluded.last_seen ELSE devices.last_seen END",
                )
                .bind(&s.product)
                .bind(&s.id)
                .bind(&s.current_version)
                .bind(&s.current_hash)
                .bind(&s.channel)
                .bind(s.at)
                .bind(s.attributes.as_ref().map(|a| a.to_string()))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
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
