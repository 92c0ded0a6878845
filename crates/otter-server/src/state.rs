//! [`AppState`]: what every handler can reach.

use std::ops::Deref;
use std::sync::Arc;

use otter_app::settings::Settings;
use otter_store::Store;
use otter_store::blob::{Blobs, Staging};

use crate::admin::uploads::Busy;
use crate::auth::AdminTokens;
use crate::index::CheckIndex;
use crate::seen::SeenQueue;

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: Settings,
    pub store: Arc<dyn Store>,
    pub blobs: Blobs,
    pub staging: Staging,
    pub index: CheckIndex,
    pub seen: Arc<SeenQueue>,
    pub tokens: AdminTokens,
    /// Upload sessions a request is writing to right now.
    pub busy_uploads: Busy,
    /// MQTT update notifications, when `mqtt_url` is set.
    pub notifier: Option<Arc<crate::notify::Notifier>>,
    /// Signs check responses (see [`crate::trust`]).
    pub online_key: otter_core::signing::keys::PrivateKey,
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
