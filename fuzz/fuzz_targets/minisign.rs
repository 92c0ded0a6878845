//! minisign signature files and public keys (file or base64 line): `file`, `minisig` and
//! `public key` joined by `SEP`. A parsed public key reads back from the file otter writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_core::formats::minisign::{self, PublicKey};
use otter_fuzz::fields;

fuzz_target!(|data: &[u8]| {
    let [file, minisig, key] = fields::<3>(data);
    let (Ok(minisig), Ok(key)) = (std::str::from_utf8(minisig), std::str::from_utf8(key)) else {
        return;
    };
    if let Ok(public) = PublicKey::parse(key) {
        assert_eq!(PublicKey::parse(&public.to_file()).ok(), Some(public));
        assert_eq!(PublicKey::parse(&public.to_base64()).ok(), Some(public));
    }
    if let Ok(verified) = minisign::verify(file, minisig, key) {
        let _ = verified.field("version");
    }
});
