//! The digests otter computes over every artifact while it streams in.
//!
//! SHA-256 is the content address and what manifests carry; SHA-1 (ota-backend's hash) and MD5
//! (THiNX's `x-MD5`, ESP8266 `Update.setMD5`) exist because device protocols ask for them.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Hashes one byte stream three ways at once and counts its length.
#[derive(Default, Clone)]
pub struct MultiHasher {
    sha256: Sha256,
    sha1: Sha1,
    md5: Md5,
    size: u64,
}

/// The finished digests of one byte stream, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    pub sha1: String,
    pub md5: String,
    pub size: u64,
}

impl MultiHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        self.sha1.update(bytes);
        self.md5.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Bytes hashed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: hex::encode(self.sha256.finalize()),
            sha1: hex::encode(self.sha1.finalize()),
            md5: hex::encode(self.md5.finalize()),
            size: self.size,
        }
    }
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Whether `s` looks like a lowercase-or-uppercase hex digest of `len` hex characters.
pub fn is_hex_digest(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let mut h = MultiHasher::new();
        h.update(b"a");
        h.update(b"bc");
        let d = h.finish();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.size, 3);
        assert_eq!(sha256_hex(b"abc"), d.sha256);
        assert!(is_hex_digest(&d.sha1, 40));
        assert!(!is_hex_digest("xyz", 3));
    }
}
