//! [`DeviceStore`] in SQL: devices (upserted from batches of sightings, one multi-row statement
//! per few hundred devices, within a cap per product), what operators set on them (auto-update,
//! assigned channel, pin, tags: tagging by filter is one statement however many devices match)
//! and their update reports.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use otter_core::model::{Device, DeviceSeen, Page, ReportState, UpdateReport};
use serde_json::Value;
use sqlx::any::AnyArguments;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, AssertSqlSafe, Row};

use super::rollouts::ACTIVE;
use super::{Backend, SqlStore, bool_col, int_cursor, limit, paginate, timed};
use crate::{
    DeviceChange, DeviceControls, DeviceFilter, DeviceStore, FleetSummary, NewReport, OverLimit,
    PageRequest, Result, RolloutStatus, StoreError,
};

/// The columns of a device; a macro so `concat!` can build `'static` queries with it.
macro_rules! device_select {
    () => {
        "SELECT product, id, current_version, current_hash, channel, first_seen, last_seen, \
         auto_update, attributes, protocol, remote_addr, assigned_channel, pinned_version \
         FROM devices d"
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
        protocol: row.try_get("protocol")?,
        remote_address: row.try_get("remote_addr")?,
        // Filled in by `with_tags`.
        tags: Vec::new(),
        assigned_channel: row.try_get("assigned_channel")?,
        pinned_version: row.try_get("pinned_version")?,
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

/// Rows per upsert statement (and ids per lookup): with 10 parameters a row, far below SQLite's
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
/// Numbered placeholders `$first`, `$first+1`…, which both backends take.
fn numbered(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders for a statement with thousands of them: on SQLite the anonymous `?`, bound in
/// order. Binding a numbered one costs a walk of the statement's parameter names (sqlx asks
/// SQLite each one's name), so 5,000 of them cost the square of that: most of a core for the
/// sighting writer under load. `?` has no name to look up. PostgreSQL takes only `$n`.
fn bulk_params(backend: Backend, first: usize, count: usize) -> String {
    match backend {
        Backend::Sqlite => vec!["?"; count].join(", "),
        Backend::Postgres => numbered(first, count),
    }
}

/// One statement upserting `rows` devices (10 parameters each).
fn upsert_sql(backend: Backend, rows: usize) -> String {
    let values = (0..rows)
        .map(|row| format!("({})", bulk_params(backend, row * 10 + 1, 10)))
        .collect::<Vec<_>>()
        .join(", ");
    // A check-in without `current` keeps what the device said before; one with it replaces both
    // version and hash, so an image the server cannot name (a hash alone) never keeps the
    // version of the image before it. A sighting older than the stored one (a batch from a
    // slower node) changes nothing: last_seen never goes back and an older version never
    // overwrites a newer report. A sighting that names no protocol (a report) keeps the protocol
    // and address of the check-in before.
    format!(
        "INSERT INTO devices (product, id, current_version, current_hash, channel, first_seen, \
         last_seen, attributes, protocol, remote_addr) VALUES {values} \
         ON CONFLICT (product, id) DO UPDATE SET \
         protocol = CASE WHEN excluded.last_seen >= devices.last_seen \
           AND excluded.protocol IS NOT NULL THEN excluded.protocol ELSE devices.protocol END, \
         remote_addr = CASE WHEN excluded.last_seen >= devices.last_seen \
           AND excluded.protocol IS NOT NULL THEN excluded.remote_addr \
           ELSE devices.remote_addr END, \
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
    backend: Backend,
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
                "SELECT id FROM devices WHERE product = {} AND id IN ({})",
                bulk_params(backend, 1, 1),
                bulk_params(backend, 2, ids.len())
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
    let device = sqlx::query(concat!(device_select!(), " WHERE product = $1 AND id = $2"))
        .bind(product)
        .bind(id)
        .fetch_optional(pool)
        .await?
        .as_ref()
        .map(device_from)
        .transpose()?;
    match device {
        Some(device) => Ok(with_tags(pool, product, vec![device]).await?.pop()),
        None => Ok(None),
    }
}

/// `devices` (of `product`) with their tags, read in one statement.
async fn with_tags(pool: &AnyPool, product: &str, mut devices: Vec<Device>) -> Result<Vec<Device>> {
    if devices.is_empty() {
        return Ok(devices);
    }
    // Safe: only numbered placeholders are interpolated; every value is bound.
    let sql = format!(
        "SELECT device, tag FROM device_tags WHERE product = $1 AND device IN ({}) ORDER BY tag",
        numbered(2, devices.len())
    );
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(product);
    for d in &devices {
        query = query.bind(&d.id);
    }
    let mut tags: HashMap<String, Vec<String>> = HashMap::new();
    for row in query.fetch_all(pool).await? {
        tags.entry(row.try_get("device")?)
            .or_default()
            .push(row.try_get("tag")?);
    }
    for d in &mut devices {
        d.tags = tags.remove(&d.id).unwrap_or_default();
    }
    Ok(devices)
}

/// A value bound to a filter's placeholder.
enum Bound {
    Text(String),
    Int(i64),
}

/// `filter` as SQL conditions on `devices d` (each starting with ` AND `), numbered from
/// `$first`, and the values to bind to them in order.
fn filter_sql(filter: &DeviceFilter, first: usize, backend: Backend) -> (String, Vec<Bound>) {
    let text = |v: &Option<String>| v.clone().map(Bound::Text);
    // `?` marks where each condition's placeholder goes.
    let conditions = [
        ("d.id = ?", text(&filter.device)),
        (
            "EXISTS (SELECT 1 FROM device_tags t WHERE t.product = d.product \
             AND t.device = d.id AND t.tag = ?)",
            text(&filter.tag),
        ),
        ("d.current_version = ?", text(&filter.version)),
        (
            "COALESCE(d.assigned_channel, d.channel) = ?",
            text(&filter.channel),
        ),
        ("d.protocol = ?", text(&filter.protocol)),
        // Attributes are a JSON object stored as compact text, the same on both backends: the
        // pair is found as its own JSON text, `"key":"value"` (quotes included, so neither a
        // longer key nor a longer value matches), case-sensitively (SQLite's LIKE is not).
        (
            match backend {
                Backend::Sqlite => "instr(d.attributes, ?) > 0",
                Backend::Postgres => "strpos(d.attributes, ?) > 0",
            },
            filter.attribute.as_ref().map(|(key, value)| {
                Bound::Text(format!(
                    "{}:{}",
                    Value::from(key.as_str()),
                    Value::from(value.as_str())
                ))
            }),
        ),
        ("d.last_seen < ?", filter.seen_before.map(Bound::Int)),
        ("d.last_seen >= ?", filter.seen_after.map(Bound::Int)),
    ];
    let status = filter.status.map(|(status, at)| {
        let (state, penalty) = match status {
            RolloutStatus::Offered => ("offered", String::new()),
            RolloutStatus::Downloading => ("downloading", String::new()),
            RolloutStatus::Installed => ("installed", String::new()),
            RolloutStatus::Failed => (
                "failed",
                format!(" AND (x.penalty_until IS NULL OR x.penalty_until <= {at})"),
            ),
            RolloutStatus::Penalty => ("failed", format!(" AND x.penalty_until > {at}")),
        };
        // `at` is a number otter computed, never client text, so it can be written inline.
        (
            format!(
                "EXISTS (SELECT 1 FROM rollout_devices x JOIN rollouts r ON r.id = x.rollout \
                 WHERE r.product = d.product AND r.state IN ({ACTIVE}) \
                 AND x.device = d.id AND x.state = ?{penalty})"
            ),
            Some(Bound::Text(state.to_owned())),
        )
    });
    let conditions = conditions
        .into_iter()
        .map(|(condition, value)| (condition.to_owned(), value))
        .chain(status);
    let mut sql = String::new();
    let mut values = Vec::new();
    for (condition, value) in conditions {
        if let Some(value) = value {
            let placeholder = format!("${}", first + values.len());
            sql.push_str(" AND ");
            sql.push_str(&condition.replace('?', &placeholder));
            values.push(value);
        }
    }
    (sql, values)
}

/// Binds a filter's values (from [`filter_sql`]) to `query`, in order.
fn bind_filter<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Any, AnyArguments>,
    values: Vec<Bound>,
) -> sqlx::query::Query<'q, sqlx::Any, AnyArguments> {
    for value in values {
        query = match value {
            Bound::Text(v) => query.bind(v),
            Bound::Int(v) => query.bind(v),
        };
    }
    query
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
                Some(max) => within_limit(&mut tx, self.backend, &devices, max, &mut over).await?,
                None => devices.iter().collect(),
            };
            for rows in kept.chunks(ROWS_PER_STATEMENT) {
                // Safe: only numbered placeholders are interpolated; every value is bound.
                let mut query = sqlx::query(AssertSqlSafe(upsert_sql(self.backend, rows.len())));
                for s in rows {
                    query = query
                        .bind(&s.product)
                        .bind(&s.id)
                        .bind(&s.current_version)
                        .bind(&s.current_hash)
                        .bind(&s.channel)
                        .bind(s.first_at)
                        .bind(s.at)
                        .bind(s.attributes.as_ref().map(|a| a.to_string()))
                        .bind(s.protocol)
                        .bind(s.remote_addr.map(|a| a.to_string()));
                }
                query.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(over)
        })
        .await
    }

    async fn list_devices(
        &self,
        product: &str,
        filter: &DeviceFilter,
        page: &PageRequest,
    ) -> Result<Page<Device>> {
        timed("list_devices", async {
            let (conditions, values) = filter_sql(filter, 2, self.backend);
            let mut n = 2 + values.len();
            let after = match &page.cursor {
                Some(_) => {
                    n += 1;
                    format!(" AND d.id > ${}", n - 1)
                }
                None => String::new(),
            };
            // Safe: only the filter's fixed conditions and numbered placeholders are
            // interpolated; every value is bound.
            let sql = format!(
                "{} WHERE d.product = $1{conditions}{after} ORDER BY d.id LIMIT ${n}",
                device_select!()
            );
            let mut query = bind_filter(sqlx::query(AssertSqlSafe(sql)).bind(product), values);
            if let Some(cursor) = &page.cursor {
                query = query.bind(cursor);
            }
            let rows = query.bind(limit(page) + 1).fetch_all(&self.pool).await?;
            let items = rows.iter().map(device_from).collect::<Result<_>>()?;
            let page = paginate(items, page, |d: &Device| d.id.clone());
            Ok(Page {
                items: with_tags(&self.pool, product, page.items).await?,
                next_cursor: page.next_cursor,
            })
        })
        .await
    }

    async fn get_device(&self, product: &str, id: &str) -> Result<Option<Device>> {
        timed("get_device", fetch_device(&self.pool, product, id)).await
    }

    async fn update_device(
        &self,
        product: &str,
        id: &str,
        change: &DeviceChange,
    ) -> Result<Device> {
        timed("update_device", async {
            // One statement whatever changes: a field left out is written back as it was.
            let done = sqlx::query(
                "UPDATE devices SET auto_update = COALESCE($3, auto_update), \
                 assigned_channel = CASE WHEN $4 = 1 THEN $5 ELSE assigned_channel END, \
                 pinned_version = CASE WHEN $6 = 1 THEN $7 ELSE pinned_version END \
                 WHERE product = $1 AND id = $2",
            )
            .bind(product)
            .bind(id)
            .bind(change.auto_update.map(i64::from))
            .bind(i64::from(change.assigned_channel.is_some()))
            .bind(change.assigned_channel.clone().flatten())
            .bind(i64::from(change.pinned_version.is_some()))
            .bind(change.pinned_version.clone().flatten())
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

    async fn tag_devices(&self, product: &str, filter: &DeviceFilter, tag: &str) -> Result<u64> {
        timed("tag_devices", async {
            let (conditions, values) = filter_sql(filter, 3, self.backend);
            // Safe: only the filter's fixed conditions and numbered placeholders are
            // interpolated; every value is bound. (SQLite needs the WHERE to tell the upsert's
            // ON CONFLICT from a join's ON.)
            let sql = format!(
                "INSERT INTO device_tags (product, device, tag) \
                 SELECT d.product, d.id, $2 FROM devices d WHERE d.product = $1{conditions} \
                 ON CONFLICT (product, device, tag) DO NOTHING"
            );
            let query = sqlx::query(AssertSqlSafe(sql)).bind(product).bind(tag);
            let done = bind_filter(query, values).execute(&self.pool).await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn untag_devices(&self, product: &str, filter: &DeviceFilter, tag: &str) -> Result<u64> {
        timed("untag_devices", async {
            let (conditions, values) = filter_sql(filter, 3, self.backend);
            // Safe: as in `tag_devices`.
            let sql = format!(
                "DELETE FROM device_tags WHERE product = $1 AND tag = $2 AND device IN \
                 (SELECT d.id FROM devices d WHERE d.product = device_tags.product{conditions})"
            );
            let query = sqlx::query(AssertSqlSafe(sql)).bind(product).bind(tag);
            let done = bind_filter(query, values).execute(&self.pool).await?;
            Ok(done.rows_affected())
        })
        .await
    }

    async fn delete_device(&self, product: &str, id: &str) -> Result<bool> {
        timed("delete_device", async {
            let mut tx = self.pool.begin().await?;
            sqlx::query("DELETE FROM device_tags WHERE product = $1 AND device = $2")
                .bind(product)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let done = sqlx::query("DELETE FROM devices WHERE product = $1 AND id = $2")
                .bind(product)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn device_controls(&self, product: &str) -> Result<Vec<DeviceControls>> {
        timed("device_controls", async {
            let mut controls: std::collections::BTreeMap<String, DeviceControls> =
                Default::default();
            let rows = sqlx::query(
                "SELECT id, assigned_channel, pinned_version FROM devices WHERE product = $1 \
                 AND (assigned_channel IS NOT NULL OR pinned_version IS NOT NULL)",
            )
            .bind(product)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let device: String = row.try_get("id")?;
                controls.insert(
                    device.clone(),
                    DeviceControls {
                        device,
                        assigned_channel: row.try_get("assigned_channel")?,
                        pinned_version: row.try_get("pinned_version")?,
                        tags: Vec::new(),
                    },
                );
            }
            let rows = sqlx::query(
                "SELECT device, tag FROM device_tags WHERE product = $1 ORDER BY device, tag",
            )
            .bind(product)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let device: String = row.try_get("device")?;
                controls
                    .entry(device.clone())
                    .or_insert_with(|| DeviceControls {
                        device,
                        ..Default::default()
                    })
                    .tags
                    .push(row.try_get("tag")?);
            }
            Ok(controls.into_values().collect())
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

    async fn fleet_summary(&self, product: &str, seen_since: &[i64]) -> Result<FleetSummary> {
        timed("fleet_summary", async {
            // One row per version, with the count of each "seen since" alongside; the sums over
            // versions are the fleet's. Safe: only numbered placeholders are interpolated.
            let seen: String = (0..seen_since.len())
                .map(|i| {
                    format!(
                        ", COUNT(CASE WHEN last_seen >= ${} THEN 1 END) AS s{i}",
                        i + 2
                    )
                })
                .collect();
            let sql = format!(
                "SELECT current_version, COUNT(*) AS n{seen} FROM devices WHERE product = $1 \
                 GROUP BY current_version"
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(product);
            for since in seen_since {
                query = query.bind(*since);
            }
            let rows = query.fetch_all(&self.pool).await?;
            let mut summary = FleetSummary {
                seen_since: vec![0; seen_since.len()],
                ..FleetSummary::default()
            };
            for row in &rows {
                let n = count(row.try_get("n")?)?;
                summary.devices += n;
                for (i, total) in summary.seen_since.iter_mut().enumerate() {
                    *total += count(row.try_get(format!("s{i}").as_str())?)?;
                }
                summary.versions.push((row.try_get("current_version")?, n));
            }
            summary
                .versions
                .sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            Ok(summary)
        })
        .await
    }

    async fn recent_failures(
        &self,
        product: &str,
        since: i64,
        limit: u32,
    ) -> Result<Vec<UpdateReport>> {
        timed("recent_failures", async {
            let rows = sqlx::query(
                "SELECT id, product, device, version, state, message, created_at \
                 FROM update_reports WHERE product = $1 AND state IN ($2, $3) \
                 AND created_at >= $4 ORDER BY id DESC LIMIT $5",
            )
            .bind(product)
            .bind(ReportState::Failed.as_str())
            .bind(ReportState::RolledBack.as_str())
            .bind(since)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(report_from).collect()
        })
        .await
    }
}

/// A `COUNT` read back as `i64` (both backends), as a count.
fn count(n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative count {n}")))
}
