//! `otter iotawatt`: make and check IotaWatt release blobs with your own Ed25519 key, so a
//! modified IotaWatt firmware can update itself from your own otter (`docs/protocols/iotawatt.md`).
//!
//! - `keygen` writes a private key (PKCS#8 PEM, the format of `openssl genpkey -algorithm
//!   ed25519`) and its public key, and prints the C array to paste into `common.cpp`;
//! - `pack` builds and signs a blob from `iotawatt.bin` and any other files;
//! - `verify` checks a blob as the device does; `unpack` extracts its files.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use otter_client::{Client, ClientArgs};
use otter_core::iotawatt::{self, BlobFile, SigningKey};
use serde_json::{Value, json};

/// Sign and check IotaWatt release blobs with your own key.
#[derive(clap::Subcommand, Debug)]
pub enum IotawattCommand {
    /// Generate an Ed25519 key pair: KEY (private, mode 0600) and KEY.pub (hex); prints the
    /// public key as the C array for IotaWatt's common.cpp.
    #[command(after_help = "Example:
  otter iotawatt keygen --out iotawatt-release.key
  # paste the printed array over `publicKey` in Firmware/IotaWatt/common.cpp and build")]
    Keygen {
        /// Where to write the private key; the public key goes to the same path plus `.pub`.
        #[arg(long, value_name = "KEY")]
        out: PathBuf,
        /// Overwrite existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Build a signed release blob from iotawatt.bin (required) and other files for the SD card.
    #[command(after_help = "Example:
  otter iotawatt pack --version 02_08_04 --key iotawatt-release.key \\
      .pio/build/iotawatt/firmware.bin=iotawatt.bin tables.txt -o 02_08_04.bin

A file is stored under its own name, or under the name after `=`.")]
    Pack {
        /// The release, 8 characters like 02_08_04 (what versions.json and the device use).
        #[arg(long)]
        version: String,
        /// The private key from `otter iotawatt keygen` (or `openssl genpkey -algorithm ed25519`).
        #[arg(long, value_name = "KEY", required_unless_present_any = ["to_be_signed", "signature"])]
        key: Option<PathBuf>,
        /// External signer, step 1: write the 32 bytes to sign (the SHA-256 of the blob's body)
        /// to this file and stop.
        #[arg(long, value_name = "FILE", conflicts_with = "key")]
        to_be_signed: Option<PathBuf>,
        /// External signer, step 2: the 64-byte Ed25519 signature of those bytes (raw or
        /// base64); needs --pubkey.
        #[arg(long, value_name = "FILE", conflicts_with = "key", requires = "pubkey")]
        signature: Option<PathBuf>,
        /// The signer's public key (with --signature): KEY.pub, 64 hex digits or the C array.
        #[arg(long, value_name = "PUB")]
        pubkey: Option<String>,
        /// Files to include: PATH or PATH=NAME (names up to 23 bytes).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<String>,
        /// Where to write the blob.
        #[arg(short, long, value_name = "BLOB")]
        out: PathBuf,
    },
    /// Check a blob's layout and signature as an IotaWatt does; exits 1 if it would refuse it.
    Verify {
        /// The public key: KEY.pub, or 64 hex digits, or a file with the C array.
        #[arg(long, value_name = "PUB")]
        pubkey: String,
        blob: PathBuf,
    },
    /// Make a product on a running otter an IotaWatt product (created if needed, lexical
    /// versions): its release blobs must verify with this public key.
    #[command(after_help = "Example:
  otter iotawatt setup iotawatt --pubkey iotawatt-release.key.pub
  otter release publish iotawatt 02_08_04.bin --version 02_08_04 --channel MAJOR")]
    Setup {
        #[command(flatten)]
        client: ClientArgs,
        product: String,
        /// The public key: KEY.pub, or 64 hex digits, or a file with the C array.
        #[arg(long, value_name = "PUB")]
        pubkey: String,
    },
    /// Extract a blob's files into a directory (named after the release by default).
    Unpack {
        blob: PathBuf,
        /// Where to put the files [default: ./<release>].
        #[arg(short, long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Verify the signature first and refuse the blob if it fails.
        #[arg(long, value_name = "PUB")]
        pubkey: Option<String>,
    },
}

const PEM_LABEL: &str = "PRIVATE KEY";

impl IotawattCommand {
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            IotawattCommand::Setup {
                client,
                product,
                pubkey,
            } => {
                let public_key = read_public_key(&pubkey)?;
                let client = Client::new(&client)?;
                let body = json!({ "name": product, "scheme": "lexical" });
                match client
                    .post::<_, Value>(client.url(&["api", "v1", "products"]), &body)
                    .await
                {
                    Ok(_) => println!("created product {product} (version scheme lexical)"),
                    Err(e) if e.status() == Some(reqwest::StatusCode::CONFLICT) => {}
                    Err(e) => return Err(e.into()),
                }
                let url = client.url(&["api", "v1", "products", &product, "iotawatt"]);
                let _: Value = client
                    .put_json(url, &json!({ "publicKey": hex::encode(public_key) }))
                    .await?;
                println!(
                    "{product} is an IotaWatt product; release blobs must verify with {}",
                    hex::encode(public_key)
                );
                Ok(())
            }
            IotawattCommand::Keygen { out, force } => keygen(&out, force),
            IotawattCommand::Pack {
                version,
                key,
                to_be_signed,
                signature,
                pubkey,
                files,
                out,
            } => {
                let files = files
                    .iter()
                    .map(|spec| read_file(spec))
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let body = iotawatt::body(&version, &files)?;
                if let Some(path) = to_be_signed {
                    std::fs::write(&path, iotawatt::to_be_signed(&body))
                        .with_context(|| format!("writing {}", path.display()))?;
                    eprintln!(
                        "wrote the 32 bytes to sign to {}; sign them with Ed25519, then run again \
                         with --signature SIG --pubkey PUB",
                        path.display()
                    );
                    return Ok(());
                }
                let (blob, public_key) = match (key, signature, pubkey) {
                    (Some(key), _, _) => {
                        let key = read_key(&key)?;
                        (iotawatt::pack(&version, &files, &key)?, key.public_key())
                    }
                    (None, Some(sig), Some(pubkey)) => {
                        let public_key = read_public_key(&pubkey)?;
                        let sig = crate::signing::read_signature(&sig)?;
                        (iotawatt::attach(body, &sig, &public_key)?, public_key)
                    }
                    _ => bail!(
                        "give --key KEY, or --to-be-signed FILE then --signature SIG --pubkey PUB"
                    ),
                };
                std::fs::write(&out, &blob)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!(
                    "wrote {} ({} bytes, release {version}, {} files, signed with {})",
                    out.display(),
                    blob.len(),
                    files.len(),
                    hex::encode(public_key)
                );
                Ok(())
            }
            IotawattCommand::Verify { pubkey, blob } => {
                let public_key = read_public_key(&pubkey)?;
                let bytes =
                    std::fs::read(&blob).with_context(|| format!("reading {}", blob.display()))?;
                let unpacked = iotawatt::verify(&bytes, &public_key)
                    .with_context(|| format!("{} does not verify", blob.display()))?;
                println!(
                    "{}: release {}, signature OK",
                    blob.display(),
                    unpacked.version
                );
                for file in &unpacked.files {
                    println!("  {:<24} {} bytes", file.name, file.data.len());
                }
                Ok(())
            }
            IotawattCommand::Unpack { blob, dir, pubkey } => {
                let bytes =
                    std::fs::read(&blob).with_context(|| format!("reading {}", blob.display()))?;
                let unpacked = match &pubkey {
                    Some(p) => iotawatt::verify(&bytes, &read_public_key(p)?)
                        .with_context(|| format!("{} does not verify", blob.display()))?,
                    None => {
                        eprintln!(
                            "note: the signature was not checked (pass --pubkey to check it)"
                        );
                        iotawatt::unpack(&bytes)?
                    }
                };
                let dir = dir.unwrap_or_else(|| PathBuf::from(&unpacked.version));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for file in &unpacked.files {
                    // Names come from the blob: never let one leave the directory.
                    let name = Path::new(&file.name)
                        .file_name()
                        .filter(|n| *n != "." && *n != "..")
                        .with_context(|| format!("unsafe file name {:?} in the blob", file.name))?;
                    let path = dir.join(name);
                    std::fs::write(&path, &file.data)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("{}", path.display());
                }
                Ok(())
            }
        }
    }
}

fn keygen(out: &Path, force: bool) -> anyhow::Result<()> {
    let public_path = public_path(out);
    if !force {
        for path in [out, public_path.as_path()] {
            if path.exists() {
                bail!("{} exists; pass --force to replace it", path.display());
            }
        }
    }
    let key = SigningKey::generate()?;
    let pem = pem_encode(&key.to_pkcs8()?);
    write_private(out, pem.as_bytes())?;
    std::fs::write(&public_path, format!("{}\n", hex::encode(key.public_key())))
        .with_context(|| format!("writing {}", public_path.display()))?;
    eprintln!(
        "wrote {} (private: keep it off the network) and {}",
        out.display(),
        public_path.display()
    );
    eprintln!("public key for Firmware/IotaWatt/common.cpp:");
    println!("{}", iotawatt::c_array(&key.public_key()));
    Ok(())
}

fn public_path(private: &Path) -> PathBuf {
    let mut name = private.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

pub fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(file.sync_all()?)
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {PEM_LABEL}-----\n{}\n-----END {PEM_LABEL}-----\n",
        lines.join("\n")
    )
}

fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .with_context(|| format!("{} is not a PEM private key", path.display()))?;
    SigningKey::from_pkcs8(&der).with_context(|| format!("{}", path.display()))
}

/// A public key given inline (64 hex digits) or as a file (hex or the C array).
fn read_public_key(arg: &str) -> anyhow::Result<[u8; 32]> {
    if let Some(key) = iotawatt::parse_public_key(arg) {
        return Ok(key);
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("--pubkey {arg:?} is neither 64 hex digits nor a readable file")
    })?;
    iotawatt::parse_public_key(&text)
        .with_context(|| format!("{arg} holds no 32-byte public key (hex or C array)"))
}

/// `PATH` or `PATH=NAME`.
fn read_file(spec: &str) -> anyhow::Result<BlobFile> {
    let (path, name) = match spec.rsplit_once('=') {
        Some((path, name)) => (Path::new(path), name.to_owned()),
        None => {
            let path = Path::new(spec);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .with_context(|| format!("{spec} names no file"))?;
            (path, name)
        }
    };
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(BlobFile { name, data })
}
