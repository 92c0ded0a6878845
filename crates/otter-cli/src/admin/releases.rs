//! `otter release`: publish (resumable upload hashed on the way, publish), list, show, and flag releases.

use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::Engine;
use indicatif::HumanBytes;
use otter_client::Client;
use otter_client::files::progress_bar;
use otter_client::upload::{Pacing, local_image, upload};
use otter_core::deltas::{Delta, DeltaPolicy};
use otter_core::model::{NewRelease, Product, Release};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{list, or_dash, short_hash};

/// Publish, list and withdraw releases of a product.
#[derive(clap::Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Upload a firmware image and publish it as a new release.
    ///
    /// The image is uploaded in 8 MiB chunks through a resumable upload session and hashed as it
    /// is read (one pass over the file); the server refuses it unless the bytes it received have
    /// the same SHA-256. A chunk that fails on a network error or server fault is retried up to 5 times
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
    /// Show the delta patches built to a release (docs/deltas.md); with --wait, wait for the
    /// builder to finish them, with a progress bar.
    #[command(after_help = "Examples:
  otter release deltas door-sensor 1.4.2
  otter release deltas door-sensor 1.4.2 --wait --timeout 5m")]
    Deltas {
        product: String,
        version: String,
        /// Wait until every patch is ready, skipped or failed.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits at most (e.g. 90s, 10m).
        #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = otter_core::units::parse_duration)]
        timeout: std::time::Duration,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
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
            ReleaseCommand::Deltas {
                product,
                version,
                wait,
                timeout,
                json,
            } => deltas(client, &product, &version, wait.then_some(timeout), json).await,
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

/// A release's patches as `GET …/releases/{version}/deltas` answers.
#[derive(serde::Deserialize)]
struct DeltaStatus {
    policy: Option<DeltaPolicy>,
    deltas: Vec<Delta>,
    done: u64,
    total: u64,
}

/// `otter release deltas`: the patches to a release, after waiting for the builder if asked.
async fn deltas(
    client: &Client,
    product: &str,
    version: &str,
    wait: Option<std::time::Duration>,
    json: bool,
) -> anyhow::Result<()> {
    let url = client.url(&[
        "api", "v1", "products", product, "releases", version, "deltas",
    ]);
    let mut answer: Value = client.get(url.clone()).await?;
    if let Some(timeout) = wait {
        let deadline = std::time::Instant::now() + timeout;
        let bar = progress_bar();
        bar.set_message("patches");
        loop {
            let status: DeltaStatus = serde_json::from_value(answer.clone())?;
            bar.set_length(status.total);
            bar.set_position(status.done);
            if status.done == status.total {
                break;
            }
            if std::time::Instant::now() >= deadline {
                bar.abandon();
                anyhow::bail!(
                    "{product} {version}: {} of {} patches built after {} s",
                    status.done,
                    status.total,
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            answer = client.get(url.clone()).await?;
        }
        bar.finish_and_clear();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    let status: DeltaStatus = serde_json::from_value(answer)?;
    match &status.policy {
        Some(policy) => println!(
            "{product}: {} patches kept under {} % of the image",
            policy.format, policy.max_share_percent
        ),
        None => println!("{product}: no delta policy (no patches are built or offered)"),
    }
    println!(
        "{product} {version}: {} of {} patches done",
        status.done, status.total
    );
    let rows: Vec<Vec<String>> = status
        .deltas
        .into_iter()
        .map(|d| {
            vec![
                d.from,
                d.format,
                d.state.as_str().to_owned(),
                d.size
                    .map_or_else(|| "-".to_owned(), |s| HumanBytes(s).to_string()),
                or_dash(d.message),
            ]
        })
        .collect();
    super::write_table(
        &mut std::io::stdout().lock(),
        &["FROM", "FORMAT", "STATE", "SIZE", "NOTE"],
        &rows,
    )?;
    Ok(())
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
    // Everything that can be refused without the image is checked before it is
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
    let image = local_image(file)?;
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
