//! `otter serve`: settings from defaults < config file < environment < flags, logging, and the
//! server's lifetime (signals, graceful shutdown).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use otter_core::model::validate_name;
use otter_core::units::{parse_duration, parse_size};
use otter_server::{Bootstrap, DownloadMode, Server, ServerConfig, Storage};
use otter_store::blob::BlobLocation;
use otter_store::objects::S3Settings;
use serde::Deserialize;

/// Run the otter server.
///
/// With no flags, otter listens on 127.0.0.1:8080 and keeps everything under ./otter-data
/// (SQLite database, firmware blobs). On first start it creates an admin token, prints it once
/// and saves it to ./otter-data/admin-token (mode 0600), where the admin commands find it.
#[derive(Args, Debug, Default)]
#[command(after_help = "Examples:\n  \
    otter serve\n  \
    otter serve --listen 0.0.0.0:8080 --public-url https://ota.example.com\n  \
    OTTER_DATA=/var/lib/otter otter serve --log-format json\n  \
    otter serve --config /etc/otter.toml\n  \
    OTTER_DATABASE_URL=postgres://otter@db/otter otter serve --blob-url s3://firmware/otter\n  \
    OTTER_S3_ENDPOINT=http://minio:9000 otter serve --blob-url s3://firmware")]
pub struct ServeArgs {
    /// TOML file with any of the settings below (snake_case keys, e.g. `public_url = "…"`).
    /// Environment variables and flags override it.
    #[arg(long, env = "OTTER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "OTTER_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// Serve Prometheus `/metrics` on this address instead of the main listener (keep it on a
    /// private interface).
    #[arg(long, env = "OTTER_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,

    /// Data directory: database, firmware blobs, upload staging, admin token [default: ./otter-data].
    #[arg(long, env = "OTTER_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Database URL: sqlite://path or postgres://user:password@host/db (run `otter migrate`
    /// first) [default: sqlite://<data>/otter.db].
    #[arg(
        long,
        env = "OTTER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,

    /// Where firmware blobs live: file:///path or s3://bucket/prefix [default: <data>/blobs].
    /// S3 credentials and region come from the standard AWS environment variables
    /// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ...).
    #[arg(long, env = "OTTER_BLOB_URL", value_name = "URL")]
    blob_url: Option<String>,

    /// Endpoint of a non-AWS S3-compatible service (MinIO, Garage, Ceph RGW), e.g.
    /// http://minio:9000: path-style requests, plain http allowed.
    #[arg(long, env = "OTTER_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,

    /// How downloads are served: `redirect` answers 302 to a 15-minute presigned URL of the
    /// bucket (S3 only), `proxy` streams the bytes through otter [default: redirect with S3
    /// blobs, proxy otherwise].
    #[arg(long, env = "OTTER_DOWNLOAD_MODE", value_enum)]
    download_mode: Option<DownloadModeArg>,

    /// Public base URL for absolute download URLs, when otter sits behind a proxy
    /// (e.g. https://ota.example.com). Without it, URLs use the request's Host header.
    #[arg(long, env = "OTTER_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,

    /// Accept this admin token instead of generating one.
    #[arg(
        long,
        env = "OTTER_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,

    /// Largest artifact accepted, e.g. 512MiB or 2GiB [default: 2GiB].
    #[arg(long, env = "OTTER_MAX_UPLOAD", value_name = "SIZE", value_parser = parse_size)]
    max_upload: Option<u64>,

    /// Memory for recently downloaded images (each up to 16 MiB), so a fleet fetching a new
    /// release is served from memory; 0 disables it [default: 256MiB].
    #[arg(long, env = "OTTER_DOWNLOAD_CACHE", value_name = "SIZE", value_parser = parse_size)]
    download_cache: Option<u64>,

    /// Idle upload sessions expire after this long, e.g. 24h, 30m [default: 24h].
    #[arg(long, env = "OTTER_UPLOAD_TTL", value_name = "DURATION", value_parser = parse_duration)]
    upload_ttl: Option<Duration>,

    /// How long in-flight downloads may finish after SIGTERM/Ctrl-C [default: 30s].
    #[arg(long, env = "OTTER_SHUTDOWN_GRACE", value_name = "DURATION", value_parser = parse_duration)]
    shutdown_grace: Option<Duration>,

    /// The product whose firmware manifests are served at the contract's root paths
    /// (/api/firmware/latest, /api/firmware/check, /firmware/<product>-<version>.bin); every
    /// product is also served under /m/<product>/.
    #[arg(long, env = "OTTER_DEFAULT_PRODUCT", value_name = "PRODUCT")]
    default_product: Option<String>,

    /// ota-backend's OTA_SECRET: every /v1 request must then send it in `x-ota-secret`
    /// (creating a firmware also accepts an admin token).
    #[arg(
        long,
        env = "OTA_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    ota_secret: Option<String>,

    /// The key that signs check responses for products with a root of trust (PKCS#8 PEM,
    /// Ed25519 or P-256) [default: <data>/online-key.pem, generated on first start]. Nodes
    /// sharing a database must use the same one.
    #[arg(long, env = "OTTER_ONLINE_KEY", value_name = "FILE")]
    online_key: Option<PathBuf>,

    /// The IotaWatt product served at IotaWatt's own paths (/firmware/versions.json,
    /// /firmware/bin/<release>.bin, /download/tables/<version>.txt); every IotaWatt product
    /// is also served under /iotawatt/<product>/.
    #[arg(long, env = "OTTER_IOTAWATT_PRODUCT", value_name = "PRODUCT")]
    iotawatt_product: Option<String>,

    /// Publish update notifications (retained) to this MQTT broker:
    /// mqtt://[user[:password]@]host[:port], e.g. mqtt://otter:secret@127.0.0.1:1883, or
    /// mqtts://… for TLS (port 8883 by default; the platform's CA roots are trusted).
    #[arg(
        long,
        env = "OTTER_MQTT_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    mqtt_url: Option<String>,

    /// PEM file of the CA(s) to trust for an mqtts:// broker instead of the platform's roots
    /// (a private broker's own CA).
    #[arg(long, env = "OTTER_MQTT_CA_FILE", value_name = "FILE")]
    mqtt_ca_file: Option<PathBuf>,

    /// Log format; the level is set with RUST_LOG (default info) [default: text].
    #[arg(long, env = "OTTER_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownloadModeArg {
    Redirect,
    Proxy,
}

impl From<DownloadModeArg> for DownloadMode {
    fn from(mode: DownloadModeArg) -> Self {
        match mode {
            DownloadModeArg::Redirect => DownloadMode::Redirect,
            DownloadModeArg::Proxy => DownloadMode::Proxy,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The config file: every field optional, the same names as the flags in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    data: Option<PathBuf>,
    database_url: Option<String>,
    blob_url: Option<String>,
    s3_endpoint: Option<String>,
    download_mode: Option<DownloadModeArg>,
    public_url: Option<String>,
    admin_token: Option<String>,
    max_upload: Option<String>,
    download_cache: Option<String>,
    upload_ttl: Option<String>,
    shutdown_grace: Option<String>,
    default_product: Option<String>,
    ota_secret: Option<String>,
    mqtt_url: Option<String>,
    mqtt_ca_file: Option<PathBuf>,
    iotawatt_product: Option<String>,
    online_key: Option<PathBuf>,
    log_format: Option<LogFormat>,
}

/// Fully resolved settings.
#[derive(Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub metrics_listen: Option<SocketAddr>,
    pub storage: Storage,
    pub server: ServerConfig,
    pub log_format: LogFormat,
}

impl ServeArgs {
    /// Layers the settings: flags and environment (clap reads both) win over the file, which
    /// wins over defaults.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let defaults = ServerConfig::default();
        let public_url = self
            .public_url
            .or(file.public_url)
            .map(|u| normalize_public_url(&u))
            .transpose()?;
        let file_size = file.max_upload.as_deref().map(parse_size).transpose();
        let file_cache = file.download_cache.as_deref().map(parse_size).transpose();
        let file_ttl = file.upload_ttl.as_deref().map(parse_duration).transpose();
        let file_grace = file
            .shutdown_grace
            .as_deref()
            .map(parse_duration)
            .transpose();
        let bad = |key: &str, e: String| anyhow::anyhow!("config file: {key}: {e}");
        let blob_url = self.blob_url.or(file.blob_url);
        if let Some(url) = &blob_url {
            BlobLocation::parse(url).map_err(|e| anyhow::anyhow!("blob URL: {e}"))?;
        }
        let default_product = self.default_product.or(file.default_product);
        let iotawatt_product = self.iotawatt_product.or(file.iotawatt_product);
        for name in [&default_product, &iotawatt_product].into_iter().flatten() {
            validate_name("product", name)?;
        }
        // An empty OTA_SECRET means none, as in ota-backend.
        let ota_secret = self
            .ota_secret
            .or(file.ota_secret)
            .filter(|s| !s.is_empty());
        Ok(Settings {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            metrics_listen: self.metrics_listen.or(file.metrics_listen),
            storage: Storage {
                data_dir: self
                    .data
                    .or(file.data)
                    .unwrap_or_else(|| PathBuf::from("otter-data")),
                database_url: self.database_url.or(file.database_url),
                admin_token: self.admin_token.or(file.admin_token),
                blob_url,
                s3: S3Settings {
                    endpoint: self.s3_endpoint.or(file.s3_endpoint),
                    options: Vec::new(),
                },
            },
            server: ServerConfig {
                public_url,
                max_upload: self
                    .max_upload
                    .or(file_size.map_err(|e| bad("max_upload", e))?)
                    .unwrap_or(defaults.max_upload),
                upload_ttl: self
                    .upload_ttl
                    .or(file_ttl.map_err(|e| bad("upload_ttl", e))?)
                    .unwrap_or(defaults.upload_ttl),
                shutdown_grace: self
                    .shutdown_grace
                    .or(file_grace.map_err(|e| bad("shutdown_grace", e))?)
                    .unwrap_or(defaults.shutdown_grace),
                seen_queue: defaults.seen_queue,
                catalog_poll: defaults.catalog_poll,
                download_cache: self
                    .download_cache
                    .or(file_cache.map_err(|e| bad("download_cache", e))?)
                    .unwrap_or(defaults.download_cache),
                download_mode: self
                    .download_mode
                    .or(file.download_mode)
                    .map(DownloadMode::from),
                ota_secret,
                default_product,
                mqtt_url: self.mqtt_url.or(file.mqtt_url),
                mqtt_ca_file: self.mqtt_ca_file.or(file.mqtt_ca_file),
                iotawatt_product,
                online_key_file: self.online_key.or(file.online_key),
            },
            log_format: self.log_format.or(file.log_format).unwrap_or_default(),
        })
    }
}

/// Reads the TOML config file into `T` (`otter serve`'s settings, or the subset another
/// command takes from the same file).
pub fn read_file<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

fn normalize_public_url(url: &str) -> anyhow::Result<String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("public URL {url:?} must start with http:// or https://");
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        tokio::signal::ctrl_c().await.ok();
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.resolve()?;
    init_logging(settings.log_format);
    let data_dir = settings.storage.data_dir.clone();
    // Bind first: a taken port should fail before anything is created or printed.
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let metrics_listener = match settings.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening for metrics on {addr}"))?,
        ),
        None => None,
    };
    let mut server = Server::open(settings.storage, settings.server)
        .await
        .with_context(|| format!("starting otter with data directory {}", data_dir.display()))?;
    if let Bootstrap::Generated { token, path } = &server.bootstrap {
        println!(
            "otter: created an admin token (shown once; saved to {}):",
            path.display()
        );
        println!("\n    {token}\n");
    }
    let addr = listener.local_addr()?;
    tracing::info!(%addr, data = %data_dir.display(), "otter listening on http://{addr}");
    if let Some(metrics) = metrics_listener {
        tracing::info!(addr = %metrics.local_addr()?, "metrics on their own listener");
        server = server.with_metrics_listener(metrics);
    }
    server.serve(listener, shutdown_signal()).await?;
    tracing::info!("otter stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn resolve(args: &[&str]) -> anyhow::Result<Settings> {
        let mut argv = vec!["otter"];
        argv.extend_from_slice(args);
        Wrapper::try_parse_from(argv)?.serve.resolve()
    }

    #[test]
    fn defaults_without_anything() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.storage.data_dir, PathBuf::from("otter-data"));
        assert_eq!(s.server.max_upload, 2 << 30);
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otter.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\npublic_url = \"https://ota.example.com/\"\nmax_upload = \"10MiB\"\nupload_ttl = \"2h\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let s = resolve(&["--config", path]).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(
            s.server.public_url.as_deref(),
            Some("https://ota.example.com")
        );
        assert_eq!(s.server.max_upload, 10 << 20);
        assert_eq!(s.server.upload_ttl, Duration::from_secs(7200));
        let s = resolve(&[
            "--config",
            path,
            "--listen",
            "127.0.0.1:9001",
            "--max-upload",
            "1GiB",
        ])
        .unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(s.server.max_upload, 1 << 30);
    }

    #[test]
    fn bad_settings_are_explained() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otter.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        let err = resolve(&["--config", file.to_str().unwrap()]).unwrap_err();
        assert!(format!("{err:#}").contains("lisen"), "{err:#}");
        assert!(resolve(&["--public-url", "ota.example.com"]).is_err());
        assert!(resolve(&["--max-upload", "12parsecs"]).is_err());
    }

    #[test]
    fn blob_storage_and_download_mode() {
        let s = resolve(&[]).unwrap();
        assert_eq!(s.storage.blob_url, None);
        assert_eq!(
            s.server.download_mode, None,
            "chosen by the blob store at startup"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("otter.toml");
        std::fs::write(
            &file,
            "blob_url = \"s3://firmware/otter\"\ns3_endpoint = \"http://minio:9000\"\ndownload_mode = \"proxy\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let s = resolve(&["--config", path]).unwrap();
        assert_eq!(s.storage.blob_url.as_deref(), Some("s3://firmware/otter"));
        assert_eq!(s.storage.s3.endpoint.as_deref(), Some("http://minio:9000"));
        assert_eq!(s.server.download_mode, Some(DownloadMode::Proxy));
        let s = resolve(&[
            "--config",
            path,
            "--blob-url",
            "file:///var/lib/otter/blobs",
            "--download-mode",
            "redirect",
        ])
        .unwrap();
        assert_eq!(
            s.storage.blob_url.as_deref(),
            Some("file:///var/lib/otter/blobs")
        );
        assert_eq!(s.server.download_mode, Some(DownloadMode::Redirect));
        let err = resolve(&["--blob-url", "ftp://x/y"]).unwrap_err();
        assert!(format!("{err:#}").contains("s3://bucket/prefix"), "{err:#}");
        assert!(resolve(&["--blob-url", "s3://"]).is_err());
        assert!(resolve(&["--download-mode", "teleport"]).is_err());
    }
}
