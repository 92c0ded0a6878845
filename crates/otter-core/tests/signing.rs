//! The signed-release design end to end at the library level: a root chain with rotation, a
//! release manifest signed offline, a check response signed online, the artifact stream; and the
//! attack suite, one test per attack, each refused by the device-side checks.

use std::collections::BTreeMap;

use aws_lc_rs::digest::{SHA256, digest};
use otter_core::signing::SigningError;
use otter_core::signing::device::{
    ArtifactCheck, CheckRequest, MAX_CLOCK_SKEW, MAX_TIME_STEP, TrustState,
};
use otter_core::signing::documents::{
    ArtifactRef, CheckResponse, MANIFEST_TYPE, RESPONSE_TYPE, ROOT_TYPE, ReleaseManifest, Roles,
    Root,
};
use otter_core::signing::dsse::{Envelope, Role};
use otter_core::signing::keys::{Algorithm, PrivateKey};

const T0: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn time(unix: i64) -> String {
    otter_core::model::format_rfc3339(unix)
}

fn key(alg: Algorithm) -> PrivateKey {
    PrivateKey::generate(alg).unwrap().0
}

/// The keys of one root version.
struct Keys {
    root: Vec<PrivateKey>,
    release: Vec<PrivateKey>,
    online: PrivateKey,
}

impl Keys {
    fn new() -> Self {
        Keys {
            root: vec![key(Algorithm::Ed25519), key(Algorithm::P256)],
            release: vec![key(Algorithm::Ed25519)],
            online: key(Algorithm::Ed25519),
        }
    }
}

fn role(keys: &[&PrivateKey], threshold: u32) -> Role {
    Role {
        keyids: keys.iter().map(|k| k.public_key().key_id()).collect(),
        threshold,
    }
}

fn root(version: u32, keys: &Keys, issued: i64, expires: i64, root_threshold: u32) -> Root {
    let all: Vec<&PrivateKey> = keys
        .root
        .iter()
        .chain(&keys.release)
        .chain([&keys.online])
        .collect();
    Root {
        product: "door".into(),
        version,
        issued: time(issued),
        expires: time(expires),
        keys: all
            .iter()
            .map(|k| (k.public_key().key_id(), k.public_key()))
            .collect::<BTreeMap<_, _>>(),
        roles: Roles {
            root: role(&keys.root.iter().collect::<Vec<_>>(), root_threshold),
            release: role(&keys.release.iter().collect::<Vec<_>>(), 1),
            online: role(&[&keys.online], 1),
        },
    }
}

fn seal(payload_type: &str, value: &impl serde::Serialize, signers: &[&PrivateKey]) -> Envelope {
    let mut envelope = Envelope::new(payload_type, &serde_json::to_vec(value).unwrap());
    for k in signers {
        envelope.sign(k).unwrap();
    }
    envelope
}

fn image() -> Vec<u8> {
    (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect()
}

fn manifest(version: &str, counter: u32, bytes: &[u8]) -> ReleaseManifest {
    ReleaseManifest {
        product: "door".into(),
        version: version.into(),
        channel: "stable".into(),
        channels: Vec::new(),
        hw_ids: vec!["esp32-c3".into()],
        security_counter: counter,
        artifact: ArtifactRef {
            length: bytes.len() as u64,
            sha256: hex::encode(digest(&SHA256, bytes)),
            format: "raw".into(),
        },
        issued: time(T0),
        expires: time(T0 + 180 * DAY),
        root_version: 1,
    }
}

fn response(nonce: &str, manifest: &Envelope, version: &str, expires: i64) -> CheckResponse {
    CheckResponse {
        product: "door".into(),
        device: "d1".into(),
        nonce: nonce.into(),
        current: Some("1.0.0".into()),
        channel: "stable".into(),
        server_time: time(T0 + 60),
        expires: time(expires),
        root_version: 1,
        action: "install".into(),
        version: Some(version.into()),
        manifest_sha256: Some(hex::encode(digest(
            &SHA256,
            &manifest.payload_bytes().unwrap(),
        ))),
        download_url: Some("/dl/door/2.0.0/fw.bin".into()),
        downgrade: None,
    }
}

/// The check-in device `d1`, running 1.0.0 on `stable`, made with `nonce`.
fn asked(nonce: &str) -> CheckRequest<'_> {
    CheckRequest {
        nonce,
        device: "d1",
        current: Some("1.0.0"),
        channel: "stable",
    }
}

/// A device with root 1 pinned and counter 5, and a genuine release 2.0.0 (counter 5).
struct World {
    keys: Keys,
    device: TrustState,
    manifest: Envelope,
}

fn world() -> World {
    let keys = Keys::new();
    let r1 = root(1, &keys, T0, T0 + 365 * DAY, 2);
    let opened =
        Root::open_first(&seal(ROOT_TYPE, &r1, &keys.root.iter().collect::<Vec<_>>())).unwrap();
    let manifest = seal(
        MANIFEST_TYPE,
        &manifest("2.0.0", 5, &image()),
        &[&keys.release[0]],
    );
    World {
        device: TrustState::new(opened, 5),
        keys,
        manifest,
    }
}

#[test]
fn a_genuine_update_passes_every_check() {
    let mut w = world();
    let answer = seal(
        RESPONSE_TYPE,
        &response("n-1", &w.manifest, "2.0.0", T0 + DAY),
        &[&w.keys.online],
    );
    let response = w.device.check_response(&answer, &asked("n-1"), T0).unwrap();
    assert_eq!(
        w.device.trusted_time,
        T0 + 60,
        "signed server time is trusted"
    );
    let manifest = w
        .device
        .check_manifest(&w.manifest, &response, "esp32-c3")
        .unwrap();
    let mut stream = ArtifactCheck::new(&manifest);
    for chunk in image().chunks(999) {
        stream.update(chunk).unwrap();
    }
    stream.finish().unwrap();
    w.device.installed(&manifest);
    assert_eq!(w.device.security_counter, 5);
}

#[test]
fn rotation_needs_the_old_and_the_new_root_keys() {
    let mut w = world();
    let next_keys = Keys::new();
    let r2 = root(2, &next_keys, T0 + DAY, T0 + 400 * DAY, 1);
    let old: Vec<&PrivateKey> = w.keys.root.iter().collect();
    // New keys alone: refused; old keys alone: refused; both: accepted.
    let only_new = seal(ROOT_TYPE, &r2, &[&next_keys.root[0]]);
    assert!(matches!(
        w.device.update_root(&only_new),
        Err(SigningError::Threshold { .. })
    ));
    let only_old = seal(ROOT_TYPE, &r2, &old);
    assert!(matches!(
        w.device.update_root(&only_old),
        Err(SigningError::Threshold { .. })
    ));
    let both = seal(ROOT_TYPE, &r2, &[old[0], old[1], &next_keys.root[0]]);
    w.device.update_root(&both).unwrap();
    assert_eq!(w.device.root.version, 2);
    // The old release key is no longer trusted.
    let answer = seal(
        RESPONSE_TYPE,
        &response("n", &w.manifest, "2.0.0", T0 + DAY),
        &[&next_keys.online],
    );
    let response = w.device.check_response(&answer, &asked("n"), T0).unwrap();
    assert!(matches!(
        w.device.check_manifest(&w.manifest, &response, "esp32-c3"),
        Err(SigningError::Threshold {
            role: "release",
            ..
        })
    ));
}

#[test]
fn attack_arbitrary_firmware_signed_by_an_unknown_key() {
    let mut w = world();
    let forged = seal(
        MANIFEST_TYPE,
        &manifest("6.6.6", 9, b"evil"),
        &[&key(Algorithm::Ed25519)],
    );
    let answer = seal(
        RESPONSE_TYPE,
        &response("n", &forged, "6.6.6", T0 + DAY),
        &[&w.keys.online],
    );
    let response = w.device.check_response(&answer, &asked("n"), T0).unwrap();
    assert!(matches!(
        w.device.check_manifest(&forged, &response, "esp32-c3"),
        Err(SigningError::Threshold {
            role: "release",
            valid: 0,
            ..
        })
    ));
    // Nor can the server's own online key sign a release.
    let by_server = seal(
        MANIFEST_TYPE,
        &manifest("6.6.6", 9, b"evil"),
        &[&w.keys.online],
    );
    assert!(matches!(
        w.device.check_manifest(&by_server, &response, "esp32-c3"),
        Err(SigningError::Threshold { .. })
    ));
}

#[test]
fn attack_rollback_to_a_lower_security_counter() {
    let mut w = world();
    let old = seal(
        MANIFEST_TYPE,
        &manifest("1.9.0", 4, &image()),
        &[&w.keys.release[0]],
    );
    let answer = seal(
        RESPONSE_TYPE,
        &response("n", &old, "1.9.0", T0 + DAY),
        &[&w.keys.online],
    );
    let response = w.device.check_response(&answer, &asked("n"), T0).unwrap();
    assert_eq!(
        w.device.check_manifest(&old, &response, "esp32-c3"),
        Err(SigningError::Rollback { have: 5, got: 4 })
    );
}

#[test]
fn attack_freeze_with_an_expired_response_or_a_replayed_nonce() {
    let mut w = world();
    let stale = seal(
        RESPONSE_TYPE,
        &response("n-1", &w.manifest, "2.0.0", T0 + 30),
        &[&w.keys.online],
    );
    assert!(matches!(
        w.device.check_response(&stale, &asked("n-1"), T0 + 31),
        Err(SigningError::Expired { .. })
    ));
    // A device without a clock: the trusted time learnt from a later response also expires it.
    let fresh = seal(
        RESPONSE_TYPE,
        &response("n-2", &w.manifest, "2.0.0", T0 + DAY),
        &[&w.keys.online],
    );
    w.device.check_response(&fresh, &asked("n-2"), 0).unwrap();
    assert!(matches!(
        w.device.check_response(&stale, &asked("n-1"), 0),
        Err(SigningError::Nonce | SigningError::Expired { .. })
    ));
    // Replaying yesterday's genuine answer to today's request.
    assert_eq!(
        w.device
            .check_response(&fresh, &asked("n-3"), 0)
            .unwrap_err(),
        SigningError::Nonce
    );
}

#[test]
fn attack_mix_and_match_a_manifest_the_response_did_not_name() {
    let mut w = world();
    let other = seal(
        MANIFEST_TYPE,
        &manifest("2.0.1", 5, b"other"),
        &[&w.keys.release[0]],
    );
    let answer = seal(
        RESPONSE_TYPE,
        &response("n", &w.manifest, "2.0.0", T0 + DAY),
        &[&w.keys.online],
    );
    let response = w.device.check_response(&answer, &asked("n"), T0).unwrap();
    assert!(matches!(
        w.device.check_manifest(&other, &response, "esp32-c3"),
        Err(SigningError::Mismatch(_))
    ));
    // The right manifest with the wrong bytes: the hash catches it.
    let manifest = w
        .device
        .check_manifest(&w.manifest, &response, "esp32-c3")
        .unwrap();
    let mut stream = ArtifactCheck::new(&manifest);
    let mut bytes = image();
    bytes[17] ^= 1;
    stream.update(&bytes).unwrap();
    assert!(matches!(stream.finish(), Err(SigningError::Mismatch(_))));
    // Other hardware.
    assert!(
        w.device
            .check_manifest(&w.manifest, &response, "esp8266")
            .is_err()
    );
}

#[test]
fn attack_endless_data_past_the_manifest_length() {
    let w = world();
    let (manifest, _) = ReleaseManifest::open(&w.manifest, &w.device.root, T0).unwrap();
    let mut stream = ArtifactCheck::new(&manifest);
    stream.update(&image()).unwrap();
    assert_eq!(stream.update(&[0]), Err(SigningError::TooLong(10_000)));
}

#[test]
fn attack_skipping_a_root_version() {
    let mut w = world();
    let k3 = Keys::new();
    let r3 = root(3, &k3, T0 + DAY, T0 + 400 * DAY, 1);
    let old: Vec<&PrivateKey> = w.keys.root.iter().collect();
    let skip = seal(ROOT_TYPE, &r3, &[old[0], old[1], &k3.root[0]]);
    assert_eq!(
        w.device.update_root(&skip).unwrap_err(),
        SigningError::RootVersion { have: 1, got: 3 }
    );
}

#[test]
fn attack_one_key_counted_twice_toward_a_threshold() {
    let keys = Keys::new();
    let r1 = root(1, &keys, T0, T0 + 365 * DAY, 2);
    let mut twice = seal(ROOT_TYPE, &r1, &[&keys.root[0]]);
    let copy = twice.signatures[0].clone();
    twice.signatures.push(copy);
    assert_eq!(
        Root::open_first(&twice).unwrap_err(),
        SigningError::Threshold {
            role: "root",
            valid: 1,
            threshold: 2
        }
    );
}

#[test]
fn attack_expired_intermediate_root() {
    let mut w = world();
    // Root 2 was signed a day after root 1 expired (e.g. with root 1 keys found later).
    let k2 = Keys::new();
    let r2 = root(2, &k2, T0 + 366 * DAY, T0 + 700 * DAY, 1);
    let old: Vec<&PrivateKey> = w.keys.root.iter().collect();
    let late = seal(ROOT_TYPE, &r2, &[old[0], old[1], &k2.root[0]]);
    assert_eq!(
        w.device.update_root(&late).unwrap_err(),
        SigningError::IssuedAfterExpiry { version: 2 }
    );
    // And a chain that ends on an expired root accepts no response.
    let answer = seal(
        RESPONSE_TYPE,
        &response("n", &w.manifest, "2.0.0", T0 + 400 * DAY),
        &[&w.keys.online],
    );
    assert!(matches!(
        w.device
            .check_response(&answer, &asked("n"), T0 + 366 * DAY),
        Err(SigningError::Expired { what: "root", .. })
    ));
}

#[test]
fn envelopes_of_one_kind_never_pass_for_another() {
    let w = world();
    // A response-typed envelope carrying manifest bytes, signed by the release key.
    let mut disguised = w.manifest.clone();
    disguised.payload_type = RESPONSE_TYPE.into();
    assert!(CheckResponse::open(&disguised, &w.device.root).is_err());
}

#[test]
fn binary_signatures_verify_against_the_image_digest() {
    let k = key(Algorithm::P256);
    let image = image();
    let sig = k.sign(&image).unwrap();
    let sha = digest(&SHA256, &image);
    assert!(k.public_key().verify_sha256(sha.as_ref(), &sig));
    let other = digest(&SHA256, b"other");
    assert!(!k.public_key().verify_sha256(other.as_ref(), &sig));
    // Ed25519 signs messages, not digests: never accepted here.
    let ed = key(Algorithm::Ed25519);
    assert!(
        !ed.public_key()
            .verify_sha256(sha.as_ref(), &ed.sign(&image).unwrap())
    );
}

#[test]
fn attack_a_relay_that_changes_the_question() {
    // A man in the middle without the online key relays the device's nonce with another
    // `current`, `channel` or `device`: the genuine server signs an answer to that question.
    for (what, changed) in [
        (
            "current",
            CheckRequest {
                current: Some("0.1.0"),
                ..asked("n")
            },
        ),
        (
            "current",
            CheckRequest {
                current: None,
                ..asked("n")
            },
        ),
        (
            "channel",
            CheckRequest {
                channel: "beta",
                ..asked("n")
            },
        ),
        (
            "device",
            CheckRequest {
                device: "someone-else",
                ..asked("n")
            },
        ),
    ] {
        let mut w = world();
        let mut answer = response("n", &w.manifest, "2.0.0", T0 + DAY);
        answer.current = changed.current.map(str::to_owned);
        answer.channel = changed.channel.into();
        answer.device = changed.device.into();
        let signed = seal(RESPONSE_TYPE, &answer, &[&w.keys.online]);
        let err = w
            .device
            .check_response(&signed, &asked("n"), T0)
            .unwrap_err();
        assert!(
            matches!(&err, SigningError::Mismatch(m) if m.contains("another request")),
            "{what}: {err}"
        );
    }
}

#[test]
fn a_release_not_signed_for_the_devices_channel_is_refused() {
    let mut w = world();
    let mut beta = manifest("3.0.0-beta.1", 5, &image());
    beta.channel = "beta".into();
    let beta = seal(MANIFEST_TYPE, &beta, &[&w.keys.release[0]]);
    let answer = seal(
        RESPONSE_TYPE,
        &response("n", &beta, "3.0.0-beta.1", T0 + DAY),
        &[&w.keys.online],
    );
    let answered = w.device.check_response(&answer, &asked("n"), T0).unwrap();
    let err = w
        .device
        .check_manifest(&beta, &answered, "esp32-c3")
        .unwrap_err();
    assert!(err.to_string().contains("channel \"stable\""), "{err}");
    // Signed for both channels: fine.
    let mut both = manifest("3.0.0", 5, &image());
    both.channel = "beta".into();
    both.channels = vec!["stable".into()];
    let both = seal(MANIFEST_TYPE, &both, &[&w.keys.release[0]]);
    let answer = seal(
        RESPONSE_TYPE,
        &response("m", &both, "3.0.0", T0 + DAY),
        &[&w.keys.online],
    );
    let answered = w.device.check_response(&answer, &asked("m"), T0).unwrap();
    w.device
        .check_manifest(&both, &answered, "esp32-c3")
        .unwrap();
}

#[test]
fn an_older_release_needs_a_signed_reason() {
    let mut w = world();
    let old = seal(
        MANIFEST_TYPE,
        &manifest("0.9.0", 5, &image()),
        &[&w.keys.release[0]],
    );
    let mut answer = response("n", &old, "0.9.0", T0 + DAY);
    let signed = seal(RESPONSE_TYPE, &answer, &[&w.keys.online]);
    let response = w.device.check_response(&signed, &asked("n"), T0).unwrap();
    let err = w
        .device
        .check_manifest(&old, &response, "esp32-c3")
        .unwrap_err();
    assert!(
        err.to_string().contains("older than the running 1.0.0"),
        "{err}"
    );
    // The server moves devices off a yanked release, and says so.
    answer.nonce = "m".into();
    answer.downgrade = Some("yanked".into());
    let signed = seal(RESPONSE_TYPE, &answer, &[&w.keys.online]);
    let response = w.device.check_response(&signed, &asked("m"), T0).unwrap();
    w.device
        .check_manifest(&old, &response, "esp32-c3")
        .unwrap();
}

#[test]
fn attack_an_answer_under_a_root_the_device_could_not_fetch() {
    let mut w = world();
    let mut answer = response("n", &w.manifest, "2.0.0", T0 + DAY);
    answer.root_version = 2;
    let signed = seal(RESPONSE_TYPE, &answer, &[&w.keys.online]);
    assert_eq!(
        w.device.check_response(&signed, &asked("n"), T0),
        Err(SigningError::RootVersion { have: 1, got: 2 })
    );
}

#[test]
fn attack_the_online_key_moves_trusted_time_forward() {
    // A stolen online key signs a server time half a year ahead, with a long expiry.
    let mut w = world();
    let mut answer = response("n", &w.manifest, "2.0.0", T0 + 200 * DAY);
    answer.server_time = time(T0 + 179 * DAY);
    let signed = seal(RESPONSE_TYPE, &answer, &[&w.keys.online]);
    let mut clockless = w.device.clone();
    // With a clock: never past the clock plus the skew.
    w.device.check_response(&signed, &asked("n"), T0).unwrap();
    assert_eq!(w.device.trusted_time, T0 + MAX_CLOCK_SKEW);
    // Without one: one step past what it trusted (or its root's issue time).
    clockless.check_response(&signed, &asked("n"), 0).unwrap();
    assert_eq!(clockless.trusted_time, T0 + MAX_TIME_STEP);
    // So tomorrow's genuine answer is still accepted.
    let genuine = response("m", &w.manifest, "2.0.0", T0 + 2 * DAY);
    let genuine = seal(RESPONSE_TYPE, &genuine, &[&w.keys.online]);
    w.device
        .check_response(&genuine, &asked("m"), T0 + 60)
        .unwrap();
    clockless.check_response(&genuine, &asked("m"), 0).unwrap();
}
