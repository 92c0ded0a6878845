//! `otter sign` and `otter verify`: image signatures, offline.
//!
//! - `raw` (default): a detached signature of the file with an Ed25519 or P-256 key (P-256 is
//!   the manifest contract's `binarySignature`: pass it to `release publish --binary-signature`);
//! - `esp8266-rsa`, `esp-idf-sbv2`: the signed image, byte for byte what the vendor tools make;
//! - `minisign`: a detached `.minisig` whose trusted comment carries the version.
//!
//! Every format can be signed by an external signer (HSM, KMS): `--to-be-signed FILE` writes
//! exactly what it must sign; `--signature SIG --pubkey PUB` builds the output from what it
//! returned, after checking it. (minisign takes two signatures: the second one's message is
//! written with `--signature SIG --to-be-signed FILE`, then `--global-signature` completes it.)

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use otter_core::formats::{Format, esp_idf_sbv2, esp8266_rsa, minisign};
use otter_core::signing::keys::pem_decode;

use crate::signing::{SignerArgs, read_private, read_public, read_signature};

/// Sign an image (or any file) offline.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  otter sign fw.bin --key release-p256.key                    # fw.bin.sig (binarySignature)
  otter sign fw.bin --format esp8266-rsa --key rsa2048.pem -o fw.signed.bin
  otter sign app.bin --format esp-idf-sbv2 --key sbv2-rsa3072.pem -o app-signed.bin
  otter sign fw.bin --format minisign --key ed25519.key --version 2.0.0
  otter sign app.bin --format esp-idf-sbv2 --to-be-signed app.tbs   # external signer, step 1
  otter sign app.bin --format esp-idf-sbv2 --signature app.sig --pubkey hsm.pub -o app-signed.bin")]
pub struct SignArgs {
    file: PathBuf,
    /// raw, esp8266-rsa, esp-idf-sbv2 or minisign (IotaWatt blobs: `otter iotawatt pack`).
    #[arg(long, default_value = "raw")]
    format: String,
    #[command(flatten)]
    signer: SignerArgs,
    /// minisign, external signer: the second signature (over the first and the trusted comment).
    #[arg(long, value_name = "FILE")]
    global_signature: Option<PathBuf>,
    /// minisign: the version the trusted comment carries.
    #[arg(long)]
    version: Option<String>,
    /// Where to write the result [default: FILE.sig, FILE.minisig, or FILE.signed].
    #[arg(short, long, value_name = "OUT")]
    out: Option<PathBuf>,
}

/// Check a signature as a device would.
#[derive(clap::Args, Debug)]
pub struct VerifyArgs {
    /// The signed image (esp8266-rsa, esp-idf-sbv2) or the signed file (raw, minisign).
    file: PathBuf,
    #[arg(long, default_value = "raw")]
    format: String,
    /// The public key: PEM (SubjectPublicKeyInfo) or, for minisign, a minisign public key file.
    #[arg(long, value_name = "PUB")]
    pubkey: PathBuf,
    /// The detached signature (raw: FILE.sig; minisign: FILE.minisig).
    #[arg(long, value_name = "SIG")]
    signature: Option<PathBuf>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// A private key's DER from PEM: PKCS#8, or the PKCS#1 / SEC 1 forms older tools write.
fn private_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"]
        .iter()
        .find_map(|label| pem_decode(label, &text).ok())
        .with_context(|| format!("{} holds no PEM private key", path.display()))
}

fn public_der(path: &Path) -> anyhow::Result<Vec<u8>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    if text.contains("PRIVATE KEY") {
        bail!("{} is a private key; give the public key", path.display());
    }
    Ok(pem_decode("PUBLIC KEY", &text)?)
}

fn parse_format(name: &str) -> anyhow::Result<Option<Format>> {
    if name == "raw" {
        return Ok(None);
    }
    match name.parse::<Format>() {
        Ok(Format::Iotawatt) => bail!("IotaWatt blobs are made with `otter iotawatt pack`"),
        Ok(format) => Ok(Some(format)),
        Err(_) => bail!("unknown format {name:?} (raw, esp8266-rsa, esp-idf-sbv2, minisign)"),
    }
}

impl SignArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let format = parse_format(&self.format)?;
        let image = read(&self.file)?;
        let signer = &self.signer;
        let default_out = match format {
            None => with_suffix(&self.file, ".sig"),
            Some(Format::Minisign) => with_suffix(&self.file, ".minisig"),
            Some(_) => with_suffix(&self.file, ".signed"),
        };
        let out = self.out.clone().unwrap_or(default_out);
        let trusted_comment = || -> anyhow::Result<String> {
            let version = self
                .version
                .as_deref()
                .context("minisign needs --version")?;
            let name = self
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            Ok(minisign::trusted_comment(
                otter_store::now(),
                &name,
                version,
            )?)
        };
        // External signer, step 1: what to sign.
        if let Some(tbs) = &signer.to_be_signed {
            let bytes = match (format, &signer.signature) {
                (None, _) => image.clone(),
                (Some(Format::Esp8266Rsa), _) => esp8266_rsa::to_be_signed(&image),
                (Some(Format::EspIdfSbv2), _) => {
                    esp_idf_sbv2::to_be_signed(&image, esp_idf_sbv2::SECTOR_LEN)?
                }
                (Some(Format::Minisign), None) => minisign::to_be_signed(&image),
                (Some(Format::Minisign), Some(first)) => {
                    // The trusted comment must be the same in the last step: keep it.
                    let tc = trusted_comment()?;
                    std::fs::write(with_suffix(tbs, ".comment"), &tc)?;
                    minisign::global_to_be_signed(&read_signature(first)?, &tc)?
                }
                (Some(Format::Iotawatt), _) => unreachable!("refused by parse_format"),
            };
            std::fs::write(tbs, bytes).with_context(|| format!("writing {}", tbs.display()))?;
            eprintln!("wrote what to sign to {}", tbs.display());
            return Ok(());
        }
        let written: Vec<u8> = match (format, &signer.key, &signer.signature) {
            (None, Some(key), _) => {
                let sig = read_private(key)?.sign(&image)?;
                (base64::engine::general_purpose::STANDARD.encode(sig) + "\n").into_bytes()
            }
            (None, None, Some(sig)) => {
                let public = read_public(signer.pubkey.as_deref().context("--pubkey")?)?;
                let sig = read_signature(sig)?;
                if !public.verify(&image, &sig) {
                    bail!("the signature does not verify with {}", public.key_id());
                }
                (base64::engine::general_purpose::STANDARD.encode(sig) + "\n").into_bytes()
            }
            (Some(Format::Esp8266Rsa), Some(key), _) => {
                esp8266_rsa::sign(&image, &private_der(key)?)?
            }
            (Some(Format::Esp8266Rsa), None, Some(sig)) => esp8266_rsa::attach(
                &image,
                &read_signature(sig)?,
                &public_der(signer.pubkey.as_deref().context("--pubkey")?)?,
            )?,
            (Some(Format::EspIdfSbv2), Some(key), _) => {
                esp_idf_sbv2::sign(&image, &private_der(key)?, esp_idf_sbv2::SECTOR_LEN)?
            }
            (Some(Format::EspIdfSbv2), None, Some(sig)) => esp_idf_sbv2::attach(
                &image,
                &read_signature(sig)?,
                &public_der(signer.pubkey.as_deref().context("--pubkey")?)?,
                esp_idf_sbv2::SECTOR_LEN,
            )?,
            (Some(Format::Minisign), Some(key), _) => {
                minisign::sign(&image, &private_der(key)?, &trusted_comment()?)?.into_bytes()
            }
            (Some(Format::Minisign), None, Some(sig)) => {
                let global = self
                    .global_signature
                    .as_deref()
                    .context("minisign needs --global-signature too (see --help)")?;
                let pubkey = signer.pubkey.as_deref().context("--pubkey")?;
                let public = minisign::PublicKey::from_spki(&public_der(pubkey)?)?;
                let comment_file = self
                    .signer
                    .to_be_signed
                    .clone()
                    .unwrap_or_else(|| with_suffix(&self.file, ".tbs"));
                let tc = std::fs::read_to_string(with_suffix(&comment_file, ".comment"))
                    .or_else(|_| trusted_comment())?;
                minisign::attach(
                    &image,
                    &read_signature(sig)?,
                    &read_signature(global)?,
                    &tc,
                    &public,
                )?
                .into_bytes()
            }
            _ => bail!("give --key KEY, or --to-be-signed FILE then --signature SIG --pubkey PUB"),
        };
        std::fs::write(&out, written).with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
        Ok(())
    }
}

impl VerifyArgs {
    pub fn run(self) -> anyhow::Result<()> {
        let format = parse_format(&self.format)?;
        let bytes = read(&self.file)?;
        let detached = || -> anyhow::Result<PathBuf> {
            Ok(self.signature.clone().unwrap_or_else(|| {
                with_suffix(
                    &self.file,
                    if format.is_some() { ".minisig" } else { ".sig" },
                )
            }))
        };
        let what = match format {
            None => {
                let public = read_public(&self.pubkey)?;
                let sig = read_signature(&detached()?)?;
                if !public.verify(&bytes, &sig) {
                    bail!("{}: the signature does not verify", self.file.display());
                }
                format!("signed by {}", public.key_id())
            }
            Some(Format::Esp8266Rsa) => {
                let v = esp8266_rsa::verify(&bytes, &public_der(&self.pubkey)?)?;
                format!("ESP8266 RSA trailer OK ({} image bytes)", v.image_len)
            }
            Some(Format::EspIdfSbv2) => {
                let v = esp_idf_sbv2::verify(&bytes, &public_der(&self.pubkey)?)?;
                format!(
                    "Secure Boot v2 block {} OK ({:?}, {} image bytes, key digest {})",
                    v.block,
                    v.scheme,
                    v.image_len,
                    hex::encode(v.key_digest)
                )
            }
            Some(Format::Minisign) => {
                let minisig = std::fs::read_to_string(detached()?)?;
                let pubkey = std::fs::read_to_string(&self.pubkey)?;
                let pubkey = match pem_decode("PUBLIC KEY", &pubkey) {
                    Ok(der) => minisign::PublicKey::from_spki(&der)?.to_file(),
                    Err(_) => pubkey,
                };
                let v = minisign::verify(&bytes, &minisig, &pubkey)?;
                format!("minisign OK; trusted comment: {}", v.trusted_comment)
            }
            Some(Format::Iotawatt) => unreachable!("refused by parse_format"),
        };
        println!("{}: {what}", self.file.display());
        Ok(())
    }
}
