//! ESP-IDF Secure Boot v2 app signatures, as espressif/esptool's `espsecure sign_data --version 2`
//! writes them and an ESP32-family bootloader checks them (at boot and on every OTA write):
//!
//! ```text
//! image, padded with 0xFF to a 4096-byte boundary
//! one 4096-byte sector: up to 3 signature blocks of 1216 bytes, the rest 0xFF
//! ```
//!
//! Every multi-byte integer in a block is little-endian, big numbers included (byte-reversed
//! from their usual big-endian form, for the RSA peripheral and micro-ecc):
//!
//! ```text
//! RSA-3072-PSS block (version 0x02)        ECDSA P-256 block (version 0x03)
//!    0  magic 0xE7                            0  magic 0xE7
//!    1  version 0x02                          1  version 0x03
//!    2  2 zero bytes                          2  hash type 0 (SHA-256), 3 pad
//!    4  SHA-256 of the padded image           4  SHA-256 of the padded image
//!   36  modulus n (384)                      36  curve id 2 (P-256)
//!  420  exponent e (u32)                     37  public key X (32), Y (32)
//!  424  R = 2^6144 mod n (384)              101  signature r (32), s (32)
//!  808  M' = -n^-1 mod 2^32 (u32)           165  zeros up to 1196
//!  812  RSA-PSS signature (384)
//! 1196  CRC-32 of bytes 0..1196, then 16 zero bytes (both kinds)
//! ```
//!
//! The signature covers the padded image: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte
//! salt, or ECDSA P-256 with SHA-256. The eFuse holds SHA-256 of the block's key bytes: 36..812
//! (n, e, R, M') for RSA, 36..101 (curve id, X, Y) for ECDSA ([`key_digest`], what
//! `espsecure digest_sbv2_public_key` writes).
//!
//! Confirmed from espsecure (`generate_signature_block_using_private_key`,
//! `validate_signature_block`, `_digest_sbv2_public_key`): the layouts above, the CRC (plain
//! `zlib.crc32(block[:1196])`: reflected polynomial 0xEDB88320, initial value and final XOR
//! 0xFFFFFFFF, no extra seed), R and M' (`1 << (key_size * 2)) % n`, `-modinv(n, 1 << 32)`),
//! and the key digests. ESP-IDF's bootloader checks the same CRC with
//! `esp_rom_crc32_le(0, block, 1196)` and hashes the image up to its own length rounded up to
//! 4 KiB, where it expects the signature sector.
//!
//! Padding: espsecure pads with 0xFF only to 4 KiB. IDF's `--secure-pad-v2` is different: an
//! esptool `elf2image` option that, at build time, adds a padding segment *inside* the image so
//! that it ends on a 64 KiB boundary; otter takes the image as the build system produced it.
//! [`sign`] and friends take `pad_to` (a multiple of [`SECTOR_LEN`]); devices need
//! [`SECTOR_LEN`], because the bootloader looks for the sector right after the image's own length
//! rounded up to 4 KiB, and 0xFF fill beyond that moves the sector where it does not look.
//!
//! Supported: RSA-3072 and ECDSA P-256 keys, one block per signing. Not supported: P-192
//! (ESP32-C2's other curve) and P-384 (ESP32-C5, a SHA-384 block layout), which aws-lc-rs does
//! not offer with these parameters or otter does not yet write; blocks of those kinds are
//! refused by [`verify`].

use std::ops::Range;

use aws_lc_rs::digest::{self, Digest, SHA256};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair,
    KeyPair, ParsedPublicKey, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256, RsaKeyPair,
    RsaPublicKeyComponents, UnparsedPublicKey,
};

use super::{
    FormatError, RsaNumbers, der_element, rsa_numbers, rsa_private_key, rsa_public_key, sha256,
    unsigned,
};

/// The flash sector: the image is padded to it and the signatures fill one.
pub const SECTOR_LEN: usize = 4096;
/// One signature block.
pub const BLOCK_LEN: usize = 1216;
/// Signature blocks a sector holds (chips with revocation eFuses trust up to three keys).
pub const MAX_BLOCKS: usize = 3;

const MAGIC: u8 = 0xE7;
const VERSION_RSA: u8 = 0x02;
const VERSION_ECDSA: u8 = 0x03;
const ECDSA_SHA_256: u8 = 0;
const CURVE_P256: u8 = 2;
/// The CRC covers the block up to its own field.
const CRC_AT: usize = 1196;
const DIGEST: Range<usize> = 4..36;
/// RSA-3072: 384-byte modulus, signature, R.
const RSA_LEN: usize = 384;
const RSA_KEY: Range<usize> = 36..812;
const RSA_SIGNATURE: Range<usize> = 812..1196;
const ECDSA_KEY: Range<usize> = 36..101;
const ECDSA_SIGNATURE: Range<usize> = 101..165;

const PRIVATE_KEY: &str =
    "an RSA-3072 or ECDSA P-256 private key (PKCS#8, PKCS#1 or SEC 1 DER) for Secure Boot v2";
const PUBLIC_KEY: &str =
    "an RSA-3072 or ECDSA P-256 public key (SubjectPublicKeyInfo DER) for Secure Boot v2";

/// The kind of a signature block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Version 0x02: RSA-3072, PSS with SHA-256.
    Rsa3072Pss,
    /// Version 0x03 with curve id 2: ECDSA P-256 with SHA-256.
    EcdsaP256,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The padded image's length: where the signature sector starts.
    pub image_len: usize,
    /// Which block (0-2) verified.
    pub block: usize,
    pub scheme: Scheme,
    /// The eFuse digest of the key that signed.
    pub key_digest: [u8; 32],
}

/// A public key as a signature block holds it.
enum PublicKey {
    Rsa(RsaNumbers),
    /// The uncompressed SEC 1 point `04 || X || Y`, big-endian.
    EcdsaP256([u8; 65]),
}

impl PublicKey {
    fn from_der(der: &[u8]) -> Result<Self, FormatError> {
        if let Ok((_, numbers)) = rsa_public_key(der, PUBLIC_KEY) {
            check_rsa(&numbers)?;
            return Ok(PublicKey::Rsa(numbers));
        }
        // aws-lc checks the point is on the curve and re-encodes the key as a
        // SubjectPublicKeyInfo, which ends with the point: the uncompressed form (what OpenSSL
        // and espsecure write) is the one taken.
        let spki = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, der)
            .ok()
            .and_then(|key| key.as_der().ok())
            .ok_or(FormatError::BadKey(PUBLIC_KEY))?;
        let point = spki
            .as_ref()
            .last_chunk::<65>()
            .filter(|p| p[0] == 0x04)
            .ok_or(FormatError::BadKey(PUBLIC_KEY))?;
        Ok(PublicKey::EcdsaP256(*point))
    }

    /// The key bytes of a block, the ones the eFuse digest covers.
    fn block_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Rsa(numbers) => rsa_key_bytes(numbers),
            PublicKey::EcdsaP256(point) => {
                let mut out = Vec::with_capacity(ECDSA_KEY.len());
                out.push(CURVE_P256);
                out.extend(point[1..33].iter().rev());
                out.extend(point[33..65].iter().rev());
                out
            }
        }
    }
}

/// RSA keys as the hardware takes them: exactly 3072 bits, e a u32 (espsecure's check and
/// its `struct.pack("<I", e)`).
fn check_rsa(numbers: &RsaNumbers) -> Result<(), FormatError> {
    let full = numbers.n.len() == RSA_LEN && numbers.n[0] & 0x80 != 0;
    if full && numbers.e.len() <= 4 && numbers.n[RSA_LEN - 1] & 1 == 1 {
        Ok(())
    } else {
        Err(FormatError::BadKey(
            "an RSA key of exactly 3072 bits with a 32-bit exponent (Secure Boot v2)",
        ))
    }
}

/// n, e, R and M' as a block stores them (bytes 36..812).
fn rsa_key_bytes(numbers: &RsaNumbers) -> Vec<u8> {
    let mut e = [0u8; 4];
    e[4 - numbers.e.len()..].copy_from_slice(&numbers.e);
    let mut out = Vec::with_capacity(RSA_KEY.len());
    out.extend(numbers.n.iter().rev());
    out.extend(u32::from_be_bytes(e).to_le_bytes());
    out.extend(montgomery_r2(&numbers.n).iter().rev());
    let low = numbers.n.last_chunk::<4>().copied().unwrap_or([0, 0, 0, 1]);
    out.extend(montgomery_m(u32::from_be_bytes(low)).to_le_bytes());
    out
}

/// R = 2^(2·bits) mod n, big-endian in as many bytes as n: the RSA peripheral's Montgomery
/// constant. Shift-and-subtract over 32-bit limbs: 6144 steps for a 3072-bit n, cheap next to
/// the signature itself, and no bignum crate for one number.
fn montgomery_r2(n: &[u8]) -> Vec<u8> {
    // Little-endian limbs.
    let limbs: Vec<u32> = n
        .rchunks(4)
        .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
        .collect();
    let mut r = vec![0u32; limbs.len() + 1];
    r[0] = 1;
    for _ in 0..2 * 8 * n.len() {
        // r < n before doubling, so one subtraction brings 2r back below n.
        let mut carry = 0;
        for limb in r.iter_mut() {
            let next = *limb >> 31;
            *limb = (*limb << 1) | carry;
            carry = next;
        }
        if !below(&r, &limbs) {
            let mut borrow = false;
            for (i, limb) in r.iter_mut().enumerate() {
                let (d, b1) = limb.overflowing_sub(limbs.get(i).copied().unwrap_or(0));
                let (d, b2) = d.overflowing_sub(u32::from(borrow));
                *limb = d;
                borrow = b1 || b2;
            }
        }
    }
    let mut out: Vec<u8> = r[..limbs.len()]
        .iter()
        .rev()
        .flat_map(|l| l.to_be_bytes())
        .collect();
    out.drain(..out.len() - n.len());
    out
}

/// Whether the limbs `a` (one longer than `n`) are below `n`.
fn below(a: &[u32], n: &[u32]) -> bool {
    if a[n.len()] != 0 {
        return false;
    }
    for i in (0..n.len()).rev() {
        if a[i] != n[i] {
            return a[i] < n[i];
        }
    }
    false
}

/// M' = -n^-1 mod 2^32 from n's lowest word (odd for any RSA modulus). Newton's iteration
/// doubles the correct low bits each step; n0 is its own inverse mod 8, so 4 steps reach 48.
fn montgomery_m(n0: u32) -> u32 {
    let mut inverse = n0;
    for _ in 0..4 {
        inverse = inverse.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inverse)));
    }
    inverse.wrapping_neg()
}

/// CRC-32 as zlib computes it, the function espsecure applies to a block's first 1196 bytes.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// The image padded with 0xFF to a multiple of `pad_to`.
fn pad(image: &[u8], pad_to: usize) -> Result<Vec<u8>, FormatError> {
    if image.is_empty() {
        return Err(FormatError::Malformed("the image is empty"));
    }
    if pad_to == 0 || !pad_to.is_multiple_of(SECTOR_LEN) {
        return Err(FormatError::Malformed(
            "the padding must be a positive multiple of 4096 bytes",
        ));
    }
    let mut padded = image.to_vec();
    padded.resize(image.len().div_ceil(pad_to) * pad_to, 0xFF);
    Ok(padded)
}

/// What an external signer must sign: the padded image. The signer hashes it with SHA-256
/// (a signer that takes a digest gets the SHA-256 of these bytes) and signs with RSA-PSS
/// (MGF1-SHA-256, 32-byte salt; KMS `RSASSA_PSS_SHA_256`) or ECDSA P-256.
pub fn to_be_signed(image: &[u8], pad_to: usize) -> Result<Vec<u8>, FormatError> {
    pad(image, pad_to)
}

/// Pads `image` to a multiple of `pad_to` ([`SECTOR_LEN`] for devices, see the module notes),
/// signs it and appends a signature sector with one block. RSA-PSS and ECDSA signatures are
/// randomised: two signings differ in the signature bytes only.
pub fn sign(image: &[u8], private_key: &[u8], pad_to: usize) -> Result<Vec<u8>, FormatError> {
    let padded = pad(image, pad_to)?;
    let digest = digest::digest(&SHA256, &padded);
    let block = if let Ok(key) = rsa_private_key(private_key, PRIVATE_KEY) {
        let numbers =
            rsa_numbers(key.public_key().as_ref()).ok_or(FormatError::BadKey(PRIVATE_KEY))?;
        check_rsa(&numbers)?;
        let signature = sign_rsa(&key, &padded)?;
        rsa_block(&digest, &numbers, &signature)
    } else {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, private_key)
            .or_else(|_| {
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, private_key)
            })
            .map_err(|_| FormatError::BadKey(PRIVATE_KEY))?;
        let point: [u8; 65] = key
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| FormatError::BadKey(PRIVATE_KEY))?;
        let signature = key
            .sign(&SystemRandom::new(), &padded)
            .map_err(|_| FormatError::SigningFailed)?;
        let rs: [u8; 64] = signature
            .as_ref()
            .try_into()
            .map_err(|_| FormatError::SigningFailed)?;
        ecdsa_block(&digest, &PublicKey::EcdsaP256(point), &rs)
    };
    Ok(assemble(padded, &block))
}

fn sign_rsa(key: &RsaKeyPair, message: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut signature = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PSS_SHA256,
        &SystemRandom::new(),
        message,
        &mut signature,
    )
    .map_err(|_| FormatError::SigningFailed)?;
    Ok(signature)
}

/// Builds the signed output from an external `signature` of [`to_be_signed`]'s bytes, after
/// checking it against `public_key` (as `espsecure sign_data --pub-key --signature` does). RSA
/// signatures are the raw 384 big-endian bytes; ECDSA ones DER (what OpenSSL and espsecure
/// take) or 64 bytes `r || s` big-endian (what many KMSs return).
pub fn attach(
    image: &[u8],
    signature: &[u8],
    public_key: &[u8],
    pad_to: usize,
) -> Result<Vec<u8>, FormatError> {
    let padded = pad(image, pad_to)?;
    let digest = digest::digest(&SHA256, &padded);
    let block = match PublicKey::from_der(public_key)? {
        PublicKey::Rsa(numbers) => {
            RsaPublicKeyComponents {
                n: &numbers.n,
                e: &numbers.e,
            }
            .verify(&RSA_PSS_2048_8192_SHA256, &padded, signature)
            .map_err(|_| FormatError::BadSignature)?;
            rsa_block(&digest, &numbers, signature)
        }
        key @ PublicKey::EcdsaP256(point) => {
            let fixed = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point);
            let der = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point);
            let rs = if let Ok(rs) = <[u8; 64]>::try_from(signature)
                && fixed.verify(&padded, &rs).is_ok()
            {
                rs
            } else if der.verify(&padded, signature).is_ok() {
                der_signature_to_fixed(signature).ok_or(FormatError::BadSignature)?
            } else {
                return Err(FormatError::BadSignature);
            };
            ecdsa_block(&digest, &key, &rs)
        }
    };
    Ok(assemble(padded, &block))
}

/// An ECDSA `SEQUENCE { INTEGER r, INTEGER s }` as 64 bytes `r || s`.
fn der_signature_to_fixed(der: &[u8]) -> Option<[u8; 64]> {
    let (body, rest) = der_element(der, 0x30)?;
    let (r, body) = der_element(body, 0x02)?;
    let (s, body) = der_element(body, 0x02)?;
    if !rest.is_empty() || !body.is_empty() {
        return None;
    }
    let mut out = [0u8; 64];
    for (half, value) in out.chunks_exact_mut(32).zip([unsigned(r), unsigned(s)]) {
        if value.len() > 32 {
            return None;
        }
        half[32 - value.len()..].copy_from_slice(value);
    }
    Some(out)
}

fn rsa_block(digest: &Digest, numbers: &RsaNumbers, signature: &[u8]) -> [u8; BLOCK_LEN] {
    let mut block = [0u8; BLOCK_LEN];
    block[0] = MAGIC;
    block[1] = VERSION_RSA;
    block[DIGEST].copy_from_slice(digest.as_ref());
    block[RSA_KEY].copy_from_slice(&rsa_key_bytes(numbers));
    for (to, from) in block[RSA_SIGNATURE].iter_mut().zip(signature.iter().rev()) {
        *to = *from;
    }
    seal(block)
}

/// `rs` is `r || s` big-endian; the block stores each half little-endian.
fn ecdsa_block(digest: &Digest, key: &PublicKey, rs: &[u8; 64]) -> [u8; BLOCK_LEN] {
    let mut block = [0u8; BLOCK_LEN];
    block[0] = MAGIC;
    block[1] = VERSION_ECDSA;
    block[2] = ECDSA_SHA_256;
    block[DIGEST].copy_from_slice(digest.as_ref());
    block[ECDSA_KEY].copy_from_slice(&key.block_bytes());
    let signature: Vec<u8> = rs[..32]
        .iter()
        .rev()
        .chain(rs[32..].iter().rev())
        .copied()
        .collect();
    block[ECDSA_SIGNATURE].copy_from_slice(&signature);
    seal(block)
}

/// Writes the CRC; the 16 bytes after it stay zero.
fn seal(mut block: [u8; BLOCK_LEN]) -> [u8; BLOCK_LEN] {
    let crc = crc32(&block[..CRC_AT]);
    block[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    block
}

fn assemble(mut padded: Vec<u8>, block: &[u8; BLOCK_LEN]) -> Vec<u8> {
    let sector_at = padded.len();
    padded.extend_from_slice(block);
    padded.resize(sector_at + SECTOR_LEN, 0xFF);
    padded
}

/// The eFuse digest of `public_key` (SubjectPublicKeyInfo DER): SHA-256 of the key bytes a
/// block would carry, as `espsecure digest_sbv2_public_key` computes it.
pub fn key_digest(public_key: &[u8]) -> Result<[u8; 32], FormatError> {
    Ok(sha256(&PublicKey::from_der(public_key)?.block_bytes()))
}

/// Checks `signed` against `public_key` (SubjectPublicKeyInfo DER), as a bootloader whose eFuse
/// holds this key's digest does.
pub fn verify(signed: &[u8], public_key: &[u8]) -> Result<Verified, FormatError> {
    verify_with_key_digests(signed, &[key_digest(public_key)?])
}

/// Checks `signed` as the bootloader does with the eFuse key digests `trusted`. Blocks count up
/// to the first one that is not valid (no magic byte, a bad CRC, another image's digest, a kind
/// otter does not support: the bootloader's "past the last valid signature block"); the first
/// valid block whose key is trusted and whose signature verifies, with the key material in the
/// block (R and M' included), wins.
pub fn verify_with_key_digests(
    signed: &[u8],
    trusted: &[[u8; 32]],
) -> Result<Verified, FormatError> {
    if signed.len() < 2 * SECTOR_LEN || !signed.len().is_multiple_of(SECTOR_LEN) {
        return Err(FormatError::Malformed(
            "not whole 4 KiB sectors holding an image and a signature sector",
        ));
    }
    let (image, sector) = signed.split_at(signed.len() - SECTOR_LEN);
    let digest = digest::digest(&SHA256, image);
    let mut refusal = None;
    for (index, block) in sector.chunks_exact(BLOCK_LEN).take(MAX_BLOCKS).enumerate() {
        let (scheme, key) = match valid_block(block, &digest) {
            Ok(valid) => valid,
            Err(why) => {
                refusal.get_or_insert(why);
                break;
            }
        };
        let key_digest = sha256(key);
        if !trusted.contains(&key_digest) {
            refusal.get_or_insert(FormatError::WrongKey(
                "no signature block carries a trusted key".into(),
            ));
            continue;
        }
        let verified = match scheme {
            Scheme::Rsa3072Pss => check_rsa_block(block, &digest)?,
            Scheme::EcdsaP256 => check_ecdsa_block(block, &digest),
        };
        if verified {
            return Ok(Verified {
                image_len: image.len(),
                block: index,
                scheme,
                key_digest,
            });
        }
        // A trusted key whose signature fails says more than an untrusted one.
        refusal = Some(FormatError::BadSignature);
    }
    Err(refusal.unwrap_or(FormatError::Malformed(
        "the signature sector holds no signature block",
    )))
}

/// A block's scheme and key bytes, if the bootloader would count it.
fn valid_block<'a>(block: &'a [u8], digest: &Digest) -> Result<(Scheme, &'a [u8]), FormatError> {
    if block[0] != MAGIC {
        return Err(FormatError::Malformed(
            "the signature sector holds no signature block",
        ));
    }
    let crc = u32::from_le_bytes([
        block[CRC_AT],
        block[CRC_AT + 1],
        block[CRC_AT + 2],
        block[CRC_AT + 3],
    ]);
    if crc != crc32(&block[..CRC_AT]) {
        return Err(FormatError::Malformed(
            "a signature block's CRC does not match",
        ));
    }
    if block[DIGEST] != *digest.as_ref() {
        return Err(FormatError::ImageMismatch);
    }
    match block[1] {
        VERSION_RSA => Ok((Scheme::Rsa3072Pss, &block[RSA_KEY])),
        VERSION_ECDSA if block[2] == ECDSA_SHA_256 && block[ECDSA_KEY.start] == CURVE_P256 => {
            Ok((Scheme::EcdsaP256, &block[ECDSA_KEY]))
        }
        VERSION_ECDSA => Err(FormatError::Malformed(
            "an ECDSA block on a curve other than P-256 (not supported)",
        )),
        _ => Err(FormatError::Malformed("an unknown signature block version")),
    }
}

/// Verifies an RSA block with the numbers it carries. R and M' feed the device's RSA
/// peripheral, so a block whose constants do not belong to its modulus is refused outright.
fn check_rsa_block(block: &[u8], digest: &Digest) -> Result<bool, FormatError> {
    let n: Vec<u8> = block[36..420].iter().rev().copied().collect();
    let e = u32::from_le_bytes([block[420], block[421], block[422], block[423]]).to_be_bytes();
    let numbers = RsaNumbers {
        e: unsigned(&e).to_vec(),
        n,
    };
    if check_rsa(&numbers).is_err() || rsa_key_bytes(&numbers) != block[RSA_KEY] {
        return Err(FormatError::Malformed(
            "an RSA block whose R or M' does not belong to its modulus",
        ));
    }
    let signature: Vec<u8> = block[RSA_SIGNATURE].iter().rev().copied().collect();
    Ok(RsaPublicKeyComponents {
        n: &numbers.n,
        e: &numbers.e,
    }
    .to_parsed_public_key(&RSA_PSS_2048_8192_SHA256)
    .is_ok_and(|key| key.verify_digest_sig(digest, &signature).is_ok()))
}

fn check_ecdsa_block(block: &[u8], digest: &Digest) -> bool {
    let mut point = [0u8; 65];
    point[0] = 0x04;
    for (to, from) in point[1..33].iter_mut().zip(block[37..69].iter().rev()) {
        *to = *from;
    }
    for (to, from) in point[33..].iter_mut().zip(block[69..101].iter().rev()) {
        *to = *from;
    }
    let signature: Vec<u8> = block[101..133]
        .iter()
        .rev()
        .chain(block[133..165].iter().rev())
        .copied()
        .collect();
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .is_ok_and(|key| key.verify_digest_sig(digest, &signature).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::tests_support::{rsa_key, rsa_spki, scramble};

    fn ecdsa_key() -> Vec<u8> {
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    fn ecdsa_spki(pkcs8: &[u8]) -> Vec<u8> {
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8).unwrap();
        key.public_key().as_der().unwrap().as_ref().to_vec()
    }

    fn image() -> Vec<u8> {
        let mut image: Vec<u8> = (0..10_000u32).map(|i| (i * 13 % 251) as u8).collect();
        image[0] = 0xE9;
        image
    }

    /// Rewrites a block's CRC after a test changed it, so the later checks are reached.
    fn reseal(signed: &mut [u8], block: usize) {
        let at = signed.len() - SECTOR_LEN + block * BLOCK_LEN;
        let crc = crc32(&signed[at..at + CRC_AT]);
        signed[at + CRC_AT..at + CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn crc_is_zlibs() {
        // The CRC-32 check value (zlib.crc32(b"123456789")).
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn montgomery_constants_match_plain_arithmetic() {
        for n in [
            0xC5u64,
            0xFFF1,
            0x8000_0000_0000_0001,
            0xF123_4567_89AB_CDEF,
        ] {
            let bytes = n.to_be_bytes();
            let trimmed = unsigned(&bytes);
            // 2^(2·bits) mod n, bits = 8 · bytes of n.
            let bits = 8 * trimmed.len() as u32;
            let mut expected = 1u128;
            for _ in 0..2 * bits {
                expected = (expected * 2) % u128::from(n);
            }
            let got = montgomery_r2(trimmed)
                .iter()
                .fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
            assert_eq!(got, expected, "R for {n:#x}");
            let m = montgomery_m(n as u32);
            assert_eq!((n as u32).wrapping_mul(m), u32::MAX, "M' for {n:#x}");
        }
    }

    #[test]
    fn rsa_round_trip_lays_the_block_out_as_espsecure_does() {
        let key = rsa_key(3072);
        let public = rsa_spki(&key);
        let signed = sign(&image(), &key, SECTOR_LEN).unwrap();
        assert_eq!(
            signed.len(),
            12_288 + SECTOR_LEN,
            "10 000 bytes pad to 3 sectors"
        );
        assert!(signed[10_000..12_288].iter().all(|&b| b == 0xFF));
        let block = &signed[12_288..12_288 + BLOCK_LEN];
        assert_eq!(&block[..4], &[0xE7, 0x02, 0, 0]);
        assert_eq!(block[DIGEST], sha256(&signed[..12_288]));
        let numbers =
            rsa_numbers(RsaKeyPair::from_pkcs8(&key).unwrap().public_key().as_ref()).unwrap();
        let n_le: Vec<u8> = numbers.n.iter().rev().copied().collect();
        assert_eq!(&block[36..420], n_le.as_slice());
        assert_eq!(&block[420..424], &65537u32.to_le_bytes());
        let m = u32::from_le_bytes(block[808..812].try_into().unwrap());
        assert_eq!(
            u32::from_le_bytes(block[36..40].try_into().unwrap()).wrapping_mul(m),
            u32::MAX
        );
        assert_eq!(
            u32::from_le_bytes(block[1196..1200].try_into().unwrap()),
            crc32(&block[..1196])
        );
        assert!(block[1200..].iter().all(|&b| b == 0));
        assert!(signed[12_288 + BLOCK_LEN..].iter().all(|&b| b == 0xFF));

        let verified = verify(&signed, &public).unwrap();
        assert_eq!(
            verified,
            Verified {
                image_len: 12_288,
                block: 0,
                scheme: Scheme::Rsa3072Pss,
                key_digest: sha256(&block[36..812]),
            }
        );
        assert_eq!(key_digest(&public).unwrap(), verified.key_digest);
        assert_eq!(
            to_be_signed(&image(), SECTOR_LEN).unwrap(),
            signed[..12_288]
        );
    }

    #[test]
    fn ecdsa_round_trip() {
        let key = ecdsa_key();
        let public = ecdsa_spki(&key);
        let signed = sign(&image(), &key, SECTOR_LEN).unwrap();
        let block = &signed[12_288..12_288 + BLOCK_LEN];
        assert_eq!(&block[..4], &[0xE7, 0x03, 0x00, 0x00]);
        assert_eq!(block[36], 2, "curve id P-256");
        assert!(block[165..1196].iter().all(|&b| b == 0));
        let point = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec();
        let x_le: Vec<u8> = point[1..33].iter().rev().copied().collect();
        assert_eq!(&block[37..69], x_le.as_slice());
        let verified = verify(&signed, &public).unwrap();
        assert_eq!(verified.scheme, Scheme::EcdsaP256);
        assert_eq!(verified.key_digest, sha256(&block[36..101]));
        assert_eq!(key_digest(&public).unwrap(), verified.key_digest);
    }

    #[test]
    fn padding_is_a_parameter_in_whole_sectors() {
        let key = ecdsa_key();
        let signed = sign(&image(), &key, 65_536).unwrap();
        assert_eq!(signed.len(), 65_536 + SECTOR_LEN);
        assert_eq!(
            verify(&signed, &ecdsa_spki(&key)).unwrap().image_len,
            65_536
        );
        let aligned = vec![0xE9; 8192];
        assert_eq!(
            sign(&aligned, &key, SECTOR_LEN).unwrap().len(),
            8192 + SECTOR_LEN
        );
        for bad in [0, 1000, 4097] {
            assert!(matches!(
                sign(&image(), &key, bad),
                Err(FormatError::Malformed(_))
            ));
        }
        assert!(matches!(
            sign(&[], &key, SECTOR_LEN),
            Err(FormatError::Malformed(_))
        ));
    }

    #[test]
    fn attach_takes_raw_der_and_fixed_signatures_and_refuses_bad_ones() {
        let rng = SystemRandom::new();
        let padded = to_be_signed(&image(), SECTOR_LEN).unwrap();

        let rsa = rsa_key(3072);
        let rsa_public = rsa_spki(&rsa);
        let signature = sign_rsa(&RsaKeyPair::from_pkcs8(&rsa).unwrap(), &padded).unwrap();
        let signed = attach(&image(), &signature, &rsa_public, SECTOR_LEN).unwrap();
        assert_eq!(
            verify(&signed, &rsa_public).unwrap().scheme,
            Scheme::Rsa3072Pss
        );
        let mut bad = signature.clone();
        bad[0] ^= 1;
        assert_eq!(
            attach(&image(), &bad, &rsa_public, SECTOR_LEN),
            Err(FormatError::BadSignature)
        );

        let ec = ecdsa_key();
        let ec_public = ecdsa_spki(&ec);
        let fixed = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &ec)
            .unwrap()
            .sign(&rng, &padded)
            .unwrap();
        let signed = attach(&image(), fixed.as_ref(), &ec_public, SECTOR_LEN).unwrap();
        assert_eq!(
            verify(&signed, &ec_public).unwrap().scheme,
            Scheme::EcdsaP256
        );
        let der =
            EcdsaKeyPair::from_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING, &ec)
                .unwrap()
                .sign(&rng, &padded)
                .unwrap();
        let signed = attach(&image(), der.as_ref(), &ec_public, SECTOR_LEN).unwrap();
        assert_eq!(
            verify(&signed, &ec_public).unwrap().scheme,
            Scheme::EcdsaP256
        );
        // The signature of another image, and another key's signature.
        assert_eq!(
            attach(&image()[1..], der.as_ref(), &ec_public, SECTOR_LEN),
            Err(FormatError::BadSignature)
        );
        assert_eq!(
            attach(
                &image(),
                der.as_ref(),
                &ecdsa_spki(&ecdsa_key()),
                SECTOR_LEN
            ),
            Err(FormatError::BadSignature)
        );
        assert!(matches!(
            attach(&image(), der.as_ref(), b"garbage", SECTOR_LEN),
            Err(FormatError::BadKey(_))
        ));
        assert!(matches!(
            attach(&image(), &signature, &rsa_spki(&rsa_key(2048)), SECTOR_LEN),
            Err(FormatError::BadKey(_))
        ));
        assert!(matches!(
            sign(&image(), &rsa_key(2048), SECTOR_LEN),
            Err(FormatError::BadKey(_))
        ));
    }

    #[test]
    fn verify_refuses_tampering_wrong_keys_and_truncation() {
        for key in [rsa_key(3072), ecdsa_key()] {
            let public = if key.len() > 200 {
                rsa_spki(&key)
            } else {
                ecdsa_spki(&key)
            };
            let signed = sign(&image(), &key, SECTOR_LEN).unwrap();
            let sector = signed.len() - SECTOR_LEN;

            let mut bad = signed.clone();
            bad[500] ^= 1;
            assert_eq!(verify(&bad, &public), Err(FormatError::ImageMismatch));
            let mut bad = signed.clone();
            bad[sector - 1] ^= 1;
            assert_eq!(
                verify(&bad, &public),
                Err(FormatError::ImageMismatch),
                "the padding counts"
            );

            // A flipped signature byte breaks the CRC; with the CRC fixed, the signature.
            let signature_at = sector + if key.len() > 200 { 900 } else { 120 };
            let mut bad = signed.clone();
            bad[signature_at] ^= 1;
            assert!(matches!(
                verify(&bad, &public),
                Err(FormatError::Malformed(_))
            ));
            reseal(&mut bad, 0);
            assert_eq!(verify(&bad, &public), Err(FormatError::BadSignature));

            let mut bad = signed.clone();
            bad[sector] = 0xE6;
            assert!(matches!(
                verify(&bad, &public),
                Err(FormatError::Malformed(_))
            ));

            let other = if key.len() > 200 {
                rsa_spki(&rsa_key(3072))
            } else {
                ecdsa_spki(&ecdsa_key())
            };
            assert!(matches!(
                verify(&signed, &other),
                Err(FormatError::WrongKey(_))
            ));
            for cut in [0, 4096, 8192, signed.len() - 1, signed.len() - 4096] {
                assert!(verify(&signed[..cut], &public).is_err(), "{cut}");
            }
            assert!(verify(&signed[1..], &public).is_err());
        }
    }

    #[test]
    fn verify_refuses_rsa_constants_that_do_not_fit_the_modulus() {
        let key = rsa_key(3072);
        let public = rsa_spki(&key);
        let signed = sign(&image(), &key, SECTOR_LEN).unwrap();
        let sector = signed.len() - SECTOR_LEN;
        for at in [430, 809] {
            let mut bad = signed.clone();
            bad[sector + at] ^= 1;
            reseal(&mut bad, 0);
            // The key bytes changed, so the eFuse digest no longer matches either: as the
            // device, the key is untrusted. Trusting the changed digest reaches the R/M' check.
            assert!(matches!(
                verify(&bad, &public),
                Err(FormatError::WrongKey(_))
            ));
            let digest = sha256(&bad[sector + 36..sector + 812]);
            assert!(matches!(
                verify_with_key_digests(&bad, &[digest]),
                Err(FormatError::Malformed(_))
            ));
        }
    }

    #[test]
    fn a_sector_with_several_blocks_verifies_with_any_trusted_key() {
        let (rsa, ec) = (rsa_key(3072), ecdsa_key());
        let a = sign(&image(), &rsa, SECTOR_LEN).unwrap();
        let b = sign(&image(), &ec, SECTOR_LEN).unwrap();
        let sector = a.len() - SECTOR_LEN;
        let mut both = a.clone();
        both[sector + BLOCK_LEN..sector + 2 * BLOCK_LEN]
            .copy_from_slice(&b[sector..sector + BLOCK_LEN]);
        assert_eq!(verify(&both, &rsa_spki(&rsa)).unwrap().block, 0);
        assert_eq!(verify(&both, &ecdsa_spki(&ec)).unwrap().block, 1);
        let trusted = [key_digest(&ecdsa_spki(&ec)).unwrap(), [0; 32]];
        assert_eq!(
            verify_with_key_digests(&both, &trusted).unwrap().scheme,
            Scheme::EcdsaP256
        );
        assert!(matches!(
            verify_with_key_digests(&both, &[[0; 32]]),
            Err(FormatError::WrongKey(_))
        ));
        // A block for another image ends the list: the blocks before it still count.
        let c = sign(&image()[..9000], &ec, SECTOR_LEN).unwrap();
        both[sector + BLOCK_LEN..sector + 2 * BLOCK_LEN]
            .copy_from_slice(&c[sector..sector + BLOCK_LEN]);
        assert_eq!(verify(&both, &rsa_spki(&rsa)).unwrap().block, 0);
        assert!(matches!(
            verify(&both, &ecdsa_spki(&ec)),
            Err(FormatError::WrongKey(_))
        ));
    }

    #[test]
    fn verify_never_panics_on_garbage() {
        let key = ecdsa_key();
        let public = ecdsa_spki(&key);
        let trusted = [key_digest(&public).unwrap()];
        let signed = sign(&image()[..100], &key, SECTOR_LEN).unwrap();
        let sector = signed.len() - SECTOR_LEN;
        for input in scramble(&signed) {
            let result = verify_with_key_digests(&input, &trusted);
            // Changes the device ignores: the 16 zero bytes after a CRC and the 0xFF rest.
            let ignored = input.len() == signed.len()
                && input
                    .iter()
                    .zip(&signed)
                    .enumerate()
                    .all(|(i, (a, b))| a == b || i >= sector + CRC_AT + 4);
            assert_eq!(result.is_ok(), ignored);
        }
        let mut rsa_block = signed.clone();
        rsa_block[sector + 1] = VERSION_RSA;
        reseal(&mut rsa_block, 0);
        let digest = sha256(&rsa_block[sector + 36..sector + 812]);
        assert!(verify_with_key_digests(&rsa_block, &[digest]).is_err());
    }
}
