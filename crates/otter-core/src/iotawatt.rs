//! IotaWatt release blobs (boblemaire/IoTaWatt `updater.cpp`), the format an IotaWatt unpacks
//! and verifies before flashing:
//!
//! ```text
//! [16]  "IotaWatt" + release (8 bytes, e.g. "02_08_04": must equal the version asked for)
//! then for each file:
//!   [32]  "FILE" + u32 little-endian length + name (24 bytes, NUL-terminated)
//!   [length rounded up to a multiple of 8]  the file's bytes, zero-padded
//! [64]  Ed25519 signature of the SHA-256 of everything before it
//! ```
//!
//! The signed message is the 32-byte digest, not the blob. A blob must carry `iotawatt.bin`
//! (the firmware; the device compares names without case); other files are copied to the SD card.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::encoding::AsBigEndian;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

const MAGIC: &[u8; 8] = b"IotaWatt";
const FILE: &[u8; 4] = b"FILE";
const HEADER_LEN: usize = 16;
const FILE_HEADER_LEN: usize = 32;
/// The longest file name: 24 bytes including the terminating NUL.
pub const MAX_NAME_LEN: usize = 23;
pub const SIGNATURE_LEN: usize = 64;
/// The file the device flashes.
pub const FIRMWARE_FILE: &str = "iotawatt.bin";

/// Why a blob could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobError {
    #[error("the release version must be 8 characters like 02_08_04, not {0:?}")]
    BadVersion(String),
    #[error("file name {0:?} must be 1-{MAX_NAME_LEN} bytes without NUL or '/'")]
    BadName(String),
    #[error("a release blob must contain iotawatt.bin (the firmware)")]
    NoFirmware,
    #[error("{0} is larger than 4 GiB")]
    TooLarge(String),
    #[error("not an IotaWatt release blob: {0}")]
    Malformed(&'static str),
    #[error("the signature does not verify with this public key")]
    BadSignature,
    #[error("the signing key is not an Ed25519 PKCS#8 key")]
    BadKey,
}

/// A file inside a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobFile {
    pub name: String,
    pub data: Vec<u8>,
}

/// A blob taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub version: String,
    pub files: Vec<BlobFile>,
    /// SHA-256 of everything before the signature: what was signed.
    pub digest: [u8; 32],
    pub signature: [u8; SIGNATURE_LEN],
}

/// An Ed25519 signing key.
pub struct SigningKey(Ed25519KeyPair);

impl SigningKey {
    pub fn generate() -> Result<Self, BlobError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| BlobError::BadKey)?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// From a PKCS#8 document (v1, as `openssl genpkey -algorithm ed25519` writes, or v2).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, BlobError> {
        Ed25519KeyPair::from_pkcs8(der)
            .map(SigningKey)
            .map_err(|_| BlobError::BadKey)
    }

    /// The key as a PKCS#8 v1 document, the form OpenSSL reads and writes.
    pub fn to_pkcs8(&self) -> Result<Vec<u8>, BlobError> {
        self.0
            .to_pkcs8v1()
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| BlobError::BadKey)
    }

    /// The 32-byte public key the device holds.
    pub fn public_key(&self) -> [u8; 32] {
        self.0.public_key().as_ref().try_into().unwrap_or([0; 32])
    }

    fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0
            .sign(message)
            .as_ref()
            .try_into()
            .unwrap_or([0; SIGNATURE_LEN])
    }

    /// The 32-byte seed (for tests comparing keys).
    pub fn seed(&self) -> Vec<u8> {
        self.0
            .seed()
            .and_then(|s| s.as_be_bytes())
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default()
    }
}

/// Whether `version` fits the blob header: 8 printable ASCII characters.
fn check_version(version: &str) -> Result<(), BlobError> {
    if version.len() == 8 && version.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(BlobError::BadVersion(version.to_owned()))
    }
}

/// Builds and signs a blob of `files` for release `version`.
pub fn pack(version: &str, files: &[BlobFile], key: &SigningKey) -> Result<Vec<u8>, BlobError> {
    let mut blob = body(version, files)?;
    let signature = key.sign(&sha256(&blob));
    blob.extend_from_slice(&signature);
    Ok(blob)
}

/// What an external Ed25519 signer (HSM, KMS) must sign for a blob of `body`: the 32-byte
/// SHA-256 of the body, signed as a message.
pub fn to_be_signed(body: &[u8]) -> [u8; 32] {
    sha256(body)
}

/// Completes a blob from its [`body`] and an external signature, after checking the signature
/// with `public_key`.
pub fn attach(
    mut body: Vec<u8>,
    signature: &[u8],
    public_key: &[u8; 32],
) -> Result<Vec<u8>, BlobError> {
    if signature.len() != SIGNATURE_LEN {
        return Err(BlobError::BadSignature);
    }
    body.extend_from_slice(signature);
    verify(&body, public_key)?;
    Ok(body)
}

/// The blob without its signature: header and file records.
pub fn body(version: &str, files: &[BlobFile]) -> Result<Vec<u8>, BlobError> {
    check_version(version)?;
    if !files
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(FIRMWARE_FILE))
    {
        return Err(BlobError::NoFirmware);
    }
    let total: usize = files
        .iter()
        .map(|f| FILE_HEADER_LEN + padded(f.data.len()))
        .sum();
    let mut blob = Vec::with_capacity(HEADER_LEN + total + SIGNATURE_LEN);
    blob.extend_from_slice(MAGIC);
    blob.extend_from_slice(version.as_bytes());
    for file in files {
        let name = file.name.as_bytes();
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.iter().any(|&b| b == 0 || b == b'/')
        {
            return Err(BlobError::BadName(file.name.clone()));
        }
        let len =
            u32::try_from(file.data.len()).map_err(|_| BlobError::TooLarge(file.name.clone()))?;
        blob.extend_from_slice(FILE);
        blob.extend_from_slice(&len.to_le_bytes());
        let mut field = [0u8; 24];
        field[..name.len()].copy_from_slice(name);
        blob.extend_from_slice(&field);
        blob.extend_from_slice(&file.data);
        blob.resize(blob.len() + padded(file.data.len()) - file.data.len(), 0);
    }
    Ok(blob)
}

fn padded(len: usize) -> usize {
    len.div_ceil(8) * 8
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest(&SHA256, bytes)
        .as_ref()
        .try_into()
        .unwrap_or([0; 32])
}

/// Takes a blob apart, walking it as the device does; does not check the signature.
pub fn unpack(blob: &[u8]) -> Result<Unpacked, BlobError> {
    if blob.len() < HEADER_LEN + SIGNATURE_LEN || &blob[..8] != MAGIC {
        return Err(BlobError::Malformed("no IotaWatt header"));
    }
    let version = std::str::from_utf8(&blob[8..16])
        .map_err(|_| BlobError::Malformed("the release is not text"))?
        .to_owned();
    let body_end = blob.len() - SIGNATURE_LEN;
    let mut at = HEADER_LEN;
    let mut files = Vec::new();
    while at < body_end {
        let header = blob
            .get(at..at + FILE_HEADER_LEN)
            .filter(|_| at + FILE_HEADER_LEN <= body_end)
            .ok_or(BlobError::Malformed(
                "a file header runs into the signature",
            ))?;
        if &header[..4] != FILE {
            return Err(BlobError::Malformed(
                "a file record does not start with FILE",
            ));
        }
        let len = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let name_field = &header[8..32];
        let name_len = name_field
            .iter()
            .position(|&b| b == 0)
            .ok_or(BlobError::Malformed("a file name is not NUL-terminated"))?;
        let name = String::from_utf8_lossy(&name_field[..name_len]).into_owned();
        let start = at + FILE_HEADER_LEN;
        let end = start
            .checked_add(padded(len))
            .filter(|&end| end <= body_end)
            .ok_or(BlobError::Malformed("a file runs into the signature"))?;
        files.push(BlobFile {
            name,
            data: blob[start..start + len].to_vec(),
        });
        at = end;
    }
    let signature = blob[body_end..]
        .try_into()
        .map_err(|_| BlobError::Malformed("no signature"))?;
    Ok(Unpacked {
        version,
        files,
        digest: sha256(&blob[..body_end]),
        signature,
    })
}

/// Unpacks `blob` and checks its signature against `public_key`, as the device does.
pub fn verify(blob: &[u8], public_key: &[u8; 32]) -> Result<Unpacked, BlobError> {
    let unpacked = unpack(blob)?;
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&unpacked.digest, &unpacked.signature)
        .map_err(|_| BlobError::BadSignature)?;
    if !unpacked
        .files
        .iter()
        .any(|f| f.name.eq_ignore_ascii_case(FIRMWARE_FILE))
    {
        return Err(BlobError::NoFirmware);
    }
    Ok(unpacked)
}

/// The public key as the C array IotaWatt's `common.cpp` declares it.
pub fn c_array(public_key: &[u8; 32]) -> String {
    let bytes: Vec<String> = public_key.iter().map(|b| format!("0x{b:02x}")).collect();
    let lines: Vec<String> = bytes
        .chunks(8)
        .map(|c| format!("    {}", c.join(", ")))
        .collect();
    format!(
        "const uint8_t publicKey[32] PROGMEM = {{\n{}\n}};",
        lines.join(",\n")
    )
}

/// Reads a public key given as 64 hex digits or as the C array [`c_array`] prints.
pub fn parse_public_key(text: &str) -> Option<[u8; 32]> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.len() == 64
        && let Ok(bytes) = hex::decode(&compact)
    {
        return bytes.try_into().ok();
    }
    let bytes: Vec<u8> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|t| t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")))
        .map(|h| u8::from_str_radix(h, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<BlobFile> {
        vec![
            BlobFile {
                name: "iotawatt.bin".into(),
                data: (0..1001u32).map(|i| (i % 251) as u8).collect(),
            },
            BlobFile {
                name: "tables.txt".into(),
                data: b"{\"version\":\"1.2.3\"}".to_vec(),
            },
        ]
    }

    #[test]
    fn pack_then_verify_round_trips() {
        let key = SigningKey::generate().unwrap();
        let blob = pack("02_08_04", &files(), &key).unwrap();
        // Header, two padded files, signature.
        assert_eq!(blob.len(), 16 + (32 + 1008) + (32 + 24) + 64);
        assert_eq!(&blob[..16], b"IotaWatt02_08_04");
        assert_eq!(&blob[16..20], b"FILE");
        assert_eq!(&blob[20..24], &1001u32.to_le_bytes());
        let unpacked = verify(&blob, &key.public_key()).unwrap();
        assert_eq!(unpacked.version, "02_08_04");
        assert_eq!(unpacked.files, files());
    }

    #[test]
    fn an_external_signature_completes_the_same_blob() {
        let key = SigningKey::generate().unwrap();
        let body = body("02_08_04", &files()).unwrap();
        let signature = key.sign(&to_be_signed(&body));
        let blob = attach(body.clone(), &signature, &key.public_key()).unwrap();
        assert_eq!(
            blob,
            pack("02_08_04", &files(), &key).unwrap(),
            "Ed25519 is deterministic"
        );
        let other = SigningKey::generate().unwrap();
        assert_eq!(
            attach(body, &other.sign(b"x"), &key.public_key()),
            Err(BlobError::BadSignature)
        );
    }

    #[test]
    fn any_flipped_byte_fails() {
        let key = SigningKey::generate().unwrap();
        let blob = pack("02_08_04", &files(), &key).unwrap();
        for i in 0..blob.len() {
            let mut bad = blob.clone();
            bad[i] ^= 0x01;
            assert!(
                verify(&bad, &key.public_key()).is_err(),
                "byte {i} flipped still verifies"
            );
        }
        let other = SigningKey::generate().unwrap();
        assert_eq!(
            verify(&blob, &other.public_key()),
            Err(BlobError::BadSignature)
        );
    }

    #[test]
    fn refuses_what_the_device_would() {
        let key = SigningKey::generate().unwrap();
        assert_eq!(
            pack("2.8.4", &files(), &key),
            Err(BlobError::BadVersion("2.8.4".into()))
        );
        let no_fw = vec![files()[1].clone()];
        assert_eq!(pack("02_08_04", &no_fw, &key), Err(BlobError::NoFirmware));
        let long = vec![
            BlobFile {
                name: "a".repeat(24),
                data: vec![],
            },
            files()[0].clone(),
        ];
        assert!(matches!(
            pack("02_08_04", &long, &key),
            Err(BlobError::BadName(_))
        ));
        assert!(unpack(b"not a blob").is_err());
        let blob = pack("02_08_04", &files(), &key).unwrap();
        assert!(unpack(&blob[..blob.len() - 1]).is_err(), "a truncated blob");
    }

    #[test]
    fn keys_round_trip_and_print_as_c() {
        let key = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&key.to_pkcs8().unwrap()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(again.seed(), key.seed());
        let c = c_array(&key.public_key());
        assert!(
            c.starts_with("const uint8_t publicKey[32] PROGMEM = {"),
            "{c}"
        );
        assert_eq!(parse_public_key(&c), Some(key.public_key()));
        assert_eq!(
            parse_public_key(&hex::encode(key.public_key())),
            Some(key.public_key())
        );
        assert_eq!(parse_public_key("nonsense"), None);
    }
}
