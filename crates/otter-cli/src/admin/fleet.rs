//! `otter device`, `otter report` and `otter apikey`: what the fleet runs and says, and the keys THiNX devices use.

use otter_client::Client;
use otter_core::model::{ApiKey, Device, UpdateReport, format_rfc3339};
use serde_json::{Value, json};

use super::{list, or_dash, short_hash};

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
