//! IotaWatt self-hosting: blobs signed with the user's own key, checked at publish; the three
//! requests an IotaWatt makes, at its own paths; and a device-side unpacker written here from the
//! firmware's `unpackUpdate` (not otter's code) that accepts what otter serves.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::signature::{ED25519, UnparsedPublicKey};
use otter_core::iotawatt::{BlobFile, SigningKey, pack};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::{TestServer, expect_error, json_body, sha256_hex, test_config};

/// What IotaWatt's updater does with a downloaded blob: check the header names the release it
/// asked for, walk the FILE records, and verify the Ed25519 signature over the SHA-256 of
/// everything before it. Returns the files.
fn device_unpack(
    blob: &[u8],
    asked: &str,
    public_key: &[u8; 32],
) -> Result<Vec<(String, Vec<u8>)>, String> {
    if blob.len() < 16 + 64 || &blob[..8] != b"IotaWatt" || &blob[8..16] != asked.as_bytes() {
        return Err("wrong header".into());
    }
    let end = blob.len() - 64;
    let mut files = Vec::new();
    let mut at = 16;
    while at < end {
        let rec = &blob[at..at + 32];
        if &rec[..4] != b"FILE" {
            return Err(format!("no FILE record at {at}"));
        }
        let len = u32::from_le_bytes(rec[4..8].try_into().unwrap()) as usize;
        let name_len = rec[8..]
            .iter()
            .position(|&b| b == 0)
            .ok_or("name not terminated")?;
        let name = String::from_utf8(rec[8..8 + name_len].to_vec()).map_err(|e| e.to_string())?;
        let data = blob[at + 32..at + 32 + len].to_vec();
        files.push((name, data));
        at += 32 + len.div_ceil(8) * 8;
    }
    if at != end {
        return Err("records do not end at the signature".into());
    }
    let hash = digest(&SHA256, &blob[..end]);
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(hash.as_ref(), &blob[end..])
        .map_err(|_| "bad signature".to_string())?;
    Ok(files)
}

fn blob(version: &str, key: &SigningKey, firmware: &[u8]) -> Vec<u8> {
    let files = [
        BlobFile {
            name: "iotawatt.bin".into(),
            data: firmware.to_vec(),
        },
        BlobFile {
            name: "index.htm".into(),
            data: format!("<html>{version}</html>").into_bytes(),
        },
    ];
    pack(version, &files, key).unwrap()
}

/// An IotaWatt product `iotawatt` (served at the root too) with `key`'s public key.
async fn setup(key: &SigningKey) -> TestServer {
    let srv = TestServer::with_config(otter_server::Settings {
        iotawatt_product: Some("iotawatt".into()),
        ..test_config()
    })
    .await;
    srv.create_product("iotawatt", "lexical").await;
    let resp = srv
        .admin(Method::PUT, "/api/v1/products/iotawatt/iotawatt")
        .json(&json!({ "publicKey": otter_core::iotawatt::c_array(&key.public_key()) }))
        .send()
        .await
        .unwrap();
    let body = json_body(resp, StatusCode::OK).await;
    assert_eq!(body["publicKey"], hex::encode(key.public_key()));
    srv
}

async fn publish(
    srv: &TestServer,
    version: &str,
    bytes: &[u8],
    channel: &str,
) -> reqwest::Response {
    let sha = srv.upload(bytes).await;
    srv.try_publish("iotawatt", version, &sha, json!({ "channels": [channel] }))
        .await
}

async fn versions(srv: &TestServer, path: &str) -> Value {
    let resp = srv.anon(Method::GET, path).send().await.unwrap();
    json_body(resp, StatusCode::OK).await
}

#[tokio::test]
async fn a_device_updates_from_its_own_server() {
    let key = SigningKey::generate().unwrap();
    let srv = setup(&key).await;
    let major = crate::common::firmware(1, 300_001);
    let beta = crate::common::firmware(2, 310_000);
    assert_eq!(
        publish(&srv, "02_08_04", &blob("02_08_04", &key, &major), "MAJOR")
            .await
            .status(),
        201
    );
    assert_eq!(
        publish(&srv, "02_09_01", &blob("02_09_01", &key, &beta), "BETA")
            .await
            .status(),
        201
    );
    let tables = br#"{"version":"1.3.0","tables":[]}"#;
    assert_eq!(publish(&srv, "1.3.0", tables, "TABLES").await.status(), 201);

    // 1. versions.json, at the path the firmware has built in.
    let listed = versions(&srv, "/firmware/versions.json").await;
    assert_eq!(
        listed,
        json!({"classes": {"MAJOR": "02_08_04", "BETA": "02_09_01"}, "tables": "1.3.0"})
    );
    // 2. The release of the device's class: a blob the device's own unpacker accepts.
    let resp = srv
        .anon(Method::GET, "/firmware/bin/02_09_01.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let served = resp.bytes().await.unwrap();
    let files = device_unpack(&served, "02_09_01", &key.public_key()).unwrap();
    assert_eq!(files[0], ("iotawatt.bin".to_owned(), beta.clone()));
    assert_eq!(files[1].0, "index.htm");
    // …and refuses with another key, or when asked for another release.
    let other = SigningKey::generate().unwrap();
    assert!(device_unpack(&served, "02_09_01", &other.public_key()).is_err());
    assert!(device_unpack(&served, "02_08_04", &key.public_key()).is_err());
    // 3. The tables file.
    let resp = srv
        .anon(Method::GET, "/download/tables/1.3.0.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(&resp.bytes().await.unwrap()[..], tables);

    // A newer MAJOR replaces the old in versions.json; a yanked one leaves it.
    publish(
        &srv,
        "02_08_05",
        &blob("02_08_05", &key, &major[1..]),
        "MAJOR",
    )
    .await;
    let listed = versions(&srv, "/iotawatt/iotawatt/firmware/versions.json").await;
    assert_eq!(listed["classes"]["MAJOR"], "02_08_05");
    srv.patch_release("iotawatt", "02_08_05", json!({"yanked": true}))
        .await;
    let listed = versions(&srv, "/firmware/versions.json").await;
    assert_eq!(listed["classes"]["MAJOR"], "02_08_04");
    let resp = srv
        .anon(Method::GET, "/firmware/bin/02_08_05.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Mounted paths serve the same bytes.
    let resp = srv
        .anon(Method::GET, "/iotawatt/iotawatt/firmware/bin/02_09_01.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(
        sha256_hex(&resp.bytes().await.unwrap()),
        sha256_hex(&served)
    );
}

#[tokio::test]
async fn blobs_the_device_would_refuse_are_refused_at_publish() {
    let key = SigningKey::generate().unwrap();
    let srv = setup(&key).await;
    let good = blob("02_08_04", &key, b"\xe9firmware");

    // Signed by someone else, one byte changed, published under another release, garbage.
    let stranger = SigningKey::generate().unwrap();
    let resp = publish(
        &srv,
        "02_08_04",
        &blob("02_08_04", &stranger, b"\xe9firmware"),
        "MAJOR",
    )
    .await;
    expect_error(resp, 400, "invalid_signature").await;
    let mut flipped = good.clone();
    flipped[40] ^= 1;
    expect_error(
        publish(&srv, "02_08_04", &flipped, "MAJOR").await,
        400,
        "invalid_signature",
    )
    .await;
    expect_error(
        publish(&srv, "02_08_09", &good, "MAJOR").await,
        400,
        "version_mismatch",
    )
    .await;
    expect_error(
        publish(&srv, "02_08_04", b"not a blob", "MAJOR").await,
        400,
        "invalid_blob",
    )
    .await;
    // Not a class.
    expect_error(
        publish(&srv, "02_08_04", &good, "stable").await,
        400,
        "invalid_channel",
    )
    .await;
    // Nothing of that reached the device.
    assert_eq!(
        versions(&srv, "/firmware/versions.json").await,
        json!({"classes": {}})
    );
    assert_eq!(
        publish(&srv, "02_08_04", &good, "MAJOR").await.status(),
        201
    );

    // A product without a key is not an IotaWatt product.
    srv.create_product("plain", "lexical").await;
    let resp = srv
        .anon(Method::GET, "/iotawatt/plain/firmware/versions.json")
        .send()
        .await
        .unwrap();
    expect_error(resp, 404, "not_iotawatt").await;
    let resp = srv
        .admin(Method::PUT, "/api/v1/products/plain/iotawatt")
        .json(&json!({"publicKey": "abc"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, 400, "invalid_public_key").await;
}

/// An IotaWatt does not say who it is: versions.json lists a release under a rollout only once
/// the rollout's current stage takes every device.
#[tokio::test]
async fn versions_json_lists_a_rolled_out_release_once_it_reaches_everyone() {
    let key = SigningKey::generate().unwrap();
    let srv = setup(&key).await;
    let major = crate::common::firmware(1, 300_001);
    publish(&srv, "02_08_04", &blob("02_08_04", &key, &major), "MAJOR").await;
    let resp = srv
        .admin(Method::POST, "/api/v1/products/iotawatt/rollouts")
        .json(&json!({"version": "02_08_05", "channel": "MAJOR",
                      "stages": [{"percent": 10}, {"percent": 100}]}))
        .send()
        .await
        .unwrap();
    let rollout = json_body(resp, StatusCode::CREATED).await;
    let blob_05 = blob("02_08_05", &key, &major[1..]);
    assert_eq!(
        publish(&srv, "02_08_05", &blob_05, "MAJOR").await.status(),
        201
    );
    let listed = versions(&srv, "/firmware/versions.json").await;
    assert_eq!(
        listed["classes"]["MAJOR"], "02_08_04",
        "10 % is not everyone"
    );
    let advance = format!(
        "/api/v1/products/iotawatt/rollouts/{}/advance",
        rollout["id"]
    );
    let resp = srv.admin(Method::POST, &advance).send().await.unwrap();
    json_body(resp, StatusCode::OK).await;
    let listed = versions(&srv, "/firmware/versions.json").await;
    assert_eq!(listed["classes"]["MAJOR"], "02_08_05");
}
