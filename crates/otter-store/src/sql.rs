//! [`SqlStore`]: every store trait in portable SQL over sqlx's `Any` driver.
//!
//! The same statements run on SQLite and PostgreSQL: `$n` placeholders, `ON CONFLICT … DO UPDATE`,
//! `RETURNING`, integers for times and flags, JSON text for lists. Only the migrations differ.

use async_trait::async_trait;
use otter_core::model::{
    Artifact, Device, DeviceSeen, Page, Product, Release, ReleasePatch, UpdateReport, UploadSession,
};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::{
    DeviceStore, NewReport, PageRequest, ProductStore, ReleaseStore, Result, StoreError,
    TokenStore, UploadStore,
};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The database behind otter, chosen by URL scheme (`sqlite:` today).
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

impl SqlStore {
    /// Connects to `url` and brings the schema up to date.
    ///
    /// SQLite URLs look like `sqlite:///path/otter.db` or `sqlite://relative.db`; the file is
    /// created when missing and put in WAL mode so readers never wait for the batch writer.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        if !url.starts_with("sqlite:") {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("unsupported database URL {url:?}: expected sqlite:").into(),
            )));
        }
        let url = if url.contains('?') {
            url.to_owned()
        } else {
            format!("{url}?mode=rwc")
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets check-ins and downloads read while a batch is written;
                    // NORMAL sync is safe under WAL (a power cut loses at most the last batch).
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
            .await?;
        SQLITE_MIGRATIONS
            .run(&pool)
            .await
            .map_err(|e| StoreError::Database(e.into()))?;
        Ok(SqlStore { pool })
    }

    /// Closes every connection (used on shutdown so the WAL is checkpointed).
    pub async fn close(&self) {
        self.pool.close().await;
    }
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

fn device_from(row: &AnyRow) -> Result<Device> {
    Ok(Device {
        product: row.try_get("product")?,
        id: row.try_get("id")?,
        current_version: row.try_get("current_version")?,
        current_hash: row.try_get("current_hash")?,
        channel: row.try_get("channel")?,
        first_seen: row.try_get("first_seen")?,
        last_seen: row.try_get("last_seen")?,
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
        let mut tx = self.pool.begin().await?;
        for s in seen {
            // A check-in without `current` keeps what the device said before.
            sqlx::query(
                "INSERT INTO devices (product, id, current_version, current_hash, channel, \
                 first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (product, id) DO UPDATE SET \
                 current_version = COALESCE(excluded.current_version, devices.current_version), \
                 current_hash = COALESCE(excluded.current_hash, devices.current_hash), \
                 channel = excluded.channel, last_seen = excluded.last_seen",
            )
            .bind(&s.product)
            .bind(&s.id)
            .bind(&s.current_version)
            .bind(&s.current_hash)
            .bind(&s.channel)
            .bind(s.at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_devices(&self, product: &str, page: &PageRequest) -> Result<Page<Device>> {
        macro_rules! cols {
            () => {
                "SELECT product, id, current_version, current_hash, channel, first_seen, last_seen FROM devices"
            };
        }
        let rows = match &page.cursor {
            Some(after) => sqlx::query(concat!(
                cols!(),
                " WHERE product = $1 AND id > $2 ORDER BY id LIMIT $3"
            ))
            .bind(product)
            .bind(after)
            .bind(limit(page) + 1),
            None => sqlx::query(concat!(cols!(), " WHERE product = $1 ORDER BY id LIMIT $2"))
                .bind(product)
                .bind(limit(page) + 1),
        }
        .fetch_all(&self.pool)
        .await?;
        let items = rows.iter().map(device_from).collect::<Result<_>>()?;
        Ok(paginate(items, page, |d: &Device| d.id.clone()))
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
