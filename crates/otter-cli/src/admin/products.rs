//! `otter product`: create, list and show products, their maintenance windows, poll hints and
//! delta policies.

use std::path::PathBuf;

use anyhow::Context;
use otter_client::Client;
use otter_core::Scheme;
use otter_core::deltas::DeltaPolicy;
use otter_core::model::{Product, format_rfc3339};
use otter_core::schedule::{PollHint, WindowSpec};
use serde_json::{Value, json};

use super::{Row, list};

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
    /// Set or remove the maintenance window of a product's channel: outside it, devices on
    /// the channel are offered only mandatory releases (docs/windows.md).
    #[command(after_help = "Examples:
  otter product window door stable --timezone Europe/Berlin --slot 'mon-fri 02:00-05:00'
  otter product window door stable --slot 'sat 22:00-04:00' --slot 'sun 22:00-04:00'
  otter product window door stable --remove")]
    Window {
        product: String,
        channel: String,
        /// A weekly slot: DAYS HH:MM-HH:MM, DAYS being daily, mon…sun, a range (mon-fri) or a
        /// comma list; a slot ending before it starts runs past midnight. Repeatable.
        #[arg(long, value_name = "SLOT", required_unless_present = "remove")]
        slot: Vec<String>,
        /// The IANA time zone the slots are in.
        #[arg(long, value_name = "ZONE", default_value = "UTC")]
        timezone: String,
        /// Remove the window: the channel is open at all times.
        #[arg(long, conflicts_with = "slot")]
        remove: bool,
    },
    /// List a product's maintenance windows and whether each is open now.
    Windows {
        product: String,
        /// Print the server's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show, set or remove the poll hint: how long the native check tells devices to wait
    /// before checking again (`nextCheckSeconds`, jittered per answer; the agent honours it).
    #[command(after_help = "Examples:
  otter product poll-hint door                          # show it
  otter product poll-hint door --every 6h --jitter 20   # 4.8 h to 7.2 h
  otter product poll-hint door --remove")]
    PollHint {
        product: String,
        /// The interval (e.g. 90s, 15m, 6h; at most 7 days).
        #[arg(long, value_name = "DURATION", value_parser = otter_core::units::parse_duration)]
        every: Option<std::time::Duration>,
        /// How far each answer moves it at random, in percent either way.
        #[arg(long, value_name = "PERCENT", requires = "every", default_value_t = PollHint::DEFAULT_JITTER)]
        jitter: u8,
        /// Remove the hint: checks answer no nextCheckSeconds.
        #[arg(long, conflicts_with = "every")]
        remove: bool,
    },
    /// Show, set or turn off the product's delta policy: after each publish, otter builds
    /// patches from earlier releases to the new one and offers them to devices running a base
    /// (docs/deltas.md). Off by default.
    #[command(after_help = "Examples:
  otter product set-delta door                                  # show it
  otter product set-delta door --format bsdiff                  # from the last 3 releases
  otter product set-delta door --format zstd --from-last 5 --max-share 30
  otter product set-delta door --format esp-delta-ota --from 1.4.2
  otter product set-delta door --off")]
    SetDelta {
        product: String,
        /// esp-delta-ota, bsdiff or zstd.
        #[arg(long)]
        format: Option<String>,
        /// Patches from this many earlier releases on the new release's channels [default: 3].
        #[arg(long, value_name = "N", requires = "format", conflicts_with = "from")]
        from_last: Option<u32>,
        /// A patch from this one release only.
        #[arg(long, value_name = "VERSION", requires = "format")]
        from: Option<String>,
        /// Keep a patch only when it is smaller than this share of the image, in percent.
        #[arg(long, value_name = "PERCENT", requires = "format", default_value_t = DeltaPolicy::DEFAULT_MAX_SHARE)]
        max_share: u32,
        /// Turn delta updates off: nothing more is built or offered.
        #[arg(long, conflicts_with = "format")]
        off: bool,
    },
    /// Show who a product admits, or set it: `open` (every device not denied by name, the
    /// default) or `allowlist` (only devices allowed with `otter device allow`).
    #[command(after_help = "Examples:
  otter product admission door-sensor
  otter product admission door-sensor allowlist")]
    Admission {
        product: String,
        #[arg(value_enum)]
        mode: Option<AdmissionArg>,
    },
    /// Show or set a product's hawkBit DDI options, or make its GatewayToken
    /// (docs/protocols/hawkbit-ddi.md).
    #[command(after_help = "Examples:
  otter product ddi gateway                        # show the options
  otter product ddi gateway --anonymous on         # polls without a token are answered
  otter product ddi gateway --token-downloads on   # artifacts need the DDI token too
  otter product ddi gateway --gateway-token        # print a new GatewayToken (replaces the old)")]
    Ddi {
        product: String,
        /// Answer polls that carry no token (the tenant names the product, else
        /// --ddi-default-product).
        #[arg(long, value_enum, value_name = "on|off")]
        anonymous: Option<super::fleet::OnOff>,
        /// Serve artifacts under the controller's path with its token, instead of otter's
        /// unauthenticated download URL.
        #[arg(long, value_enum, value_name = "on|off")]
        token_downloads: Option<super::fleet::OnOff>,
        /// Make the product's GatewayToken and print it (once).
        #[arg(long, conflicts_with_all = ["anonymous", "token_downloads"])]
        gateway_token: bool,
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

/// A channel's maintenance window as `otter product windows` lists it.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct WindowRow {
    channel: String,
    timezone: String,
    slots: Vec<String>,
    open_now: bool,
}

impl Row for WindowRow {
    const HEADER: &'static [&'static str] = &["CHANNEL", "TIMEZONE", "SLOTS", "OPEN NOW"];
}

/// A product's admission mode, as accepted on the command line.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum AdmissionArg {
    /// Every device that is not denied by name.
    Open,
    /// Only devices allowed by name.
    Allowlist,
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
            ProductCommand::Window {
                product,
                channel,
                slot,
                timezone,
                remove,
            } => {
                let url = client.url(&["api", "v1", "products", &product, "windows", &channel]);
                if remove {
                    client.delete(url).await?;
                    println!("{product}/{channel}: no maintenance window, open at all times");
                    return Ok(());
                }
                let window = WindowSpec {
                    timezone,
                    slots: slot,
                };
                let set: Value = client.put_json(url, &window).await?;
                let now = if set["openNow"] == true {
                    "open"
                } else {
                    "closed"
                };
                println!(
                    "{product}/{channel}: window {} ({}), {now} now",
                    window.slots.join(", "),
                    window.timezone
                );
                Ok(())
            }
            ProductCommand::Windows { product, json } => {
                let url = client.url(&["api", "v1", "products", &product, "windows"]);
                list(client, url, json, "windows", |w: WindowRow| {
                    vec![
                        w.channel,
                        w.timezone,
                        w.slots.join(", "),
                        if w.open_now { "yes" } else { "no" }.to_owned(),
                    ]
                })
                .await
            }
            ProductCommand::PollHint {
                product,
                every,
                jitter,
                remove,
            } => {
                let url = client.url(&["api", "v1", "products", &product, "poll-hint"]);
                let hint: Option<PollHint> = if remove {
                    client.delete(url).await?;
                    None
                } else if let Some(every) = every {
                    let hint = PollHint {
                        interval_seconds: u32::try_from(every.as_secs())
                            .context("--every is too long")?,
                        jitter_percent: jitter,
                    };
                    client.put_json(url, &hint).await?
                } else {
                    client.get(url).await?
                };
                match hint {
                    Some(h) => println!(
                        "{product}: devices check again after {} s ± {} %",
                        h.interval_seconds, h.jitter_percent
                    ),
                    None => println!("{product}: no poll hint (devices keep their own schedule)"),
                }
                Ok(())
            }
            ProductCommand::Ddi {
                product,
                anonymous,
                token_downloads,
                gateway_token,
            } => {
                let url = client.url(&["api", "v1", "products", &product, "ddi"]);
                if gateway_token {
                    let url =
                        client.url(&["api", "v1", "products", &product, "ddi", "gateway-token"]);
                    let made: Value = client.post_empty(url).await?;
                    println!("{}", made["token"].as_str().unwrap_or_default());
                    return Ok(());
                }
                let mut options: Value = client.get(url.clone()).await?;
                if anonymous.is_some() || token_downloads.is_some() {
                    let on = |v: super::fleet::OnOff| json!(v == super::fleet::OnOff::On);
                    if let Some(v) = anonymous {
                        options["anonymous"] = on(v);
                    }
                    if let Some(v) = token_downloads {
                        options["tokenDownloads"] = on(v);
                    }
                    options = client.put_json(url, &options).await?;
                }
                let word = |v: &Value| {
                    if v.as_bool() == Some(true) {
                        "on"
                    } else {
                        "off"
                    }
                };
                println!(
                    "{product}: anonymous DDI {}, token downloads {}",
                    word(&options["anonymous"]),
                    word(&options["tokenDownloads"])
                );
                Ok(())
            }
            ProductCommand::SetDelta {
                product,
                format,
                from_last,
                from,
                max_share,
                off,
            } => {
                let url = client.url(&["api", "v1", "products", &product, "delta-policy"]);
                let policy: Option<DeltaPolicy> = if off {
                    client.delete(url).await?;
                    None
                } else if let Some(format) = format {
                    let policy = DeltaPolicy {
                        format,
                        from_last,
                        from_version: from,
                        max_share_percent: max_share,
                    };
                    client.put_json(url, &policy).await?
                } else {
                    client.get(url).await?
                };
                match policy {
                    Some(p) => {
                        let bases = match (&p.from_version, p.from_last) {
                            (Some(v), _) => format!("from {v}"),
                            (None, n) => format!(
                                "from the last {} releases",
                                n.unwrap_or(DeltaPolicy::DEFAULT_FROM_LAST)
                            ),
                        };
                        println!(
                            "{product}: {} patches {bases}, kept under {} % of the image",
                            p.format, p.max_share_percent
                        );
                    }
                    None => println!("{product}: delta updates off"),
                }
                Ok(())
            }
            ProductCommand::Admission { product, mode } => {
                let url = client.url(&["api", "v1", "products", &product, "admission"]);
                let rules: Value = match mode {
                    Some(mode) => {
                        let mode = match mode {
                            AdmissionArg::Open => "open",
                            AdmissionArg::Allowlist => "allowlist",
                        };
                        client.put_json(url, &json!({ "mode": mode })).await?
                    }
                    None => client.get(url).await?,
                };
                let names = |key: &str| {
                    let names: Vec<&str> = rules[key]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    if names.is_empty() {
                        "-".to_owned()
                    } else {
                        names.join(", ")
                    }
                };
                println!("admission: {}", rules["mode"].as_str().unwrap_or_default());
                println!("allowed:   {}", names("allowed"));
                println!("denied:    {}", names("denied"));
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
