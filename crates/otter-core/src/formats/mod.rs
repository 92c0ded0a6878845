//! Native firmware signature formats: the bytes a device's own bootloader or updater checks,
//! produced byte-for-byte as the vendor tool would (`docs/signing.md`, "Other formats").
//!
//! - [`esp8266_rsa`]: the Arduino ESP8266 `Updater` trailer (RSA PKCS#1 v1.5, SHA-256),
//! - [`esp_idf_sbv2`]: the ESP-IDF Secure Boot v2 signature sector (RSA-3072-PSS or ECDSA P-256),
//! - [`minisign`]: a detached `.minisig` (prehashed Ed25519) and minisign public key files,
//! - [`iotawatt`]: IotaWatt's signed release blobs (re-exported from [`crate::iotawatt`]).
//!
//! Each module offers the same four pure functions: `to_be_signed` (exactly what an external
//! signer, an HSM or a KMS, must sign), `sign` (sign with a key in hand), `attach` (build the
//! output from an externally made signature, checked first) and `verify` (check as the device
//! does). Keys come in as DER: PKCS#8 private keys (the RSA and ECDSA modules also take the
//! PKCS#1 / SEC 1 forms older tools write) and SubjectPublicKeyInfo public keys; PEM is the
//! caller's business ([`crate::signing::keys::pem_decode`]).

pub mod esp8266_rsa;
pub mod esp_idf_sbv2;
pub mod minisign;

pub use crate::iotawatt;

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::signature::{RsaKeyPair, RsaSubjectPublicKey};

/// A native signature format, as the CLI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `image || RSA signature || u32 LE length`: what the Arduino ESP8266 core's `Updater`
    /// checks when built with a signing key.
    Esp8266Rsa,
    /// The image padded to 4 KiB plus a 4096-byte sector of Secure Boot v2 signature blocks:
    /// what an ESP32-family bootloader checks at boot and on every OTA write.
    EspIdfSbv2,
    /// A detached minisign signature (`.minisig`) whose trusted comment carries the version.
    Minisign,
    /// An IotaWatt release blob: files and an Ed25519 signature of their SHA-256.
    Iotawatt,
}

impl Format {
    pub const ALL: [Format; 4] = [
        Format::Esp8266Rsa,
        Format::EspIdfSbv2,
        Format::Minisign,
        Format::Iotawatt,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Format::Esp8266Rsa => "esp8266-rsa",
            Format::EspIdfSbv2 => "esp-idf-sbv2",
            Format::Minisign => "minisign",
            Format::Iotawatt => "iotawatt",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown signature format {0:?} (known: esp8266-rsa, esp-idf-sbv2, minisign, iotawatt)")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// Why a signed output could not be made or was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The key is not one this format takes (the text says which it wants).
    #[error("the key is not {0}")]
    BadKey(&'static str),
    /// The input is not in this format, or the image cannot be signed in it.
    #[error("malformed input: {0}")]
    Malformed(&'static str),
    /// The signed output (or the external signature) does not verify with this key.
    #[error("the signature does not verify with this public key")]
    BadSignature,
    /// The image is not the one the signature block describes.
    #[error("the image does not match the digest in its signature block")]
    ImageMismatch,
    /// The signature names a different key than the one given.
    #[error("signed by another key: {0}")]
    WrongKey(String),
    /// A comment that the format cannot carry.
    #[error("bad comment: {0}")]
    BadComment(&'static str),
    /// The crypto library refused to sign.
    #[error("signing failed")]
    SigningFailed,
}

/// An RSA public key's modulus and exponent, big-endian without leading zeros.
struct RsaNumbers {
    n: Vec<u8>,
    e: Vec<u8>,
}

/// An RSA private key from PKCS#8 (`openssl genpkey`) or PKCS#1 (`openssl genrsa` before 3.0,
/// espsecure's "RSA PRIVATE KEY") DER.
fn rsa_private_key(der: &[u8], wanted: &'static str) -> Result<RsaKeyPair, FormatError> {
    RsaKeyPair::from_pkcs8(der)
        .or_else(|_| RsaKeyPair::from_der(der))
        .map_err(|_| FormatError::BadKey(wanted))
}

/// An RSA public key from SubjectPublicKeyInfo or PKCS#1 `RSAPublicKey` DER, with its numbers.
fn rsa_public_key(
    der: &[u8],
    wanted: &'static str,
) -> Result<(RsaSubjectPublicKey, RsaNumbers), FormatError> {
    let key = RsaSubjectPublicKey::from_der(der).map_err(|_| FormatError::BadKey(wanted))?;
    let numbers = rsa_numbers(key.as_ref()).ok_or(FormatError::BadKey(wanted))?;
    Ok((key, numbers))
}

/// The numbers of a PKCS#1 `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`): aws-lc-rs
/// only hands them out with its `ring-io` feature, which otter does not enable.
fn rsa_numbers(rsa_public_key: &[u8]) -> Option<RsaNumbers> {
    let (body, rest) = der_element(rsa_public_key, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (n, body) = der_element(body, 0x02)?;
    let (e, body) = der_element(body, 0x02)?;
    if !body.is_empty() {
        return None;
    }
    Some(RsaNumbers {
        n: unsigned(n).to_vec(),
        e: unsigned(e).to_vec(),
    })
}

/// Splits one DER element with `tag` off the front of `input`: (its contents, what follows).
/// Definite lengths only, as DER requires.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, rest) = input.split_first()?;
    if first != tag {
        return None;
    }
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (usize::from(len0), rest)
    } else {
        let count = usize::from(len0 & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// A DER INTEGER's contents without the leading zero bytes that keep it positive.
fn unsigned(integer: &[u8]) -> &[u8] {
    let zeros = integer.iter().take_while(|&&b| b == 0).count();
    &integer[zeros..]
}

/// SHA-256 of `bytes`.
fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Keys and malformed inputs shared by the format modules' tests.
#[cfg(test)]
mod tests_support {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{KeyPair, RsaKeyPair};

    /// A fresh RSA key as PKCS#8 DER.
    pub fn rsa_key(bits: usize) -> Vec<u8> {
        let size = match bits {
            2048 => KeySize::Rsa2048,
            3072 => KeySize::Rsa3072,
            _ => panic!("no {bits}-bit keys in these tests"),
        };
        let key = RsaKeyPair::generate(size).unwrap();
        key.as_der().unwrap().as_ref().to_vec()
    }

    /// The SubjectPublicKeyInfo DER of an RSA PKCS#8 key.
    pub fn rsa_spki(pkcs8: &[u8]) -> Vec<u8> {
        let key = RsaKeyPair::from_pkcs8(pkcs8).unwrap();
        key.public_key().as_der().unwrap().as_ref().to_vec()
    }

    /// Malformed variants of `good`: every truncation at a stride, single-byte changes at
    /// pseudo-random places, and pseudo-random garbage of assorted lengths (a fixed xorshift
    /// seed, so a failure reproduces).
    pub fn scramble(good: &[u8]) -> Vec<Vec<u8>> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut out = Vec::new();
        let stride = (good.len() / 97).max(1);
        out.extend(
            (0..good.len())
                .step_by(stride)
                .map(|cut| good[..cut].to_vec()),
        );
        out.extend(
            (0..good.len())
                .step_by(stride)
                .map(|cut| good[cut + 1..].to_vec()),
        );
        for _ in 0..200 {
            let mut changed = good.to_vec();
            if !changed.is_empty() {
                let at = (next() % changed.len() as u64) as usize;
                changed[at] = changed[at].wrapping_add(1 + (next() % 255) as u8);
            }
            out.push(changed);
        }
        for len in [0, 1, 4, 63, 64, 300, 4096, 8192, good.len()] {
            out.push((0..len).map(|_| next() as u8).collect());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for format in Format::ALL {
            assert_eq!(format.to_string().parse::<Format>(), Ok(format));
        }
        assert_eq!(
            "esp-idf-sbv2".parse::<Format>(),
            Ok(Format::EspIdfSbv2),
            "the CLI spelling"
        );
        assert!("sbv2".parse::<Format>().is_err());
    }

    #[test]
    fn der_reader_takes_short_and_long_lengths_and_refuses_overruns() {
        assert_eq!(
            der_element(&[0x02, 0x02, 0x00, 0x80, 0xAA], 0x02),
            Some((&[0x00, 0x80][..], &[0xAA][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        assert_eq!(der_element(&long, 0x04).map(|(v, _)| v.len()), Some(0x80));
        assert_eq!(der_element(&[0x02, 0x05, 1, 2], 0x02), None, "too short");
        assert_eq!(der_element(&[0x02, 0x80], 0x02), None, "indefinite");
        assert_eq!(der_element(&[0x30, 0x00], 0x02), None, "wrong tag");
        assert_eq!(der_element(&[], 0x02), None);
        assert_eq!(unsigned(&[0, 0, 0x80, 1]), &[0x80, 1]);
    }
}
