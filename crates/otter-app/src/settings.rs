//! Every setting of an otter server, declared once: [`Settings`] is a `clap` argument list, so
//! each field's flag, environment variable, default and help come from its attributes, and the
//! TOML config file is read through the same arguments (its keys are the arguments' ids, the
//! flags in snake_case, and its values go through the flags' own parsers).
//!
//! Precedence is defaults < config file < environment < flags: `clap` layers the last two over
//! the defaults, and [`SettingsArgs::load`] lays the file over whatever neither of them gave.

use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches, ValueEnum};
use otter_core::model::{InvalidField, validate_name};
use otter_core::units::{parse_duration, parse_size};
use otter_store::blob::{BlobLocation, Blobs};
use otter_store::objects::S3Settings;
use otter_store::sql::redact_url;

use crate::limits::RateLimit;

/// Every setting of an otter server: storage, HTTP, device protocols, notifications, logging.
#[derive(Args, Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    #[arg(
        long,
        env = "OTTER_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Serve Prometheus `/metrics` on this address instead of the main listener (keep it on a
    /// private interface).
    #[arg(long, env = "OTTER_METRICS_LISTEN", value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,

    /// Data directory: database, firmware blobs, upload staging, admin token.
    #[arg(
        long = "data",
        id = "data",
        env = "OTTER_DATA",
        value_name = "DIR",
        default_value = "otter-data"
    )]
    pub data_dir: PathBuf,

    /// Database URL: sqlite://path or postgres://user:password@host/db (run `otter migrate`
    /// first) [default: sqlite://<data>/otter.db].
    #[arg(
        long,
        env = "OTTER_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true,
        value_parser = url_secret
    )]
    pub database_url: Option<Secret>,

    /// Read the database URL from this file instead (its first line), so a password stays out
    /// of `ps` and the environment.
    #[arg(long, env = "OTTER_DATABASE_URL_FILE", value_name = "FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Where firmware blobs live: file:///path or s3://bucket/prefix [default: <data>/blobs].
    /// S3 credentials and region come from the standard AWS environment variables
    /// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, ...).
    #[arg(long, env = "OTTER_BLOB_URL", value_name = "URL", value_parser = blob_url)]
    pub blob_url: Option<String>,

    /// Endpoint of a non-AWS S3-compatible service (MinIO, Garage, Ceph RGW), e.g.
    /// http://minio:9000: path-style requests, plain http allowed.
    #[arg(long, env = "OTTER_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,

    /// Further object_store settings for the bucket (see [`S3Settings::options`]), values kept
    /// secret as they may be credentials; code sets them (tests pass a test bucket's), never a
    /// flag.
    #[arg(skip)]
    pub s3_options: Vec<(String, Secret)>,

    /// How downloads are served: `redirect` answers 302 to a 15-minute presigned URL of the
    /// bucket (S3 only), `proxy` streams the bytes through otter [default: redirect with S3
    /// blobs, proxy otherwise].
    // `Server::open` fills it in from the blob store when `None`.
    #[arg(long, env = "OTTER_DOWNLOAD_MODE", value_enum)]
    pub download_mode: Option<DownloadMode>,

    /// Public base URL for absolute download URLs, when otter sits behind a proxy
    /// (e.g. https://ota.example.com). Without it, URLs use the request's Host header.
    #[arg(long, env = "OTTER_PUBLIC_URL", value_name = "URL", value_parser = public_url)]
    pub public_url: Option<String>,

    /// Accept this admin token (at least 32 characters) instead of generating one. On the
    /// command line `ps` shows it: prefer the environment or --admin-token-file.
    #[arg(
        long,
        env = "OTTER_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<Secret>,

    /// Read the admin token from this file instead (its first line).
    #[arg(long, env = "OTTER_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,

    /// Largest artifact accepted, e.g. 512MiB or 2GiB.
    #[arg(
        long,
        env = "OTTER_MAX_UPLOAD",
        value_name = "SIZE",
        value_parser = parse_size,
        default_value = "2GiB"
    )]
    pub max_upload: u64,

    /// Memory for recently downloaded images (each up to 16 MiB), so a fleet fetching a new
    /// release from S3 or over HTTP/2 is served from memory (HTTP/1 downloads of images in the
    /// data directory go out with sendfile instead); 0 disables it.
    #[arg(
        long,
        env = "OTTER_DOWNLOAD_CACHE",
        value_name = "SIZE",
        value_parser = parse_size,
        default_value = "256MiB"
    )]
    pub download_cache: u64,

    /// Idle upload sessions expire after this long, e.g. 24h, 30m.
    #[arg(
        long,
        env = "OTTER_UPLOAD_TTL",
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "24h"
    )]
    pub upload_ttl: Duration,

    /// How long a login session of the admin UI lasts, e.g. 12h, 30m.
    #[arg(
        long,
        env = "OTTER_SESSION_LIFETIME",
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "12h"
    )]
    pub session_lifetime: Duration,

    /// How long in-flight downloads may finish after SIGTERM/Ctrl-C.
    #[arg(
        long,
        env = "OTTER_SHUTDOWN_GRACE",
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "30s"
    )]
    pub shutdown_grace: Duration,

    /// A client must send a request's headers within this long of connecting or of their
    /// first byte; 0 turns it off.
    #[arg(
        long,
        env = "OTTER_HEADER_TIMEOUT",
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "30s"
    )]
    pub header_timeout: Duration,

    /// A keep-alive connection with no request for this long is closed; 0 turns it off.
    #[arg(
        long,
        env = "OTTER_IDLE_TIMEOUT",
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "60s"
    )]
    pub idle_timeout: Duration,

    /// Slowest transfer accepted, in bytes per second: a client that sends a request body or
    /// reads a response slower than this over --min-rate-window is cut; 0 turns it off.
    #[arg(
        long,
        env = "OTTER_MIN_RATE",
        value_name = "SIZE",
        value_parser = parse_size,
        default_value = "256"
    )]
    pub min_rate: u64,

    /// The window over which --min-rate is measured.
    #[arg(
        long,
        env = "OTTER_MIN_RATE_WINDOW",
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "30s"
    )]
    pub min_rate_window: Duration,

    /// Most connections served at once; a connection past it is closed at once (keep it under
    /// the process's open-file limit).
    #[arg(
        long,
        env = "OTTER_MAX_CONNECTIONS",
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..),
        default_value = "4096"
    )]
    pub max_connections: u32,

    /// Threads that serve connections, each with its own event loop, taking new connections in
    /// turn [default: one per CPU]. 0 serves them on the shared runtime's worker threads.
    #[arg(long, env = "OTTER_CONNECTION_THREADS", value_name = "N")]
    pub connection_threads: Option<u32>,

    /// The product whose firmware manifests are served at the contract's root paths
    /// (/api/firmware/latest, /api/firmware/check, /firmware/<product>-<version>.bin); every
    /// product is also served under /m/<product>/.
    #[arg(
        long,
        env = "OTTER_DEFAULT_PRODUCT",
        value_name = "PRODUCT",
        value_parser = product_name
    )]
    pub default_product: Option<String>,

    /// The product of anonymous hawkBit DDI polls whose `{tenant}` is not a product name
    /// (clients usually send `DEFAULT`); that product must still allow anonymous DDI.
    #[arg(
        long,
        env = "OTTER_DDI_DEFAULT_PRODUCT",
        value_name = "PRODUCT",
        value_parser = product_name
    )]
    pub ddi_default_product: Option<String>,

    /// ota-backend's OTA_SECRET: every /v1 request must then send it in `x-ota-secret`
    /// (creating a firmware also accepts an admin token). Empty means none, as in ota-backend.
    #[arg(
        long,
        env = "OTA_SECRET",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub ota_secret: Option<Secret>,

    /// Read ota-backend's OTA_SECRET from this file instead (its first line).
    #[arg(long, env = "OTA_SECRET_FILE", value_name = "FILE")]
    pub ota_secret_file: Option<PathBuf>,

    /// Who may create ota-backend firmwares (`POST /v1/create`) when no OTA_SECRET is set:
    /// `admin` (an admin token) or `open` (anyone, as ota-backend does).
    #[arg(long, env = "OTTER_OTA_CREATE", value_enum, default_value = "admin")]
    pub ota_create: OtaCreate,

    /// The key that signs check responses for products with a root of trust (PKCS#8 PEM,
    /// Ed25519 or P-256) [default: <data>/online-key.pem, generated on first start]. Nodes
    /// sharing a database must use the same one.
    #[arg(
        long = "online-key",
        id = "online_key",
        env = "OTTER_ONLINE_KEY",
        value_name = "FILE"
    )]
    pub online_key_file: Option<PathBuf>,

    /// The IotaWatt product served at IotaWatt's own paths (/firmware/versions.json,
    /// /firmware/bin/<release>.bin, /download/tables/<version>.txt); every IotaWatt product
    /// is also served under /iotawatt/<product>/.
    #[arg(
        long,
        env = "OTTER_IOTAWATT_PRODUCT",
        value_name = "PRODUCT",
        value_parser = product_name
    )]
    pub iotawatt_product: Option<String>,

    /// Publish update notifications (retained) to this MQTT broker:
    /// mqtt://[user[:password]@]host[:port], e.g. mqtt://otter:secret@127.0.0.1:1883, or
    /// mqtts://… for TLS (port 8883 by default; the platform's CA roots are trusted).
    #[arg(
        long,
        env = "OTTER_MQTT_URL",
        value_name = "URL",
        hide_env_values = true,
        value_parser = url_secret
    )]
    pub mqtt_url: Option<Secret>,

    /// PEM file of the CA(s) to trust for an mqtts:// broker instead of the platform's roots
    /// (a private broker's own CA).
    #[arg(long, env = "OTTER_MQTT_CA_FILE", value_name = "FILE")]
    pub mqtt_ca_file: Option<PathBuf>,

    /// Requests one remote address may make without an admin token, as RATE/UNIT[:BURST]
    /// (e.g. 50/s:100), or off. Off by default: behind a reverse proxy or a carrier's NAT many
    /// devices share one address.
    #[arg(
        long,
        env = "OTTER_RATE_LIMIT_ADDRESS",
        value_name = "RATE",
        default_value = "off"
    )]
    pub rate_limit_address: RateLimit,

    /// Checks one device id may make per product, as RATE/UNIT[:BURST], or off.
    #[arg(
        long,
        env = "OTTER_RATE_LIMIT_DEVICE",
        value_name = "RATE",
        default_value = "1/s:30"
    )]
    pub rate_limit_device: RateLimit,

    /// How long the answer to a request refused with 429 is held back (never past its
    /// Retry-After; 0 answers at once). A client flooding over keep-alive connections then gets
    /// one answer per connection per hold, instead of taking the CPU devices need.
    #[arg(
        long,
        env = "OTTER_RATE_LIMIT_HOLD",
        value_name = "DURATION",
        value_parser = parse_duration,
        default_value = "1s"
    )]
    pub rate_limit_hold: Duration,

    /// Most devices one product records (0: no limit); check-ins of further new devices are
    /// answered but not recorded.
    #[arg(
        long,
        env = "OTTER_MAX_DEVICES_PER_PRODUCT",
        value_name = "COUNT",
        default_value = "100000"
    )]
    pub max_devices_per_product: u64,

    /// Log format; the level is set with RUST_LOG (default info).
    #[arg(long, env = "OTTER_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// How often to look for catalogue changes made through other nodes (not a flag: tests
    /// shorten it).
    #[arg(skip = Duration::from_millis(500))]
    pub catalog_poll: Duration,

    /// How often rollouts are moved along: scheduled starts, device timeouts, automatic advance
    /// and pause (not a flag: tests shorten it).
    #[arg(skip = Duration::from_secs(5))]
    pub rollout_tick: Duration,

    /// Most devices whose sightings wait to be written at once (not a flag: tests shrink it).
    #[arg(skip = 65_536_usize)]
    pub seen_queue: usize,
}

impl Settings {
    /// `--connection-threads`, with its default (one per CPU) filled in.
    pub fn connection_threads(&self) -> usize {
        self.connection_threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, usize::from),
            |n| n as usize,
        )
    }

    /// How to reach the S3-compatible service of an `s3://` blob URL.
    pub fn s3(&self) -> S3Settings {
        S3Settings {
            endpoint: self.s3_endpoint.clone(),
            options: self
                .s3_options
                .iter()
                .map(|(key, value)| (key.clone(), value.expose().to_owned()))
                .collect(),
        }
    }
}

impl Default for Settings {
    /// The built-in defaults: what `otter serve` runs with given no file, variable or flag.
    fn default() -> Self {
        bare_command(Layer::Defaults)
            .try_get_matches_from(Vec::<OsString>::new())
            .and_then(|matches| Settings::from_arg_matches(&matches))
            .expect("the built-in defaults parse")
    }
}

/// The id of `--config`, which names the file and so is no key in it.
const CONFIG: &str = "config";

/// [`Settings`] as `clap` parsed them from flags and the environment, plus `--config`;
/// [`SettingsArgs::load`] adds the config file. Flatten it into a command's arguments.
#[derive(Debug, Clone)]
pub struct SettingsArgs {
    config: Option<PathBuf>,
    settings: Settings,
    /// Ids of the settings a flag or an environment variable gave: the file cannot change them.
    given: Vec<String>,
}

impl Args for SettingsArgs {
    fn augment_args(cmd: Command) -> Command {
        Settings::augment_args(cmd.arg(config_arg()))
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Settings::augment_args_for_update(cmd.arg(config_arg()))
    }
}

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Ok(SettingsArgs {
            config: matches.get_one::<PathBuf>(CONFIG).cloned(),
            settings: Settings::from_arg_matches(matches)?,
            given: given_ids(matches),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        self.settings.update_from_arg_matches(matches)?;
        if let Some(config) = matches.get_one::<PathBuf>(CONFIG) {
            self.config = Some(config.clone());
        }
        self.given.extend(given_ids(matches));
        Ok(())
    }
}

fn config_arg() -> Arg {
    Arg::new(CONFIG)
        .long("config")
        .env("OTTER_CONFIG")
        .value_name("FILE")
        .value_parser(clap::value_parser!(PathBuf))
        .help(
            "TOML file with any of the settings below (the flags' names in snake_case, e.g. \
             `public_url = \"…\"`). Environment variables and flags override it",
        )
}

/// The arguments a flag or an environment variable set (not a default).
fn given_ids(matches: &ArgMatches) -> Vec<String> {
    matches
        .ids()
        .filter(|id| {
            matches!(
                matches.value_source(id.as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        })
        .map(|id| id.as_str().to_owned())
        .collect()
}

impl SettingsArgs {
    /// The settings: the config file's values (when `--config` names one) wherever no flag or
    /// environment variable gave that setting, and the secrets that `--…-file` settings name
    /// read from their files.
    pub fn load(self) -> Result<Settings, ConfigFileError> {
        let mut settings = self.settings;
        if let Some(path) = &self.config {
            let file = read_file_layer(path, &self.given)?;
            settings
                .update_from_arg_matches(&file)
                .map_err(|e| ConfigFileError::new(path, clap_message(&e)))?;
        }
        read_secret_file(
            &mut settings.admin_token,
            settings.admin_token_file.as_deref(),
            "admin-token",
            Secret::from,
        )?;
        read_secret_file(
            &mut settings.ota_secret,
            settings.ota_secret_file.as_deref(),
            "ota-secret",
            Secret::from,
        )?;
        read_secret_file(
            &mut settings.database_url,
            settings.database_url_file.as_deref(),
            "database-url",
            |url| Secret::url(&url),
        )?;
        // ota-backend reads an empty OTA_SECRET as none; so do we, whichever layer set it.
        settings.ota_secret = settings.ota_secret.filter(|s| !s.expose().is_empty());
        Ok(settings)
    }
}

/// Sets `value` to the first line of `file` when `--{flag}-file` names one; giving both the
/// secret and its file is refused, as neither would be sure to win.
fn read_secret_file(
    value: &mut Option<Secret>,
    file: Option<&Path>,
    flag: &str,
    secret: impl FnOnce(String) -> Secret,
) -> Result<(), ConfigFileError> {
    let Some(path) = file else {
        return Ok(());
    };
    let error = |message: String| ConfigFileError {
        what: format!("--{flag}-file"),
        ..ConfigFileError::new(path, message)
    };
    if value.is_some() {
        return Err(error(format!(
            "--{flag} is set too: give the secret or its file, not both"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    *value = Some(secret(
        text.lines().next().unwrap_or_default().trim().to_owned(),
    ));
    Ok(())
}

/// A config file (or a secret's file) that cannot be read, or a key or value in it that is
/// wrong.
#[derive(Debug, thiserror::Error)]
#[error("{what} {}: {message}", path.display())]
pub struct ConfigFileError {
    /// `config file`, or the setting that names a secret's file.
    what: String,
    path: PathBuf,
    message: String,
}

impl ConfigFileError {
    fn new(path: &Path, message: impl Into<String>) -> Self {
        ConfigFileError {
            what: "config file".to_owned(),
            path: path.to_owned(),
            message: message.into(),
        }
    }
}

/// What [`bare_command`] leaves of each argument.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layer {
    /// Defaults only: the environment is not read.
    Defaults,
    /// Neither defaults nor environment: only what the file sets is present.
    File,
}

/// The settings' arguments without environment variables (and for the file, without
/// defaults), parsing arguments without a binary name.
fn bare_command(layer: Layer) -> Command {
    Settings::augment_args(Command::new("otter"))
        .no_binary_name(true)
        .disable_help_flag(true)
        .mut_args(|arg| {
            let arg = arg.env(None);
            match layer {
                Layer::Defaults => arg,
                Layer::File => arg.default_value(None),
            }
        })
}

/// Parses the config file into matches holding its settings, except those in `given`. Every
/// value is checked, even one a flag overrides: a mistake in the file is never silent.
fn read_file_layer(path: &Path, given: &[String]) -> Result<ArgMatches, ConfigFileError> {
    let error = |message: String| ConfigFileError::new(path, message);
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let table: toml::Table = toml::from_str(&text).map_err(|e| error(e.to_string()))?;
    let mut cmd = bare_command(Layer::File);
    let mut argv = Vec::new();
    for (key, value) in table {
        let arg = cmd
            .get_arguments()
            .find(|arg| arg.get_id() == key.as_str() && arg.get_long().is_some())
            .ok_or_else(|| {
                error(format!(
                    "unknown key `{key}` (keys are the flags' names in snake_case, e.g. public_url)"
                ))
            })?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => {
                value.to_string()
            }
            other => {
                return Err(error(format!(
                    "{key}: expected a string or a number, not {}",
                    other.type_str()
                )));
            }
        };
        // `--flag=value`, so a value starting with `-` stays a value.
        let flag = format!(
            "--{}={value}",
            arg.get_long().expect("found by its long flag")
        );
        cmd.try_get_matches_from_mut([&flag])
            .map_err(|e| error(format!("{key}: {}", clap_message(&e))))?;
        if !given.contains(&key) {
            argv.push(flag);
        }
    }
    cmd.try_get_matches_from_mut(argv)
        .map_err(|e| error(clap_message(&e)))
}

/// A clap error's message without its `error: ` prefix and usage hints.
fn clap_message(error: &clap::Error) -> String {
    let text = error.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}

/// A setting that must not show in logs, errors or `Debug` output: `Debug` and `Display` print
/// `***`, or for a URL the URL with its password replaced by `***`. [`Secret::expose`] is the
/// one way to the value, so each use stands out.
#[derive(Clone)]
pub struct Secret {
    value: String,
    shown: String,
}

impl Secret {
    /// A URL whose password is the secret part: it prints with the password hidden.
    pub fn url(url: &str) -> Self {
        Secret {
            value: url.to_owned(),
            shown: redact_url(url),
        }
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.value
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret {
            value,
            shown: "***".to_owned(),
        }
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::from(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret").field(&self.shown).finish()
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// `clap`'s parser for a URL with a password.
fn url_secret(url: &str) -> Result<Secret, Infallible> {
    Ok(Secret::url(url))
}

/// How `/dl` answers a `GET` (`--download-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DownloadMode {
    /// `302 Found` to a short-lived presigned URL of the object store (blobs in S3 only).
    Redirect,
    /// The bytes stream through otter, with ranges, validators and the download cache.
    Proxy,
}

impl fmt::Display for DownloadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownloadMode::Redirect => "redirect",
            DownloadMode::Proxy => "proxy",
        })
    }
}

/// Who may call ota-backend's `POST /v1/create` without `OTA_SECRET` (`--ota-create`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtaCreate {
    /// Only with an admin token: every firmware is a product, which nobody should mint at will.
    Admin,
    /// Anyone, as ota-backend itself does.
    Open,
}

/// How `otter serve` writes its log (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Checks a blob URL (`file:///path` or `s3://bucket/prefix`) when it is given, not at startup.
fn blob_url(url: &str) -> Result<String, String> {
    BlobLocation::parse(url)?;
    Ok(url.to_owned())
}

/// A public URL without its trailing `/`, so paths can be appended.
fn public_url(url: &str) -> Result<String, String> {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

fn product_name(name: &str) -> Result<String, InvalidField> {
    validate_name("product", name)?;
    Ok(name.to_owned())
}

/// The mode to serve downloads in: `asked`, or by default `redirect` when the blobs can be
/// presigned (S3) and `proxy` otherwise. Redirecting to a local directory is refused.
pub fn resolve_download_mode(
    asked: Option<DownloadMode>,
    blobs: &Blobs,
) -> Result<DownloadMode, crate::StartError> {
    match asked {
        Some(DownloadMode::Redirect) if !blobs.can_presign() => Err(crate::StartError::Config(
            "--download-mode redirect needs blobs in an S3-compatible object store \
             (--blob-url s3://bucket/prefix): blobs in a local directory have no URL to redirect \
             to, use --download-mode proxy"
                .to_owned(),
        )),
        Some(mode) => Ok(mode),
        None if blobs.can_presign() => Ok(DownloadMode::Redirect),
        None => Ok(DownloadMode::Proxy),
    }
}

#[cfg(test)]
mod tests;
