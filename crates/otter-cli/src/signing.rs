//! Offline signing: `otter keys`, `otter root`, `otter envelope sign`, `otter release sign`.
//! None of these talk to a server except `otter root upload` and `otter online-key`: release
//! keys stay on the signing machine (or in an HSM/KMS: every signing step can print what to
//! sign and take the signature back).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use otter_client::{Client, ClientArgs};
use otter_core::formats::minisign;
use otter_core::model::format_rfc3339;
use otter_core::signing::documents::{
    ArtifactRef, MANIFEST_TYPE, ROOT_TYPE, ReleaseManifest, Roles, Root,
};
use otter_core::signing::dsse::{Envelope, Role};
use otter_core::signing::keys::{Algorithm, PrivateKey, PublicKey, pem_encode};
use otter_core::units::parse_duration;
use serde_json::Value;

/// Generate and inspect signing keys.
#[derive(clap::Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a key pair: NAME.key (PKCS#8 PEM, mode 0600) and NAME.pub (PEM); prints the key
    /// id (hex SHA-256 of the raw public key).
    #[command(after_help = "Examples:
  otter keys generate --out root-a
  otter keys generate --algorithm p256 --out release-hsm")]
    Generate {
        #[arg(long, value_enum, default_value_t = AlgorithmArg::Ed25519)]
        algorithm: AlgorithmArg,
        /// Path prefix of the two files.
        #[arg(long, value_name = "NAME")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Show a key's algorithm, id and raw public key (private or public key file).
    #[command(after_help = "Examples:
  otter keys show release.pub
  otter keys show release.pub --format minisign > release.minisign.pub
  minisign -Vm fw.bin -p release.minisign.pub")]
    Show {
        key: PathBuf,
        /// text, or minisign: the public key file `minisign -p` takes (Ed25519 keys only), with
        /// the key id `otter sign --format minisign` puts in its signatures.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
}

/// How `otter keys show` prints a key.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum ShowFormat {
    Text,
    Minisign,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum AlgorithmArg {
    Ed25519,
    P256,
}

impl From<AlgorithmArg> for Algorithm {
    fn from(a: AlgorithmArg) -> Self {
        match a {
            AlgorithmArg::Ed25519 => Algorithm::Ed25519,
            AlgorithmArg::P256 => Algorithm::P256,
        }
    }
}

impl KeysCommand {
    pub fn run(self) -> anyhow::Result<()> {
        match self {
            KeysCommand::Generate {
                algorithm,
                out,
                force,
            } => {
                let (private, public) = (with_ext(&out, "key"), with_ext(&out, "pub"));
                if !force && (private.exists() || public.exists()) {
                    bail!(
                        "{} or {} exists; pass --force to replace",
                        private.display(),
                        public.display()
                    );
                }
                let (key, der) = PrivateKey::generate(algorithm.into())?;
                crate::iotawatt::write_private(
                    &private,
                    pem_encode("PRIVATE KEY", &der).as_bytes(),
                )?;
                std::fs::write(&public, key.public_key().to_pem())
                    .with_context(|| format!("writing {}", public.display()))?;
                eprintln!(
                    "wrote {} (keep it offline) and {}",
                    private.display(),
                    public.display()
                );
                println!("{}", key.public_key().key_id());
                Ok(())
            }
            KeysCommand::Show { key, format } => {
                let public = read_public(&key)?;
                match format {
                    ShowFormat::Text => {
                        println!("algorithm: {}", public.algorithm);
                        println!("key id:    {}", public.key_id());
                        println!("public:    {}", public.public_hex);
                    }
                    ShowFormat::Minisign => {
                        if public.algorithm != Algorithm::Ed25519 {
                            bail!(
                                "{} is a {} key; minisign keys are Ed25519",
                                key.display(),
                                public.algorithm
                            );
                        }
                        let public = minisign::PublicKey::from_spki(&public.to_spki())?;
                        print!("{}", public.to_file());
                    }
                }
                Ok(())
            }
        }
    }
}

fn with_ext(prefix: &Path, ext: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// A key, root, manifest or signature file: small documents, so one over 1 MiB is refused
/// before it is read into memory and parsed.
fn read_text(path: &Path) -> anyhow::Result<String> {
    const MAX_METADATA: u64 = 1 << 20;
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_METADATA + 1), &mut text)
        .with_context(|| format!("reading {}", path.display()))?;
    if text.len() as u64 > MAX_METADATA {
        anyhow::bail!(
            "{} is larger than {MAX_METADATA} bytes: not a key, root or manifest",
            path.display()
        );
    }
    Ok(text)
}

pub fn read_private(path: &Path) -> anyhow::Result<PrivateKey> {
    PrivateKey::from_pem(&read_text(path)?).with_context(|| path.display().to_string())
}

/// A public key from a public key file, or the public half of a private key file.
pub fn read_public(path: &Path) -> anyhow::Result<PublicKey> {
    let text = read_text(path)?;
    if text.contains("PRIVATE KEY") {
        return Ok(PrivateKey::from_pem(&text)
            .with_context(|| path.display().to_string())?
            .public_key());
    }
    PublicKey::parse(&text).with_context(|| path.display().to_string())
}

/// How a signature is made: with a key file here, or by an external signer in two steps.
#[derive(clap::Args, Debug, Clone)]
pub struct SignerArgs {
    /// Sign with this private key file.
    #[arg(long, value_name = "KEY", conflicts_with_all = ["to_be_signed", "signature"])]
    pub key: Option<PathBuf>,
    /// External signer, step 1: write the exact bytes to sign to this file and stop.
    #[arg(long, value_name = "FILE")]
    pub to_be_signed: Option<PathBuf>,
    /// External signer, step 2: the signature (raw, or base64) the signer made over those
    /// bytes; needs --pubkey.
    #[arg(long, value_name = "FILE", requires = "pubkey")]
    pub signature: Option<PathBuf>,
    /// The signer's public key (with --signature).
    #[arg(long, value_name = "PUB")]
    pub pubkey: Option<PathBuf>,
}

/// Reads a signature file: raw bytes, or base64 text.
pub fn read_signature(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = String::from_utf8_lossy(&bytes);
    Ok(base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap_or(bytes))
}

/// Signs an envelope per `signer`; returns false when it only wrote what to sign.
fn sign_envelope(envelope: &mut Envelope, signer: &SignerArgs) -> anyhow::Result<bool> {
    if let Some(key) = &signer.key {
        envelope.sign(&read_private(key)?)?;
        return Ok(true);
    }
    if let Some(path) = &signer.to_be_signed {
        std::fs::write(path, envelope.to_be_signed()?)
            .with_context(|| format!("writing {}", path.display()))?;
        eprintln!(
            "wrote the bytes to sign to {}; sign them, then run again with --signature SIG --pubkey PUB",
            path.display()
        );
        return Ok(false);
    }
    if let (Some(sig), Some(public)) = (&signer.signature, &signer.pubkey) {
        envelope.attach(&read_public(public)?, &read_signature(sig)?)?;
        return Ok(true);
    }
    Ok(false)
}

/// Sign DSSE envelopes (roots, release manifests).
#[derive(clap::Args, Debug)]
pub struct EnvelopeSignArgs {
    /// The envelope; the signature is added to it in place.
    file: PathBuf,
    #[command(flatten)]
    signer: SignerArgs,
}

impl EnvelopeSignArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut envelope = Envelope::parse(read_text(&self.file)?.as_bytes())?;
        if !sign_envelope(&mut envelope, &self.signer)? {
            if self.signer.to_be_signed.is_none() {
                bail!("give --key KEY, or --to-be-signed FILE then --signature SIG --pubkey PUB");
            }
            return Ok(());
        }
        std::fs::write(&self.file, envelope.to_json() + "\n")
            .with_context(|| format!("writing {}", self.file.display()))?;
        println!(
            "{}: {} signature(s)",
            self.file.display(),
            envelope.signatures.len()
        );
        Ok(())
    }
}

/// Roots of trust.
#[derive(clap::Subcommand, Debug)]
pub enum RootCommand {
    /// Write root version 1 of a product (unsigned: sign it with `otter envelope sign` by the
    /// root keys, then `otter root upload`).
    #[command(after_help = "Example:
  otter online-key > online.pub
  otter root init door --root-key root-a.pub --root-key root-b.pub --root-threshold 2 \\
      --release-key release.pub --online-key online.pub -o root-1.json
  otter envelope sign root-1.json --key root-a.key
  otter envelope sign root-1.json --key root-b.key
  otter root upload door root-1.json")]
    Init {
        product: String,
        #[command(flatten)]
        keys: RootKeys,
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Write the next root version from the current one (to be signed by the current and the
    /// new root keys). Keys not given are kept.
    Next {
        /// The current root (an envelope).
        current: PathBuf,
        #[command(flatten)]
        keys: RootKeys,
        #[arg(short, long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Upload a signed root to a server.
    Upload {
        #[command(flatten)]
        client: ClientArgs,
        product: String,
        file: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct RootKeys {
    /// A root key (public or private key file); repeat for several.
    #[arg(long = "root-key", value_name = "PUB")]
    root: Vec<PathBuf>,
    #[arg(long, value_name = "N")]
    root_threshold: Option<u32>,
    /// A release key; repeat for several.
    #[arg(long = "release-key", value_name = "PUB")]
    release: Vec<PathBuf>,
    #[arg(long, value_name = "N")]
    release_threshold: Option<u32>,
    /// The server's online key (`otter online-key`).
    #[arg(long = "online-key", value_name = "PUB")]
    online: Option<PathBuf>,
    /// How long the root is valid, e.g. 365d.
    #[arg(long, default_value = "365d", value_parser = parse_duration)]
    expires: Duration,
}

impl RootKeys {
    fn role(
        paths: &[PathBuf],
        threshold: Option<u32>,
        keep: Option<&Role>,
        keys: &mut BTreeMap<String, PublicKey>,
        name: &str,
    ) -> anyhow::Result<Role> {
        if paths.is_empty() {
            let role = keep
                .cloned()
                .with_context(|| format!("give at least one --{name}-key"))?;
            return Ok(Role {
                threshold: threshold.unwrap_or(role.threshold),
                ..role
            });
        }
        let mut keyids = Vec::new();
        for path in paths {
            let key = read_public(path)?;
            keyids.push(key.key_id());
            keys.insert(key.key_id(), key);
        }
        Ok(Role {
            threshold: threshold.unwrap_or(1),
            keyids,
        })
    }

    fn build(&self, product: &str, version: u32, previous: Option<&Root>) -> anyhow::Result<Root> {
        let mut keys = BTreeMap::new();
        let prev_roles = previous.map(|r| &r.roles);
        if let Some(previous) = previous {
            keys.extend(previous.keys.clone());
        }
        let roles = Roles {
            root: Self::role(
                &self.root,
                self.root_threshold,
                prev_roles.map(|r| &r.root),
                &mut keys,
                "root",
            )?,
            release: Self::role(
                &self.release,
                self.release_threshold,
                prev_roles.map(|r| &r.release),
                &mut keys,
                "release",
            )?,
            online: Self::role(
                &self.online.iter().cloned().collect::<Vec<_>>(),
                None,
                prev_roles.map(|r| &r.online),
                &mut keys,
                "online",
            )?,
        };
        // Keep only keys some role still names.
        keys.retain(|id, _| {
            [&roles.root, &roles.release, &roles.online]
                .iter()
                .any(|r| r.keyids.contains(id))
        });
        let now = otter_store::now();
        let root = Root {
            product: product.to_owned(),
            version,
            issued: format_rfc3339(now),
            expires: format_rfc3339(now + self.expires.as_secs() as i64),
            keys,
            roles,
        };
        root.validate()?;
        Ok(root)
    }
}

fn write_unsigned(
    path: &Path,
    payload_type: &str,
    value: &impl serde::Serialize,
) -> anyhow::Result<()> {
    let envelope = Envelope::new(payload_type, &serde_json::to_vec_pretty(value)?);
    std::fs::write(path, envelope.to_json() + "\n")
        .with_context(|| format!("writing {}", path.display()))
}

impl RootCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            RootCommand::Init { product, keys, out } => {
                let root = keys.build(&product, 1, None)?;
                write_unsigned(&out, ROOT_TYPE, &root)?;
                println!(
                    "wrote root 1 of {product} to {} (unsigned: sign it with the root keys)",
                    out.display()
                );
                Ok(())
            }
            RootCommand::Next { current, keys, out } => {
                let envelope = Envelope::parse(read_text(&current)?.as_bytes())?;
                let previous: Root = serde_json::from_slice(&envelope.payload_bytes()?)
                    .with_context(|| format!("{} is not a root", current.display()))?;
                let root = keys.build(&previous.product, previous.version + 1, Some(&previous))?;
                write_unsigned(&out, ROOT_TYPE, &root)?;
                println!(
                    "wrote root {} of {} to {} (sign it with root {}'s keys and its own)",
                    root.version,
                    root.product,
                    out.display(),
                    previous.version
                );
                Ok(())
            }
            RootCommand::Upload {
                client,
                product,
                file,
            } => {
                let client = Client::new(&client)?;
                let envelope: Value = serde_json::from_str(&read_text(&file)?)?;
                let url = client.url(&["api", "v1", "products", &product, "roots"]);
                let answer: Value = client.post(url, &envelope).await?;
                println!(
                    "{product}: root {} is live (expires {})",
                    answer["version"],
                    answer["expires"].as_str().unwrap_or_default()
                );
                Ok(())
            }
        }
    }
}

/// `otter release sign`: a release manifest, signed offline.
#[derive(clap::Args, Debug)]
#[command(after_help = "Example:
  otter release sign door build/door-2.0.0.bin --version 2.0.0 --counter 3 \\
      --hw-id esp32-c3 --key release.key -o door-2.0.0.manifest.json
  otter release publish door build/door-2.0.0.bin --version 2.0.0 \\
      --signature door-2.0.0.manifest.json")]
pub struct ReleaseSignArgs {
    product: String,
    /// The image, exactly as it will be published.
    file: PathBuf,
    #[arg(long)]
    version: String,
    /// A channel the release is published on; repeat for each (devices refuse a release not
    /// signed for their channel).
    #[arg(long = "channel", value_name = "CHANNEL", default_value = "stable")]
    channels: Vec<String>,
    /// The security counter: never lower than an earlier release's; raise it to stop devices
    /// going back.
    #[arg(long)]
    counter: u32,
    /// Hardware the image is for; repeat for several (none: any).
    #[arg(long = "hw-id", value_name = "ID")]
    hw_ids: Vec<String>,
    /// The image's own signature format (raw, esp8266-rsa, esp-idf-sbv2, minisign, iotawatt).
    #[arg(long, default_value = "raw")]
    format: String,
    /// The root version the signature is made under.
    #[arg(long, default_value_t = 1)]
    root_version: u32,
    /// How long the signature is valid, e.g. 180d.
    #[arg(long, default_value = "180d", value_parser = parse_duration)]
    expires: Duration,
    #[command(flatten)]
    signer: SignerArgs,
    /// Where to write the signed manifest.
    #[arg(short, long, value_name = "FILE")]
    out: PathBuf,
}

impl ReleaseSignArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let mut envelope = if self.signer.signature.is_some() && self.out.exists() {
            // Step 2 of an external signature: the manifest written in step 1.
            Envelope::parse(read_text(&self.out)?.as_bytes())?
        } else {
            let file =
                otter_client::files::hash_blocking(&self.file, &indicatif::ProgressBar::hidden())?;
            let (length, sha256) = (file.size, file.sha256);
            let now = otter_store::now();
            let manifest = ReleaseManifest {
                product: self.product.clone(),
                version: self.version.clone(),
                channel: self.channels[0].clone(),
                channels: self.channels[1..].to_vec(),
                hw_ids: self.hw_ids.clone(),
                security_counter: self.counter,
                artifact: ArtifactRef {
                    length,
                    sha256,
                    format: self.format.clone(),
                },
                issued: format_rfc3339(now),
                expires: format_rfc3339(now + self.expires.as_secs() as i64),
                root_version: self.root_version,
            };
            Envelope::new(MANIFEST_TYPE, &serde_json::to_vec_pretty(&manifest)?)
        };
        let signed = sign_envelope(&mut envelope, &self.signer)?;
        std::fs::write(&self.out, envelope.to_json() + "\n")
            .with_context(|| format!("writing {}", self.out.display()))?;
        if signed {
            println!(
                "signed {} {} → {}",
                self.product,
                self.version,
                self.out.display()
            );
        }
        Ok(())
    }
}

/// `otter online-key`: the server's online public key as PEM, to list in roots.
pub async fn online_key(client: &Client) -> anyhow::Result<()> {
    let key: Value = client.get(client.url(&["api", "v1", "online-key"])).await?;
    print!("{}", key["pem"].as_str().unwrap_or_default());
    eprintln!("key id {}", key["keyid"].as_str().unwrap_or_default());
    Ok(())
}
