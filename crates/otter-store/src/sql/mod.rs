//! [`SqlStore`]: every store trait in portable SQL over sqlx's `Any` driver.
//!
//! The same statements run on SQLite and PostgreSQL: `$n` placeholders, `ON CONFLICT … DO UPDATE`,
//! `RETURNING`, integers for times and flags, JSON text for lists. Only the migrations differ
//! (`migrations/sqlite`, `migrations/postgres`).
//!
//! SQLite is migrated whenever it is opened. PostgreSQL is shared by every otter node, so its
//! schema changes only when an operator runs `otter migrate` ([`SqlStore::migrate`]);
//! [`SqlStore::connect`] checks that it is current and refuses to start otherwise.
//!
//! One private module per store trait holds its statements and row decoding: `products`
//! (products, artifacts, catalogue versions), `releases`, `devices` (sightings, auto-update,
//! reports), `uploads`, `tokens` (admin and one-time tokens), `access` (product and API keys,
//! device rules, signing keys), `trust` (roots, release signatures), `audit` (the audit log),
//! `schedules` (maintenance windows, poll hints), `rollouts` (rollouts and the devices they took
//! in), `ddi` (hawkBit DDI tokens, options and actions), `deltas` (delta policies and patches);
//! `schema` holds the migrations. What they share
//! is here: connecting per backend, `timed` (which every store method runs its queries through,
//! recording `otter_store_duration_seconds{op}`), error mapping, pagination and column
//! conversions.

use std::future::Future;
use std::time::Instant;

use otter_core::model::Page;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection as _, Row};

use crate::{PageRequest, Result, StoreError};

mod access;
mod audit;
mod ddi;
mod deltas;
mod devices;
mod products;
mod releases;
mod rollouts;
mod schedules;
mod schema;
mod tokens;
mod trust;
mod uploads;
mod users;

use schema::{SchemaStatus, check_schema, migrate_pool};

/// The database behind otter, chosen by URL scheme: `sqlite:` or `postgres:`/`postgresql:`.
#[derive(Clone)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
    /// On SQLite, rollout transactions take turns here before asking SQLite for the write lock:
    /// queued in order rather than retried by SQLite's sleeping busy handler, a burst of devices
    /// let in at once neither waits seconds nor runs out of the busy timeout.
    rollout_writes: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// A SQLite file database's WAL file, whose size tells when to checkpoint.
    wal: Option<std::path::PathBuf>,
}

impl SqlStore {
    /// Connects to `url`.
    ///
    /// SQLite URLs look like `sqlite:///path/otter.db` or `sqlite://relative.db`; the file is
    /// created when missing (readable by the owner only, as are the WAL and shared-memory files
    /// SQLite creates beside it with the same mode), put in WAL mode so readers never wait for
    /// the batch writer, and its schema brought up to date. [`SqlStore::checkpoint`] keeps the
    /// WAL from growing without bound.
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
        Ok(SqlStore {
            pool,
            backend,
            rollout_writes: Default::default(),
            wal: match backend {
                Backend::Sqlite => sqlite_file(url)?.map(|db| {
                    let mut wal = db.into_os_string();
                    wal.push("-wal");
                    wal.into()
                }),
                Backend::Postgres => None,
            },
        })
    }

    /// Whether this is a SQLite database, whose WAL [`SqlStore::checkpoint`] keeps small.
    pub fn has_wal(&self) -> bool {
        self.backend == Backend::Sqlite
    }

    /// The size of a SQLite database's WAL file in bytes: 0 without one (PostgreSQL, an
    /// in-memory database, or a WAL that was just truncated).
    pub fn wal_size(&self) -> u64 {
        self.wal
            .as_deref()
            .and_then(|wal| std::fs::metadata(wal).ok())
            .map_or(0, |m| m.len())
    }

    /// On SQLite, copies everything in the WAL into the database and truncates the WAL to zero
    /// bytes; returns whether that completed (`false`: a reader or writer was still busy after
    /// the busy timeout, try again later). Nothing to do on PostgreSQL.
    ///
    /// SQLite's own automatic checkpoints never wait for readers, so under a steady stream of
    /// reads and writes they seldom reach the end of the WAL and it grows without bound (2 GB
    /// for a 14 MB database in a minute of report floods). This one waits: it holds new writers
    /// back until the readers of older snapshots are done, which takes as long as the longest
    /// read (otter's are single short queries).
    pub async fn checkpoint(&self) -> Result<bool> {
        if !self.has_wal() {
            return Ok(true);
        }
        timed("wal_checkpoint", async {
            let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            Ok(row.try_get::<i64, _>(0)? == 0)
        })
        .await
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

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                // The database's own text names tables, constraints and values; it goes to
                // the debug log, never into the error (which the server may show a client).
                tracing::debug!(
                    constraint = db.constraint(),
                    error = db.message(),
                    "unique violation"
                );
                // Methods whose inserts can collide name the thing with `conflict`; this
                // generic name is left for a violation no method expected.
                StoreError::Conflict("record")
            }
            _ => StoreError::Database(e),
        }
    }
}

/// For `.map_err` on a statement that inserts `what` (`"product"`, `"release"`…): a unique
/// violation becomes [`StoreError::Conflict`] naming it, anything else maps as usual.
fn conflict(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match StoreError::from(e) {
        StoreError::Conflict(_) => StoreError::Conflict(what),
        other => other,
    }
}

/// Runs one store method's queries and records how long they took in the histogram
/// `otter_store_duration_seconds{op}`, `op` being the method's name. Every store method goes
/// through this once, at its top level (methods that reuse another's query call a shared
/// function, not the timed method, so each call is one sample).
async fn timed<T>(op: &'static str, queries: impl Future<Output = Result<T>>) -> Result<T> {
    let started = Instant::now();
    let result = queries.await;
    metrics::histogram!("otter_store_duration_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
    result
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
            create_private_sqlite_file(&url)?;
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
                        // A WAL that once grew (a checkpoint that had to wait) is cut back to
                        // this size whenever a checkpoint empties it, rather than kept at its
                        // largest for ever.
                        sqlx::query("PRAGMA journal_size_limit = 67108864")
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

/// Creates the database file of a SQLite `url` readable by the owner only when it is missing:
/// SQLite would create it with the umask's mode (usually world-readable), and gives its WAL and
/// shared-memory files the database file's mode. An existing file keeps its mode.
/// The file of a SQLite `url`; `None` for an in-memory database.
fn sqlite_file(url: &str) -> Result<Option<std::path::PathBuf>> {
    use std::str::FromStr as _;
    if url.contains(":memory:") || url.contains("mode=memory") {
        return Ok(None);
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    Ok(Some(options.get_filename().to_owned()))
}

fn create_private_sqlite_file(url: &str) -> Result<()> {
    let Some(path) = sqlite_file(url)? else {
        return Ok(());
    };
    let path = path.as_path();
    match crate::private::file_options()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Config(format!(
            "creating the database file {}: {e}",
            path.display()
        ))),
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

/// How many rows a page holds: what was asked for, within 1..=500.
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

/// A page of a table listed by its `name` column: `select` is `SELECT <columns> FROM <table>`,
/// `item` reads a row, and the cursor is the last name of the previous page.
async fn page_by_name<T>(
    pool: &AnyPool,
    select: &str,
    page: &PageRequest,
    item: impl Fn(&AnyRow) -> Result<T>,
    name_of: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{select} WHERE name > $1 ORDER BY name LIMIT $2"
    )))
    .bind(page.cursor.as_deref().unwrap_or(""))
    .bind(limit(page) + 1)
    .fetch_all(pool)
    .await?;
    let items = rows.iter().map(item).collect::<Result<_>>()?;
    Ok(paginate(items, page, name_of))
}

/// The row an integer cursor (a `seq` or `id` handed out as `nextCursor`) points at; `None`
/// for the first page.
fn int_cursor(page: &PageRequest) -> Result<Option<i64>> {
    page.cursor
        .as_deref()
        .map(|c| c.parse().map_err(|_| StoreError::InvalidCursor))
        .transpose()
}

/// A flag column (stored as an integer on both backends).
fn bool_col(row: &AnyRow, col: &str) -> Result<bool> {
    Ok(row.try_get::<i64, _>(col)? != 0)
}

/// A size or offset column (stored as a signed 64-bit integer on both backends).
fn u64_col(row: &AnyRow, col: &str) -> Result<u64> {
    let v: i64 = row.try_get(col)?;
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative {col}")))
}

/// A small count or index column (a stage, a failure count).
fn u32_of(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} is out of range")))
}

/// A size or offset as the database stores it.
fn to_i64(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{v} does not fit the database")))
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
}
