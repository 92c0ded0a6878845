//! ESP8266 Arduino signed images (image, RSA signature, 4-byte length trailer), checked
//! against the public key (SubjectPublicKeyInfo or PKCS#1 DER) in the input's first field.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_core::formats::esp8266_rsa;
use otter_fuzz::fields;

fuzz_target!(|data: &[u8]| {
    let [key, signed] = fields::<2>(data);
    if let Ok(verified) = esp8266_rsa::verify(signed, key) {
        assert!(verified.image_len < signed.len());
    }
});
