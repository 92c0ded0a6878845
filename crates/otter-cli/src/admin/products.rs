//! `otter product`: create, list and show products.

use std::path::PathBuf;

use anyhow::Context;
use otter_client::Client;
use otter_core::Scheme;
use otter_core::model::{Product, format_rfc3339};
use serde_json::{Value, json};

use super::list;

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
