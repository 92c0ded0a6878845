//! [`SqlStore`]: every store trait in portable SQL over sqlx's `Any` driver.
//!
//! The same statements run on SQLite and PostgreSQL: `$n` placeholders, `ON CONFLICT … DO UPDATE`,
//! `RETURNING`, integers for times and flags, JSON text for lists. Only the migrations differ
//! (`migrations/sqlite`, `migrations/postgres`).
//!
//! SQLite is migrated whenever it is opened. PostgreSQL is shared by every otter node, so its
//! schema changes only when an operator runs `otter migrate` ([`SqlStore::migrate`]);
//! [`SqlStore::connect`] checks that it is current and refuses to start otherwise.

use async_trait::async_trait;
use otter_core::access::Access;
use otter_core::model::{
    ApiKey, Artifact, Device, DeviceSeen, Page, Product, Release, ReleasePatch, ReleaseSignatures,
    UpdateReport, UploadSession,
};
use otter_core::ott::OneTimeToken;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migrate as _, MigrateError, Migration, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection as _, Row};

use crate::{
    AccessStore, DeviceStore, NewReport, OttStore, PageRequest, ProductStore, ReleaseStore, Result,
    StoreError, TokenStore, TrustStore, UploadStore,
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("./migrations/postgres");

/// The database behind otter, chosen by URL scheme: `sqlite:` or `postgres:`/`postgresql:`.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StoreError::Conflict(db.message().to_owned())
            }
            _ => StoreError::Database(e),
        }
    }
}

/// The database engines otter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(url: &str) -> Result<Self> {
        Backend::of_scheme(url).ok_or_else(|| {
            StoreError::Config(format!(
                "unsupported database URL {}: expected sqlite://… or postgres://…",
                redact_url(url)
            ))
        })
    }

    fn of_scheme(url: &str) -> Option<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => Some(Backend::Sqlite),
            "postgres" | "postgresql" => Some(Backend::Postgres),
            _ => None,
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }
}

impl SqlStore {
    /// Connects to `url`.
    ///
    /// SQLite URLs look like `sqlite:///path/otter.db` or `sqlite://relative.db`; the file is
    /// created when missing, put in WAL mode so readers never wait for the batch writer, and its
    /// schema brought up to date.
    ///
    /// PostgreSQL URLs look like `postgres://user:password@host:5432/otter` (`postgresql://`
    /// too, with libpq-style parameters such as `?sslmode=require`). Their schema is not changed
    /// here: if migrations are pending this fails with [`StoreError::Schema`], which tells the
    /// operator to run `otter migrate` ([`SqlStore::migrate`]).
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = Backend::of(url)?;
        let pool = open_pool(backend, url).await?;
        let ready = match backend {
            Backend::Sqlite => migrate_pool(&pool, backend).await.map(|_| ()),
            Backend::Postgres => check_schema(&pool, backend, url).await,
        };
        if let Err(e) = ready {
            pool.close().await;
            return Err(e);
        }
        Ok(SqlStore { pool })
    }

    /// Applies the migrations `url`'s database lacks and returns how many it applied (0 when
    /// the schema was already current). Safe to run again, and from several machines at once on
    /// PostgreSQL (they take turns on an advisory lock).
    pub async fn migrate(url: &str) -> Result<usize> {
        let backend = Backend::of(url)?;
        let pool = open_pool(backend, url).await?;
        let applied = migrate_pool(&pool, backend).await;
        pool.close().await;
        applied
    }

    /// The migrations `url`'s database lacks, as `(version, description)`, oldest first;
    /// empty when the schema is current. Reads only (it does not even create sqlx's
    /// bookkeeping table), except that a missing SQLite file is created empty.
    pub async fn pending_migrations(url: &str) -> Result<Vec<(i64, String)>> {
        let backend = Backend::of(url)?;
        let pool = open_pool(backend, url).await?;
        let status = match pool.acquire().await {
            Ok(mut conn) => SchemaStatus::read(&mut conn, backend).await,
            Err(e) => Err(e.into()),
        };
        pool.close().await;
        Ok(status?
            .pending
            .iter()
            .map(|m| (m.version, m.description.to_string()))
            .collect())
    }

    /// Closes every connection (used on shutdown so the WAL is checkpointed).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A connection pool for `url`, set up for its backend.
async fn open_pool(backend: Backend, url: &str) -> Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let options = AnyPoolOptions::new().max_connections(8);
    let pool = match backend {
        Backend::Sqlite => {
            let url = if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            };
            options
                .after_connect(|conn, _meta| {
                    Box::pin(async move {
                        // WAL lets check-ins and downloads read while a batch is written;
                        // NORMAL sync is safe under WAL (a power cut loses at most the last
                        // batch).
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        Ok(())
                    })
                })
                .connect(&url)
                .await?
        }
        Backend::Postgres => {
            // One plain connection first: the pool retries a server it cannot reach until its
            // acquire timeout (30 s) and then reports only "pool timed out"; this says why at
            // once (refused, unknown host, TLS, authentication).
            AnyConnection::connect(url).await?.close().await?;
            options.connect(url).await?
        }
    };
    Ok(pool)
}

/// Runs the pending migrations on one connection and counts what it applied.
async fn migrate_pool(pool: &AnyPool, backend: Backend) -> Result<usize> {
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
async fn check_schema(pool: &AnyPool, backend: Backend, url: &str) -> Result<()> {
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
struct SchemaStatus {
    /// How many migrations are recorded as applied.
    applied: usize,
    /// This build's migrations that the database lacks, oldest first.
    pending: Vec<&'static Migration>,
    /// Applied migrations whose SQL differs from this build's.
    changed: Vec<i64>,
    /// Migrations recorded as failed partway.
    failed: Vec<i64>,
    /// Applied migrations this build does not know.
    unknown: Vec<i64>,
}

impl SchemaStatus {
    async fn read(conn: &mut AnyConnection, backend: Backend) -> Result<Self> {
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

/// `url` with its password (user info or a `password=` parameter) replaced by `***`, for
/// messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let start = scheme_end + 3;
    let rest = &url[start..];
    // The user info ends at the last `@` before the path. A PostgreSQL password may hold an
    // unescaped `/`, `?` or `#` by mistake, so there the last `@` anywhere counts: that hides
    // too much at worst (an `@` in a parameter), never too little.
    let authority_end = if Backend::of_scheme(url) == Some(Backend::Postgres) {
        rest.len()
    } else {
        rest.find(['/', '?', '#']).unwrap_or(rest.len())
    };
    let mut out = url[..start].to_owned();
    let mut tail = rest;
    if let Some(at) = rest[..authority_end].rfind('@') {
        let userinfo = &rest[..at];
        match userinfo.find(':') {
            Some(colon) => {
                out.push_str(&userinfo[..colon]);
                out.push_str(":***");
            }
            None => out.push_str(userinfo),
        }
        tail = &rest[at..];
    }
    match tail.find('?') {
        Some(q) => {
            out.push_str(&tail[..=q]);
            let (query, fragment) = match tail[q + 1..].find('#') {
                Some(h) => tail[q + 1..].split_at(h),
                None => (&tail[q + 1..], ""),
            };
            let params: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if key.eq_ignore_ascii_case("password")
                            || key.eq_ignore_ascii_case("sslpassword") =>
                    {
                        format!("{key}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            out.push_str(&params.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

fn limit(page: &PageRequest) -> i64 {
    i64::from(page.limit.clamp(1, 500))
}

/// Turns `limit + 1` fetched rows into a page: the extra row only tells that more exist.
fn paginate<T>(mut items: Vec<T>, page: &PageRequest, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = limit(page) as usize;
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(cursor_of)
    } else {
        None
    };
    Page { items, next_cursor }
}

fn bool_col(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

fn u64_col(row: &AnyRow, col: &str) -> Result<u64> {
    let v: i64 = row.try_get(col)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {col}")))
}

fn product_from(row: &AnyRow) -> Result<Product> {
    let scheme: String = row.try_get("scheme")?;
    Ok(Product {
        name: row.try_get("name")?,
        scheme: scheme
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("{e}")))?,
        created_at: row.try_get("created_at")?,
    })
}

fn artifact_from(row: &AnyRow, sha256_col: &str, created_col: &str) -> Result<Artifact> {
    Ok(Artifact {
        sha256: row.try_get(sha256_col)?,
        sha1: row.try_get("sha1")?,
        md5: row.try_get("md5")?,
        size: u64_col(row, "size")?,
        filename: row.try_get("filename")?,
        created_at: row.try_get(created_col)?,
    })
}

/// The columns of a release joined with its artifact; a macro so `concat!` can build `'static`
/// statements from it (sqlx only accepts static SQL text).
macro_rules! release_select {
    () => {
        "SELECT r.seq, r.product, r.version, r.artifact, r.channels, \
     r.release_date, r.min_source_version, r.mandatory, r.deprecated, r.yanked, r.title, \
     r.summary, r.release_notes_url, r.metadata, r.created_at, a.sha1, a.md5, a.size, a.filename, \
     a.created_at AS artifact_created_at FROM releases r JOIN artifacts a ON a.sha256 = r.artifact"
    };
}

fn release_from(row: &AnyRow) -> Result<Release> {
    let channels: String = row.try_get("channels")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(Release {
        seq: row.try_get("seq")?,
        product: row.try_get("product")?,
        version: row.try_get("version")?,
        artifact: artifact_from(row, "artifact", "artifact_created_at")?,
        channels: serde_json::from_str(&channels)
            .map_err(|e| StoreError::Corrupt(format!("channels: {e}")))?,
        release_date: row.try_get("release_date")?,
        min_source_version: row.try_get("min_source_version")?,
        mandatory: bool_col(row, "mandatory")?,
        deprecated: bool_col(row, "deprecated")?,
        yanked: bool_col(row, "yanked")?,
        title: row.try_get("title")?,
        summary: row.try_get("summary")?,
        release_notes_url: row.try_get("release_notes_url")?,
        metadata: serde_json::from_str(&metadata)
            .map_err(|e| StoreError::Corrupt(format!("metadata: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}

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

fn ott_from(row: &AnyRow) -> Result<OneTimeToken> {
    Ok(OneTimeToken {
        token_sha256: row.try_get("token_sha256")?,
        product: row.try_get("product")?,
        device: row.try_get("device")?,
        artifact: row.try_get("artifact")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        first_used_at: row.try_get("first_used_at")?,
        spent_at: row.try_get("spent_at")?,
    })
}

fn api_key_from(row: &AnyRow) -> Result<ApiKey> {
    let hash: String = row.try_get("key_sha256")?;
    Ok(ApiKey {
        id: hash.chars().take(16).collect(),
        product: row.try_get("product")?,
        label: row.try_get("label")?,
        created_at: row.try_get("created_at")?,
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

fn upload_from(row: &AnyRow) -> Result<UploadSession> {
    Ok(UploadSession {
        id: row.try_get("id")?,
        filename: row.try_get("filename")?,
        size: u64_col(row, "size")?,
        sha256: row.try_get("sha256")?,
        offset: u64_col(row, "received")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} does not fit the database")))
}

#[async_trait]
impl ProductStore for SqlStore {
    async fn create_product(&self, product: &Product) -> Result<()> {
        sqlx::query("INSERT INTO products (name, scheme, created_at) VALUES ($1, $2, $3)")
            .bind(&product.name)
            .bind(product.scheme.as_str())
            .bind(product.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("product {}", product.name))
                }
                other => other,
            })?;
        Ok(())
    }

    async fn get_product(&self, name: &str) -> Result<Option<Product>> {
        sqlx::query("SELECT name, scheme, created_at FROM products WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(product_from)
            .transpose()
    }

    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>> {
        let rows = match &page.cursor {
            Some(after) => sqlx::query(
                "SELECT name, scheme, created_at FROM products WHERE name > $1 ORDER BY name LIMIT $2",
            )
            .bind(after)
            .bind(limit(page) + 1),
            None => sqlx::query("SELECT name, scheme, created_at FROM products ORDER BY name LIMIT $1")
                .bind(limit(page) + 1),
        }
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(product_from).collect::<Result<_>>()?;
        Ok(paginate(items, page, |p: &Product| p.name.clone()))
    }

    async fn all_products(&self) -> Result<Vec<Product>> {
        sqlx::query("SELECT name, scheme, created_at FROM products ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(product_from)
            .collect()
    }

    async fn put_artifact(&self, artifact: &Artifact) -> Result<Artifact> {
        // DO NOTHING keeps the first upload's name and time: the bytes are the same.
        sqlx::query(
            "INSERT INTO artifacts (sha256, sha1, md5, size, filename, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
        )
        .bind(&artifact.sha256)
        .bind(&artifact.sha1)
        .bind(&artifact.md5)
        .bind(to_i64(artifact.size)?)
        .bind(&artifact.filename)
        .bind(artifact.created_at)
        .execute(&self.pool)
        .await?;
        self.get_artifact(&artifact.sha256)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn get_artifact(&self, sha256: &str) -> Result<Option<Artifact>> {
        sqlx::query(
            "SELECT sha256, sha1, md5, size, filename, created_at FROM artifacts WHERE sha256 = $1",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(|row| artifact_from(row, "sha256", "created_at"))
        .transpose()
    }

    async fn bump_catalog(&self, product: &str) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO catalog_versions (product, version) VALUES ($1, 1) \
             ON CONFLICT (product) DO UPDATE SET version = catalog_versions.version + 1 \
             RETURNING version",
        )
        .bind(product)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("version")?)
    }

    async fn catalog_versions(&self) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query("SELECT product, version FROM catalog_versions")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("product")?, r.try_get("version")?)))
            .collect()
    }
}

#[async_trait]
impl ReleaseStore for SqlStore {
    async fn create_release(&self, release: &Release) -> Result<Release> {
        let channels = serde_json::to_string(&release.channels)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = sqlx::query(
            "INSERT INTO releases (product, version, artifact, channels, release_date, \
             min_source_version, mandatory, deprecated, yanked, title, summary, release_notes_url, \
             metadata, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING seq",
        )
        .bind(&release.product)
        .bind(&release.version)
        .bind(&release.artifact.sha256)
        .bind(channels)
        .bind(&release.release_date)
        .bind(&release.min_source_version)
        .bind(i64::from(release.mandatory))
        .bind(i64::from(release.deprecated))
        .bind(i64::from(release.yanked))
        .bind(&release.title)
        .bind(&release.summary)
        .bind(&release.release_notes_url)
        .bind(release.metadata.to_string())
        .bind(release.created_at)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!(
                "release {} of {}",
                release.version, release.product
            )),
            other => other,
        })?;
        let seq: i64 = row.try_get("seq")?;
        Ok(Release {
            seq,
            ..release.clone()
        })
    }

    async fn get_release(&self, product: &str, version: &str) -> Result<Option<Release>> {
        sqlx::query(concat!(
            release_select!(),
            " WHERE r.product = $1 AND r.version = $2"
        ))
        .bind(product)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(release_from)
        .transpose()
    }

    async fn list_releases(&self, product: &str, page: &PageRequest) -> Result<Page<Release>> {
        let rows = match page.cursor.as_deref().map(str::parse::<i64>) {
            Some(Ok(before)) => sqlx::query(concat!(
                release_select!(),
                " WHERE r.product = $1 AND r.seq < $2 ORDER BY r.seq DESC LIMIT $3"
            ))
            .bind(product)
            .bind(before)
            .bind(limit(page) + 1),
            Some(Err(_)) => return Err(StoreError::InvalidCursor),
            None => sqlx::query(concat!(
                release_select!(),
                " WHERE r.product = $1 ORDER BY r.seq DESC LIMIT $2"
            ))
            .bind(product)
            .bind(limit(page) + 1),
        }
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(release_from).collect::<Result<_>>()?;
        Ok(paginate(items, page, |r: &Release| r.seq.to_string()))
    }

    async fn all_releases(&self, product: &str) -> Result<Vec<Release>> {
        sqlx::query(concat!(
            release_select!(),
            " WHERE r.product = $1 ORDER BY r.seq"
        ))
        .bind(product)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(release_from)
        .collect()
    }

    async fn patch_release(
        &self,
        product: &str,
        version: &str,
        patch: &ReleasePatch,
    ) -> Result<Release> {
        let current = self
            .get_release(product, version)
            .await?
            .ok_or(StoreError::NotFound)?;
        let deprecated = patch.deprecated.unwrap_or(current.deprecated);
        let yanked = patch.yanked.unwrap_or(current.yanked);
        let mandatory = patch.mandatory.unwrap_or(current.mandatory);
        sqlx::query(
            "UPDATE releases SET deprecated = $1, yanked = $2, mandatory = $3 \
             WHERE product = $4 AND version = $5",
        )
        .bind(i64::from(deprecated))
        .bind(i64::from(yanked))
        .bind(i64::from(mandatory))
        .bind(product)
        .bind(version)
        .execute(&self.pool)
        .await?;
        Ok(Release {
            deprecated,
            yanked,
            mandatory,
            ..current
        })
    }
}

#[async_trait]
impl DeviceStore for SqlStore {
    async fn record_seen(&self, seen: &[DeviceSeen]) -> Result<()> {
        // Upsert in (product, id) order, so batches written at once by several nodes lock rows
        // in the same order and cannot deadlock (PostgreSQL). The sort is stable: a device's
        // later sightings still come after its earlier ones.
        let mut ordered: Vec<&DeviceSeen> = seen.iter().collect();
        ordered.sort_by(|a, b| (&a.product, &a.id).cmp(&(&b.product, &b.id)));
        let mut tx = self.pool.begin().await?;
        for s in ordered {
            // A check-in without `current` keeps what the device said before. A sighting older
            // than the stored one (a batch from a slower node) changes nothing: last_seen never
            // goes back and an older version never overwrites a newer report.
            sqlx::query(
                "INSERT INTO devices (product, id, current_version, current_hash, channel, \
                 first_seen, last_seen, attributes) VALUES ($1, $2, $3, $4, $5, $6, $6, $7) \
                 ON CONFLICT (product, id) DO UPDATE SET \
                 attributes = CASE WHEN excluded.last_seen >= devices.last_seen \
                   THEN COALESCE(excluded.attributes, devices.attributes) \
                   ELSE devices.attributes END, \
                 current_version = CASE WHEN excluded.last_seen >= devices.last_seen \
                   THEN COALESCE(excluded.current_version, devices.current_version) \
                   ELSE devices.current_version END, \
                 current_hash = CASE WHEN excluded.last_seen >= devices.last_seen \
                   THEN COALESCE(excluded.current_hash, devices.current_hash) \
                   ELSE devices.current_hash END, \
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
    }

    async fn list_devices(&self, product: &str, page: &PageRequest) -> Result<Page<Device>> {
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
    }

    async fn get_device(&self, product: &str, id: &str) -> Result<Option<Device>> {
        sqlx::query(concat!(device_select!(), " WHERE product = $1 AND id = $2"))
            .bind(product)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(device_from)
            .transpose()
    }

    async fn set_auto_update(&self, product: &str, id: &str, on: bool) -> Result<Device> {
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
        self.get_device(product, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn insert_report(&self, r: &NewReport) -> Result<UpdateReport> {
        let row = sqlx::query(
            "INSERT INTO update_reports (product, device, version, state, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
    }

    async fn list_reports(
        &self,
        product: &str,
        device: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<UpdateReport>> {
        let before = match page.cursor.as_deref().map(str::parse::<i64>) {
            Some(Ok(id)) => id,
            Some(Err(_)) => return Err(StoreError::InvalidCursor),
            None => i64::MAX,
        };
        macro_rules! cols {
            () => {
                "SELECT id, product, device, version, state, message, created_at FROM update_reports"
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
    }
}

#[async_trait]
impl UploadStore for SqlStore {
    async fn create_upload(&self, s: &UploadSession) -> Result<()> {
        sqlx::query(
            "INSERT INTO upload_sessions (id, filename, size, sha256, received, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&s.id)
        .bind(&s.filename)
        .bind(to_i64(s.size)?)
        .bind(&s.sha256)
        .bind(to_i64(s.offset)?)
        .bind(s.created_at)
        .bind(s.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadSession>> {
        sqlx::query(
            "SELECT id, filename, size, sha256, received, created_at, updated_at \
             FROM upload_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(upload_from)
        .transpose()
    }

    async fn set_upload_offset(&self, id: &str, offset: u64, updated_at: i64) -> Result<()> {
        sqlx::query("UPDATE upload_sessions SET received = $1, updated_at = $2 WHERE id = $3")
            .bind(to_i64(offset)?)
            .bind(updated_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM upload_sessions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn idle_uploads(&self, before: i64) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM upload_sessions WHERE updated_at < $1")
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    async fn all_uploads(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT id FROM upload_sessions")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn add_token(&self, token_sha256: &str, label: &str, created_at: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO admin_tokens (token_sha256, label, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (token_sha256) DO NOTHING",
        )
        .bind(token_sha256)
        .bind(label)
        .bind(created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn token_hashes(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT token_sha256 FROM admin_tokens")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("token_sha256")?))
            .collect()
    }
}

#[async_trait]
impl AccessStore for SqlStore {
    async fn set_product_key(
        &self,
        product: &str,
        key_sha256: &str,
        created_at: i64,
    ) -> Result<()> {
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
    }

    async fn product_key(&self, product: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT key_sha256 FROM product_keys WHERE product = $1")
            .bind(product)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("key_sha256")).transpose()?)
    }

    async fn set_device_access(
        &self,
        product: &str,
        device: &str,
        access: Option<Access>,
        updated_at: i64,
    ) -> Result<()> {
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
    }

    async fn device_access(&self, product: &str) -> Result<Vec<(String, Access)>> {
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
    }

    async fn add_api_key(&self, key: &ApiKey, key_sha256: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (key_sha256, product, label, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(key_sha256)
        .bind(&key.product)
        .bind(&key.label)
        .bind(key.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn api_keys(&self, product: &str) -> Result<Vec<ApiKey>> {
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
    }

    async fn api_key_hashes(&self, product: &str) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT key_sha256 FROM api_keys WHERE product = $1")
            .bind(product)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get("key_sha256")?)).collect()
    }

    async fn set_signing_key(
        &self,
        product: &str,
        kind: &str,
        public_key: &str,
        created_at: i64,
    ) -> Result<()> {
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
    }

    async fn signing_keys(&self, product: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT kind, public_key FROM product_signing_keys WHERE product = $1 ORDER BY kind",
        )
        .bind(product)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kind")?, r.try_get("public_key")?)))
            .collect()
    }

    async fn delete_api_key(&self, product: &str, id: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM api_keys WHERE product = $1 AND substr(key_sha256, 1, 16) = $2",
        )
        .bind(product)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[async_trait]
impl TrustStore for SqlStore {
    async fn add_root(
        &self,
        product: &str,
        version: u32,
        envelope: &str,
        expires_at: i64,
        created_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO product_roots (product, version, envelope, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(product)
        .bind(i64::from(version))
        .bind(envelope)
        .bind(expires_at)
        .bind(created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Conflict(_) => StoreError::Conflict(format!("root {version} of {product}")),
            other => other,
        })?;
        Ok(())
    }

    async fn roots(&self, product: &str) -> Result<Vec<(u32, String)>> {
        let rows = sqlx::query(
            "SELECT version, envelope FROM product_roots WHERE product = $1 ORDER BY version",
        )
        .bind(product)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let version: i64 = r.try_get("version")?;
                let version = u32::try_from(version)
                    .map_err(|_| StoreError::Corrupt(format!("root version {version}")))?;
                Ok((version, r.try_get("envelope")?))
            })
            .collect()
    }

    async fn set_release_manifest(
        &self,
        product: &str,
        version: &str,
        envelope: &str,
        security_counter: u32,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO release_signatures (product, version, manifest, security_counter, \
             expires_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (product, version) DO UPDATE \
             SET manifest = excluded.manifest, security_counter = excluded.security_counter, \
             expires_at = excluded.expires_at",
        )
        .bind(product)
        .bind(version)
        .bind(envelope)
        .bind(i64::from(security_counter))
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn set_binary_signature(
        &self,
        product: &str,
        version: &str,
        signature: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO release_signatures (product, version, binary_signature) \
             VALUES ($1, $2, $3) ON CONFLICT (product, version) DO UPDATE \
             SET binary_signature = excluded.binary_signature",
        )
        .bind(product)
        .bind(version)
        .bind(signature)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_signatures(&self, product: &str) -> Result<Vec<ReleaseSignatures>> {
        let rows = sqlx::query(
            "SELECT version, manifest, security_counter, expires_at, binary_signature \
             FROM release_signatures WHERE product = $1 ORDER BY version",
        )
        .bind(product)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let counter: Option<i64> = r.try_get("security_counter")?;
                Ok(ReleaseSignatures {
                    version: r.try_get("version")?,
                    manifest: r.try_get("manifest")?,
                    security_counter: counter
                        .map(|c| {
                            u32::try_from(c)
                                .map_err(|_| StoreError::Corrupt(format!("security counter {c}")))
                        })
                        .transpose()?,
                    expires_at: r.try_get("expires_at")?,
                    binary_signature: r.try_get("binary_signature")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl OttStore for SqlStore {
    async fn create_ott(&self, t: &OneTimeToken) -> Result<()> {
        sqlx::query(
            "INSERT INTO one_time_tokens (token_sha256, product, device, artifact, created_at, \
             expires_at, first_used_at, spent_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&t.token_sha256)
        .bind(&t.product)
        .bind(&t.device)
        .bind(&t.artifact)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.first_used_at)
        .bind(t.spent_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_ott(&self, token_sha256: &str) -> Result<Option<OneTimeToken>> {
        sqlx::query(
            "SELECT token_sha256, product, device, artifact, created_at, expires_at, \
             first_used_at, spent_at FROM one_time_tokens WHERE token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(ott_from)
        .transpose()
    }

    async fn first_use_ott(&self, token_sha256: &str, at: i64, expires_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE one_time_tokens SET first_used_at = $2, expires_at = $3 \
             WHERE token_sha256 = $1 AND first_used_at IS NULL",
        )
        .bind(token_sha256)
        .bind(at)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn spend_ott(&self, token_sha256: &str, at: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE one_time_tokens SET spent_at = $2 WHERE token_sha256 = $1 AND spent_at IS NULL",
        )
        .bind(token_sha256)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn purge_otts(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM one_time_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_url_hides_passwords_only() {
        for (url, shown) in [
            (
                "postgres://otter:s3cret@db.example.com:5432/otter",
                "postgres://otter:***@db.example.com:5432/otter",
            ),
            (
                "postgresql://otter:p@ss/w0rd@db/otter?sslmode=require",
                "postgresql://otter:***@db/otter?sslmode=require",
            ),
            (
                "postgres://db/otter?user=otter&password=s3cret&sslmode=require",
                "postgres://db/otter?user=otter&password=***&sslmode=require",
            ),
            (
                "postgres://otter@db/otter?sslpassword=key",
                "postgres://otter@db/otter?sslpassword=***",
            ),
            ("postgres://db/otter", "postgres://db/otter"),
            (
                "postgres://otter:a#b?c@db/otter",
                "postgres://otter:***@db/otter",
            ),
            (
                "sqlite:///var/lib/otter@1/otter.db",
                "sqlite:///var/lib/otter@1/otter.db",
            ),
            (
                "sqlite://otter-data/otter.db",
                "sqlite://otter-data/otter.db",
            ),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn backends_by_scheme() {
        assert_eq!(Backend::of_scheme("sqlite://x.db"), Some(Backend::Sqlite));
        assert_eq!(
            Backend::of_scheme("postgres://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(
            Backend::of_scheme("postgresql://h/db"),
            Some(Backend::Postgres)
        );
        assert_eq!(Backend::of_scheme("mysql://h/db"), None);
        let err = Backend::of("mysql://root:hunter2@h/db").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("mysql://root:***@h/db"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

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
