//! [`AppState`]: what every handler can reach, and the server's settings.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use otter_store::Store;
use otter_store::blob::{Blobs, Staging};

use crate::admin::uploads::Busy;
use crate::auth::AdminTokens;
use crate::index::CheckIndex;
use crate::seen::SeenQueue;

/// Settings of the HTTP layer (the binary fills them from defaults, file, env and flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Base of absolute download URLs (`https://ota.example.com`); without it, URLs are built
    /// from the request's `Host` header.
    pub public_url: Option<String>,
    /// Largest artifact accepted, in bytes.
    pub max_upload: u64,
    /// Upload sessions idle for longer than this expire.
    pub upload_ttl: Duration,
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How often to look for catalogue changes made through other nodes.
    pub catalog_poll: Duration,
    /// Capacity of the device-sighting queue.
    pub seen_queue: usize,
    /// Memory for recently downloaded images (each at most 16 MiB); 0 disables the cache.
    pub download_cache: u64,
    /// How downloads are served; `None`: redirect when blobs are in S3, proxy otherwise.
    /// [`crate::Server::open`] fills it in.
    pub download_mode: Option<crate::DownloadMode>,
    /// ota-backend's `OTA_SECRET`: when set, every `/v1` request must carry it in
    /// `x-ota-secret` (creating a firmware may use an admin token instead).
    pub ota_secret: Option<String>,
    /// The product the firmware manifest contract's root paths (`/api/firmware/…`,
    /// `/firmware/…`) serve.
    pub default_product: Option<String>,
    /// `mqtt[s]://[user[:password]@]host[:port]`: publish update notifications to this broker.
    pub mqtt_url: Option<String>,
    /// PEM CA certificates to trust for `mqtts://` instead of the platform's roots.
    pub mqtt_ca_file: Option<std::path::PathBuf>,
    /// The IotaWatt product served at IotaWatt's own paths (`/firmware/versions.json`, …).
    pub iotawatt_product: Option<String>,
    /// The key that signs check responses (PEM PKCS#8); default `<data>/online-key.pem`,
    /// generated on first start.
    pub online_key_file: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            public_url: None,
            max_upload: 2 * 1024 * 1024 * 1024,
            upload_ttl: Duration::from_secs(24 * 3600),
            shutdown_grace: Duration::from_secs(30),
            catalog_poll: Duration::from_millis(500),
            seen_queue: 65_536,
            download_cache: 256 * 1024 * 1024,
            download_mode: None,
            ota_secret: None,
            default_product: None,
            mqtt_url: None,
            mqtt_ca_file: None,
            iotawatt_product: None,
            online_key_file: None,
        }
    }
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub config: ServerConfig,
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
