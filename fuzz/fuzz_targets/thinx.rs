//! THiNX registration and firmware-request bodies (`otter-server`), wrapped in
//! `registration` or bare.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_server::protocols::thinx::parse_registration;

fuzz_target!(|data: &[u8]| {
    let wrapped = parse_registration(data, true);
    let bare = parse_registration(data, false);
    // Whatever is accepted wrapped is accepted bare as well.
    assert!(wrapped.is_err() || bare.is_ok());
});
