//! [`ProductStore`] in SQL: products, artifacts (rows keyed by SHA-256) and each product's
//! catalogue version.

use async_trait::async_trait;
use otter_core::model::{Artifact, Page, Product};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{SqlStore, conflict, page_by_name, timed, to_i64, u64_col};
use crate::{CatalogChanges, PageRequest, ProductStore, Result, StoreError};

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

/// An artifact from `row`, whose SHA-256 and creation time columns are named by the caller
/// (releases read them joined, under other names).
pub(super) fn artifact_from(row: &AnyRow, sha256_col: &str, created_col: &str) -> Result<Artifact> {
    Ok(Artifact {
        sha256: row.try_get(sha256_col)?,
        sha1: row.try_get("sha1")?,
        md5: row.try_get("md5")?,
        size: u64_col(row, "size")?,
        filename: row.try_get("filename")?,
        created_at: row.try_get(created_col)?,
    })
}

/// The artifact with this SHA-256 (shared by `get_artifact` and `put_artifact`, which reads
/// back what it stored without timing a second operation).
async fn fetch_artifact(pool: &AnyPool, sha256: &str) -> Result<Option<Artifact>> {
    sqlx::query(
        "SELECT sha256, sha1, md5, size, filename, created_at FROM artifacts WHERE sha256 = $1",
    )
    .bind(sha256)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(|row| artifact_from(row, "sha256", "created_at"))
    .transpose()
}

#[async_trait]
impl ProductStore for SqlStore {
    async fn create_product(&self, product: &Product) -> Result<()> {
        timed("create_product", async {
            sqlx::query("INSERT INTO products (name, scheme, created_at) VALUES ($1, $2, $3)")
                .bind(&product.name)
                .bind(product.scheme.as_str())
                .bind(product.created_at)
                .execute(&self.pool)
                .await
                .map_err(conflict("product"))?;
            Ok(())
        })
        .await
    }

    async fn get_product(&self, name: &str) -> Result<Option<Product>> {
        timed("get_product", async {
            sqlx::query("SELECT name, scheme, created_at FROM products WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(product_from)
                .transpose()
        })
        .await
    }

    async fn list_products(&self, page: &PageRequest) -> Result<Page<Product>> {
        timed(
            "list_products",
            page_by_name(
                &self.pool,
                "SELECT name, scheme, created_at FROM products",
                page,
                product_from,
                |p: &Product| p.name.clone(),
            ),
        )
        .await
    }

    async fn all_products(&self) -> Result<Vec<Product>> {
        timed("all_products", async {
            sqlx::query("SELECT name, scheme, created_at FROM products ORDER BY name")
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(product_from)
                .collect()
        })
        .await
    }

    async fn put_artifact(&self, artifact: &Artifact) -> Result<Artifact> {
        timed("put_artifact", async {
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
            fetch_artifact(&self.pool, &artifact.sha256)
                .await?
                .ok_or(StoreError::NotFound)
        })
        .await
    }

    async fn get_artifact(&self, sha256: &str) -> Result<Option<Artifact>> {
        timed("get_artifact", fetch_artifact(&self.pool, sha256)).await
    }

    async fn bump_catalog(&self, product: &str) -> Result<i64> {
        timed("bump_catalog", async {
            let mut tx = self.pool.begin().await?;
            // The clock first: its row lock orders concurrent bumps by commit (see migration
            // 0007), so a poller that has seen tick N has seen every tick below it.
            let tick: i64 =
                sqlx::query("UPDATE catalog_clock SET tick = tick + 1 WHERE id = 1 RETURNING tick")
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get("tick")?;
            let row = sqlx::query(
                "INSERT INTO catalog_versions (product, version, changed) VALUES ($1, 1, $2) \
                 ON CONFLICT (product) DO UPDATE SET version = catalog_versions.version + 1, \
                 changed = $2 RETURNING version",
            )
            .bind(product)
            .bind(tick)
            .fetch_one(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(row.try_get("version")?)
        })
        .await
    }

    async fn catalog_changes(&self, after: i64) -> Result<CatalogChanges> {
        timed("catalog_changes", async {
            let tick: i64 = sqlx::query("SELECT tick FROM catalog_clock WHERE id = 1")
                .fetch_one(&self.pool)
                .await?
                .try_get("tick")?;
            // Ticks up to `tick` are all committed (bumps commit in tick order); a product bumped
            // again since has a later tick and shows up in the next poll instead.
            let rows = sqlx::query(
                "SELECT product, version FROM catalog_versions WHERE changed > $1 AND changed <= $2",
            )
            .bind(after)
            .bind(tick)
            .fetch_all(&self.pool)
            .await?;
            let changed = rows
                .iter()
                .map(|r| Ok((r.try_get("product")?, r.try_get("version")?)))
                .collect::<Result<_>>()?;
            Ok(CatalogChanges { tick, changed })
        })
        .await
    }

    async fn catalog_version(&self, product: &str) -> Result<i64> {
        timed("catalog_version", async {
            let row = sqlx::query("SELECT version FROM catalog_versions WHERE product = $1")
                .bind(product)
                .fetch_optional(&self.pool)
                .await?;
            Ok(match row {
                Some(row) => row.try_get("version")?,
                None => 0,
            })
        })
        .await
    }
}
