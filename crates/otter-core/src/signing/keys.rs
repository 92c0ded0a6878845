//! Signing keys: Ed25519 (the default) and ECDSA P-256/SHA-256 (for HSMs and KMSs without
//! Ed25519). A key is named by its id, the hex SHA-256 of the raw public key (32 bytes for
//! Ed25519, the 65-byte uncompressed point for P-256), so an id can never name two keys.
//!
//! Private keys are PKCS#8 (what `openssl genpkey` writes), public keys SubjectPublicKeyInfo;
//! both travel as PEM.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ED25519, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, UnparsedPublicKey,
};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::SigningError;

/// A signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    Ed25519,
    P256,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::P256 => "p256",
        }
    }

    /// The DER prefix of a SubjectPublicKeyInfo holding a raw key of this algorithm.
    fn spki_prefix(self) -> &'static [u8] {
        match self {
            // SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (32 bytes) }
            Algorithm::Ed25519 => &[
                0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
            ],
            // SEQUENCE { SEQUENCE { OID ecPublicKey, OID prime256v1 } BIT STRING (65 bytes) }
            Algorithm::P256 => &[
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
                0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
            ],
        }
    }

    fn raw_len(self) -> usize {
        match self {
            Algorithm::Ed25519 => 32,
            Algorithm::P256 => 65,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Algorithm {
    type Err = SigningError;

    fn from_str(s: &str) -> Result<Self, SigningError> {
        match s {
            "ed25519" => Ok(Algorithm::Ed25519),
            "p256" | "ecdsa-p256" => Ok(Algorithm::P256),
            other => Err(SigningError::Key(format!(
                "unknown algorithm {other:?} (expected ed25519 or p256)"
            ))),
        }
    }
}

/// A public key, as root documents list it: algorithm and raw key in hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey {
    #[serde(rename = "alg")]
    pub algorithm: Algorithm,
    /// The raw public key, lowercase hex.
    #[serde(rename = "public")]
    pub public_hex: String,
}

impl PublicKey {
    pub fn new(algorithm: Algorithm, raw: &[u8]) -> Result<Self, SigningError> {
        if raw.len() != algorithm.raw_len() {
            return Err(SigningError::Key(format!(
                "a raw {algorithm} public key is {} bytes, not {}",
                algorithm.raw_len(),
                raw.len()
            )));
        }
        Ok(PublicKey {
            algorithm,
            public_hex: hex::encode(raw),
        })
    }

    pub fn raw(&self) -> Vec<u8> {
        hex::decode(&self.public_hex).unwrap_or_default()
    }

    /// The key id: hex SHA-256 of the raw public key.
    pub fn key_id(&self) -> String {
        hex::encode(digest(&SHA256, &self.raw()))
    }

    /// Whether `signature` (DER for P-256) is this key's signature of `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let raw = self.raw();
        match self.algorithm {
            Algorithm::Ed25519 => UnparsedPublicKey::new(&ED25519, raw).verify(message, signature),
            Algorithm::P256 => {
                UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, raw).verify(message, signature)
            }
        }
        .is_ok()
    }

    /// Whether `signature` (DER) is this P-256 key's signature of a message whose SHA-256 is
    /// `sha256` (the manifest contract's `binarySignature`, checked without rereading the image).
    pub fn verify_sha256(&self, sha256: &[u8], signature: &[u8]) -> bool {
        if self.algorithm != Algorithm::P256 {
            return false;
        }
        let Ok(digest) = aws_lc_rs::digest::Digest::import_less_safe(sha256, &SHA256) else {
            return false;
        };
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, self.raw())
            .verify_digest(&digest, signature)
            .is_ok()
    }

    /// SubjectPublicKeyInfo DER.
    pub fn to_spki(&self) -> Vec<u8> {
        [self.algorithm.spki_prefix(), &self.raw()].concat()
    }

    /// From SubjectPublicKeyInfo DER (as `openssl pkey -pubout -outform DER` writes).
    pub fn from_spki(der: &[u8]) -> Result<Self, SigningError> {
        [Algorithm::Ed25519, Algorithm::P256]
            .into_iter()
            .find_map(|alg| {
                der.strip_prefix(alg.spki_prefix())
                    .filter(|raw| raw.len() == alg.raw_len())
                    .map(|raw| PublicKey::new(alg, raw))
            })
            .unwrap_or_else(|| {
                Err(SigningError::Key(
                    "not an Ed25519 or P-256 public key (SubjectPublicKeyInfo)".into(),
                ))
            })
    }

    pub fn to_pem(&self) -> String {
        pem_encode("PUBLIC KEY", &self.to_spki())
    }

    /// From a PEM public key, or the `alg:hex` form the CLI shows.
    pub fn parse(text: &str) -> Result<Self, SigningError> {
        if let Some((alg, hex_key)) = text.trim().split_once(':')
            && let Ok(algorithm) = alg.parse::<Algorithm>()
        {
            let raw = hex::decode(hex_key)
                .map_err(|_| SigningError::Key("the public key is not hex".into()))?;
            return PublicKey::new(algorithm, &raw);
        }
        PublicKey::from_spki(&pem_decode("PUBLIC KEY", text)?)
    }
}

/// A private signing key.
pub enum PrivateKey {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

impl PrivateKey {
    /// A new key; returns it with its PKCS#8 DER (to store).
    pub fn generate(algorithm: Algorithm) -> Result<(Self, Vec<u8>), SigningError> {
        let rng = SystemRandom::new();
        let der = match algorithm {
            Algorithm::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&rng).map_err(key_error)?;
                // v1 is what OpenSSL writes and reads everywhere.
                Ed25519KeyPair::from_pkcs8(doc.as_ref())
                    .map_err(key_error)?
                    .to_pkcs8v1()
                    .map_err(key_error)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::P256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
                .map_err(key_error)?
                .as_ref()
                .to_vec(),
        };
        Ok((PrivateKey::from_pkcs8(&der)?, der))
    }

    /// From PKCS#8 DER of either algorithm.
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SigningError> {
        if let Ok(key) = Ed25519KeyPair::from_pkcs8(der) {
            return Ok(PrivateKey::Ed25519(key));
        }
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der)
            .map(PrivateKey::P256)
            .map_err(|_| SigningError::Key("not an Ed25519 or P-256 PKCS#8 private key".into()))
    }

    pub fn from_pem(text: &str) -> Result<Self, SigningError> {
        Self::from_pkcs8(&pem_decode("PRIVATE KEY", text)?)
    }

    pub fn public_key(&self) -> PublicKey {
        let (algorithm, raw) = match self {
            PrivateKey::Ed25519(k) => (Algorithm::Ed25519, k.public_key().as_ref().to_vec()),
            PrivateKey::P256(k) => (Algorithm::P256, k.public_key().as_ref().to_vec()),
        };
        PublicKey {
            algorithm,
            public_hex: hex::encode(raw),
        }
    }

    /// Signs `message` (P-256: SHA-256, DER signature).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SigningError> {
        match self {
            PrivateKey::Ed25519(k) => Ok(k.sign(message).as_ref().to_vec()),
            PrivateKey::P256(k) => k
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(key_error),
        }
    }
}

fn key_error(e: impl fmt::Display) -> SigningError {
    SigningError::Key(e.to_string())
}

/// PEM text of `der` under `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER inside the first PEM block labelled `label`.
pub fn pem_decode(label: &str, text: &str) -> Result<Vec<u8>, SigningError> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = text
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| SigningError::Key(format!("no PEM block {label:?}")))?;
    let compact: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|_| SigningError::Key(format!("the PEM block {label:?} is not base64")))
}
