//! `otter device`, `otter report` and `otter apikey`: the device registry (filters, tags, pins,
//! channel moves, admission rules), what devices say, and the keys THiNX devices use.

use otter_client::Client;
use otter_core::model::{ApiKey, Device, UpdateReport, format_rfc3339};
use serde_json::{Value, json};

use super::{list, or_dash, short_hash};

/// The device registry: list and filter devices, tag them, move, pin, delete, and let them in
/// or keep them out.
#[derive(clap::Subcommand, Debug)]
pub enum DeviceCommand {
    /// List the devices of a product (those matching every filter given), with what they last
    /// said they run.
    #[command(after_help = "Examples:
  otter device list door-sensor
  otter device list door-sensor --tag canary --version 1.4.2
  otter device list door-sensor --seen-before 2026-11-01T00:00:00Z --json | jq -r '.[].id'")]
    List {
        /// Product whose devices to list.
        product: String,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print the devices as a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one device: what it runs, what operators set on it and where it stands in the
    /// product's rollouts (the server's JSON).
    #[command(after_help = "Example:
  otter device show door-sensor sensor-0042")]
    Show { product: String, device: String },
    /// Tag one device, or every device matching the filters (`--all`: every device).
    #[command(after_help = "Examples:
  otter device tag door-sensor canary sensor-0042
  otter device tag door-sensor wave-1 --channel stable --version 1.4.2
  otter device tag door-sensor everyone --all")]
    Tag(TagArgs),
    /// Remove a tag from one device, or from every device matching the filters.
    #[command(after_help = "Examples:
  otter device untag door-sensor canary sensor-0042
  otter device untag door-sensor canary --all")]
    Untag(TagArgs),
    /// Pin a device to a release: it is offered exactly that one (an older one too) until
    /// unpinned, whatever newer releases, rollouts or windows say.
    #[command(after_help = "Example:
  otter device pin door-sensor sensor-0042 1.4.1")]
    Pin {
        product: String,
        device: String,
        version: String,
    },
    /// Unpin a device: the release rules decide again.
    Unpin { product: String, device: String },
    /// Move a device to a channel, whatever channel it asks for; without CHANNEL it goes back
    /// to the one it asks for.
    #[command(after_help = "Examples:
  otter device move door-sensor sensor-0042 beta
  otter device move door-sensor sensor-0042")]
    Move {
        product: String,
        device: String,
        channel: Option<String>,
    },
    /// Forget a device: its entry, tags, pin and channel (its reports and access rule stay).
    Delete { product: String, device: String },
    /// Let a device in, also while the product admits only its allowlist.
    Allow { product: String, device: String },
    /// Keep a device out, whatever the product's admission mode: its checks are refused (403).
    Deny { product: String, device: String },
    /// Remove a device's allow or deny rule: the product's admission mode decides again.
    ClearAccess { product: String, device: String },
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
    /// Make a device's hawkBit DDI TargetToken (its controller id is the device id): printed
    /// once, stored hashed; a new one replaces the old (docs/protocols/hawkbit-ddi.md).
    #[command(after_help = "Example:
  otter device token gateway gw-0042    # then: swupdate … -u \"-t DEFAULT -u URL -i gw-0042 -k TOKEN\"")]
    Token { product: String, device: String },
}

/// Which devices a list or a tagging means: every filter given must match.
#[derive(clap::Args, Debug, Default)]
pub struct FilterArgs {
    /// Devices carrying this tag.
    #[arg(long = "tag", value_name = "TAG")]
    has_tag: Option<String>,
    /// Devices last known to run this version.
    #[arg(long)]
    version: Option<String>,
    /// Devices on this channel (the assigned one, else the one they ask for).
    #[arg(long)]
    channel: Option<String>,
    /// Devices whose last check-in spoke this protocol (native, arduino, thinx, ota_backend,
    /// ddi).
    #[arg(long)]
    protocol: Option<String>,
    /// Devices with this attribute, as KEY:VALUE (what a hawkBit DDI controller sent as
    /// configData).
    #[arg(long, value_name = "KEY:VALUE")]
    attribute: Option<String>,
    /// Devices last seen before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    seen_before: Option<String>,
    /// Devices last seen at or after this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    seen_after: Option<String>,
    /// Devices in this state in a rollout that is not over: offered, downloading, installed,
    /// failed or penalty (in the penalty box).
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,
}

impl FilterArgs {
    fn is_empty(&self) -> bool {
        self.pairs().next().is_none()
    }

    fn pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("tag", &self.has_tag),
            ("version", &self.version),
            ("channel", &self.channel),
            ("protocol", &self.protocol),
            ("attribute", &self.attribute),
            ("seenBefore", &self.seen_before),
            ("seenAfter", &self.seen_after),
            ("status", &self.status),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)))
    }

    /// `url` with the filters as query parameters.
    fn apply(&self, mut url: reqwest::Url) -> reqwest::Url {
        url.query_pairs_mut().extend_pairs(self.pairs());
        url
    }
}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    product: String,
    /// The tag: 1-128 characters from A-Z a-z 0-9 . _ - (not starting with a dot).
    tag: String,
    /// One device; leave out to change every device matching the filters.
    device: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Every device of the product (needed when neither a device nor a filter is given).
    #[arg(long)]
    all: bool,
}

impl TagArgs {
    async fn run(self, client: &Client, on: bool) -> anyhow::Result<()> {
        let everyone = self.device.is_none() && self.filter.is_empty();
        if everyone && !self.all {
            anyhow::bail!("name a device, give filters, or say --all to change every device");
        }
        let url = client.url(&["api", "v1", "products", &self.product, "tags", &self.tag]);
        let mut url = self.filter.apply(url);
        if let Some(device) = &self.device {
            url.query_pairs_mut().append_pair("device", device);
        }
        let answer: Value = if on {
            client.post_empty(url).await?
        } else {
            client.delete_json(url).await?
        };
        let changed = answer["changed"].as_u64().unwrap_or_default();
        let verb = if on { "tagged" } else { "untagged" };
        println!(
            "{verb} {changed} device(s) of {} {}",
            self.product, self.tag
        );
        Ok(())
    }
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
        let device_url = |product: &str, device: &str| {
            client.url(&["api", "v1", "products", product, "devices", device])
        };
        let access_url = |product: &str, device: &str| {
            client.url(&["api", "v1", "products", product, "admission", device])
        };
        match self {
            DeviceCommand::Set {
                product,
                device,
                auto_update,
            } => {
                let body = json!({ "autoUpdate": auto_update == OnOff::On });
                let device: Device = client.patch(device_url(&product, &device), &body).await?;
                println!(
                    "{} {}: auto-update {}",
                    product,
                    device.id,
                    if device.auto_update { "on" } else { "off" }
                );
                Ok(())
            }
            DeviceCommand::List {
                product,
                filter,
                json,
            } => {
                let url = client.url(&["api", "v1", "products", &product, "devices"]);
                list(
                    client,
                    filter.apply(url),
                    json,
                    "devices",
                    |device: Device| {
                        vec![
                            device.id,
                            device.assigned_channel.unwrap_or(device.channel),
                            or_dash(device.current_version),
                            or_dash(device.current_hash.as_deref().map(short_hash)),
                            or_dash(Some(device.tags.join(",")).filter(|t| !t.is_empty())),
                            or_dash(device.pinned_version),
                            or_dash(device.protocol),
                            format_rfc3339(device.last_seen),
                            format_rfc3339(device.first_seen),
                        ]
                    },
                )
                .await
            }
            DeviceCommand::Tag(args) => args.run(client, true).await,
            DeviceCommand::Untag(args) => args.run(client, false).await,
            DeviceCommand::Pin {
                product,
                device,
                version,
            } => {
                let body = json!({ "pinnedVersion": version });
                let device: Device = client.patch(device_url(&product, &device), &body).await?;
                println!("{product} {}: pinned to {version}", device.id);
                Ok(())
            }
            DeviceCommand::Token { product, device } => {
                let mut url = device_url(&product, &device);
                url.path_segments_mut()
                    .map_err(|()| anyhow::anyhow!("the server URL cannot take a path"))?
                    .push("ddi-token");
                let made: serde_json::Value = client.post_empty(url).await?;
                println!("{}", made["token"].as_str().unwrap_or_default());
                Ok(())
            }
            DeviceCommand::Show { product, device } => {
                let shown: serde_json::Value = client.get(device_url(&product, &device)).await?;
                println!("{shown:#}");
                Ok(())
            }
            DeviceCommand::Unpin { product, device } => {
                let body = json!({ "pinnedVersion": null });
                let device: Device = client.patch(device_url(&product, &device), &body).await?;
                println!("{product} {}: unpinned", device.id);
                Ok(())
            }
            DeviceCommand::Move {
                product,
                device,
                channel,
            } => {
                let body = json!({ "assignedChannel": channel });
                let device: Device = client.patch(device_url(&product, &device), &body).await?;
                match device.assigned_channel {
                    Some(channel) => println!("{product} {}: moved to {channel}", device.id),
                    None => println!(
                        "{product} {}: back on the channel it asks for ({})",
                        device.id, device.channel
                    ),
                }
                Ok(())
            }
            DeviceCommand::Delete { product, device } => {
                client.delete(device_url(&product, &device)).await?;
                println!("deleted device {device} of {product}");
                Ok(())
            }
            DeviceCommand::Allow { product, device } => {
                set_access(client, access_url(&product, &device), "allow").await?;
                println!("{product} {device}: allowed");
                Ok(())
            }
            DeviceCommand::Deny { product, device } => {
                set_access(client, access_url(&product, &device), "deny").await?;
                println!("{product} {device}: denied (its checks are refused)");
                Ok(())
            }
            DeviceCommand::ClearAccess { product, device } => {
                let _: Value = client.delete_json(access_url(&product, &device)).await?;
                println!("{product} {device}: no rule of its own, the admission mode decides");
                Ok(())
            }
        }
    }
}

async fn set_access(client: &Client, url: reqwest::Url, access: &str) -> anyhow::Result<()> {
    let _: Value = client.put_json(url, &json!({ "access": access })).await?;
    Ok(())
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
