//! DSSE envelopes and the documents in them, as a device walks them: a pinned root, the next
//! root, a check response, a release manifest (four envelopes joined by `SEP`). Also each
//! document parsed bare. Envelopes and documents re-serialise to what they parsed from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otter_core::signing::device::{CheckRequest, TrustState};
use otter_core::signing::documents::{CheckResponse, ReleaseManifest, Root};
use otter_core::signing::dsse::Envelope;
use otter_fuzz::fields;
use serde::{Serialize, de::DeserializeOwned};

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    if let Ok(doc) = serde_json::from_slice::<T>(bytes) {
        let again: T = serde_json::from_slice(&serde_json::to_vec(&doc).expect("serialises"))
            .expect("a serialised document parses again");
        assert_eq!(again, doc);
    }
}

/// The check-in the seed's signed response answers.
const ASKED: CheckRequest<'static> = CheckRequest {
    nonce: "nonce",
    device: "d1",
    current: Some("1.0.0"),
    channel: "stable",
};

fuzz_target!(|data: &[u8]| {
    let [root, next, response, manifest] = fields::<4>(data);
    let envelopes: Vec<Option<Envelope>> = [root, next, response, manifest]
        .into_iter()
        .map(|bytes| Envelope::parse(bytes).ok())
        .collect();
    for envelope in envelopes.iter().flatten() {
        let again = Envelope::parse(envelope.to_json().as_bytes()).expect("to_json parses again");
        assert_eq!(&again, envelope);
        let _ = envelope.to_be_signed();
        if let Ok(payload) = envelope.payload_bytes() {
            round_trip::<Root>(&payload);
            round_trip::<CheckResponse>(&payload);
            round_trip::<ReleaseManifest>(&payload);
            if let Ok(root) = serde_json::from_slice::<Root>(&payload) {
                let _ = root.validate();
                let _ = root.check_fresh(0);
            }
        }
    }
    let Some(Ok(pinned)) = envelopes[0].as_ref().map(Root::open_first) else {
        return;
    };
    let mut state = TrustState::new(pinned, 1);
    if let Some(next) = &envelopes[1] {
        let _ = state.update_root(next);
    }
    let Some(Ok(response)) = envelopes[2]
        .as_ref()
        .map(|e| state.check_response(e, &ASKED, 0))
    else {
        return;
    };
    if let Some(manifest) = &envelopes[3]
        && let Ok(manifest) = state.check_manifest(manifest, &response, "hw")
    {
        state.installed(&manifest);
    }
});
