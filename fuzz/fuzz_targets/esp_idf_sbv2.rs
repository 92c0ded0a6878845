//! ESP-IDF Secure Boot v2 signature sectors. The input is the signature sector (up to three
//! 1216-byte blocks) after a fixed one-sector image. Left as it is, a block almost never gets
//! past its CRC and image digest, so the blocks are also checked a second time with both
//! written in, and with their own key digests trusted: the fuzzer then reaches the RSA
//! constants and signature checks.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_core::formats::esp_idf_sbv2::{
    BLOCK_LEN, MAX_BLOCKS, SECTOR_LEN, verify_with_key_digests,
};
use sha2::{Digest, Sha256};

const CRC_AT: usize = 1196;

/// zlib's CRC-32, what the bootloader checks each block's first 1196 bytes with.
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

fuzz_target!(|data: &[u8]| {
    let mut signed = vec![0xE9; SECTOR_LEN];
    let mut sector = data.to_vec();
    sector.resize(SECTOR_LEN, 0xFF);
    signed.extend_from_slice(&sector);
    let _ = verify_with_key_digests(&signed, &[]);

    let image_digest = Sha256::digest(&signed[..SECTOR_LEN]);
    let mut trusted = Vec::new();
    for block in signed[SECTOR_LEN..]
        .chunks_exact_mut(BLOCK_LEN)
        .take(MAX_BLOCKS)
    {
        block[4..36].copy_from_slice(&image_digest);
        let crc = crc32(&block[..CRC_AT]);
        block[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        // The key bytes the eFuse digest covers: RSA (version 2) 36..812, ECDSA 36..101.
        let key = if block[1] == 0x02 {
            &block[36..812]
        } else {
            &block[36..101]
        };
        trusted.push(<[u8; 32]>::from(Sha256::digest(key)));
    }
    if let Ok(verified) = verify_with_key_digests(&signed, &trusted) {
        assert_eq!(verified.image_len, SECTOR_LEN);
        assert!(trusted.contains(&verified.key_digest));
    }
});
