//! Audit entries for admin changes. [`crate::auth::guard`] records one for every change (a
//! route the table gives an action) that succeeded; a handler only adds detail, through an
//! [`AuditNote`] in its response: a target the path does not name (a new product's name, a new
//! release's version) and a short summary of what changed. The note never reaches the client.
//! The few changes made outside the table (logging in) write theirs with [`write`].

use std::net::SocketAddr;

use axum::response::{IntoResponseParts, Response, ResponseParts};
use otter_app::App;
use otter_core::model::Actor;
use otter_store::NewAuditEntry;

/// What a handler says about its change, for the audit entry.
#[derive(Debug, Clone, Default)]
pub struct AuditNote {
    /// Replaces the target the path names.
    pub target: Option<String>,
    pub summary: Option<String>,
}

impl AuditNote {
    pub fn summary(summary: impl Into<String>) -> Self {
        AuditNote {
            target: None,
            summary: Some(summary.into()),
        }
    }

    pub fn target(target: impl Into<String>) -> Self {
        AuditNote {
            target: Some(target.into()),
            summary: None,
        }
    }

    pub fn with_summary(mut self, summary: impl Into<String>) -> Self {
        self.summary = Some(summary.into());
        self
    }
}

impl IntoResponseParts for AuditNote {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// A change that succeeded, as the guard saw it.
pub struct Change {
    pub actor: Actor,
    pub action: &'static str,
    /// The path's parameters joined with `/`.
    pub target: String,
    pub remote: Option<SocketAddr>,
}

/// Writes the audit entry of `change`, with the handler's note taken out of `response`. The
/// change is made already: if the entry cannot be written, that is logged as an error and the
/// answer stays what it was (a 500 would invite the client to make the change twice).
pub async fn record(app: &App, change: Change, response: &mut Response) {
    let note = response
        .extensions_mut()
        .remove::<AuditNote>()
        .unwrap_or_default();
    write(app, change, note).await;
}

/// Writes the audit entry of `change` with `note`: for changes made outside the routes table
/// (logging in, from the API or the web UI's form), which have no guard to write theirs.
pub async fn write(app: &App, change: Change, note: AuditNote) {
    let entry = NewAuditEntry {
        at: otter_store::now(),
        actor: change.actor,
        remote: change.remote.map(|a| a.to_string()),
        request_id: crate::request_log::current().map(|id| id.to_string()),
        action: change.action.to_owned(),
        target: note.target.unwrap_or(change.target),
        summary: note.summary,
    };
    if let Err(e) = otter_app::audit::record(app, &entry).await {
        tracing::error!(
            error = %e,
            action = %entry.action,
            target = %entry.target,
            actor = %entry.actor.name,
            "could not write an audit entry"
        );
    }
}
