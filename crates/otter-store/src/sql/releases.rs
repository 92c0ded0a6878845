//! [`ReleaseStore`] in SQL: releases, always read joined with their artifact.

use async_trait::async_trait;
use otter_core::model::{Page, Release, ReleasePatch};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::products::artifact_from;
use super::{SqlStore, bool_col, conflict, int_cursor, limit, paginate, timed};
use crate::{PageRequest, ReleaseStore, Result, StoreError};

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

/// One release (shared by `get_release` and `patch_release`, which reads the current flags
/// without timing a second operation).
async fn fetch_release(pool: &AnyPool, product: &str, version: &str) -> Result<Option<Release>> {
    sqlx::query(concat!(
        release_select!(),
        " WHERE r.product = $1 AND r.version = $2"
    ))
    .bind(product)
    .bind(version)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(release_from)
    .transpose()
}

#[async_trait]
impl ReleaseStore for SqlStore {
    async fn create_release(&self, release: &Release) -> Result<Release> {
        timed("create_release", async {
            let channels = serde_json::to_string(&release.channels)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let row = sqlx::query(
                "INSERT INTO releases (product, version, artifact, channels, release_date, \
                 min_source_version, mandatory, deprecated, yanked, title, summary, \
                 release_notes_url, metadata, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
                 RETURNING seq",
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
            .map_err(conflict("release"))?;
            let seq: i64 = row.try_get("seq")?;
            Ok(Release {
                seq,
                ..release.clone()
            })
        })
        .await
    }

    async fn get_release(&self, product: &str, version: &str) -> Result<Option<Release>> {
        timed("get_release", fetch_release(&self.pool, product, version)).await
    }

    async fn list_releases(&self, product: &str, page: &PageRequest) -> Result<Page<Release>> {
        timed("list_releases", async {
            let rows = match int_cursor(page)? {
                Some(before) => sqlx::query(concat!(
                    release_select!(),
                    " WHERE r.product = $1 AND r.seq < $2 ORDER BY r.seq DESC LIMIT $3"
                ))
                .bind(product)
                .bind(before)
                .bind(limit(page) + 1),
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
        })
        .await
    }

    async fn all_releases(&self, product: &str) -> Result<Vec<Release>> {
        timed("all_releases", async {
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
        })
        .await
    }

    async fn patch_release(
        &self,
        product: &str,
        version: &str,
        patch: &ReleasePatch,
    ) -> Result<Release> {
        timed("patch_release", async {
            let current = fetch_release(&self.pool, product, version)
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
        })
        .await
    }
}
