//! [`TrustStore`] in SQL: each product's roots of trust and its releases' signed manifests and
//! binary signatures.

use async_trait::async_trait;
use otter_core::model::ReleaseSignatures;
use sqlx::Row;

use super::{SqlStore, conflict, timed};
use crate::{ExpiringSignature, Result, StoreError, TrustStore};

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
        timed("add_root", async {
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
            .map_err(conflict("root"))?;
            Ok(())
        })
        .await
    }

    async fn roots(&self, product: &str) -> Result<Vec<(u32, String)>> {
        timed("roots", async {
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
        })
        .await
    }

    async fn set_release_manifest(
        &self,
        product: &str,
        version: &str,
        envelope: &str,
        security_counter: u32,
        expires_at: i64,
    ) -> Result<()> {
        timed("set_release_manifest", async {
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
        })
        .await
    }

    async fn set_binary_signature(
        &self,
        product: &str,
        version: &str,
        signature: &str,
    ) -> Result<()> {
        timed("set_binary_signature", async {
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
        })
        .await
    }

    async fn release_signatures(&self, product: &str) -> Result<Vec<ReleaseSignatures>> {
        timed("release_signatures", async {
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
                                u32::try_from(c).map_err(|_| {
                                    StoreError::Corrupt(format!("security counter {c}"))
                                })
                            })
                            .transpose()?,
                        expires_at: r.try_get("expires_at")?,
                        binary_signature: r.try_get("binary_signature")?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn expiring_signatures(&self, before: i64) -> Result<Vec<ExpiringSignature>> {
        timed("expiring_signatures", async {
            let roots = sqlx::query(
                "SELECT product, version, expires_at FROM product_roots r WHERE expires_at < $1 \
                 AND version = (SELECT MAX(version) FROM product_roots n \
                 WHERE n.product = r.product)",
            )
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
            let manifests = sqlx::query(
                "SELECT s.product, s.version, s.expires_at FROM release_signatures s \
                 JOIN releases r ON r.product = s.product AND r.version = s.version \
                 WHERE r.yanked = 0 AND s.manifest IS NOT NULL AND s.expires_at < $1",
            )
            .bind(before)
            .fetch_all(&self.pool)
            .await?;
            let mut out = Vec::with_capacity(roots.len() + manifests.len());
            for r in &roots {
                let version: i64 = r.try_get("version")?;
                out.push(ExpiringSignature {
                    product: r.try_get("product")?,
                    release: None,
                    version: version.to_string(),
                    expires_at: r.try_get("expires_at")?,
                });
            }
            for r in &manifests {
                let version: String = r.try_get("version")?;
                out.push(ExpiringSignature {
                    product: r.try_get("product")?,
                    release: Some(version.clone()),
                    version,
                    expires_at: r.try_get("expires_at")?,
                });
            }
            // Byte-wise, as every list of the store is: by product, its root first.
            out.sort_by(|a, b| {
                (&a.product, a.release.is_some(), &a.version).cmp(&(
                    &b.product,
                    b.release.is_some(),
                    &b.version,
                ))
            });
            Ok(out)
        })
        .await
    }
}
