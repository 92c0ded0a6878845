//! The admin subcommands: `otter product`, `otter release`, `otter device` and `otter report`.
//!
//! Each is a thin layer over the admin API (docs/api.md) through [`Client`]. The only one with
//! real work of its own is `release publish`, which uploads the image through a resumable upload
//! session in chunks so a large image survives a flaky link.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::TryStreamExt;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use otter_core::Scheme;
use otter_core::model::{
    Artifact, Device, NewRelease, Product, Release, UpdateReport, UploadSession, format_rfc3339,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::client::Client;

/// Bytes sent per upload request. Big enough that per-request overhead is negligible, small
/// enough that a broken connection costs little to resend.
const CHUNK_SIZE: u64 = 8 * 1024 * 1024;
/// How often one chunk is retried after a transient failure before the upload gives up.
const MAX_RETRIES: u32 = 5;
/// The first retry waits this long; each further one waits twice as long as the one before.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Read size while hashing and uploading; large reads keep syscall overhead low.
const READ_BUF: usize = 1024 * 1024;

/// Manage products: the firmware lines releases are published to.
#[derive(clap::Subcommand, Debug)]
pub enum ProductCommand {
    /// Create a product.
    ///
    /// Its version scheme decides how releases are ordered and cannot be changed later.
    #[command(after_help = "Examples:
  otter product create door-sensor
  otter product create gateway --scheme lexical   # versions like v202605221130
  otter product create blob --scheme opaque       # no version order; newest published wins")]
    Create {
        /// Name of the product: 1-128 characters from A-Z a-z 0-9 . _ - (not starting with a dot).
        name: String,
        /// How versions are compared.
        #[arg(long, value_enum, default_value_t = SchemeArg::Semver)]
        scheme: SchemeArg,
    },
    /// List all products.
    #[command(after_help = "Examples:
  otter product list
  otter product list --json | jq -r '.[].name'")]
    List {
        /// Print the products as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// A product's version scheme, as accepted on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum SchemeArg {
    /// Semantic versions (1.4.2, 2.0.0-rc.1), ordered by SemVer precedence.
    Semver,
    /// Any version strings, ordered byte by byte; made for date stamps such as v202605221130.
    Lexical,
    /// Versions are labels without order; the most recently published release is the newest.
    Opaque,
}

impl From<SchemeArg> for Scheme {
    fn from(scheme: SchemeArg) -> Scheme {
        match scheme {
            SchemeArg::Semver => Scheme::Semver,
            SchemeArg::Lexical => Scheme::Lexical,
            SchemeArg::Opaque => Scheme::Opaque,
        }
    }
}

impl ProductCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            ProductCommand::Create { name, scheme } => {
                let body = json!({ "name": name, "scheme": Scheme::from(scheme) });
                let product: Product = client
                    .post(client.url(&["api", "v1", "products"]), &body)
                    .await?;
                println!(
                    "created product {} (version scheme {})",
                    product.name, product.scheme
                );
                Ok(())
            }
            ProductCommand::List { json } => {
                let url = client.url(&["api", "v1", "products"]);
                list(client, url, json, "products", |product: Product| {
                    vec![
                        product.name,
                        product.scheme.to_string(),
                        format_rfc3339(product.created_at),
                    ]
                })
                .await
            }
        }
    }
}

/// Publish, list and withdraw releases of a product.
#[derive(clap::Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Upload a firmware image and publish it as a new release.
    ///
    /// The image is hashed locally, then uploaded in 8 MiB chunks through a resumable upload
    /// session: a chunk that fails on a network error or server fault is retried up to 5 times
    /// with backoff, and the upload continues from wherever the server says it got to. An image
    /// the server already stores is not stored twice.
    #[command(
        disable_version_flag = true,
        after_help = "Examples:
  otter release publish door-sensor build/fw.bin --version 1.4.2
  otter release publish door-sensor fw.bin --version 1.5.0-rc.1 --channel beta \\
      --title 'Faster pairing' --notes-url https://example.com/notes/1.5.0
  otter release publish door-sensor fw.bin --version 2.0.0 --min-source-version 1.4.2 --mandatory"
    )]
    Publish {
        /// Product to publish to.
        product: String,
        /// Firmware image to upload.
        file: PathBuf,
        /// Version of the release in the product's scheme, e.g. 1.4.2 for semver. Versions are
        /// never reused, even after a yank.
        #[arg(long)]
        version: String,
        /// Channel to publish on; repeat for several channels [default: stable].
        #[arg(long = "channel", value_name = "CHANNEL")]
        channels: Vec<String>,
        /// Short title, shown on device screens (at most 60 characters).
        #[arg(long)]
        title: Option<String>,
        /// What changed, in a sentence or two (at most 200 characters).
        #[arg(long)]
        summary: Option<String>,
        /// Oldest version that can update to this release directly. Older devices are first
        /// offered the newest release they can take, and climb from there.
        #[arg(long, value_name = "VERSION")]
        min_source_version: Option<String>,
        /// Tell devices this update must be installed rather than offered.
        #[arg(long)]
        mandatory: bool,
        /// Link to the full release notes (http:// or https://).
        #[arg(long, value_name = "URL")]
        notes_url: Option<String>,
        /// Release date as RFC 3339 with offset, e.g. 2026-05-22T11:30:00-04:00 [default: now].
        #[arg(long, value_name = "RFC3339")]
        release_date: Option<String>,
    },
    /// List a product's releases, newest first.
    #[command(after_help = "Examples:
  otter release list door-sensor
  otter release list door-sensor --json | jq '.[] | select(.yanked | not) | .version'")]
    List {
        /// Product whose releases to list.
        product: String,
        /// Print the releases as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deprecate a release, so devices move past it.
    ///
    /// A deprecated release is offered only while nothing newer exists on its channels, and it
    /// serves as a stepping stone (see --min-source-version) only when there is no other path.
    #[command(after_help = "Example:
  otter release deprecate door-sensor 1.4.2")]
    Deprecate {
        /// Product of the release.
        product: String,
        /// Version to deprecate.
        version: String,
    },
    /// Yank a release, so it is never offered again.
    ///
    /// Devices running it are offered the newest good release, even if that is older. Its image
    /// stays downloadable by hash so devices mid-download can finish. The version cannot be
    /// published again.
    #[command(after_help = "Example:
  otter release yank door-sensor 1.4.2")]
    Yank {
        /// Product of the release.
        product: String,
        /// Version to yank.
        version: String,
    },
}

impl ReleaseCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            ReleaseCommand::Publish {
                product,
                file,
                version,
                channels,
                title,
                summary,
                min_source_version,
                mandatory,
                notes_url,
                release_date,
            } => {
                let release = NewRelease {
                    version,
                    artifact: String::new(),
                    channels,
                    release_date,
                    min_source_version,
                    mandatory,
                    title,
                    summary,
                    release_notes_url: notes_url,
                    metadata: None,
                };
                publish(client, &product, &file, release).await
            }
            ReleaseCommand::List { product, json } => {
                let url = client.url(&["api", "v1", "products", &product, "releases"]);
                list(client, url, json, "releases", |release: Release| {
                    let mut flags: Vec<&str> = Vec::new();
                    for (set, name) in [
                        (release.yanked, "yanked"),
                        (release.deprecated, "deprecated"),
                        (release.mandatory, "mandatory"),
                    ] {
                        if set {
                            flags.push(name);
                        }
                    }
                    vec![
                        release.version,
                        release.channels.join(","),
                        if flags.is_empty() {
                            "-".to_owned()
                        } else {
                            flags.join(",")
                        },
                        HumanBytes(release.artifact.size).to_string(),
                        short_hash(&release.artifact.sha256),
                        release.release_date,
                        or_dash(release.title),
                    ]
                })
                .await
            }
            ReleaseCommand::Deprecate { product, version } => {
                patch_release(client, &product, &version, json!({ "deprecated": true })).await?;
                println!(
                    "deprecated {product} {version}: offered only while nothing newer is on its channels"
                );
                Ok(())
            }
            ReleaseCommand::Yank { product, version } => {
                patch_release(client, &product, &version, json!({ "yanked": true })).await?;
                println!("yanked {product} {version}: it will not be offered again");
                Ok(())
            }
        }
    }
}

/// Inspect the devices that have checked in.
#[derive(clap::Subcommand, Debug)]
pub enum DeviceCommand {
    /// List the devices of a product, with what they last said they run.
    #[command(after_help = "Examples:
  otter device list door-sensor
  otter device list door-sensor --json | jq -r '.[] | [.id, .currentVersion] | @tsv'")]
    List {
        /// Product whose devices to list.
        product: String,
        /// Print the devices as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

impl DeviceCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            DeviceCommand::List { product, json } => {
                let url = client.url(&["api", "v1", "products", &product, "devices"]);
                list(client, url, json, "devices", |device: Device| {
                    vec![
                        device.id,
                        device.channel,
                        or_dash(device.current_version),
                        or_dash(device.current_hash.as_deref().map(short_hash)),
                        format_rfc3339(device.last_seen),
                        format_rfc3339(device.first_seen),
                    ]
                })
                .await
            }
        }
    }
}

/// Inspect what devices reported about installing updates.
#[derive(clap::Subcommand, Debug)]
pub enum ReportCommand {
    /// List update reports of a product, newest first.
    #[command(after_help = "Examples:
  otter report list door-sensor
  otter report list door-sensor --device sensor-0042
  otter report list door-sensor --json | jq '.[] | select(.state == \"failed\")'")]
    List {
        /// Product whose reports to list.
        product: String,
        /// Only reports from this device.
        #[arg(long, value_name = "ID")]
        device: Option<String>,
        /// Print the reports as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
}

impl ReportCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            ReportCommand::List {
                product,
                device,
                json,
            } => {
                let mut url = client.url(&["api", "v1", "products", &product, "reports"]);
                if let Some(device) = &device {
                    url.query_pairs_mut().append_pair("device", device);
                }
                list(client, url, json, "reports", |report: UpdateReport| {
                    vec![
                        format_rfc3339(report.created_at),
                        report.device,
                        report.version,
                        report.state.to_string(),
                        or_dash(report.message),
                    ]
                })
                .await
            }
        }
    }
}

/// A row type that knows its table header, so `list` can stay generic.
trait Row: DeserializeOwned {
    const HEADER: &'static [&'static str];
}

impl Row for Product {
    const HEADER: &'static [&'static str] = &["NAME", "SCHEME", "CREATED"];
}

impl Row for Release {
    const HEADER: &'static [&'static str] = &[
        "VERSION", "CHANNELS", "FLAGS", "SIZE", "SHA256", "RELEASED", "TITLE",
    ];
}

impl Row for Device {
    const HEADER: &'static [&'static str] = &[
        "ID",
        "CHANNEL",
        "VERSION",
        "HASH",
        "LAST SEEN",
        "FIRST SEEN",
    ];
}

impl Row for UpdateReport {
    const HEADER: &'static [&'static str] = &["TIME", "DEVICE", "VERSION", "STATE", "MESSAGE"];
}

/// Fetches every page of `url` and prints the items as a table (one row per item from `row`),
/// or as the server's raw JSON with `--json`.
async fn list<T: Row>(
    client: &Client,
    url: reqwest::Url,
    json: bool,
    what: &str,
    row: impl Fn(T) -> Vec<String>,
) -> anyhow::Result<()> {
    let items = client.list_all(url).await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &items)?;
        writeln!(out)?;
        return Ok(());
    }
    if items.is_empty() {
        // On stderr, so a script reading the table sees no rows rather than a sentence.
        eprintln!("no {what}");
        return Ok(());
    }
    let rows = items
        .into_iter()
        .map(|item| serde_json::from_value::<T>(item).map(&row))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("the server sent {what} in an unexpected shape"))?;
    write_table(&mut out, T::HEADER, &rows)?;
    Ok(())
}

/// Writes left-aligned columns separated by two spaces; the last column is not padded so lines
/// carry no trailing blanks.
fn write_table(out: &mut impl Write, header: &[&str], rows: &[Vec<String>]) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:width$}  "));
            }
        }
        writeln!(out, "{line}")?;
    }
    Ok(())
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

/// The first 12 hex digits: enough to tell images apart at a glance and to grep `--json` output.
fn short_hash(hash: &str) -> String {
    hash.chars().take(12).collect()
}

async fn patch_release(
    client: &Client,
    product: &str,
    version: &str,
    patch: Value,
) -> anyhow::Result<()> {
    let url = client.url(&["api", "v1", "products", product, "releases", version]);
    let _: Release = client.patch(url, &patch).await?;
    Ok(())
}

/// A local image, hashed and ready to upload.
#[derive(Debug)]
struct LocalImage {
    path: PathBuf,
    size: u64,
    sha256: String,
    /// The name the server keeps, used in download URLs.
    filename: String,
}

async fn publish(
    client: &Client,
    product: &str,
    file: &Path,
    mut release: NewRelease,
) -> anyhow::Result<()> {
    // Everything that can be refused without the image is checked before it is hashed and
    // uploaded, so a typo costs a round trip rather than minutes of upload. The server checks
    // all of it again.
    let product: Product = client
        .get(client.url(&["api", "v1", "products", product]))
        .await?;
    let mut probe = release.clone();
    probe.artifact = "0".repeat(64);
    probe
        .validate(product.scheme, unix_now())
        .map_err(|err| anyhow::anyhow!("{err} ({})", err.code()))?;
    let existing = client
        .get::<Release>(client.url(&[
            "api",
            "v1",
            "products",
            &product.name,
            "releases",
            &release.version,
        ]))
        .await;
    match existing {
        Ok(_) => anyhow::bail!(
            "{} {} already exists; versions are never reused, even after a yank (version_exists)",
            product.name,
            release.version
        ),
        Err(err) if err.status() == Some(StatusCode::NOT_FOUND) => {}
        Err(err) => return Err(err.into()),
    }

    let progress = progress_bar();
    let image = hash_file(file, &progress).await?;
    let artifact = upload(client, &image, CHUNK_SIZE, &progress).await;
    progress.finish_and_clear();
    let artifact = artifact?;

    release.artifact = artifact.sha256;
    let url = client.url(&["api", "v1", "products", &product.name, "releases"]);
    let published: Release = client.post(url, &release).await?;
    println!(
        "published {} {} on {}: sha256 {}, {} ({} bytes)",
        published.product,
        published.version,
        published.channels.join(","),
        published.artifact.sha256,
        HumanBytes(published.artifact.size),
        published.artifact.size
    );
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A byte progress bar on stderr, or a hidden one when stderr is not a terminal (logs and CI
/// output should not fill with redraws).
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg:>9} [{wide_bar}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    )
    .expect("the template is valid")
    .progress_chars("=> ");
    ProgressBar::new(0).with_style(style)
}

/// Streams the file through SHA-256 on a blocking thread, so a multi-GiB image never sits in
/// memory.
async fn hash_file(path: &Path, progress: &ProgressBar) -> anyhow::Result<LocalImage> {
    let path = path.to_owned();
    let progress = progress.clone();
    tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata()?.len();
        progress.set_length(size);
        progress.set_message("hashing");
        let mut hasher = Sha256::new();
        let mut buf = vec![0; READ_BUF];
        loop {
            let n = file
                .read(&mut buf)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            progress.inc(n as u64);
        }
        let filename = path
            .file_name()
            .with_context(|| format!("{} does not name a file", path.display()))?
            .to_string_lossy()
            .into_owned();
        Ok(LocalImage {
            sha256: hex::encode(hasher.finalize()),
            size,
            filename,
            path,
        })
    })
    .await?
}

/// Uploads `image` through a resumable upload session, `chunk_size` bytes per request, and
/// returns the stored artifact.
async fn upload(
    client: &Client,
    image: &LocalImage,
    chunk_size: u64,
    progress: &ProgressBar,
) -> anyhow::Result<Artifact> {
    let body = json!({ "size": image.size, "sha256": image.sha256, "filename": image.filename });
    let session: UploadSession = client
        .post(client.url(&["api", "v1", "uploads"]), &body)
        .await?;
    let session_url = client.url(&["api", "v1", "uploads", &session.id]);

    progress.reset();
    progress.set_message("uploading");
    let mut offset = session.offset;
    let mut failures = 0;
    while offset < image.size {
        progress.set_position(offset);
        let len = chunk_size.min(image.size - offset);
        let mut url = session_url.clone();
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string());
        let body = chunk_body(&image.path, offset, len, progress).await?;
        let err = match client.put::<UploadSession>(url, body, len).await {
            Ok(session) if session.offset > offset => {
                offset = session.offset;
                failures = 0;
                continue;
            }
            Ok(_) => anyhow::bail!("the server accepted none of the chunk at byte {offset}"),
            Err(err) => err,
        };
        failures += 1;
        if failures > MAX_RETRIES {
            return Err(anyhow::Error::new(err).context(format!(
                "upload of {} stopped at byte {offset} of {} after {MAX_RETRIES} retries",
                image.filename, image.size
            )));
        }
        if let Some(current) = err.offset_mismatch() {
            // The server holds a different amount than we thought, e.g. part of a chunk whose
            // connection broke; continue from what it has.
            offset = current;
        } else if err.is_transient() {
            let delay = FIRST_BACKOFF * 2u32.pow(failures - 1);
            progress.suspend(|| {
                eprintln!(
                    "warning: {err}; retrying in {:.1}s ({failures}/{MAX_RETRIES})",
                    delay.as_secs_f64()
                )
            });
            tokio::time::sleep(delay).await;
            // A broken chunk keeps the bytes that arrived: ask how many rather than resend them.
            // If even that fails, the next chunk's offset_mismatch tells us instead.
            match client.get::<UploadSession>(session_url.clone()).await {
                Ok(session) => offset = session.offset,
                Err(err) if err.is_transient() => {}
                Err(err) => return Err(err.into()),
            }
        } else {
            return Err(err.into());
        }
    }
    progress.set_position(image.size);
    progress.set_message("finishing");
    let mut finalize = session_url;
    finalize
        .path_segments_mut()
        .expect("session URL is built from segments")
        .push("finalize");
    Ok(client.post_empty(finalize).await?)
}

/// A request body streaming `len` bytes of the file from `offset`, advancing the progress bar as
/// bytes are handed to the connection.
async fn chunk_body(
    path: &Path,
    offset: u64,
    len: u64,
    progress: &ProgressBar,
) -> anyhow::Result<reqwest::Body> {
    let mut file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot open {}", path.display()))?;
    file.seek(std::io::SeekFrom::Start(offset))
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let progress = progress.clone();
    let stream = ReaderStream::with_capacity(file.take(len), READ_BUF)
        .inspect_ok(move |bytes| progress.inc(bytes.len() as u64));
    Ok(reqwest::Body::wrap_stream(stream))
}
