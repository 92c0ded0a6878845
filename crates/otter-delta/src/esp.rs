//! ESP app images (the format `esptool elf2image` writes and the ESP-IDF bootloader loads), as
//! far as delta updates need them: the validation hash that names a base image.
//!
//! Layout (esptool `bin_image.py`, ESP32 family): an 8-byte common header (magic `0xE9`,
//! segment count, flash mode, flash size/frequency, entry point), a 16-byte extended header whose
//! last byte says whether a SHA-256 is appended, then the segments (8-byte address/length header
//! and the data each), zero padding up to the checksum byte (the last byte of a 16-byte block),
//! and, when appended, the SHA-256 of everything before it: the "Validation hash" that
//! `esptool image_info` prints and the device computes for its running partition.

use sha2::{Digest, Sha256};

use crate::DeltaError;

const MAGIC: u8 = 0xE9;
const COMMON_HEADER_LEN: usize = 8;
const EXTENDED_HEADER_LEN: usize = 16;
/// esptool refuses images with more segments (the ROM loader's limit).
const MAX_SEGMENTS: u8 = 16;

fn not_esp(why: impl Into<String>) -> DeltaError {
    DeltaError::NotEspImage(why.into())
}

/// The base image's validation hash as `esptool image_info` prints it (the SHA-256 appended to an
/// ESP app image); an error for a file that is not an ESP app image, has no appended hash, or
/// whose appended hash does not match its contents.
pub fn esp_validation_hash(image: &[u8]) -> Result<[u8; 32], DeltaError> {
    if image.len() < COMMON_HEADER_LEN + EXTENDED_HEADER_LEN || image[0] != MAGIC {
        return Err(not_esp("no ESP image header (magic byte 0xE9)"));
    }
    let segments = image[1];
    if segments > MAX_SEGMENTS {
        return Err(not_esp(format!(
            "{segments} segments (at most {MAX_SEGMENTS})"
        )));
    }
    match image[COMMON_HEADER_LEN + EXTENDED_HEADER_LEN - 1] {
        1 => {}
        0 => return Err(not_esp("no validation hash appended (hash_appended = 0)")),
        other => return Err(not_esp(format!("invalid hash_appended byte {other:#04x}"))),
    }
    let mut pos = COMMON_HEADER_LEN + EXTENDED_HEADER_LEN;
    for i in 0..segments {
        let header = image
            .get(pos..pos + 8)
            .ok_or_else(|| not_esp(format!("truncated in segment {i}'s header")))?;
        let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) as usize;
        pos = pos
            .checked_add(8 + len)
            .filter(|&end| end <= image.len())
            .ok_or_else(|| not_esp(format!("truncated in segment {i}")))?;
    }
    // The checksum byte ends a 16-byte block; the hash follows it.
    let hashed_len = (pos / 16 + 1) * 16;
    let stored: [u8; 32] = image
        .get(hashed_len..hashed_len + 32)
        .and_then(|h| h.try_into().ok())
        .ok_or_else(|| not_esp("truncated before the validation hash"))?;
    let computed: [u8; 32] = Sha256::digest(&image[..hashed_len]).into();
    if stored != computed {
        return Err(not_esp(
            "the appended validation hash does not match the image",
        ));
    }
    Ok(stored)
}

/// `esp_delta_ota`'s patch header (idf-extra-components `esp_delta_ota`, its patch generator
/// `esp_delta_ota_patch_gen.py`): the magic, the base's validation hash, reserved zeros.
const DELTA_OTA_MAGIC: u32 = 0xfccd_de10;
const DELTA_OTA_HEADER_LEN: usize = 64;

/// An esp-delta-ota patch: the 64-byte header naming `base`, then a detools patch.
#[cfg(feature = "create")]
pub(crate) fn create_delta_ota(base: &[u8], target: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let base_hash = esp_validation_hash(base)?;
    esp_validation_hash(target)?;
    let mut patch = Vec::with_capacity(DELTA_OTA_HEADER_LEN);
    patch.extend_from_slice(&DELTA_OTA_MAGIC.to_le_bytes());
    patch.extend_from_slice(&base_hash);
    patch.resize(DELTA_OTA_HEADER_LEN, 0);
    patch.extend_from_slice(&crate::detools::create(base, target)?);
    Ok(patch)
}

/// Applies an esp-delta-ota patch to the base its header names (as the device checks against
/// its running partition's hash before it starts).
pub(crate) fn apply_delta_ota(
    base: &[u8],
    patch: &[u8],
    max_len: u64,
) -> Result<Vec<u8>, DeltaError> {
    if patch.len() < DELTA_OTA_HEADER_LEN || patch[..4] != DELTA_OTA_MAGIC.to_le_bytes() {
        return Err(DeltaError::Corrupt(
            "no esp_delta_ota header (magic 0xfccdde10)".into(),
        ));
    }
    if patch[4..36] != esp_validation_hash(base)? {
        return Err(DeltaError::WrongBase);
    }
    crate::detools::apply(base, &patch[DELTA_OTA_HEADER_LEN..], max_len)
}
