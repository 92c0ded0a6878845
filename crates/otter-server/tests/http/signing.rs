//! Signed releases over HTTP: a product's root of trust, releases refused unless signed right,
//! a device walking the root chain and verifying a nonce-bound response, the manifest and the
//! bytes with the device-side library; binarySignature in firmware manifests; expiry warnings.

use std::collections::BTreeMap;

use base64::Engine;
use otter_core::model::format_rfc3339;
use otter_core::signing::device::{ArtifactCheck, CheckRequest, TrustState};
use otter_core::signing::documents::{
    ArtifactRef, MANIFEST_TYPE, ROOT_TYPE, ReleaseManifest, Roles, Root,
};
use otter_core::signing::dsse::{Envelope, Role};
use otter_core::signing::keys::{Algorithm, PrivateKey, PublicKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, eventually, expect_error, firmware, json_body, sha256_hex};

const DAY: i64 = 86_400;

pub(crate) fn key(alg: Algorithm) -> PrivateKey {
    PrivateKey::generate(alg).unwrap().0
}

/// The keys a product's owner holds offline, and the server's online key.
pub(crate) struct Owner {
    pub(crate) root: PrivateKey,
    pub(crate) release: PrivateKey,
    /// A P-256 release key, for binary signatures.
    pub(crate) release_p256: PrivateKey,
    pub(crate) online: PublicKey,
}

pub(crate) async fn online_key(srv: &TestServer) -> PublicKey {
    let body = srv.get_json("/api/v1/online-key").await;
    PublicKey::parse(body["pem"].as_str().unwrap()).unwrap()
}

pub(crate) fn root_doc(
    owner: &Owner,
    version: u32,
    root_keys: &[&PrivateKey],
    issued: i64,
    expires: i64,
) -> Root {
    let mut keys = BTreeMap::new();
    let mut ids = |k: &PublicKey| {
        keys.insert(k.key_id(), k.clone());
        k.key_id()
    };
    let root_ids: Vec<String> = root_keys.iter().map(|k| ids(&k.public_key())).collect();
    let release_ids = vec![
        ids(&owner.release.public_key()),
        ids(&owner.release_p256.public_key()),
    ];
    let online_ids = vec![ids(&owner.online)];
    Root {
        product: "door".into(),
        version,
        issued: format_rfc3339(issued),
        expires: format_rfc3339(expires),
        keys,
        roles: Roles {
            root: Role {
                keyids: root_ids,
                threshold: 1,
            },
            release: Role {
                keyids: release_ids,
                threshold: 1,
            },
            online: Role {
                keyids: online_ids,
                threshold: 1,
            },
        },
    }
}

pub(crate) fn seal(
    payload_type: &str,
    value: &impl serde::Serialize,
    signers: &[&PrivateKey],
) -> Envelope {
    let mut envelope = Envelope::new(payload_type, &serde_json::to_vec(value).unwrap());
    for k in signers {
        envelope.sign(k).unwrap();
    }
    envelope
}

pub(crate) fn manifest(
    version: &str,
    counter: u32,
    image: &[u8],
    expires_in: i64,
) -> ReleaseManifest {
    let now = otter_store::now();
    ReleaseManifest {
        product: "door".into(),
        version: version.into(),
        channel: "stable".into(),
        channels: Vec::new(),
        hw_ids: vec!["esp32-c3".into()],
        security_counter: counter,
        artifact: ArtifactRef {
            length: image.len() as u64,
            sha256: sha256_hex(image),
            format: "raw".into(),
        },
        issued: format_rfc3339(now),
        expires: format_rfc3339(now + expires_in),
        root_version: 1,
    }
}

/// A server with product `door` under root 1.
pub(crate) async fn signed_product() -> (TestServer, Owner, Envelope) {
    let srv = TestServer::start().await;
    srv.create_product("door", "semver").await;
    let owner = Owner {
        root: key(Algorithm::Ed25519),
        release: key(Algorithm::Ed25519),
        release_p256: key(Algorithm::P256),
        online: online_key(&srv).await,
    };
    let now = otter_store::now();
    let root1 = seal(
        ROOT_TYPE,
        &root_doc(&owner, 1, &[&owner.root], now, now + 365 * DAY),
        &[&owner.root],
    );
    let resp = srv
        .admin(Method::POST, "/api/v1/products/door/roots")
        .json(&root1)
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(resp, StatusCode::CREATED).await["version"], 1);
    (srv, owner, root1)
}

async fn publish_signed(
    srv: &TestServer,
    version: &str,
    image: &[u8],
    signature: Option<&Envelope>,
) -> reqwest::Response {
    let sha = srv.upload(image).await;
    let extra = match signature {
        Some(envelope) => json!({ "signature": envelope }),
        None => json!({}),
    };
    srv.try_publish("door", version, &sha, extra).await
}

/// A device of "door" as it ships: root 1 pinned (fetched here from the public endpoint) and
/// `counter` as the security counter of what it runs.
pub(crate) async fn device_shipped_with_root_1(srv: &TestServer, counter: u32) -> TrustState {
    let text = srv.anon_text("/api/v1/products/door/root/1.json").await;
    let pinned = Root::open_first(&Envelope::parse(text.as_bytes()).unwrap()).unwrap();
    TrustState::new(pinned, counter)
}

/// Publishes `image` as `version` with a manifest signed by the owner's release key, expecting
/// success.
pub(crate) async fn publish_release_signed(
    srv: &TestServer,
    owner: &Owner,
    version: &str,
    counter: u32,
    image: &[u8],
    expires_in: i64,
) {
    let signed = seal(
        MANIFEST_TYPE,
        &manifest(version, counter, image, expires_in),
        &[&owner.release],
    );
    let resp = publish_signed(srv, version, image, Some(&signed)).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn releases_of_a_signed_product_must_be_signed_right() {
    let (srv, owner, _) = signed_product().await;
    let image = firmware(1, 50_000);

    expect_error(
        publish_signed(&srv, "1.0.0", &image, None).await,
        400,
        "signature_required",
    )
    .await;
    let stranger = key(Algorithm::Ed25519);
    let forged = seal(
        MANIFEST_TYPE,
        &manifest("1.0.0", 1, &image, 90 * DAY),
        &[&stranger],
    );
    expect_error(
        publish_signed(&srv, "1.0.0", &image, Some(&forged)).await,
        400,
        "invalid_signature",
    )
    .await;
    for (what, doc) in [
        ("version", manifest("1.0.1", 1, &image, 90 * DAY)),
        ("artifact", manifest("1.0.0", 1, b"other bytes", 90 * DAY)),
    ] {
        let envelope = seal(MANIFEST_TYPE, &doc, &[&owner.release]);
        let resp = publish_signed(&srv, "1.0.0", &image, Some(&envelope)).await;
        let body = expect_error(resp, 400, "signature_mismatch").await;
        assert!(body["message"].as_str().unwrap().contains(what), "{body}");
    }
    let expired = seal(
        MANIFEST_TYPE,
        &manifest("1.0.0", 1, &image, -1),
        &[&owner.release],
    );
    expect_error(
        publish_signed(&srv, "1.0.0", &image, Some(&expired)).await,
        400,
        "invalid_signature",
    )
    .await;

    publish_release_signed(&srv, &owner, "1.0.0", 3, &image, 90 * DAY).await;
    // Anti-rollback: a newer release may not lower the counter.
    let newer = firmware(2, 50_000);
    let lower = seal(
        MANIFEST_TYPE,
        &manifest("1.1.0", 2, &newer, 90 * DAY),
        &[&owner.release],
    );
    expect_error(
        publish_signed(&srv, "1.1.0", &newer, Some(&lower)).await,
        400,
        "rollback",
    )
    .await;

    // A release on stable and lowc, signed for both: the floor is stable's, whatever channel
    // the manifest names first.
    let mut doc = manifest("1.2.0", 0, &newer, 90 * DAY);
    doc.channel = "lowc".into();
    doc.channels = vec!["stable".into()];
    let both = seal(MANIFEST_TYPE, &doc, &[&owner.release]);
    let sha = srv.upload(&newer).await;
    let extra = json!({"signature": both, "channels": ["stable", "lowc"]});
    let body = expect_error(
        srv.try_publish("door", "1.2.0", &sha, extra).await,
        400,
        "rollback",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("lower than 3"),
        "{body}"
    );
    // Published on a channel its manifest does not name: every device there would refuse it.
    doc.security_counter = 3;
    doc.channels = Vec::new();
    let lowc_only = seal(MANIFEST_TYPE, &doc, &[&owner.release]);
    let extra = json!({"signature": lowc_only, "channels": ["stable", "lowc"]});
    let body = expect_error(
        srv.try_publish("door", "1.2.0", &sha, extra).await,
        400,
        "signature_mismatch",
    )
    .await;
    assert!(
        body["message"].as_str().unwrap().contains("\"stable\""),
        "{body}"
    );
}

#[tokio::test]
async fn a_device_verifies_root_response_manifest_and_bytes() {
    let (srv, owner, _) = signed_product().await;
    let image = firmware(3, 80_000);
    publish_release_signed(&srv, &owner, "2.0.0", 4, &image, 90 * DAY).await;

    // The device ships with root 1 (fetched here from the public endpoint).
    let mut device = device_shipped_with_root_1(&srv, 3).await;

    let nonce = "00112233445566778899aabbccddeeff";
    let answer = srv
        .check("door", &format!("current=1.0.0&device=d1&nonce={nonce}"))
        .await;
    let response_env: Envelope = serde_json::from_value(answer["signedResponse"].clone()).unwrap();
    let asked = CheckRequest {
        nonce,
        device: "d1",
        current: Some("1.0.0"),
        channel: "stable",
    };
    let response = device.check_response(&response_env, &asked, 0).unwrap();
    assert_eq!(response.action, "install");
    assert_eq!(response.device, "d1");
    let manifest_env: Envelope = serde_json::from_value(answer["releaseManifest"].clone()).unwrap();
    let verified = device
        .check_manifest(&manifest_env, &response, "esp32-c3")
        .unwrap();
    let bytes = srv
        .client
        .get(response.download_url.clone().unwrap())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let mut stream = ArtifactCheck::new(&verified);
    stream.update(&bytes).unwrap();
    stream.finish().unwrap();

    // The same answer replayed to another check-in is refused.
    assert!(
        device
            .check_response(
                &response_env,
                &CheckRequest {
                    nonce: "ffeeddccbbaa99887766554433221100",
                    ..asked
                },
                0
            )
            .is_err()
    );
    // Up to date: a signed "none".
    let answer = srv
        .check("door", &format!("current=2.0.0&nonce={nonce}"))
        .await;
    let env: Envelope = serde_json::from_value(answer["signedResponse"].clone()).unwrap();
    let up_to_date = CheckRequest {
        device: "",
        current: Some("2.0.0"),
        ..asked
    };
    assert_eq!(
        device.check_response(&env, &up_to_date, 0).unwrap().action,
        "none"
    );
    // A malformed nonce is the client's mistake.
    let resp = srv
        .anon(Method::GET, "/api/v1/products/door/check?nonce=xyz")
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_nonce").await;
}

#[tokio::test]
async fn roots_rotate_one_version_at_a_time() {
    let (srv, owner, root1) = signed_product().await;
    let now = otter_store::now();
    let new_root_key = key(Algorithm::P256);
    let doc2 = root_doc(&owner, 2, &[&new_root_key], now, now + 400 * DAY);
    let post = |envelope: Envelope| {
        srv.admin(Method::POST, "/api/v1/products/door/roots")
            .json(&envelope)
            .send()
    };
    // Signed by the new key only, or by the old only: refused.
    for signers in [vec![&new_root_key], vec![&owner.root]] {
        let resp = post(seal(ROOT_TYPE, &doc2, &signers)).await.unwrap();
        expect_error(resp, 400, "invalid_root").await;
    }
    // Skipping a version: refused.
    let doc3 = root_doc(&owner, 3, &[&new_root_key], now, now + 400 * DAY);
    let resp = post(seal(ROOT_TYPE, &doc3, &[&owner.root, &new_root_key]))
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_root").await;
    // Both: accepted; every version stays fetchable.
    let root2 = seal(ROOT_TYPE, &doc2, &[&owner.root, &new_root_key]);
    assert_eq!(post(root2.clone()).await.unwrap().status(), 201);
    for (path, expected) in [
        ("1.json", &root1),
        ("2.json", &root2),
        ("root.json", &root2),
    ] {
        let text = srv
            .anon_text(&format!("/api/v1/products/door/root/{path}"))
            .await;
        assert_eq!(
            &Envelope::parse(text.as_bytes()).unwrap(),
            expected,
            "{path}"
        );
    }
    let resp = srv
        .anon(Method::GET, "/api/v1/products/door/root/9.json")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "root_not_found").await;
    // The device walks 1 → 2.
    let mut device = TrustState::new(Root::open_first(&root1).unwrap(), 0);
    device.update_root(&root2).unwrap();
    assert_eq!(device.root.version, 2);
}

#[tokio::test]
async fn binary_signatures_reach_the_manifest_contract() {
    let (srv, owner, _) = signed_product().await;
    let image = firmware(4, 30_000);
    let sha = srv.upload(&image).await;
    let signed = seal(
        MANIFEST_TYPE,
        &manifest("3.0.0", 1, &image, 90 * DAY),
        &[&owner.release],
    );
    let b64 = |bytes: Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
    // A signature of other bytes, or by a key that is not a release key: refused.
    for bad in [
        b64(owner.release_p256.sign(b"other").unwrap()),
        b64(key(Algorithm::P256).sign(&image).unwrap()),
    ] {
        let resp = srv
            .try_publish(
                "door",
                "3.0.0",
                &sha,
                json!({"signature": signed, "binarySignature": bad}),
            )
            .await;
        expect_error(resp, 400, "invalid_signature").await;
    }
    let good = b64(owner.release_p256.sign(&image).unwrap());
    let resp = srv
        .try_publish(
            "door",
            "3.0.0",
            &sha,
            json!({"signature": signed, "binarySignature": good}),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let latest = srv.get_json("/m/door/api/firmware/latest").await;
    assert_eq!(latest["binarySignature"], json!(good));
    // An independent check of what a contract device receives: ECDSA P-256 over the bytes.
    let der = base64::engine::general_purpose::STANDARD
        .decode(latest["binarySignature"].as_str().unwrap())
        .unwrap();
    assert!(owner.release_p256.public_key().verify(&image, &der));
}

#[tokio::test]
async fn signatures_about_to_expire_are_reported_and_can_be_renewed() {
    let (srv, owner, _) = signed_product().await;
    let image = firmware(5, 10_000);
    publish_release_signed(&srv, &owner, "1.0.0", 1, &image, 10 * DAY).await;
    let status = srv.get_json("/api/v1/status").await;
    let soon: Vec<Value> = status["expiringSignatures"].as_array().unwrap().clone();
    assert_eq!(soon.len(), 1, "{status}");
    assert_eq!(soon[0]["version"], "1.0.0");
    assert_eq!(soon[0]["what"], "release manifest");
    // Re-signed with a longer expiry: no longer reported.
    let renewed = seal(
        MANIFEST_TYPE,
        &manifest("1.0.0", 1, &image, 180 * DAY),
        &[&owner.release],
    );
    let resp = srv
        .admin(
            Method::PUT,
            "/api/v1/products/door/releases/1.0.0/signature",
        )
        .json(&renewed)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let status = srv.get_json("/api/v1/status").await;
    assert_eq!(status["expiringSignatures"], json!([]));
}

#[tokio::test]
async fn a_product_that_declares_its_image_format_gets_only_signed_images() {
    use otter_core::formats::esp_idf_sbv2;
    let srv = TestServer::start().await;
    srv.create_product("c3", "semver").await;
    let (sbv2, der) = PrivateKey::generate(Algorithm::P256).unwrap();
    let resp = srv
        .admin(Method::PUT, "/api/v1/products/c3/image-format")
        .json(&json!({"format": "esp-idf-sbv2", "publicKey": sbv2.public_key().to_pem()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    let mut app = firmware(6, 150_000);
    app[0] = 0xE9;
    let unsigned = srv.upload(&app).await;
    let resp = srv.try_publish("c3", "1.0.0", &unsigned, json!({})).await;
    expect_error(resp, 400, "invalid_image_signature").await;
    let stranger = PrivateKey::generate(Algorithm::P256).unwrap().1;
    let foreign = srv
        .upload(&esp_idf_sbv2::sign(&app, &stranger, esp_idf_sbv2::SECTOR_LEN).unwrap())
        .await;
    let resp = srv.try_publish("c3", "1.0.0", &foreign, json!({})).await;
    expect_error(resp, 400, "invalid_image_signature").await;
    let signed = srv
        .upload(&esp_idf_sbv2::sign(&app, &der, esp_idf_sbv2::SECTOR_LEN).unwrap())
        .await;
    assert_eq!(
        srv.try_publish("c3", "1.0.0", &signed, json!({}))
            .await
            .status(),
        201
    );

    // Formats the server cannot check, and keys a format cannot use, are refused up front.
    for (format, key) in [
        ("minisign", sbv2.public_key().to_pem()),
        ("esp8266-rsa", sbv2.public_key().to_pem()),
    ] {
        let resp = srv
            .admin(Method::PUT, "/api/v1/products/c3/image-format")
            .json(&json!({"format": format, "publicKey": key}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{format}");
    }
}

/// A release whose manifest has expired would be refused by every device: it is offered to no
/// one (devices get the newest release still signed) until it is signed again.
#[tokio::test]
async fn a_release_whose_manifest_expired_is_not_offered() {
    let (srv, owner, _) = signed_product().await;
    publish_release_signed(&srv, &owner, "1.0.0", 1, &firmware(1, 10_000), 90 * DAY).await;
    let image = firmware(2, 10_000);
    publish_release_signed(&srv, &owner, "2.0.0", 1, &image, 2).await;
    assert_eq!(
        srv.offered("door", "current=0.9.0").await.as_deref(),
        Some("2.0.0")
    );
    eventually("2.0.0's manifest expires", async || {
        match srv.offered("door", "current=0.9.0").await {
            Some(v) if v == "1.0.0" => Ok(()),
            other => Err(format!("offered {other:?}")),
        }
    })
    .await;
    // Signed again: offered again.
    let resigned = seal(
        MANIFEST_TYPE,
        &manifest("2.0.0", 1, &image, 90 * DAY),
        &[&owner.release],
    );
    let resp = srv
        .admin(
            Method::PUT,
            "/api/v1/products/door/releases/2.0.0/signature",
        )
        .json(&resigned)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        srv.offered("door", "current=0.9.0").await.as_deref(),
        Some("2.0.0")
    );
}

#[tokio::test]
async fn a_pin_to_an_older_release_verifies_on_the_device() {
    let (srv, owner, root1) = signed_product().await;
    publish_release_signed(&srv, &owner, "1.0.0", 3, &firmware(1, 4_000), 90 * DAY).await;
    publish_release_signed(&srv, &owner, "2.0.0", 3, &firmware(2, 4_000), 90 * DAY).await;
    srv.check("door", "current=2.0.0&device=d1").await;
    eventually("d1 is registered", async || {
        let resp = srv
            .admin(Method::PATCH, "/api/v1/products/door/devices/d1")
            .json(&json!({"pinnedVersion": "1.0.0"}))
            .send()
            .await
            .unwrap();
        (resp.status() == StatusCode::OK)
            .then_some(())
            .ok_or(resp.status().to_string())
    })
    .await;

    let mut device = TrustState::new(Root::open_first(&root1).unwrap(), 3);
    let nonce = "0123456789abcdef0123456789abcdef";
    let answer = srv
        .check("door", &format!("current=2.0.0&device=d1&nonce={nonce}"))
        .await;
    let env: Envelope = serde_json::from_value(answer["signedResponse"].clone()).unwrap();
    let asked = CheckRequest {
        nonce,
        device: "d1",
        current: Some("2.0.0"),
        channel: "stable",
    };
    let response = device.check_response(&env, &asked, 0).unwrap();
    assert_eq!(
        (response.version.as_deref(), response.downgrade.as_deref()),
        (Some("1.0.0"), Some("pinned")),
        "the signed answer says why it goes back"
    );
    let manifest: Envelope = serde_json::from_value(answer["releaseManifest"].clone()).unwrap();
    let verified = device
        .check_manifest(&manifest, &response, "esp32-c3")
        .unwrap();
    assert_eq!(verified.version, "1.0.0");
}
