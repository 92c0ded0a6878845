//! The admin subcommands: `otter product`, `otter release`, `otter device`, `otter report` and
//! `otter apikey`.
//!
//! Each is a thin layer over the admin API (docs/api.md) through [`Client`]; `release publish`
//! sends the image with otter-client's resumable uploader.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use indicatif::HumanBytes;
use otter_client::Client;
use otter_client::files::progress_bar;
use otter_client::upload::{Pacing, hash_image, upload};
use otter_core::Scheme;
use otter_core::model::{
    ApiKey, Device, NewRelease, Product, Release, UpdateReport, format_rfc3339,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

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
    /// Declare the native signature format of a product's images: every image published from
    /// then on must verify with this key, as the device's bootloader or updater will check it.
    #[command(after_help = "Examples:
  otter product set-format c3-sensor --format esp-idf-sbv2 --pubkey sbv2-signing.pub
  otter product set-format plug --format esp8266-rsa --pubkey rsa2048.pub")]
    SetFormat {
        product: String,
        /// esp8266-rsa or esp-idf-sbv2.
        #[arg(long)]
        format: String,
        /// The public key (PEM) the devices hold.
        #[arg(long, value_name = "PUB")]
        pubkey: PathBuf,
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
            ProductCommand::SetFormat {
                product,
                format,
                pubkey,
            } => {
                let public_key = std::fs::read_to_string(&pubkey)
                    .with_context(|| format!("reading {}", pubkey.display()))?;
                let url = client.url(&["api", "v1", "products", &product, "image-format"]);
                let _: Value = client
                    .put_json(url, &json!({ "format": format, "publicKey": public_key }))
                    .await?;
                println!("{product}: images must carry a valid {format} signature");
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
        /// The release manifest signed offline (`otter release sign`); required by products
        /// with a root of trust.
        #[arg(long, value_name = "FILE")]
        signature: Option<PathBuf>,
        /// ECDSA P-256 signature of the image by a release key (`otter sign FILE --key
        /// release-p256.key` writes FILE.sig), shown
        /// as `binarySignature` in firmware manifests.
        #[arg(long, value_name = "FILE")]
        binary_signature: Option<PathBuf>,
    },
    /// Sign a release manifest offline (see `otter release sign --help`).
    Sign(crate::signing::ReleaseSignArgs),
    /// Attach (or replace, e.g. re-sign before it expires) a published release's signed
    /// manifest.
    #[command(after_help = "Example:
  otter release attach-signature door 2.0.0 door-2.0.0.manifest.json")]
    AttachSignature {
        product: String,
        version: String,
        file: PathBuf,
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
                signature,
                binary_signature,
            } => {
                let signature = signature
                    .map(|path| -> anyhow::Result<Value> {
                        let text = std::fs::read_to_string(&path)
                            .with_context(|| format!("reading {}", path.display()))?;
                        serde_json::from_str(&text)
                            .with_context(|| format!("{} is not a signed manifest", path.display()))
                    })
                    .transpose()?;
                let binary_signature = binary_signature
                    .map(|path| -> anyhow::Result<String> {
                        Ok(base64::engine::general_purpose::STANDARD
                            .encode(crate::signing::read_signature(&path)?))
                    })
                    .transpose()?;
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
                    signature,
                    binary_signature,
                };
                publish(client, &product, &file, release).await
            }
            ReleaseCommand::Sign(args) => args.run(),
            ReleaseCommand::AttachSignature {
                product,
                version,
                file,
            } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let envelope: Value = serde_json::from_str(&text)?;
                let url = client.url(&[
                    "api",
                    "v1",
                    "products",
                    &product,
                    "releases",
                    &version,
                    "signature",
                ]);
                let answer: Value = client.put_json(url, &envelope).await?;
                println!(
                    "{product} {version}: signed (security counter {}, expires {})",
                    answer["securityCounter"],
                    answer["expires"].as_str().unwrap_or_default()
                );
                Ok(())
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
    /// Change a device: whether it installs updates as soon as a check-in offers one (THiNX
    /// devices; off for a new device, as in THiNX).
    #[command(after_help = "Example:
  otter device set lamp 3f2b6a1c-0d4e-4c1a-9b7e-5c2f8a9d0e11 --auto-update on")]
    Set {
        product: String,
        /// The device id (a THiNX device's UDID).
        device: String,
        #[arg(long, value_enum, value_name = "on|off")]
        auto_update: OnOff,
    },
}

/// Device API keys: what THiNX devices send in `Authentication`.
#[derive(clap::Subcommand, Debug)]
pub enum ApiKeyCommand {
    /// Create a device API key for a product; the key is printed once and only its hash is
    /// kept.
    #[command(after_help = "Example:
  otter apikey create lamp --label factory")]
    Create {
        product: String,
        /// A note to tell keys apart (e.g. where it is built in).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List a product's device API keys (ids and labels; the keys are never shown again).
    List {
        product: String,
        /// Print the keys as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device API key: devices using it are refused from then on.
    Revoke {
        product: String,
        /// The key's id, as `otter apikey list` shows it.
        id: String,
    },
}

impl ApiKeyCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            ApiKeyCommand::Create { product, label } => {
                let url = client.url(&["api", "v1", "products", &product, "apikeys"]);
                let created: Value = client.post(url, &json!({ "label": label })).await?;
                let key = created["key"].as_str().unwrap_or_default();
                let id = created["id"].as_str().unwrap_or_default();
                eprintln!("device API key {id} for {product} (shown once; only its hash is kept):");
                println!("{key}");
                Ok(())
            }
            ApiKeyCommand::List { product, json } => {
                let url = client.url(&["api", "v1", "products", &product, "apikeys"]);
                list(client, url, json, "API keys", |key: ApiKey| {
                    vec![
                        key.id,
                        format_rfc3339(key.created_at),
                        or_dash(Some(key.label).filter(|l| !l.is_empty())),
                    ]
                })
                .await
            }
            ApiKeyCommand::Revoke { product, id } => {
                let url = client.url(&["api", "v1", "products", &product, "apikeys", &id]);
                client.delete(url).await?;
                println!("revoked device API key {id} of {product}");
                Ok(())
            }
        }
    }
}

/// `on` or `off`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

impl DeviceCommand {
    pub async fn run(self, client: &Client) -> anyhow::Result<()> {
        match self {
            DeviceCommand::Set {
                product,
                device,
                auto_update,
            } => {
                let url = client.url(&["api", "v1", "products", &product, "devices", &device]);
                let body = json!({ "autoUpdate": auto_update == OnOff::On });
                let device: Device = client.patch(url, &body).await?;
                println!(
                    "{} {}: auto-update {}",
                    product,
                    device.id,
                    if device.auto_update { "on" } else { "off" }
                );
                Ok(())
            }
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

impl Row for ApiKey {
    const HEADER: &'static [&'static str] = &["ID", "CREATED", "LABEL"];
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
    let written = if json {
        // One item per line: easy to read, grep and feed to jq.
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &items)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else if items.is_empty() {
        // On stderr, so a script reading the table sees no rows rather than a sentence.
        eprintln!("no {what}");
        Ok(())
    } else {
        let rows = items
            .iter()
            .map(|item| serde_json::from_str::<T>(item.get()).map(&row))
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("the server sent {what} in an unexpected shape"))?;
        write_table(&mut std::io::stdout().lock(), T::HEADER, &rows)
    };
    match written {
        // The reader went away (`otter release list p | head`): it has all it wanted.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
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
        .validate(product.scheme, otter_store::now())
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
    let image = hash_image(file, &progress).await?;
    let artifact = upload(client, &image, Pacing::DEFAULT, &progress).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_without_trailing_blanks() {
        let mut out = Vec::new();
        let rows = vec![
            vec![
                "door-sensor".to_owned(),
                "semver".to_owned(),
                "x".to_owned(),
            ],
            vec!["gw".to_owned(), "lexical".to_owned(), "-".to_owned()],
        ];
        write_table(&mut out, &["NAME", "SCHEME", "CREATED"], &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "NAME         SCHEME   CREATED\n\
             door-sensor  semver   x\n\
             gw           lexical  -\n"
        );
    }
}
