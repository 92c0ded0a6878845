//! The `x-ESP8266-*` / `x-ESP32-*` headers of the Arduino update clients (`otter-server`), as
//! `name: value` lines; the first line is the `?version=` query value. Digests kept are
//! well-formed hex, a MAC kept is a valid device id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_core::digest::is_hex_digest;
use otter_core::model::validate_device_id;
use otter_fuzz::headers;
use otter_server::protocols::arduino::device_headers;

fuzz_target!(|data: &[u8]| {
    let (first, rest) = data.split_at(data.iter().position(|&b| b == b'\n').unwrap_or(data.len()));
    let query = std::str::from_utf8(first).ok().filter(|q| !q.is_empty());
    let headers = headers(rest);
    if let Ok(device) = device_headers(&headers, query) {
        assert!(device.md5.is_none_or(|d| is_hex_digest(d, 32)));
        assert!(device.sha256.is_none_or(|d| is_hex_digest(d, 64)));
        assert!(
            device
                .mac
                .is_none_or(|m| validate_device_id("mac", m).is_ok())
        );
    }
});
