//! [`UploadStore`] in SQL: resumable upload sessions and how far each has got.

use async_trait::async_trait;
use otter_core::model::UploadSession;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{SqlStore, conflict, timed, to_i64, u64_col};
use crate::{Result, UploadStore};

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

#[async_trait]
impl UploadStore for SqlStore {
    async fn create_upload(&self, s: &UploadSession) -> Result<()> {
        timed("create_upload", async {
            sqlx::query(
                "INSERT INTO upload_sessions (id, filename, size, sha256, received, created_at, \
                 updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.id)
            .bind(&s.filename)
            .bind(to_i64(s.size)?)
            .bind(&s.sha256)
            .bind(to_i64(s.offset)?)
            .bind(s.created_at)
            .bind(s.updated_at)
            .execute(&self.pool)
            .await
            .map_err(conflict("upload session"))?;
            Ok(())
        })
        .await
    }

    async fn get_upload(&self, id: &str) -> Result<Option<UploadSession>> {
        timed("get_upload", async {
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
        })
        .await
    }

    async fn set_upload_offset(&self, id: &str, offset: u64, updated_at: i64) -> Result<()> {
        timed("set_upload_offset", async {
            sqlx::query("UPDATE upload_sessions SET received = $1, updated_at = $2 WHERE id = $3")
                .bind(to_i64(offset)?)
                .bind(updated_at)
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn delete_upload(&self, id: &str) -> Result<()> {
        timed("delete_upload", async {
            sqlx::query("DELETE FROM upload_sessions WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await
    }

    async fn idle_uploads(&self, before: i64) -> Result<Vec<String>> {
        timed("idle_uploads", async {
            let rows = sqlx::query("SELECT id FROM upload_sessions WHERE updated_at < $1")
                .bind(before)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        })
        .await
    }

    async fn all_uploads(&self) -> Result<Vec<String>> {
        timed("all_uploads", async {
            let rows = sqlx::query("SELECT id FROM upload_sessions")
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
        })
        .await
    }
}
