//! IotaWatt update blobs (unpacked as the device walks them, then checked against the public
//! key in the input's second field) and public keys as text (hex or the C array).
//! An unpacked blob packs back to the same release and files.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_core::iotawatt;
use otter_fuzz::fields;

fuzz_target!(|data: &[u8]| {
    let [blob, key] = fields::<2>(data);
    if let Ok(unpacked) = iotawatt::unpack(blob) {
        assert!(unpacked.files.iter().all(|f| f.data.len() < blob.len()));
        // Records otter would write (names it accepts, a firmware file among them) pack back
        // to a blob with the same release and files. Not the same bytes: the device ignores
        // what follows a name's NUL and the padding, and so does `unpack`.
        if let Ok(body) = iotawatt::body(&unpacked.version, &unpacked.files) {
            let signed = [body.as_slice(), unpacked.signature.as_slice()].concat();
            let again = iotawatt::unpack(&signed).expect("a packed blob unpacks");
            assert_eq!(
                (again.version, again.files),
                (unpacked.version, unpacked.files)
            );
        }
    }
    if let Ok(text) = std::str::from_utf8(key)
        && let Some(public_key) = iotawatt::parse_public_key(text)
    {
        assert_eq!(
            iotawatt::parse_public_key(&iotawatt::c_array(&public_key)),
            Some(public_key)
        );
        let _ = iotawatt::verify(blob, &public_key);
    }
});
