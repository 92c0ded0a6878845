//! Keys as operators and external signers hand them over: SubjectPublicKeyInfo and PKCS#8 /
//! PKCS#1 / SEC 1 DER, PEM, and the per-format key readers. A parsed public key writes back to
//! DER and PEM that parse to the same key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_core::formats::{esp_idf_sbv2, minisign};
use otter_core::iotawatt;
use otter_core::signing::keys::{PrivateKey, PublicKey, pem_decode};

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = PublicKey::from_spki(data) {
        assert_eq!(
            PublicKey::from_spki(&key.to_spki()).ok().as_ref(),
            Some(&key)
        );
        assert_eq!(PublicKey::parse(&key.to_pem()).ok().as_ref(), Some(&key));
    }
    if let Ok(key) = PrivateKey::from_pkcs8(data) {
        let _ = key.public_key();
    }
    let _ = minisign::PublicKey::from_spki(data);
    let _ = minisign::PublicKey::from_private_key(data);
    let _ = esp_idf_sbv2::key_digest(data);
    let _ = iotawatt::SigningKey::from_pkcs8(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = PublicKey::parse(text);
        let _ = PrivateKey::from_pem(text);
        let _ = pem_decode("PUBLIC KEY", text);
    }
});
