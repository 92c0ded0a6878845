//! Delta patches as a device receives them (`otter-delta`, `apply`): three fields, the format's
//! name, the base image and the patch. Applying never produces more than the allowed length
//! however long the patch says its target is. The seeds are valid patches for their base, so
//! mutations of the patch reach the bzip2, zstd, detools and heatshrink readers; an
//! esp-delta-ota seed's base is an ESP app image whose hash its header names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_delta::{Format, apply};
use otter_fuzz::fields;

/// Small enough that a run never spends its time producing output.
const MAX_LEN: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let [name, base, patch] = fields::<3>(data);
    let Ok(format) = std::str::from_utf8(name).unwrap_or("").parse::<Format>() else {
        return;
    };
    if let Ok(target) = apply(format, base, patch, MAX_LEN) {
        assert!(target.len() as u64 <= MAX_LEN);
    }
});
