//! [`AuditStore`] in SQL: the audit log, appended to and listed (newest first, with filters),
//! never changed.

use async_trait::async_trait;
use otter_core::model::{Actor, AuditEntry, Page};
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};

use super::{SqlStore, int_cursor, limit, paginate, timed};
use crate::{AuditFilter, AuditStore, NewAuditEntry, PageRequest, Result, StoreError};

const COLUMNS: &str =
    "id, at, actor, actor_kind, role, remote, request_id, action, target, summary";

fn entry_from(row: &AnyRow) -> Result<AuditEntry> {
    let kind: String = row.try_get("actor_kind")?;
    let role: String = row.try_get("role")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        at: row.try_get("at")?,
        actor: row.try_get("actor")?,
        actor_kind: kind.parse().map_err(StoreError::Corrupt)?,
        role: role.parse().map_err(StoreError::Corrupt)?,
        remote: row.try_get("remote")?,
        request_id: row.try_get("request_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        summary: row.try_get("summary")?,
    })
}

/// A value a filter binds.
enum Bound<'a> {
    Text(&'a str),
    Time(i64),
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn append_audit(&self, e: &NewAuditEntry) -> Result<AuditEntry> {
        timed("append_audit", async {
            let Actor { kind, name, role } = &e.actor;
            let row = sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO audit_log (at, actor, actor_kind, role, remote, request_id, action, \
                 target, summary) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {COLUMNS}"
            )))
            .bind(e.at)
            .bind(name)
            .bind(kind.as_str())
            .bind(role.as_str())
            .bind(e.remote.as_deref())
            .bind(e.request_id.as_deref())
            .bind(&e.action)
            .bind(&e.target)
            .bind(e.summary.as_deref())
            .fetch_one(&self.pool)
            .await?;
            entry_from(&row)
        })
        .await
    }

    async fn list_audit(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEntry>> {
        timed("list_audit", async {
            let before = int_cursor(page)?.unwrap_or(i64::MAX);
            // Only the filters given become conditions, each with its own placeholder.
            let mut conditions: Vec<(fn(usize) -> String, Bound<'_>)> = Vec::new();
            if let Some(actor) = &filter.actor {
                conditions.push((|n| format!("actor = ${n}"), Bound::Text(actor)));
            }
            if let Some(action) = &filter.action {
                conditions.push((|n| format!("action = ${n}"), Bound::Text(action)));
            }
            if let Some(target) = &filter.target {
                // The target itself or anything under it; compared as text, not with LIKE,
                // whose wildcards (`_`) are valid in names.
                conditions.push((
                    |n| {
                        format!(
                            "(target = ${n} OR substr(target, 1, length(CAST(${n} AS TEXT)) + 1) \
                             = CAST(${n} AS TEXT) || '/')"
                        )
                    },
                    Bound::Text(target),
                ));
            }
            if let Some(since) = filter.since {
                conditions.push((|n| format!("at >= ${n}"), Bound::Time(since)));
            }
            if let Some(until) = filter.until {
                conditions.push((|n| format!("at < ${n}"), Bound::Time(until)));
            }
            let mut sql = format!("SELECT {COLUMNS} FROM audit_log WHERE id < $1");
            for (i, (condition, _)) in conditions.iter().enumerate() {
                sql.push_str(" AND ");
                sql.push_str(&condition(i + 2));
            }
            sql.push_str(&format!(
                " ORDER BY id DESC LIMIT ${}",
                conditions.len() + 2
            ));
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(before);
            for (_, bound) in conditions {
                query = match bound {
                    Bound::Text(text) => query.bind(text),
                    Bound::Time(time) => query.bind(time),
                };
            }
            let rows = query.bind(limit(page) + 1).fetch_all(&self.pool).await?;
            let items = rows.iter().map(entry_from).collect::<Result<_>>()?;
            Ok(paginate(items, page, |e: &AuditEntry| e.id.to_string()))
        })
        .await
    }
}
