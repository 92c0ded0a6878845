//! The stock Arduino update clients (ESP8266httpUpdate, ESP32 HTTPUpdate), with byte-for-byte the
//! requests they send: HTTP/1.0, `Connection: close`, their `x-ESP8266-*` / `x-ESP32-*` headers
//! in their order. What they need back: 304, or 200 with `Content-Length` (never chunked, never
//! a redirect) and a lower-case `x-MD5`.

use otter_core::digest::{Digests, MultiHasher};
use serde_json::{Value, json};

use crate::common::{RawResponse, TestServer, eventually, firmware, parse_raw_response};

fn digests(bytes: &[u8]) -> Digests {
    let mut hasher = MultiHasher::new();
    hasher.update(bytes);
    hasher.finish()
}

/// A sketch image: ESP images start with the magic byte 0xE9, which both clients check.
fn sketch(seed: u64, len: usize) -> Vec<u8> {
    let mut image = firmware(seed, len);
    image[0] = 0xE9;
    image
}

/// `lamp` (semver) with 1.1.0 published as `image`.
async fn lamp(image: &[u8]) -> TestServer {
    let srv = TestServer::start().await;
    srv.create_product("lamp", "semver").await;
    let sha = srv.upload(image).await;
    srv.publish("lamp", "1.1.0", &sha, json!({})).await;
    srv
}

/// What `ESPhttpUpdate.update(client, url, version)` sends on an ESP8266 (core 3.x).
fn esp8266_request(path: &str, md5: &str, version: Option<&str>, free: u64) -> String {
    let mut head = format!(
        "GET {path} HTTP/1.0\r\n\
         User-Agent: ESP8266-http-Update\r\n\
         x-ESP8266-Chip-ID: 1193046\r\n\
         x-ESP8266-STA-MAC: 5C:CF:7F:12:34:56\r\n\
         x-ESP8266-AP-MAC: 5E:CF:7F:12:34:56\r\n\
         x-ESP8266-free-space: {free}\r\n\
         x-ESP8266-sketch-size: 282624\r\n\
         x-ESP8266-sketch-md5: {md5}\r\n\
         x-ESP8266-chip-size: 4194304\r\n\
         x-ESP8266-sdk-version: 2.2.2-dev(38a443e)\r\n\
         x-ESP8266-mode: sketch"
    );
    if let Some(v) = version {
        head.push_str(&format!("\r\nx-ESP8266-version: {v}"));
    }
    head.push_str("\r\nContent-Length: 0");
    head
}

/// What `httpUpdate.update(client, url, version)` sends on an ESP32 (arduino-esp32 2.x/3.x).
fn esp32_request(path: &str, md5: &str, sha256_upper: &str, version: &str) -> String {
    format!(
        "GET {path} HTTP/1.0\r\n\
         User-Agent: ESP32-http-Update\r\n\
         Cache-Control: no-cache\r\n\
         x-ESP32-STA-MAC: 24:6F:28:AA:BB:CC\r\n\
         x-ESP32-AP-MAC: 24:6F:28:AA:BB:CD\r\n\
         x-ESP32-free-space: 1966080\r\n\
         x-ESP32-sketch-size: 912384\r\n\
         x-ESP32-sketch-md5: {md5}\r\n\
         x-ESP32-sketch-sha256: {sha256_upper}\r\n\
         x-ESP32-chip-size: 4194304\r\n\
         x-ESP32-sdk-version: v4.4.6-dirty\r\n\
         x-ESP32-mode: sketch\r\n\
         x-ESP32-version: {version}"
    )
}

async fn send(srv: &TestServer, head: &str) -> RawResponse {
    let answer = srv.raw_until_close(head).await;
    assert!(answer.starts_with(b"HTTP/1."), "an HTTP/1.x status line");
    parse_raw_response(&answer)
}

/// A 200 the clients accept: the image with its length and MD5, not chunked.
fn assert_update(resp: &RawResponse, image: &[u8]) {
    assert_eq!(resp.status, 200, "{}", String::from_utf8_lossy(&resp.body));
    assert_eq!(
        resp.header("content-length"),
        Some(image.len().to_string().as_str())
    );
    assert_eq!(resp.header("transfer-encoding"), None);
    assert_eq!(resp.header("location"), None);
    assert_eq!(resp.header("x-md5"), Some(digests(image).md5.as_str()));
    assert_eq!(resp.body, image);
    assert_eq!(resp.body[0], 0xE9);
}

#[tokio::test]
async fn an_esp8266_is_updated_once_then_told_304() {
    let image = sketch(1, 300_000);
    let srv = lamp(&image).await;
    let running = digests(&sketch(2, 280_000));

    let resp = send(
        &srv,
        &esp8266_request(
            "/arduino/lamp/update",
            &running.md5,
            Some("1.0.0"),
            2_863_104,
        ),
    )
    .await;
    assert_update(&resp, &image);

    // After flashing, the sketch still reports its compiled-in "1.0.0" (forgotten bump): the
    // sketch MD5 says it runs 1.1.0.
    let now = digests(&image);
    let resp = send(
        &srv,
        &esp8266_request("/arduino/lamp/update", &now.md5, Some("1.0.0"), 2_863_104),
    )
    .await;
    assert_eq!(resp.status, 304);
    assert!(resp.body.is_empty());
    // A sketch that reports the version and an MD5 otter never saw: the version decides.
    let resp = send(
        &srv,
        &esp8266_request(
            "/arduino/lamp/update",
            &running.md5,
            Some("1.1.0"),
            2_863_104,
        ),
    )
    .await;
    assert_eq!(resp.status, 304);

    // The device is listed under its MAC, with what it runs.
    eventually("the ESP8266 is in the device list", async || {
        let devices = srv.get_json("/api/v1/products/lamp/devices").await;
        let device = &devices["items"][0];
        (device["id"] == "5C:CF:7F:12:34:56" && device["currentVersion"] == "1.1.0")
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
}

#[tokio::test]
async fn an_esp32_is_identified_by_its_sketch_sha256() {
    let image = sketch(3, 500_000);
    let srv = lamp(&image).await;
    let old = digests(&sketch(4, 400_000));
    let resp = send(
        &srv,
        &esp32_request(
            "/arduino/lamp/update",
            &old.md5,
            &old.sha256.to_ascii_uppercase(),
            "1.0.0",
        ),
    )
    .await;
    assert_update(&resp, &image);

    // Running the release (the ESP32 core sends its SHA-256 in upper case): nothing to do. The
    // version string it claims does not matter then.
    let now = digests(&image);
    let resp = send(
        &srv,
        &esp32_request(
            "/arduino/lamp/update",
            "",
            &now.sha256.to_ascii_uppercase(),
            "0.0.1",
        ),
    )
    .await;
    assert_eq!(resp.status, 304);
    eventually("the ESP32 is in the device list", async || {
        let devices = srv.get_json("/api/v1/products/lamp/devices").await;
        let ids: Vec<Value> = devices["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].clone())
            .collect();
        (ids == [json!("24:6F:28:AA:BB:CC")])
            .then_some(())
            .ok_or(devices.to_string())
    })
    .await;
}

#[tokio::test]
async fn refusals_name_their_reason() {
    let image = sketch(5, 300_000);
    let srv = lamp(&image).await;
    let md5 = digests(b"something else").md5;

    // Not enough free sketch space: 403 (a refusal the clients report by name), with the sizes.
    let resp = send(
        &srv,
        &esp8266_request("/arduino/lamp/update", &md5, Some("1.0.0"), 200_000),
    )
    .await;
    assert_eq!(resp.status, 403);
    let body = resp.json();
    assert_eq!(body["error"], "insufficient_space");
    assert_eq!(body["size"], 300_000);
    assert_eq!(body["freeSpace"], 200_000);

    // A product otter does not have, and a version the product's scheme cannot read.
    let resp = send(
        &srv,
        &esp8266_request("/arduino/nope/update", &md5, Some("1.0.0"), 2_863_104),
    )
    .await;
    assert_eq!(resp.status, 404);
    assert_eq!(resp.json()["error"], "product_not_found");
    let resp = send(
        &srv,
        &esp8266_request("/arduino/lamp/update", &md5, Some("banana"), 2_863_104),
    )
    .await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json()["error"], "invalid_version");

    // The version may come in the URL instead (sketches that build the URL themselves).
    let resp = send(
        &srv,
        &esp8266_request("/arduino/lamp/update?version=1.1.0", &md5, None, 2_863_104),
    )
    .await;
    assert_eq!(resp.status, 304);
    let resp = send(
        &srv,
        &esp8266_request("/arduino/lamp/update?version=1.0.0", &md5, None, 2_863_104),
    )
    .await;
    assert_update(&resp, &image);
}

/// A version header longer than any version is refused before the device is recorded: it
/// never reaches the device list (sightings are written in order, so once a later device is
/// listed, an earlier one would be too).
#[tokio::test]
async fn an_oversized_version_header_is_refused_and_not_recorded() {
    let image = sketch(7, 1000);
    let srv = lamp(&image).await;
    let md5 = digests(b"unknown sketch").md5;
    let long = "1".repeat(5_000);
    let resp = send(
        &srv,
        &esp8266_request("/arduino/lamp/update", &md5, Some(&long), 1 << 20),
    )
    .await;
    assert_eq!(resp.status, 400);
    let body: Value = serde_json::from_slice(&resp.body).unwrap();
    assert_eq!(body["error"], "invalid_version");

    let now = digests(&image);
    let resp = send(
        &srv,
        &esp32_request(
            "/arduino/lamp/update",
            "",
            &now.sha256.to_ascii_uppercase(),
            "0.0.1",
        ),
    )
    .await;
    assert_eq!(resp.status, 304);
    eventually("only the ESP32 is in the device list", async || {
        let devices = srv.get_json("/api/v1/products/lamp/devices").await;
        let ids: Vec<Value> = devices["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].clone())
            .collect();
        match ids.len() {
            0 => Err(devices.to_string()),
            _ => Ok(ids),
        }
    })
    .await;
    let devices = srv.get_json("/api/v1/products/lamp/devices").await;
    assert_eq!(
        devices["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].clone())
            .collect::<Vec<_>>(),
        [json!("24:6F:28:AA:BB:CC")],
        "{devices}"
    );
}
