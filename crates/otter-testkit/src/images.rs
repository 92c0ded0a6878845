//! Firmware images for tests: deterministic bytes that differ per seed, and their SHA-256.

use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `len` deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn firmware(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 32) as u8
        })
        .collect()
}

/// An ESP32 app image as `esptool elf2image` lays it out: the 24-byte header (magic `0xE9`, chip
/// ESP32, "hash appended"), each `(load address, data)` segment (data padded to 4 bytes), the
/// XOR checksum in the last byte of a 16-byte block, and the SHA-256 of all that (the
/// "Validation hash" `esptool image_info` prints). `esptool image_info` accepts it.
pub fn esp32_app_image(entry: u32, segments: &[(u32, &[u8])]) -> Vec<u8> {
    let mut image = vec![0xE9, segments.len() as u8, 0x02, 0x20];
    image.extend_from_slice(&entry.to_le_bytes());
    // Extended header: WP pin disabled, drive strengths 0, chip id 0 (ESP32), revisions 0,
    // reserved, hash appended.
    image.extend_from_slice(&[0xEE, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let mut checksum = 0xEFu8;
    for (addr, data) in segments {
        let mut data = data.to_vec();
        data.resize(data.len().div_ceil(4) * 4, 0);
        image.extend_from_slice(&addr.to_le_bytes());
        image.extend_from_slice(&(data.len() as u32).to_le_bytes());
        checksum = data.iter().fold(checksum, |c, b| c ^ b);
        image.extend_from_slice(&data);
    }
    image.resize((image.len() / 16 + 1) * 16 - 1, 0);
    image.push(checksum);
    let hash = Sha256::digest(&image);
    image.extend_from_slice(&hash);
    image
}

/// An ESP32 app image whose one flash-data (DROM) segment holds `payload`.
pub fn esp32_app(payload: &[u8]) -> Vec<u8> {
    const DROM: u32 = 0x3F40_0020;
    const ENTRY: u32 = 0x4008_0000;
    esp32_app_image(ENTRY, &[(DROM, payload)])
}
