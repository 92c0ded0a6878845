//! Every setting of an otter server, with its default.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use otter_store::objects::S3Settings;

/// Where otter keeps its state.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    /// Data directory: blobs, staging and (by default) the SQLite database.
    pub data_dir: PathBuf,
    /// Database URL; `None` means `sqlite://<data_dir>/otter.db`.
    pub database_url: Option<String>,
    /// Admin token to accept; `None` generates one on first start.
    pub admin_token: Option<String>,
    /// Where artifact bytes live: `file:///path` or `s3://bucket/prefix`; `None` means
    /// `<data_dir>/blobs`.
    pub blob_url: Option<String>,
    /// How to reach the S3-compatible service of an `s3://` blob URL (endpoint, settings beyond
    /// the AWS environment variables).
    pub s3: S3Settings,
}

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
    /// `Server::open` fills it in.
    pub download_mode: Option<DownloadMode>,
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

/// How `/dl` answers a `GET` (`--download-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownloadMode {
    /// `302 Found` to a short-lived presigned URL of the object store (blobs in S3 only).
    Redirect,
    /// The bytes stream through otter, with ranges, validators and the download cache.
    Proxy,
}

impl FromStr for DownloadMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "redirect" => Ok(DownloadMode::Redirect),
            "proxy" => Ok(DownloadMode::Proxy),
            _ => Err(format!(
                "download mode {s:?} is not one of: redirect, proxy"
            )),
        }
    }
}

impl fmt::Display for DownloadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownloadMode::Redirect => "redirect",
            DownloadMode::Proxy => "proxy",
        })
    }
}
