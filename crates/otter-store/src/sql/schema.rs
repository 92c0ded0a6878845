//! The migrations of each backend and where a database stands against them: applying them
//! (`otter migrate`, or every SQLite open) and refusing a PostgreSQL schema this otter cannot
//! use.

use sqlx::migrate::{Migrate as _, MigrateError, Migration, Migrator};
use sqlx::{AnyConnection, AnyPool, Row};

use super::{Backend, redact_url};
use crate::{Result, StoreError};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

impl Backend {
    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

/// Runs the pending migrations on one connection and counts what it applied.
pub(super) async fn migrate_pool(pool: &AnyPool, backend: Backend) -> Result<usize> {
    let mut conn = pool.acquire().await?;
    // Hold the migration lock (a PostgreSQL advisory lock; nothing on SQLite) across the
    // before/after counts too, so that two `otter migrate`s at once report 2 + 0, not 2 + 2.
    // The migrator takes the same lock again inside; PostgreSQL advisory locks nest.
    conn.lock().await.map_err(|e| migrate_error(e, backend))?;
    let before = SchemaStatus::read(&mut conn, backend).await?;
    backend
        .migrator()
        .run(&mut *conn)
        .await
        .map_err(|e| migrate_error(e, backend))?;
    let after = SchemaStatus::read(&mut conn, backend).await?;
    conn.unlock().await.map_err(|e| migrate_error(e, backend))?;
    Ok(after.applied.saturating_sub(before.applied))
}

fn migrate_error(e: MigrateError, backend: Backend) -> StoreError {
    let latest = latest_version(backend);
    match e {
        MigrateError::VersionMissing(v) => StoreError::Schema(format!(
            "the database has migration {v}, which this otter does not know (it knows up to \
             {latest}): it was migrated by a newer otter; upgrade otter"
        )),
        MigrateError::VersionMismatch(v) => StoreError::Schema(format!(
            "migration {v} in the database differs from this otter's migration {v}: the \
             database was migrated by a different build of otter"
        )),
        MigrateError::Dirty(v) => StoreError::Schema(format!(
            "migration {v} failed partway; repair the schema by hand and delete its row from \
             _sqlx_migrations, then run `otter migrate` again"
        )),
        other => StoreError::Database(other.into()),
    }
}

fn latest_version(backend: Backend) -> i64 {
    backend
        .migrator()
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// Refuses a PostgreSQL database whose schema is behind this otter (or broken); a schema
/// *ahead* of it (a newer otter ran `otter migrate` during a rolling upgrade) is only warned
/// about, so nodes not yet upgraded can still restart.
pub(super) async fn check_schema(pool: &AnyPool, backend: Backend, url: &str) -> Result<()> {
    let status = {
        let mut conn = pool.acquire().await?;
        SchemaStatus::read(&mut conn, backend).await?
    };
    if let Some(v) = status.failed.first() {
        return Err(migrate_error(MigrateError::Dirty(*v), backend));
    }
    if let Some(v) = status.changed.first() {
        return Err(migrate_error(MigrateError::VersionMismatch(*v), backend));
    }
    if !status.pending.is_empty() {
        let total = backend
            .migrator()
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .count();
        let pending: Vec<String> = status
            .pending
            .iter()
            .map(|m| format!("{:04} {}", m.version, m.description))
            .collect();
        let what = if status.applied == 0 {
            "has no otter schema yet".to_owned()
        } else {
            format!(
                "is not migrated to this otter's schema ({} of {total} migrations pending)",
                pending.len()
            )
        };
        return Err(StoreError::Schema(format!(
            "the PostgreSQL database {} {what}: run `otter migrate` with the same database URL \
             (--database-url or OTTER_DATABASE_URL), then start otter again [pending: {}]",
            redact_url(url),
            pending.join(", ")
        )));
    }
    if !status.unknown.is_empty() {
        tracing::warn!(
            database = %redact_url(url),
            versions = ?status.unknown,
            "the database has migrations this otter does not know (a newer otter migrated it); \
             upgrade this node"
        );
    }
    Ok(())
}

/// Where a database's schema stands against this build's migrations, from sqlx's bookkeeping
/// table `_sqlx_migrations`.
pub(super) struct SchemaStatus {
    /// How many migrations are recorded as applied.
    applied: usize,
    /// This build's migrations that the database lacks, oldest first.
    pub(super) pending: Vec<&'static Migration>,
    /// Applied migrations whose SQL differs from this build's.
    changed: Vec<i64>,
    /// Migrations recorded as failed partway.
    failed: Vec<i64>,
    /// Applied migrations this build does not know.
    unknown: Vec<i64>,
}

impl SchemaStatus {
    pub(super) async fn read(conn: &mut AnyConnection, backend: Backend) -> Result<Self> {
        // Whether sqlx's table exists, without creating it (connect must not write).
        let exists = match backend {
            Backend::Sqlite => {
                "SELECT count(*) AS present FROM sqlite_master \
                 WHERE type = 'table' AND name = '_sqlx_migrations'"
            }
            Backend::Postgres => {
                "SELECT CASE WHEN to_regclass('_sqlx_migrations') IS NULL THEN 0 ELSE 1 END \
                 AS present"
            }
        };
        let present: i64 = sqlx::query(exists)
            .fetch_one(&mut *conn)
            .await?
            .try_get("present")?;
        let rows = if present == 0 {
            Vec::new()
        } else {
            sqlx::query(
                "SELECT version, checksum, CASE WHEN success THEN 1 ELSE 0 END AS ok \
                 FROM _sqlx_migrations ORDER BY version",
            )
            .fetch_all(&mut *conn)
            .await?
        };
        let mut status = SchemaStatus {
            applied: rows.len(),
            pending: Vec::new(),
            changed: Vec::new(),
            failed: Vec::new(),
            unknown: Vec::new(),
        };
        let migrator = backend.migrator();
        let mut seen = Vec::new();
        for row in &rows {
            let version: i64 = row.try_get("version")?;
            let checksum: Vec<u8> = row.try_get("checksum")?;
            let ok: i64 = row.try_get("ok")?;
            seen.push(version);
            if ok == 0 {
                status.failed.push(version);
            }
            match migrator.iter().find(|m| m.version == version) {
                Some(m) if *m.checksum != *checksum => status.changed.push(version),
                Some(_) => {}
                None => status.unknown.push(version),
            }
        }
        status.pending = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration() && !seen.contains(&m.version))
            .collect();
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_backends_have_the_same_migrations() {
        let names = |m: &Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&SQLITE_MIGRATIONS), names(&POSTGRES_MIGRATIONS));
    }
}
