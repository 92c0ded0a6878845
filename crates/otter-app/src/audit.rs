//! The audit log: who changed what through the admin API, when, from where. Entries are only
//! ever appended; the HTTP layer writes one for every successful admin change (its routes table
//! says which requests are changes and names their action), so no use case has to remember to.

use otter_core::model::{AuditEntry, Page};
use otter_store::{AuditFilter, NewAuditEntry, PageRequest};

use crate::{App, AppError, AppResult};

/// Appends an entry.
pub async fn record(app: &App, entry: &NewAuditEntry) -> AppResult<AuditEntry> {
    Ok(app.store.append_audit(entry).await?)
}

/// Entries matching `filter`, newest first.
pub async fn list(
    app: &App,
    filter: &AuditFilter,
    page: &PageRequest,
) -> AppResult<Page<AuditEntry>> {
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        return Err(AppError::invalid(
            "invalid_query",
            "since must be before until",
        ));
    }
    Ok(app.store.list_audit(filter, page).await?)
}
